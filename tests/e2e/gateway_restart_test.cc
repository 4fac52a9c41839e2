// The gateway process (`edgeroute run`) is killed with SIGKILL and restarted
// on the same store directory. Every message whose TelemetryAck the sender
// got was in the store when the ack left (Router::Send in store mode), so
// the module must receive all of them after the restart, in order.
//
// Waits are bounded polls with generous deadlines: a loaded machine makes
// the test slower, never wrong.

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gateway/client.h"
#include "gtest/gtest.h"
#include "message/message.h"

namespace edgeroute {
namespace gateway {
namespace {

constexpr char kDevice[] = "edge-e2e";
constexpr char kManifest[] = R"json({
  "schemaVersion": "1.1",
  "routes": {
    "toReceiver": "FROM /messages/modules/sender/outputs/out INTO BrokeredEndpoint(\"/modules/receiver/inputs/in\")"
  },
  "storeAndForwardConfiguration": {"timeToLiveSecs": 7200}
})json";
constexpr int kMessages = 2000;
// Bound on one blocking client call and on waiting for the gateway to come
// up; far above what any healthy run needs.
constexpr int kTimeoutMs = 60000;

std::string EdgeroutePath() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir == nullptr) return "tools/edgeroute";
  return absl::StrCat(srcdir, "/",
                      workspace != nullptr ? workspace : "edgeroute",
                      "/tools/edgeroute");
}

// A directory of its own under TEST_TMPDIR, or under the system temporary
// directory when TEST_TMPDIR is too long for a Unix socket path (108 bytes).
std::string MakeTestDir() {
  const char* test_tmp = std::getenv("TEST_TMPDIR");
  std::string base = test_tmp != nullptr
                         ? std::string(test_tmp)
                         : std::filesystem::temp_directory_path().string();
  if (base.size() > 70) base = std::filesystem::temp_directory_path().string();
  std::string pattern = absl::StrCat(base, "/e2e-XXXXXX");
  if (mkdtemp(pattern.data()) == nullptr) return "";
  return pattern;
}

absl::Span<const uint8_t> NumberedMessage(MessageBuilder* builder, int n) {
  builder->Clear();
  builder->SetBody(absl::StrCat("{\"n\":", n, "}"));
  builder->AddProperty("n", absl::StrCat(n));
  return builder->Finish();
}

int NumberOf(const MessageView& message) {
  int n = -1;
  if (!absl::SimpleAtoi(message.FindProperty("n").value, &n)) return -1;
  return n;
}

// `edgeroute run` as a child process; SIGKILLed on destruction if still up.
class GatewayProcess {
 public:
  GatewayProcess(std::string manifest, std::string store, std::string socket)
      : manifest_(std::move(manifest)),
        store_(std::move(store)),
        socket_(std::move(socket)) {}
  ~GatewayProcess() {
    if (pid_ > 0) Kill();
  }

  bool Start() {
    const std::string binary = EdgeroutePath();
    const std::string listen = absl::StrCat("unix:", socket_);
    std::vector<const char*> argv = {
        binary.c_str(), "run",          "--manifest", manifest_.c_str(),
        "--store",      store_.c_str(), "--listen",   listen.c_str(),
        "--device",     kDevice,        nullptr};
    pid_ = fork();
    if (pid_ == 0) {
      execv(binary.c_str(), const_cast<char* const*>(argv.data()));
      _exit(127);
    }
    return pid_ > 0;
  }

  // Connects and says Hello, retrying until the gateway listens. nullptr
  // (after a test failure) if the process died or the deadline passed.
  std::unique_ptr<Client> Connect(absl::string_view module) {
    ClientOptions options;
    options.timeout_ms = kTimeoutMs;
    const absl::Time deadline = absl::Now() + absl::Milliseconds(kTimeoutMs);
    absl::Status last;
    while (absl::Now() < deadline) {
      int wstatus = 0;
      if (waitpid(pid_, &wstatus, WNOHANG) == pid_) {
        pid_ = -1;
        ADD_FAILURE() << "gateway exited with status " << wstatus;
        return nullptr;
      }
      auto client = Client::Connect(absl::StrCat("unix:", socket_), options);
      if (client.ok()) {
        last = (*client)->Hello(kDevice, module);
        if (last.ok()) return std::move(*client);
      } else {
        last = client.status();
      }
      absl::SleepFor(absl::Milliseconds(20));  // poll interval, not a wait
    }
    ADD_FAILURE() << "gateway not reachable on " << socket_ << ": " << last;
    return nullptr;
  }

  void Kill() {
    kill(pid_, SIGKILL);
    int wstatus = 0;
    waitpid(pid_, &wstatus, 0);
    pid_ = -1;
  }

  // SIGTERM and wait; the exit status (-1 if it did not exit normally).
  int Terminate() {
    kill(pid_, SIGTERM);
    int wstatus = 0;
    waitpid(pid_, &wstatus, 0);
    pid_ = -1;
    return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
  }

 private:
  const std::string manifest_;
  const std::string store_;
  const std::string socket_;
  pid_t pid_ = -1;
};

class GatewayRestartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTestDir();
    ASSERT_FALSE(dir_.empty());
    const std::string manifest = dir_ + "/manifest.json";
    FILE* f = std::fopen(manifest.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs(kManifest, f);
    std::fclose(f);
    const std::string binary = EdgeroutePath();
    ASSERT_EQ(access(binary.c_str(), X_OK), 0) << binary;
    gateway_ = std::make_unique<GatewayProcess>(manifest, dir_ + "/store",
                                                dir_ + "/gw.sock");
    ASSERT_TRUE(gateway_->Start());
  }
  void TearDown() override {
    gateway_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  // Sends kMessages numbered 0.. from module "sender" and waits for every
  // TelemetryAck; all must be admissions, not refusals.
  void SendAllAndWaitForAcks() {
    std::unique_ptr<Client> sender = gateway_->Connect("sender");
    ASSERT_NE(sender, nullptr);
    MessageBuilder builder;
    for (int n = 0; n < kMessages; ++n) {
      ASSERT_TRUE(
          sender->SendTelemetry("out", NumberedMessage(&builder, n), true)
              .ok());
    }
    absl::Status acks = sender->WaitForAcks(kMessages);
    ASSERT_TRUE(acks.ok()) << acks;
    ASSERT_EQ(sender->acks_refused(), 0u);
  }

  // Connects "receiver", subscribes and acks deliveries until message
  // kMessages - 1 arrived; returns the numbers in arrival order.
  std::vector<int> ReceiveUntilLast() {
    std::vector<int> numbers;
    std::unique_ptr<Client> receiver = gateway_->Connect("receiver");
    EXPECT_NE(receiver, nullptr);
    if (receiver == nullptr) return numbers;
    EXPECT_TRUE(receiver->Subscribe({"in"}).ok());
    while (numbers.empty() || numbers.back() != kMessages - 1) {
      auto d = receiver->Receive(kTimeoutMs);
      EXPECT_TRUE(d.ok()) << "after " << numbers.size()
                          << " deliveries: " << d.status();
      if (!d.ok()) break;
      numbers.push_back(NumberOf(d->message));
      EXPECT_TRUE(receiver->Ack(d->delivery_id).ok());
    }
    EXPECT_TRUE(receiver->Flush().ok());
    return numbers;
  }

  std::string dir_;
  std::unique_ptr<GatewayProcess> gateway_;
};

TEST_F(GatewayRestartTest, AckedMessagesForAnOfflineModuleSurviveSigkill) {
  ASSERT_NO_FATAL_FAILURE(SendAllAndWaitForAcks());
  gateway_->Kill();
  ASSERT_TRUE(gateway_->Start());

  const std::vector<int> numbers = ReceiveUntilLast();
  // The receiver was never connected before the kill, so nothing was
  // delivered then, and it acks every delivery after the restart: at least
  // once leaves no room for a repeat here. Exactly 0..N-1, in order.
  ASSERT_EQ(numbers.size(), static_cast<size_t>(kMessages));
  for (int n = 0; n < kMessages; ++n) {
    ASSERT_EQ(numbers[n], n) << "at position " << n;
  }
  EXPECT_EQ(gateway_->Terminate(), 0);
}

TEST_F(GatewayRestartTest, UnackedDeliveriesComeAgainAfterSigkill) {
  // The receiver is connected and subscribed while the sender publishes; it
  // acks messages 0..kAcked-1, holds message kAcked without answering, and
  // the gateway dies.
  constexpr int kAcked = 250;
  {
    std::unique_ptr<Client> receiver = gateway_->Connect("receiver");
    ASSERT_NE(receiver, nullptr);
    ASSERT_TRUE(receiver->Subscribe({"in"}).ok());
    ASSERT_NO_FATAL_FAILURE(SendAllAndWaitForAcks());
    for (int n = 0; n <= kAcked; ++n) {
      auto d = receiver->Receive(kTimeoutMs);
      ASSERT_TRUE(d.ok()) << d.status();
      ASSERT_EQ(NumberOf(d->message), n);
      if (n < kAcked) {
        ASSERT_TRUE(receiver->Ack(d->delivery_id).ok());
      }
    }
    ASSERT_TRUE(receiver->Flush().ok());
    gateway_->Kill();
  }
  ASSERT_TRUE(gateway_->Start());

  const std::vector<int> numbers = ReceiveUntilLast();
  ASSERT_FALSE(numbers.empty());
  // At least once: the acks of 0..kAcked-1 may not have reached the store's
  // checkpoint before the kill, so delivery may start again anywhere at or
  // below kAcked (those repeats are what at-least-once permits). From there
  // it must be contiguous and in order up to the last message: nothing from
  // kAcked on is lost, nothing is repeated within the run.
  const int first = numbers.front();
  RecordProperty("redelivered_after_ack", kAcked - first);
  EXPECT_GE(first, 0);
  EXPECT_LE(first, kAcked);
  ASSERT_EQ(numbers.size(), static_cast<size_t>(kMessages - first));
  for (size_t i = 0; i < numbers.size(); ++i) {
    ASSERT_EQ(numbers[i], first + static_cast<int>(i)) << "at position " << i;
  }
  EXPECT_EQ(gateway_->Terminate(), 0);
}

}  // namespace
}  // namespace gateway
}  // namespace edgeroute
