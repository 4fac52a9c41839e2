#include "message/message_json.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace edgeroute {
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

TEST(BuildMessageFromJson, StringsMustBeUtf8WithoutLoneSurrogates) {
  MessageBuilder builder;
  for (const char* bad : {"{\"props\":{\"k\":\"\xff\"}}",
                          R"({"props":{"k":"\ud800"}})",
                          R"({"body":"\udc00"})", "\xef\xbb\xbf{}"}) {
    EXPECT_FALSE(BuildMessageFromJson(bad, &builder).ok()) << bad;
  }
  absl::StatusOr<MessageView> m = BuildMessageFromJson(
      R"({"props":{"k":"\ud83d\ude00"}})", &builder);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->FindProperty("k").value, "\xf0\x9f\x98\x80");
}

TEST(BuildMessageFromJson, SourceOverrideAndNodeOfALargerText) {
  MessageBuilder builder;
  absl::StatusOr<MessageView> m = BuildMessageFromJson(
      R"({"sys":{"connectionModuleId":"m1"}})", &builder, "/x/y");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->source(), "/x/y");
  // A JSON line carrying a message: the body is a slice of the line.
  const std::string line =
      R"({"condition": "true", "message": {"body": {"a": [1, 2]}}})";
  JsonNode root;
  JsonReadError error;
  ASSERT_TRUE(ReadJson(line, MessageJsonReaderOptions(), &root, &error));
  const JsonNode* message = FindJsonMember(root, "message", false);
  ASSERT_NE(message, nullptr);
  m = BuildMessageFromJsonNode(*message, line, &builder);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->body(), R"({"a": [1, 2]})");
  EXPECT_FALSE(
      BuildMessageFromJsonNode(root.children[0], line, &builder).ok());
}

}  // namespace
}  // namespace edgeroute
