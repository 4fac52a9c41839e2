#ifndef EDGEROUTE_GATEWAY_SYSTEMD_NOTIFY_H_
#define EDGEROUTE_GATEWAY_SYSTEMD_NOTIFY_H_

#include "absl/time/time.h"

namespace edgeroute {
namespace gateway {

// Tells systemd where `edgeroute run` is in its life cycle when it runs as a
// Type=notify service (packaging/edgeroute.service): READY=1 once every
// listener is up, WATCHDOG=1 while the process is alive, STOPPING=1 when a
// shutdown starts. Uses sd_notify(3) from libsystemd; outside systemd
// ($NOTIFY_SOCKET unset) every call does nothing.
//
// Thread-compatible; RunGateway owns one on its signal-handling thread.
class SystemdNotifier {
 public:
  // Reads $WATCHDOG_USEC (and $WATCHDOG_PID) once, via sd_watchdog_enabled.
  SystemdNotifier();

  void Ready();
  void Stopping();
  // Keeps the watchdog from firing. Call at least every watchdog_interval().
  void WatchdogPing();

  // How often to call WatchdogPing: half the watchdog timeout, as
  // sd_watchdog_enabled(3) advises; absl::ZeroDuration() without a watchdog.
  absl::Duration watchdog_interval() const { return watchdog_interval_; }

 private:
  absl::Duration watchdog_interval_;
};

}  // namespace gateway
}  // namespace edgeroute

#endif  // EDGEROUTE_GATEWAY_SYSTEMD_NOTIFY_H_
