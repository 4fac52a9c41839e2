// The MQTT 3.1.1 protocol head in the IoT Hub dialect: modules and leaf
// devices written with the Azure IoT SDKs (or any MQTT client) connect here.
// Same shape as gateway::Server (server.h), so the hub composes both alike:
//
//   Inbound: each telemetry PUBLISH becomes a message stamped with the
//   connection's proven identity (iothub.h) and goes to
//   ServerHooks::OnTelemetry; its PUBACK follows only once the hook admitted
//   it (with a store: once it is durable). A refused message closes the
//   connection without PUBACK, so the client sends it again.
//   Subscriptions: a module's input subscriptions are announced with
//   ServerHooks::OnSubscription(identity, input, active) -- one input by
//   name, or kAllInputs for devices/{d}/modules/{m}/inputs/# and
//   devices/{d}/modules/{m}/# -- once per identity, whichever connection
//   holds it.
//   Outbound: Deliver(target, input, batch) publishes each message on
//   devices/{d}/modules/{m}/inputs/{input}/{bag} to the connection of
//   `target`; the module's PUBACK completes it (kAcked), a closed connection
//   kRetry.
//   Twins through a TwinStore; desired-property patches with
//   PublishDesired. Authentication through an auth::IdentityRegistry.
//
// Sessions: one connection per identity (a newer CONNECT closes the older);
// CleanSession=0 sessions keep their subscriptions across reconnects, and
// with MqttServerOptions::session_dir across restarts (session_files.h).
//
// Each server runs one event loop thread (Framing::kStream), which also
// checks keep-alives and CONNECT deadlines once a second.

#ifndef EDGEROUTE_GATEWAY_MQTT_MQTT_SERVER_H_
#define EDGEROUTE_GATEWAY_MQTT_MQTT_SERVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/clock.h"
#include "gateway/auth/identities.h"
#include "gateway/event_loop.h"
#include "gateway/mqtt/session.h"
#include "gateway/server.h"
#include "gateway/twins/twin_store.h"

namespace edgeroute {
namespace gateway {
namespace mqtt {

// The `input` of ServerHooks::OnSubscription for a subscription to all of a
// module's inputs (no input of a route can be delivered under this name:
// '#' may not appear in an MQTT topic name).
inline constexpr absl::string_view kAllInputs = "#";

struct MqttListener {
  std::string host = "127.0.0.1";
  int port = 8883;  // 0 = any free port
};

// Whether `host` is a loopback address (127.0.0.0/8, ::1 or "localhost").
bool IsLoopbackHost(absl::string_view host);

struct MqttServerOptions {
  // Event loop settings. framing, max_frame_bytes and tick_interval_ms are
  // set by the server (stream, the session's packet limit, 1 s).
  LoopOptions loop;
  // TCP listeners (IPv4 hosts). At least one.
  std::vector<MqttListener> listeners;
  // With a context every listener speaks TLS only.
  std::shared_ptr<TlsServerContext> tls;
  // Protocol limits (largest message, in-flight window, ...).
  SessionOptions session;
  // Who may connect (SAS tokens, X.509). Null: any client id is accepted as
  // the identity it names -- allowed only when every listener is on
  // loopback (Create refuses otherwise).
  std::shared_ptr<const auth::IdentityRegistry> identities;
  // Twin GET/PATCH; null: GET answers empty twins, PATCH 500.
  twins::TwinStore* twins = nullptr;
  // The edge device whose modules DesiredPatch::module_id names.
  std::string device_id = "edge-gateway";
  // Where CleanSession=0 subscriptions are kept ("" = memory only).
  std::string session_dir;
  // 0: ServerHooks::OnTelemetry runs on the loop thread, and the loop waits
  // for it. Otherwise on an admission thread of the server's, in arrival
  // order, and each PUBACK follows when it returns (PUBACKs stay in order
  // per connection): a store append no longer stalls the sockets. Up to
  // this many message bytes wait for that thread; a producer whose message
  // finds them full is not read from until they are half empty again
  // (EventLoop::PauseReading: back-pressure through TCP on that producer
  // only; the loop never waits). The queue can exceed the bound by what
  // paused producers had already sent, at most a read's worth each.
  size_t admission_queue_bytes = 0;
  // Time for keep-alive and CONNECT deadlines (default: SystemClock()).
  const Clock* clock = nullptr;
  // One line per notable event: refused sign-ins (who, from where, which
  // CONNACK, why -- never a key, token or password), protocol errors,
  // take-overs. Called on the loop thread; null = stderr.
  std::function<void(absl::string_view)> log;
};

// Counters since Start (relaxed atomics: each value exact, the set not a
// snapshot).
struct MqttServerStats {
  uint64_t connections_accepted = 0;
  uint64_t connections_open = 0;
  uint64_t connects_accepted = 0;
  uint64_t connects_bad_credentials = 0;  // CONNACK 4
  uint64_t connects_not_authorized = 0;   // CONNACK 5
  uint64_t connects_refused_other = 0;    // CONNACK 1, 2, 3
  uint64_t telemetry_received = 0;
  uint64_t telemetry_refused = 0;  // not admitted by the hooks
  uint64_t producer_pauses = 0;    // producers paused by a full admission queue
  uint64_t deliveries_sent = 0;
  uint64_t deliveries_acked = 0;
  uint64_t deliveries_timed_out = 0;   // no PUBACK within the ack timeout
  uint64_t subscriptions_refused = 0;  // SUBACK 0x80
  uint64_t twin_requests = 0;
  uint64_t takeovers = 0;  // connections closed by a newer one
  // Refused at accept: over the connection limit, or no file descriptor.
  uint64_t connections_refused = 0;
  // Connections closed by the server, by reason.
  uint64_t protocol_errors = 0;  // malformed or unexpected packets
  uint64_t too_large = 0;
  uint64_t refused_publishes = 0;
  uint64_t qos2_closes = 0;
  uint64_t keep_alive_timeouts = 0;
  uint64_t connect_timeouts = 0;
  uint64_t slow_consumer_disconnects = 0;
};

class MqttServerImpl;

// Thread-safety: Create/Start/Stop from one controlling thread; Deliver,
// SetIdentities, PublishDesired, stats, PrometheusText and ports from any
// thread.
class MqttServer {
 public:
  // Binds the listeners; loads saved sessions. REQUIRES: hooks (and
  // options.twins) outlive the server.
  static absl::StatusOr<std::unique_ptr<MqttServer>> Create(
      const MqttServerOptions& options, ServerHooks* hooks);
  ~MqttServer();
  MqttServer(const MqttServer&) = delete;
  MqttServer& operator=(const MqttServer&) = delete;

  absl::Status Start();
  // Closes every connection (their deliveries complete with kRetry) and
  // joins the loop thread. Idempotent.
  void Stop();

  // The bound ports, in listener order.
  std::vector<int> ports() const;
  IoBackend backend() const;
  bool tls() const;

  // Delivers `batch` to `target`'s connection, on `input`. Messages that
  // have nowhere to go complete with kRetry. From the loop thread it runs
  // at once, otherwise it is posted to it.
  void Deliver(const Identity& target, absl::string_view input,
               OutboundBatch* batch);

  // Replaces the identities for the CONNECTs that follow (connections
  // already signed in stay). Null is refused (InvalidArgument) unless every
  // listener is on loopback.
  absl::Status SetIdentities(
      std::shared_ptr<const auth::IdentityRegistry> identities);

  // Sends each patch to its module (options.device_id/{module_id}) when it
  // is connected and subscribed to desired-property updates.
  void PublishDesired(std::vector<twins::DesiredPatch> patches);

  MqttServerStats stats() const;
  // The counters in Prometheus text format (edgeroute_mqtt_*).
  std::string PrometheusText() const;

 private:
  explicit MqttServer(std::unique_ptr<MqttServerImpl> impl);
  std::unique_ptr<MqttServerImpl> impl_;
};

}  // namespace mqtt
}  // namespace gateway
}  // namespace edgeroute

#endif  // EDGEROUTE_GATEWAY_MQTT_MQTT_SERVER_H_
