// Unit tests of the route language through the public API: lexer traps,
// literals, operators, type rules, properties, invalid UTF-8, error
// positions, warnings, limits, route parsing, source matching and Explain.
// The built-ins, $body queries and the route-set plan have test files of
// their own.

#include "query/query.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "message/message.h"
#include "query/query_test_util.h"

namespace edgeroute::query {
namespace {

using ::testing::HasSubstr;

TEST_F(QueryTest, LexerAbsorbsOperatorCharactersIntoNames) {
  EXPECT_EQ(Eval("k!='x'", Props()), "undefined");  // property "k!"
  EXPECT_EQ(Eval("k != 'x'", Props()), "true");
  EXPECT_EQ(Eval("2-1 = 1"), "compile-error");  // ID "2-1"
  EXPECT_EQ(Eval("2 - 1 = 1"), "true");
  EXPECT_EQ(Eval("2 -1 = 1"), "compile-error");  // two literals
  EXPECT_EQ(Eval("- 1 = -1"), "true");
  EXPECT_EQ(Eval("1+2 = 3"), "compile-error");
  EXPECT_EQ(Eval("1 *3 = 3"), "compile-error");
  EXPECT_EQ(Eval("true && true"), "compile-error");
  EXPECT_EQ(Eval("'a'||'b' = 'ab'"), "undefined");  // one property name
  EXPECT_EQ(Eval("'a' || 'b' = 'ab'"), "true");
  // 'it''s' is one 7-character property name, longer than the string 'it'.
  EXPECT_EQ(Eval("x = 'it''s'", Msg{{{"x", "a"}, {"'it''s'", "a"}}}), "true");
  EXPECT_EQ(Eval("5. = '5'", Msg{{{"5.", "5"}}}), "true");  // a name
}

TEST_F(QueryTest, KeywordsAndLiteralsCase) {
  EXPECT_EQ(Eval("TRUE = 'x'", Msg{{{"TRUE", "x"}}}), "true");
  EXPECT_EQ(Eval("true AND TRUE = 'x'", Msg{{{"TRUE", "x"}}}), "true");
  EXPECT_EQ(Eval("from = 'x'"), "compile-error");
  EXPECT_EQ(Eval("NOT TRUE = 'x'"), "compile-error");
  EXPECT_EQ(Eval("tRuE"), "undefined");  // a property
}

TEST_F(QueryTest, NumberLiterals) {
  EXPECT_EQ(Eval("0x1F = 31"), "true");
  EXPECT_EQ(Eval("0xFFFFFFFFFFFFFFFF = -1"), "true");  // two's complement
  EXPECT_EQ(Eval("is_defined(0x10000000000000000)"), "false");  // 17 digits
  EXPECT_EQ(Eval("0x00000000000000001 = 1"), "true");           // leading zeros
  EXPECT_EQ(Eval(".5 = 0.5"), "true");
  EXPECT_EQ(Eval("1e400 = 1 / 0"), "true");
  EXPECT_EQ(Eval("e3"), "undefined");
  EXPECT_EQ(Eval("is_defined(e3)"), "false");
  EXPECT_EQ(Eval("true OR e3"), "true");
  EXPECT_EQ(Eval("false AND e3"), "false");
  EXPECT_EQ(Eval("e3 = 1000"), "compile-error");
  EXPECT_EQ(Eval("1.5e1 = 15"), "true");
}

TEST_F(QueryTest, StringLiteralsAndEscapes) {
  EXPECT_EQ(Eval("\"a\\\"b\" = 'a\"b'"), "true");
  EXPECT_EQ(Eval("'\\u00e9' = '\xC3\xA9'"), "true");
  EXPECT_EQ(Eval("'\\U00E9' = 'x'"), "compile-error");  // uppercase U
  EXPECT_EQ(Eval("length('\\\\u0041') = 2"), "true");   // two-pass quirk
  EXPECT_EQ(Eval("'ab"), "compile-error");
  EXPECT_EQ(Eval("'\\x'"), "compile-error");
}

TEST_F(QueryTest, Arithmetic) {
  EXPECT_EQ(Eval("1 + 2 * 3 = 7"), "true");
  EXPECT_EQ(Eval("10 - 2 - 3 = 5"), "true");
  EXPECT_EQ(Eval("-7 % 3 = -1"), "true");
  EXPECT_EQ(Eval("5 % 0 = 0"), "undefined");
  EXPECT_EQ(Eval("0 / 0 = 0 / 0"), "undefined");
  EXPECT_EQ(Eval("1 / 0 > 1e308"), "true");
  EXPECT_EQ(Eval("-(2 + 3) = -5"), "true");
  EXPECT_EQ(Eval("'a' + 'b' = 'ab'"), "compile-error");
  EXPECT_EQ(Eval("k + 1 = 1", Props()), "compile-error");
  EXPECT_EQ(Eval("-(k) = 1", Props()), "compile-error");
}

TEST_F(QueryTest, Comparisons) {
  EXPECT_EQ(Eval("'B' < 'a'"), "true");
  EXPECT_EQ(Eval("'10' < '9'"), "true");
  EXPECT_EQ(Eval("true > false"), "true");
  EXPECT_EQ(Eval("null = null"), "true");
  EXPECT_EQ(Eval("null < null"), "false");
  EXPECT_EQ(Eval("undefined = undefined"), "undefined");
  EXPECT_EQ(Eval("1 = '1'"), "compile-error");
  EXPECT_EQ(Eval("k = null", Props()), "compile-error");
  EXPECT_EQ(Eval("1 < 2 = true"), "true");
  EXPECT_EQ(Eval("nul = 'x'", Props()), "undefined");
  EXPECT_EQ(Eval("-0.0 = 0"), "true");
  EXPECT_EQ(Eval("1 <> 2"), "true");
}

TEST_F(QueryTest, Utf16OrdinalOrder) {
  // U+1F600 (surrogates D83D DE00) sorts before U+FFFD in UTF-16 although
  // its UTF-8 bytes sort after.
  EXPECT_EQ(Eval("'\xF0\x9F\x98\x80' < '\xEF\xBF\xBD'"), "true");
  EXPECT_EQ(Eval("'\xC3\xA9' > 'z'"), "true");
}

TEST_F(QueryTest, ThreeValuedLogicAndNotPrecedence) {
  EXPECT_EQ(Eval("true and undefined"), "undefined");
  EXPECT_EQ(Eval("false and undefined"), "false");
  EXPECT_EQ(Eval("true or undefined"), "true");
  EXPECT_EQ(Eval("not undefined"), "compile-error");
  EXPECT_EQ(Eval("not null"), "true");
  EXPECT_EQ(Eval("null or null"), "false");
  EXPECT_EQ(Eval("(null and true) = null"), "true");
  EXPECT_EQ(Eval("null and undefined"), "compile-error");
  EXPECT_EQ(Eval("NOT k = 'v'", Props()), "compile-error");
  EXPECT_EQ(Eval("NOT (k = 'v')", Props()), "false");
  EXPECT_EQ(Eval("NOT NOT true"), "true");
  EXPECT_EQ(Eval("true Or false And false"), "true");
  EXPECT_EQ(Eval("true and 1"), "compile-error");
}

TEST_F(QueryTest, Coalesce) {
  EXPECT_EQ(Eval("(missing ?? 'd') = 'd'"), "true");
  EXPECT_EQ(Eval("(nul ?? 'd') = 'd'", Props()), "undefined");
  EXPECT_EQ(Eval("(0 / 0 ?? 1) = 1"), "true");
  EXPECT_EQ(Eval("k ?? 1"), "compile-error");
  EXPECT_EQ(Eval("k ?? 'x' = 'v'"), "compile-error");  // k ?? ('x' = 'v')
}

TEST_F(QueryTest, Properties) {
  Msg m = Props();
  EXPECT_EQ(Eval("K = 'v'", m), "true");  // case-insensitive names
  EXPECT_EQ(Eval("level = 'critical'", m), "true");
  EXPECT_EQ(Eval("$connectionDeviceId = 'dev1'", m), "true");
  EXPECT_EQ(Eval("$CONNECTIONDEVICEID = 'dev1'", m), "true");
  EXPECT_EQ(Eval("$cid = 'c-9'", m), "true");
  EXPECT_EQ(Eval("is_defined($correlationId)", m), "false");
  m.props.push_back({"$connectionDeviceId", "app"});
  EXPECT_EQ(Eval("$connectionDeviceId = 'app'", m), "true");  // app wins
  EXPECT_EQ(Eval("{$connectionDeviceId} = 'dev1'", m), "true");
  EXPECT_EQ(Eval("{ $connectionDeviceId } = 'dev1'", m), "true");
  EXPECT_EQ(Eval("is_defined($foo[0])", m), "false");
  EXPECT_EQ(Eval("$foo[0] = 'x'", m), "compile-error");
  EXPECT_EQ(Eval("$connectionDeviceId!='x'", m), "undefined");
}

// The rule for bytes that are not UTF-8 (ROUTE-LANGUAGE notes in query.h):
// wherever the language reads a string -- application and system property
// values, $body strings, route text -- each maximal ill-formed subsequence
// reads as one U+FFFD, as in edgeHub once the bytes are a .NET string.
// Every built-in then sees the same characters. The ASan build of this test
// (scripts/test.sh runs query/ under --config=asan) also proves that no
// built-in writes past what it reserved, whatever the bytes.
TEST_F(QueryTest, InvalidUtf8PropertyValuesReadAsReplacementCharacters) {
  const std::string lone_leads(3000, '\xF2');  // 3000 ill-formed subparts
  const std::string long_invalid = std::string(3000, '\xFF');
  struct Case {
    const char* value;
    const char* condition;
    const char* expected;
  };
  const Case cases[] = {
      // Each ill-formed byte that cannot start a sequence is one U+FFFD.
      {"\xFF", "p = '\\uFFFD'", "true"},
      {"\xFE", "p = '\\uFFFD'", "true"},
      {"\x80\xBF", "length(p) = 2", "true"},
      // A truncated sequence is one U+FFFD (its maximal subpart).
      {"\xF0\x9F\x98", "p = '\\uFFFD'", "true"},
      {"ab\xE2\x82", "length(p) = 3", "true"},
      // Overlong forms are not the character they spell.
      {"\xC0\xAF", "p = '/'", "false"},
      {"\xC0\xAF", "length(p) = 2", "true"},
      {"\xE0\x80\xAF", "length(p) = 3", "true"},
      // Surrogates encoded as bytes are ill-formed, paired or not: three
      // U+FFFD each, never the lone surrogate a '\\uD800' constant holds or
      // the supplementary character the pair would spell.
      {"\xED\xA0\x80", "length(p) = 3", "true"},
      {"\xED\xA0\x80", "p = '\\uD800'", "false"},
      {"\xED\xA0\xBD\xED\xB8\x80", "p = '\\uD83D\\uDE00'", "false"},
      {"\xED\xA0\xBD\xED\xB8\x80", "length(p) = 6", "true"},
      // Past U+10FFFF.
      {"\xF4\x90\x80\x80", "length(p) = 4", "true"},
      // Every built-in over the repaired text.
      {"a\xFF"
       "b",
       "upper(p) = 'A\\uFFFDB'", "true"},
      {"A\xFF"
       "B",
       "lower(p) = 'a\\uFFFDb'", "true"},
      {"a\xFF"
       "b",
       "substring(p, 1, 1) = '\\uFFFD'", "true"},
      {"a\xFF"
       "b",
       "substring(p, 2) = 'b'", "true"},
      {"a\xF0\x9F\x98"
       "b",
       "index_of(p, 'b') = 2", "true"},
      {"a\xFF"
       "b",
       "concat(p, 'c') = 'a\\uFFFDbc'", "true"},
      {"a\xFF"
       "b",
       "p || 'c' = 'a\\uFFFDbc'", "true"},
      {"a\xFF"
       "b",
       "starts_with(p, 'a\\uFFFD')", "true"},
      {"a\xFF"
       "b",
       "ends_with(p, '\\uFFFDb')", "true"},
      {"a\xFF"
       "b",
       "contains(p, '\\uFFFD')", "true"},
      {"\xFF", "p > 'z'", "true"},  // U+FFFD sorts after ASCII
      {"\xFF", "p < '\\uFFFE'", "true"},
      // Two different ill-formed values are the same string once read.
      {"x\xFE", "p = concat('x', '\\uFFFD')", "true"},
  };
  for (const Case& c : cases) {
    Msg m;
    m.props = {{"p", c.value}};
    EXPECT_EQ(Eval(c.condition, m), c.expected)
        << c.condition << " with p = " << absl::CHexEscape(c.value);
  }
  // Case mapping of long ill-formed values (the heap overflow: each input
  // byte becomes three output bytes).
  for (const std::string* v : {&lone_leads, &long_invalid}) {
    Msg m;
    m.props = {{"p", v->c_str()}};
    EXPECT_EQ(Eval("length(upper(p)) = 3000 AND upper(p) = lower(p)", m),
              "true");
    EXPECT_EQ(Eval("upper(p) = 'X'", m), "false");
    EXPECT_EQ(Eval("length(concat(p, lower(p), upper(p))) = 9000", m), "true");
  }
}

TEST_F(QueryTest, InvalidUtf8SystemPropertiesAndBodyStrings) {
  Msg m;
  m.sys = {{"messageId", "id\xFF"}, {"connectionModuleId", "m\xC3"}};
  m.body = "{\"s\": \"x\xFF\xFEy\", \"t\": \"\xF0\x9F\x98\"}";
  EXPECT_EQ(Eval("$messageId = 'id\\uFFFD'", m), "true");
  EXPECT_EQ(Eval("upper($connectionModuleId) = 'M\\uFFFD'", m), "true");
  EXPECT_EQ(Eval("$body.s = 'x\\uFFFD\\uFFFDy'", m), "true");
  EXPECT_EQ(Eval("length($body.t) = 1", m), "true");
  EXPECT_EQ(Eval("upper($body.s) = 'X\\uFFFD\\uFFFDY'", m), "true");
}

TEST_F(QueryTest, InvalidUtf8InRouteTextReadsAsReplacementCharacters) {
  Msg m;
  m.props = {{"p", "\xEF\xBF\xBD"}};  // a well-formed U+FFFD
  // A constant holding raw ill-formed bytes is the repaired string.
  EXPECT_EQ(Eval("p = '\xFF'", m), "true");
  EXPECT_EQ(Eval("p = '\xF0\x9F\x98'", m), "true");
  EXPECT_EQ(Eval("length('\xF2\xF2\xF2') = 3"), "true");
  EXPECT_EQ(Eval("upper('a\xF2' || 'b') = 'A\\uFFFDB'"), "true");
  // Folding a constant with thousands of ill-formed bytes (the fuzzer's
  // find) stays within its buffers.
  EXPECT_EQ(Eval("length(upper('" + std::string(5000, '\xF2') + "')) = 5000"),
            "true");
  // Diagnostics still point at the right place.
  std::vector<Diagnostic> diags = Diags("'\xFF' = 'x' AND");
  ASSERT_FALSE(diags.empty());
  EXPECT_EQ(diags[0].line, 1);
}

TEST_F(QueryTest, ErrorMessagesAndPositions) {
  auto d = Diags("k = 1");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].message,
            "Invalid operands to binary operator '=': have 'string' and "
            "'number', expected 'string' and 'string'");
  EXPECT_EQ(d[0].line, 1);
  EXPECT_EQ(d[0].column, 3);
  EXPECT_EQ(d[0].end_column, 4);
  EXPECT_EQ(d[0].excerpt, "k = 1\n  ^");

  d = Diags("true AND\n  @k = 'v'");
  ASSERT_FALSE(d.empty());
  EXPECT_EQ(d[0].message, "Syntax error: invalid symbol '@'");
  EXPECT_EQ(d[0].line, 2);
  EXPECT_EQ(d[0].column, 3);
  EXPECT_EQ(d[0].excerpt, "  @k = 'v'\n  ^");
  EXPECT_THAT(d[0].ToString(), HasSubstr("2:3: error: Syntax error"));

  d = Diags("(true");
  ASSERT_FALSE(d.empty());
  EXPECT_THAT(d[0].message, HasSubstr("missing closing ')'"));
  d = Diags("(true))");
  ASSERT_FALSE(d.empty());
  EXPECT_THAT(d[0].message, HasSubstr("unmatched closing ')'"));
  d = Diags("'abc");
  ASSERT_FALSE(d.empty());
  EXPECT_EQ(d[0].message, "Syntax error: unterminated string");
  d = Diags("lower(1) = 'x'");
  ASSERT_FALSE(d.empty());
  EXPECT_THAT(d[0].message,
              HasSubstr("Invalid arguments to built-in function 'lower'"));
  EXPECT_EQ(d[0].column, 1);
  EXPECT_EQ(d[0].end_column, 6);
}

TEST_F(QueryTest, CollectsSeveralErrors) {
  auto c = CompiledCondition::Compile("k = 1 AND foo(2) AND 'a' + 1", nullptr);
  ASSERT_FALSE(c.ok());
  std::string msg(c.status().message());
  EXPECT_THAT(msg, HasSubstr("1:3:"));
  EXPECT_THAT(msg, HasSubstr("Invalid built-in function 'foo'"));
  EXPECT_THAT(msg, HasSubstr("operator '+'"));
}

bool HasWarning(const std::vector<Diagnostic>& diags, const char* text) {
  for (const Diagnostic& d : diags) {
    if (!d.is_error() && d.message.find(text) != std::string::npos) {
      return !d.suggestion.empty();
    }
  }
  return false;
}

TEST_F(QueryTest, Warnings) {
  EXPECT_TRUE(HasWarning(Diags("k!='x'"), "read as one name"));
  EXPECT_TRUE(HasWarning(Diags("NOT (k) = 'x'") /* no warning */, "x") ==
              false);
  auto d = Diags("NOT k = 'x'");
  EXPECT_TRUE(HasWarning(d, "NOT binds tighter"));
  EXPECT_TRUE(HasWarning(Diags("$correlationId = 'x'"), "cid"));
  EXPECT_TRUE(HasWarning(Diags("is_null($body.x)"), "is_null"));
  std::vector<Diagnostic> rd;
  ASSERT_TRUE(ParseRoute("FROM /messages/modules/*/outputs/o INTO $upstream",
                         "DEV", &rd)
                  .ok());
  EXPECT_TRUE(HasWarning(rd, "not at the end"));
  rd.clear();
  ASSERT_TRUE(ParseRoute("FROM /* INTO $upstream garbage", "DEV", &rd).ok());
  EXPECT_TRUE(HasWarning(rd, "ignored"));
  rd.clear();
  ASSERT_TRUE(
      ParseRoute("FROM /m INTO BrokeredEndpoint('/x/m/y/i')", "DEV", &rd).ok());
  EXPECT_TRUE(HasWarning(rd, "modules"));
  rd.clear();
  EXPECT_FALSE(
      ParseRoute("FROM /* WHERE true /* c */ INTO $upstream", "DEV", &rd).ok());
  EXPECT_TRUE(HasWarning(rd, "comment"));
  // Warnings never change results.
  EXPECT_EQ(Eval("k!='x'", Props()), "undefined");
  EXPECT_EQ(Eval("is_null($body.x)", Body("{\"x\":1}")), "true");
}

// A condition is a WHERE clause, and a WHERE clause needs a condition.
TEST_F(QueryTest, EmptyConditionIsACompileError) {
  for (const char* empty : {"", "   ", "\t\r\n", "  /* only a comment */ "}) {
    EXPECT_EQ(Eval(empty), "compile-error") << "'" << empty << "'";
    const std::vector<Diagnostic> d = Diags(empty);
    ASSERT_EQ(d.size(), 1u);
    EXPECT_TRUE(d[0].is_error());
    EXPECT_THAT(d[0].message, HasSubstr("condition is empty"));
    EXPECT_EQ(d[0].line, 1);
    EXPECT_EQ(d[0].column, 1);
  }
  // The same as the WHERE clause of a route.
  std::vector<Diagnostic> diags;
  EXPECT_FALSE(
      ParseRoute("FROM /messages WHERE   INTO $upstream", "DEV", &diags).ok());
}

TEST_F(QueryTest, LimitsGiveErrorsNotCrashes) {
  std::string deep(20000, '(');
  auto d = Diags(deep + "true");
  ASSERT_FALSE(d.empty());
  EXPECT_THAT(d[0].message, HasSubstr("nesting"));
  std::string nots;
  for (int i = 0; i < 10000; ++i) nots += "NOT ";
  d = Diags(nots + "true");
  ASSERT_FALSE(d.empty());
  EXPECT_THAT(d[0].message, HasSubstr("nesting"));
  // A long flat chain is fine (no recursion per operand).
  std::string chain = "true";
  for (int i = 0; i < 200; ++i) chain += " AND true";
  EXPECT_EQ(Eval(chain), "true");

  RouteSpec big;
  big.name = "big";
  big.text = "FROM /messages WHERE k = '" + std::string(70000, 'x') +
             "' INTO $upstream";
  std::vector<Diagnostic> diags;
  auto set = RouteSet::Compile({big}, CompileOptions(), &diags);
  ASSERT_FALSE(set.ok());
  EXPECT_THAT(std::string(set.status().message()), HasSubstr("limit"));
}

TEST(RouteTest, FirstStage) {
  auto r = ParseRoute(
      "SELECT * FROM /messages/modules/m1/* WHERE k = 1 INTO "
      "BrokeredEndpoint(\"/modules/m2/inputs/i1\")",
      "edge1", nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->source, "/messages/modules/m1/");
  EXPECT_EQ(r->condition, "k = 1");  // not type-checked here
  EXPECT_EQ(r->sink.kind, SinkSpec::Kind::kModule);
  EXPECT_EQ(r->sink.endpoint_id, "edge1/m2/i1");
  EXPECT_EQ(r->sink.module, "m2");
  EXPECT_EQ(r->sink.input, "i1");

  r = ParseRoute("from /messages INTO $UPSTREAM", "D", nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->source, "/messages/");
  EXPECT_EQ(r->condition, "true");
  EXPECT_EQ(r->sink.endpoint_id, "iothub");

  r = ParseRoute("FROM /m WHERE a /* keep */ = 'b' /* drop */ INTO $upstream",
                 "D", nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->condition, "a /* keep */ = 'b'");

  for (const char* bad :
       {"", "   ", "INTO $upstream", "FROM messages INTO $upstream",
        "FROM /m INTO", "FROM /m INTO $other", "FROM /m INTO Foo('/a/b/c/d')",
        "FROM /m INTO BrokeredEndpoint('/modules/m/inputs')",
        "FROM /m WHERE INTO $upstream", "FROM /m WHERE a = 1 b INTO $upstream",
        "FROM /m/ INTO $upstream"}) {
    std::vector<Diagnostic> diags;
    auto p = ParseRoute(bad, "D", &diags);
    EXPECT_FALSE(p.ok()) << bad;
    ASSERT_FALSE(diags.empty()) << bad;
    EXPECT_TRUE(diags[0].is_error()) << bad;
  }
}

TEST(RouteTest, SourceNormalisationAndMatching) {
  auto source = [](const char* path) {
    auto r = ParseRoute(absl::StrCat("FROM ", path, " INTO $upstream"), "D",
                        nullptr);
    return r.ok() ? r->source : std::string("error");
  };
  EXPECT_EQ(source("/*"), "/");
  EXPECT_EQ(source("/messages"), "/messages/");
  EXPECT_EQ(source("/messages/*"), "/messages/");
  EXPECT_EQ(source("/messages*"), "/messages/");
  EXPECT_EQ(source("/ messages / *"), "/messages/");
  EXPECT_EQ(source("/messages/modules/m*"), "/messages/modules/m/");
  EXPECT_TRUE(SourceMatches("/", "/twinChangeNotifications"));
  EXPECT_TRUE(SourceMatches("/messages/", "/messages"));
  EXPECT_TRUE(SourceMatches("/MESSAGES/", "/messages/modules/a"));
  EXPECT_FALSE(SourceMatches("/messages/modules/", "/messages"));
  EXPECT_FALSE(SourceMatches("/messages/modules/m1/", "/messages/modules/m10"));
  EXPECT_TRUE(SourceMatches("/messages/modules/m1/", "/messages/modules/m1"));
}

TEST(ExplainTest, ShowsSubexpressionValues) {
  auto c =
      CompiledCondition::Compile("level = 'critical' AND $body.t > 5", nullptr);
  ASSERT_TRUE(c.ok());
  MessageBuilder b;
  b.SetBody("{\"t\":3}");
  b.AddSystemProperty("contentType", "application/json");
  b.AddSystemProperty("contentEncoding", "utf-8");
  b.AddProperty("level", "critical");
  b.Finish();
  std::string e = (*c)->Explain(b.view());
  EXPECT_THAT(e, HasSubstr("result: false"));
  EXPECT_THAT(e, HasSubstr("level = 'critical'  ->  true"));
  EXPECT_THAT(e, HasSubstr("$body.t > 5  ->  false"));
  // Each sub-expression is shown once (fused compares list their operands).
  auto count = [&e](const std::string& needle) {
    size_t n = 0;
    for (size_t at = e.find(needle); at != std::string::npos;
         at = e.find(needle, at + 1)) {
      ++n;
    }
    return n;
  };
  EXPECT_EQ(count("\n    'critical'  ->"), 1u) << e;
  EXPECT_EQ(count("\n    level  ->"), 1u) << e;
  EXPECT_EQ(count("$body.t  ->"), 1u) << e;
  EXPECT_EQ(count("\n    5  ->"), 1u) << e;
}

}  // namespace
}  // namespace edgeroute::query
