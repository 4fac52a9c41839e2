#include "tools/message_json.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace edgeroute::tools {
namespace {

using ::testing::HasSubstr;

TEST(BuildMessageFromJson, PropertiesSystemPropertiesAndObjectBody) {
  MessageBuilder builder;
  absl::StatusOr<MessageView> m = BuildMessageFromJson(
      R"({"props":{"level":"critical","nul":null},)"
      R"("sys":{"contentType":"application/json","connectionModuleId":"m1",)"
      R"("outputName":"o1","cid":null},)"
      R"("body": {"temperature": 21.5, "big": 123456789012345678901234567890, "s":"a\"}"} })",
      &builder);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->FindProperty("LEVEL").value, "critical");
  EXPECT_TRUE(m->FindProperty("nul").is_null());
  EXPECT_TRUE(m->FindProperty("absent").missing());
  EXPECT_EQ(m->FindSystemProperty("contentType").value, "application/json");
  EXPECT_TRUE(m->FindSystemProperty("cid").is_null());
  // A non-string body is sent as its JSON text, exactly as written.
  EXPECT_EQ(
      m->body(),
      R"({"temperature": 21.5, "big": 123456789012345678901234567890, "s":"a\"}"})");
  EXPECT_EQ(m->source(), "/messages/modules/m1/outputs/o1");
}

TEST(BuildMessageFromJson, StringBodyIsRawText) {
  MessageBuilder builder;
  absl::StatusOr<MessageView> m = BuildMessageFromJson(
      R"({"props":{},"sys":{},"body":"{\"temperature\": 21.5,"})", &builder);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->body(), "{\"temperature\": 21.5,");
  m = BuildMessageFromJson(R"({"body":"\"hello\" \u00e9"})", &builder);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->body(), "\"hello\" \xc3\xa9");
}

TEST(BuildMessageFromJson, ScalarBodiesAndNoBody) {
  MessageBuilder builder;
  absl::StatusOr<MessageView> m =
      BuildMessageFromJson(R"({"body":42})", &builder);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->body(), "42");
  m = BuildMessageFromJson(R"({"body":[1, 2]})", &builder);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->body(), "[1, 2]");
  m = BuildMessageFromJson(R"({"body":null})", &builder);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->body(), "null");
  m = BuildMessageFromJson(R"({"props":{"a":"b"}})", &builder);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->body(), "");
  EXPECT_EQ(m->source(), "/messages");
}

TEST(BuildMessageFromJson, BadInputIsAnErrorNamingTheKey) {
  MessageBuilder builder;
  absl::StatusOr<MessageView> m =
      BuildMessageFromJson(R"({"props":{"n":5}})", &builder);
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("\"n\""));
  for (const char* bad :
       {"", "[]", "{", R"({"props":{"a":"b"})", R"({"props":"x"})",
        R"({"a" 1})", R"({} x)", R"({"body":"\q"})"}) {
    EXPECT_FALSE(BuildMessageFromJson(bad, &builder).ok()) << bad;
  }
}

TEST(SplitJsonObject, MembersKeepRawText) {
  absl::StatusOr<std::vector<JsonMember>> m =
      SplitJsonObject(R"( {"a\u0041": {"x": "}"} , "b":-1.5e3,"c":"s"} )");
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->size(), 3u);
  EXPECT_EQ((*m)[0].key, "aA");
  EXPECT_EQ((*m)[0].raw_value, R"({"x": "}"})");
  EXPECT_EQ((*m)[1].raw_value, "-1.5e3");
  EXPECT_EQ((*m)[2].raw_value, "\"s\"");
}

TEST(JsonQuote, EscapesQuotesBackslashesAndControls) {
  EXPECT_EQ(JsonQuote("a\"b\\c\nd\te\x01"), R"("a\"b\\c\nd\te\u0001")");
  EXPECT_EQ(JsonQuote("\xc3\xa9"), "\"\xc3\xa9\"");
  absl::StatusOr<std::string> back = DecodeJsonString(JsonQuote("x\"\n\x1f"));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, "x\"\n\x1f");
}

}  // namespace
}  // namespace edgeroute::tools
