// One MQTT connection's protocol state machine, without sockets: bytes in
// (OnBytes), packets out (through SessionHost), time from an injected Clock.
//
//   * CONNECT must come first (anything else closes) and only once (a
//     second one closes). Another protocol level gets CONNACK 1, an empty
//     client id CONNACK 2, failed authentication CONNACK 4 or 5; then the
//     connection closes.
//   * Keep-alive: without a packet for 1.5 x the CONNECT's keep-alive the
//     session asks to close (OnTick); without a CONNECT within
//     SessionOptions::connect_timeout_micros likewise.
//   * PINGREQ -> PINGRESP; DISCONNECT closes.
//   * PUBLISH from the client, QoS 0 or 1 (QoS 2 and PUBREC/PUBREL/PUBCOMP
//     close): its own telemetry topic (routed through SessionHost::
//     Telemetry; PUBACK only after the host admitted it), twin GET and
//     reported PATCH (answered on $iothub/twin/res/...), method responses
//     (acknowledged and dropped: nothing invokes methods yet). Any other
//     topic, or another identity's, closes the connection.
//   * SUBSCRIBE: each filter granted at min(QoS, 1) when the identity may
//     read it (iothub.h, ClassifyFilter), else 0x80. UNSUBSCRIBE removes.
//   * Deliveries to module inputs: at the granted QoS; QoS 1 ones stay in
//     flight until the client's PUBACK, at most max_inflight at a time (the
//     rest wait in order). Messages that were in flight when the previous
//     connection of a CleanSession=0 session closed carry DUP when they are
//     delivered again.
//
// Thread-safety: none. Every call, and every SessionHost call it makes,
// happens on one thread (the server's loop thread).

#ifndef EDGEROUTE_GATEWAY_MQTT_SESSION_H_
#define EDGEROUTE_GATEWAY_MQTT_SESSION_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "base/clock.h"
#include "gateway/mqtt/codec.h"
#include "gateway/mqtt/iothub.h"
#include "gateway/server.h"
#include "message/message.h"

namespace edgeroute {
namespace gateway {
namespace mqtt {

// IoT Hub's (and edgeHub's) largest message payload.
inline constexpr size_t kDefaultMaxMessageBytes = 256 * 1024;

struct SessionOptions {
  // Largest PUBLISH payload accepted from a client; a larger one closes the
  // connection.
  size_t max_message_bytes = kDefaultMaxMessageBytes;
  // Largest packet (fixed header included), refused as soon as its length
  // is known. 0 = max_message_bytes plus room for a topic with a full
  // property bag (64 KiB) and the headers.
  size_t max_packet_bytes = 0;
  // QoS 1 deliveries a connection may have unacknowledged; later ones wait.
  // At most 32,768 (packet identifiers must stay available).
  size_t max_inflight = 256;
  // Topic filters a session may hold; more are refused with 0x80.
  size_t max_subscriptions = 32;
  // Time from connection to CONNECT.
  int64_t connect_timeout_micros = 10'000'000;
  // A module input delivery not acknowledged within this time is given back
  // to the router for a retry (edgeHub's 30 s), so that a client that never
  // acks holds nothing forever and a message's TTL applies again. A late
  // PUBACK for it is ignored. 0 = wait forever.
  int64_t ack_timeout_micros = 30'000'000;

  size_t packet_limit() const {
    return max_packet_bytes != 0 ? max_packet_bytes
                                 : max_message_bytes + 65536 + 16;
  }
};

// A granted subscription.
struct Subscription {
  std::string filter;
  uint8_t qos = 0;
};

// What a CleanSession=0 session keeps between connections.
struct SavedSession {
  std::vector<Subscription> subscriptions;
  // Hashes (MessageHash) of messages that were in flight or waiting when
  // the last connection closed; their next delivery carries DUP.
  absl::flat_hash_set<uint64_t> unacknowledged;
};

// The hash that identifies a delivered message across reconnects.
uint64_t MessageHash(const MessageView& message);

// What the host did with a telemetry message.
enum class Admission : uint8_t {
  kAdmitted,  // the router has it: PUBACK (QoS 1) may follow
  kQueued,    // decided later, in order: the host calls Session::Admitted
  kRefused,   // not admitted: the session closes without PUBACK
};

// Why a session ended (for counters and logs).
enum class SessionEnd : uint8_t {
  kOpen,            // not ended
  kDisconnect,      // the client sent DISCONNECT
  kPeerClosed,      // the connection went away (Close without a reason)
  kProtocolError,   // a malformed or unexpected packet
  kPacketTooLarge,  // a packet or message above the limits
  kAuthFailed,      // CONNACK 1, 2, 4 or 5 was sent
  kKeepAlive,       // 1.5 x keep-alive without a packet
  kConnectTimeout,  // no CONNECT in time
  kRefusedPublish,  // a PUBLISH to a topic the identity may not use
  kQos2,            // QoS 2 is not supported
  kNotAdmitted,     // the router refused a message (no negative PUBACK)
  kTakenOver,       // a newer connection claimed the identity
  kSlowConsumer,    // the output queue overflowed
};
const char* SessionEndName(SessionEnd end);

class Session;

// What a session needs from its server. Every call comes from inside a
// Session call, on the session's thread.
class SessionHost {
 public:
  virtual ~SessionHost() = default;
  // The connection's output buffer to append packets to, or null when the
  // connection is closing. EndSend after appending; false when the output
  // overflowed (the connection is being closed).
  virtual std::string* BeginSend(Session* session) = 0;
  virtual bool EndSend(Session* session) = 0;
  // Checks a CONNECT's credentials. kAccepted with *identity set, or the
  // CONNACK code to refuse with (kBadUserNameOrPassword, kNotAuthorized,
  // kIdentifierRejected, kServerUnavailable).
  virtual ConnectCode Authenticate(Session* session, const Connect& connect,
                                   Identity* identity) = 0;
  // The session is connected as session->identity(). The host ends an
  // older connection of the same identity, and with !clean_session fills
  // *saved with the state to resume and returns true when there was one
  // (CONNACK's session-present flag). With clean_session any saved state is
  // dropped.
  virtual bool Attach(Session* session, bool clean_session,
                      SavedSession* saved) = 0;
  // session->subscriptions() changed (also right after a resumed CONNECT).
  virtual void SubscriptionsChanged(Session* session) = 0;
  // A SUBSCRIBE filter was refused with 0x80 (for counters and logs).
  virtual void SubscriptionRefused(Session* session, absl::string_view filter) {
    (void)session;
    (void)filter;
  }
  // A module input delivery was published, and one was acknowledged.
  virtual void DeliverySent(Session* session) { (void)session; }
  virtual void DeliveryAcked(Session* session) { (void)session; }
  // A delivery waited longer than SessionOptions::ack_timeout_micros.
  virtual void DeliveryTimedOut(Session* session) { (void)session; }
  // A telemetry message from `from` -- the session's identity, or one a
  // gateway session forwards for -- stamped with it (the bytes are valid
  // only during the call). kRefused closes the session without
  // PUBACK so that the client sends the message again. kQueued: the host
  // decides later and calls Session::Admitted once per queued message, in
  // the order they were queued; PUBACKs keep the order of the PUBLISHes.
  virtual Admission Telemetry(Session* session, const Identity& from,
                              absl::string_view output,
                              const MessageView& message) = 0;
  // Nested gateways: whether the session's (just authenticated) identity is
  // a gateway that forwards telemetry for others, and whether it may
  // publish for `origin` (auth::IdentityRegistry::MayActFor).
  virtual bool IsGateway(Session* session) {
    (void)session;
    return false;
  }
  virtual bool MayActFor(Session* session, const Identity& origin) {
    (void)session;
    (void)origin;
    return false;
  }
  // Twin requests of the session's identity.
  virtual std::string TwinGet(Session* session) = 0;
  virtual absl::StatusOr<int64_t> TwinPatchReported(
      Session* session, absl::string_view patch_json) = 0;
};

// Reused buffers shared by the sessions of one thread.
struct SessionScratch {
  MessageBuilder builder;
  MessageBuilder stamp_builder;
  std::string output, bag, topic, stamp;
};

class Session {
 public:
  // REQUIRES: host, clock and scratch outlive the session.
  Session(const SessionOptions& options, SessionHost* host, const Clock* clock,
          SessionScratch* scratch);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Bytes received and not consumed yet. Consumes whole packets (sets
  // *consumed). Returns false when the connection must close (after the
  // queued output is sent); end() then says why.
  bool OnBytes(absl::Span<const uint8_t> bytes, size_t* consumed);
  // Checks the connect deadline and keep-alive; false to close.
  bool OnTick();
  // The verdict on the oldest telemetry message the host queued
  // (Admission::kQueued). Sends the PUBACKs that were waiting for it.
  // Returns false when the session must close (refused, or the output
  // overflowed); end() then says why.
  bool Admitted(bool admitted);
  // Telemetry messages queued with the host and not decided yet.
  size_t admissions_pending() const { return queued_admissions_; }

  // Sends message `index` of `batch` to the input subscription(s) for
  // `input`; the batch is completed for it (kAcked on PUBACK, or at once
  // for QoS 0; kRetry when not subscribed or when the connection closes;
  // kRejected when it can never be sent over MQTT: a topic past 65,535
  // bytes).
  void Deliver(absl::string_view input, OutboundBatch* batch, size_t index);
  // The QoS `input` is delivered at, or -1 when not subscribed.
  int InputQos(absl::string_view input) const;
  // Publishes a desired-properties patch when subscribed to them.
  void SendDesiredPatch(int64_t version, absl::string_view patch_json);

  // The connection is gone (or taken over, `end`). Completes every
  // delivery it holds with kRetry, and, for a CleanSession=0 session, fills
  // *saved (when not null) with what the next connection resumes.
  // Idempotent; the session accepts nothing afterwards.
  void Close(SessionEnd end, SavedSession* saved);

  bool connected() const { return state_ == State::kConnected; }
  bool closed() const { return state_ == State::kClosed; }
  SessionEnd end() const { return end_; }
  // The last problem, for logs (a static string, "" if none).
  const char* error() const { return error_; }
  // Byte offset of a decode error in the packet (with error()).
  size_t error_offset() const { return error_offset_; }
  const Identity& identity() const { return identity_; }
  bool clean_session() const { return clean_session_; }
  uint16_t keep_alive_secs() const { return keep_alive_secs_; }
  const std::vector<Subscription>& subscriptions() const {
    return subscriptions_;
  }
  // Deliveries sent and not acknowledged, and waiting for the window.
  size_t inflight() const { return inflight_.size(); }
  size_t waiting() const { return waiting_ == nullptr ? 0 : waiting_->size(); }

  // Opaque value for the host (e.g. its connection id).
  uint64_t tag = 0;

 private:
  enum class State : uint8_t { kAwaitConnect, kConnected, kClosed };
  struct Inflight {
    OutboundBatch* batch;  // null for a twin response
    size_t index;
    int64_t sent_micros;  // monotonic
  };
  // Gives deliveries older than the ack timeout back for a retry.
  void ExpireDeliveries(int64_t now);
  // Sends waiting deliveries while the in-flight window has room.
  void SendWaiting();
  struct Waiting {
    std::string input;
    OutboundBatch* batch;
    size_t index;
  };

  bool Fail(SessionEnd end, const char* what);
  bool OnPacket(const Packet& packet);
  bool OnConnect(const Connect& connect);
  bool OnPublish(const Publish& publish);
  bool OnSubscribe(const Packet& packet);
  bool OnUnsubscribe(const Packet& packet);
  bool OnPuback(uint16_t packet_id);
  bool SendConnack(bool session_present, ConnectCode code);
  bool SendSimple(PacketType type, uint16_t packet_id);
  // A PUBACK for `packet_id`, after those still waiting for admissions.
  bool Acknowledge(uint16_t packet_id);
  // Sends the PUBACKs at the front of pending_acks_ that are ready.
  bool FlushAcks();
  // Publishes on the topic in scratch_->topic. With qos 1 the packet is in
  // flight (batch may be null). False if the connection is closing.
  bool SendPublish(uint8_t qos, bool dup, absl::string_view payload,
                   OutboundBatch* batch, size_t index);
  void SendInput(absl::string_view input, int qos, OutboundBatch* batch,
                 size_t index);
  void SendTwinResponse(int status, absl::string_view rid, int64_t version,
                        absl::string_view body);
  // The granted QoS of the first subscription of `kind`, or -1.
  int GrantFor(FilterKind kind) const;
  uint16_t NextPacketId();

  const SessionOptions options_;
  SessionHost* const host_;
  const Clock* const clock_;
  SessionScratch* const scratch_;
  State state_ = State::kAwaitConnect;
  SessionEnd end_ = SessionEnd::kOpen;
  const char* error_ = "";
  size_t error_offset_ = 0;
  int64_t opened_micros_;
  int64_t last_packet_micros_;
  Identity identity_;
  // A gateway identity: may publish for identities in its scope, and its
  // messages' hop counts ($.hops) are kept.
  bool is_gateway_ = false;
  bool clean_session_ = true;
  uint16_t keep_alive_secs_ = 0;
  std::vector<Subscription> subscriptions_;
  absl::flat_hash_map<uint16_t, Inflight> inflight_;
  size_t inflight_deliveries_ = 0;  // inflight_ entries with a batch
  // Allocated on first use: an empty std::deque costs ~600 bytes, and most
  // connections (idle devices) never wait for the window.
  std::unique_ptr<std::deque<Waiting>> waiting_;
  // PUBLISHes answered in order: a queued admission (not ready until
  // Admitted), or a PUBACK that waits behind one. packet_id 0: nothing to
  // send (QoS 0). Allocated on first use.
  struct PendingAck {
    uint16_t packet_id;
    bool queued;  // waits for Admitted
    bool ready;
  };
  std::unique_ptr<std::deque<PendingAck>> pending_acks_;
  size_t queued_admissions_ = 0;
  uint16_t next_packet_id_ = 1;
  absl::flat_hash_set<uint64_t> redeliveries_;
};

}  // namespace mqtt
}  // namespace gateway
}  // namespace edgeroute

#endif  // EDGEROUTE_GATEWAY_MQTT_SESSION_H_
