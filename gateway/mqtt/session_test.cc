#include "gateway/mqtt/session.h"

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace edgeroute {
namespace gateway {
namespace mqtt {
namespace {

absl::Span<const uint8_t> Bytes(const std::string& s) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()),
                             s.size());
}

// A server stand-in: records what a session asks for.
class FakeHost final : public SessionHost {
 public:
  std::string* BeginSend(Session*) override {
    return output_closed ? nullptr : &out;
  }
  bool EndSend(Session*) override { return true; }
  void DeliveryTimedOut(Session*) override { ++timed_out; }
  ConnectCode Authenticate(Session*, const Connect& connect,
                           Identity* identity) override {
    last_username = std::string(connect.username);
    if (auth_code != ConnectCode::kAccepted) return auth_code;
    const absl::string_view id = connect.client_id;
    const size_t slash = id.find('/');
    identity->device_id = std::string(id.substr(0, slash));
    identity->module_id = slash == absl::string_view::npos
                              ? ""
                              : std::string(id.substr(slash + 1));
    return ConnectCode::kAccepted;
  }
  bool Attach(Session* session, bool clean_session,
              SavedSession* saved) override {
    ++attaches;
    const std::string key =
        session->identity().device_id + "/" + session->identity().module_id;
    auto it = saved_sessions.find(key);
    if (clean_session || it == saved_sessions.end()) {
      if (it != saved_sessions.end()) saved_sessions.erase(it);
      return false;
    }
    *saved = std::move(it->second);
    saved_sessions.erase(it);
    return true;
  }
  void SubscriptionsChanged(Session*) override { ++subscription_changes; }
  Admission Telemetry(Session*, const Identity&, absl::string_view output,
                      const MessageView& message) override {
    outputs.emplace_back(output);
    messages.emplace_back(reinterpret_cast<const char*>(message.bytes().data()),
                          message.bytes().size());
    if (queue) return Admission::kQueued;
    return admit ? Admission::kAdmitted : Admission::kRefused;
  }
  std::string TwinGet(Session*) override { return twin_document; }
  absl::StatusOr<int64_t> TwinPatchReported(Session*,
                                            absl::string_view json) override {
    patches.emplace_back(json);
    if (!absl::StartsWith(json, "{")) {
      return absl::InvalidArgumentError("1:1: not a JSON object");
    }
    return ++reported_version;
  }

  // Decodes and removes every packet written so far.
  std::vector<Packet> TakePackets() {
    taken.push_back(std::move(out));
    out.clear();
    std::vector<Packet> packets;
    absl::Span<const uint8_t> rest = Bytes(taken.back());
    while (!rest.empty()) {
      Packet p;
      size_t n = 0;
      DecodeError e;
      EXPECT_EQ(DecodePacket(rest, 1 << 24, &p, &n, &e), DecodeStatus::kPacket)
          << e.what;
      if (n == 0) break;
      packets.push_back(p);
      rest.remove_prefix(n);
    }
    return packets;
  }

  std::string out;
  std::deque<std::string> taken;  // keeps decoded packets' bytes alive
  bool output_closed = false;
  ConnectCode auth_code = ConnectCode::kAccepted;
  std::string last_username;
  int attaches = 0;
  int subscription_changes = 0;
  std::map<std::string, SavedSession> saved_sessions;
  bool admit = true;
  bool queue = false;
  std::vector<std::string> outputs;
  std::vector<std::string> messages;
  std::string twin_document =
      R"({"desired":{"$version":1},"reported":{"$version":1}})";
  std::vector<std::string> patches;
  int64_t reported_version = 1;
  int timed_out = 0;
};

// A batch of messages with recorded completions.
class FakeBatch final : public OutboundBatch {
 public:
  void Add(absl::string_view body, absl::string_view property = "") {
    MessageBuilder b;
    b.SetBody(body);
    b.AddSystemProperty("messageId", body);
    b.AddSystemProperty("connectionDeviceId", "edge-gw");
    b.AddSystemProperty("connectionModuleId", "sensor");
    if (!property.empty()) b.AddProperty("p", property);
    const absl::Span<const uint8_t> bytes = b.Finish();
    buffers_.push_back(std::make_unique<std::string>(
        reinterpret_cast<const char*>(bytes.data()), bytes.size()));
    results.push_back(-1);
  }
  size_t size() const override { return buffers_.size(); }
  MessageView message(size_t i) const override {
    return MessageView::FromTrustedBytes(Bytes(*buffers_[i]));
  }
  void Complete(size_t i, DeliveryResult result) override {
    EXPECT_EQ(results[i], -1) << "completed twice: " << i;
    results[i] = static_cast<int>(result);
  }
  std::vector<int> results;

 private:
  std::vector<std::unique_ptr<std::string>> buffers_;
};

constexpr int kAcked = static_cast<int>(DeliveryResult::kAcked);
constexpr int kRetry = static_cast<int>(DeliveryResult::kRetry);
constexpr int kRejected = static_cast<int>(DeliveryResult::kRejected);

class SessionTest : public ::testing::Test {
 protected:
  SessionTest() { NewSession(); }

  void NewSession() {
    session_ = std::make_unique<Session>(options_, &host_, &clock_, &scratch_);
  }

  // Feeds bytes; returns what OnBytes returned. Everything must be consumed
  // unless the session closes.
  bool Feed(const std::string& bytes) {
    size_t consumed = 0;
    const bool ok = session_->OnBytes(Bytes(bytes), &consumed);
    if (ok) {
      EXPECT_EQ(consumed, bytes.size());
    }
    return ok;
  }

  std::string ConnectBytes(absl::string_view client_id, bool clean = true,
                           uint16_t keep_alive = 60) {
    mqtt::Connect c;
    c.client_id = client_id;
    c.clean_session = clean;
    c.keep_alive_secs = keep_alive;
    c.has_username = true;
    const std::string username =
        "hub/" + std::string(client_id) + "/?api-version=2021-04-12";
    c.username = username;
    std::string out;
    EncodeConnect(c, &out);
    return out;
  }

  // Connects as edge-gw/filter and checks the CONNACK.
  void Connect(absl::string_view client_id = "edge-gw/filter",
               bool clean = true, bool expect_present = false) {
    ASSERT_TRUE(Feed(ConnectBytes(client_id, clean)));
    const std::vector<Packet> p = host_.TakePackets();
    ASSERT_EQ(p.size(), 1u);
    ASSERT_EQ(p[0].type, PacketType::kConnack);
    EXPECT_EQ(p[0].connack.code, ConnectCode::kAccepted);
    EXPECT_EQ(p[0].connack.session_present, expect_present);
    EXPECT_TRUE(session_->connected());
  }

  std::vector<uint8_t> Subscribe(std::vector<TopicRequest> requests,
                                 uint16_t id = 1) {
    std::string bytes;
    EncodeSubscribe(id, requests, &bytes);
    EXPECT_TRUE(Feed(bytes));
    const std::vector<Packet> p = host_.TakePackets();
    EXPECT_EQ(p.size(), 1u);
    if (p.empty() || p[0].type != PacketType::kSuback) return {};
    EXPECT_EQ(p[0].packet_id, id);
    return std::vector<uint8_t>(p[0].suback_codes.begin(),
                                p[0].suback_codes.end());
  }

  std::string PublishBytes(absl::string_view topic, absl::string_view payload,
                           uint8_t qos = 1, uint16_t id = 10) {
    Publish p;
    p.topic = topic;
    p.payload = payload;
    p.qos = qos;
    p.packet_id = id;
    std::string out;
    EncodePublish(p, &out);
    return out;
  }

  std::string Puback(uint16_t id) {
    std::string out;
    EncodePacketId(PacketType::kPuback, id, &out);
    return out;
  }

  SessionOptions options_;
  FakeClock clock_;
  FakeHost host_;
  SessionScratch scratch_;
  std::unique_ptr<Session> session_;
};

TEST_F(SessionTest, ConnectIsAccepted) {
  Connect();
  EXPECT_EQ(session_->identity().device_id, "edge-gw");
  EXPECT_EQ(session_->identity().module_id, "filter");
  EXPECT_EQ(session_->keep_alive_secs(), 60);
  EXPECT_EQ(host_.attaches, 1);
  EXPECT_EQ(host_.last_username, "hub/edge-gw/filter/?api-version=2021-04-12");
}

TEST_F(SessionTest, ConnectNotFirstCloses) {
  std::string ping;
  EncodeEmpty(PacketType::kPingreq, &ping);
  EXPECT_FALSE(Feed(ping));
  EXPECT_EQ(session_->end(), SessionEnd::kProtocolError);
  EXPECT_STREQ(session_->error(), "first packet is not CONNECT");
  EXPECT_TRUE(host_.TakePackets().empty());
}

TEST_F(SessionTest, PublishBeforeConnectCloses) {
  EXPECT_FALSE(Feed(PublishBytes("devices/d/messages/events/", "x")));
  EXPECT_EQ(session_->end(), SessionEnd::kProtocolError);
  EXPECT_TRUE(host_.messages.empty());
}

TEST_F(SessionTest, SecondConnectCloses) {
  Connect();
  EXPECT_FALSE(Feed(ConnectBytes("edge-gw/filter")));
  EXPECT_EQ(session_->end(), SessionEnd::kProtocolError);
  EXPECT_STREQ(session_->error(), "second CONNECT");
  EXPECT_EQ(host_.attaches, 1);
}

TEST_F(SessionTest, OtherProtocolLevelGetsConnack1) {
  mqtt::Connect c;
  c.client_id = "d";
  c.protocol_level = 5;
  std::string bytes;
  EncodeConnect(c, &bytes);
  EXPECT_FALSE(Feed(bytes));
  const std::vector<Packet> p = host_.TakePackets();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].connack.code, ConnectCode::kUnacceptableProtocolVersion);
  EXPECT_EQ(session_->end(), SessionEnd::kAuthFailed);
}

TEST_F(SessionTest, EmptyClientIdGetsConnack2) {
  EXPECT_FALSE(Feed(ConnectBytes("")));
  const std::vector<Packet> p = host_.TakePackets();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].connack.code, ConnectCode::kIdentifierRejected);
}

TEST_F(SessionTest, RefusedCredentialsGetTheHostsCode) {
  for (ConnectCode code :
       {ConnectCode::kBadUserNameOrPassword, ConnectCode::kNotAuthorized}) {
    NewSession();
    host_.auth_code = code;
    EXPECT_FALSE(Feed(ConnectBytes("edge-gw/filter")));
    const std::vector<Packet> p = host_.TakePackets();
    ASSERT_EQ(p.size(), 1u);
    EXPECT_EQ(p[0].connack.code, code);
    EXPECT_FALSE(p[0].connack.session_present);
    EXPECT_EQ(session_->end(), SessionEnd::kAuthFailed);
    EXPECT_FALSE(session_->connected());
  }
  EXPECT_EQ(host_.attaches, 0);
}

TEST_F(SessionTest, KeepAliveExpiresAfterOneAndAHalfTimes) {
  ASSERT_TRUE(Feed(ConnectBytes("edge-gw/filter", true, /*keep_alive=*/10)));
  clock_.AdvanceMicros(14'000'000);
  EXPECT_TRUE(session_->OnTick());
  // A packet restarts the wait.
  std::string ping;
  EncodeEmpty(PacketType::kPingreq, &ping);
  ASSERT_TRUE(Feed(ping));
  clock_.AdvanceMicros(15'000'000);
  EXPECT_TRUE(session_->OnTick());
  clock_.AdvanceMicros(1);
  EXPECT_FALSE(session_->OnTick());
  EXPECT_EQ(session_->end(), SessionEnd::kKeepAlive);
}

TEST_F(SessionTest, KeepAliveZeroNeverExpires) {
  ASSERT_TRUE(Feed(ConnectBytes("edge-gw/filter", true, /*keep_alive=*/0)));
  clock_.AdvanceSeconds(100000);
  EXPECT_TRUE(session_->OnTick());
}

TEST_F(SessionTest, ConnectDeadline) {
  clock_.AdvanceMicros(options_.connect_timeout_micros);
  EXPECT_TRUE(session_->OnTick());
  clock_.AdvanceMicros(1);
  EXPECT_FALSE(session_->OnTick());
  EXPECT_EQ(session_->end(), SessionEnd::kConnectTimeout);
}

TEST_F(SessionTest, PingAndDisconnect) {
  Connect();
  std::string ping;
  EncodeEmpty(PacketType::kPingreq, &ping);
  ASSERT_TRUE(Feed(ping));
  std::vector<Packet> p = host_.TakePackets();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].type, PacketType::kPingresp);
  std::string bye;
  EncodeEmpty(PacketType::kDisconnect, &bye);
  EXPECT_FALSE(Feed(bye));
  EXPECT_EQ(session_->end(), SessionEnd::kDisconnect);
}

TEST_F(SessionTest, ServerPacketsFromClientClose) {
  Connect();
  std::string bytes;
  EncodeConnack(false, ConnectCode::kAccepted, &bytes);
  EXPECT_FALSE(Feed(bytes));
  EXPECT_EQ(session_->end(), SessionEnd::kProtocolError);
}

TEST_F(SessionTest, MalformedBytesCloseWithOffset) {
  Connect();
  // PUBLISH with a wildcard in its topic.
  EXPECT_FALSE(Feed(PublishBytes("devices/edge-gw/modules/filter/+", "x")));
  EXPECT_EQ(session_->end(), SessionEnd::kProtocolError);
  EXPECT_STREQ(session_->error(), "wildcard in a PUBLISH topic name");
  EXPECT_EQ(session_->error_offset(), 2u + 2u + 31u);
}

TEST_F(SessionTest, PartialPacketsWaitForTheRest) {
  const std::string connect = ConnectBytes("edge-gw/filter");
  const std::string publish =
      PublishBytes("devices/edge-gw/modules/filter/messages/events/", "x");
  const std::string all = connect + publish;
  size_t offered_from = 0;
  // Offer the stream one byte at a time, as the loop does: unconsumed bytes
  // come back with the next ones.
  for (size_t end = 1; end <= all.size(); ++end) {
    size_t consumed = 0;
    ASSERT_TRUE(session_->OnBytes(
        Bytes(all).subspan(offered_from, end - offered_from), &consumed));
    offered_from += consumed;
  }
  EXPECT_EQ(offered_from, all.size());
  EXPECT_EQ(host_.messages.size(), 1u);
}

TEST_F(SessionTest, TelemetryIsStampedAndAcknowledgedAfterAdmission) {
  Connect("edge-gw/sensor");
  ASSERT_TRUE(Feed(
      PublishBytes("devices/edge-gw/modules/sensor/messages/events/"
                   "%24.on=out1&%24.mid=m1&%24.cdid=evil&level=high%20temp/",
                   R"({"t":1})", 1, 77)));
  ASSERT_EQ(host_.messages.size(), 1u);
  EXPECT_EQ(host_.outputs[0], "out1");
  const MessageView m = MessageView::FromTrustedBytes(Bytes(host_.messages[0]));
  EXPECT_EQ(m.body(), R"({"t":1})");
  EXPECT_EQ(m.source(), "/messages/modules/sensor/outputs/out1");
  EXPECT_EQ(m.FindSystemProperty("connectionDeviceId").value, "edge-gw");
  EXPECT_EQ(m.FindSystemProperty("connectionModuleId").value, "sensor");
  EXPECT_EQ(m.FindSystemProperty("messageId").value, "m1");
  EXPECT_EQ(m.FindProperty("level").value, "high temp");
  const std::vector<Packet> p = host_.TakePackets();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].type, PacketType::kPuback);
  EXPECT_EQ(p[0].packet_id, 77);
}

TEST_F(SessionTest, TelemetryQos0GetsNoPuback) {
  Connect("leaf-1");
  ASSERT_TRUE(Feed(PublishBytes("devices/leaf-1/messages/events/", "x", 0)));
  EXPECT_EQ(host_.messages.size(), 1u);
  EXPECT_TRUE(host_.TakePackets().empty());
  const MessageView m = MessageView::FromTrustedBytes(Bytes(host_.messages[0]));
  EXPECT_EQ(m.source(), "/messages");
}

TEST_F(SessionTest, NotAdmittedClosesWithoutPuback) {
  Connect("edge-gw/sensor");
  host_.admit = false;
  EXPECT_FALSE(Feed(
      PublishBytes("devices/edge-gw/modules/sensor/messages/events/", "x", 1)));
  EXPECT_EQ(session_->end(), SessionEnd::kNotAdmitted);
  EXPECT_TRUE(host_.TakePackets().empty());
}

TEST_F(SessionTest, QueuedAdmissionsAcknowledgeInOrder) {
  Connect("edge-gw/sensor");
  Subscribe({{"$iothub/twin/res/#", 0}});
  host_.queue = true;
  const std::string topic = "devices/edge-gw/modules/sensor/messages/events/";
  ASSERT_TRUE(Feed(PublishBytes(topic, "a", 1, 1)));
  ASSERT_TRUE(Feed(PublishBytes(topic, "b", 0)));
  ASSERT_TRUE(Feed(PublishBytes(topic, "c", 1, 3)));
  // A twin request's PUBACK waits behind the telemetry before it; its
  // response does not.
  ASSERT_TRUE(Feed(PublishBytes("$iothub/twin/GET/?$rid=1", "", /*qos=*/1, 4)));
  std::vector<Packet> p = host_.TakePackets();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].type, PacketType::kPublish);  // the twin response
  EXPECT_EQ(session_->admissions_pending(), 3u);
  ASSERT_TRUE(session_->Admitted(true));
  p = host_.TakePackets();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].type, PacketType::kPuback);
  EXPECT_EQ(p[0].packet_id, 1);
  ASSERT_TRUE(session_->Admitted(true));  // QoS 0: nothing to send
  EXPECT_TRUE(host_.TakePackets().empty());
  ASSERT_TRUE(session_->Admitted(true));
  p = host_.TakePackets();
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].packet_id, 3);
  EXPECT_EQ(p[1].packet_id, 4);
  EXPECT_EQ(session_->admissions_pending(), 0u);
  // With nothing queued, a PUBACK goes out at once again.
  host_.queue = false;
  ASSERT_TRUE(Feed(PublishBytes(topic, "d", 1, 5)));
  p = host_.TakePackets();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].packet_id, 5);
}

TEST_F(SessionTest, QueuedAdmissionRefusedCloses) {
  Connect("edge-gw/sensor");
  host_.queue = true;
  ASSERT_TRUE(Feed(PublishBytes(
      "devices/edge-gw/modules/sensor/messages/events/", "a", 1, 1)));
  EXPECT_FALSE(session_->Admitted(false));
  EXPECT_EQ(session_->end(), SessionEnd::kNotAdmitted);
  EXPECT_TRUE(host_.TakePackets().empty());
  // Nothing more is pending.
  EXPECT_FALSE(session_->Admitted(true));
}

TEST_F(SessionTest, PublishToAnotherIdentityCloses) {
  Connect("edge-gw/sensor");
  EXPECT_FALSE(Feed(
      PublishBytes("devices/edge-gw/modules/filter/messages/events/", "x", 1)));
  EXPECT_EQ(session_->end(), SessionEnd::kRefusedPublish);
  EXPECT_TRUE(host_.messages.empty());
  EXPECT_TRUE(host_.TakePackets().empty());
}

TEST_F(SessionTest, PublishToUnknownTopicCloses) {
  Connect("edge-gw/sensor");
  EXPECT_FALSE(Feed(PublishBytes("some/topic", "x", 0)));
  EXPECT_EQ(session_->end(), SessionEnd::kRefusedPublish);
}

TEST_F(SessionTest, Qos2Closes) {
  Connect("edge-gw/sensor");
  EXPECT_FALSE(Feed(
      PublishBytes("devices/edge-gw/modules/sensor/messages/events/", "x", 2)));
  EXPECT_EQ(session_->end(), SessionEnd::kQos2);
  EXPECT_TRUE(host_.messages.empty());
  NewSession();
  Connect("edge-gw/sensor");
  std::string pubrel;
  EncodePacketId(PacketType::kPubrel, 3, &pubrel);
  EXPECT_FALSE(Feed(pubrel));
  EXPECT_EQ(session_->end(), SessionEnd::kQos2);
}

TEST_F(SessionTest, MessageLargerThanLimitCloses) {
  options_.max_message_bytes = 100;
  NewSession();
  Connect("edge-gw/sensor");
  EXPECT_TRUE(
      Feed(PublishBytes("devices/edge-gw/modules/sensor/messages/events/",
                        std::string(100, 'x'))));
  EXPECT_FALSE(
      Feed(PublishBytes("devices/edge-gw/modules/sensor/messages/events/",
                        std::string(101, 'x'))));
  EXPECT_EQ(session_->end(), SessionEnd::kPacketTooLarge);
  EXPECT_EQ(host_.messages.size(), 1u);
}

TEST_F(SessionTest, PacketLargerThanLimitClosesBeforeItArrives) {
  options_.max_message_bytes = 100;
  options_.max_packet_bytes = 200;
  NewSession();
  Connect("edge-gw/sensor");
  const std::string big = PublishBytes(
      "devices/edge-gw/modules/sensor/messages/events/", std::string(500, 'x'));
  EXPECT_FALSE(Feed(big.substr(0, 4)));
  EXPECT_EQ(session_->end(), SessionEnd::kPacketTooLarge);
}

TEST_F(SessionTest, SubscribeGrantsOwnTopicsAndRefusesOthers) {
  Connect("edge-gw/filter");
  const std::vector<uint8_t> codes = Subscribe({
      {"devices/edge-gw/modules/filter/inputs/#", 2},
      {"$iothub/twin/res/#", 0},
      {"devices/edge-gw/modules/sensor/inputs/#", 1},
      {"$iothub/methods/POST/#", 0},
      {"#", 1},
      {"$iothub/twin/PATCH/properties/desired/#", 1},
  });
  EXPECT_EQ(codes,
            (std::vector<uint8_t>{1, 0, kSubackFailure, 0, kSubackFailure, 1}));
  EXPECT_EQ(session_->InputQos("in1"), 1);
  EXPECT_EQ(session_->subscriptions().size(), 4u);
  EXPECT_EQ(host_.subscription_changes, 1);
}

TEST_F(SessionTest, DeviceSubscribesToCloudToDevice) {
  Connect("leaf-1");
  EXPECT_EQ(Subscribe({{"devices/leaf-1/messages/devicebound/#", 1},
                       {"devices/leaf-2/messages/devicebound/#", 1}}),
            (std::vector<uint8_t>{1, kSubackFailure}));
}

TEST_F(SessionTest, SubscriptionLimit) {
  options_.max_subscriptions = 2;
  NewSession();
  Connect("edge-gw/filter");
  EXPECT_EQ(Subscribe({{"$iothub/twin/res/#", 0},
                       {"$iothub/methods/POST/#", 0},
                       {"devices/edge-gw/modules/filter/#", 1},
                       {"$iothub/twin/res/#", 1}}),
            (std::vector<uint8_t>{0, 0, kSubackFailure, 1}));
}

TEST_F(SessionTest, UnsubscribeStopsDeliveries) {
  Connect("edge-gw/filter");
  Subscribe({{"devices/edge-gw/modules/filter/inputs/in1/#", 1}});
  EXPECT_EQ(session_->InputQos("in1"), 1);
  EXPECT_EQ(session_->InputQos("in2"), -1);
  const absl::string_view filters[] = {
      "devices/edge-gw/modules/filter/inputs/in1/#"};
  std::string bytes;
  EncodeUnsubscribe(4, filters, &bytes);
  ASSERT_TRUE(Feed(bytes));
  const std::vector<Packet> p = host_.TakePackets();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].type, PacketType::kUnsuback);
  EXPECT_EQ(p[0].packet_id, 4);
  EXPECT_EQ(session_->InputQos("in1"), -1);
  FakeBatch batch;
  batch.Add("m");
  session_->Deliver("in1", &batch, 0);
  EXPECT_EQ(batch.results[0], kRetry);
}

TEST_F(SessionTest, DeliveriesRespectTheInflightWindow) {
  options_.max_inflight = 2;
  NewSession();
  Connect("edge-gw/filter");
  // The C SDK's form of the subscription.
  Subscribe({{"devices/edge-gw/modules/filter/#", 1}});
  FakeBatch batch;
  batch.Add("m0", "a b");
  batch.Add("m1");
  batch.Add("m2");
  for (size_t i = 0; i < 3; ++i) session_->Deliver("in1", &batch, i);
  std::vector<Packet> p = host_.TakePackets();
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(session_->inflight(), 2u);
  EXPECT_EQ(session_->waiting(), 1u);
  EXPECT_EQ(p[0].type, PacketType::kPublish);
  EXPECT_EQ(p[0].publish.qos, 1);
  EXPECT_FALSE(p[0].publish.dup);
  EXPECT_EQ(p[0].publish.topic,
            "devices/edge-gw/modules/filter/inputs/in1/"
            "%24.mid=m0&%24.cdid=edge-gw&%24.cmid=sensor&p=a%20b");
  EXPECT_EQ(p[0].publish.payload, "m0");
  EXPECT_EQ(batch.results, (std::vector<int>{-1, -1, -1}));
  const uint16_t first = p[0].packet_id;
  const uint16_t second = p[1].packet_id;
  EXPECT_NE(first, second);
  // Acks complete in any order and open the window.
  ASSERT_TRUE(Feed(Puback(second)));
  EXPECT_EQ(batch.results, (std::vector<int>{-1, kAcked, -1}));
  p = host_.TakePackets();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].publish.payload, "m2");
  ASSERT_TRUE(Feed(Puback(first)));
  ASSERT_TRUE(Feed(Puback(p[0].packet_id)));
  EXPECT_EQ(batch.results, (std::vector<int>{kAcked, kAcked, kAcked}));
  EXPECT_EQ(session_->inflight(), 0u);
  // A PUBACK for nothing in flight is ignored.
  EXPECT_TRUE(Feed(Puback(999)));
}

// A delivery without a PUBACK within the ack timeout goes back to the router
// (kRetry), frees its place in the window for the next one, and a late
// PUBACK for it is ignored. The session stays open (a slow client is not a
// broken one).
TEST_F(SessionTest, UnacknowledgedDeliveryTimesOut) {
  options_.max_inflight = 1;
  options_.ack_timeout_micros = 30'000'000;
  NewSession();
  Connect("edge-gw/filter");
  Subscribe({{"devices/edge-gw/modules/filter/inputs/#", 1}});
  FakeBatch batch;
  batch.Add("m0");
  batch.Add("m1");
  session_->Deliver("in1", &batch, 0);
  session_->Deliver("in1", &batch, 1);
  std::vector<Packet> p = host_.TakePackets();
  ASSERT_EQ(p.size(), 1u);
  const uint16_t first = p[0].packet_id;
  clock_.AdvanceMicros(29'999'999);
  EXPECT_TRUE(session_->OnTick());
  EXPECT_EQ(batch.results, (std::vector<int>{-1, -1}));
  clock_.AdvanceMicros(1);
  EXPECT_TRUE(session_->OnTick());
  EXPECT_EQ(batch.results, (std::vector<int>{kRetry, -1}));
  EXPECT_EQ(host_.timed_out, 1);
  // The window had room again: the waiting one went out.
  p = host_.TakePackets();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].publish.payload, "m1");
  EXPECT_TRUE(Feed(Puback(first)));  // late: ignored
  ASSERT_TRUE(Feed(Puback(p[0].packet_id)));
  EXPECT_EQ(batch.results, (std::vector<int>{kRetry, kAcked}));
  EXPECT_EQ(session_->inflight(), 0u);
}

TEST_F(SessionTest, Qos0DeliveryCompletesAtOnce) {
  Connect("edge-gw/filter");
  Subscribe({{"devices/edge-gw/modules/filter/inputs/#", 0}});
  FakeBatch batch;
  batch.Add("m0");
  session_->Deliver("in1", &batch, 0);
  EXPECT_EQ(batch.results[0], kAcked);
  const std::vector<Packet> p = host_.TakePackets();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].publish.qos, 0);
}

TEST_F(SessionTest, DeliveryWithoutSubscriptionIsRetried) {
  Connect("edge-gw/filter");
  FakeBatch batch;
  batch.Add("m0");
  session_->Deliver("in1", &batch, 0);
  EXPECT_EQ(batch.results[0], kRetry);
}

TEST_F(SessionTest, TopicTooLongIsRejected) {
  Connect("edge-gw/filter");
  Subscribe({{"devices/edge-gw/modules/filter/inputs/#", 1}});
  FakeBatch batch;
  batch.Add("m0", std::string(30000, ' '));  // %20 each: 90,000 bytes
  session_->Deliver("in1", &batch, 0);
  EXPECT_EQ(batch.results[0], kRejected);
}

TEST_F(SessionTest, PersistentSessionResumesWithDupRedelivery) {
  Connect("edge-gw/filter", /*clean=*/false);
  Subscribe({{"devices/edge-gw/modules/filter/inputs/#", 1}});
  FakeBatch batch;
  batch.Add("m0");
  batch.Add("m1");
  session_->Deliver("in1", &batch, 0);
  session_->Deliver("in1", &batch, 1);
  std::vector<Packet> p = host_.TakePackets();
  ASSERT_EQ(p.size(), 2u);
  ASSERT_TRUE(Feed(Puback(p[0].packet_id)));
  // The connection drops with m1 unacknowledged.
  SavedSession saved;
  session_->Close(SessionEnd::kPeerClosed, &saved);
  EXPECT_EQ(batch.results, (std::vector<int>{kAcked, kRetry}));
  EXPECT_EQ(saved.subscriptions.size(), 1u);
  EXPECT_EQ(saved.unacknowledged.size(), 1u);
  host_.saved_sessions["edge-gw/filter"] = std::move(saved);

  // The client reconnects without subscribing; the router retries m1.
  NewSession();
  Connect("edge-gw/filter", /*clean=*/false, /*expect_present=*/true);
  EXPECT_EQ(session_->InputQos("in1"), 1);
  FakeBatch retry;
  retry.Add("m1");
  retry.Add("m2");
  session_->Deliver("in1", &retry, 0);
  session_->Deliver("in1", &retry, 1);
  p = host_.TakePackets();
  ASSERT_EQ(p.size(), 2u);
  EXPECT_TRUE(p[0].publish.dup);
  EXPECT_EQ(p[0].publish.payload, "m1");
  EXPECT_FALSE(p[1].publish.dup);
  session_->Close(SessionEnd::kPeerClosed, nullptr);  // before `retry` dies
  EXPECT_EQ(retry.results, (std::vector<int>{kRetry, kRetry}));
}

TEST_F(SessionTest, CleanSessionKeepsNothing) {
  Connect("edge-gw/filter", /*clean=*/true);
  Subscribe({{"devices/edge-gw/modules/filter/inputs/#", 1}});
  SavedSession saved;
  session_->Close(SessionEnd::kPeerClosed, &saved);
  EXPECT_TRUE(saved.subscriptions.empty());
  // A clean connect drops what a previous persistent session saved.
  host_.saved_sessions["edge-gw/filter"].subscriptions.push_back(
      {"devices/edge-gw/modules/filter/inputs/#", 1});
  NewSession();
  Connect("edge-gw/filter", /*clean=*/true, /*expect_present=*/false);
  EXPECT_EQ(session_->InputQos("in1"), -1);
  EXPECT_TRUE(host_.saved_sessions.empty());
}

TEST_F(SessionTest, CloseRetriesWaitingDeliveries) {
  options_.max_inflight = 1;
  NewSession();
  Connect("edge-gw/filter");
  Subscribe({{"devices/edge-gw/modules/filter/inputs/#", 1}});
  FakeBatch batch;
  batch.Add("a");
  batch.Add("b");
  session_->Deliver("x", &batch, 0);
  session_->Deliver("x", &batch, 1);
  session_->Close(SessionEnd::kPeerClosed, nullptr);
  EXPECT_EQ(batch.results, (std::vector<int>{kRetry, kRetry}));
  // Closed: nothing more is accepted.
  EXPECT_FALSE(Feed(Puback(1)));
  FakeBatch late;
  late.Add("c");
  session_->Deliver("x", &late, 0);
  EXPECT_EQ(late.results[0], kRetry);
}

TEST_F(SessionTest, OutputClosingRetriesDelivery) {
  Connect("edge-gw/filter");
  Subscribe({{"devices/edge-gw/modules/filter/inputs/#", 1}});
  host_.output_closed = true;
  FakeBatch batch;
  batch.Add("a");
  session_->Deliver("x", &batch, 0);
  EXPECT_EQ(batch.results[0], kRetry);
  EXPECT_EQ(session_->inflight(), 0u);
}

TEST_F(SessionTest, TwinGetAndPatch) {
  Connect("edge-gw/filter");
  Subscribe({{"$iothub/twin/res/#", 0}});
  ASSERT_TRUE(Feed(PublishBytes("$iothub/twin/GET/?$rid=r1", " ", 0)));
  std::vector<Packet> p = host_.TakePackets();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].publish.topic, "$iothub/twin/res/200/?$rid=r1");
  EXPECT_EQ(p[0].publish.payload, host_.twin_document);
  EXPECT_EQ(p[0].publish.qos, 0);

  ASSERT_TRUE(
      Feed(PublishBytes("$iothub/twin/PATCH/properties/reported/?$rid=r2",
                        R"({"fw":"1"})", 1, 5)));
  p = host_.TakePackets();
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].publish.topic, "$iothub/twin/res/204/?$rid=r2&$version=2");
  EXPECT_EQ(p[0].publish.payload, "");
  EXPECT_EQ(p[1].type, PacketType::kPuback);
  EXPECT_EQ(host_.patches.back(), R"({"fw":"1"})");

  ASSERT_TRUE(Feed(PublishBytes(
      "$iothub/twin/patch/properties/reported/?$rid=r3", "not json", 0)));
  p = host_.TakePackets();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].publish.topic, "$iothub/twin/res/400/?$rid=r3");
  EXPECT_EQ(p[0].publish.payload,
            R"({"errorCode":400,"message":"1:1: not a JSON object"})");
}

TEST_F(SessionTest, TwinResponseNeedsASubscription) {
  Connect("edge-gw/filter");
  ASSERT_TRUE(Feed(PublishBytes("$iothub/twin/GET/?$rid=r1", "", 0)));
  EXPECT_TRUE(host_.TakePackets().empty());
}

TEST_F(SessionTest, TwinResponseAtQos1IsTrackedUntilPuback) {
  Connect("edge-gw/filter");
  Subscribe({{"$iothub/twin/res/#", 1}});
  ASSERT_TRUE(Feed(PublishBytes("$iothub/twin/GET/?$rid=r1", "", 0)));
  const std::vector<Packet> p = host_.TakePackets();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].publish.qos, 1);
  EXPECT_EQ(session_->inflight(), 1u);
  ASSERT_TRUE(Feed(Puback(p[0].packet_id)));
  EXPECT_EQ(session_->inflight(), 0u);
}

TEST_F(SessionTest, DesiredPatchGoesToSubscribers) {
  Connect("edge-gw/filter");
  session_->SendDesiredPatch(3, R"({"x":1,"$version":3})");
  EXPECT_TRUE(host_.TakePackets().empty());
  Subscribe({{"$iothub/twin/PATCH/properties/desired/#", 0}});
  session_->SendDesiredPatch(3, R"({"x":1,"$version":3})");
  const std::vector<Packet> p = host_.TakePackets();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].publish.topic,
            "$iothub/twin/PATCH/properties/desired/?$version=3");
  EXPECT_EQ(p[0].publish.payload, R"({"x":1,"$version":3})");
}

TEST_F(SessionTest, MethodResponsesAreAcknowledged) {
  Connect("edge-gw/filter");
  ASSERT_TRUE(
      Feed(PublishBytes("$iothub/methods/res/200/?$rid=1", "{}", 1, 8)));
  const std::vector<Packet> p = host_.TakePackets();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].type, PacketType::kPuback);
}

}  // namespace
}  // namespace mqtt
}  // namespace gateway
}  // namespace edgeroute
