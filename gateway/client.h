// A C++ client for the gateway protocol (PROTOCOL.md): connect, Hello, send
// Telemetry, Subscribe, receive Deliver frames and Ack/Nack them. Blocking
// sockets with timeouts; Telemetry is buffered and written in batches
// (Flush, or automatically when the buffer fills), so a producer can
// pipeline thousands of messages per system call.
//
// Thread-safety: none; use one Client per thread.
//
// Usage:
//   auto client = Client::Connect("unix:edgeroute.sock").value();
//   client->Hello("device-1", "filter").IgnoreError();
//   client->Subscribe({"input1"});
//   client->SendTelemetry("output1", builder.Finish());
//   client->Flush();
//   auto delivery = client->Receive(1000);   // a Deliver frame
//   client->Ack(delivery.value()->delivery_id);

#ifndef EDGEROUTE_GATEWAY_CLIENT_H_
#define EDGEROUTE_GATEWAY_CLIENT_H_

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "gateway/protocol.h"
#include "message/message.h"

namespace edgeroute {
namespace gateway {

struct ClientOptions {
  // Bound on every blocking read or write, in milliseconds.
  int timeout_ms = 10000;
  // Largest frame accepted from the gateway.
  size_t max_frame_bytes = kDefaultMaxFrameBytes;
  // Buffered outgoing bytes that trigger an automatic Flush.
  size_t send_buffer_bytes = 64u << 10;
  // Sent with Hello when not empty: the SAS token that proves the identity
  // to a gateway that checks identities ("SharedAccessSignature sr=...";
  // auth::MakeSasToken, `edgeroute identity token`).
  std::string sas_token;
};

// One received Deliver frame. Views point into the client's receive buffer
// and are valid until the next Receive, WaitForAcks or Hello call.
struct Delivery {
  uint64_t delivery_id = 0;
  absl::string_view input;
  MessageView message;
};

class Client {
 public:
  // `address`: "unix:PATH", "tcp:HOST:PORT" or "HOST:PORT".
  static absl::StatusOr<std::unique_ptr<Client>> Connect(
      absl::string_view address, const ClientOptions& options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends Hello (with ClientOptions::sas_token) and waits for HelloAck. An
  // Error frame from the gateway becomes a status with its code name and
  // text (PermissionDenied for kNotAuthorized, FailedPrecondition for
  // kUnsupportedVersion and protocol errors).
  absl::Status Hello(absl::string_view device_id, absl::string_view module_id,
                     uint32_t protocol_version = kProtocolVersion);
  // Subscribes to inputs ("$upstream" for the upstream endpoint) and
  // flushes.
  absl::Status Subscribe(std::initializer_list<absl::string_view> inputs);
  absl::Status Subscribe(absl::Span<const absl::string_view> inputs);

  // Queues a Telemetry frame carrying `message` on `output`. With `want_ack`
  // the gateway answers with a TelemetryAck (see acks_received /
  // WaitForAcks); returns the sequence number used (0 without ack).
  absl::StatusOr<uint64_t> SendTelemetry(absl::string_view output,
                                         absl::Span<const uint8_t> message,
                                         bool want_ack = false);
  // Writes everything queued.
  absl::Status Flush();
  // Flushes, then reads until `count` TelemetryAcks in total have arrived.
  // Returns FailedPrecondition when a Deliver frame comes first (it stays
  // queued for Receive): a client that produces with acks and consumes at
  // the same time should use two connections.
  absl::Status WaitForAcks(uint64_t count);

  // Flushes, then returns the next Deliver frame (waiting up to timeout_ms;
  // DeadlineExceeded when none came).
  absl::StatusOr<Delivery> Receive(int timeout_ms);
  // Queue an Ack / Nack (sent with the next Flush, Receive or automatically).
  absl::Status Ack(uint64_t delivery_id);
  absl::Status Nack(uint64_t delivery_id, bool retry);

  // TelemetryAcks received, and how many of them refused the message.
  uint64_t acks_received() const { return acks_received_; }
  uint64_t acks_refused() const { return acks_refused_; }
  // The code of the last refusing TelemetryAck (kUnknown before any).
  fb::ErrorCode last_refusal() const { return last_refusal_; }
  // Bytes queued and not yet written.
  size_t buffered_bytes() const { return out_.size(); }

 private:
  Client(int fd, const ClientOptions& options);
  absl::Status MaybeFlush();
  // Reads at least one more chunk from the socket (waiting up to
  // timeout_ms). DeadlineExceeded on timeout, Unavailable on EOF.
  absl::Status ReadMore(int timeout_ms);
  // Processes buffered frames until a Deliver is found (returned in *out,
  // true) or the buffer has no complete frame (false).
  absl::StatusOr<bool> NextDeliver(Delivery* out);
  absl::Status ErrorStatus(const DecodedFrame& frame) const;

  const int fd_;
  const ClientOptions options_;
  FrameEncoder encoder_;
  FrameDecoder decoder_;
  std::string out_;
  std::vector<uint64_t> rbuf_;
  size_t rbeg_;
  size_t rend_;
  // Bytes of the current Deliver frame to drop before the next read.
  size_t consume_after_ = 0;
  uint64_t next_sequence_ = 1;
  uint64_t acks_received_ = 0;
  uint64_t acks_refused_ = 0;
  fb::ErrorCode last_refusal_ = fb::ErrorCode::kUnknown;
  bool hello_acked_ = false;
  uint32_t server_max_frame_ = 0;
};

}  // namespace gateway
}  // namespace edgeroute

#endif  // EDGEROUTE_GATEWAY_CLIENT_H_
