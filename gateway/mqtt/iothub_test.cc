#include "gateway/mqtt/iothub.h"

#include <string>

#include "gtest/gtest.h"

namespace edgeroute {
namespace gateway {
namespace mqtt {
namespace {

const IdentityRef kModule{"edge-gw", "sensor"};
const IdentityRef kDevice{"leaf-1", ""};

TEST(IotHubTest, TelemetryTopics) {
  PublishTopic t = ClassifyPublishTopic("devices/leaf-1/messages/events/");
  EXPECT_EQ(t.kind, TopicKind::kTelemetry);
  EXPECT_EQ(t.device_id, "leaf-1");
  EXPECT_EQ(t.module_id, "");
  EXPECT_EQ(t.bag, "");
  t = ClassifyPublishTopic("devices/leaf-1/messages/events");
  EXPECT_EQ(t.kind, TopicKind::kTelemetry);
  t = ClassifyPublishTopic(
      "devices/edge-gw/modules/sensor/messages/events/a=1&%24.on=out1/");
  EXPECT_EQ(t.kind, TopicKind::kTelemetry);
  EXPECT_EQ(t.device_id, "edge-gw");
  EXPECT_EQ(t.module_id, "sensor");
  EXPECT_EQ(t.bag, "a=1&%24.on=out1");
  // A raw '/' in a value stays in the bag.
  t = ClassifyPublishTopic(
      "devices/d/messages/events/%24.ct=application/json&x=1");
  EXPECT_EQ(t.bag, "%24.ct=application/json&x=1");
  for (const char* other :
       {"devices/d/messages/eventsX", "devices//messages/events/",
        "devices/d/modules//messages/events/", "devices/d/modules/m/inputs/x",
        "devices/d/messages/devicebound/", "foo/bar", "$iothub/twin/GET",
        "$iothub/twin/DELETE/?$rid=1"}) {
    EXPECT_EQ(ClassifyPublishTopic(other).kind, TopicKind::kUnknown) << other;
  }
}

TEST(IotHubTest, TwinAndMethodTopics) {
  PublishTopic t = ClassifyPublishTopic("$iothub/twin/GET/?$rid=42");
  EXPECT_EQ(t.kind, TopicKind::kTwinGet);
  EXPECT_EQ(t.rid, "42");
  t = ClassifyPublishTopic("$iothub/twin/get/?$rid=abc");
  EXPECT_EQ(t.kind, TopicKind::kTwinGet);
  EXPECT_EQ(t.rid, "abc");
  t = ClassifyPublishTopic(
      "$iothub/twin/PATCH/properties/reported/?$rid=7&$version=3");
  EXPECT_EQ(t.kind, TopicKind::kTwinPatchReported);
  EXPECT_EQ(t.rid, "7");
  t = ClassifyPublishTopic("$iothub/twin/patch/properties/reported/?%24rid=8");
  EXPECT_EQ(t.kind, TopicKind::kTwinPatchReported);
  EXPECT_EQ(t.rid, "8");
  t = ClassifyPublishTopic("$iothub/methods/res/200/?$rid=9");
  EXPECT_EQ(t.kind, TopicKind::kMethodResponse);
  EXPECT_EQ(t.rid, "9");
}

TEST(IotHubTest, ModuleFilters) {
  FilterGrant g =
      ClassifyFilter("devices/edge-gw/modules/sensor/inputs/#", kModule);
  EXPECT_EQ(g.kind, FilterKind::kInputs);
  EXPECT_EQ(g.input, "");
  g = ClassifyFilter("devices/edge-gw/modules/sensor/#", kModule);
  EXPECT_EQ(g.kind, FilterKind::kInputs);
  EXPECT_EQ(g.input, "");
  g = ClassifyFilter("devices/edge-gw/modules/sensor/inputs/in1/#", kModule);
  EXPECT_EQ(g.kind, FilterKind::kInputs);
  EXPECT_EQ(g.input, "in1");
  EXPECT_EQ(ClassifyFilter("$iothub/twin/res/#", kModule).kind,
            FilterKind::kTwinResponses);
  EXPECT_EQ(
      ClassifyFilter("$iothub/twin/PATCH/properties/desired/#", kModule).kind,
      FilterKind::kTwinDesired);
  EXPECT_EQ(ClassifyFilter("$iothub/methods/POST/#", kModule).kind,
            FilterKind::kMethods);
  for (const char* refused :
       {"devices/edge-gw/modules/filter/inputs/#",  // another module
        "devices/other/modules/sensor/inputs/#",    // another device
        "devices/edge-gw/modules/+/inputs/#", "devices/+/modules/sensor/#", "#",
        "devices/#", "devices/edge-gw/modules/sensor/inputs/+/#",
        "devices/edge-gw/modules/sensor/messages/events/#",
        "devices/edge-gw/messages/devicebound/#",  // modules get no C2D
        "devices/edge-gw/modules/sensorX/#", "$iothub/#", "$iothub/twin/#"}) {
    EXPECT_EQ(ClassifyFilter(refused, kModule).kind, FilterKind::kRefused)
        << refused;
  }
}

TEST(IotHubTest, DeviceFilters) {
  EXPECT_EQ(
      ClassifyFilter("devices/leaf-1/messages/devicebound/#", kDevice).kind,
      FilterKind::kCloudToDevice);
  EXPECT_EQ(ClassifyFilter("$iothub/twin/res/#", kDevice).kind,
            FilterKind::kTwinResponses);
  EXPECT_EQ(
      ClassifyFilter("devices/leaf-2/messages/devicebound/#", kDevice).kind,
      FilterKind::kRefused);
  EXPECT_EQ(ClassifyFilter("devices/leaf-1/modules/x/#", kDevice).kind,
            FilterKind::kRefused);
  EXPECT_EQ(ClassifyFilter("devices/leaf-1/#", kDevice).kind,
            FilterKind::kRefused);
}

std::string Decoded(absl::string_view text) {
  std::string out;
  UrlDecode(text, &out);
  return out;
}

TEST(IotHubTest, UrlDecode) {
  EXPECT_EQ(Decoded("a%20b%2Fc%24"), "a b/c$");
  EXPECT_EQ(Decoded("a+b"), "a+b");
  EXPECT_EQ(Decoded("100%"), "100%");
  EXPECT_EQ(Decoded("%zz%4"), "%zz%4");
  EXPECT_EQ(Decoded("%C3%A9"), "\xC3\xA9");
  EXPECT_EQ(Decoded("%00"), std::string("\0", 1));
  // Invalid UTF-8 after decoding: one U+FFFD per maximal invalid subpart.
  EXPECT_EQ(Decoded("a%FFb"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(Decoded("%E2%82A"),
            "\xEF\xBF\xBD"
            "A");
  EXPECT_EQ(Decoded("%ED%A0%80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(Decoded("%C0%AF"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(Decoded("%F0%9F%98"), "\xEF\xBF\xBD");
  EXPECT_EQ(Decoded("x%F0%9F%98%80y"), "x\xF0\x9F\x98\x80y");
}

TEST(IotHubTest, UrlEncode) {
  std::string out;
  UrlEncode("a b/c$d-._~Z9&=%", &out);
  EXPECT_EQ(out, "a%20b%2Fc%24d-._~Z9%26%3D%25");
}

TEST(IotHubTest, BuildTelemetryMapsTheBag) {
  MessageBuilder builder;
  std::string output, scratch;
  ASSERT_TRUE(BuildTelemetry(
      kModule,
      "%24.mid=m-1&%24.cid=c-1&%24.ct=application%2Fjson&%24.ce=utf-8&"
      "%24.on=alerts&level=crit%C3%A9&flag&%24.cdid=evil&%24.cmid=evil&"
      "%24.uid=u&%24.to=%2Fx&%24.exp=2030&%24.ctime=2020&%24.schema=s&"
      "%24.ifid=i&%24.custom=c&&=v&bad=%FF",
      R"({"t":1})", &builder, &output, &scratch));
  const MessageView m = builder.view();
  EXPECT_EQ(output, "alerts");
  EXPECT_EQ(m.body(), R"({"t":1})");
  EXPECT_EQ(m.FindSystemProperty("messageId").value, "m-1");
  EXPECT_EQ(m.FindSystemProperty("cid").value, "c-1");
  EXPECT_EQ(m.FindSystemProperty("contentType").value, "application/json");
  EXPECT_EQ(m.FindSystemProperty("contentEncoding").value, "utf-8");
  EXPECT_EQ(m.FindSystemProperty("userId").value, "u");
  EXPECT_EQ(m.FindSystemProperty("to").value, "/x");
  EXPECT_EQ(m.FindSystemProperty("absolute-expiry-time").value, "2030");
  EXPECT_EQ(m.FindSystemProperty("creationTime").value, "2020");
  EXPECT_EQ(m.FindSystemProperty("messageSchema").value, "s");
  EXPECT_EQ(m.FindSystemProperty("interfaceId").value, "i");
  EXPECT_EQ(m.FindSystemProperty("outputName").value, "alerts");
  // Identity from the connection, never from the bag.
  EXPECT_EQ(m.FindSystemProperty("connectionDeviceId").value, "edge-gw");
  EXPECT_EQ(m.FindSystemProperty("connectionModuleId").value, "sensor");
  EXPECT_TRUE(m.FindProperty("$.cdid").missing());
  EXPECT_EQ(m.FindProperty("level").value, "crit\xC3\xA9");
  EXPECT_TRUE(m.FindProperty("flag").is_null());
  EXPECT_EQ(m.FindProperty("$.custom").value, "c");
  EXPECT_EQ(m.FindProperty("bad").value, "\xEF\xBF\xBD");
  EXPECT_EQ(m.source(), "/messages/modules/sensor/outputs/alerts");
  EXPECT_EQ(m.property_count(), 4u);  // level, flag, $.custom, bad
}

TEST(IotHubTest, BuildTelemetrySources) {
  MessageBuilder builder;
  std::string output, scratch;
  ASSERT_TRUE(BuildTelemetry(kDevice, "", "x", &builder, &output, &scratch));
  EXPECT_EQ(builder.view().source(), "/messages");
  EXPECT_TRUE(
      builder.view().FindSystemProperty("connectionModuleId").missing());
  ASSERT_TRUE(BuildTelemetry(kModule, "a=b", "x", &builder, &output, &scratch));
  EXPECT_EQ(builder.view().source(), "/messages/modules/sensor");
  EXPECT_EQ(output, "");
}

// $.hops is a hop count only from a gateway, and only when it is one.
TEST(IotHubTest, BuildTelemetryKeepsHopsFromGatewaysOnly) {
  MessageBuilder builder;
  std::string output, scratch;
  auto hops = [&](absl::string_view bag, bool keep) {
    EXPECT_TRUE(
        BuildTelemetry(kDevice, bag, "x", &builder, &output, &scratch, keep));
    const PropertyValue v = builder.view().FindSystemProperty("hops");
    EXPECT_EQ(builder.view().property_count(), 0u) << bag;
    return v.has_string() ? std::string(v.value) : std::string("-");
  };
  EXPECT_EQ(hops("%24.hops=3", true), "3");
  EXPECT_EQ(hops("%24.hops=003", true), "3");
  EXPECT_EQ(hops("%24.hops=3", false), "-");
  EXPECT_EQ(hops("%24.hops=0", true), "-");
  EXPECT_EQ(hops("%24.hops=256", true), "-");
  EXPECT_EQ(hops("%24.hops=x", true), "-");
  EXPECT_EQ(hops("%24.hops", true), "-");
}

TEST(IotHubTest, BuildTelemetryRefusesTooManyProperties) {
  std::string bag;
  for (size_t i = 0; i < kMaxBagProperties + 1; ++i) {
    if (i > 0) bag.push_back('&');
    bag.append("k=v");
  }
  MessageBuilder builder;
  std::string output, scratch;
  EXPECT_FALSE(BuildTelemetry(kModule, bag, "", &builder, &output, &scratch));
  bag.resize(bag.size() - 4);
  EXPECT_TRUE(BuildTelemetry(kModule, bag, "", &builder, &output, &scratch));
  EXPECT_EQ(builder.view().property_count(), kMaxBagProperties);
}

TEST(IotHubTest, InputTopicCarriesProperties) {
  MessageBuilder b;
  b.SetBody("{}");
  b.AddSystemProperty("messageId", "m&1");
  b.AddSystemProperty("contentType", "application/json");
  b.AddSystemProperty("connectionDeviceId", "edge-gw");
  b.AddSystemProperty("connectionModuleId", "sensor");
  b.AddSystemProperty("outputName", "out1");
  b.AddProperty("level", "a b");
  b.AddNullProperty("flag");
  b.Finish();
  std::string topic;
  AppendInputTopic({"edge-gw", "filter"}, "in1", b.view(), &topic);
  EXPECT_EQ(topic,
            "devices/edge-gw/modules/filter/inputs/in1/"
            "%24.mid=m%261&%24.ct=application%2Fjson&%24.cdid=edge-gw&"
            "%24.cmid=sensor&level=a%20b&flag");
  // The bag round-trips through BuildTelemetry's decoding.
  const absl::string_view bag = absl::string_view(topic).substr(
      std::string("devices/edge-gw/modules/filter/inputs/in1/").size());
  MessageBuilder again;
  std::string output, scratch;
  ASSERT_TRUE(BuildTelemetry({"x", ""}, bag, "{}", &again, &output, &scratch));
  EXPECT_EQ(again.view().FindSystemProperty("messageId").value, "m&1");
  EXPECT_EQ(again.view().FindProperty("level").value, "a b");
  EXPECT_TRUE(again.view().FindProperty("flag").is_null());
}

TEST(IotHubTest, InputTopicWithoutProperties) {
  MessageBuilder b;
  b.SetBody("x");
  b.Finish();
  std::string topic;
  AppendInputTopic({"d", "m"}, "in", b.view(), &topic);
  EXPECT_EQ(topic, "devices/d/modules/m/inputs/in/");
}

TEST(IotHubTest, TwinTopics) {
  std::string t;
  AppendTwinResponseTopic(200, "5", -1, &t);
  EXPECT_EQ(t, "$iothub/twin/res/200/?$rid=5");
  t.clear();
  AppendTwinResponseTopic(204, "6", 3, &t);
  EXPECT_EQ(t, "$iothub/twin/res/204/?$rid=6&$version=3");
  t.clear();
  AppendDesiredPatchTopic(4, &t);
  EXPECT_EQ(t, "$iothub/twin/PATCH/properties/desired/?$version=4");
}

}  // namespace
}  // namespace mqtt
}  // namespace gateway
}  // namespace edgeroute
