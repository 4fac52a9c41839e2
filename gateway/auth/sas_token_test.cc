#include "gateway/auth/sas_token.h"

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "gateway/auth/test_util.h"
#include "gtest/gtest.h"

namespace edgeroute {
namespace gateway {
namespace auth {
namespace {

// 32 key bytes, as hex and (computed by the openssl command line) base64.
constexpr char kKeyHex[] =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

TEST(Base64Test, RoundTripsEveryPaddingLength) {
  // RFC 4648 section 10.
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("foo"), "Zm9v");
  EXPECT_EQ(Base64Encode("foob"), "Zm9vYg==");
  EXPECT_EQ(Base64Encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  for (const char* text : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    EXPECT_EQ(Base64Decode(Base64Encode(text)), std::string(text)) << text;
  }
  // Bytes that need '+' and '/', and NULs kept.
  const std::string bytes("\xfb\xff\x00\xfe", 4);
  EXPECT_EQ(Base64Encode(bytes), "+/8A/g==");
  EXPECT_EQ(Base64Decode("+/8A/g=="), bytes);
}

TEST(Base64Test, AgreesWithOpenSslCommandLine) {
  const std::string expected = testing::OpenSslBase64(kKeyHex);
  ASSERT_FALSE(expected.empty());
  EXPECT_EQ(Base64Encode(absl::HexStringToBytes(kKeyHex)), expected);
}

TEST(Base64Test, RefusesWhatIsNotBase64) {
  for (const char* bad :
       {"Zg", "Zg=", "Z===", "====", "Zm9v\n", "Zm 9v", " Zm9v",
        "Zg==Zg==", "=Zg=", "Zm9-", "Zm9_", "Zm9v=", "Zg=a"}) {
    EXPECT_FALSE(Base64Decode(bad).has_value()) << bad;
  }
}

TEST(UrlEncodingTest, EncodesReservedBytesAndDecodesEitherCase) {
  EXPECT_EQ(UrlEncode("hub.net/devices/d-1_~.x"),
            "hub.net%2Fdevices%2Fd-1_~.x");
  EXPECT_EQ(UrlEncode("a+b=c&d e@f%"), "a%2Bb%3Dc%26d%20e%40f%25");
  EXPECT_EQ(UrlDecode("hub.net%2fdevices%2Fd%40x"), "hub.net/devices/d@x");
  // '+' stands for itself (this is not form encoding).
  EXPECT_EQ(UrlDecode("a+b"), "a+b");
  for (const char* bad : {"%", "%2", "a%zz", "%G0", "abc%4"}) {
    EXPECT_FALSE(UrlDecode(bad).has_value()) << bad;
  }
}

TEST(MakeSasTokenTest, MatchesTheAzureIotNodeSdkVector) {
  // azure-iot-sdk-node common/core: key = base64("password"), resource "uri",
  // expiry 12345.
  EXPECT_EQ(MakeSasToken("uri", "cGFzc3dvcmQ=", absl::FromUnixSeconds(12345)),
            "SharedAccessSignature sr=uri&sig=kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCy"
            "Nuq2fPYCDhk%3D&se=12345");
}

TEST(MakeSasTokenTest, MatchesPythonStandardLibrary) {
  const std::string key = testing::OpenSslBase64(kKeyHex);
  ASSERT_FALSE(key.empty());
  for (const char* resource :
       {"myhub.azure-devices.net/devices/leaf-1",
        "myhub.azure-devices.net/devices/edge-gw/modules/filter",
        "h.example/devices/odd$id@1(2)"}) {
    const std::string expected =
        testing::PythonSasToken(resource, key, 1700003600);
    ASSERT_FALSE(expected.empty());
    EXPECT_EQ(MakeSasToken(resource, key, absl::FromUnixSeconds(1700003600)),
              expected);
  }
}

TEST(MakeSasTokenTest, SignatureIsTheOpenSslHmacOfResourceNewlineExpiry) {
  const std::string key = testing::OpenSslBase64(kKeyHex);
  const std::string token = MakeSasToken("hub.example/devices/d1", key,
                                         absl::FromUnixSeconds(1700000000));
  const std::string mac = testing::OpenSslHmacBase64(
      kKeyHex, "hub.example%2Fdevices%2Fd1\n1700000000");
  ASSERT_FALSE(mac.empty());
  EXPECT_EQ(token, absl::StrCat("SharedAccessSignature sr=hub.example%2F"
                                "devices%2Fd1&sig=",
                                UrlEncode(mac), "&se=1700000000"));
}

TEST(MakeSasTokenTest, BadKeyGivesEmptyToken) {
  EXPECT_EQ(MakeSasToken("r", "not base64!", absl::FromUnixSeconds(1)), "");
}

TEST(ParseSasTokenTest, FieldsInAnyOrderWithOptionalKeyName) {
  const std::string key = testing::OpenSslBase64(kKeyHex);
  for (const char* order : {"sr,sig,se", "se,sr,sig", "sig,se,sr,skn"}) {
    const std::string token = testing::PythonSasToken(
        "hub.example/devices/d1", key, 1700000000, order, "device");
    absl::StatusOr<SasToken> parsed = ParseSasToken(token);
    ASSERT_TRUE(parsed.ok()) << order << ": " << parsed.status();
    EXPECT_EQ(parsed->encoded_resource, "hub.example%2Fdevices%2Fd1");
    EXPECT_EQ(parsed->resource, "hub.example/devices/d1");
    EXPECT_EQ(parsed->expiry_unix_seconds, 1700000000);
    EXPECT_EQ(parsed->expiry_text, "1700000000");
    EXPECT_EQ(parsed->signature.size(), kSignatureBytes);
    EXPECT_EQ(parsed->key_name,
              absl::StrContains(order, "skn") ? "device" : "");
    EXPECT_TRUE(SasSignatureMatches(*parsed, key)) << order;
  }
}

TEST(ParseSasTokenTest, NamesAreCaseInsensitiveAndEmptyFieldsSkipped) {
  const std::string token = MakeSasToken(
      "h.example/devices/d", "cGFzc3dvcmQ=", absl::FromUnixSeconds(99));
  std::string mixed = absl::StrReplaceAll(
      token, {{" sr=", " SR="}, {"&sig=", "&&Sig="}, {"&se=", "&sE="}});
  mixed += "&";
  absl::StatusOr<SasToken> parsed = ParseSasToken(mixed);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(SasSignatureMatches(*parsed, "cGFzc3dvcmQ="));
}

TEST(ParseSasTokenTest, RefusesMalformedTokensWithoutShowingTheSignature) {
  const std::string good = MakeSasToken(
      "h.example/devices/d", "cGFzc3dvcmQ=", absl::FromUnixSeconds(99));
  const std::string sig = good.substr(
      good.find("sig=") + 4, good.find("&se=") - good.find("sig=") - 4);
  const std::string sig31 = UrlEncode(Base64Encode(std::string(31, 'x')));
  struct Case {
    std::string token;
    const char* why;
  } cases[] = {
      {"", "must start with"},
      {"sharedaccesssignature sr=a&sig=b&se=1", "must start with"},
      {"SharedAccessSignature  sr=a", "white space"},
      {absl::StrReplaceAll(good, {{"&se=", " &se="}}), "white space"},
      {absl::StrCat(good, "\xc3\xa9"), "printable ASCII"},
      {absl::StrReplaceAll(good, {{"&se=99", ""}}), "no 'se'"},
      {absl::StrReplaceAll(good, {{"sr=h.example%2Fdevices%2Fd&", ""}}),
       "no 'sr'"},
      {absl::StrCat("SharedAccessSignature sr=a&se=1"), "no 'sig'"},
      {absl::StrCat(good, "&se=100"), "appears twice"},
      {absl::StrCat(good, "&SR=x"), "appears twice"},
      {absl::StrCat(good, "&foo=1"), "unknown field 'foo'"},
      {absl::StrCat(good, "&novalue"), "without '='"},
      {absl::StrReplaceAll(good, {{"se=99", "se=1.5"}}), "decimal Unix"},
      {absl::StrReplaceAll(good, {{"se=99", "se=-1"}}), "decimal Unix"},
      {absl::StrReplaceAll(good, {{"se=99", "se="}}), "decimal Unix"},
      {absl::StrReplaceAll(good, {{"se=99", "se=1234567890123456789"}}),
       "decimal Unix"},
      {absl::StrReplaceAll(good, {{sig, sig31}}), "32-byte"},
      {absl::StrReplaceAll(good, {{sig, "%%%"}}), "32-byte"},
      {absl::StrReplaceAll(good, {{sig, "a"}}), "32-byte"},
      {absl::StrReplaceAll(good, {{"sr=h.example", "sr=%zz"}}), "bad %-escape"},
      {absl::StrReplaceAll(good, {{"sr=h.example%2Fdevices%2Fd", "sr="}}),
       "'sr' is empty"},
      {absl::StrCat(good, "&skn=%4"), "'skn' has a bad"},
      {absl::StrCat(good, "&skn=", std::string(kMaxSasTokenBytes, 'a')),
       "longer than"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<SasToken> parsed = ParseSasToken(c.token);
    ASSERT_FALSE(parsed.ok()) << c.token;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(parsed.status().message(), c.why))
        << c.token << " -> " << parsed.status();
    EXPECT_FALSE(absl::StrContains(parsed.status().message(), sig))
        << parsed.status();
  }
}

TEST(SasSignatureMatchesTest, DetectsTamperingAndWrongKeys) {
  const std::string key = testing::OpenSslBase64(kKeyHex);
  const std::string other = Base64Encode(std::string(32, '\x42'));
  const std::string token = MakeSasToken("h.example/devices/d", key,
                                         absl::FromUnixSeconds(1700000000));
  absl::StatusOr<SasToken> parsed = ParseSasToken(token);
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(SasSignatureMatches(*parsed, key));
  EXPECT_FALSE(SasSignatureMatches(*parsed, other));
  EXPECT_FALSE(SasSignatureMatches(*parsed, "not base64"));

  SasToken tampered = *parsed;
  tampered.signature[7] ^= 0x01;
  EXPECT_FALSE(SasSignatureMatches(tampered, key));
  tampered = *parsed;
  tampered.expiry_text = "1700000001";
  EXPECT_FALSE(SasSignatureMatches(tampered, key));
  tampered = *parsed;
  tampered.encoded_resource =
      "h.example/devices/d";  // same resource, other text
  EXPECT_FALSE(SasSignatureMatches(tampered, key));
}

}  // namespace
}  // namespace auth
}  // namespace gateway
}  // namespace edgeroute
