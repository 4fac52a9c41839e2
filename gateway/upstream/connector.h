// The upstream connector: the router sink of the `$upstream` endpoint when
// `edgeroute run` is given --upstream. It keeps one MQTT connection (through
// libmosquitto) to a broker or a parent hub and publishes every message the
// router hands it at QoS 1; a message is delivered when its PUBACK arrives.
//
// Store-and-forward uses the router's own mechanism, not a second queue: the
// connector is the endpoint's sink only while it is connected. While it is
// not, the endpoint has no sink and its messages wait in the router (in the
// store when there is one), with the router's TTL and priority rules; a
// batch in flight when the connection drops is completed with kRetry (after
// the PUBACKed ones), so the router sends it again. When the connection
// returns the sink is set again and the queue drains, highest priority
// first.
//
// Threads: one thread of its own drives libmosquitto (connect, TLS, reads,
// writes, keep-alive) with poll() on the socket and an eventfd, so every
// libmosquitto call and every PUBACK is handled on that thread; the router's
// executor only hands a batch over (under a mutex, then a write to the
// eventfd). Connects go to the URLs in turn, with exponential backoff and
// jitter between failures. With iothub:// and a key, the SAS token
// (valid for UpstreamOptions::token_lifetime) is renewed by reconnecting
// after 80% of its lifetime; PUBLISHes in flight get until 90% to be
// acknowledged, so the new token is in use before the old one expires.
//
// Backlog: what waits for the upstream is the router's (or the store's)
// count for the endpoint, read through Router::GetMetrics; the connector
// keeps no count of its own.
//
// In flight: at most min(max_in_flight, the broker's receive maximum, the
// router's batch size) PUBLISHes wait for their PUBACK.
//
// Thread-safety: Start/Stop from one control thread; metrics and backlog
// from any.

#ifndef EDGEROUTE_GATEWAY_UPSTREAM_CONNECTOR_H_
#define EDGEROUTE_GATEWAY_UPSTREAM_CONNECTOR_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gateway/upstream/options.h"
#include "router/router.h"

namespace edgeroute {
namespace gateway {
namespace upstream {

struct UpstreamMetrics {
  bool connected = false;
  // Successful CONNACKs after the first one.
  uint64_t reconnects = 0;
  // Connection attempts that failed (refused, unreachable, timed out).
  uint64_t connect_failures = 0;
  uint64_t in_flight = 0;
  uint64_t sent = 0;          // PUBLISHes handed to libmosquitto
  uint64_t acknowledged = 0;  // PUBACKs with a success reason code
  uint64_t dropped_hop_limit = 0;
  uint64_t rejected = 0;  // not expressible in MQTT, or refused by a PUBACK
  // The URL connected to now (its index in UpstreamOptions::urls), -1 when
  // not connected.
  int url_index = -1;
};

// What waits for the upstream: the `$upstream` endpoint's queue as the
// router (or, with a store, the store) counts it -- messages queued or in
// flight, not yet acknowledged.
struct UpstreamBacklog {
  // By priority level: index 0-9 for priorities 0-9, index
  // router::kDefaultPriorityLevel for the default priority.
  uint64_t by_priority[router::kPriorityLevels] = {};
  // Age of the oldest message waiting (0 when none).
  absl::Duration oldest_age;
};

class ConnectorImpl;

class UpstreamConnector {
 public:
  // Checks the options (ValidateUpstreamOptions), reads nothing yet.
  // `router` must outlive the connector; `endpoint_id` is the endpoint it
  // becomes the sink of ("iothub" for $upstream).
  static absl::StatusOr<std::unique_ptr<UpstreamConnector>> Create(
      const UpstreamOptions& options, router::Router* router,
      absl::string_view endpoint_id);
  // Stops if still running.
  ~UpstreamConnector();
  UpstreamConnector(const UpstreamConnector&) = delete;
  UpstreamConnector& operator=(const UpstreamConnector&) = delete;

  // Starts connecting (on the connector's thread).
  void Start();
  // Disconnects, completes a batch in flight with kRetry, removes the sink
  // and joins the thread. Idempotent.
  void Stop();

  // The connector's own counters: cheap, for polling.
  UpstreamMetrics GetMetrics() const;
  // The backlog, from the router's endpoint metrics (no second count):
  // takes the router's metrics lock and, with a store, reads its
  // statistics. Control plane.
  UpstreamBacklog GetBacklog() const;
  // Both in Prometheus text format (edgeroute_upstream_*).
  std::string PrometheusText() const;

 private:
  explicit UpstreamConnector(std::unique_ptr<ConnectorImpl> impl);
  std::unique_ptr<ConnectorImpl> impl_;
};

}  // namespace upstream
}  // namespace gateway
}  // namespace edgeroute

#endif  // EDGEROUTE_GATEWAY_UPSTREAM_CONNECTOR_H_
