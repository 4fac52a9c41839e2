#include "gateway/event_loop.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gateway/test_socket.h"
#include "gtest/gtest.h"

namespace edgeroute {
namespace gateway {
namespace {

constexpr std::chrono::seconds kWait(20);

std::string Frame(absl::string_view payload) {
  std::string out;
  FrameEncoder::AppendRaw(
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(payload.data()),
                          payload.size()),
      &out);
  return out;
}

class NullHandler : public LoopHandler {
  void OnOpen(ConnectionId) override {}
  bool OnFrame(ConnectionId, absl::Span<const uint8_t>) override {
    return true;
  }
  void OnBadPrefix(ConnectionId, SplitResult) override {}
  void OnClose(ConnectionId, CloseReason) override {}
};

// Echoes frames; "more" queues 256 KiB of output; "close" closes.
class EchoHandler : public LoopHandler {
 public:
  void set_loop(EventLoop* loop) { loop_ = loop; }

  void OnOpen(ConnectionId id) override {
    const PeerInfo* peer = loop_->Peer(id);
    ASSERT_NE(peer, nullptr);
    std::lock_guard<std::mutex> lock(mu_);
    ++opened_;
    peers_.push_back(*peer);
  }
  bool OnFrame(ConnectionId id, absl::Span<const uint8_t> payload) override {
    absl::string_view text(reinterpret_cast<const char*>(payload.data()),
                           payload.size());
    if (text == "close") return false;
    std::string* out = loop_->BeginSend(id);
    if (out == nullptr) return true;
    if (text == "more") {
      const std::string big(256 << 10, 'b');
      out->append(Frame(big));
    } else {
      out->append(Frame(text));
    }
    loop_->EndSend(id);
    return true;
  }
  void OnBadPrefix(ConnectionId id, SplitResult why) override {
    std::string* out = loop_->BeginSend(id);
    ASSERT_NE(out, nullptr);
    out->append(Frame(why == SplitResult::kTooLarge ? "too-large" : "empty"));
    loop_->EndSend(id);
  }
  void OnClose(ConnectionId, CloseReason reason) override {
    std::lock_guard<std::mutex> lock(mu_);
    reasons_.push_back(reason);
    cv_.notify_all();
  }

  // Waits (bounded) until some connection closed with `reason`.
  bool WaitForClose(CloseReason reason) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kWait, [&] {
      for (CloseReason r : reasons_) {
        if (r == reason) return true;
      }
      return false;
    });
  }
  int opened() {
    std::lock_guard<std::mutex> lock(mu_);
    return opened_;
  }
  std::vector<PeerInfo> peers() {
    std::lock_guard<std::mutex> lock(mu_);
    return peers_;
  }

 private:
  EventLoop* loop_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  int opened_ = 0;
  std::vector<PeerInfo> peers_;
  std::vector<CloseReason> reasons_;
};

class EventLoopTest : public ::testing::TestWithParam<IoBackend> {
 protected:
  void Start(LoopOptions options = {}) {
    options.backend = GetParam();
    auto loop = EventLoop::Create(options, &handler_);
    ASSERT_TRUE(loop.ok()) << loop.status();
    loop_ = std::move(*loop);
    ASSERT_EQ(loop_->backend(), GetParam());
    handler_.set_loop(loop_.get());
    auto port = loop_->ListenTcp("127.0.0.1", 0);
    ASSERT_TRUE(port.ok()) << port.status();
    port_ = *port;
    unix_path_ =
        TestSocketPath(absl::StrCat("loop", static_cast<int>(GetParam())));
    ASSERT_TRUE(loop_->ListenUnix(unix_path_).ok());
    thread_ = std::thread([this] { loop_->Run(); });
  }
  void TearDown() override {
    if (thread_.joinable()) {
      loop_->Stop();
      thread_.join();
    }
  }

  EchoHandler handler_;
  std::unique_ptr<EventLoop> loop_;
  std::thread thread_;
  int port_ = 0;
  std::string unix_path_;
};

TEST_P(EventLoopTest, EchoesFramesOverTcpAndUnix) {
  Start();
  auto tcp = TestSocket::ConnectTcp(port_);
  ASSERT_TRUE(tcp.ok()) << tcp.status();
  auto unix_socket = TestSocket::ConnectUnix(unix_path_);
  ASSERT_TRUE(unix_socket.ok()) << unix_socket.status();
  // Many frames in one write, and one frame split over many writes.
  std::string burst;
  for (int i = 0; i < 100; ++i) burst += Frame(absl::StrCat("frame-", i));
  ASSERT_TRUE(tcp->Write(burst).ok());
  const std::string split = Frame(std::string(200000, 's'));
  for (size_t i = 0; i < split.size(); i += 7001) {
    absl::Status w =
        unix_socket->Write(absl::string_view(split).substr(i, 7001));
    ASSERT_TRUE(w.ok()) << w << " at " << i;
  }
  for (int i = 0; i < 100; ++i) {
    auto frame = tcp->ReadFrame();
    ASSERT_TRUE(frame.ok()) << frame.status();
    EXPECT_EQ(*frame, absl::StrCat("frame-", i));
  }
  auto big = unix_socket->ReadFrame();
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ(*big, std::string(200000, 's'));
  EXPECT_EQ(handler_.opened(), 2);
}

TEST_P(EventLoopTest, OversizedPrefixGetsAnswerThenClose) {
  LoopOptions options;
  options.max_frame_bytes = 1000;
  Start(options);
  auto client = TestSocket::ConnectTcp(port_);
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(client->Write(Frame("ok")).ok());
  ASSERT_TRUE(client->Write("\xff\xff\xff\x7f").ok());
  EXPECT_EQ(*client->ReadFrame(), "ok");
  EXPECT_EQ(*client->ReadFrame(), "too-large");
  EXPECT_TRUE(client->ReadsEof());
  EXPECT_TRUE(handler_.WaitForClose(CloseReason::kBadFrame));
}

TEST_P(EventLoopTest, ZeroLengthPrefixIsRejected) {
  Start();
  auto client = TestSocket::ConnectUnix(unix_path_);
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(client->Write(std::string(4, '\0')).ok());
  EXPECT_EQ(*client->ReadFrame(), "empty");
  EXPECT_TRUE(client->ReadsEof());
}

TEST_P(EventLoopTest, HandlerCloseFlushesQueuedOutputFirst) {
  Start();
  auto client = TestSocket::ConnectTcp(port_);
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(
      client->Write(Frame("last words") + Frame("close") + Frame("ignored"))
          .ok());
  EXPECT_EQ(*client->ReadFrame(), "last words");
  EXPECT_TRUE(client->ReadsEof(0));
  EXPECT_TRUE(handler_.WaitForClose(CloseReason::kByHandler));
}

TEST_P(EventLoopTest, PeerCloseIsReported) {
  Start();
  {
    auto client = TestSocket::ConnectTcp(port_);
    ASSERT_TRUE(client.ok());
    ASSERT_TRUE(client->Write(Frame("hi")).ok());
    EXPECT_EQ(*client->ReadFrame(), "hi");
  }
  EXPECT_TRUE(handler_.WaitForClose(CloseReason::kPeerClosed));
}

TEST_P(EventLoopTest, SlowConsumerIsDisconnectedWithoutStallingOthers) {
  LoopOptions options;
  options.max_send_queue_bytes = 1u << 20;
  Start(options);
  auto slow = TestSocket::ConnectTcp(port_);
  ASSERT_TRUE(slow.ok());
  slow->SetReceiveBuffer(4096);
  // Ask for up to 64 MiB and never read it.
  std::string requests;
  for (int i = 0; i < 256; ++i) requests += Frame("more");
  ASSERT_TRUE(slow->Write(requests).ok());

  // Another client is served meanwhile.
  auto fast = TestSocket::ConnectUnix(unix_path_);
  ASSERT_TRUE(fast.ok());
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(fast->Write(Frame(absl::StrCat("ping", i))).ok());
    auto reply = fast->ReadFrame();
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ(*reply, absl::StrCat("ping", i));
  }
  EXPECT_TRUE(handler_.WaitForClose(CloseReason::kSlowConsumer));
  EXPECT_TRUE(slow->ReadsEof());
}

TEST_P(EventLoopTest, PostRunsOnTheLoopThread) {
  Start();
  std::promise<std::thread::id> ran_on;
  std::future<std::thread::id> result = ran_on.get_future();
  loop_->Post([&] { ran_on.set_value(std::this_thread::get_id()); });
  ASSERT_EQ(result.wait_for(kWait), std::future_status::ready);
  EXPECT_EQ(result.get(), thread_.get_id());
}

TEST_P(EventLoopTest, PeerReportsLoopbackAddresses) {
  Start();
  auto tcp = TestSocket::ConnectTcp(port_);
  ASSERT_TRUE(tcp.ok());
  ASSERT_TRUE(tcp->Write(Frame("peer")).ok());
  EXPECT_EQ(*tcp->ReadFrame(), "peer");
  auto unix_socket = TestSocket::ConnectUnix(unix_path_);
  ASSERT_TRUE(unix_socket.ok());
  ASSERT_TRUE(unix_socket->Write(Frame("peer")).ok());
  EXPECT_EQ(*unix_socket->ReadFrame(), "peer");
  const std::vector<PeerInfo> peers = handler_.peers();
  ASSERT_EQ(peers.size(), 2u);
  sockaddr_in local{};
  socklen_t len = sizeof(local);
  ASSERT_EQ(getsockname(tcp->fd(), reinterpret_cast<sockaddr*>(&local), &len),
            0);
  EXPECT_EQ(peers[0].address,
            absl::StrCat("127.0.0.1:", ntohs(local.sin_port)));
  EXPECT_TRUE(peers[0].loopback);
  EXPECT_FALSE(peers[0].tls);
  EXPECT_EQ(peers[1].address, absl::StrCat("unix:", unix_path_));
  EXPECT_TRUE(peers[1].loopback);
  EXPECT_FALSE(peers[1].tls);
}

TEST_P(EventLoopTest, TlsListenerWithoutContextIsPlain) {
  LoopOptions options;
  options.backend = GetParam();
  NullHandler handler;
  auto loop = EventLoop::Create(options, &handler);
  ASSERT_TRUE(loop.ok());
  auto port = (*loop)->ListenTcp("127.0.0.1", 0, nullptr);
  ASSERT_TRUE(port.ok()) << port.status();
  EXPECT_GT(*port, 0);
}

// ---------------------------------------------------------------------------
// Stream mode. The test protocol: a packet is one length byte L and L bytes;
// the handler consumes whole packets only and echoes each one.

class PacketHandler : public LoopHandler {
 public:
  void set_loop(EventLoop* loop) { loop_ = loop; }

  void OnOpen(ConnectionId) override {}
  bool OnStream(ConnectionId id, absl::Span<const uint8_t> bytes,
                size_t* consumed) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++calls_;
      // Every call sees what an earlier one left unconsumed, plus new bytes.
      largest_offer_ = std::max(largest_offer_, bytes.size());
      offered_.push_back(bytes.size());
      cv_.notify_all();
    }
    size_t used = 0;
    while (used < bytes.size() && used + 1 + bytes[used] <= bytes.size()) {
      const size_t length = bytes[used];
      absl::string_view packet(reinterpret_cast<const char*>(&bytes[used]),
                               1 + length);
      if (packet.substr(1) == "close") {
        *consumed = used + 1 + length;
        return false;
      }
      std::string* out = loop_->BeginSend(id);
      if (out == nullptr) break;
      out->append(packet.data(), packet.size());
      loop_->EndSend(id);
      used += 1 + length;
    }
    *consumed = used;
    return true;
  }
  void OnTick() override {
    std::lock_guard<std::mutex> lock(mu_);
    ++ticks_;
    tick_thread_ = std::this_thread::get_id();
    cv_.notify_all();
  }
  void OnClose(ConnectionId, CloseReason reason) override {
    std::lock_guard<std::mutex> lock(mu_);
    reasons_.push_back(reason);
    cv_.notify_all();
  }

  template <typename Pred>
  bool WaitFor(Pred pred) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kWait, [&] { return pred(); });
  }
  bool WaitForClose(CloseReason reason) {
    return WaitFor([&] {
      return std::find(reasons_.begin(), reasons_.end(), reason) !=
             reasons_.end();
    });
  }

  std::mutex mu_;
  std::condition_variable cv_;
  int calls_ = 0;
  size_t largest_offer_ = 0;
  std::vector<size_t> offered_;
  int ticks_ = 0;
  std::thread::id tick_thread_;
  std::vector<CloseReason> reasons_;

 private:
  EventLoop* loop_ = nullptr;
};

// Reads exactly `n` bytes from `socket` (bounded by its receive timeout).
absl::StatusOr<std::string> ReadBytes(TestSocket& socket, size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    const ssize_t r = recv(socket.fd(), &out[got], n - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      return absl::UnavailableError(
          absl::StrCat("read ", got, " of ", n, ": ",
                       r == 0 ? "EOF" : std::strerror(errno)));
    }
    got += static_cast<size_t>(r);
  }
  return out;
}

std::string Packet(absl::string_view body) {
  return std::string(1, static_cast<char>(body.size())) + std::string(body);
}

class StreamLoopTest : public ::testing::TestWithParam<IoBackend> {
 protected:
  void Start(LoopOptions options = {}) {
    options.backend = GetParam();
    options.framing = Framing::kStream;
    auto loop = EventLoop::Create(options, &handler_);
    ASSERT_TRUE(loop.ok()) << loop.status();
    loop_ = std::move(*loop);
    handler_.set_loop(loop_.get());
    auto port = loop_->ListenTcp("127.0.0.1", 0);
    ASSERT_TRUE(port.ok()) << port.status();
    port_ = *port;
    thread_ = std::thread([this] { loop_->Run(); });
  }
  void TearDown() override {
    if (thread_.joinable()) {
      loop_->Stop();
      thread_.join();
    }
  }

  PacketHandler handler_;
  std::unique_ptr<EventLoop> loop_;
  std::thread thread_;
  int port_ = 0;
};

TEST_P(StreamLoopTest, KeepsUnconsumedBytesAcrossReads) {
  Start();
  auto client = TestSocket::ConnectTcp(port_);
  ASSERT_TRUE(client.ok());
  // One and a half packets, then the rest of the second and a third.
  const std::string first = Packet("alpha");
  const std::string second = Packet("bravo-bravo");
  const std::string third = Packet("charlie");
  ASSERT_TRUE(client->Write(first + second.substr(0, 4)).ok());
  auto echo = ReadBytes(*client, first.size());
  ASSERT_TRUE(echo.ok()) << echo.status();
  EXPECT_EQ(*echo, first);
  // The handler was offered the whole first write and kept its tail.
  ASSERT_TRUE(handler_.WaitFor(
      [&] { return handler_.largest_offer_ >= first.size() + 4; }));
  ASSERT_TRUE(client->Write(second.substr(4) + third).ok());
  echo = ReadBytes(*client, second.size() + third.size());
  ASSERT_TRUE(echo.ok()) << echo.status();
  EXPECT_EQ(*echo, second + third);
}

TEST_P(StreamLoopTest, PacketSplitByteByByte) {
  Start();
  auto client = TestSocket::ConnectTcp(port_);
  ASSERT_TRUE(client.ok());
  const std::string packet = Packet("split into single bytes");
  for (size_t i = 0; i < packet.size(); ++i) {
    ASSERT_TRUE(client->Write(packet.substr(i, 1)).ok());
    // Wait until the loop has offered this byte (and all before it, kept
    // unconsumed) before sending the next.
    ASSERT_TRUE(handler_.WaitFor([&] {
      return !handler_.offered_.empty() && handler_.offered_.back() == i + 1;
    })) << "byte "
        << i;
  }
  auto echo = ReadBytes(*client, packet.size());
  ASSERT_TRUE(echo.ok()) << echo.status();
  EXPECT_EQ(*echo, packet);
  std::lock_guard<std::mutex> lock(handler_.mu_);
  EXPECT_EQ(handler_.calls_, static_cast<int>(packet.size()));
}

TEST_P(StreamLoopTest, UnconsumedBytesOverTheBoundClose) {
  LoopOptions options;
  options.max_frame_bytes = 100;
  Start(options);
  // Exactly at the bound (max_frame_bytes + 16 = 116 unconsumed): kept.
  auto at_bound = TestSocket::ConnectTcp(port_);
  ASSERT_TRUE(at_bound.ok());
  // Announces 255 bytes; 200 follow, so the handler never consumes any.
  const std::string big = "\xff" + std::string(200, 'x');
  ASSERT_TRUE(at_bound->Write(big.substr(0, 116)).ok());
  ASSERT_TRUE(handler_.WaitFor([&] { return handler_.largest_offer_ == 116; }));
  ASSERT_TRUE(at_bound->Write(big.substr(116)).ok());
  // ... one byte more is not: the connection closes with kBadFrame.
  EXPECT_TRUE(at_bound->ReadsEof());
  EXPECT_TRUE(handler_.WaitForClose(CloseReason::kBadFrame));
  {
    std::lock_guard<std::mutex> lock(handler_.mu_);
    EXPECT_EQ(handler_.reasons_.size(), 1u);
  }
  // A packet that fits the bound goes through, even split.
  auto ok = TestSocket::ConnectTcp(port_);
  ASSERT_TRUE(ok.ok());
  const std::string fits = Packet(std::string(115, 'y'));
  ASSERT_TRUE(ok->Write(fits.substr(0, 50)).ok());
  ASSERT_TRUE(ok->Write(fits.substr(50)).ok());
  auto echo = ReadBytes(*ok, fits.size());
  ASSERT_TRUE(echo.ok()) << echo.status();
  EXPECT_EQ(*echo, fits);
}

TEST_P(StreamLoopTest, HandlerCloseFlushesFirst) {
  Start();
  auto client = TestSocket::ConnectTcp(port_);
  ASSERT_TRUE(client.ok());
  const std::string last = Packet("last");
  ASSERT_TRUE(client->Write(last + Packet("close") + Packet("never")).ok());
  auto echo = ReadBytes(*client, last.size());
  ASSERT_TRUE(echo.ok()) << echo.status();
  EXPECT_EQ(*echo, last);
  EXPECT_TRUE(client->ReadsEof(0));
  EXPECT_TRUE(handler_.WaitForClose(CloseReason::kByHandler));
}

TEST_P(StreamLoopTest, TicksFireOnTheLoopThread) {
  LoopOptions options;
  options.tick_interval_ms = 5;
  Start(options);
  ASSERT_TRUE(handler_.WaitFor([&] { return handler_.ticks_ >= 5; }));
  std::lock_guard<std::mutex> lock(handler_.mu_);
  EXPECT_EQ(handler_.tick_thread_, thread_.get_id());
}

TEST_P(StreamLoopTest, NoTicksWithoutAnInterval) {
  Start();
  auto client = TestSocket::ConnectTcp(port_);
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(client->Write(Packet("x")).ok());
  ASSERT_TRUE(ReadBytes(*client, 2).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::lock_guard<std::mutex> lock(handler_.mu_);
  EXPECT_EQ(handler_.ticks_, 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, StreamLoopTest,
                         ::testing::Values(IoBackend::kIoUring,
                                           IoBackend::kEpoll),
                         [](const auto& info) {
                           return std::string(IoBackendName(info.param));
                         });

INSTANTIATE_TEST_SUITE_P(Backends, EventLoopTest,
                         ::testing::Values(IoBackend::kIoUring,
                                           IoBackend::kEpoll),
                         [](const auto& info) {
                           return std::string(IoBackendName(info.param));
                         });

TEST(EventLoopBackendTest, EnvironmentForcesEpoll) {
  NullHandler handler;
  ASSERT_EQ(setenv("EDGEROUTE_IO_BACKEND", "epoll", 1), 0);
  auto loop = EventLoop::Create(LoopOptions{}, &handler);
  unsetenv("EDGEROUTE_IO_BACKEND");
  ASSERT_TRUE(loop.ok());
  EXPECT_EQ((*loop)->backend(), IoBackend::kEpoll);
  auto auto_loop = EventLoop::Create(LoopOptions{}, &handler);
  ASSERT_TRUE(auto_loop.ok());
  // This machine has io_uring; kAuto picks it without the variable.
  EXPECT_EQ((*auto_loop)->backend(), IoBackend::kIoUring);
}

TEST(EventLoopBackendTest, UnixListenerRefusesToReplaceARegularFile) {
  NullHandler handler;
  auto loop = EventLoop::Create(LoopOptions{}, &handler);
  ASSERT_TRUE(loop.ok());
  const std::string path = TestSocketPath("regular");
  FILE* f = fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fclose(f);
  absl::Status s = (*loop)->ListenUnix(path);
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << s;
  unlink(path.c_str());
}

}  // namespace
}  // namespace gateway
}  // namespace edgeroute
