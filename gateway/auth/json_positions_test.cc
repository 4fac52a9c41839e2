#include "gateway/auth/json_positions.h"

#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace edgeroute {
namespace gateway {
namespace auth {
namespace {

TEST(PositionedJsonTest, RecordsWhereValuesAndNamesStart) {
  const std::string text =
      "{\"a\": 12,\n"
      "  \"b\\\"q\": \"x\\\\\",\n"
      "  \"c\": [true, -1.5e3, null, {\"d\": \"\\\"\"}],\n"
      "  \"e/f~\": false}";
  absl::StatusOr<PositionedJson> doc = PositionedJson::Parse(text);
  ASSERT_TRUE(doc.ok()) << doc.status();
  EXPECT_EQ(doc->root()["a"], 12);
  EXPECT_EQ(doc->WhereValue(""), "1:1");
  EXPECT_EQ(doc->WhereName("/a"), "1:2");
  EXPECT_EQ(doc->WhereValue("/a"), "1:7");
  EXPECT_EQ(doc->WhereName("/b\"q"), "2:3");
  EXPECT_EQ(doc->WhereValue("/b\"q"), "2:11");
  EXPECT_EQ(doc->WhereValue("/c"), "3:8");
  EXPECT_EQ(doc->WhereValue("/c/0"), "3:9");
  EXPECT_EQ(doc->WhereValue("/c/1"), "3:15");
  EXPECT_EQ(doc->WhereValue("/c/2"), "3:23");
  EXPECT_EQ(doc->WhereValue("/c/3"), "3:29");
  EXPECT_EQ(doc->WhereName("/c/3/d"), "3:30");
  EXPECT_EQ(doc->WhereValue("/c/3/d"), "3:35");
  EXPECT_EQ(doc->WhereName("/e~1f~0"), "4:3");
  EXPECT_EQ(doc->WhereValue("/e~1f~0"), "4:11");
  // Members keep document order.
  std::string order;
  for (const auto& [name, value] : doc->root().items()) order += name[0];
  EXPECT_EQ(order, "abce");
}

TEST(PositionedJsonTest, NumberAtTheEndOfTheText) {
  absl::StatusOr<PositionedJson> doc = PositionedJson::Parse("\n  42");
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ(doc->WhereValue(""), "2:3");
}

TEST(PositionedJsonTest, SyntaxErrorsHaveLineAndColumn) {
  struct Case {
    const char* text;
    const char* where;
    const char* what;
  } cases[] = {
      {"{\n  \"a\": tru\n}", "2:11:", "invalid literal"},
      {"{\"a\": 1,}", "1:9:", "expected string literal"},
      {"{\"a\": 1", "1:8:", "unexpected end of input"},
      {"", "1:1:", "unexpected end of input"},
      {"[1] x", "1:5:", "expected end of input"},
      {"{\"a\": \"\xff\"}", "1:8:", "UTF-8"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<PositionedJson> doc = PositionedJson::Parse(c.text);
    ASSERT_FALSE(doc.ok()) << c.text;
    EXPECT_EQ(doc.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StartsWith(doc.status().message(), c.where))
        << c.text << " -> " << doc.status();
    EXPECT_TRUE(absl::StrContains(doc.status().message(), c.what))
        << c.text << " -> " << doc.status();
    EXPECT_FALSE(absl::StrContains(doc.status().message(), "json.exception"))
        << doc.status();
  }
}

TEST(PositionedJsonTest, RepeatedMemberNamesAreErrors) {
  absl::StatusOr<PositionedJson> doc =
      PositionedJson::Parse("{\"a\": 1,\n \"b\": {\"x\": 1, \"x\": 2}}");
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.status().message(),
            "2:16: member \"x\" appears twice (first at 2:8)");
}

TEST(PositionedJsonTest, NestingIsBounded) {
  const std::string deep = std::string(40, '[') + std::string(40, ']');
  absl::StatusOr<PositionedJson> doc = PositionedJson::Parse(deep, 32);
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.status().message(), "1:33: array nested deeper than 32 levels");
  EXPECT_TRUE(PositionedJson::Parse(deep, 40).ok());
}

}  // namespace
}  // namespace auth
}  // namespace gateway
}  // namespace edgeroute
