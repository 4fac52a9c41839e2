#include "base/json_reader.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace edgeroute {
namespace {

// "ERROR@offset: message" or "ok".
std::string Read(absl::string_view text, JsonNode* root,
                 const JsonReaderOptions& options = JsonReaderOptions()) {
  JsonReadError error;
  if (!ReadJson(text, options, root, &error)) {
    return absl::StrCat("ERROR@", error.at, ": ", error.message);
  }
  return "ok";
}

TEST(ReadJsonTest, ValuesKeepTheirSourceRanges) {
  const std::string text =
      " {\"a\": [1, -2.5e3, true, null], \"b\\u0041\": {\"s\": \"x\\ny\"}} ";
  JsonNode root;
  ASSERT_EQ(Read(text, &root), "ok");
  ASSERT_EQ(root.kind, JsonNode::Kind::kObject);
  ASSERT_EQ(root.children.size(), 2u);
  const JsonNode& a = root.children[0];
  EXPECT_EQ(a.key, "a");
  EXPECT_EQ(a.key_begin, 2u);
  EXPECT_EQ(a.source(text), "[1, -2.5e3, true, null]");
  ASSERT_EQ(a.children.size(), 4u);
  EXPECT_EQ(a.children[1].kind, JsonNode::Kind::kNumber);
  EXPECT_EQ(a.children[1].text, "-2.5e3");
  EXPECT_TRUE(a.children[2].boolean);
  EXPECT_EQ(a.children[3].kind, JsonNode::Kind::kNull);
  const JsonNode& b = root.children[1];
  EXPECT_EQ(b.key, "bA");
  EXPECT_EQ(b.children[0].text, "x\ny");
  EXPECT_EQ(b.children[0].source(text), "\"x\\ny\"");
  EXPECT_EQ(root.source(text), text.substr(1, text.size() - 2));
}

TEST(ReadJsonTest, ErrorsSayWhereAndWhat) {
  JsonNode root;
  EXPECT_EQ(Read("", &root), "ERROR@0: the file is empty");
  EXPECT_EQ(Read("{\"a\":1,}", &root),
            "ERROR@7: expected a member name before '}' (trailing commas are "
            "not JSON)");
  EXPECT_EQ(Read("[1 2]", &root), "ERROR@3: expected ',' or ']' in array");
  EXPECT_EQ(Read("{} x", &root),
            "ERROR@3: unexpected text after the end of the JSON value");
  EXPECT_EQ(Read("01", &root), "ERROR@0: numbers must not have leading zeros");
  EXPECT_EQ(Read("{'a': 1}", &root),
            "ERROR@1: expected a member name in double quotes");
  EXPECT_EQ(Read("[\"a\\x\"]", &root),
            "ERROR@3: invalid escape '\\x' in string");
  EXPECT_EQ(Read("True", &root).substr(0, 25), "ERROR@0: expected a value");
}

TEST(ReadJsonTest, DepthAndByteOrderMarkFollowTheOptions) {
  JsonNode root;
  JsonReaderOptions options;
  options.max_depth = 3;
  EXPECT_EQ(Read("[[[1]]]", &root, options), "ok");
  EXPECT_EQ(Read("[[[[1]]]]", &root, options),
            "ERROR@4: JSON nested deeper than 3 levels");
  EXPECT_EQ(Read("\xEF\xBB\xBF[]", &root), "ok");
  options.allow_byte_order_mark = false;
  EXPECT_EQ(Read("\xEF\xBB\xBF[]", &root, options).substr(0, 25),
            "ERROR@0: expected a value");
}

TEST(ReadJsonTest, StringsFollowTheStringOptions) {
  JsonNode root;
  ASSERT_EQ(Read("\"\\ud800\"", &root), "ok");
  EXPECT_EQ(root.text, "\xef\xbf\xbd");  // kReplace by default
  JsonReaderOptions strict;
  strict.strings.lone_surrogate = LoneSurrogate::kReject;
  strict.strings.require_utf8 = true;
  EXPECT_NE(Read("\"\\ud800\"", &root, strict), "ok");
  EXPECT_NE(Read("\"\xff\"", &root, strict), "ok");
  EXPECT_EQ(Read("\"\xff\"", &root), "ok");
}

TEST(FindJsonMemberTest, LastExactMatchThenLastIgnoringCase) {
  JsonNode root;
  ASSERT_EQ(Read(R"({"k": 1, "K": 2, "k": 3, "x": 4, "X": 5})", &root), "ok");
  EXPECT_EQ(FindJsonMember(root, "k", false)->text, "3");
  EXPECT_EQ(FindJsonMember(root, "k", true)->text, "3");
  EXPECT_EQ(FindJsonMember(root, "x", true)->text, "4");
  EXPECT_EQ(FindJsonMember(root, "Z", true), nullptr);
  EXPECT_EQ(FindJsonMember(root, "X", false)->text, "5");
  EXPECT_EQ(FindJsonMember(root.children[0], "k", true), nullptr);
  EXPECT_STREQ(JsonKindName(JsonNode::Kind::kArray), "an array");
}

}  // namespace
}  // namespace edgeroute
