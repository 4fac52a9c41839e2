// `edgeroute demo`: the store-and-forward story told by a running gateway.
//
// RunDemo starts a Gateway on a loopback port with a RocksDB store and the
// manifest of examples/demo-manifest.json (embedded in the binary):
//
//   sensor --temperature--> filter module --alerts (priority 0, TTL 2 s)--->
//   $upstream
//                                         \-readings (priority 5)---------/
//
// and three clients over real sockets: a simulated temperature sensor and
// the filter module (splits readings into alerts and bulk readings), both
// MQTT modules as IoT Edge runs them (MQTT 3.1.1 over TLS in the IoT Hub
// dialect, signed in with SAS tokens from an identities file; libmosquitto
// clients; the CA, certificates and keys are made at start and removed at
// the end), and a simulated upstream on the native protocol. Timeline (S =
// options.seconds): normal for S/4; the upstream disconnects for max(0.35
// S, 3.5 s) while the backlog piles up in the store and some alerts pass their
// TTL; it reconnects and the backlog drains, alerts first. A progress line is
// printed twice a second, then a report per route and endpoint and the checks
// (PASS/FAIL):
//   * priority: after the reconnect, every backlog alert was delivered before
//     all but at most two batches of the bulk backlog (one batch retried
//     from before the disconnect, one in flight). The backlog is what was
//     in the upstream queue at the reconnect, i.e. forwards the filter had
//     seen acknowledged by then; readings the sensor sent earlier but the
//     filter forwarded later (it lags under load) are counted apart;
//   * nothing acknowledged lost: every reading the gateway acknowledged
//     reached the upstream, except those counted as expired by TTL;
//   * TTL expiry: some alerts expired, and no alert reached the upstream
//     later than its TTL (plus a 0.5 s margin) after it entered the upstream
//     queue (when the filter saw its TelemetryAck);
//   * the store drained: no queue holds messages at the end, and after the
//     gateway shut down and the store's cleanup ran no payload is left.
// The router's expiry counters miss references the store skips in
// ReadAfter, so expiry is judged from the readings' forward times instead and
// the counters are printed alongside.
//
// Thread-safety: RunDemo may run concurrently with itself (each run has its
// own gateway, port and store).

#ifndef EDGEROUTE_GATEWAY_DEMO_H_
#define EDGEROUTE_GATEWAY_DEMO_H_

#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "gateway/event_loop.h"

namespace edgeroute {
namespace gateway {

struct DemoOptions {
  // Readings the sensor sends, spread evenly over the sending time.
  int messages = 20000;
  // Planned duration in seconds (>= 6; draining may add a little).
  int seconds = 20;
  // Store directory; empty = a fresh temporary directory removed at the end.
  std::string store_dir;
  IoBackend backend = IoBackend::kAuto;
  // Where the story is printed (not owned). Progress lines are rewritten in
  // place with '\r' only when it is a terminal.
  std::FILE* out = stdout;
};

struct DemoCheck {
  std::string name;
  bool passed = false;
  std::string detail;
};

struct DemoReport {
  std::vector<DemoCheck> checks;
  // Readings sent by the sensor and acknowledged (admitted) by the gateway.
  uint64_t sent = 0;
  uint64_t acknowledged = 0;
  // Distinct readings that reached the upstream, and extra copies of them
  // (at-least-once redeliveries after the disconnect).
  uint64_t delivered_upstream = 0;
  uint64_t duplicates_upstream = 0;
  // Readings that did not reach the upstream because their TTL passed while
  // it was away (alerts forwarded more than the TTL before the reconnect).
  uint64_t expired = 0;
  // Alerts whose TTL passed after the reconnect, while the backlog drained.
  uint64_t expired_in_drain = 0;
  // The same as counted by the router and the store (EndpointMetrics::expired
  // + Store::Stats::expired); may be lower, see RunDemo.
  uint64_t expired_counted = 0;
  // Backlog (in the upstream queue when the upstream came back) alerts and
  // bulk readings delivered after the reconnect.
  uint64_t backlog_alerts = 0;
  uint64_t backlog_bulk = 0;
  // Readings sent before the reconnect that entered the upstream queue only
  // after it (still in the filter's input queue then).
  uint64_t backlog_late = 0;

  bool passed() const;
  const DemoCheck* Find(absl::string_view name) const;
};

// The manifest the demo runs (examples/demo-manifest.json).
absl::string_view DemoManifest();

// Runs the demo. An error status means it could not run (e.g. no socket);
// a failed check is reported in DemoReport::checks.
absl::StatusOr<DemoReport> RunDemo(const DemoOptions& options);

}  // namespace gateway
}  // namespace edgeroute

#endif  // EDGEROUTE_GATEWAY_DEMO_H_
