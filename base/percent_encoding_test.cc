#include "base/percent_encoding.h"

#include <string>

#include "gtest/gtest.h"

namespace edgeroute {
namespace {

std::string Encode(absl::string_view text) {
  std::string out = "=";
  PercentEncode(text, &out);
  return out;
}

TEST(PercentEncodingTest, EncodesAllButUnreservedInUpperCaseHex) {
  EXPECT_EQ(Encode("aZ09-._~"), "=aZ09-._~");
  EXPECT_EQ(Encode("a b/c+d%"), "=a%20b%2Fc%2Bd%25");
  EXPECT_EQ(Encode(std::string("\x00\xff", 2)), "=%00%FF");
}

TEST(PercentEncodingTest, DecodesEscapesOfEitherCase) {
  std::string out = ">";
  ASSERT_TRUE(PercentDecode("a%2fb%2Fc+d", PercentDecoding::kStrict, &out));
  EXPECT_EQ(out, ">a/b/c+d");
}

TEST(PercentEncodingTest, MalformedEscapeIsAnErrorWhenStrict) {
  for (absl::string_view bad : {"%", "%4", "a%4", "%G1", "%1G", "x%%41"}) {
    std::string out;
    EXPECT_FALSE(PercentDecode(bad, PercentDecoding::kStrict, &out)) << bad;
  }
}

TEST(PercentEncodingTest, MalformedEscapeIsKeptWhenLenient) {
  std::string out;
  ASSERT_TRUE(PercentDecode("%4%41%G1%", PercentDecoding::kLenient, &out));
  EXPECT_EQ(out, "%4A%G1%");
}

TEST(PercentEncodingTest, RoundTripsEveryByte) {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  std::string encoded, decoded;
  PercentEncode(all, &encoded);
  ASSERT_TRUE(PercentDecode(encoded, PercentDecoding::kStrict, &decoded));
  EXPECT_EQ(decoded, all);
}

}  // namespace
}  // namespace edgeroute
