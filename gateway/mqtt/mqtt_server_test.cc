#include "gateway/mqtt/mqtt_server.h"

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/clock.h"
#include "gateway/auth/identities.h"
#include "gateway/auth/sas_token.h"
#include "gateway/mqtt/test_client.h"
#include "gtest/gtest.h"

namespace edgeroute {
namespace gateway {
namespace mqtt {
namespace {

// Waits (up to 10 s) until `done` holds.
bool WaitFor(const std::function<bool()>& done) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return done();
}

// Records what the server hands to the hub.
class RecordingHooks final : public ServerHooks {
 public:
  fb::ErrorCode OnTelemetry(const Identity& from, absl::string_view output,
                            const MessageView& message) override {
    std::unique_lock<std::mutex> lock(mu_);
    released_.wait(lock, [this] { return !hold_; });
    froms_.push_back(from.device_id + "/" + from.module_id);
    outputs_.emplace_back(output);
    messages_.emplace_back(
        reinterpret_cast<const char*>(message.bytes().data()),
        message.bytes().size());
    return admit_ ? fb::ErrorCode::kUnknown : fb::ErrorCode::kOverloaded;
  }
  void OnSubscription(const Identity& identity, absl::string_view input,
                      bool active) override {
    std::lock_guard<std::mutex> lock(mu_);
    subscriptions_.push_back(absl::StrCat(identity.device_id, "/",
                                          identity.module_id, " ", input, " ",
                                          active ? "on" : "off"));
  }

  std::vector<std::string> subscriptions() {
    std::lock_guard<std::mutex> lock(mu_);
    return subscriptions_;
  }
  size_t message_count() {
    std::lock_guard<std::mutex> lock(mu_);
    return messages_.size();
  }
  std::string message(size_t i) {
    std::lock_guard<std::mutex> lock(mu_);
    return messages_.at(i);
  }
  std::string from(size_t i) {
    std::lock_guard<std::mutex> lock(mu_);
    return froms_.at(i);
  }
  std::string output(size_t i) {
    std::lock_guard<std::mutex> lock(mu_);
    return outputs_.at(i);
  }
  void set_admit(bool admit) {
    std::lock_guard<std::mutex> lock(mu_);
    admit_ = admit;
  }
  // While held, OnTelemetry waits (a slow store append).
  void set_hold(bool hold) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      hold_ = hold;
    }
    released_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable released_;
  bool hold_ = false;
  bool admit_ = true;
  std::vector<std::string> froms_, outputs_, messages_, subscriptions_;
};

// Message copies with thread-safe completions.
class TestBatch final : public OutboundBatch {
 public:
  void AddBytes(std::string bytes) {
    buffers_.push_back(std::make_unique<std::string>(std::move(bytes)));
    results_.push_back(-1);
  }
  void Add(absl::string_view body) {
    MessageBuilder b;
    b.SetBody(body);
    b.AddSystemProperty("connectionDeviceId", "edge-gw");
    b.AddSystemProperty("connectionModuleId", "sensor");
    b.AddProperty("k", "v");
    const absl::Span<const uint8_t> bytes = b.Finish();
    AddBytes(
        std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  }
  size_t size() const override { return buffers_.size(); }
  MessageView message(size_t i) const override {
    return MessageView::FromTrustedBytes(absl::MakeConstSpan(
        reinterpret_cast<const uint8_t*>(buffers_[i]->data()),
        buffers_[i]->size()));
  }
  void Complete(size_t i, DeliveryResult result) override {
    std::lock_guard<std::mutex> lock(mu_);
    results_[i] = static_cast<int>(result);
  }
  std::vector<int> results() {
    std::lock_guard<std::mutex> lock(mu_);
    return results_;
  }
  bool AllDone() {
    std::lock_guard<std::mutex> lock(mu_);
    for (int r : results_) {
      if (r < 0) return false;
    }
    return true;
  }

 private:
  std::vector<std::unique_ptr<std::string>> buffers_;
  std::mutex mu_;
  std::vector<int> results_;
};

constexpr int kAcked = static_cast<int>(DeliveryResult::kAcked);
constexpr int kRetry = static_cast<int>(DeliveryResult::kRetry);

class MqttServerTest : public ::testing::Test {
 protected:
  void StartServer() {
    if (options_.listeners.empty()) {
      options_.listeners.push_back(MqttListener{"127.0.0.1", 0});
    }
    options_.log = [this](absl::string_view line) {
      std::lock_guard<std::mutex> lock(log_mu_);
      log_.emplace_back(line);
    };
    auto server = MqttServer::Create(options_, &hooks_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    ASSERT_TRUE(server_->Start().ok());
    port_ = server_->ports()[0];
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Stop();
  }

  std::unique_ptr<TestClient> Client() {
    auto c = TestClient::Open(port_);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }

  std::vector<std::string> Log() {
    std::lock_guard<std::mutex> lock(log_mu_);
    return log_;
  }

  MqttServerOptions options_;
  RecordingHooks hooks_;
  std::unique_ptr<MqttServer> server_;
  int port_ = 0;
  std::mutex log_mu_;
  std::vector<std::string> log_;
};

TEST_F(MqttServerTest, TelemetryIsAdmittedThenAcknowledged) {
  StartServer();
  auto c = Client();
  ASSERT_EQ(*c->Connect("edge-gw/sensor"), ConnectCode::kAccepted);
  ASSERT_TRUE(c->Publish("devices/edge-gw/modules/sensor/messages/events/"
                         "%24.on=out1&level=high",
                         R"({"t":1})", 1, 9)
                  .ok());
  ASSERT_EQ(hooks_.message_count(), 1u);  // admitted before the PUBACK
  EXPECT_EQ(hooks_.from(0), "edge-gw/sensor");
  EXPECT_EQ(hooks_.output(0), "out1");
  const std::string bytes = hooks_.message(0);
  const MessageView m = MessageView::FromTrustedBytes(absl::MakeConstSpan(
      reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  EXPECT_EQ(m.source(), "/messages/modules/sensor/outputs/out1");
  EXPECT_EQ(m.FindProperty("level").value, "high");
  EXPECT_EQ(server_->stats().telemetry_received, 1u);
  EXPECT_EQ(server_->stats().connects_accepted, 1u);
}

TEST_F(MqttServerTest, RefusedTelemetryClosesWithoutPuback) {
  StartServer();
  hooks_.set_admit(false);
  auto c = Client();
  ASSERT_EQ(*c->Connect("edge-gw/sensor"), ConnectCode::kAccepted);
  ASSERT_TRUE(c->Write([] {
                 std::string b;
                 Publish p;
                 p.topic = "devices/edge-gw/modules/sensor/messages/events/";
                 p.qos = 1;
                 p.packet_id = 3;
                 p.payload = "x";
                 EncodePublish(p, &b);
                 return b;
               }())
                  .ok());
  EXPECT_TRUE(c->ReadsEof());
  EXPECT_EQ(server_->stats().telemetry_refused, 1u);
}

TEST_F(MqttServerTest, AdmissionThreadAcknowledgesAfterAdmission) {
  options_.admission_queue_bytes = 1 << 20;
  StartServer();
  auto c = Client();
  ASSERT_EQ(*c->Connect("edge-gw/sensor"), ConnectCode::kAccepted);
  hooks_.set_hold(true);
  const std::string topic = "devices/edge-gw/modules/sensor/messages/events/";
  for (uint16_t id = 1; id <= 3; ++id) {
    std::string bytes;
    Publish p;
    p.topic = topic;
    p.qos = 1;
    p.packet_id = id;
    p.payload = "x";
    EncodePublish(p, &bytes);
    ASSERT_TRUE(c->Write(bytes).ok());
  }
  // Another connection is served meanwhile: the loop does not wait.
  auto other = Client();
  ASSERT_EQ(*other->Connect("leaf-1"), ConnectCode::kAccepted);
  EXPECT_EQ(hooks_.message_count(), 0u);
  hooks_.set_hold(false);
  for (uint16_t id = 1; id <= 3; ++id) {
    absl::StatusOr<Packet> p = c->Read();
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(p->type, PacketType::kPuback);
    EXPECT_EQ(p->packet_id, id);  // in order
  }
  EXPECT_EQ(hooks_.message_count(), 3u);
  // A refusal closes the connection without PUBACK.
  hooks_.set_admit(false);
  ASSERT_TRUE(c->Publish(topic, "y", 0).ok());
  EXPECT_TRUE(c->ReadsEof());
  EXPECT_EQ(server_->stats().telemetry_refused, 1u);
}

TEST_F(MqttServerTest, InputsAreAnnouncedDeliveredAndAcknowledged) {
  StartServer();
  auto c = Client();
  ASSERT_EQ(*c->Connect("edge-gw/filter"), ConnectCode::kAccepted);
  ASSERT_EQ(*c->Subscribe("devices/edge-gw/modules/filter/inputs/#", 1), 1);
  EXPECT_EQ(hooks_.subscriptions(),
            std::vector<std::string>{"edge-gw/filter # on"});
  TestBatch batch;
  batch.Add("a");
  batch.Add("b");
  server_->Deliver(Identity{"edge-gw", "filter"}, "in1", &batch);
  for (const char* body : {"a", "b"}) {
    absl::StatusOr<Packet> p = c->Read();
    ASSERT_TRUE(p.ok()) << p.status();
    ASSERT_EQ(p->type, PacketType::kPublish);
    EXPECT_EQ(p->publish.payload, body);
    EXPECT_EQ(p->publish.topic,
              "devices/edge-gw/modules/filter/inputs/in1/"
              "%24.cdid=edge-gw&%24.cmid=sensor&k=v");
    EXPECT_EQ(batch.results()[body[0] - 'a'], -1);  // not before the PUBACK
    ASSERT_TRUE(c->Puback(p->packet_id).ok());
  }
  ASSERT_TRUE(WaitFor([&] { return batch.AllDone(); }));
  EXPECT_EQ(batch.results(), (std::vector<int>{kAcked, kAcked}));
  EXPECT_EQ(server_->stats().deliveries_acked, 2u);
  c.reset();
  ASSERT_TRUE(WaitFor([&] { return hooks_.subscriptions().size() == 2; }));
  EXPECT_EQ(hooks_.subscriptions()[1], "edge-gw/filter # off");
}

TEST_F(MqttServerTest, DeliveryToAbsentModuleIsRetried) {
  StartServer();
  TestBatch batch;
  batch.Add("a");
  server_->Deliver(Identity{"edge-gw", "filter"}, "in1", &batch);
  ASSERT_TRUE(WaitFor([&] { return batch.AllDone(); }));
  EXPECT_EQ(batch.results()[0], kRetry);
}

TEST_F(MqttServerTest, ConnectionLossRetriesUnacknowledgedDeliveries) {
  StartServer();
  auto c = Client();
  ASSERT_EQ(*c->Connect("edge-gw/filter"), ConnectCode::kAccepted);
  ASSERT_EQ(*c->Subscribe("devices/edge-gw/modules/filter/inputs/in1/#", 1), 1);
  EXPECT_EQ(hooks_.subscriptions(),
            std::vector<std::string>{"edge-gw/filter in1 on"});
  TestBatch batch;
  batch.Add("a");
  server_->Deliver(Identity{"edge-gw", "filter"}, "in1", &batch);
  ASSERT_TRUE(c->Read().ok());
  c.reset();  // no PUBACK
  ASSERT_TRUE(WaitFor([&] { return batch.AllDone(); }));
  EXPECT_EQ(batch.results()[0], kRetry);
}

TEST_F(MqttServerTest, NewerConnectionTakesOverTheIdentity) {
  StartServer();
  auto first = Client();
  ASSERT_EQ(*first->Connect("edge-gw/filter"), ConnectCode::kAccepted);
  ASSERT_EQ(*first->Subscribe("devices/edge-gw/modules/filter/#", 1), 1);
  auto second = Client();
  ASSERT_EQ(*second->Connect("edge-gw/filter"), ConnectCode::kAccepted);
  EXPECT_TRUE(first->ReadsEof());
  EXPECT_EQ(server_->stats().takeovers, 1u);
  // The clean second session dropped the subscription.
  ASSERT_TRUE(WaitFor([&] { return hooks_.subscriptions().size() == 2; }));
  EXPECT_EQ(hooks_.subscriptions()[1], "edge-gw/filter # off");
}

TEST_F(MqttServerTest, PersistentSessionSurvivesReconnect) {
  StartServer();
  {
    auto c = Client();
    ASSERT_EQ(*c->Connect("edge-gw/filter", /*clean=*/false),
              ConnectCode::kAccepted);
    EXPECT_FALSE(c->session_present);
    ASSERT_EQ(*c->Subscribe("devices/edge-gw/modules/filter/inputs/#", 1), 1);
  }
  ASSERT_TRUE(WaitFor([&] { return hooks_.subscriptions().size() == 2; }));
  auto c = Client();
  ASSERT_EQ(*c->Connect("edge-gw/filter", /*clean=*/false),
            ConnectCode::kAccepted);
  EXPECT_TRUE(c->session_present);
  ASSERT_TRUE(WaitFor([&] { return hooks_.subscriptions().size() == 3; }));
  EXPECT_EQ(hooks_.subscriptions()[2], "edge-gw/filter # on");
  TestBatch batch;
  batch.Add("a");
  server_->Deliver(Identity{"edge-gw", "filter"}, "x", &batch);
  absl::StatusOr<Packet> p = c->Read();
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->publish.payload, "a");
  ASSERT_TRUE(c->Puback(p->packet_id).ok());
  ASSERT_TRUE(WaitFor([&] { return batch.AllDone(); }));
}

TEST_F(MqttServerTest, PersistentSessionSurvivesRestart) {
  const std::string dir = absl::StrCat(
      getenv("TEST_TMPDIR") != nullptr ? getenv("TEST_TMPDIR") : "/tmp",
      "/mqtt-sessions-", getpid());
  options_.session_dir = dir;
  StartServer();
  {
    auto c = Client();
    ASSERT_EQ(*c->Connect("edge-gw/filter", /*clean=*/false),
              ConnectCode::kAccepted);
    ASSERT_EQ(*c->Subscribe("devices/edge-gw/modules/filter/inputs/in2/#", 1),
              1);
  }
  server_->Stop();
  server_.reset();
  StartServer();
  auto c = Client();
  ASSERT_EQ(*c->Connect("edge-gw/filter", /*clean=*/false),
            ConnectCode::kAccepted);
  EXPECT_TRUE(c->session_present);
  ASSERT_TRUE(WaitFor([&] {
    const auto subs = hooks_.subscriptions();
    return !subs.empty() && subs.back() == "edge-gw/filter in2 on";
  }));
  // A clean session forgets it, on disk too.
  c.reset();
  c = Client();
  ASSERT_EQ(*c->Connect("edge-gw/filter", /*clean=*/true),
            ConnectCode::kAccepted);
  EXPECT_FALSE(c->session_present);
  c.reset();
  server_->Stop();
  server_.reset();
  StartServer();
  c = Client();
  ASSERT_EQ(*c->Connect("edge-gw/filter", /*clean=*/false),
            ConnectCode::kAccepted);
  EXPECT_FALSE(c->session_present);
}

TEST_F(MqttServerTest, KeepAliveWithInjectedClock) {
  FakeClock clock;
  options_.clock = &clock;
  options_.loop.tick_interval_ms = 5;
  StartServer();
  auto c = Client();
  ASSERT_EQ(*c->Connect("leaf-1", true, /*keep_alive=*/2),
            ConnectCode::kAccepted);
  clock.AdvanceMicros(2'900'000);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::string ping;
  EncodeEmpty(PacketType::kPingreq, &ping);
  ASSERT_TRUE(c->Write(ping).ok());
  absl::StatusOr<Packet> p = c->Read();
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->type, PacketType::kPingresp);
  clock.AdvanceMicros(3'100'000);
  EXPECT_TRUE(c->ReadsEof());
  EXPECT_EQ(server_->stats().keep_alive_timeouts, 1u);
}

TEST_F(MqttServerTest, ConnectDeadline) {
  FakeClock clock;
  options_.clock = &clock;
  options_.loop.tick_interval_ms = 5;
  StartServer();
  auto c = Client();
  ASSERT_TRUE(WaitFor([&] { return server_->stats().connections_open == 1; }));
  clock.AdvanceMicros(10'000'001);
  EXPECT_TRUE(c->ReadsEof());
  EXPECT_EQ(server_->stats().connect_timeouts, 1u);
}

TEST_F(MqttServerTest, ProtocolErrorIsLoggedWithItsOffset) {
  StartServer();
  auto c = Client();
  ASSERT_EQ(*c->Connect("leaf-1"), ConnectCode::kAccepted);
  // PUBLISH with packet identifier 0.
  const std::string bad("\x32\x05\x00\x01t\x00\x00", 7);
  ASSERT_TRUE(c->Write(bad).ok());
  EXPECT_TRUE(c->ReadsEof());
  EXPECT_EQ(server_->stats().protocol_errors, 1u);
  bool logged = false;
  for (const std::string& line : Log()) {
    logged |= absl::StrContains(line, "packet identifier 0 at byte 5");
  }
  EXPECT_TRUE(logged);
}

// A producer that fills the admission queue (the store is slow) is paused --
// not read from -- while the loop goes on serving everyone else; it resumes
// once the queue drains, and nothing it sent is lost.
TEST_F(MqttServerTest, FullAdmissionQueuePausesOnlyTheProducer) {
  options_.admission_queue_bytes = 4096;
  StartServer();
  auto flood = Client();
  ASSERT_EQ(*flood->Connect("edge-gw/sensor"), ConnectCode::kAccepted);
  hooks_.set_hold(true);
  const std::string topic = "devices/edge-gw/modules/sensor/messages/events/";
  constexpr int kMessages = 200;
  std::string burst;
  const std::string payload(100, 'f');
  for (int i = 0; i < kMessages; ++i) {
    Publish p;
    p.topic = topic;
    p.qos = 0;
    p.payload = payload;
    EncodePublish(p, &burst);
  }
  ASSERT_TRUE(flood->Write(burst).ok());
  // Wait (bounded) until the producer was paused.
  for (int i = 0; i < 2000 && server_->stats().producer_pauses == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(server_->stats().producer_pauses, 1u);
  // The loop is not blocked: another client connects and is answered.
  auto other = Client();
  ASSERT_EQ(*other->Connect("leaf-1"), ConnectCode::kAccepted);
  std::string ping;
  EncodeEmpty(PacketType::kPingreq, &ping);
  ASSERT_TRUE(other->Write(ping).ok());
  auto pong = other->Read();
  ASSERT_TRUE(pong.ok()) << pong.status();
  EXPECT_EQ(pong->type, PacketType::kPingresp);
  // Released, every message of the flood is admitted.
  hooks_.set_hold(false);
  for (int i = 0; i < 2000 && hooks_.message_count() < kMessages; ++i) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(hooks_.message_count(), static_cast<size_t>(kMessages));
  EXPECT_NE(server_->PrometheusText().find("producer_pauses_total 1"),
            std::string::npos);
}

TEST_F(MqttServerTest, RefusedPublishAndSubscribe) {
  StartServer();
  auto c = Client();
  ASSERT_EQ(*c->Connect("edge-gw/sensor"), ConnectCode::kAccepted);
  EXPECT_EQ(*c->Subscribe("devices/edge-gw/modules/filter/inputs/#", 1),
            kSubackFailure);
  EXPECT_EQ(server_->stats().subscriptions_refused, 1u);
  EXPECT_TRUE(
      c->Publish("devices/edge-gw/modules/filter/messages/events/", "x", 0)
          .ok());
  EXPECT_TRUE(c->ReadsEof());
  EXPECT_EQ(server_->stats().refused_publishes, 1u);
  EXPECT_EQ(hooks_.message_count(), 0u);
}

TEST_F(MqttServerTest, NonLoopbackListenerNeedsIdentities) {
  options_.listeners.push_back(MqttListener{"0.0.0.0", 0});
  auto server = MqttServer::Create(options_, &hooks_);
  ASSERT_FALSE(server.ok());
  EXPECT_NE(server.status().message().find("identities"), std::string::npos);
}

TEST_F(MqttServerTest, SasTokensAreChecked) {
  const std::string key = auth::Base64Encode(std::string(32, 'k'));
  auto registry = auth::IdentityRegistry::Parse(absl::StrCat(
      R"({"hub": "testhub.azure-devices.net", "identities": [)",
      R"({"deviceId": "edge-gw", "moduleId": "sensor", "primaryKey": ")", key,
      R"("}]})"));
  ASSERT_TRUE(registry.ok()) << registry.status();
  options_.identities = *registry;
  StartServer();
  const Identity sensor{"edge-gw", "sensor"};
  const std::string username =
      "testhub.azure-devices.net/edge-gw/sensor/?api-version=2021-04-12";
  const std::string good = auth::MakeSasToken(
      auth::SasResourceUri("testhub.azure-devices.net", sensor), key,
      absl::Now() + absl::Hours(1));
  auto c = Client();
  EXPECT_EQ(*c->Connect("edge-gw/sensor", true, 60, &username, &good),
            ConnectCode::kAccepted);
  const std::string wrong = auth::MakeSasToken(
      auth::SasResourceUri("testhub.azure-devices.net", sensor),
      auth::Base64Encode(std::string(32, 'x')), absl::Now() + absl::Hours(1));
  c = Client();
  EXPECT_EQ(*c->Connect("edge-gw/sensor", true, 60, &username, &wrong),
            ConnectCode::kNotAuthorized);
  EXPECT_TRUE(c->ReadsEof());
  const std::string bad_username = "testhub.azure-devices.net/edge-gw/other/";
  c = Client();
  EXPECT_EQ(*c->Connect("edge-gw/sensor", true, 60, &bad_username, &good),
            ConnectCode::kBadUserNameOrPassword);
  const MqttServerStats s = server_->stats();
  EXPECT_EQ(s.connects_accepted, 1u);
  EXPECT_EQ(s.connects_not_authorized, 1u);
  EXPECT_EQ(s.connects_bad_credentials, 1u);
  for (const std::string& line : Log()) {
    EXPECT_FALSE(absl::StrContains(line, "sig=")) << line;
    EXPECT_FALSE(absl::StrContains(line, key)) << line;
  }
  EXPECT_NE(server_->PrometheusText().find(
                "edgeroute_mqtt_connects_total{result=\"not_authorized\"} 1"),
            std::string::npos);
}

// Nested gateways: a child gateway publishes what it forwards under the
// original identities' topics; those in its scope are admitted with the
// original identity and the hop count, anything else closes the connection.
TEST_F(MqttServerTest, ChildGatewayForwardsForItsScopeOnly) {
  const std::string key = auth::Base64Encode(std::string(32, 'k'));
  auto registry = auth::IdentityRegistry::Parse(absl::StrCat(
      R"({"hub": "h.example", "identities": [)",
      R"({"deviceId": "child", "gateway": true, "primaryKey": ")", key,
      R"("}, {"deviceId": "leaf", "parent": "child"},)",
      R"({"deviceId": "plain", "primaryKey": ")", key,
      R"("}, {"deviceId": "stranger", "primaryKey": ")", key, R"("}]})"));
  ASSERT_TRUE(registry.ok()) << registry.status();
  options_.identities = *registry;
  StartServer();
  auto connect = [&](const std::string& device) {
    const std::string username = "h.example/" + device + "/?api-version=1";
    const std::string token =
        auth::MakeSasToken(auth::SasResourceUri("h.example", {device, ""}), key,
                           absl::Now() + absl::Hours(1));
    auto c = Client();
    EXPECT_EQ(*c->Connect(device, true, 60, &username, &token),
              ConnectCode::kAccepted);
    return c;
  };
  auto child = connect("child");
  ASSERT_TRUE(child
                  ->Publish("devices/leaf/messages/events/"
                            "%24.hops=2&k=v",
                            "a", 1, 1)
                  .ok());
  ASSERT_TRUE(child
                  ->Publish("devices/child/modules/filter/messages/events/"
                            "%24.on=alerts&%24.hops=1",
                            "b", 1, 2)
                  .ok());
  ASSERT_EQ(hooks_.message_count(), 2u);
  EXPECT_EQ(hooks_.from(0), "leaf/");
  EXPECT_EQ(hooks_.from(1), "child/filter");
  EXPECT_EQ(hooks_.output(1), "alerts");
  auto view = [&](size_t i) {
    static std::string bytes;
    bytes = hooks_.message(i);
    return MessageView::FromTrustedBytes(absl::MakeConstSpan(
        reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  };
  EXPECT_EQ(view(0).FindSystemProperty("connectionDeviceId").value, "leaf");
  EXPECT_EQ(view(0).FindSystemProperty("hops").value, "2");
  EXPECT_EQ(view(0).FindProperty("k").value, "v");
  EXPECT_EQ(view(1).source(), "/messages/modules/filter/outputs/alerts");
  EXPECT_EQ(view(1).FindSystemProperty("hops").value, "1");
  // Outside the child's scope: the connection closes.
  ASSERT_TRUE(child
                  ->Write([] {
                    std::string b;
                    Publish p;
                    p.topic = "devices/stranger/messages/events/";
                    p.qos = 1;
                    p.packet_id = 3;
                    p.payload = "x";
                    EncodePublish(p, &b);
                    return b;
                  }())
                  .ok());
  EXPECT_TRUE(child->ReadsEof());
  // A device that is no gateway forwards nothing, and its $.hops is
  // ignored on its own telemetry.
  auto plain = connect("plain");
  ASSERT_TRUE(
      plain->Publish("devices/plain/messages/events/%24.hops=3", "c", 1, 4)
          .ok());
  ASSERT_EQ(hooks_.message_count(), 3u);
  EXPECT_FALSE(view(2).FindSystemProperty("hops").has_string());
  ASSERT_TRUE(plain
                  ->Write([] {
                    std::string b;
                    Publish p;
                    p.topic = "devices/leaf/messages/events/";
                    p.qos = 1;
                    p.packet_id = 5;
                    p.payload = "x";
                    EncodePublish(p, &b);
                    return b;
                  }())
                  .ok());
  EXPECT_TRUE(plain->ReadsEof());
  EXPECT_EQ(hooks_.message_count(), 3u);
  EXPECT_EQ(server_->stats().refused_publishes, 2u);
}

TEST_F(MqttServerTest, TwinWithoutStore) {
  StartServer();
  auto c = Client();
  ASSERT_EQ(*c->Connect("leaf-1"), ConnectCode::kAccepted);
  ASSERT_EQ(*c->Subscribe("$iothub/twin/res/#", 0), 0);
  ASSERT_TRUE(c->Publish("$iothub/twin/GET/?$rid=1", " ", 0).ok());
  absl::StatusOr<Packet> p = c->Read();
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->publish.topic, "$iothub/twin/res/200/?$rid=1");
  EXPECT_EQ(p->publish.payload,
            R"({"desired":{"$version":1},"reported":{"$version":1}})");
}

TEST_F(MqttServerTest, TwinsFromTheStoreAndDesiredPatches) {
  twins::TwinStoreOptions twin_options;
  twin_options.device_id = "edge-gw";
  auto twins = twins::TwinStore::Open(twin_options);
  ASSERT_TRUE(twins.ok());
  const std::string manifest_v1 =
      R"({"modulesContent": {"filter": {"properties.desired": {"limit": 5}}}})";
  ASSERT_TRUE((*twins)->SetDesired(manifest_v1).ok());
  options_.twins = twins->get();
  options_.device_id = "edge-gw";
  StartServer();
  auto c = Client();
  ASSERT_EQ(*c->Connect("edge-gw/filter"), ConnectCode::kAccepted);
  ASSERT_EQ(*c->Subscribe("$iothub/twin/res/#", 0), 0);
  ASSERT_EQ(*c->Subscribe("$iothub/twin/PATCH/properties/desired/#", 0, 2), 0);
  ASSERT_TRUE(c->Publish("$iothub/twin/GET/?$rid=a", "", 0).ok());
  absl::StatusOr<Packet> p = c->Read();
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(absl::StrContains(p->publish.payload, R"("limit":5)"))
      << p->publish.payload;
  ASSERT_TRUE(c->Publish("$iothub/twin/PATCH/properties/reported/?$rid=b",
                         R"({"fw":"1.0"})", 0)
                  .ok());
  p = c->Read();
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->publish.topic, "$iothub/twin/res/204/?$rid=b&$version=2");
  ASSERT_TRUE(
      c->Publish("$iothub/twin/PATCH/properties/reported/?$rid=c", "[1]", 0)
          .ok());
  p = c->Read();
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->publish.topic, "$iothub/twin/res/400/?$rid=c");
  EXPECT_TRUE(absl::StrContains(p->publish.payload, R"("errorCode":400)"));
  // A manifest reload changes the desired properties: the patch arrives.
  auto patches = (*twins)->SetDesired(
      R"({"modulesContent": {"filter": {"properties.desired": {"limit": 7}}}})");
  ASSERT_TRUE(patches.ok());
  ASSERT_EQ(patches->size(), 1u);
  server_->PublishDesired(*std::move(patches));
  p = c->Read();
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->publish.topic,
            "$iothub/twin/PATCH/properties/desired/?$version=2");
  EXPECT_TRUE(absl::StrContains(p->publish.payload, R"("limit":7)"));
}

// Real clients: mosquitto_sub as a module subscribed to its inputs, and
// mosquitto_pub as another module sending telemetry with a property bag;
// the test stands in for the router between them.
TEST_F(MqttServerTest, MosquittoClients) {
  if (access("/usr/bin/mosquitto_sub", X_OK) != 0 ||
      access("/usr/bin/mosquitto_pub", X_OK) != 0) {
    GTEST_SKIP() << "mosquitto-clients is not installed";
  }
  StartServer();
  const std::string sub = absl::StrCat(
      "timeout 20 /usr/bin/mosquitto_sub -h 127.0.0.1 -p ", port_,
      " -V mqttv311 -i edge-gw/filter"
      " -u 'hub/edge-gw/filter/?api-version=2021-04-12'"
      " -t 'devices/edge-gw/modules/filter/inputs/#' -q 1 -C 1 -v");
  FILE* subscriber = popen(sub.c_str(), "r");
  ASSERT_NE(subscriber, nullptr);
  ASSERT_TRUE(WaitFor([&] { return !hooks_.subscriptions().empty(); }));
  EXPECT_EQ(hooks_.subscriptions()[0], "edge-gw/filter # on");
  const std::string pub =
      absl::StrCat("timeout 20 /usr/bin/mosquitto_pub -h 127.0.0.1 -p ", port_,
                   " -V mqttv311 -i edge-gw/sensor"
                   " -u 'hub/edge-gw/sensor/?api-version=2021-04-12'"
                   " -t 'devices/edge-gw/modules/sensor/messages/events/"
                   "%24.on=out1&%24.mid=m-1&level=high%20temp'"
                   " -q 1 -m '{\"temp\":104}'");
  ASSERT_EQ(system(pub.c_str()), 0);
  ASSERT_EQ(hooks_.message_count(), 1u);
  EXPECT_EQ(hooks_.output(0), "out1");
  TestBatch batch;
  batch.AddBytes(hooks_.message(0));
  server_->Deliver(Identity{"edge-gw", "filter"}, "in1", &batch);
  std::string out;
  char line[4096];
  while (fgets(line, sizeof(line), subscriber) != nullptr) out += line;
  EXPECT_EQ(pclose(subscriber), 0);
  EXPECT_EQ(out,
            "devices/edge-gw/modules/filter/inputs/in1/"
            "%24.mid=m-1&%24.cdid=edge-gw&%24.cmid=sensor&level=high%20temp "
            "{\"temp\":104}\n");
  ASSERT_TRUE(WaitFor([&] { return batch.AllDone(); }));
  EXPECT_EQ(batch.results()[0], kAcked);
}

}  // namespace
}  // namespace mqtt
}  // namespace gateway
}  // namespace edgeroute
