#include "gateway/upstream/publish.h"

#include <mqtt_protocol.h>

#include <cstdlib>
#include <limits>
#include <string>

#include "gtest/gtest.h"
#include "message/message.h"

namespace edgeroute::gateway::upstream {
namespace {

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
constexpr int64_t kNow = 1'700'000'000'000'000;

class PublishTest : public ::testing::Test {
 protected:
  const MessageView& Message(const char* device, const char* module,
                             const char* output, const char* hops = nullptr) {
    b_.Clear();
    b_.SetBody("{\"t\":1}");
    if (device) b_.AddSystemProperty("connectionDeviceId", device);
    if (module) b_.AddSystemProperty("connectionModuleId", module);
    if (output) b_.AddSystemProperty("outputName", output);
    if (hops) b_.AddSystemProperty("hops", hops);
    b_.AddSystemProperty("contentType", "application/json");
    b_.AddSystemProperty("cid", "corr-1");
    b_.AddSystemProperty("messageId", "m 1");
    b_.AddProperty("level", "critical");
    b_.AddNullProperty("flag");
    b_.Finish();
    view_ = b_.view();
    return view_;
  }

  MessageBuilder b_;
  MessageView view_;
  Publish p_;
};

TEST_F(PublishTest, Mqtt5TopicTemplateAndProperties) {
  PublishBuilder builder(Dialect::kMqtt, 5, kDefaultTopicTemplate);
  ASSERT_EQ(builder.Build(Message("dev 1", "filter", "out"), kNow + 2'500'000,
                          kNow, &p_),
            Verdict::kSend);
  // Placeholder values are URL-encoded.
  EXPECT_EQ(p_.topic(), "edgeroute/dev%201/filter/out");
  char* key = nullptr;
  char* value = nullptr;
  ASSERT_NE(mosquitto_property_read_string_pair(
                p_.properties(), MQTT_PROP_USER_PROPERTY, &key, &value, false),
            nullptr);
  EXPECT_STREQ(key, "level");
  EXPECT_STREQ(value, "critical");
  std::free(key);
  std::free(value);
  char* content_type = nullptr;
  ASSERT_NE(mosquitto_property_read_string(
                p_.properties(), MQTT_PROP_CONTENT_TYPE, &content_type, false),
            nullptr);
  EXPECT_STREQ(content_type, "application/json");
  std::free(content_type);
  void* correlation = nullptr;
  uint16_t correlation_len = 0;
  ASSERT_NE(mosquitto_property_read_binary(
                p_.properties(), MQTT_PROP_CORRELATION_DATA, &correlation,
                &correlation_len, false),
            nullptr);
  EXPECT_EQ(std::string(static_cast<char*>(correlation), correlation_len),
            "corr-1");
  std::free(correlation);
  uint32_t expiry = 0;
  ASSERT_NE(
      mosquitto_property_read_int32(
          p_.properties(), MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, &expiry, false),
      nullptr);
  EXPECT_EQ(expiry, 3u);  // 2.5 s left, rounded up
  EXPECT_EQ(mosquitto_property_check_all(CMD_PUBLISH, p_.properties()),
            MOSQ_ERR_SUCCESS);

  // No TTL: no expiry interval. Absent placeholders: empty levels.
  ASSERT_EQ(builder.Build(Message("d", nullptr, nullptr), kNever, kNow, &p_),
            Verdict::kSend);
  EXPECT_EQ(p_.topic(), "edgeroute/d//");
  EXPECT_EQ(
      mosquitto_property_read_int32(
          p_.properties(), MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, &expiry, false),
      nullptr);
}

TEST_F(PublishTest, Mqtt311PropertyBag) {
  PublishBuilder builder(Dialect::kMqtt, 4, "site/{deviceId}/{outputName}");
  ASSERT_EQ(builder.Build(Message("d", "m", "o"), kNever, kNow, &p_),
            Verdict::kSend);
  EXPECT_EQ(p_.topic(),
            "site/d/o/%24.mid=m%201&%24.cid=corr-1&%24.ct=application%2Fjson&"
            "%24.on=o&level=critical&flag");
  EXPECT_EQ(p_.properties(), nullptr);
}

TEST_F(PublishTest, IotHubTopicAndHops) {
  PublishBuilder builder(Dialect::kIotHub, 5, kDefaultTopicTemplate);
  ASSERT_EQ(builder.Build(Message("leaf", nullptr, nullptr), kNever, kNow, &p_),
            Verdict::kSend);
  EXPECT_EQ(p_.topic(),
            "devices/leaf/messages/events/%24.mid=m%201&%24.cid=corr-1&"
            "%24.ct=application%2Fjson&level=critical&flag&%24.hops=1");
  EXPECT_EQ(p_.properties(), nullptr);
  ASSERT_EQ(
      builder.Build(Message("gw", "filter", "alerts", "3"), kNever, kNow, &p_),
      Verdict::kSend);
  EXPECT_EQ(p_.topic().rfind("devices/gw/modules/filter/messages/events/", 0),
            0u);
  EXPECT_NE(p_.topic().find("%24.on=alerts"), std::string::npos);
  EXPECT_NE(p_.topic().find("&%24.hops=4"), std::string::npos);
  // 4 gateways crossed: the fifth would be one too many.
  EXPECT_EQ(
      builder.Build(Message("gw", "filter", "alerts", "4"), kNever, kNow, &p_),
      Verdict::kHopLimit);
  EXPECT_EQ(
      builder.Build(Message("gw", nullptr, nullptr, "40"), kNever, kNow, &p_),
      Verdict::kHopLimit);
  // Garbage counts as 0.
  EXPECT_EQ(
      builder.Build(Message("gw", nullptr, nullptr, "x"), kNever, kNow, &p_),
      Verdict::kSend);
  EXPECT_NE(p_.topic().find("%24.hops=1"), std::string::npos);
  // No identity, or one that is not a topic level: not expressible.
  EXPECT_EQ(
      builder.Build(Message(nullptr, nullptr, nullptr), kNever, kNow, &p_),
      Verdict::kBadMessage);
  EXPECT_EQ(builder.Build(Message("a/b", nullptr, nullptr), kNever, kNow, &p_),
            Verdict::kBadMessage);
  EXPECT_EQ(builder.Build(Message("a+", nullptr, nullptr), kNever, kNow, &p_),
            Verdict::kBadMessage);
}

TEST_F(PublishTest, HopLimitInEveryDialect) {
  PublishBuilder builder(Dialect::kMqtt, 5, kDefaultTopicTemplate);
  EXPECT_EQ(
      builder.Build(Message("d", nullptr, nullptr, "4"), kNever, kNow, &p_),
      Verdict::kHopLimit);
  EXPECT_EQ(
      builder.Build(Message("d", nullptr, nullptr, "3"), kNever, kNow, &p_),
      Verdict::kSend);
}

TEST_F(PublishTest, EmptyTopicIsRejected) {
  // Found by the fuzzer: a template of absent placeholders only.
  PublishBuilder builder(Dialect::kMqtt, 5, "{outputName}");
  EXPECT_EQ(builder.Build(Message("d", nullptr, nullptr), kNever, kNow, &p_),
            Verdict::kBadMessage);
}

TEST_F(PublishTest, NotUtf8IsRejectedNotSent) {
  PublishBuilder builder(Dialect::kMqtt, 5, kDefaultTopicTemplate);
  b_.Clear();
  b_.AddSystemProperty("connectionDeviceId", "d");
  b_.AddProperty(std::string("k\xff", 2), "v");
  b_.Finish();
  EXPECT_EQ(builder.Build(b_.view(), kNever, kNow, &p_), Verdict::kBadMessage);
  EXPECT_EQ(p_.properties(), nullptr);
  EXPECT_TRUE(p_.topic().empty());
}

}  // namespace
}  // namespace edgeroute::gateway::upstream
