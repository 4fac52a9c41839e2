#include "gateway/upstream/options.h"

#include "gtest/gtest.h"

namespace edgeroute::gateway::upstream {
namespace {

TEST(ParseUpstreamUrl, SchemesAndPorts) {
  absl::StatusOr<UpstreamUrl> u = ParseUpstreamUrl("mqtt://broker");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->dialect, Dialect::kMqtt);
  EXPECT_FALSE(u->tls);
  EXPECT_EQ(u->host, "broker");
  EXPECT_EQ(u->port, 1883);

  u = ParseUpstreamUrl("mqtts://127.0.0.1:9000");
  ASSERT_TRUE(u.ok());
  EXPECT_TRUE(u->tls);
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 9000);

  u = ParseUpstreamUrl("iothub://parent.local");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->dialect, Dialect::kIotHub);
  EXPECT_TRUE(u->tls);
  EXPECT_EQ(u->port, 8883);

  u = ParseUpstreamUrl("mqtt://[::1]:1884");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, 1884);
}

TEST(ParseUpstreamUrl, Refusals) {
  for (const char* bad :
       {"", "broker", "http://x", "mqtt://", "mqtt://:1883",
        "mqtt://h:", "mqtt://h:0", "mqtt://h:65536", "mqtt://h:12x",
        "mqtt://h/path", "mqtt://u@h", "mqtt://[::1", "mqtt://[::1]x"}) {
    EXPECT_FALSE(ParseUpstreamUrl(bad).ok()) << bad;
  }
}

TEST(TopicTemplate, Placeholders) {
  EXPECT_TRUE(ValidateTopicTemplate(kDefaultTopicTemplate).ok());
  EXPECT_TRUE(ValidateTopicTemplate("plain/topic").ok());
  EXPECT_FALSE(ValidateTopicTemplate("").ok());
  EXPECT_FALSE(ValidateTopicTemplate("a/+/b").ok());
  EXPECT_FALSE(ValidateTopicTemplate("a/#").ok());
  EXPECT_FALSE(ValidateTopicTemplate("a/{device}").ok());
  EXPECT_FALSE(ValidateTopicTemplate("a/{deviceId").ok());
  EXPECT_FALSE(ValidateTopicTemplate("a/deviceId}").ok());
  EXPECT_FALSE(ValidateTopicTemplate("a/}{deviceId}").ok());
}

TEST(Flags, SetAndValidate) {
  UpstreamOptions o;
  EXPECT_TRUE(ValidateUpstreamOptions(o).ok());  // no upstream at all
  EXPECT_EQ(SetUpstreamFlag("--upstream-nope", "x", &o).code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(SetUpstreamFlag("--upstream-topic", "t/{deviceId}", &o).ok());
  EXPECT_FALSE(ValidateUpstreamOptions(o).ok());  // flags without a URL
  ASSERT_TRUE(SetUpstreamFlag("--upstream", "mqtt://a", &o).ok());
  ASSERT_TRUE(SetUpstreamFlag("--upstream", "mqtt://b:1884", &o).ok());
  ASSERT_TRUE(SetUpstreamFlag("--upstream-protocol", "3.1.1", &o).ok());
  EXPECT_EQ(o.protocol_level, 4);
  EXPECT_FALSE(SetUpstreamFlag("--upstream-protocol", "3", &o).ok());
  // The PUBLISH window: 1..65535.
  ASSERT_TRUE(SetUpstreamFlag("--upstream-max-in-flight", "1", &o).ok());
  EXPECT_EQ(o.max_in_flight, 1);
  for (const char* bad : {"0", "65536", "-1", "x", ""}) {
    EXPECT_EQ(SetUpstreamFlag("--upstream-max-in-flight", bad, &o).code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
  EXPECT_EQ(o.max_in_flight, 1);
  EXPECT_TRUE(ValidateUpstreamOptions(o).ok());
  EXPECT_EQ(o.urls.size(), 2u);

  // Dialects do not mix; iothub:// needs a device and one credential.
  UpstreamOptions mixed = o;
  ASSERT_TRUE(SetUpstreamFlag("--upstream", "iothub://p", &mixed).ok());
  EXPECT_FALSE(ValidateUpstreamOptions(mixed).ok());

  UpstreamOptions hub;
  ASSERT_TRUE(SetUpstreamFlag("--upstream", "iothub://p", &hub).ok());
  EXPECT_FALSE(ValidateUpstreamOptions(hub).ok());  // no device, no key
  hub.device_id = "child";
  EXPECT_FALSE(ValidateUpstreamOptions(hub).ok());  // no credential
  ASSERT_TRUE(SetUpstreamFlag("--upstream-key", "a2V5", &hub).ok());
  EXPECT_TRUE(ValidateUpstreamOptions(hub).ok());
  ASSERT_TRUE(SetUpstreamFlag("--upstream-cert", "c.pem", &hub).ok());
  EXPECT_FALSE(ValidateUpstreamOptions(hub).ok());  // cert without its key
  ASSERT_TRUE(SetUpstreamFlag("--upstream-cert-key", "k.pem", &hub).ok());
  EXPECT_FALSE(ValidateUpstreamOptions(hub).ok());  // key and cert both
  hub.key_base64.clear();
  EXPECT_TRUE(ValidateUpstreamOptions(hub).ok());
  ASSERT_TRUE(SetUpstreamFlag("--upstream-username", "u", &hub).ok());
  EXPECT_FALSE(ValidateUpstreamOptions(hub).ok());  // mqtt:// flags

  UpstreamOptions plain;
  ASSERT_TRUE(SetUpstreamFlag("--upstream", "mqtt://a", &plain).ok());
  ASSERT_TRUE(SetUpstreamFlag("--upstream-ca", "ca.pem", &plain).ok());
  EXPECT_FALSE(ValidateUpstreamOptions(plain).ok());  // CA without TLS
  ASSERT_TRUE(SetUpstreamFlag("--upstream-key", "a2V5", &plain).ok());
  EXPECT_FALSE(ValidateUpstreamOptions(plain).ok());
}

TEST(Flags, TokenLifetime) {
  UpstreamOptions o;
  ASSERT_TRUE(SetUpstreamFlag("--upstream", "iothub://p", &o).ok());
  o.device_id = "child";
  ASSERT_TRUE(SetUpstreamFlag("--upstream-key", "a2V5", &o).ok());
  EXPECT_EQ(o.token_lifetime, absl::Hours(1));
  ASSERT_TRUE(SetUpstreamFlag("--upstream-token-ttl", "5", &o).ok());
  EXPECT_EQ(o.token_lifetime, absl::Seconds(5));
  ASSERT_TRUE(SetUpstreamFlag("--upstream-token-ttl", "31536000", &o).ok());
  EXPECT_EQ(o.token_lifetime, absl::Hours(24 * 365));
  // A refused value leaves the option as it was.
  for (const char* bad : {"4", "0", "-5", "31536001", "10s", "1e3", ""}) {
    EXPECT_EQ(SetUpstreamFlag("--upstream-token-ttl", bad, &o).code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
  EXPECT_EQ(o.token_lifetime, absl::Hours(24 * 365));
  EXPECT_TRUE(ValidateUpstreamOptions(o).ok());
  o.token_lifetime = absl::Seconds(1);  // set around the flag
  EXPECT_FALSE(ValidateUpstreamOptions(o).ok());

  // Only tokens have a lifetime: not with a certificate, not for mqtt://.
  UpstreamOptions cert;
  ASSERT_TRUE(SetUpstreamFlag("--upstream", "iothub://p", &cert).ok());
  cert.device_id = "child";
  ASSERT_TRUE(SetUpstreamFlag("--upstream-cert", "c.pem", &cert).ok());
  ASSERT_TRUE(SetUpstreamFlag("--upstream-cert-key", "k.pem", &cert).ok());
  ASSERT_TRUE(SetUpstreamFlag("--upstream-token-ttl", "60", &cert).ok());
  EXPECT_FALSE(ValidateUpstreamOptions(cert).ok());
  UpstreamOptions plain;
  ASSERT_TRUE(SetUpstreamFlag("--upstream-token-ttl", "60", &plain).ok());
  EXPECT_FALSE(ValidateUpstreamOptions(plain).ok());  // no URL
  ASSERT_TRUE(SetUpstreamFlag("--upstream", "mqtt://a", &plain).ok());
  EXPECT_FALSE(ValidateUpstreamOptions(plain).ok());
}

}  // namespace
}  // namespace edgeroute::gateway::upstream
