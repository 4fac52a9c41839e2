#include "gateway/systemd_notify.h"

#include <systemd/sd-daemon.h>

#include <cstdint>

namespace edgeroute {
namespace gateway {

SystemdNotifier::SystemdNotifier() : watchdog_interval_(absl::ZeroDuration()) {
  uint64_t usec = 0;
  // unset_environment = 0: the gateway starts no children that could
  // mistake the variables for their own.
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
    watchdog_interval_ = absl::Microseconds(static_cast<int64_t>(usec / 2));
  }
}

// sd_notify's result is ignored on purpose: a lost notification is
// systemd's to report (start-up or watchdog timeout), and outside systemd
// there is nobody to tell.
void SystemdNotifier::Ready() { sd_notify(0, "READY=1"); }

void SystemdNotifier::Stopping() { sd_notify(0, "STOPPING=1"); }

void SystemdNotifier::WatchdogPing() {
  if (watchdog_interval_ > absl::ZeroDuration()) sd_notify(0, "WATCHDOG=1");
}

}  // namespace gateway
}  // namespace edgeroute
