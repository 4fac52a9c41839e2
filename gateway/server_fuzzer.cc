// libFuzzer target for the native protocol's session: any bytes, as a client
// would send them over a connection, into a real gateway::Server (its event
// loop, framing, decoder, sessions, subscriptions, deliveries and acks).
// Build and run with scripts/fuzz.sh server; the checked-in corpus
// (fuzz_corpus/server/, seeds made by server_fuzz_seeds.py) is replayed by
// //gateway:server_fuzzer_replay_test.
//
// Input: one options byte, then the byte stream. Bit 0 of the options byte
// picks the server that admits telemetry on an admission thread of its own
// (ServerOptions::admission_queue_bytes, so producers can be paused) instead
// of on the loop thread. The stream is written to a fresh Unix-socket
// connection while the server's answers are read, then the write side is
// shut down and everything up to the server's close is read.
//
// Checks, beyond "no crash, no sanitizer report":
//   * the server closes the connection once the client's stream ends (no
//     hang: a bounded wait);
//   * everything it sends is whole, valid frames of the server-to-client
//     kinds (HelloAck, Deliver, TelemetryAck, Error), and nothing follows an
//     Error;
//   * every delivery the hooks hand over is completed exactly once, and all
//     of them by the time the connection is gone;
//   * no connection stays open afterwards.

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gateway/protocol.h"
#include "gateway/server.h"
#include "message/message.h"

namespace edgeroute {
namespace gateway {
namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "server_fuzzer: check failed: %s\n", what);
    __builtin_trap();
  }
}

// Bounds on waiting for the server; far beyond what a healthy server needs.
constexpr auto kCloseWait = std::chrono::seconds(10);

// Messages handed to Server::Deliver; each index must complete once.
class FuzzBatch final : public OutboundBatch {
 public:
  FuzzBatch(size_t n, std::atomic<int>* outstanding)
      : outstanding_(outstanding) {
    for (size_t i = 0; i < n; ++i) {
      MessageBuilder b;
      b.SetBody(std::string(i % 4, 'x'));
      b.AddSystemProperty("messageId", std::to_string(i));
      b.AddProperty("k", "v");
      const absl::Span<const uint8_t> bytes = b.Finish();
      buffers_.emplace_back(reinterpret_cast<const char*>(bytes.data()),
                            bytes.size());
    }
    done_ = std::make_unique<std::atomic<bool>[]>(n);
    for (size_t i = 0; i < n; ++i) done_[i] = false;
    outstanding_->fetch_add(static_cast<int>(n));
  }
  size_t size() const override { return buffers_.size(); }
  MessageView message(size_t i) const override {
    Check(i < buffers_.size() && !done_[i], "message read after completion");
    const std::string& b = buffers_[i];
    return MessageView::FromTrustedBytes(absl::MakeConstSpan(
        reinterpret_cast<const uint8_t*>(b.data()), b.size()));
  }
  void Complete(size_t i, DeliveryResult) override {
    Check(i < buffers_.size(), "completed index out of range");
    Check(!done_[i].exchange(true), "completed twice");
    outstanding_->fetch_sub(1);
  }

 private:
  std::vector<std::string> buffers_;
  std::unique_ptr<std::atomic<bool>[]> done_;
  std::atomic<int>* outstanding_;
};

// Stands in for the router: admits telemetry (refusing some), and delivers
// a few messages to every new subscription from a thread of its own, as the
// router's executors do.
class FuzzHooks final : public ServerHooks {
 public:
  FuzzHooks() : worker_([this] { Work(); }) {}
  ~FuzzHooks() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }
  void set_server(Server* server) { server_ = server; }

  fb::ErrorCode OnTelemetry(const Identity& from, absl::string_view output,
                            const MessageView& message) override {
    // The stamped message verifies like any message from outside.
    Check(MessageView::Verify(message.bytes()).ok(), "stamped message");
    Check(!from.device_id.empty(), "telemetry before Hello");
    (void)output;
    if (message.body().size() == 13) return fb::ErrorCode::kOverloaded;
    return fb::ErrorCode::kUnknown;
  }
  void OnSubscription(const Identity& identity, absl::string_view input,
                      bool active) override {
    if (!active) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      work_.emplace_back(identity, std::string(input));
    }
    cv_.notify_all();
  }

  // Waits until every delivery handed over so far has completed.
  bool WaitAllCompleted() {
    const auto deadline = std::chrono::steady_clock::now() + kCloseWait;
    while (std::chrono::steady_clock::now() < deadline) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (work_.empty() && !busy_ && outstanding_.load() == 0) {
          batches_.clear();
          return true;
        }
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    return false;
  }

 private:
  void Work() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      cv_.wait(lock, [this] { return stop_ || !work_.empty(); });
      if (stop_) return;
      std::pair<Identity, std::string> w = std::move(work_.front());
      work_.pop_front();
      busy_ = true;
      batches_.push_back(std::make_unique<FuzzBatch>(3, &outstanding_));
      FuzzBatch* batch = batches_.back().get();
      lock.unlock();
      server_->Deliver(w.first, w.second, batch);
      lock.lock();
      busy_ = false;
    }
  }

  Server* server_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<Identity, std::string>> work_;
  std::vector<std::unique_ptr<FuzzBatch>> batches_;
  std::atomic<int> outstanding_{0};
  bool busy_ = false;
  bool stop_ = false;
  std::thread worker_;  // last: starts after the members it uses
};

struct FuzzServer {
  std::string path;
  std::unique_ptr<FuzzHooks> hooks;
  std::unique_ptr<Server> server;
};

std::unique_ptr<FuzzServer> StartServer(const std::string& dir,
                                        const char* name, bool admission) {
  auto s = std::make_unique<FuzzServer>();
  s->path = dir + "/" + name;
  s->hooks = std::make_unique<FuzzHooks>();
  ServerOptions options;
  options.tcp_port = -1;
  options.unix_path = s->path;
  options.loop.backend = IoBackend::kEpoll;
  // Small bounds, so that fuzzed streams reach them.
  options.loop.max_frame_bytes = 64u << 10;
  options.max_unacked_deliveries = 2;
  options.max_subscriptions = 4;
  options.admission_queue_bytes = admission ? 256 : 0;
  auto server = Server::Create(options, s->hooks.get());
  Check(server.ok(), "Server::Create");
  s->server = std::move(*server);
  s->hooks->set_server(s->server.get());
  Check(s->server->Start().ok(), "Server::Start");
  return s;
}

struct Servers {
  std::unique_ptr<FuzzServer> inline_admission;
  std::unique_ptr<FuzzServer> threaded_admission;
};

Servers& GetServers() {
  static Servers* servers = [] {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string dir = std::string(base != nullptr ? base : "/tmp");
    if (dir.size() > 60) dir = "/tmp";  // a socket path holds 107 bytes
    dir += "/srvfuzz-XXXXXX";
    Check(mkdtemp(dir.data()) != nullptr, "mkdtemp");
    auto* s = new Servers;
    s->inline_admission = StartServer(dir, "a.sock", false);
    s->threaded_admission = StartServer(dir, "b.sock", true);
    return s;
  }();
  return *servers;
}

int ConnectUnix(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  Check(fd >= 0, "socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  Check(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0,
        "connect");
  Check(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0, "fcntl");
  return fd;
}

// Writes `stream` while reading the answers; then shuts down the write side
// and reads until the server closes. Returns everything the server sent.
std::string Exchange(int fd, absl::Span<const uint8_t> stream) {
  std::string received;
  size_t written = 0;
  bool write_open = true;
  const auto deadline = std::chrono::steady_clock::now() + kCloseWait;
  char buf[65536];
  while (true) {
    if (write_open && written == stream.size()) {
      shutdown(fd, SHUT_WR);
      write_open = false;
    }
    pollfd p{fd, static_cast<short>(POLLIN | (write_open ? POLLOUT : 0)), 0};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    Check(left.count() > 0, "the server did not close the connection");
    const int n = poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    Check(n >= 0, "poll");
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      const ssize_t r = recv(fd, buf, sizeof(buf), 0);
      if (r == 0) break;
      if (r < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        break;  // ECONNRESET: the server closed with our bytes unread
      }
      received.append(buf, static_cast<size_t>(r));
    }
    if (write_open && (p.revents & POLLOUT)) {
      const ssize_t w = send(fd, stream.data() + written,
                             stream.size() - written, MSG_NOSIGNAL);
      if (w > 0) {
        written += static_cast<size_t>(w);
      } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
        write_open = false;  // the server closed: stop writing, read the rest
      }
    }
  }
  return received;
}

// Everything the server sent must be whole, valid, server-to-client frames,
// with nothing after an Error.
void CheckAnswers(const std::string& received) {
  FrameDecoder decoder;
  absl::Span<const uint8_t> rest = absl::MakeConstSpan(
      reinterpret_cast<const uint8_t*>(received.data()), received.size());
  bool error_seen = false;
  while (!rest.empty()) {
    absl::Span<const uint8_t> payload;
    size_t consumed = 0;
    const SplitResult split =
        SplitFrame(rest, kDefaultMaxFrameBytes, &payload, &consumed);
    Check(split == SplitResult::kFrame, "the server sent a partial frame");
    DecodedFrame frame;
    DecodeError error;
    Check(decoder.Decode(payload, &frame, &error),
          "the server sent an invalid frame");
    Check(!error_seen, "a frame after an Error");
    switch (frame.type) {
      case fb::Body::HelloAck:
      case fb::Body::Deliver:
      case fb::Body::TelemetryAck:
        break;
      case fb::Body::Error:
        error_seen = true;
        break;
      default:
        Check(false, "the server sent a client-to-server frame");
    }
    rest.remove_prefix(consumed);
  }
}

}  // namespace
}  // namespace gateway
}  // namespace edgeroute

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace edgeroute::gateway;  // NOLINT(build/namespaces)
  if (size == 0) return 0;
  Servers& servers = GetServers();
  FuzzServer& s = (data[0] & 1) != 0 ? *servers.threaded_admission
                                     : *servers.inline_admission;
  const int fd = ConnectUnix(s.path);
  const std::string received =
      Exchange(fd, absl::MakeConstSpan(data + 1, size - 1));
  close(fd);
  CheckAnswers(received);
  // The server saw the close; every delivery it held is completed, and no
  // connection is left open.
  const auto deadline = std::chrono::steady_clock::now() + kCloseWait;
  while (s.server->stats().connections_open != 0) {
    Check(std::chrono::steady_clock::now() < deadline,
          "a connection stayed open after its client left");
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  Check(s.hooks->WaitAllCompleted(), "a delivery was never completed");
  return 0;
}
