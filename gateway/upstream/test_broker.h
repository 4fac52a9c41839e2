// Debian's mosquitto broker as a child process on a loopback port, for
// tests and benchmarks of the upstream connector: plain TCP, anonymous, no
// persistence. Stop and Start again keep the port.
// Thread-safety: none (one test thread).

#ifndef EDGEROUTE_GATEWAY_UPSTREAM_TEST_BROKER_H_
#define EDGEROUTE_GATEWAY_UPSTREAM_TEST_BROKER_H_

#include <sys/types.h>

#include <string>

#include "absl/status/status.h"

namespace edgeroute {
namespace gateway {
namespace upstream {

class TestBroker {
 public:
  // `max_inflight`: mosquitto's max_inflight_messages (its MQTT 5 receive
  // maximum). Picks a free port; starts nothing yet.
  explicit TestBroker(int max_inflight = 100);
  ~TestBroker();
  TestBroker(const TestBroker&) = delete;
  TestBroker& operator=(const TestBroker&) = delete;

  // Starts mosquitto ($MOSQUITTO, then PATH, then /usr/sbin) and waits (up
  // to 15 s) until it accepts connections. Output goes to /dev/null.
  absl::Status Start();
  // SIGTERM and wait. No-op when not running.
  void Stop();
  int port() const { return port_; }

 private:
  int port_ = -1;
  std::string config_;
  pid_t pid_ = -1;
};

}  // namespace upstream
}  // namespace gateway
}  // namespace edgeroute

#endif  // EDGEROUTE_GATEWAY_UPSTREAM_TEST_BROKER_H_
