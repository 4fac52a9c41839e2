// A blocking test client socket for the gateway's socket tests. Every read
// has a receive timeout, so a broken server fails a test instead of hanging
// it.

#ifndef EDGEROUTE_GATEWAY_TEST_SOCKET_H_
#define EDGEROUTE_GATEWAY_TEST_SOCKET_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace edgeroute {
namespace gateway {

class TestSocket {
 public:
  static absl::StatusOr<TestSocket> ConnectTcp(int port,
                                               int timeout_ms = 10000);
  static absl::StatusOr<TestSocket> ConnectUnix(absl::string_view path,
                                                int timeout_ms = 10000);
  TestSocket(TestSocket&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  TestSocket& operator=(TestSocket&& other) noexcept;
  ~TestSocket();

  absl::Status Write(absl::string_view bytes);
  // Reads one frame and returns its payload (not necessarily aligned; the
  // decoder copies when it is not).
  absl::StatusOr<std::string> ReadFrame();
  // True when the peer closed (EOF) before any further byte; reads and
  // discards bytes up to `max_bytes` first.
  bool ReadsEof(size_t max_bytes = 64u << 20);
  // Shrinks the kernel receive buffer (slow-consumer tests).
  void SetReceiveBuffer(int bytes);
  int fd() const { return fd_; }

 private:
  explicit TestSocket(int fd) : fd_(fd) {}
  absl::Status ReadExactly(char* out, size_t n);
  int fd_ = -1;
};

// A path for a Unix socket under TEST_TMPDIR (or /tmp when unset), short
// enough for sockaddr_un.
std::string TestSocketPath(absl::string_view name);

}  // namespace gateway
}  // namespace edgeroute

#endif  // EDGEROUTE_GATEWAY_TEST_SOCKET_H_
