#include "gateway/event_loop.h"

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

// Echoes frames; "more" queues 256 KiB of output; "close" closes.
class EchoHandler : public LoopHandler {
 public:
  void set_loop(EventLoop* loop) { loop_ = loop; }

  void OnOpen(ConnectionId) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++opened_;
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

 private:
  EventLoop* loop_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  int opened_ = 0;
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

INSTANTIATE_TEST_SUITE_P(Backends, EventLoopTest,
                         ::testing::Values(IoBackend::kIoUring,
                                           IoBackend::kEpoll),
                         [](const auto& info) {
                           return std::string(IoBackendName(info.param));
                         });

class NullHandler : public LoopHandler {
  void OnOpen(ConnectionId) override {}
  bool OnFrame(ConnectionId, absl::Span<const uint8_t>) override {
    return true;
  }
  void OnBadPrefix(ConnectionId, SplitResult) override {}
  void OnClose(ConnectionId, CloseReason) override {}
};

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
