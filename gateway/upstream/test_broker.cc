#include "gateway/upstream/test_broker.h"

#include <fcntl.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "absl/strings/str_cat.h"

extern char** environ;

namespace edgeroute {
namespace gateway {
namespace upstream {

TestBroker::TestBroker(int max_inflight) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port_ = ntohs(addr.sin_port);
  }
  close(fd);
  const char* tmp = std::getenv("TEST_TMPDIR");
  config_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/test_broker.",
                         getpid(), ".", port_, ".conf");
  if (FILE* f = std::fopen(config_.c_str(), "w")) {
    // As root, mosquitto would switch to its own user, which the test
    // sandbox does not allow: stay who we are.
    const passwd* user = getpwuid(getuid());
    std::fprintf(f,
                 "listener %d 127.0.0.1\nallow_anonymous true\n"
                 "max_inflight_messages %d\nmax_queued_messages 0\n"
                 "log_dest none\nuser %s\n",
                 port_, max_inflight, user != nullptr ? user->pw_name : "root");
    std::fclose(f);
  }
}

TestBroker::~TestBroker() {
  Stop();
  unlink(config_.c_str());
}

absl::Status TestBroker::Start() {
  if (pid_ > 0) return absl::OkStatus();
  if (port_ <= 0) return absl::InternalError("no free loopback port");
  mosquitto_lib_init();
  const char* const candidates[] = {std::getenv("MOSQUITTO"), "mosquitto",
                                    "/usr/sbin/mosquitto"};
  for (const char* binary : candidates) {
    if (binary == nullptr) continue;
    char* argv[] = {const_cast<char*>(binary), const_cast<char*>("-c"),
                    const_cast<char*>(config_.c_str()), nullptr};
    // Not the caller's stdout/stderr: a broker left behind by a crash must
    // not hold its pipes open.
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    const int spawned =
        posix_spawnp(&pid, binary, &actions, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    if (spawned != 0) continue;
    mosquitto* probe = mosquitto_new(nullptr, true, nullptr);
    bool up = false;
    for (int i = 0; i < 1500 && !up; ++i) {
      up = mosquitto_connect(probe, "127.0.0.1", port_, 60) == MOSQ_ERR_SUCCESS;
      if (up) mosquitto_disconnect(probe);
      if (!up) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) break;  // it exited
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    mosquitto_destroy(probe);
    if (up) {
      pid_ = pid;
      return absl::OkStatus();
    }
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  return absl::UnavailableError("mosquitto did not start (is it installed?)");
}

void TestBroker::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

}  // namespace upstream
}  // namespace gateway
}  // namespace edgeroute
