#include "gateway/auth/identities.h"

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "gateway/auth/test_util.h"
#include "gateway/event_loop.h"
#include "gtest/gtest.h"

namespace edgeroute {
namespace gateway {
namespace auth {
namespace {

constexpr char kHub[] = "myhub.azure-devices.net";
const absl::Time kNow = absl::FromUnixSeconds(1700000000);
constexpr int64_t kLater = 1700003600;  // kNow + 1 h

// Keys of 32 bytes, written as base64 by the openssl command line.
std::string KeyOf(char byte) {
  std::string hex;
  for (int i = 0; i < 32; ++i)
    absl::StrAppend(&hex, absl::Hex(byte + i, absl::kZeroPad2));
  return testing::OpenSslBase64(hex);
}

class IdentitiesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    module_primary_ = KeyOf(0x10);
    module_secondary_ = KeyOf(0x30);
    leaf_key_ = KeyOf(0x50);
    other_module_key_ = KeyOf(0x70);
    ASSERT_FALSE(module_primary_.empty());
    thumbprint_ = std::string(64, 'a');
    thumbprint_[0] = 'F';
    file_ = absl::StrCat(
        "{\"hub\": \"", kHub, "\",\n", " \"identities\": [\n",
        "   {\"deviceId\": \"edge-gw\", \"moduleId\": \"sensor\", "
        "\"primaryKey\": \"",
        module_primary_, "\", \"secondaryKey\": \"", module_secondary_,
        "\"},\n",
        "   {\"deviceId\": \"edge-gw\", \"moduleId\": \"filter\", "
        "\"primaryKey\": \"",
        other_module_key_, "\"},\n",
        "   {\"deviceId\": \"leaf-1\", \"primaryKey\": \"", leaf_key_, "\"},\n",
        "   {\"deviceId\": \"leaf-2\", \"x509Thumbprint\": \"", thumbprint_,
        "\"},\n", "   {\"deviceId\": \"leaf-3\", \"x509\": \"ca\"},\n",
        "   {\"deviceId\": \"odd@id(1)\", \"primaryKey\": \"", leaf_key_,
        "\"}]}\n");
    absl::StatusOr<std::shared_ptr<const IdentityRegistry>> registry =
        IdentityRegistry::Parse(file_);
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = *registry;
  }

  // A CONNECT as the Azure IoT C/Python SDKs send it.
  absl::Status Connect(absl::string_view client_id, std::string password,
                       const PeerInfo* peer = nullptr, absl::Time now = kNow) {
    Credentials credentials;
    credentials.client_id = client_id;
    const std::string username =
        absl::StrCat(kHub, "/", client_id, "/?api-version=2021-04-12");
    credentials.username = username;
    if (!password.empty()) credentials.password = std::move(password);
    credentials.peer = peer;
    absl::StatusOr<Identity> identity =
        registry_->Authenticate(credentials, now);
    if (identity.ok()) {
      EXPECT_EQ(
          identity->module_id.empty()
              ? identity->device_id
              : absl::StrCat(identity->device_id, "/", identity->module_id),
          client_id);
    }
    return identity.status();
  }

  static std::string Resource(absl::string_view path) {
    return absl::StrCat(kHub, "/", path);
  }

  std::string module_primary_, module_secondary_, leaf_key_, other_module_key_;
  std::string thumbprint_;
  std::string file_;
  std::shared_ptr<const IdentityRegistry> registry_;
};

void ExpectDenied(const absl::Status& status, absl::string_view why,
                  absl::StatusCode code = absl::StatusCode::kPermissionDenied) {
  EXPECT_EQ(status.code(), code) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), why))
      << "expected '" << why << "' in: " << status;
}

TEST_F(IdentitiesTest, ParsesTheIssueFormat) {
  EXPECT_EQ(registry_->hub(), kHub);
  ASSERT_EQ(registry_->entries().size(), 6u);
  const IdentityEntry* sensor = registry_->Find({"edge-gw", "sensor"});
  ASSERT_NE(sensor, nullptr);
  EXPECT_EQ(sensor->kind(), IdentityEntry::Kind::kSymmetricKey);
  EXPECT_EQ(sensor->secondary_key, module_secondary_);
  const IdentityEntry* leaf2 = registry_->Find({"leaf-2", ""});
  ASSERT_NE(leaf2, nullptr);
  EXPECT_EQ(leaf2->kind(), IdentityEntry::Kind::kX509Thumbprint);
  EXPECT_EQ(leaf2->x509_thumbprint, absl::AsciiStrToLower(thumbprint_));
  EXPECT_EQ(registry_->Find({"leaf-3", ""})->kind(),
            IdentityEntry::Kind::kX509Ca);
  EXPECT_EQ(registry_->Find({"edge-gw", ""}), nullptr);
  EXPECT_EQ(registry_->Find({"leaf-1", "x"}), nullptr);
}

TEST_F(IdentitiesTest, ToJsonParsesBackToTheSameEntries) {
  const std::string json = registry_->ToJson();
  absl::StatusOr<std::shared_ptr<const IdentityRegistry>> again =
      IdentityRegistry::Parse(json);
  ASSERT_TRUE(again.ok()) << again.status() << "\n" << json;
  EXPECT_EQ((*again)->hub(), kHub);
  ASSERT_EQ((*again)->entries().size(), registry_->entries().size());
  for (size_t i = 0; i < registry_->entries().size(); ++i) {
    const IdentityEntry& a = registry_->entries()[i];
    const IdentityEntry& b = (*again)->entries()[i];
    EXPECT_EQ(a.identity, b.identity);
    EXPECT_EQ(a.primary_key, b.primary_key);
    EXPECT_EQ(a.secondary_key, b.secondary_key);
    EXPECT_EQ(a.x509_thumbprint, b.x509_thumbprint);
    EXPECT_EQ(a.x509_ca, b.x509_ca);
  }
  EXPECT_EQ((*again)->ToJson(), json);
  // One identity per line, as a person would write it.
  EXPECT_TRUE(absl::StrContains(
      json, "\n    {\"deviceId\": \"leaf-3\", \"x509\": \"ca\"},\n"))
      << json;
  EXPECT_TRUE(absl::StartsWith(
      json,
      "{\n  \"hub\": \"myhub.azure-devices.net\",\n  \"identities\": [\n"))
      << json;
}

// Every validation error, with its line and column.
TEST(IdentitiesFileTest, EveryErrorHasLineAndColumn) {
  const std::string key = Base64Encode(std::string(32, 'k'));
  const std::string key15 = Base64Encode(std::string(15, 'k'));
  const std::string key65 = Base64Encode(std::string(65, 'k'));
  const std::string thumb(64, 'a');
  auto file = [](const std::string& identities) {
    return absl::StrCat("{\"hub\": \"h.example\",\n \"identities\": [\n",
                        identities, "]}");
  };
  auto entry = [](const std::string& fields) {
    return absl::StrCat("  {", fields, "}");
  };
  const std::string d = "\"deviceId\": \"d\"";
  const std::string pk = absl::StrCat("\"primaryKey\": \"", key, "\"");
  struct Case {
    std::string text;
    std::string expected;  // the whole message, or a prefix ending in "..."
  } cases[] = {
      {"{\"hub\": \"h\", \"identities\": [}", "1:29: syntax error"},
      {"[1]", "1:1: the identities file must be an object..."},
      {"{\"hub\": \"h\",\n \"identities\": [],\n \"hubs\": 1}",
       "3:2: unknown field 'hubs' (the identities file has hub and "
       "identities)"},
      {"{\"identities\": []}", "1:1: the identities file has no hub field"},
      {"{\"hub\": \"h\"}", "1:1: the identities file has no identities field"},
      {"{\"hub\": 7, \"identities\": []}", "1:9: hub must be a string"},
      {"{\"hub\": \"my hub\", \"identities\": []}",
       "1:9: hub 'my hub' is not a host name..."},
      {"{\"hub\": \"a..b\", \"identities\": []}", "1:9: hub 'a..b' is not..."},
      {"{\"hub\": \"\", \"identities\": []}",
       "1:9: hub must be a host name of 1 to 255 characters"},
      {"{\"hub\": \"h\", \"identities\": {}}",
       "1:28: identities must be an array"},
      {file("  \"d\""), "3:3: an identity must be an object..."},
      {file(entry(absl::StrCat(d, ", ", pk, ", \"primarykey\": \"x\""))),
       absl::StrCat("3:", 23 + pk.size(),
                    ": unknown field 'primarykey' (an identity has deviceId, "
                    "moduleId, primaryKey, secondaryKey, x509Thumbprint, "
                    "x509, parent, gateway)")},
      {file(entry(absl::StrCat("\"deviceId\": 5, ", pk))),
       "3:16: deviceId must be a string"},
      {file(entry(absl::StrCat("\"deviceId\": \"\", ", pk))),
       "3:16: deviceId must have 1 to 128 characters"},
      {file(entry(absl::StrCat("\"deviceId\": \"", std::string(129, 'x'),
                               "\", ", pk))),
       "3:16: deviceId must have 1 to 128 characters"},
      {file(entry(absl::StrCat("\"deviceId\": \"a/b\", ", pk))),
       "3:16: deviceId 'a/b' has the character '/'; ids are ASCII letters..."},
      {file(entry(absl::StrCat("\"deviceId\": \"a b\", ", pk))),
       "3:16: deviceId 'a b' has the character ' '..."},
      {file(entry(absl::StrCat("\"deviceId\": \"caf\xc3\xa9\", ", pk))),
       "3:16: deviceId 'caf\\xc3\\xa9' has the character '\\xc3'..."},
      {file(entry(absl::StrCat(d, ", \"moduleId\": \"\", ", pk))),
       "3:33: moduleId must have 1 to 128 characters"},
      {file(entry(absl::StrCat(d, ", \"primaryKey\": \"abc\""))),
       "3:35: primaryKey is not valid base64..."},
      {file(entry(absl::StrCat(d, ", \"primaryKey\": \"", key15, "\""))),
       "3:35: primaryKey decodes to 15 bytes; a key must have 16 to 64..."},
      {file(entry(absl::StrCat(d, ", \"primaryKey\": \"", key65, "\""))),
       "3:35: primaryKey decodes to 65 bytes..."},
      {file(entry(absl::StrCat(d, ", ", pk, ", \"secondaryKey\": \"a=b=\""))),
       absl::StrCat("3:", 39 + pk.size(), ": secondaryKey is not valid...")},
      {file(entry(
           absl::StrCat(d, ", \"x509Thumbprint\": \"", thumb.substr(1), "\""))),
       "3:39: x509Thumbprint must be the SHA-256..."},
      {file(entry(absl::StrCat(d, ", \"x509Thumbprint\": \"", thumb.substr(1),
                               "g\""))),
       "3:39: x509Thumbprint must be the SHA-256..."},
      {file(entry(absl::StrCat(d, ", \"x509\": \"self\""))),
       "3:29: x509 must be \"ca\"..."},
      {file(entry(absl::StrCat(d, ", \"x509\": true"))),
       "3:29: x509 must be a string"},
      {file(entry(d)), "3:3: identity d has no credential..."},
      {file(entry(
           absl::StrCat(d, ", ", pk, ", \"x509Thumbprint\": \"", thumb, "\""))),
       "3:3: identity d has more than one credential..."},
      {file(entry(absl::StrCat(d, ", \"x509\": \"ca\", \"x509Thumbprint\": \"",
                               thumb, "\""))),
       "3:3: identity d has more than one credential..."},
      {file(entry(absl::StrCat(d, ", \"secondaryKey\": \"", key, "\""))),
       "3:3: identity d has a secondaryKey but no primaryKey"},
      {file(entry(absl::StrCat(d, ", \"moduleId\": \"m\", \"x509\": \"ca\""))),
       "3:3: identity d/m: \"x509\": \"ca\" is for devices..."},
      {file(entry(pk)), "3:3: identity without a deviceId"},
      {file(absl::StrCat(entry(absl::StrCat(d, ", ", pk)), ",\n",
                         entry(absl::StrCat(d, ", ", pk)))),
       "4:3: identity d is listed twice (first at 3:3)"},
      {file(entry(absl::StrCat(d, ", ", d, ", ", pk))),
       "3:21: member \"deviceId\" appears twice (first at 3:4)"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::shared_ptr<const IdentityRegistry>> registry =
        IdentityRegistry::Parse(c.text);
    ASSERT_FALSE(registry.ok()) << c.text;
    EXPECT_EQ(registry.status().code(), absl::StatusCode::kInvalidArgument);
    if (absl::EndsWith(c.expected, "...")) {
      EXPECT_TRUE(absl::StartsWith(registry.status().message(),
                                   c.expected.substr(0, c.expected.size() - 3)))
          << c.text << "\n-> " << registry.status();
    } else if (absl::EndsWith(c.expected, "syntax error")) {
      EXPECT_TRUE(absl::StartsWith(registry.status().message(), c.expected))
          << registry.status();
    } else {
      EXPECT_EQ(std::string(registry.status().message()), c.expected) << c.text;
    }
    // Keys are never shown.
    EXPECT_FALSE(absl::StrContains(registry.status().message(), key))
        << registry.status();
  }
}

TEST(IdentitiesFileTest, EmptyListAndModuleThumbprintAreFine) {
  EXPECT_TRUE(
      IdentityRegistry::Parse("{\"hub\": \"h\", \"identities\": []}").ok());
  EXPECT_TRUE(IdentityRegistry::Parse(
                  absl::StrCat(
                      "{\"hub\": \"h\", \"identities\": [{\"deviceId\": \"d\", "
                      "\"moduleId\": \"m\", \"x509Thumbprint\": \"",
                      std::string(64, 'B'), "\"}]}"))
                  .ok());
}

TEST(IdentitiesFileTest, LoadFileNamesThePath) {
  const std::string dir = std::getenv("TEST_TMPDIR");
  absl::StatusOr<std::shared_ptr<const IdentityRegistry>> missing =
      IdentityRegistry::LoadFile(dir + "/no-such-file.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(missing.status().message(), "no-such-file"));

  const std::string path = dir + "/bad-identities.json";
  std::ofstream(path) << "{\"hub\": \"h\",\n \"identities\": 1}";
  absl::StatusOr<std::shared_ptr<const IdentityRegistry>> bad =
      IdentityRegistry::LoadFile(path);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            absl::StrCat("identities file '", path,
                         "':2:16: identities must be an array"));
  std::ofstream(path) << "{\"hub\": \"h\", \"identities\": []}";
  EXPECT_TRUE(IdentityRegistry::LoadFile(path).ok());
}

TEST(IdentitiesFileTest, CreateValidatesEntriesByIndex) {
  IdentityEntry good;
  good.identity = {"d", ""};
  good.primary_key = Base64Encode(std::string(32, 'k'));
  EXPECT_TRUE(IdentityRegistry::Create("h.example", {good}).ok());
  IdentityEntry bad = good;
  bad.identity.module_id = "m m";
  absl::StatusOr<std::shared_ptr<const IdentityRegistry>> registry =
      IdentityRegistry::Create("h.example", {good, bad});
  ASSERT_FALSE(registry.ok());
  EXPECT_TRUE(absl::StartsWith(registry.status().message(),
                               "identity 2: moduleId 'm m' has the character"))
      << registry.status();
  registry = IdentityRegistry::Create("h.example", {good, good});
  ASSERT_FALSE(registry.ok());
  EXPECT_EQ(registry.status().message(),
            "identity 2: d is listed twice (first as identity 1)");
  EXPECT_FALSE(IdentityRegistry::Create("bad host", {good}).ok());
}

TEST(GenerateSymmetricKeyTest, RandomKeysOfTheRequestedSize) {
  absl::StatusOr<std::string> a = GenerateSymmetricKey();
  absl::StatusOr<std::string> b = GenerateSymmetricKey();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  EXPECT_EQ(Base64Decode(*a)->size(), 32u);
  EXPECT_EQ(Base64Decode(*GenerateSymmetricKey(16))->size(), 16u);
  EXPECT_EQ(Base64Decode(*GenerateSymmetricKey(64))->size(), 64u);
  EXPECT_FALSE(GenerateSymmetricKey(15).ok());
  EXPECT_FALSE(GenerateSymmetricKey(65).ok());
}

TEST_F(IdentitiesTest, SasTokensFromPythonAreAccepted) {
  EXPECT_TRUE(
      Connect("leaf-1", testing::PythonSasToken(Resource("devices/leaf-1"),
                                                leaf_key_, kLater))
          .ok());
  EXPECT_TRUE(
      Connect("edge-gw/sensor", testing::PythonSasToken(
                                    Resource("devices/edge-gw/modules/sensor"),
                                    module_primary_, kLater))
          .ok());
  // Ids with characters that are URL-encoded in the resource.
  const std::string odd =
      testing::PythonSasToken(Resource("devices/odd@id(1)"), leaf_key_, kLater);
  EXPECT_TRUE(absl::StrContains(odd, "odd%40id%281%29")) << odd;
  EXPECT_TRUE(Connect("odd@id(1)", odd).ok());
  // Our own tokens too.
  EXPECT_TRUE(
      Connect("leaf-1", MakeSasToken(Resource("devices/leaf-1"), leaf_key_,
                                     absl::FromUnixSeconds(kLater)))
          .ok());
}

TEST_F(IdentitiesTest, SecondaryKeySignsToo) {
  EXPECT_TRUE(
      Connect("edge-gw/sensor", testing::PythonSasToken(
                                    Resource("devices/edge-gw/modules/sensor"),
                                    module_secondary_, kLater))
          .ok());
  // A key that belongs to another identity does not.
  ExpectDenied(
      Connect("edge-gw/sensor", testing::PythonSasToken(
                                    Resource("devices/edge-gw/modules/sensor"),
                                    other_module_key_, kLater)),
      "matches neither the primary nor the secondary key");
}

TEST_F(IdentitiesTest, ExpiryAllowsFiveMinutesOfClockSkew) {
  const std::string token = testing::PythonSasToken(
      Resource("devices/leaf-1"), leaf_key_, absl::ToUnixSeconds(kNow) - 10);
  EXPECT_TRUE(Connect("leaf-1", token).ok());
  EXPECT_TRUE(Connect("leaf-1", token, nullptr,
                      kNow - absl::Seconds(10) + kMaxClockSkew)
                  .ok());
  ExpectDenied(Connect("leaf-1", token, nullptr,
                       kNow - absl::Seconds(9) + kMaxClockSkew),
               "leaf-1: the SAS token expired at 2023-11-14T22:13:10Z");
}

TEST_F(IdentitiesTest, ResourceMustNameExactlyThisIdentity) {
  // Signed with the right key, but naming something else.
  const struct {
    std::string resource;
    const char* client_id;
    const char* key;  // "leaf" or "module"
  } cases[] = {
      {Resource("devices/leaf-2"), "leaf-1", "leaf"},
      {"otherhub.azure-devices.net/devices/leaf-1", "leaf-1", "leaf"},
      {Resource("devices/leaf-1/modules/x"), "leaf-1", "leaf"},
      {Resource("devices/leaf-1/"), "leaf-1", "leaf"},
      {Resource("devices/Leaf-1"), "leaf-1", "leaf"},
      {Resource("leaf-1"), "leaf-1", "leaf"},
      {"", "leaf-1", "leaf"},
      {kHub, "leaf-1", "leaf"},
      // A device-scoped token for a module, and a module claiming another.
      {Resource("devices/edge-gw"), "edge-gw/sensor", "module"},
      {Resource("devices/edge-gw/modules/filter"), "edge-gw/sensor", "module"},
  };
  for (const auto& c : cases) {
    const std::string token = testing::PythonSasToken(
        c.resource, std::string(c.key) == "leaf" ? leaf_key_ : module_primary_,
        kLater);
    const absl::Status status = Connect(c.client_id, token);
    if (c.resource.empty()) {
      ExpectDenied(status, "'sr' is empty");
    } else {
      ExpectDenied(status, "the SAS token's resource");
    }
  }
  // The host part is compared case-insensitively.
  EXPECT_TRUE(Connect("leaf-1", testing::PythonSasToken(
                                    "MyHub.Azure-Devices.NET/devices/leaf-1",
                                    leaf_key_, kLater))
                  .ok());
}

TEST_F(IdentitiesTest, TamperedTokensAreRefusedWithoutEchoingSecrets) {
  const std::string token =
      testing::PythonSasToken(Resource("devices/leaf-1"), leaf_key_, kLater);
  const size_t sig = token.find("sig=") + 4;
  std::string tampered = token;
  tampered[sig + 3] = tampered[sig + 3] == 'A' ? 'B' : 'A';
  const absl::Status status = Connect("leaf-1", tampered);
  ExpectDenied(status, "matches neither");
  const std::string sig_text = token.substr(sig, token.find('&', sig) - sig);
  EXPECT_FALSE(absl::StrContains(status.message(), sig_text));
  EXPECT_FALSE(absl::StrContains(status.message(), tampered.substr(sig, 10)));
  EXPECT_FALSE(absl::StrContains(status.message(), leaf_key_));
  // A later expiry than the one signed.
  ExpectDenied(
      Connect("leaf-1",
              absl::StrReplaceAll(token, {{"se=1700003600", "se=1700007200"}})),
      "matches neither");
  // Malformed tokens are CONNACK 5 too.
  ExpectDenied(Connect("leaf-1", "SharedAccessSignature sr=x"), "no 'sig'");
  ExpectDenied(Connect("leaf-1", "password"), "not a SAS token");
}

TEST_F(IdentitiesTest, UrlEncodingVariants) {
  // The signature is over `sr` exactly as sent: lower-case escapes, no
  // escapes at all, or an unencoded signature all verify as long as the
  // signer signed that text.
  const std::string plain_resource = Resource("devices/leaf-1");
  for (const std::string& sr :
       {absl::StrReplaceAll(UrlEncode(plain_resource), {{"%2F", "%2f"}}),
        plain_resource, UrlEncode(UrlEncode(plain_resource))}) {
    const std::string key_hex =
        absl::BytesToHexString(*Base64Decode(leaf_key_));
    const std::string mac =
        testing::OpenSslHmacBase64(key_hex, absl::StrCat(sr, "\n", kLater));
    ASSERT_FALSE(mac.empty());
    const std::string token =
        absl::StrCat("SharedAccessSignature sr=", sr, "&sig=", UrlEncode(mac),
                     "&se=", kLater);
    const absl::Status status = Connect("leaf-1", token);
    if (sr.find("%252F") != std::string::npos) {
      // Encoded twice: after one decoding it is not the resource.
      ExpectDenied(status, "the SAS token's resource");
    } else {
      EXPECT_TRUE(status.ok()) << sr << ": " << status;
    }
    // The base64 signature sent without URL-encoding ('+', '/' and '=' as
    // they are) is accepted as well.
    EXPECT_EQ(Connect("leaf-1", absl::StrCat("SharedAccessSignature sr=", sr,
                                             "&sig=", mac, "&se=", kLater))
                  .ok(),
              status.ok());
  }
}

TEST_F(IdentitiesTest, FieldsInAnyOrderWithKeyName) {
  EXPECT_TRUE(Connect("leaf-1", testing::PythonSasToken(
                                    Resource("devices/leaf-1"), leaf_key_,
                                    kLater, "skn,se,sig,sr", "device"))
                  .ok());
}

TEST_F(IdentitiesTest, NodeSdkUserNameForm) {
  Credentials credentials;
  credentials.client_id = "edge-gw/sensor";
  const std::string username = absl::StrCat(
      kHub, "/edge-gw/sensor/api-version=2020-09-30&DeviceClientType=",
      "azure-iot-device%2F1.18.3%20(node%20v18.19.0%3B%20Debian)");
  credentials.username = username;
  credentials.password = testing::PythonSasToken(
      Resource("devices/edge-gw/modules/sensor"), module_primary_, kLater);
  absl::StatusOr<Identity> identity =
      registry_->Authenticate(credentials, kNow);
  ASSERT_TRUE(identity.ok()) << identity.status();
  EXPECT_EQ(*identity, (Identity{"edge-gw", "sensor"}));
}

TEST(ParseMqttIdentityTest, UserNameForms) {
  struct Case {
    const char* client_id;
    const char* username;
    const char* error;  // null: accepted
  } cases[] = {
      {"d", "hub/d/?api-version=2021-04-12", nullptr},
      {"d", "hub/d/api-version=2021-04-12", nullptr},
      {"d", "gateway.local/d/?api-version=x&DeviceClientType=c&model-id=m",
       nullptr},
      {"d/m", "hub/d/m/?DeviceClientType=c&api-version=1", nullptr},
      {"d/m", "/d/m/?api-version=1", nullptr},
      {"d", "hub/d/?DeviceClientType=c", "has no api-version"},
      {"d", "hub/d/", "has no api-version"},
      {"d", "hub/d", "does not name the client id's identity d"},
      {"d", "hub/e/?api-version=1", "does not name the client id's identity"},
      {"d", "hub/d/m/?api-version=1", "has no api-version"},
      {"d/m", "hub/d/?api-version=1", "does not name"},
      {"d/m", "hub/d/n/?api-version=1", "does not name"},
      {"d", "hubd?api-version=1", "user name must be {hub}/"},
      {"d", "", "user name must be"},
      {"", "hub//?api-version=1", "client id's device id must have 1 to 128"},
      {"d/m/x", "hub/d/m/x/?api-version=1", "client id must be"},
      {"d/", "hub/d//?api-version=1", "client id's module id must have"},
      {"d m", "hub/d m/?api-version=1", "has the character ' '"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Identity> identity =
        ParseMqttIdentity(c.client_id, c.username);
    if (c.error == nullptr) {
      EXPECT_TRUE(identity.ok()) << c.username << ": " << identity.status();
    } else {
      ExpectDenied(identity.status(), c.error,
                   absl::StatusCode::kUnauthenticated);
    }
  }
}

TEST_F(IdentitiesTest, UnknownIdentitiesAndMissingPasswords) {
  ExpectDenied(
      Connect("nobody", testing::PythonSasToken(Resource("devices/nobody"),
                                                leaf_key_, kLater)),
      "identity 'nobody' is not in the identities file");
  ExpectDenied(
      Connect("edge-gw", testing::PythonSasToken(Resource("devices/edge-gw"),
                                                 module_primary_, kLater)),
      "is not in the identities file");
  ExpectDenied(Connect("leaf-1", ""), "none was given");
  // A malformed identity is CONNACK 4, before anything is looked up.
  Credentials credentials;
  credentials.client_id = "leaf-1";
  credentials.username = "myhub/leaf-2/?api-version=1";
  credentials.password = "x";
  ExpectDenied(registry_->Authenticate(credentials, kNow).status(),
               "does not name", absl::StatusCode::kUnauthenticated);
}

TEST_F(IdentitiesTest, X509ByThumbprint) {
  PeerInfo peer;
  peer.tls = true;
  peer.client_cert_sha256_hex = absl::AsciiStrToLower(thumbprint_);
  // The file had an upper-case digit; the peer reports lower case.
  EXPECT_TRUE(Connect("leaf-2", "", &peer).ok());
  // A self-signed certificate need not verify against a CA bundle.
  peer.client_cert_verified = false;
  EXPECT_TRUE(Connect("leaf-2", "", &peer).ok());
  peer.client_cert_sha256_hex[5] = 'b';
  ExpectDenied(Connect("leaf-2", "", &peer), "thumbprint is not");
  ExpectDenied(Connect("leaf-2", ""), "presented none");
  PeerInfo no_cert;
  no_cert.tls = true;
  ExpectDenied(Connect("leaf-2", "", &no_cert), "presented none");
  // A SAS token is not a certificate.
  ExpectDenied(
      Connect("leaf-2", testing::PythonSasToken(Resource("devices/leaf-2"),
                                                leaf_key_, kLater)),
      "not a SAS token");
  // The certificate proves nothing for a key identity.
  peer.client_cert_sha256_hex = absl::AsciiStrToLower(thumbprint_);
  ExpectDenied(Connect("leaf-1", "", &peer), "none was given");
}

TEST_F(IdentitiesTest, X509ByCaAndCommonName) {
  PeerInfo peer;
  peer.tls = true;
  peer.client_cert_verified = true;
  peer.client_cert_sha256_hex = std::string(64, 'c');
  peer.client_cert_subject_cn = "leaf-3";
  EXPECT_TRUE(Connect("leaf-3", "", &peer).ok());
  peer.client_cert_subject_cn = "leaf-30";
  ExpectDenied(Connect("leaf-3", "", &peer),
               "subject CN 'leaf-30' is not the device id");
  peer.client_cert_subject_cn = "leaf-3";
  peer.client_cert_verified = false;
  ExpectDenied(Connect("leaf-3", "", &peer),
               "does not verify against the client CA bundle");
  ExpectDenied(Connect("leaf-3", ""), "presented none");
}

TEST_F(IdentitiesTest, VerifyForTheNativeProtocol) {
  const std::string token =
      MakeSasToken(Resource("devices/edge-gw/modules/sensor"), module_primary_,
                   absl::FromUnixSeconds(kLater));
  EXPECT_TRUE(
      registry_->Verify({"edge-gw", "sensor"}, token, nullptr, kNow).ok());
  ExpectDenied(registry_->Verify({"edge-gw", "filter"}, token, nullptr, kNow),
               "the SAS token's resource");
  ExpectDenied(
      registry_->Verify({"edge-gw", "sensor"}, std::nullopt, nullptr, kNow),
      "none was given");
}

}  // namespace
}  // namespace auth
}  // namespace gateway
}  // namespace edgeroute

namespace edgeroute {
namespace gateway {
namespace auth {
namespace {

// Nested gateways: A (this gateway's file) knows child gateway "child",
// grandchild gateway "grand" under it, a leaf under each, and a plain
// device "plain" whose entry names "child" but is no gateway.
constexpr char kHierarchy[] = R"({"hub": "h.example", "identities": [
  {"deviceId": "child", "primaryKey": "KEY", "gateway": true},
  {"deviceId": "grand", "gateway": true, "parent": "child"},
  {"deviceId": "leaf-c", "parent": "child"},
  {"deviceId": "leaf-g", "parent": "grand"},
  {"deviceId": "plain", "primaryKey": "KEY", "parent": "child"},
  {"deviceId": "leaf-p", "parent": "plain"},
  {"deviceId": "other", "primaryKey": "KEY"},
  {"deviceId": "loop-a", "gateway": true, "parent": "loop-b"},
  {"deviceId": "loop-b", "gateway": true, "parent": "loop-a"}]})";

std::shared_ptr<const IdentityRegistry> Hierarchy() {
  const std::string key = Base64Encode(std::string(32, 'k'));
  auto registry =
      IdentityRegistry::Parse(absl::StrReplaceAll(kHierarchy, {{"KEY", key}}));
  EXPECT_TRUE(registry.ok()) << registry.status();
  return registry.ok() ? *registry : nullptr;
}

TEST(NestedGatewaysTest, ScopeIsTheGatewayItsModulesAndItsDescendants) {
  auto registry = Hierarchy();
  ASSERT_NE(registry, nullptr);
  const Identity child{"child", ""};
  EXPECT_TRUE(registry->MayActFor(child, {"child", ""}));
  EXPECT_TRUE(registry->MayActFor(child, {"child", "sensor"}));
  EXPECT_TRUE(registry->MayActFor(child, {"leaf-c", ""}));
  EXPECT_TRUE(registry->MayActFor(child, {"grand", ""}));
  EXPECT_TRUE(registry->MayActFor(child, {"grand", "filter"}));
  // Transitively: a leaf under the grandchild gateway.
  EXPECT_TRUE(registry->MayActFor(child, {"leaf-g", ""}));
  // A device that is not a gateway does not extend the scope.
  EXPECT_TRUE(registry->MayActFor(child, {"plain", ""}));
  EXPECT_FALSE(registry->MayActFor(child, {"leaf-p", ""}));
  // Outside the scope, unknown, or not a gateway at all.
  EXPECT_FALSE(registry->MayActFor(child, {"other", ""}));
  EXPECT_FALSE(registry->MayActFor(child, {"stranger", ""}));
  EXPECT_FALSE(registry->MayActFor({"other", ""}, {"other", "m"}));
  EXPECT_FALSE(registry->MayActFor({"plain", ""}, {"leaf-p", ""}));
  EXPECT_FALSE(registry->MayActFor({"child", "sensor"}, {"leaf-c", ""}));
  // The grandchild's scope does not reach up.
  EXPECT_TRUE(registry->MayActFor({"grand", ""}, {"leaf-g", ""}));
  EXPECT_FALSE(registry->MayActFor({"grand", ""}, {"leaf-c", ""}));
  // A cycle of parents ends: neither is in a third gateway's scope.
  EXPECT_FALSE(registry->MayActFor(child, {"loop-a", ""}));
}

TEST(NestedGatewaysTest, ScopeEntriesCannotSignIn) {
  auto registry = Hierarchy();
  ASSERT_NE(registry, nullptr);
  EXPECT_EQ(registry->Find({"leaf-c", ""})->kind(),
            IdentityEntry::Kind::kScopeOnly);
  const absl::Status s = registry->Verify({"leaf-c", ""}, "", nullptr, kNow);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "no credential")) << s;
  // The fields survive a round trip through ToJson.
  auto again = IdentityRegistry::Parse(registry->ToJson());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE((*again)->Find({"grand", ""})->gateway);
  EXPECT_EQ((*again)->Find({"grand", ""})->parent, "child");
  EXPECT_TRUE((*again)->MayActFor({"child", ""}, {"leaf-g", ""}));
}

TEST(NestedGatewaysTest, BadHierarchyFieldsHavePositions) {
  auto parse = [](const std::string& entry) {
    return IdentityRegistry::Parse(absl::StrCat(
        "{\"hub\": \"h.example\",\n \"identities\": [\n  ", entry, "]}"));
  };
  auto gateway_string = parse(R"({"deviceId": "d", "gateway": "yes"})");
  EXPECT_EQ(std::string(gateway_string.status().message()),
            "3:32: gateway must be true or false");
  auto bad_parent = parse(R"({"deviceId": "d", "parent": "a b"})");
  EXPECT_TRUE(absl::StartsWith(bad_parent.status().message(), "3:31: parent"))
      << bad_parent.status();
  auto own_parent = parse(R"({"deviceId": "d", "parent": "d"})");
  EXPECT_TRUE(absl::StrContains(own_parent.status().message(), "itself"))
      << own_parent.status();
  auto module_parent =
      parse(R"({"deviceId": "d", "moduleId": "m", "parent": "p"})");
  EXPECT_TRUE(
      absl::StrContains(module_parent.status().message(), "describe devices"))
      << module_parent.status();
  // Without a parent an entry still needs a credential.
  auto bare = parse(R"({"deviceId": "d", "gateway": true})");
  EXPECT_TRUE(absl::StrContains(bare.status().message(), "no credential"))
      << bare.status();
}

}  // namespace
}  // namespace auth
}  // namespace gateway
}  // namespace edgeroute
