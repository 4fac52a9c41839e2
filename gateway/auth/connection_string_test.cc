#include "gateway/auth/connection_string.h"

#include "gtest/gtest.h"

namespace edgeroute {
namespace gateway {
namespace auth {
namespace {

TEST(ConnectionStringTest, ModuleWithGatewayRoundTrips) {
  ConnectionString cs;
  cs.host_name = "myhub.azure-devices.net";
  cs.identity = {"edge-gw", "sensor"};
  cs.shared_access_key = "cGFzc3dvcmRwYXNzd29yZA==";
  cs.gateway_host_name = "localhost";
  const std::string text = cs.ToString();
  EXPECT_EQ(text,
            "HostName=myhub.azure-devices.net;DeviceId=edge-gw;ModuleId=sensor;"
            "SharedAccessKey=cGFzc3dvcmRwYXNzd29yZA==;GatewayHostName="
            "localhost");
  absl::StatusOr<ConnectionString> parsed = ConnectionString::Parse(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->host_name, cs.host_name);
  EXPECT_EQ(parsed->identity, cs.identity);
  EXPECT_EQ(parsed->shared_access_key, cs.shared_access_key);
  EXPECT_EQ(parsed->gateway_host_name, "localhost");
  EXPECT_FALSE(parsed->x509);
}

TEST(ConnectionStringTest, X509DeviceAndCaseInsensitiveKeys) {
  absl::StatusOr<ConnectionString> parsed =
      ConnectionString::Parse("hostname=h.example;deviceid=leaf-2;X509=true");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(parsed->x509);
  EXPECT_EQ(parsed->identity.device_id, "leaf-2");
  EXPECT_EQ(parsed->ToString(), "HostName=h.example;DeviceId=leaf-2;x509=true");
}

TEST(ConnectionStringTest, RefusesIncompleteOrUnknownFields) {
  for (const char* bad : {"", "HostName=h", "DeviceId=d;SharedAccessKey=k",
                          "HostName=h;DeviceId=d",
                          "HostName=h;DeviceId=d;SharedAccessKey=k;x509=true",
                          "HostName=h;DeviceId=d;SharedAccessKey=k;Foo=1",
                          "HostName=h;HostName=h;DeviceId=d;SharedAccessKey=k",
                          "HostName=h;DeviceId;SharedAccessKey=k"}) {
    absl::StatusOr<ConnectionString> parsed = ConnectionString::Parse(bad);
    EXPECT_FALSE(parsed.ok()) << bad;
    if (!parsed.ok()) {
      EXPECT_EQ(parsed.status().message().find("SharedAccessKey=k"),
                absl::string_view::npos);
    }
  }
}

}  // namespace
}  // namespace auth
}  // namespace gateway
}  // namespace edgeroute
