#include "base/utf8.h"

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"
#include "simdjson.h"

namespace edgeroute {
namespace {

std::vector<uint32_t> CodePoints(absl::string_view s) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i < s.size();) {
    size_t len = 0;
    out.push_back(DecodeUtf8(s, i, &len));
    EXPECT_GE(len, 1u);
    i += len;
  }
  return out;
}

// Expected code points from an independent decoder that implements the
// same Unicode practice (CPython's bytes.decode('utf-8', 'replace')).
struct Vector {
  const char* hex;
  std::vector<uint32_t> code_points;
};
const std::vector<Vector>& Vectors() {
  static const auto* vectors = new std::vector<Vector>{
    {"61F18080E180C26280638080BF64", {0x61, 0xFFFD, 0xFFFD, 0xFFFD, 0x62, 0xFFFD, 0x63, 0xFFFD, 0xFFFD, 0xFFFD, 0x64}},
    {"EDA080", {0xFFFD, 0xFFFD, 0xFFFD}},
    {"EDBFBF", {0xFFFD, 0xFFFD, 0xFFFD}},
    {"ED9FBF", {0xD7FF}},
    {"E08080", {0xFFFD, 0xFFFD, 0xFFFD}},
    {"E0A080", {0x800}},
    {"C080", {0xFFFD, 0xFFFD}},
    {"C1BF", {0xFFFD, 0xFFFD}},
    {"C280", {0x80}},
    {"DFBF", {0x7FF}},
    {"F4908080", {0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD}},
    {"F48FBFBF", {0x10FFFF}},
    {"F09F98", {0xFFFD}},
    {"F09F9880", {0x1F600}},
    {"F0", {0xFFFD}},
    {"E1", {0xFFFD}},
    {"E180", {0xFFFD}},
    {"FF", {0xFFFD}},
    {"FE", {0xFFFD}},
    {"80", {0xFFFD}},
    {"BF", {0xFFFD}},
    {"F5808080", {0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD}},
    {"F8888080", {0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD}},
    {"EFBFBD", {0xFFFD}},
    {"2EC3", {0x2E, 0xFFFD}},
    {"EDA0BDEDB880", {0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD}},
    {"41E282AC42", {0x41, 0x20AC, 0x42}},
    {"", {}},
  };
  return *vectors;
}

TEST(Utf8Test, DecodesMaximalSubpartsAsOneReplacementEach) {
  for (const Vector& v : Vectors()) {
    const std::string bytes = absl::HexStringToBytes(v.hex);
    EXPECT_EQ(CodePoints(bytes), v.code_points) << v.hex;
  }
}

TEST(Utf8Test, RepairMatchesDecodeAndIsValid) {
  for (const Vector& v : Vectors()) {
    const std::string bytes = absl::HexStringToBytes(v.hex);
    std::string repaired;
    ReplaceInvalidUtf8(bytes, &repaired);
    std::string expected;
    for (uint32_t cp : v.code_points) AppendUtf8(cp, &expected);
    EXPECT_EQ(repaired, expected) << v.hex;
    EXPECT_TRUE(IsValidUtf8(repaired)) << v.hex;
    EXPECT_EQ(IsValidUtf8(bytes), repaired == bytes) << v.hex;
  }
}

TEST(Utf8Test, FindInvalidReportsTheFirstBadOffset) {
  EXPECT_EQ(FindInvalidUtf8(""), absl::string_view::npos);
  EXPECT_EQ(FindInvalidUtf8("plain ascii, longer than eight"),
            absl::string_view::npos);
  EXPECT_EQ(FindInvalidUtf8("\xEF\xBF\xBD"), absl::string_view::npos);
  EXPECT_EQ(FindInvalidUtf8("0123456789\xC3\xA9\xFF"), 12u);
  EXPECT_EQ(FindInvalidUtf8("ab\xED\xA0\x80"), 2u);  // a surrogate
  EXPECT_EQ(FindInvalidUtf8("abc\xF0\x9F\x98"), 3u);  // truncated
}

// Random bytes: the repair never writes more than it promises, its output
// is valid UTF-8 (checked by simdjson's validator, written by others), and
// repairing twice changes nothing.
TEST(Utf8Test, RandomBytesStayWithinTheGrowthBound) {
  std::mt19937 rng(7);
  std::string in, out;
  for (int round = 0; round < 20000; ++round) {
    in.resize(rng() % 40);
    for (char& c : in) {
      // Bias towards the interesting bytes.
      static const unsigned char kPicks[] = {0x41, 0x80, 0xBF, 0xC2, 0xE0,
                                             0xED, 0xEF, 0xF0, 0xF4, 0xFF};
      c = char(rng() % 2 ? kPicks[rng() % sizeof(kPicks)] : rng() % 256);
    }
    std::vector<char> buf(in.size() * kUtf8RepairGrowth + 1, '\x5A');
    const size_t n = ReplaceInvalidUtf8(in, buf.data());
    ASSERT_LE(n, in.size() * kUtf8RepairGrowth);
    ASSERT_EQ(buf[in.size() * kUtf8RepairGrowth], '\x5A');  // guard byte
    const absl::string_view repaired(buf.data(), n);
    ASSERT_TRUE(simdjson::validate_utf8(repaired.data(), repaired.size()));
    ASSERT_EQ(IsValidUtf8(in), simdjson::validate_utf8(in.data(), in.size()));
    ReplaceInvalidUtf8(repaired, &out);
    ASSERT_EQ(out, repaired);
  }
}

TEST(Utf8Test, EncodesEveryLength) {
  std::string s;
  for (uint32_t cp : {0x24u, 0xA2u, 0x20ACu, 0x10348u, 0x10FFFFu}) {
    AppendUtf8(cp, &s);
  }
  EXPECT_EQ(s, "\x24\xC2\xA2\xE2\x82\xAC\xF0\x90\x8D\x88\xF4\x8F\xBF\xBF");
  EXPECT_EQ(CodePoints(s),
            (std::vector<uint32_t>{0x24, 0xA2, 0x20AC, 0x10348, 0x10FFFF}));
}

}  // namespace
}  // namespace edgeroute
