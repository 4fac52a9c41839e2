#include "gateway/test_socket.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace edgeroute {
namespace gateway {
namespace {

void SetTimeouts(int fd, int timeout_ms) {
  timeval tv{};
  tv.tv_sec = timeout_ms / 1000;
  tv.tv_usec = (timeout_ms % 1000) * 1000;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

absl::Status Errno(absl::string_view what) {
  return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(errno)));
}

}  // namespace

absl::StatusOr<TestSocket> TestSocket::ConnectTcp(int port, int timeout_ms) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    absl::Status s = Errno("connect");
    close(fd);
    return s;
  }
  SetTimeouts(fd, timeout_ms);
  return TestSocket(fd);
}

absl::StatusOr<TestSocket> TestSocket::ConnectUnix(absl::string_view path,
                                                   int timeout_ms) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    close(fd);
    return absl::InvalidArgumentError("path too long");
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    absl::Status s = Errno("connect");
    close(fd);
    return s;
  }
  SetTimeouts(fd, timeout_ms);
  return TestSocket(fd);
}

TestSocket& TestSocket::operator=(TestSocket&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

TestSocket::~TestSocket() {
  if (fd_ >= 0) close(fd_);
}

absl::Status TestSocket::Write(absl::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("send");
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status TestSocket::ReadExactly(char* out, size_t n) {
  while (n > 0) {
    const ssize_t r = recv(fd_, out, n, 0);
    if (r == 0) return absl::UnavailableError("EOF");
    if (r < 0) {
      if (errno == EINTR) continue;
      return Errno("recv");
    }
    out += r;
    n -= static_cast<size_t>(r);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> TestSocket::ReadFrame() {
  unsigned char prefix[4];
  absl::Status s = ReadExactly(reinterpret_cast<char*>(prefix), 4);
  if (!s.ok()) return s;
  const uint32_t length = prefix[0] | (prefix[1] << 8) | (prefix[2] << 16) |
                          (static_cast<uint32_t>(prefix[3]) << 24);
  std::string payload(length, '\0');
  s = ReadExactly(payload.data(), length);
  if (!s.ok()) return s;
  return payload;
}

bool TestSocket::ReadsEof(size_t max_bytes) {
  char buf[65536];
  size_t total = 0;
  while (total <= max_bytes) {
    const ssize_t r = recv(fd_, buf, sizeof(buf), 0);
    if (r == 0) return true;
    if (r < 0) {
      if (errno == EINTR) continue;
      // A reset after the gateway closed with unread data counts as closed.
      return errno == ECONNRESET;
    }
    total += static_cast<size_t>(r);
  }
  return false;
}

void TestSocket::SetReceiveBuffer(int bytes) {
  setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
}

std::string TestSocketPath(absl::string_view name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  if (dir == nullptr) dir = std::getenv("TMPDIR");
  std::string file = absl::StrCat(name, ".", getpid(), ".sock");
  if (dir == nullptr) return file;  // relative to the current directory
  std::string path = absl::StrCat(dir, "/", file);
  if (path.size() < sizeof(sockaddr_un{}.sun_path)) return path;
  // Sandboxed test directories can be longer than sockaddr_un allows: work
  // in that directory and use a relative path (resolved at bind/connect).
  if (chdir(dir) == 0) return file;
  return path;
}

}  // namespace gateway
}  // namespace edgeroute
