// Unit tests of the route language through the public API: lexer traps,
// every operator and built-in, type rules, body queries, error positions,
// warnings, limits, route parsing and source matching.

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

namespace edgeroute::query {
namespace {

using ::testing::HasSubstr;

struct Msg {
  std::vector<std::pair<std::string, const char*>> props;  // null = null
  std::vector<std::pair<std::string, const char*>> sys;
  std::string body;
  bool json = true;  // add contentType/contentEncoding for a JSON body
  std::string source;
};

class QueryTest : public ::testing::Test {
 protected:
  MessageView Build(const Msg& m) {
    builder_.Clear();
    if (!m.source.empty()) builder_.SetSource(m.source);
    builder_.SetBody(m.body);
    for (const auto& [k, v] : m.props) {
      if (v == nullptr) {
        builder_.AddNullProperty(k);
      } else {
        builder_.AddProperty(k, v);
      }
    }
    if (m.json) {
      builder_.AddSystemProperty("contentType", "application/json");
      builder_.AddSystemProperty("contentEncoding", "utf-8");
    }
    for (const auto& [k, v] : m.sys) {
      if (v == nullptr) {
        builder_.AddNullSystemProperty(k);
      } else {
        builder_.AddSystemProperty(k, v);
      }
    }
    builder_.Finish();
    return builder_.view();
  }

  // "true", "false", "undefined" or "compile-error".
  std::string Eval(const std::string& condition, const Msg& m = Msg()) {
    auto c = CompiledCondition::Compile(condition, nullptr);
    if (!c.ok()) return "compile-error";
    auto scratch = (*c)->NewScratch();
    return TriName((*c)->Evaluate(Build(m), scratch.get()));
  }

  std::vector<Diagnostic> Diags(const std::string& condition) {
    std::vector<Diagnostic> diags;
    (void)CompiledCondition::Compile(condition, &diags);
    return diags;
  }

  MessageBuilder builder_;
};

Msg Props() {
  Msg m;
  m.props = {{"k", "v"}, {"n", "3"}, {"nul", nullptr}, {"Level", "critical"}};
  m.sys = {{"connectionDeviceId", "dev1"}, {"cid", "c-9"}};
  return m;
}

Msg Body(std::string body) {
  Msg m;
  m.body = std::move(body);
  return m;
}

// Conditions compiled as one route set (route i reads FROM sources[i %
// sources.size()]) and each alone, to check the set's plan against the tree
// evaluator of a single condition. Conditions that do not compile are left
// out.
class PlanChecker {
 public:
  PlanChecker(const std::vector<std::string>& conditions,
              std::vector<std::string> sources)
      : sources_(std::move(sources)) {
    for (const std::string& c : conditions) {
      auto compiled = CompiledCondition::Compile(c, nullptr);
      if (!compiled.ok()) continue;  // e.g. level = 2: a type error
      RouteSpec r;
      r.name = absl::StrCat("r", routes_.size());
      r.text = absl::StrCat("FROM ", sources_[routes_.size() % sources_.size()],
                            " WHERE ", c, " INTO $upstream");
      routes_.push_back(std::move(r));
      alone_.push_back(std::move(*compiled));
    }
    auto set = RouteSet::Compile(routes_, CompileOptions(), nullptr);
    EXPECT_TRUE(set.ok()) << set.status();
    if (set.ok()) {
      set_ = std::move(*set);
      scratch_ = set_->NewScratch();
    }
  }

  size_t size() const { return routes_.size(); }
  size_t trues() const { return trues_; }
  size_t falses() const { return falses_; }

  // Evaluates `view` through the set (EvaluateAll and EvaluateCondition)
  // and through each condition alone; `source_ok[k]` says whether
  // sources[k] matches the message. Returns false on the first difference.
  bool Check(const MessageView& view, const std::vector<bool>& source_ok,
             const std::string& what) {
    if (set_ == nullptr) return false;
    set_->EvaluateAll(view, scratch_.get(), &matched_);
    EXPECT_EQ(matched_.size(), routes_.size());
    for (size_t i = 0; i < routes_.size(); ++i) {
      auto s = alone_[i]->NewScratch();
      const Tri want = alone_[i]->Evaluate(view, s.get());
      trues_ += want == Tri::kTrue;
      falses_ += want == Tri::kFalse;
      const Tri one = set_->EvaluateCondition(i, view, scratch_.get());
      const int expected =
          source_ok[i % sources_.size()] && want == Tri::kTrue ? 1 : 0;
      if (one != want || matched_[i] != expected) {
        ADD_FAILURE() << routes_[i].text << " on " << what << ": alone "
                      << TriName(want) << ", in the set " << TriName(one)
                      << ", matched " << int(matched_[i]);
        return false;
      }
    }
    return true;
  }

 private:
  std::vector<std::string> sources_;
  std::vector<RouteSpec> routes_;
  std::vector<std::unique_ptr<CompiledCondition>> alone_;
  std::unique_ptr<RouteSet> set_;
  std::unique_ptr<EvalScratch> scratch_;
  std::vector<uint8_t> matched_;
  size_t trues_ = 0, falses_ = 0;
};

// A route set evaluates comparisons of one load with many constants as one
// group (vectorised four at a time per operator) and routes of the same shape
// together. Every route must still give what its condition gives alone, for
// values below, at and above each constant and for every kind of value.
TEST_F(QueryTest, RouteSetPlanMatchesConditionsAlone) {
  const std::vector<std::string> loads = {"$body.x", "level", "$body.s"};
  const std::vector<std::string> ops = {"=", "!=", "<", "<=", ">", ">=", "<>"};
  const std::vector<std::string> constants = {
      "-1",  "0",   "1.5", "2",    "3",  "50",    "1e300", "0/0", "'2'",
      "'b'", "'a'", "'c'", "'hi'", "''", "'2.0'", "true",  "null"};
  std::vector<std::string> conditions;
  for (const std::string& load : loads) {
    for (const std::string& op : ops) {
      for (const std::string& c : constants) {
        conditions.push_back(absl::StrCat(load, " ", op, " ", c));
        conditions.push_back(absl::StrCat(c, " ", op, " ", load));
      }
    }
  }
  // Shapes: the same formula over different atoms, NOT, and atoms that are
  // not comparisons with a constant.
  const size_t simple = conditions.size();
  for (size_t i = 0; i + 2 < simple; i += 3) {
    conditions.push_back(absl::StrCat(conditions[i], " AND (",
                                      conditions[i + 1], " OR ",
                                      conditions[i + 2], ")"));
    conditions.push_back(
        absl::StrCat("NOT (", conditions[i], ") OR ", conditions[i + 1]));
  }
  conditions.push_back("is_defined($body.x) AND $body.x * 2 > 3");
  conditions.push_back("$body.x ?? 7");
  conditions.push_back("$body.b");
  conditions.push_back("NOT $body.b AND level = 'hi'");
  conditions.push_back("null OR $body.x > 1");
  conditions.push_back("undefined OR true");
  // Three sources: groups and shapes are per source; the last one never
  // matches the messages' source.
  PlanChecker checker(conditions, {"/messages", "/messages/modules/a",
                                   "/messages/modules/zzz"});
  ASSERT_GT(checker.size(), 300u);

  const std::vector<std::string> values = {
      "-2",    "-1",   "0",     "1",     "1.5",   "2",     "2.5",
      "3",     "50",   "51",    "1e300", "\"2\"", "\"a\"", "\"b\"",
      "\"c\"", "true", "false", "null",  "[1]",   "{}"};
  std::vector<Msg> messages;
  for (const std::string& v : values) {
    Msg m = Body(absl::StrCat("{\"x\":", v, ",\"s\":", v, ",\"b\":", v, "}"));
    m.props = {{"level", "2"}};
    messages.push_back(m);
    m.props = {{"level", "hi"}};
    messages.push_back(m);
  }
  messages.push_back(Body("{}"));
  messages.push_back(Body("not json"));
  Msg no_level = Body("{\"x\":2}");
  no_level.props = {{"level", nullptr}};
  messages.push_back(no_level);
  for (Msg& m : messages) {
    m.source = "/messages/modules/a/outputs/b";
    ASSERT_TRUE(checker.Check(Build(m), {true, true, false}, m.body));
  }
  EXPECT_GT(checker.trues(), 1000u);
  EXPECT_GT(checker.falses(), 1000u);
}

// Routes of one shape over consecutive comparisons (as generated manifests
// have them) are evaluated 16 at a time; every route must still give what its
// condition gives alone.
TEST_F(QueryTest, RouteSetPlanConsecutiveShapes) {
  std::vector<std::string> conditions;
  for (int i = 0; i < 40; ++i) {
    conditions.push_back(absl::StrCat("$body.x > ", i, " AND ($body.y < ",
                                      100 - i, " OR $body.s = 't", i % 10,
                                      "')"));
  }
  for (int i = 0; i < 37; ++i) {
    conditions.push_back(
        absl::StrCat("NOT ($body.x >= ", i, ") OR $body.y <= ", i * 2));
  }
  for (int i = 0; i < 33; ++i) {
    conditions.push_back(absl::StrCat("$body.y = ", i));
  }
  PlanChecker checker(conditions, {"/messages"});
  ASSERT_EQ(checker.size(), conditions.size());
  for (const char* x :
       {"-1", "0", "5", "17", "20", "33", "50", "\"a\"", "null"}) {
    for (const char* y : {"0", "7", "20", "34", "60", "70", "99", "true"}) {
      for (const char* str : {"t3", "t7", "u"}) {
        Msg m = Body(
            absl::StrCat("{\"x\":", x, ",\"y\":", y, ",\"s\":\"", str, "\"}"));
        m.source = "/messages/modules/a/outputs/b";
        ASSERT_TRUE(checker.Check(Build(m), {true}, m.body));
      }
    }
  }
  EXPECT_GT(checker.trues(), 1000u);
  EXPECT_GT(checker.falses(), 1000u);
}

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

TEST_F(QueryTest, BodyQueries) {
  const std::string b =
      "{\"i\":5,\"t\":21.5,\"s\":\"abc\",\"b\":true,\"f\":false,\"z\":null,"
      "\"o\":{\"x\":1},\"arr\":[10,20,[30,40]],\"d\":\"2017-03-09T00:00:00Z\","
      "\"k\":1,\"k\":2,\"neg\":-0}";
  EXPECT_EQ(Eval("$body.i = 5", Body(b)), "true");
  EXPECT_EQ(Eval("$BODY.s = 'abc'", Body(b)), "true");
  EXPECT_EQ(Eval("$body.S = 'abc'", Body(b)), "false");  // keys are exact
  EXPECT_EQ(Eval("$body.b", Body(b)), "true");
  EXPECT_EQ(Eval("$body.arr[1] = 20", Body(b)), "true");
  EXPECT_EQ(Eval("$body.arr[2][1] = 40", Body(b)), "true");
  EXPECT_EQ(Eval("$body.arr[9] = null", Body(b)), "true");
  EXPECT_EQ(Eval("$body.missing = null", Body(b)), "true");
  EXPECT_EQ(Eval("$body.missing > 5", Body(b)), "true");  // Null ranks high
  EXPECT_EQ(Eval("$body.s > 5", Body(b)), "true");
  EXPECT_EQ(Eval("$body.b < 5", Body(b)), "true");
  EXPECT_EQ(Eval("$body.i = '5'", Body(b)), "false");
  EXPECT_EQ(Eval("$body.o = null", Body(b)), "undefined");
  EXPECT_EQ(Eval("is_defined($body.arr)", Body(b)), "false");
  EXPECT_EQ(Eval("$body.d = 'x'", Body(b)), "undefined");  // a date
  EXPECT_EQ(Eval("$body.k = 2", Body(b)), "true");  // last duplicate wins
  // Escaped keys match by their unescaped text, also among duplicates.
  EXPECT_EQ(Eval("$body.temp = 7", Body("{\"t\\u0065mp\":7,\"x\":1}")), "true");
  EXPECT_EQ(Eval("$body.temp = 2", Body("{\"temp\":1,\"t\\u0065mp\":2}")),
            "true");
  EXPECT_EQ(Eval("$body.temp = 1", Body("{\"t\\u0065mp\":2,\"temp\":1}")),
            "true");
  EXPECT_EQ(Eval("1 / $body.neg > 0", Body(b)), "true");  // -0 is +0
  EXPECT_EQ(Eval("$body.i - 1 = 4", Body(b)), "true");
  EXPECT_EQ(Eval("$body.i % 2 = 1", Body(b)), "compile-error");
  EXPECT_EQ(Eval("-($body.i) = -5", Body(b)), "compile-error");
  EXPECT_EQ(Eval("true AND $body.b", Body(b)), "compile-error");
  EXPECT_EQ(Eval("$body.b AND true", Body(b)), "true");
  EXPECT_EQ(Eval("$body.f AND undefined", Body(b)), "undefined");
  EXPECT_EQ(Eval("$body.b AND null", Body(b)), "compile-error");
  EXPECT_EQ(Eval("NOT $body.f", Body(b)), "true");
  EXPECT_EQ(Eval("$body.a.0 = 1"), "compile-error");
  EXPECT_EQ(Eval("$body.a[-1] = 1"), "compile-error");
  EXPECT_EQ(Eval("$body. = 1"), "compile-error");
  EXPECT_EQ(Eval("$body.a..b = 1"), "compile-error");
  EXPECT_EQ(Eval("$body.i] = 5", Body(b)), "undefined");  // junk tail
}

TEST_F(QueryTest, BodyAppPropertyConflicts) {
  Msg m = Body("{\"x\":1}");
  m.props = {{"$body.x", "2"}};
  EXPECT_EQ(Eval("$body.x = '2'", m), "true");  // app property wins
  EXPECT_EQ(Eval("{$body.x} = 1", m), "true");  // escaped: the body
  // Both spellings in one condition share the body path but not the result.
  EXPECT_EQ(Eval("$body.x = '2' AND {$body.x} = 1", m), "true");
  EXPECT_EQ(Eval("{$body.x} = 1 AND $body.x = '2'", m), "true");
}

TEST_F(QueryTest, BodyIsReadOnlyWithJsonHeaders) {
  Msg m = Body("{\"i\":5}");
  EXPECT_EQ(Eval("$body.i = 5", m), "true");
  m.json = false;
  EXPECT_EQ(Eval("$body.i = 5", m), "undefined");
  m.sys = {{"contentType", "application/json; charset=utf-8"},
           {"contentEncoding", "utf-8"}};
  EXPECT_EQ(Eval("$body.i = 5", m), "undefined");
  m.sys = {{"contentType", "Application/JSON"}, {"contentEncoding", "UTF8"}};
  EXPECT_EQ(Eval("$body.i = 5", m), "undefined");
  m.sys = {{"contentType", "Application/JSON"}, {"contentEncoding", "UTF-8"}};
  EXPECT_EQ(Eval("$body.i = 5", m), "true");
  // Header names are case-insensitive; the first of duplicates counts.
  m.sys = {{"CONTENTENCODING", "utf-8"}, {"contenttype", "application/json"}};
  EXPECT_EQ(Eval("$body.i = 5", m), "true");
  m.sys = {{"contentType", "text/plain"},
           {"ContentType", "application/json"},
           {"contentEncoding", "utf-8"}};
  EXPECT_EQ(Eval("$body.i = 5", m), "undefined");
  m.sys = {{"ContentType", "application/json"},
           {"contentType", "text/plain"},
           {"contentEncoding", "utf-8"}};
  EXPECT_EQ(Eval("$body.i = 5", m), "true");
  // UTF-16LE and UTF-32LE bodies are decoded.
  std::string utf16, utf32;
  for (char c : std::string("{\"i\":5}")) {
    utf16 += c;
    utf16 += '\0';
    utf32 += c;
    utf32 += std::string(3, '\0');
  }
  m.body = utf16;
  m.sys = {{"contentType", "application/json"}, {"contentEncoding", "utf-16"}};
  EXPECT_EQ(Eval("$body.i = 5", m), "true");
  m.body = utf32;
  m.sys = {{"contentType", "application/json"}, {"contentEncoding", "utf-32"}};
  EXPECT_EQ(Eval("$body.i = 5", m), "true");
}

TEST_F(QueryTest, BodyMustBeStrictJsonObject) {
  for (const char* bad :
       {"{\"i\":5} x", "{\"i\":5}{\"j\":1}", "{'i':5}", "{i:5}",
        "{\"i\":5 /* c */}", "[{\"i\":5}]", "\"x\"", "{\"i\":05}", "{\"i\":5,}",
        "{\"i\":tru}", "{\"i\":\"a\x01\"}", ""}) {
    EXPECT_EQ(Eval("$body.i = 5", Body(bad)), "undefined") << bad;
    EXPECT_EQ(Eval("is_defined($body.missing)", Body(bad)), "false") << bad;
  }
  EXPECT_EQ(Eval("$body.i = 5", Body(" {\"i\" : 5 } \n")), "true");
  EXPECT_EQ(Eval("$body.s = 'a\"b\xC3\xA9'", Body("{\"s\":\"a\\\"b\\u00e9\"}")),
            "true");
}

TEST_F(QueryTest, DateStringsAreUndefined) {
  for (const char* date :
       {"2017-03-09T00:00:00Z", "2017-03-09T00:00:00.123+01:00",
        "2017-03-09T00:00:00-0500", "2017-03-09T00:00:00+01",
        "2017-03-09T00:00:00", "/Date(1489017600000)/"}) {
    EXPECT_EQ(Eval("is_defined($body.d)",
                   Body(absl::StrCat("{\"d\":\"", date, "\"}"))),
              "false")
        << date;
  }
  for (const char* text :
       {"2017-03-09", "2017-13-09T00:00:00Z", "2017-02-30T00:00:00Z",
        "2024-01-02Tfoo", "2024-01-02 03:04:05"}) {
    EXPECT_EQ(Eval("is_string($body.d)",
                   Body(absl::StrCat("{\"d\":\"", text, "\"}"))),
              "true")
        << text;
  }
}

TEST_F(QueryTest, IsNullBodyBug) {
  Msg m = Body("{\"i\":5,\"z\":null,\"o\":{}}");
  EXPECT_EQ(Eval("is_null($body.z)", m), "true");
  EXPECT_EQ(Eval("is_null($body.i)", m), "true");  // edgeHub's bug
  EXPECT_EQ(Eval("is_null($body.missing)", m), "false");
  EXPECT_EQ(Eval("is_null($body.o)", m), "undefined");
}

TEST_F(QueryTest, MathBuiltins) {
  EXPECT_EQ(Eval("abs(-2.5) = 2.5"), "true");
  EXPECT_EQ(Eval("ABS(3) = 3"), "true");
  EXPECT_EQ(Eval("ceiling(1.2) = 2"), "true");
  EXPECT_EQ(Eval("floor(-1.2) = -2"), "true");
  EXPECT_EQ(Eval("exp(0) = 1"), "true");
  EXPECT_EQ(Eval("sign(-3) = -1"), "true");
  EXPECT_EQ(Eval("sign(1 / 0) = 1"), "true");
  EXPECT_EQ(Eval("sqrt(16) = 4"), "true");
  EXPECT_EQ(Eval("is_defined(sqrt(-1))"), "false");
  EXPECT_EQ(Eval("square(1.5) = 2.25"), "true");
  EXPECT_EQ(Eval("power(2, 10) = 1024"), "true");
  EXPECT_EQ(Eval("abs(k) = 1", Props()), "compile-error");
  EXPECT_EQ(Eval("abs(1, 2) = 1"), "compile-error");
  EXPECT_EQ(Eval("power($body.i, 2) = 25", Body("{\"i\":5}")), "true");
  EXPECT_EQ(Eval("abs($body.s) = 1", Body("{\"s\":\"x\"}")), "undefined");
}

TEST_F(QueryTest, AsNumberFollowsDotNetParsing) {
  EXPECT_EQ(Eval("as_number(' 12 ') = 12"), "true");
  EXPECT_EQ(Eval("as_number('1,000') = 1000"), "true");
  EXPECT_EQ(Eval("as_number('(5)') = -5"), "true");
  EXPECT_EQ(Eval("as_number('5-') = -5"), "true");
  EXPECT_EQ(Eval("as_number('1e3') = 1000"), "true");
  EXPECT_EQ(Eval("as_number('.25') = 0.25"), "true");
  EXPECT_EQ(Eval("as_number('0x1F') = 31"), "undefined");
  EXPECT_EQ(Eval("as_number('12abc') = 12"), "undefined");
  EXPECT_EQ(Eval("as_number('') = 0"), "undefined");
  EXPECT_EQ(Eval("as_number(',5') = 5"), "undefined");
  EXPECT_EQ(Eval("as_number(7) = 7"), "true");
  EXPECT_EQ(Eval("as_number(null) = 0"), "compile-error");
  EXPECT_EQ(Eval("as_number(true) = 0"), "compile-error");
  EXPECT_EQ(Eval("as_number($body.i) = 5", Body("{\"i\":5}")), "true");
  EXPECT_EQ(Eval("as_number($body.s) = 7", Body("{\"s\":\" 7\"}")), "true");
}

TEST_F(QueryTest, TypeCheckBuiltins) {
  Msg m = Props();
  EXPECT_EQ(Eval("is_defined(nul)", m), "true");
  EXPECT_EQ(Eval("is_defined(missing)", m), "false");
  EXPECT_EQ(Eval("is_defined(null)"), "true");
  EXPECT_EQ(Eval("is_defined(undefined)"), "false");
  EXPECT_EQ(Eval("is_defined(1 / 0)"), "true");
  EXPECT_EQ(Eval("is_null(nul)", m), "true");
  EXPECT_EQ(Eval("is_null(missing)", m), "false");
  EXPECT_EQ(Eval("is_null(0)"), "false");
  EXPECT_EQ(Eval("is_number(1 / 0)"), "false");
  EXPECT_EQ(Eval("is_number(n)", m), "false");  // properties are strings
  EXPECT_EQ(Eval("is_string(k)", m), "true");
  EXPECT_EQ(Eval("is_string(nul)", m), "false");
  EXPECT_EQ(Eval("is_bool(true and undefined)"), "undefined");
  EXPECT_EQ(Eval("is_bool(k)", m), "false");
  EXPECT_EQ(Eval("is_defined()"), "compile-error");
  EXPECT_EQ(Eval("is_bool($body.x)", Body("[1]")), "undefined");
}

TEST_F(QueryTest, StringBuiltins) {
  Msg m = Props();
  EXPECT_EQ(Eval("concat('a', 'b', 'c') = 'abc'"), "true");
  EXPECT_EQ(Eval("concat('a') = 'a'"), "compile-error");
  EXPECT_EQ(Eval("concat('a', 1) = 'a1'"), "compile-error");
  EXPECT_EQ(Eval("concat('x', nul, 'y') = 'xy'", m), "true");
  EXPECT_EQ(Eval("is_defined(concat('x', missing))", m), "false");
  EXPECT_EQ(Eval("length('h\xC3\xA9llo') = 5"), "true");
  EXPECT_EQ(Eval("length('\xF0\x9F\x98\x80') = 2"), "true");  // UTF-16 units
  EXPECT_EQ(Eval("length(nul) = 0", m), "undefined");
  EXPECT_EQ(Eval("lower('ABC\xC3\x89') = 'abc\xC3\xA9'"), "true");
  EXPECT_EQ(Eval("upper('abc') = 'ABC'"), "true");
  EXPECT_EQ(Eval("lower(1) = '1'"), "compile-error");
  EXPECT_EQ(Eval("substring('hello', 1) = 'ello'"), "true");
  EXPECT_EQ(Eval("substring('hello', 5) = ''"), "true");
  EXPECT_EQ(Eval("substring('hello', 6) = ''"), "undefined");
  EXPECT_EQ(Eval("substring('hello', 1.9) = 'ello'"), "true");
  EXPECT_EQ(Eval("substring('hello', 1, 3) = 'ell'"), "true");
  EXPECT_EQ(Eval("substring('hello', 5, 0) = ''"), "undefined");
  EXPECT_EQ(Eval("substring('hello', 2, 4) = 'llo'"), "undefined");
  EXPECT_EQ(Eval("substring('hello', -1) = 'hello'"), "undefined");
  EXPECT_EQ(Eval("substring('hello') = 'h'"), "compile-error");
  EXPECT_EQ(Eval("index_of('hello', 'l') = 2"), "true");
  EXPECT_EQ(Eval("index_of('h\xF0\x9F\x98\x80l', 'l') = 3"), "true");
  EXPECT_EQ(Eval("index_of('hello', 'z') = -1"), "true");
  EXPECT_EQ(Eval("index_of('hello', '') = 0"), "true");
  EXPECT_EQ(Eval("starts_with('hello', 'he')"), "true");
  EXPECT_EQ(Eval("ends_with('hello', 'lo')"), "true");
  EXPECT_EQ(Eval("contains('hello', 'ell')"), "true");
  EXPECT_EQ(Eval("contains('hello', 'L')"), "false");
  EXPECT_EQ(Eval("contains(missing, 'a')", m), "undefined");
  EXPECT_EQ(Eval("starts_with(nul, 'a')", m), "undefined");
  EXPECT_EQ(Eval("'x' || nul || 'y' = 'xy'", m), "true");
  EXPECT_EQ(Eval("1 || 'y' = 'xy'"), "compile-error");
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
      {"a\xFF" "b", "upper(p) = 'A\\uFFFDB'", "true"},
      {"A\xFF" "B", "lower(p) = 'a\\uFFFDb'", "true"},
      {"a\xFF" "b", "substring(p, 1, 1) = '\\uFFFD'", "true"},
      {"a\xFF" "b", "substring(p, 2) = 'b'", "true"},
      {"a\xF0\x9F\x98" "b", "index_of(p, 'b') = 2", "true"},
      {"a\xFF" "b", "concat(p, 'c') = 'a\\uFFFDbc'", "true"},
      {"a\xFF" "b", "p || 'c' = 'a\\uFFFDbc'", "true"},
      {"a\xFF" "b", "starts_with(p, 'a\\uFFFD')", "true"},
      {"a\xFF" "b", "ends_with(p, '\\uFFFDb')", "true"},
      {"a\xFF" "b", "contains(p, '\\uFFFD')", "true"},
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

TEST_F(QueryTest, UnknownAndDisabledBuiltins) {
  auto d = Diags("foo(1) = 1");
  ASSERT_FALSE(d.empty());
  EXPECT_EQ(d[0].message, "Invalid built-in function 'foo'");
  EXPECT_EQ(Eval("twin_change_includes(properties.reported.x)"),
            "compile-error");
  EXPECT_EQ(Eval("log(1) = 0"), "compile-error");
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

TEST_F(QueryTest, EmptyConditionIsUndefined) {
  EXPECT_EQ(Eval(""), "undefined");
  EXPECT_EQ(Eval("  /* only a comment */ "), "undefined");
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

TEST(RouteSetTest, CompilesTogetherAndSharesLoads) {
  std::vector<RouteSpec> routes(3);
  routes[0].name = "hot";
  routes[0].text =
      "FROM /messages/modules/m/* WHERE $body.t > 50 INTO "
      "BrokeredEndpoint('/modules/alarm/inputs/in')";
  routes[0].priority = 0;
  routes[0].ttl_secs = 60;
  routes[1].name = "all";
  routes[1].text = "FROM /messages/* INTO $upstream";
  routes[2].name = "cold";
  routes[2].text = "FROM /messages/* WHERE $body.t <= 50 INTO $upstream";
  std::vector<Diagnostic> diags;
  auto set = RouteSet::Compile(routes, CompileOptions(), &diags);
  ASSERT_TRUE(set.ok()) << set.status();
  ASSERT_EQ((*set)->size(), 3u);
  EXPECT_EQ((*set)->route(0).name, "hot");
  EXPECT_EQ((*set)->route(0).priority, 0);
  EXPECT_EQ((*set)->route(0).ttl_secs, 60);
  EXPECT_EQ((*set)->route(0).sink.endpoint_id, "DEV/alarm/in");
  EXPECT_EQ((*set)->route(1).condition, "true");

  MessageBuilder b;
  auto scratch = (*set)->NewScratch();
  std::vector<uint8_t> matched;
  for (int t : {70, 20}) {
    b.Clear();
    b.SetBody(absl::StrCat("{\"t\":", t, "}"));
    b.AddSystemProperty("contentType", "application/json");
    b.AddSystemProperty("contentEncoding", "utf-8");
    b.AddSystemProperty("connectionModuleId", "m");
    b.AddSystemProperty("outputName", "o");
    b.Finish();
    (*set)->EvaluateAll(b.view(), scratch.get(), &matched);
    ASSERT_EQ(matched.size(), 3u);
    EXPECT_EQ(matched[0], t > 50 ? 1 : 0) << t;
    EXPECT_EQ(matched[1], 1);
    EXPECT_EQ(matched[2], t > 50 ? 0 : 1) << t;
    // Per-route evaluation agrees after an explicit reset.
    RouteSet::Reset(scratch.get());
    EXPECT_EQ((*set)->EvaluateCondition(0, b.view(), scratch.get()),
              t > 50 ? Tri::kTrue : Tri::kFalse);
    RouteSet::Reset(scratch.get());
  }
  // Device messages do not match the module route's source.
  b.Clear();
  b.SetBody("{\"t\":99}");
  b.AddSystemProperty("contentType", "application/json");
  b.AddSystemProperty("contentEncoding", "utf-8");
  b.Finish();
  (*set)->EvaluateAll(b.view(), scratch.get(), &matched);
  EXPECT_EQ(matched[0], 0);
  EXPECT_EQ(matched[1], 1);
}

TEST(RouteSetTest, ReportsEveryErrorWithRouteNames) {
  std::vector<RouteSpec> routes(3);
  routes[0].name = "ok";
  routes[0].text = "FROM /messages/* INTO $upstream";
  routes[1].name = "typed";
  routes[1].text = "FROM /messages/* WHERE k = 1 INTO $upstream";
  routes[2].name = "syntax";
  routes[2].text = "FROM /messages/* WHERE\nk == 1 INTO $upstream";
  std::vector<Diagnostic> diags;
  auto set = RouteSet::Compile(routes, CompileOptions(), &diags);
  ASSERT_FALSE(set.ok());
  std::string msg(set.status().message());
  EXPECT_THAT(msg, HasSubstr("route 'typed'"));
  EXPECT_THAT(msg, HasSubstr("route 'syntax'"));
  EXPECT_THAT(msg, HasSubstr("1:26:"));  // '=' in the typed route
  EXPECT_THAT(msg, HasSubstr("2:4:"));   // second '=' of '=='
  int errors = 0;
  for (const Diagnostic& d : diags) errors += d.is_error();
  EXPECT_EQ(errors, 2);
}

TEST(RouteSetTest, ScratchDetectsNewMessages) {
  RouteSpec r;
  r.name = "r";
  r.text = "FROM /messages/* WHERE level = 'critical' INTO $upstream";
  auto set = RouteSet::Compile({r}, CompileOptions(), nullptr);
  ASSERT_TRUE(set.ok());
  auto scratch = (*set)->NewScratch();
  MessageBuilder a, b;
  a.AddProperty("level", "critical");
  a.Finish();
  b.AddProperty("level", "info");
  b.Finish();
  EXPECT_EQ((*set)->EvaluateCondition(0, a.view(), scratch.get()), Tri::kTrue);
  EXPECT_EQ((*set)->EvaluateCondition(0, b.view(), scratch.get()), Tri::kFalse);
  EXPECT_EQ((*set)->EvaluateCondition(0, a.view(), scratch.get()), Tri::kTrue);
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
