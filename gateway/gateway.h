// The reference gateway: two protocol heads -- the native protocol server
// (server.h) and the MQTT head in the IoT Hub dialect (mqtt/mqtt_server.h) --
// in front of an embedded Router (router/router.h), with identities
// (auth/identities.h) and twins (twins/twin_store.h).
//
//   * Telemetry from a connected module or device is stamped with its
//     identity and sent to the router (TelemetryAck or, over MQTT, PUBACK
//     reports admission).
//   * `BrokeredEndpoint("/modules/{m}/inputs/{i}")` endpoints (router
//     endpoint ids "{device_id}/{m}/{i}") deliver over the connection of
//     module {m} that subscribed to {i}, in order, acks completing each
//     message -- over whichever head the module subscribed on (an MQTT
//     subscription to all inputs covers every input the routes name). While
//     the module is not connected the endpoint has no sink and its messages
//     wait (in the store when one is configured); they drain when it
//     subscribes again.
//   * `$upstream` (endpoint "iothub") delivers to the connections subscribed
//     to "$upstream", each message identity (connectionDeviceId
//     [/connectionModuleId]) sticking to one of them -- unless an upstream
//     connector is configured (GatewayOptions::upstream): then it is the
//     endpoint's sink, publishing to an MQTT broker or a parent hub
//     (upstream/connector.h).
//   * Prometheus metrics (router + gateway) over HTTP on a loopback port.
//
//   * Twins: desired properties from each module's entry in the manifest,
//     reported properties kept in the store directory; a manifest reload
//     sends changed desired properties to the MQTT modules subscribed.
//
// RunGateway adds the process life cycle: SIGTERM/SIGINT shut down
// gracefully (stop accepting, drain the router, close connections), SIGHUP
// re-reads the manifest (and the identities file) and swaps the routes. A
// started Gateway also reloads by itself when the manifest or identities
// file changes (manifest_watch).

#ifndef EDGEROUTE_GATEWAY_GATEWAY_H_
#define EDGEROUTE_GATEWAY_GATEWAY_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gateway/event_loop.h"
#include "gateway/manifest_watcher.h"
#include "gateway/mqtt/mqtt_server.h"
#include "gateway/server.h"
#include "gateway/upstream/options.h"
#include "router/router.h"
#include "store/store.h"

namespace edgeroute {
namespace gateway {

struct GatewayOptions {
  // Deployment manifest (whole, or the `$edgeHub` desired properties), read
  // at start and again on SIGHUP / Reload() / a change of the file.
  // Required unless `manifest_json` is set.
  std::string manifest_path;
  // Reload when the manifest file changes (after Start, with
  // manifest_path): kAuto watches its directory with inotify (so a file
  // replaced by rename is seen), falling back to polling every
  // kManifestPollInterval; kPoll always polls; kOff only reloads on SIGHUP /
  // Reload(). Changes settle for kManifestDebounce first, and a file whose
  // text equals the last one read is not applied again. A new manifest
  // that does not compile is refused with a log line; the old routes stay.
  ManifestWatch manifest_watch = ManifestWatch::kAuto;
  // The manifest text itself (used when manifest_path is empty).
  std::string manifest_json;
  // The edge device id: module endpoints are "{device_id}/{module}/{input}",
  // and modules say this device id in their Hello.
  std::string device_id = "edge-gateway";

  // Listeners. TCP binds to loopback by default; port 0 picks a free port,
  // -1 disables TCP. An empty unix_path disables the Unix socket.
  std::string tcp_host = "127.0.0.1";
  int tcp_port = 7411;
  std::string unix_path;
  // Prometheus metrics: GET /metrics on metrics_host:metrics_port (0 = any
  // free port, -1 = off).
  std::string metrics_host = "127.0.0.1";
  int metrics_port = -1;

  // MQTT listeners (IPv4 host and port; port 0 picks a free one). Empty:
  // no MQTT head.
  std::vector<mqtt::MqttListener> mqtt_listeners;
  // TLS: the server certificate chain and key (PEM). When set, every MQTT
  // listener speaks TLS only. tls_client_ca_path (optional): clients are
  // asked for certificates, which X.509 identities need.
  std::string tls_cert_path;
  std::string tls_key_path;
  std::string tls_client_ca_path;
  // The native protocol's TCP listener speaks TLS too, with the same
  // certificate and client CA. REQUIRES tls_cert_path and tls_key_path.
  bool native_tls = false;
  // The identities file (auth/identities.h): who may connect, with which
  // SAS keys or certificates, over MQTT and (when given) the native
  // protocol. Reloaded with the manifest (SIGHUP, Reload(), file changes);
  // a file with errors is refused with its line and column and the old
  // identities stay. Empty: MQTT accepts any identity, which Create refuses
  // unless every MQTT listener is on loopback.
  std::string identities_path;
  // Largest message payload accepted over MQTT (edgeHub's default 256 KiB).
  size_t max_message_bytes = mqtt::kDefaultMaxMessageBytes;

  // Store-and-forward directory; empty = in-memory queues only. Twins'
  // reported properties and saved MQTT sessions are kept below it
  // ("twins/", "mqtt-sessions/").
  std::string store_dir;
  // The store's size limit (StoreOptions::max_bytes; 0 = unlimited). Unset:
  // the manifest's storeAndForwardConfiguration.storeLimits.maxSizeBytes,
  // unlimited without one (ChooseStoreLimit). Fixed when the store opens: a
  // reload does not change it. What happens at the limit, and whether an
  // acknowledged message survives a power cut, follow store_full_policy
  // and store_durability (store/options.h).
  std::optional<uint64_t> store_max_bytes;
  store::FullPolicy store_full_policy = store::FullPolicy::kReject;
  store::Durability store_durability = store::Durability::kProcess;
  // For fault-injection tests only: the store's RocksDB environment
  // (StoreOptions::env, e.g. store/fault_fs.h's full disk). Not owned.
  rocksdb::Env* store_env = nullptr;

  IoBackend backend = IoBackend::kAuto;
  size_t max_frame_bytes = kDefaultMaxFrameBytes;
  size_t max_send_queue_bytes = 4u << 20;
  size_t max_unacked_deliveries = 1000;
  // Open connections per protocol head (native, MQTT) at most; beyond it a
  // connection gets the head's "busy" answer (Error{kOverloaded}, CONNACK 3)
  // and is closed.
  size_t max_connections = kDefaultMaxConnections;
  // A delivery to a module (or "$upstream" subscriber) not acknowledged
  // within this time goes back to its queue for a retry (edgeHub's 30 s);
  // zero waits forever.
  absl::Duration ack_timeout = absl::Seconds(30);
  // A connection that has not completed its CONNECT or Hello (the TLS
  // handshake included) within this time is closed, on every listener
  // (ServerOptions::hello_timeout, mqtt::SessionOptions::
  // connect_timeout_micros), so that sockets that connect and then say
  // nothing, or half a packet, cannot pile up. Must be positive.
  absl::Duration connect_timeout = absl::Seconds(10);
  int dispatch_workers = 2;
  // The router's executor threads, shared by every endpoint (module inputs,
  // $upstream); 0 = one per hardware thread, at most 8
  // (RouterOptions::executor_threads).
  int executor_threads = 0;
  // With a store, telemetry is admitted to the router on a thread of its
  // own, so that a store append never stalls the sockets; up to this many
  // message bytes wait for it (ServerOptions::admission_queue_bytes).
  // 0 = admit on the I/O thread. Without a store admission never waits for
  // long and always runs on the I/O thread.
  size_t admission_queue_bytes = 1u << 20;

  // The upstream connector (`--upstream`): with URLs, `$upstream` goes to an
  // MQTT broker or a parent hub instead of native "$upstream" subscribers.
  // Its device_id and log are filled in from the gateway's.
  upstream::UpstreamOptions upstream;

  // Called by RunGateway once everything listens (bound ports known).
  std::function<void(int tcp_port, int metrics_port)> on_ready;
};

// The store limit that applies and where it came from: `flag_bytes`
// (GatewayOptions::store_max_bytes, `--store-max-bytes`) wins over
// `manifest_bytes` (storeLimits.maxSizeBytes); neither = unlimited.
struct StoreLimit {
  uint64_t max_bytes = 0;  // 0 = unlimited
  std::string source;      // e.g. "--store-max-bytes"
};
StoreLimit ChooseStoreLimit(std::optional<uint64_t> flag_bytes,
                            std::optional<int64_t> manifest_bytes);

class GatewayImpl;

// Thread-safety: all methods may be called from any thread.
class Gateway {
 public:
  // Reads the manifest, opens the store, creates the router and binds the
  // listeners. Does not accept connections until Start.
  static absl::StatusOr<std::unique_ptr<Gateway>> Create(
      const GatewayOptions& options);
  // Shuts down if still running.
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  absl::Status Start();
  // Re-reads the manifest (manifest_path) and swaps the route table, sends
  // changed desired properties to subscribed modules, and re-reads the
  // identities file. On error the old routes (or identities) stay and the
  // error lists every problem. The file watchers go through the same paths.
  absl::Status Reload();
  // Manifest reloads so far (SIGHUP, Reload() and file changes): applied,
  // and refused (unreadable file or a manifest with errors).
  struct ReloadCounts {
    uint64_t applied = 0;
    uint64_t refused = 0;
  };
  ReloadCounts reload_counts() const;
  // Stops accepting, drains what the router holds (up to its close
  // timeout), closes every connection and joins all threads. Idempotent.
  absl::Status Shutdown();

  int tcp_port() const;
  // The bound MQTT ports, in GatewayOptions::mqtt_listeners order.
  std::vector<int> mqtt_ports() const;
  int metrics_port() const;
  IoBackend backend() const;
  // Router and gateway metrics in Prometheus text format.
  std::string PrometheusText() const;
  // The embedded router's counters (Router::GetMetrics).
  router::RouterMetrics RouterMetricsSnapshot() const;
  // The store's counters (Store::GetStats); FailedPrecondition without a
  // store. Messages the store skips as expired when the router reads them
  // are counted here (Stats::expired), not in EndpointMetrics::expired.
  absl::StatusOr<store::Store::Stats> StoreStats() const;
  // Runs the store's cleanup now (Store::RunCleanup, compacting what it
  // deleted): delivered and expired references and payloads nobody
  // references are removed. Otherwise it runs every 30 s in the background.
  // Also valid after Shutdown (the store closes with the Gateway).
  // FailedPrecondition without a store.
  absl::Status CleanUpStore();
  // Waits until everything sent so far was delivered or the timeout passed
  // (Router::WaitIdle). For tests and benchmarks.
  absl::Status WaitIdle(int timeout_ms);

 private:
  explicit Gateway(std::unique_ptr<GatewayImpl> impl);
  std::unique_ptr<GatewayImpl> impl_;
};

// Runs a gateway until SIGTERM or SIGINT (graceful shutdown); SIGHUP
// reloads the manifest. Logs one line per event on stderr. Returns the
// first error (start-up or shutdown), OK after a clean shutdown.
// Blocks SIGTERM/SIGINT/SIGHUP in the calling thread (and in threads it
// starts) and waits for them with sigwait; call it from the main thread
// before starting other threads.
absl::Status RunGateway(const GatewayOptions& options);

}  // namespace gateway
}  // namespace edgeroute

#endif  // EDGEROUTE_GATEWAY_GATEWAY_H_
