// The gateway protocol server: sessions (Hello, Subscribe, Telemetry,
// Deliver/Ack) on top of an EventLoop, with the routing decisions left to a
// ServerHooks implementation (the router adapter in gateway.h, or a test
// double).
//
// Inbound: each Telemetry is verified (protocol.h), stamped with the
// session's identity (connectionDeviceId, connectionModuleId, outputName and
// the source derived from them), and handed to ServerHooks::OnTelemetry.
// Outbound: Deliver(target, input, batch) sends every message of a batch to
// the connection that subscribed to `input` for identity `target` (or, for
// "$upstream", to one of the upstream subscribers, chosen per message
// identity so that each identity's messages stay in order), in order, with at
// most `max_unacked_deliveries` unacknowledged per connection; each message is
// completed by the client's Ack/Nack, or with kRetry when the connection
// goes away.

#ifndef EDGEROUTE_GATEWAY_SERVER_H_
#define EDGEROUTE_GATEWAY_SERVER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gateway/auth/identities.h"
#include "gateway/auth/identity.h"
#include "gateway/event_loop.h"
#include "gateway/protocol.h"
#include "message/message.h"

namespace edgeroute {
namespace gateway {

// How one delivered message ended.
enum class DeliveryResult : uint8_t {
  kAcked,     // the client acknowledged it
  kRetry,     // Nack{retry}, or no connection / the connection went away
  kRejected,  // Nack{retry = false}
};

// Messages handed to Server::Deliver.
// Ownership: owned by the caller, who keeps it (and its messages) alive until
// Complete was called for every index.
class OutboundBatch {
 public:
  virtual ~OutboundBatch() = default;
  virtual size_t size() const = 0;
  // REQUIRES: i < size().
  virtual MessageView message(size_t i) const = 0;
  // Called exactly once per index, on the server's loop thread, in no
  // particular order.
  virtual void Complete(size_t i, DeliveryResult result) = 0;
};

// One admitted-or-refused message of ServerHooks::OnTelemetryBatch.
struct TelemetryItem {
  const Identity* from;  // already stamped into `message`
  absl::string_view output;
  MessageView message;
};

// The server's view of routing. OnSubscription comes from the loop thread
// and must not block for long. OnTelemetry comes from the loop thread too,
// or, with ServerOptions::admission_queue_bytes, from the server's admission
// thread, where it may wait (e.g. for a store append) without stalling any
// socket.
class ServerHooks {
 public:
  virtual ~ServerHooks() = default;
  // A Telemetry message from `from`, already stamped with its identity.
  // The bytes are valid only during the call. Returns fb::ErrorCode::kUnknown
  // when admitted, or the code to refuse it with (kOverloaded,
  // kShuttingDown). Calls are in arrival order, one at a time.
  virtual fb::ErrorCode OnTelemetry(const Identity& from,
                                    absl::string_view output,
                                    const MessageView& message) = 0;
  // As OnTelemetry for each item, in order, verdicts[i] for items[i]; the
  // admission thread hands over everything it took at once, so that a hook
  // with a store can append the batch together. The default calls
  // OnTelemetry item by item.
  // REQUIRES: verdicts.size() == items.size().
  virtual void OnTelemetryBatch(absl::Span<const TelemetryItem> items,
                                absl::Span<fb::ErrorCode> verdicts) {
    for (size_t i = 0; i < items.size(); ++i) {
      verdicts[i] =
          OnTelemetry(*items[i].from, items[i].output, items[i].message);
    }
  }
  // `identity` gained its first (active) or lost its last (!active)
  // connection subscribed to `input`. For "$upstream" the identity is empty
  // and the change is about the set of all upstream subscribers.
  virtual void OnSubscription(const Identity& identity, absl::string_view input,
                              bool active) = 0;
};

struct ServerOptions {
  LoopOptions loop;
  // TCP listener: host (IPv4; loopback by default) and port (0 = any free
  // port, -1 = no TCP listener).
  std::string tcp_host = "127.0.0.1";
  int tcp_port = 0;
  // With a context, the TCP listener speaks TLS (gateway/net/tls.h).
  std::shared_ptr<TlsServerContext> tls;
  // Null: any Hello is taken at its word (a local process may claim any
  // identity). Otherwise a Hello must prove its identity as
  // IdentityRegistry::Verify checks it -- a SAS token in Hello.sas_token, or
  // the TLS client certificate -- else it gets Error{kNotAuthorized} and the
  // connection is closed. Server::SetIdentities replaces it while running.
  std::shared_ptr<const auth::IdentityRegistry> identities;
  // Called on the loop thread with one line per refused Hello (who, from
  // where, why; never a token), missing Hello and expired deliveries --
  // the first 100, then one in 1,000 (LogLimiter), so that hostile clients
  // cannot flood the log; null = silent.
  std::function<void(absl::string_view)> log;
  // Unix-domain listener path; empty = none.
  std::string unix_path;
  // Deliveries a connection may have unacknowledged; later ones wait in the
  // gateway until acks arrive.
  size_t max_unacked_deliveries = 1000;
  // Subscriptions per connection.
  size_t max_subscriptions = 64;
  // 0: ServerHooks::OnTelemetry runs on the loop thread, and the loop waits
  // for it. Otherwise it runs on an admission thread of its own, in arrival
  // order, and the TelemetryAck follows when it returns (still in order per
  // connection); up to this many message bytes wait for that thread (twice
  // that while it works through a batch). A producer whose message finds
  // them full is not read from until they are half empty again
  // (EventLoop::PauseReading: back-pressure on that producer only; the loop
  // thread never waits). The bound can be exceeded by what paused producers
  // had already sent, at most a read's worth each.
  size_t admission_queue_bytes = 0;
  // A connection that has not completed its Hello within this time (the TLS
  // handshake included) is closed, so that sockets that connect and say
  // nothing cannot pile up. Checked every tick (LoopOptions::
  // tick_interval_ms, set to a quarter of this, at most 1 s, when 0).
  absl::Duration hello_timeout = absl::Seconds(10);
  // A delivery not acknowledged within this time is given back to the
  // router for a retry (edgeHub's 30 s), so that a client that never acks
  // holds nothing forever, a message's TTL applies again, and the other
  // "$upstream" subscribers get it. A late Ack for it is ignored (counted).
  // Zero: wait forever.
  absl::Duration ack_timeout = absl::Seconds(30);
};

// Counters since Start. Read with relaxed atomics: each value is exact, the
// set is not a snapshot.
struct ServerStats {
  uint64_t connections_accepted = 0;
  uint64_t connections_open = 0;
  uint64_t telemetry_received = 0;
  uint64_t telemetry_refused = 0;
  uint64_t producer_pauses = 0;  // producers paused by a full admission queue
  uint64_t deliveries_sent = 0;
  uint64_t acks = 0;
  uint64_t nacks = 0;
  uint64_t protocol_errors = 0;
  uint64_t slow_consumer_disconnects = 0;
  // Hellos refused with kNotAuthorized.
  uint64_t hellos_not_authorized = 0;
  uint64_t hello_timeouts = 0;        // closed without a Hello in time
  uint64_t deliveries_timed_out = 0;  // no Ack within ack_timeout
  uint64_t late_acks = 0;             // Acks after the delivery timed out
  uint64_t connections_refused = 0;   // over max_connections / no fds
};

class ServerImpl;

// Thread-safety: Create/Start/Stop from one controlling thread; Deliver,
// stats, PrometheusText and tcp_port from any thread.
class Server {
 public:
  // Binds the listeners. REQUIRES: hooks outlives the server.
  static absl::StatusOr<std::unique_ptr<Server>> Create(
      const ServerOptions& options, ServerHooks* hooks);
  // Stops (if running).
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Starts the loop thread.
  absl::Status Start();
  // Closes every connection (completing their deliveries with kRetry) and
  // joins the loop thread. Idempotent.
  void Stop();

  // Replaces ServerOptions::identities (null: stop checking) for the Hellos
  // that follow; connections already signed in stay. Thread-safe.
  void SetIdentities(std::shared_ptr<const auth::IdentityRegistry> identities);

  // The bound TCP port (-1 without a TCP listener).
  int tcp_port() const;
  IoBackend backend() const;

  // Delivers `batch` to `target`'s connection subscribed to `input`, or
  // with input "$upstream" to the upstream subscribers. Messages that have
  // nowhere to go complete with kRetry. Thread-safe; from the loop thread
  // (inside a hook) it runs at once, otherwise it is posted to it.
  void Deliver(const Identity& target, absl::string_view input,
               OutboundBatch* batch);

  ServerStats stats() const;
  // The counters in Prometheus text format (edgeroute_gateway_*).
  std::string PrometheusText() const;

 private:
  explicit Server(std::unique_ptr<ServerImpl> impl);
  std::unique_ptr<ServerImpl> impl_;
};

// Returns `message` with connectionDeviceId / connectionModuleId /
// outputName (and the source derived from them) set from `from` and
// `output`: `message` itself when it already says exactly that, otherwise a
// copy built in `builder` (valid until the builder's next Clear).
MessageView StampIdentity(const Identity& from, absl::string_view output,
                          const MessageView& message, MessageBuilder* builder,
                          std::string* scratch);

}  // namespace gateway
}  // namespace edgeroute

#endif  // EDGEROUTE_GATEWAY_SERVER_H_
