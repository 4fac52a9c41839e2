// `edgeroute identity`: the identities file it writes, the connection
// strings and SAS tokens it prints.

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gateway/auth/connection_string.h"
#include "gateway/auth/identities.h"
#include "gateway/auth/test_util.h"
#include "gtest/gtest.h"
#include "tools/cli.h"

namespace edgeroute::tools {
namespace {

using gateway::Identity;
using gateway::auth::ConnectionString;
using gateway::auth::IdentityRegistry;

struct CliRun {
  int code;
  std::string out;
  std::string err;
};

CliRun Edgeroute(std::vector<std::string> args) {
  std::istringstream in;
  std::ostringstream out, err;
  const int code = RunEdgeroute(args, in, out, err);
  return CliRun{code, out.str(), err.str()};
}

class IdentityCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = absl::StrCat(
        std::getenv("TEST_TMPDIR"), "/",
        ::testing::UnitTest::GetInstance()->current_test_info()->name(),
        "-identities.json");
    std::remove(path_.c_str());
  }
  CliRun Identity(std::vector<std::string> args) {
    args.insert(args.begin(), "identity");
    args.insert(args.begin() + 2, {"--identities", path_});
    return Edgeroute(args);
  }
  std::shared_ptr<const IdentityRegistry> Load() {
    auto registry = IdentityRegistry::LoadFile(path_);
    EXPECT_TRUE(registry.ok()) << registry.status();
    return registry.ok() ? *registry : nullptr;
  }

  std::string path_;
};

TEST_F(IdentityCommandTest,
       AddCreatesThePrivateFileAndPrintsAConnectionString) {
  CliRun r = Identity(
      {"add", "--device", "leaf-1", "--hub", "myhub.azure-devices.net"});
  ASSERT_EQ(r.code, 0) << r.err;
  absl::StatusOr<ConnectionString> cs =
      ConnectionString::Parse(absl::StripTrailingAsciiWhitespace(r.out));
  ASSERT_TRUE(cs.ok()) << cs.status() << ": " << r.out;
  EXPECT_EQ(cs->host_name, "myhub.azure-devices.net");
  EXPECT_EQ(cs->identity, (gateway::Identity{"leaf-1", ""}));
  EXPECT_TRUE(cs->gateway_host_name.empty());
  EXPECT_EQ(gateway::auth::Base64Decode(cs->shared_access_key)->size(), 32u);

  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto registry = Load();
  ASSERT_NE(registry, nullptr);
  const auto* entry = registry->Find({"leaf-1", ""});
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(entry->primary_key, cs->shared_access_key);
  EXPECT_FALSE(entry->secondary_key.empty());
  EXPECT_NE(entry->secondary_key, entry->primary_key);

  // A module, with the gateway host for its SDK.
  r = Identity({"add", "--device", "edge-gw", "--module", "sensor",
                "--gateway-host", "localhost"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(absl::StartsWith(
      r.out,
      "HostName=myhub.azure-devices.net;DeviceId=edge-gw;ModuleId=sensor;"
      "SharedAccessKey="))
      << r.out;
  EXPECT_TRUE(absl::EndsWith(r.out, ";GatewayHostName=localhost\n")) << r.out;
  registry = Load();
  ASSERT_EQ(registry->entries().size(), 2u);
  EXPECT_NE(registry->Find({"edge-gw", "sensor"}), nullptr);
  EXPECT_NE(registry->Find({"leaf-1", ""}), nullptr);
}

TEST_F(IdentityCommandTest, AddRefusesDuplicatesOtherHubsAndBadInput) {
  CliRun r = Identity({"add", "--device", "d"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "give --hub HOST to create it"))
      << r.err;
  ASSERT_EQ(Identity({"add", "--device", "d", "--hub", "h.example"}).code, 0);
  r = Identity({"add", "--device", "d"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "d is already in")) << r.err;
  r = Identity({"add", "--device", "e", "--hub", "other.example"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "differs from the file's hub")) << r.err;
  r = Identity({"add", "--device", "bad id"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "--device 'bad id' has the character"))
      << r.err;
  r = Identity({"add", "--device", "x", "--x509-thumbprint", "abc"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "x509Thumbprint must be")) << r.err;
  r = Identity({"add", "--device", "x", "--module", "m", "--x509-ca"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "is for devices")) << r.err;
  // Nothing of that reached the file.
  EXPECT_EQ(Load()->entries().size(), 1u);
  // A file that is not valid is reported with its position, not overwritten.
  std::ofstream(path_) << "{\"hub\": \"h\",\n \"identities\": [1]}";
  r = Identity({"add", "--device", "z"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, ":2:17: an identity must be an object"))
      << r.err;
}

TEST_F(IdentityCommandTest, X509Identities) {
  const std::string thumbprint(64, 'A');
  CliRun r = Identity({"add", "--device", "leaf-2", "--hub", "h.example",
                       "--x509-thumbprint", thumbprint});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "HostName=h.example;DeviceId=leaf-2;x509=true\n");
  ASSERT_EQ(Identity({"add", "--device=leaf-3", "--x509-ca"}).code, 0);
  auto registry = Load();
  EXPECT_EQ(registry->Find({"leaf-2", ""})->x509_thumbprint,
            std::string(64, 'a'));
  EXPECT_TRUE(registry->Find({"leaf-3", ""})->x509_ca);
  r = Identity({"token", "--device", "leaf-2"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "no key")) << r.err;
  r = Identity({"list"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "# hub h.example\nleaf-2\tx509-thumbprint\nleaf-3\tx509-ca\n");
}

// Nested gateways: a gateway that signs in, and devices that only say which
// gateway they sit under; the registry reads the scope back.
TEST_F(IdentityCommandTest, GatewaysAndScopeEntries) {
  CliRun r =
      Identity({"add", "--device", "gw-b", "--hub", "h.example", "--gateway"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "SharedAccessKey=")) << r.out;
  r = Identity({"add", "--device", "gw-c", "--gateway", "--parent", "gw-b",
                "--scope-only"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "added gw-c under gateway gw-b (no credential: it connects "
            "through it)\n");
  ASSERT_EQ(
      Identity({"add", "--device", "leaf-1", "--parent=gw-c", "--scope-only"})
          .code,
      0);
  auto registry = Load();
  ASSERT_NE(registry, nullptr);
  EXPECT_TRUE(registry->Find({"gw-b", ""})->gateway);
  EXPECT_EQ(registry->Find({"gw-c", ""})->parent, "gw-b");
  EXPECT_TRUE(registry->MayActFor({"gw-b", ""}, {"leaf-1", ""}));
  EXPECT_EQ(Identity({"list"}).out,
            "# hub h.example\ngw-b\tkeys\ngw-c\tscope-only\nleaf-1\tscope-"
            "only\n");
  // --scope-only needs a parent and takes no credential option.
  EXPECT_EQ(Identity({"add", "--device", "x", "--scope-only"}).code, 2);
  EXPECT_EQ(Identity({"add", "--device", "x", "--scope-only", "--parent",
                      "gw-b", "--x509-ca"})
                .code,
            2);
  // A token for a scope entry cannot be made: it has no key.
  EXPECT_EQ(Identity({"token", "--device", "leaf-1"}).code, 1);
}

// The printed token is the one python3's standard library makes for the
// same key and expiry, and the registry accepts it.
TEST_F(IdentityCommandTest, TokensVerifyAndMatchAnIndependentSigner) {
  ASSERT_EQ(Identity({"add", "--device", "edge-gw", "--module", "filter",
                      "--hub", "h.example"})
                .code,
            0);
  auto registry = Load();
  const auto* entry = registry->Find({"edge-gw", "filter"});
  for (bool secondary : {false, true}) {
    std::vector<std::string> args = {
        "token", "--device", "edge-gw", "--module", "filter", "--ttl", "120"};
    if (secondary) args.push_back("--secondary");
    const absl::Time before = absl::Now();
    CliRun r = Identity(args);
    ASSERT_EQ(r.code, 0) << r.err;
    const std::string token(absl::StripTrailingAsciiWhitespace(r.out));
    int64_t expiry = 0;
    ASSERT_TRUE(
        absl::SimpleAtoi(token.substr(token.rfind("&se=") + 4), &expiry))
        << token;
    EXPECT_GE(expiry, absl::ToUnixSeconds(before) + 119);
    EXPECT_LE(expiry, absl::ToUnixSeconds(absl::Now()) + 120);
    EXPECT_EQ(token, gateway::auth::testing::PythonSasToken(
                         "h.example/devices/edge-gw/modules/filter",
                         secondary ? entry->secondary_key : entry->primary_key,
                         expiry));
    EXPECT_TRUE(
        registry->Verify({"edge-gw", "filter"}, token, nullptr, absl::Now())
            .ok());
    // Not for another identity.
    EXPECT_FALSE(
        registry->Verify({"edge-gw", "x"}, token, nullptr, absl::Now()).ok());
  }
}

TEST_F(IdentityCommandTest, ConnectionStringListAndRemove) {
  ASSERT_EQ(Identity({"add", "--device", "a", "--hub", "h.example"}).code, 0);
  ASSERT_EQ(Identity({"add", "--device", "a", "--module", "m"}).code, 0);
  auto registry = Load();
  CliRun r = Identity({"connection-string", "--device", "a", "--module", "m",
                       "--secondary", "--gateway-host", "gw.local"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, absl::StrCat("HostName=h.example;DeviceId=a;ModuleId=m;"
                                "SharedAccessKey=",
                                registry->Find({"a", "m"})->secondary_key,
                                ";GatewayHostName=gw.local\n"));
  r = Identity({"list"});
  EXPECT_EQ(r.out, "# hub h.example\na\tkeys\na/m\tkeys\n");
  r = Identity({"remove", "--device", "a"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "removed a\n");
  EXPECT_EQ(Identity({"list"}).out, "# hub h.example\na/m\tkeys\n");
  r = Identity({"remove", "--device", "a"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "a is not in")) << r.err;
  r = Identity({"connection-string", "--device", "nobody"});
  EXPECT_EQ(r.code, 1);
}

TEST_F(IdentityCommandTest, UsageErrors) {
  EXPECT_EQ(Edgeroute({"identity"}).code, 2);
  EXPECT_EQ(Edgeroute({"identity", "frob", "--identities", path_}).code, 2);
  EXPECT_EQ(Edgeroute({"identity", "token", "--device", "d"}).code, 2);
  EXPECT_EQ(Identity({"token"}).code, 2);
  EXPECT_EQ(Identity({"token", "--device", "d", "--ttl", "0"}).code, 2);
  EXPECT_EQ(Identity({"token", "--device", "d", "--ttl", "x"}).code, 2);
  EXPECT_EQ(Identity({"token", "--device", "d", "--hub", "h"}).code, 2);
  EXPECT_EQ(Identity({"list", "--device", "d"}).code, 2);
  EXPECT_EQ(Identity({"add", "--device", "d", "--x509-ca", "--x509-thumbprint",
                      std::string(64, 'a')})
                .code,
            2);
  EXPECT_EQ(Identity({"add", "--device"}).code, 2);
  EXPECT_EQ(Identity({"add", "--device", "d", "--x509-ca=yes"}).code, 2);
  CliRun r = Identity({"token", "--device", "d", "--bogus"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(absl::StrContains(r.err, "unknown option --bogus")) << r.err;
  // The missing file of a read command.
  r = Identity({"token", "--device", "d"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "identities file '")) << r.err;
}

}  // namespace
}  // namespace edgeroute::tools
