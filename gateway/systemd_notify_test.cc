#include "gateway/systemd_notify.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "gtest/gtest.h"

namespace edgeroute {
namespace gateway {
namespace {

// A datagram socket standing in for systemd's notification socket.
class FakeSystemd {
 public:
  FakeSystemd() {
    // Under /tmp: TEST_TMPDIR can be longer than sun_path allows.
    char dir[] = "/tmp/edgeroute-notify-XXXXXX";
    EXPECT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    path_ = dir_ + "/notify";
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un address = {};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path_.c_str(), sizeof(address.sun_path) - 1);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)),
              0);
    timeval timeout = {5, 0};  // bounded: a missing datagram fails the test
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    setenv("NOTIFY_SOCKET", path_.c_str(), 1);
  }
  ~FakeSystemd() {
    unsetenv("NOTIFY_SOCKET");
    close(fd_);
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }
  std::string Receive() {
    char buffer[256];
    const ssize_t n = recv(fd_, buffer, sizeof(buffer), 0);
    return n < 0 ? std::string("(nothing)") : std::string(buffer, n);
  }

 private:
  std::string dir_;
  std::string path_;
  int fd_ = -1;
};

TEST(SystemdNotifier, SendsReadyStoppingAndWatchdog) {
  FakeSystemd systemd;
  setenv("WATCHDOG_USEC", "3000000", 1);
  setenv("WATCHDOG_PID", std::to_string(getpid()).c_str(), 1);
  SystemdNotifier notifier;
  unsetenv("WATCHDOG_USEC");
  unsetenv("WATCHDOG_PID");
  EXPECT_EQ(notifier.watchdog_interval(), absl::Milliseconds(1500));
  notifier.Ready();
  EXPECT_EQ(systemd.Receive(), "READY=1");
  notifier.WatchdogPing();
  EXPECT_EQ(systemd.Receive(), "WATCHDOG=1");
  notifier.Stopping();
  EXPECT_EQ(systemd.Receive(), "STOPPING=1");
}

TEST(SystemdNotifier, WatchdogOfAnotherProcessIsIgnored) {
  setenv("WATCHDOG_USEC", "3000000", 1);
  setenv("WATCHDOG_PID", std::to_string(getpid() + 1).c_str(), 1);
  SystemdNotifier notifier;
  unsetenv("WATCHDOG_USEC");
  unsetenv("WATCHDOG_PID");
  EXPECT_EQ(notifier.watchdog_interval(), absl::ZeroDuration());
}

TEST(SystemdNotifier, OutsideSystemdDoesNothing) {
  unsetenv("NOTIFY_SOCKET");
  SystemdNotifier notifier;
  EXPECT_EQ(notifier.watchdog_interval(), absl::ZeroDuration());
  notifier.Ready();  // no socket: must neither fail nor block
  notifier.WatchdogPing();
  notifier.Stopping();
}

}  // namespace
}  // namespace gateway
}  // namespace edgeroute
