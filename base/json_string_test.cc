#include "base/json_string.h"

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "simdjson.h"

namespace edgeroute {
namespace {

constexpr JsonStringOptions kStrict = {LoneSurrogate::kReject, true};
constexpr JsonStringOptions kKeep = {LoneSurrogate::kKeep, false};
constexpr JsonStringOptions kReplace = {LoneSurrogate::kReplace, false};

// Decodes the literal `text`; "ERROR@<offset>: message" on failure.
std::string Decode(absl::string_view text, const JsonStringOptions& options) {
  std::string out;
  JsonStringError error;
  const size_t end = DecodeJsonString(text, 0, options, &out, nullptr, &error);
  if (end == 0) return absl::StrCat("ERROR@", error.at, ": ", error.message);
  EXPECT_EQ(end, text.size()) << text;
  return out;
}

TEST(JsonQuoteTest, EscapesQuotesBackslashesAndControls) {
  EXPECT_EQ(JsonQuote("a\"b\\c\nd\te\x01\r\b\f"),
            R"("a\"b\\c\nd\te\u0001\r\b\f")");
  EXPECT_EQ(JsonQuote("\xc3\xa9/"), "\"\xc3\xa9/\"");
  std::string out = "x=";
  AppendJsonQuoted("1", &out);
  EXPECT_EQ(out, "x=\"1\"");
  // Every byte string survives a round trip.
  std::string all;
  for (int c = 1; c < 128; ++c) all.push_back(char(c));
  EXPECT_EQ(Decode(JsonQuote(all), kStrict), all);
}

TEST(ReadHex4Test, FourHexDigitsOrNothing) {
  uint32_t unit = 7;
  EXPECT_TRUE(ReadHex4("x00aF", 1, &unit));
  EXPECT_EQ(unit, 0xAFu);
  unit = 7;
  EXPECT_FALSE(ReadHex4("00a", 0, &unit));
  EXPECT_FALSE(ReadHex4("00g0", 0, &unit));
  EXPECT_FALSE(ReadHex4("0000", 5, &unit));
  EXPECT_EQ(unit, 7u);
  EXPECT_EQ(HexDigitValue('f'), 15);
  EXPECT_EQ(HexDigitValue('G'), -1);
}

TEST(DecodeJsonStringTest, Escapes) {
  EXPECT_EQ(Decode(R"("a\"\\\/\b\f\n\r\t\u0041\u00e9")", kStrict),
            "a\"\\/\b\f\n\r\tA\xc3\xa9");
  EXPECT_EQ(Decode(R"("\ud83d\ude00")", kStrict), "\xf0\x9f\x98\x80");
  EXPECT_EQ(Decode(R"("")", kStrict), "");
}

TEST(DecodeJsonStringTest, LoneSurrogatesFollowThePolicy) {
  for (const char* lone : {R"("\ud800")", R"("\udc00x")", R"("\ud800\u0041")",
                           R"("\ud800\ud800")"}) {
    EXPECT_EQ(Decode(lone, kStrict).substr(0, 7), "ERROR@1") << lone;
  }
  EXPECT_EQ(Decode(R"("\ud800\u0041")", kReplace),
            "\xef\xbf\xbd"
            "A");
  EXPECT_EQ(Decode(R"("\ud800\u0041")", kKeep),
            "\xed\xa0\x80"
            "A");
  EXPECT_EQ(Decode(R"("\udc00")", kKeep), "\xed\xb0\x80");
}

TEST(DecodeJsonStringTest, ErrorsSayWhereAndWhy) {
  EXPECT_EQ(Decode("\"abc", kReplace), "ERROR@0: unterminated string");
  EXPECT_EQ(Decode("\"ab\\", kReplace), "ERROR@3: unterminated string");
  EXPECT_EQ(Decode("\"a\\qb\"", kReplace),
            "ERROR@2: invalid escape '\\q' in string");
  EXPECT_EQ(Decode("\"a\\u12\"", kReplace),
            "ERROR@2: \\u must be followed by 4 hex digits");
  EXPECT_EQ(Decode("\"a\tb\"", kReplace).substr(0, 26),
            "ERROR@2: control character");
  EXPECT_EQ(Decode("\"ok\xff\"", kStrict),
            "ERROR@3: string is not valid UTF-8");
  // Without require_utf8 the bytes are kept as they are.
  EXPECT_EQ(Decode("\"ok\xff\"", kReplace), "ok\xff");
}

TEST(DecodeJsonStringTest, OffsetsMapEveryByteToItsSource) {
  const std::string text = "x \"a\\n\\u00e9b\" y";
  std::string out;
  std::vector<size_t> offsets;
  JsonStringError error;
  const size_t end = DecodeJsonString(text, 2, kStrict, &out, &offsets, &error);
  ASSERT_EQ(end, 14u);
  EXPECT_EQ(out,
            "a\n\xc3\xa9"
            "b");
  // a, \n, the two bytes of \u00e9, b, then the closing quote.
  EXPECT_EQ(offsets, (std::vector<size_t>{3, 4, 6, 6, 12, 13}));
}

TEST(UnescapeValidJsonStringTest, AgreesWithTheStrictDecoder) {
  for (const char* raw : {"plain", R"(a\"b\\c\/d\b\f\n\r\t)", R"(\u0041\u00e9)",
                          R"(\ud83d\ude00)", R"(\ud800x)", R"(\udc00)"}) {
    std::string buffer(std::string(raw).size(), '\0');
    const size_t n = UnescapeValidJsonString(raw, &buffer[0]);
    EXPECT_LE(n, std::string(raw).size());
    EXPECT_EQ(buffer.substr(0, n), Decode(absl::StrCat("\"", raw, "\""), kKeep))
        << raw;
  }
}

// Random strings of JSON-relevant pieces: the strict decoder accepts
// exactly what simdjson accepts, with the same value.
TEST(DecodeJsonStringTest, StrictModeAgreesWithSimdjson) {
  const std::vector<std::string> pieces = {"a",
                                           " ",
                                           "\\\"",
                                           "\\\\",
                                           "\\/",
                                           "\\n",
                                           "\\u0041",
                                           "\\u00e9",
                                           "\\ud83d",
                                           "\\ude00",
                                           "\\ud800",
                                           "\\q",
                                           "\\u12",
                                           "\x01",
                                           "\xc3\xa9",
                                           "\xc3",
                                           "\xed\xa0\x80",
                                           "\xf0\x9f\x98\x80",
                                           "\\",
                                           "\xff"};
  std::mt19937 rng(11);
  simdjson::dom::parser parser;
  for (int round = 0; round < 20000; ++round) {
    std::string text = "\"";
    const int n = int(rng() % 6);
    for (int k = 0; k < n; ++k) text += pieces[rng() % pieces.size()];
    text += "\"";
    simdjson::padded_string padded(text);
    simdjson::dom::element element;
    std::string_view want;
    const bool ok = parser.parse(padded).get(element) == simdjson::SUCCESS &&
                    element.get_string().get(want) == simdjson::SUCCESS;
    std::string got;
    JsonStringError error;
    const size_t end =
        DecodeJsonString(text, 0, kStrict, &got, nullptr, &error);
    const bool decoded = end == text.size();
    ASSERT_EQ(decoded, ok) << text;
    if (ok) {
      ASSERT_EQ(got, std::string(want)) << text;
    }
  }
}

}  // namespace
}  // namespace edgeroute
