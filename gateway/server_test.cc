#include "gateway/server.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gateway/auth/identities.h"
#include "gateway/client.h"
#include "gateway/test_socket.h"
#include "gtest/gtest.h"

namespace edgeroute {
namespace gateway {
namespace {

constexpr std::chrono::seconds kWait(20);

absl::Span<const uint8_t> AsBytes(const std::string& s) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()),
                             s.size());
}

// A batch that owns one message and records how it ended.
class OwnedBatch : public OutboundBatch {
 public:
  explicit OwnedBatch(const MessageView& m)
      : storage_((m.bytes().size() + 7) / 8) {
    std::memcpy(storage_.data(), m.bytes().data(), m.bytes().size());
    view_ = MessageView::FromTrustedBytes(absl::MakeConstSpan(
        reinterpret_cast<const uint8_t*>(storage_.data()), m.bytes().size()));
  }
  size_t size() const override { return 1; }
  MessageView message(size_t) const override { return view_; }
  void Complete(size_t, DeliveryResult result) override;

  class Hooks* hooks = nullptr;

 private:
  std::vector<uint64_t> storage_;
  MessageView view_;
};

// Routes output "fwd" to module "b" input "input1" of device "dev", every
// other output to $upstream, and records everything.
class Hooks : public ServerHooks {
 public:
  Server* server = nullptr;
  // Written by the test thread, read on the loop thread.
  std::atomic<fb::ErrorCode> answer{fb::ErrorCode::kUnknown};

  fb::ErrorCode OnTelemetry(const Identity& from, absl::string_view output,
                            const MessageView& message) override {
    auto batch = std::make_unique<OwnedBatch>(message);
    batch->hooks = this;
    OwnedBatch* raw = batch.get();
    {
      std::lock_guard<std::mutex> lock(mu_);
      sources_.emplace_back(message.source());
      devices_.emplace_back(
          message.FindSystemProperty("connectionDeviceId").value);
      from_.push_back(
          absl::StrCat(from.device_id, "/", from.module_id, ":", output));
      batches_.push_back(std::move(batch));
    }
    const fb::ErrorCode refuse = answer.load();
    if (refuse != fb::ErrorCode::kUnknown) return refuse;
    if (output == "fwd") {
      server->Deliver(Identity{"dev", "b"}, "input1", raw);
    } else {
      server->Deliver(Identity(), kUpstreamInput, raw);
    }
    return fb::ErrorCode::kUnknown;
  }
  void OnSubscription(const Identity& identity, absl::string_view input,
                      bool active) override {
    std::lock_guard<std::mutex> lock(mu_);
    subscriptions_.push_back(absl::StrCat(active ? "+" : "-",
                                          identity.device_id, "/",
                                          identity.module_id, ":", input));
    cv_.notify_all();
  }
  void Completed(DeliveryResult result) {
    std::lock_guard<std::mutex> lock(mu_);
    results_.push_back(result);
    cv_.notify_all();
  }

  bool WaitForResults(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kWait, [&] { return results_.size() >= n; });
  }
  bool WaitForSubscriptions(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kWait,
                        [&] { return subscriptions_.size() >= n; });
  }
  std::vector<DeliveryResult> results() {
    std::lock_guard<std::mutex> lock(mu_);
    return results_;
  }
  std::vector<std::string> sources() {
    std::lock_guard<std::mutex> lock(mu_);
    return sources_;
  }
  std::vector<std::string> devices() {
    std::lock_guard<std::mutex> lock(mu_);
    return devices_;
  }
  std::vector<std::string> from() {
    std::lock_guard<std::mutex> lock(mu_);
    return from_;
  }
  std::vector<std::string> subscriptions() {
    std::lock_guard<std::mutex> lock(mu_);
    return subscriptions_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> sources_, devices_, from_, subscriptions_;
  std::vector<DeliveryResult> results_;
  std::deque<std::unique_ptr<OwnedBatch>> batches_;
};

void OwnedBatch::Complete(size_t, DeliveryResult result) {
  hooks->Completed(result);
}

std::string Message(absl::string_view body,
                    absl::string_view claimed_device = "") {
  MessageBuilder builder;
  builder.SetBody(body);
  builder.AddProperty("k", "v");
  if (!claimed_device.empty()) {
    builder.AddSystemProperty("connectionDeviceId", claimed_device);
  }
  absl::Span<const uint8_t> b = builder.Finish();
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

class ServerTest : public ::testing::TestWithParam<IoBackend> {
 protected:
  void Start(ServerOptions options = {}) {
    options.loop.backend = GetParam();
    options.unix_path = TestSocketPath("server");
    auto server = Server::Create(options, &hooks_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    hooks_.server = server_.get();
    ASSERT_TRUE(server_->Start().ok());
    tcp_ = absl::StrCat("tcp:127.0.0.1:", server_->tcp_port());
    unix_ = absl::StrCat("unix:", options.unix_path);
  }
  std::unique_ptr<Client> Connect(absl::string_view device,
                                  absl::string_view module,
                                  bool use_unix = false) {
    auto client = Client::Connect(use_unix ? unix_ : tcp_);
    EXPECT_TRUE(client.ok()) << client.status();
    if (!client.ok()) return nullptr;
    absl::Status hello = (*client)->Hello(device, module);
    EXPECT_TRUE(hello.ok()) << hello;
    return std::move(*client);
  }
  // Reads frames from a raw socket until an Error frame; returns its code.
  fb::ErrorCode ReadError(TestSocket& socket) {
    FrameDecoder decoder;
    for (int i = 0; i < 10; ++i) {
      auto payload = socket.ReadFrame();
      if (!payload.ok()) return fb::ErrorCode::kUnknown;
      DecodedFrame frame;
      DecodeError error;
      if (decoder.Decode(AsBytes(*payload), &frame, &error) &&
          frame.type == fb::Body::Error) {
        return frame.error()->code();
      }
    }
    return fb::ErrorCode::kUnknown;
  }

  Hooks hooks_;
  std::unique_ptr<Server> server_;
  std::string tcp_, unix_;
};

// A connection that says nothing is closed after the Hello deadline; one
// that said Hello stays. Beyond max_connections a client gets an Error
// frame (kOverloaded) instead of a silent close.
TEST_P(ServerTest, HelloDeadlineAndConnectionLimit) {
  ServerOptions options;
  options.hello_timeout = absl::Milliseconds(300);
  options.loop.max_connections = 2;
  Start(options);
  auto silent = TestSocket::ConnectTcp(server_->tcp_port());
  ASSERT_TRUE(silent.ok());
  auto talker = Connect("dev", "mod");
  ASSERT_NE(talker, nullptr);
  // Over the limit while both are open.
  auto third = TestSocket::ConnectTcp(server_->tcp_port());
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(ReadError(*third), fb::ErrorCode::kOverloaded);
  EXPECT_TRUE(third->ReadsEof());
  // The silent one is closed by the deadline (bounded by ReadsEof's wait).
  EXPECT_TRUE(silent->ReadsEof());
  EXPECT_EQ(server_->stats().hello_timeouts, 1u);
  EXPECT_EQ(server_->stats().connections_refused, 1u);
  // The one that said Hello is still served.
  EXPECT_TRUE(talker->Subscribe({"in"}).ok());
  EXPECT_TRUE(
      absl::StrContains(server_->PrometheusText(), "hello_timeouts_total 1"));
}

TEST_P(ServerTest, TelemetryBeforeHelloIsAProtocolViolation) {
  Start();
  auto socket = TestSocket::ConnectTcp(server_->tcp_port());
  ASSERT_TRUE(socket.ok());
  FrameEncoder encoder;
  std::string out;
  encoder.Telemetry("o", AsBytes(Message("x")), 0, &out);
  ASSERT_TRUE(socket->Write(out).ok());
  EXPECT_EQ(ReadError(*socket), fb::ErrorCode::kProtocolViolation);
  EXPECT_TRUE(socket->ReadsEof());
  EXPECT_TRUE(hooks_.sources().empty());
}

TEST_P(ServerTest, WrongProtocolVersionIsRefused) {
  Start();
  auto client = Client::Connect(tcp_);
  ASSERT_TRUE(client.ok());
  absl::Status s = (*client)->Hello("dev", "a", kProtocolVersion + 1);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("UnsupportedVersion"), std::string::npos) << s;
}

TEST_P(ServerTest, GarbageAndOversizedFramesGetAnErrorAndAClose) {
  ServerOptions options;
  options.loop.max_frame_bytes = 4096;
  Start(options);
  {
    auto socket = TestSocket::ConnectTcp(server_->tcp_port());
    ASSERT_TRUE(socket.ok());
    std::string out;
    FrameEncoder::AppendRaw(AsBytes(std::string(64, '\x5a')), &out);
    ASSERT_TRUE(socket->Write(out).ok());
    EXPECT_EQ(ReadError(*socket), fb::ErrorCode::kBadFrame);
    EXPECT_TRUE(socket->ReadsEof());
  }
  {
    auto socket = TestSocket::ConnectTcp(server_->tcp_port());
    ASSERT_TRUE(socket.ok());
    ASSERT_TRUE(socket->Write(std::string("\x01\x10\x00\x00", 4)).ok());
    EXPECT_EQ(ReadError(*socket), fb::ErrorCode::kFrameTooLarge);
    EXPECT_TRUE(socket->ReadsEof());
  }
  // The server still works for others.
  auto client = Connect("dev", "a");
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(server_->stats().protocol_errors, 2u);
}

TEST_P(ServerTest, TelemetryIsStampedWithTheSessionIdentity) {
  Start();
  auto module = Connect("dev", "a", /*use_unix=*/true);
  auto device = Connect("leaf", "");
  ASSERT_NE(module, nullptr);
  ASSERT_NE(device, nullptr);
  ASSERT_TRUE(
      module->SendTelemetry("out1", AsBytes(Message("m", "spoofed")), true)
          .ok());
  ASSERT_TRUE(module->WaitForAcks(1).ok());
  ASSERT_TRUE(device->SendTelemetry("", AsBytes(Message("d")), true).ok());
  ASSERT_TRUE(device->WaitForAcks(1).ok());
  EXPECT_EQ(hooks_.sources(),
            (std::vector<std::string>{"/messages/modules/a/outputs/out1",
                                      "/messages"}));
  EXPECT_EQ(hooks_.devices(), (std::vector<std::string>{"dev", "leaf"}));
  EXPECT_EQ(hooks_.from(), (std::vector<std::string>{"dev/a:out1", "leaf/:"}));
}

TEST_P(ServerTest, RefusedTelemetryIsReportedInTheAck) {
  Start();
  hooks_.answer = fb::ErrorCode::kOverloaded;
  auto client = Connect("dev", "a");
  ASSERT_NE(client, nullptr);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(client->SendTelemetry("o", AsBytes(Message("x")), true).ok());
  }
  ASSERT_TRUE(client->WaitForAcks(3).ok());
  EXPECT_EQ(client->acks_refused(), 3u);
  EXPECT_EQ(server_->stats().telemetry_refused, 3u);
}

TEST_P(ServerTest, UpstreamSubscriberReceivesInOrderAndAcks) {
  Start();
  auto upstream = Connect("cloud", "");
  ASSERT_NE(upstream, nullptr);
  ASSERT_TRUE(upstream->Subscribe({kUpstreamInput}).ok());
  ASSERT_TRUE(hooks_.WaitForSubscriptions(1));
  EXPECT_EQ(hooks_.subscriptions()[0], "+/:$upstream");

  auto producer = Connect("dev", "a");
  ASSERT_NE(producer, nullptr);
  constexpr int kCount = 500;
  for (int i = 0; i < kCount; ++i) {
    ASSERT_TRUE(producer
                    ->SendTelemetry("o", AsBytes(Message(absl::StrCat(i))),
                                    /*want_ack=*/true)
                    .ok());
  }
  ASSERT_TRUE(producer->WaitForAcks(kCount).ok());
  for (int i = 0; i < kCount; ++i) {
    auto d = upstream->Receive(10000);
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_EQ(d->input, kUpstreamInput);
    EXPECT_EQ(d->message.body(), absl::StrCat(i));
    EXPECT_EQ(d->message.source(), "/messages/modules/a/outputs/o");
    ASSERT_TRUE(upstream->Ack(d->delivery_id).ok());
  }
  ASSERT_TRUE(upstream->Flush().ok());
  ASSERT_TRUE(hooks_.WaitForResults(kCount));
  for (DeliveryResult r : hooks_.results())
    EXPECT_EQ(r, DeliveryResult::kAcked);
  EXPECT_EQ(server_->stats().acks, static_cast<uint64_t>(kCount));
}

TEST_P(ServerTest, ModuleInputDeliveryNackAndDisconnect) {
  Start();
  auto b = Connect("dev", "b");
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(b->Subscribe({"input1"}).ok());
  ASSERT_TRUE(hooks_.WaitForSubscriptions(1));
  auto a = Connect("dev", "a");
  ASSERT_NE(a, nullptr);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(
        a->SendTelemetry("fwd", AsBytes(Message(absl::StrCat(i))), true).ok());
  }
  ASSERT_TRUE(a->WaitForAcks(3).ok());
  auto d0 = b->Receive(10000);
  ASSERT_TRUE(d0.ok()) << d0.status();
  EXPECT_EQ(d0->input, "input1");
  const uint64_t id0 = d0->delivery_id;
  auto d1 = b->Receive(10000);
  ASSERT_TRUE(d1.ok());
  const uint64_t id1 = d1->delivery_id;
  auto d2 = b->Receive(10000);
  ASSERT_TRUE(d2.ok());
  ASSERT_TRUE(b->Nack(id0, /*retry=*/true).ok());
  ASSERT_TRUE(b->Nack(id1, /*retry=*/false).ok());
  ASSERT_TRUE(b->Flush().ok());
  ASSERT_TRUE(hooks_.WaitForResults(2));
  // The third is unacknowledged when b goes away.
  b.reset();
  ASSERT_TRUE(hooks_.WaitForResults(3));
  EXPECT_EQ(hooks_.results(),
            (std::vector<DeliveryResult>{DeliveryResult::kRetry,
                                         DeliveryResult::kRejected,
                                         DeliveryResult::kRetry}));
  ASSERT_TRUE(hooks_.WaitForSubscriptions(2));
  EXPECT_EQ(hooks_.subscriptions()[1], "-dev/b:input1");
}

TEST_P(ServerTest, NoSubscriberMeansRetry) {
  Start();
  auto a = Connect("dev", "a");
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(a->SendTelemetry("fwd", AsBytes(Message("x")), true).ok());
  ASSERT_TRUE(a->WaitForAcks(1).ok());
  ASSERT_TRUE(hooks_.WaitForResults(1));
  EXPECT_EQ(hooks_.results()[0], DeliveryResult::kRetry);
}

TEST_P(ServerTest, UnackedWindowHoldsBackFurtherDeliveries) {
  ServerOptions options;
  options.max_unacked_deliveries = 2;
  Start(options);
  auto up = Connect("cloud", "");
  ASSERT_NE(up, nullptr);
  ASSERT_TRUE(up->Subscribe({kUpstreamInput}).ok());
  ASSERT_TRUE(hooks_.WaitForSubscriptions(1));
  auto a = Connect("dev", "a");
  ASSERT_NE(a, nullptr);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(
        a->SendTelemetry("o", AsBytes(Message(absl::StrCat(i))), true).ok());
  }
  ASSERT_TRUE(a->WaitForAcks(3).ok());
  auto first = up->Receive(10000);
  ASSERT_TRUE(first.ok());
  const uint64_t first_id = first->delivery_id;
  ASSERT_TRUE(up->Receive(10000).ok());
  // The window is full: the third waits for an ack.
  EXPECT_EQ(up->Receive(200).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  ASSERT_TRUE(up->Ack(first_id).ok());
  auto third = up->Receive(10000);
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(third->message.body(), "2");
}

// A subscriber that never acks gets its delivery taken back after the ack
// timeout (kRetry to the router, which may send it elsewhere); its late Ack
// is ignored and the connection stays usable.
TEST_P(ServerTest, UnacknowledgedDeliveryTimesOut) {
  ServerOptions options;
  options.ack_timeout = absl::Milliseconds(300);
  Start(options);
  auto up = Connect("cloud", "");
  ASSERT_NE(up, nullptr);
  ASSERT_TRUE(up->Subscribe({kUpstreamInput}).ok());
  ASSERT_TRUE(hooks_.WaitForSubscriptions(1));
  auto a = Connect("dev", "a");
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(a->SendTelemetry("o", AsBytes(Message("x")), true).ok());
  ASSERT_TRUE(a->WaitForAcks(1).ok());
  auto d = up->Receive(10000);
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_TRUE(hooks_.WaitForResults(1));
  EXPECT_EQ(hooks_.results(),
            (std::vector<DeliveryResult>{DeliveryResult::kRetry}));
  EXPECT_EQ(server_->stats().deliveries_timed_out, 1u);
  ASSERT_TRUE(up->Ack(d->delivery_id).ok());
  // Still connected and served: the next message arrives.
  ASSERT_TRUE(a->SendTelemetry("o", AsBytes(Message("y")), true).ok());
  ASSERT_TRUE(a->WaitForAcks(2).ok());
  auto next = up->Receive(10000);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->message.body(), "y");
  ASSERT_TRUE(up->Ack(next->delivery_id).ok());
  ASSERT_TRUE(up->Flush().ok());
  ASSERT_TRUE(hooks_.WaitForResults(2));
  EXPECT_EQ(hooks_.results()[1], DeliveryResult::kAcked);
  EXPECT_EQ(server_->stats().late_acks, 1u);
}

TEST_P(ServerTest, ANewConnectionReplacesTheOldOne) {
  Start();
  auto first = Connect("dev", "a");
  ASSERT_NE(first, nullptr);
  auto second = Connect("dev", "a");
  ASSERT_NE(second, nullptr);
  auto r = first->Receive(10000);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_NE(r.status().message().find("Replaced"), std::string::npos);
  EXPECT_TRUE(second->SendTelemetry("o", AsBytes(Message("x")), true).ok());
  EXPECT_TRUE(second->WaitForAcks(1).ok());
}

TEST_P(ServerTest, UnknownAckIsAProtocolViolation) {
  Start();
  auto client = Connect("dev", "a");
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Ack(12345).ok());
  auto r = client->Receive(10000);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition)
      << r.status();
}

// The native protocol's identity check (ServerOptions::identities).
class IdentityCheck {
 public:
  IdentityCheck() {
    key_a_ = auth::Base64Encode(std::string(32, 'a'));
    key_b_ = auth::Base64Encode(std::string(32, 'b'));
    auto registry = auth::IdentityRegistry::Parse(absl::StrCat(
        "{\"hub\": \"h.example\", \"identities\": [",
        "{\"deviceId\": \"dev\", \"moduleId\": \"a\", \"primaryKey\": \"",
        key_a_, "\"},",
        "{\"deviceId\": \"dev\", \"moduleId\": \"b\", \"primaryKey\": \"",
        key_b_, "\"}]}"));
    EXPECT_TRUE(registry.ok()) << registry.status();
    if (registry.ok()) registry_ = *registry;
  }
  // A token for dev/`claimed_module` signed with `signer`'s key.
  std::string Token(absl::string_view claimed_module, absl::string_view signer,
                    absl::Duration ttl = absl::Hours(1)) const {
    return auth::MakeSasToken(
        auth::SasResourceUri("h.example",
                             Identity{"dev", std::string(claimed_module)}),
        signer == "a" ? key_a_ : key_b_, absl::Now() + ttl);
  }

  std::string key_a_, key_b_;
  std::shared_ptr<const auth::IdentityRegistry> registry_;
};

class IdentityCheckTest : public ServerTest {
 protected:
  // The server (ServerTest's member) outlives this class's members: stop its
  // loop thread before the log it writes to goes away.
  void TearDown() override {
    if (server_ != nullptr) server_->Stop();
  }
  void StartChecking() {
    ServerOptions options;
    options.identities = check_.registry_;
    options.log = [this](absl::string_view line) {
      std::lock_guard<std::mutex> lock(log_mu_);
      log_.emplace_back(line);
    };
    Start(options);
  }
  absl::Status Hello(absl::string_view module, std::string token) {
    ClientOptions options;
    options.sas_token = std::move(token);
    auto client = Client::Connect(tcp_, options);
    if (!client.ok()) return client.status();
    absl::Status hello = (*client)->Hello("dev", module);
    if (hello.ok()) clients_.push_back(std::move(*client));
    return hello;
  }
  std::vector<std::string> log() {
    std::lock_guard<std::mutex> lock(log_mu_);
    return log_;
  }

  IdentityCheck check_;
  std::vector<std::unique_ptr<Client>> clients_;
  std::mutex log_mu_;
  std::vector<std::string> log_;
};

TEST_P(IdentityCheckTest, TheRightTokenIsAcceptedAndTelemetryFlows) {
  StartChecking();
  ASSERT_TRUE(Hello("a", check_.Token("a", "a")).ok());
  Client& a = *clients_.back();
  ASSERT_TRUE(a.SendTelemetry("o", AsBytes(Message("x")), true).ok());
  ASSERT_TRUE(a.WaitForAcks(1).ok());
  EXPECT_EQ(hooks_.from(), std::vector<std::string>{"dev/a:o"});
  EXPECT_EQ(server_->stats().hellos_not_authorized, 0u);
}

TEST_P(IdentityCheckTest, WrongMissingOrExpiredTokensAreRefused) {
  StartChecking();
  struct Case {
    const char* module;
    std::string token;
    const char* why;
  } cases[] = {
      {"a", "", "none was given"},
      {"a", check_.Token("a", "b"), "matches neither"},
      {"a", check_.Token("a", "a", -absl::Minutes(6)), "expired"},
      {"a", "SharedAccessSignature sr=x", "no 'sig'"},
      {"c", check_.Token("c", "a"), "is not in the identities file"},
      {"a b", check_.Token("a", "a"), "has the character ' '"},
  };
  for (const Case& c : cases) {
    absl::Status s = Hello(c.module, c.token);
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
    EXPECT_TRUE(absl::StrContains(s.message(), "NotAuthorized")) << s;
    EXPECT_TRUE(absl::StrContains(s.message(), c.why)) << c.why << ": " << s;
    if (!c.token.empty()) {
      const std::string sig = c.token.substr(0, 60);
      EXPECT_FALSE(absl::StrContains(s.message(), sig)) << s;
    }
  }
  EXPECT_EQ(server_->stats().hellos_not_authorized, std::size(cases));
  EXPECT_TRUE(absl::StrContains(server_->PrometheusText(),
                                "edgeroute_gateway_hellos_not_authorized_total "
                                "6\n"));
  const std::vector<std::string> lines = log();
  ASSERT_EQ(lines.size(), std::size(cases));
  EXPECT_TRUE(absl::StartsWith(lines[1], "Hello refused from 127.0.0.1:"))
      << lines[1];
  EXPECT_FALSE(absl::StrContains(lines[1], "sig=")) << lines[1];
  EXPECT_TRUE(hooks_.from().empty());
}

TEST_P(IdentityCheckTest, AModuleCannotClaimAnotherModule) {
  StartChecking();
  // Module b holds only its own key: neither its own token nor one it signs
  // for a gets it in as a.
  EXPECT_EQ(Hello("a", check_.Token("b", "b")).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Hello("a", check_.Token("a", "b")).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(Hello("b", check_.Token("b", "b")).ok());
  EXPECT_EQ(server_->stats().hellos_not_authorized, 2u);
}

TEST_P(IdentityCheckTest, RefusedHelloGetsAnErrorFrameAndAClose) {
  StartChecking();
  auto socket = TestSocket::ConnectTcp(server_->tcp_port());
  ASSERT_TRUE(socket.ok());
  FrameEncoder encoder;
  std::string out;
  encoder.Hello("dev", "a", &out);
  ASSERT_TRUE(socket->Write(out).ok());
  EXPECT_EQ(ReadError(*socket), fb::ErrorCode::kNotAuthorized);
  EXPECT_TRUE(socket->ReadsEof());
}

TEST_P(IdentityCheckTest, IdentitiesCanBeSwappedWhileRunning) {
  StartChecking();
  EXPECT_FALSE(Hello("a", "").ok());
  server_->SetIdentities(nullptr);
  EXPECT_TRUE(Hello("a", "").ok());
  server_->SetIdentities(check_.registry_);
  EXPECT_FALSE(Hello("b", "").ok());
  EXPECT_TRUE(Hello("b", check_.Token("b", "b")).ok());
  // The session signed in while nothing was checked stays.
  EXPECT_TRUE(
      clients_.front()->SendTelemetry("o", AsBytes(Message("x")), true).ok());
  EXPECT_TRUE(clients_.front()->WaitForAcks(1).ok());
}

TEST_P(ServerTest, WithoutIdentitiesAnyHelloIsTakenAtItsWord) {
  Start();
  ClientOptions options;
  options.sas_token = "SharedAccessSignature sr=anything";
  auto client = Client::Connect(tcp_, options);
  ASSERT_TRUE(client.ok());
  EXPECT_TRUE((*client)->Hello("dev", "whoever").ok());
  EXPECT_EQ(server_->stats().hellos_not_authorized, 0u);
}

TEST(HelloFrameTest, CarriesTheSasTokenOnlyWhenGiven) {
  FrameEncoder encoder;
  FrameDecoder decoder;
  for (const std::string token :
       {"", "SharedAccessSignature sr=a&sig=b&se=1"}) {
    std::string out;
    encoder.Hello("d", "m", &out, kProtocolVersion, token);
    DecodedFrame frame;
    DecodeError error;
    ASSERT_TRUE(
        decoder.Decode(AsBytes(out).subspan(kFrameHeaderBytes), &frame, &error))
        << error.reason;
    ASSERT_EQ(frame.type, fb::Body::Hello);
    EXPECT_EQ(frame.hello()->sas_token() == nullptr, token.empty());
    EXPECT_EQ(FieldView(frame.hello()->sas_token()), token);
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, IdentityCheckTest,
                         ::testing::Values(IoBackend::kIoUring,
                                           IoBackend::kEpoll),
                         [](const auto& info) {
                           return std::string(IoBackendName(info.param));
                         });

// Admission that waits until released, recording what it admitted.
class BlockingHooks : public ServerHooks {
 public:
  fb::ErrorCode OnTelemetry(const Identity&, absl::string_view,
                            const MessageView& message) override {
    std::unique_lock<std::mutex> lock(mu_);
    ++calls_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return released_; });
    admitted_.emplace_back(message.body());
    return fb::ErrorCode::kUnknown;
  }
  void OnSubscription(const Identity&, absl::string_view, bool) override {}

  bool WaitForCalls(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kWait, [&] { return calls_ >= n; });
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  std::vector<std::string> admitted() {
    std::lock_guard<std::mutex> lock(mu_);
    return admitted_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int calls_ = 0;
  bool released_ = false;
  std::vector<std::string> admitted_;
};

class AdmissionThreadTest : public ::testing::TestWithParam<IoBackend> {};

// With an admission thread, a hook that waits (a store append, here a
// latch) holds up admission only: other connections are still served, and
// the acks follow in order once it returns.
TEST_P(AdmissionThreadTest, AWaitingHookStallsNoSocket) {
  BlockingHooks hooks;
  ServerOptions options;
  options.loop.backend = GetParam();
  options.admission_queue_bytes = 1u << 20;
  auto server = Server::Create(options, &hooks);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE((*server)->Start().ok());
  // Whatever happens below, the hook must return before the server stops.
  struct ReleaseOnExit {
    BlockingHooks* hooks;
    ~ReleaseOnExit() { hooks->Release(); }
  } release_on_exit{&hooks};
  const std::string address =
      absl::StrCat("tcp:127.0.0.1:", (*server)->tcp_port());

  auto producer = Client::Connect(address);
  ASSERT_TRUE(producer.ok()) << producer.status();
  ASSERT_TRUE((*producer)->Hello("dev", "p").ok());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(
        (*producer)
            ->SendTelemetry("o", AsBytes(Message(absl::StrCat("m", i))), true)
            .ok());
  }
  ASSERT_TRUE((*producer)->Flush().ok());
  ASSERT_TRUE(hooks.WaitForCalls(1));  // the first one is now held

  // The loop thread is free: a new connection gets its HelloAck, and a
  // device's telemetry is taken in (queued behind the held one).
  auto other = Client::Connect(address);
  ASSERT_TRUE(other.ok()) << other.status();
  ASSERT_TRUE((*other)->Hello("dev", "q").ok());
  EXPECT_EQ((*server)->stats().connections_open, 2u);
  EXPECT_TRUE(hooks.admitted().empty());

  hooks.Release();
  ASSERT_TRUE((*producer)->WaitForAcks(3).ok());
  EXPECT_EQ((*producer)->acks_refused(), 0u);
  EXPECT_EQ(hooks.admitted(), (std::vector<std::string>{"m0", "m1", "m2"}));
  (*server)->Stop();
}

INSTANTIATE_TEST_SUITE_P(Backends, AdmissionThreadTest,
                         ::testing::Values(IoBackend::kIoUring,
                                           IoBackend::kEpoll),
                         [](const auto& info) {
                           return std::string(IoBackendName(info.param));
                         });

TEST(StampIdentityTest, KeepsCorrectMessagesAndRewritesOthers) {
  MessageBuilder builder;
  builder.SetBody("b");
  builder.AddSystemProperty("connectionDeviceId", "dev");
  builder.AddSystemProperty("connectionModuleId", "a");
  builder.AddSystemProperty("outputName", "o");
  builder.AddNullProperty("nothing");
  builder.Finish();
  const MessageView good = builder.view();
  MessageBuilder scratch_builder;
  std::string scratch;
  EXPECT_EQ(
      StampIdentity(Identity{"dev", "a"}, "o", good, &scratch_builder, &scratch)
          .bytes()
          .data(),
      good.bytes().data());
  const MessageView other = StampIdentity(Identity{"dev", "z"}, "p", good,
                                          &scratch_builder, &scratch);
  EXPECT_NE(other.bytes().data(), good.bytes().data());
  EXPECT_EQ(other.source(), "/messages/modules/z/outputs/p");
  EXPECT_EQ(other.FindSystemProperty("connectionModuleId").value, "z");
  EXPECT_EQ(other.system_property_count(), 3u);
  EXPECT_TRUE(other.FindProperty("nothing").is_null());
  EXPECT_EQ(other.body(), "b");
}

INSTANTIATE_TEST_SUITE_P(Backends, ServerTest,
                         ::testing::Values(IoBackend::kIoUring,
                                           IoBackend::kEpoll),
                         [](const auto& info) {
                           return std::string(IoBackendName(info.param));
                         });

}  // namespace
}  // namespace gateway
}  // namespace edgeroute
