// $body queries: paths, values, the shadowing application property, the
// headers that make a body readable, strict JSON and date strings.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "message/message.h"
#include "query/query.h"
#include "query/query_test_util.h"

namespace edgeroute::query {
namespace {

using ::testing::HasSubstr;

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

// The tape holds only the members the paths start with, but the whole
// body is still checked, and lookups find what a full tape gives.
TEST_F(QueryTest, BodyMembersNoPathReads) {
  for (const char* bad :
       {"{\"i\":5,\"x\":[1,2,]}", "{\"i\":5,\"x\":{\"y\":\"\\q\"}}",
        "{\"i\":5,\"x\":01}", "{\"i\":5,\"x\":\"a\x01\"}", "{\"i\":5} x",
        "{\"x\":[1,,2],\"i\":5}", "{\"i\":5,\"x\":{\"y\":1,}}"}) {
    EXPECT_EQ(Eval("$body.i = 5", Body(bad)), "undefined") << bad;
    EXPECT_EQ(Eval("is_defined($body.missing)", Body(bad)), "false") << bad;
  }
  // Deep inside a left-out member, after readings that fill whole 64-byte
  // blocks: a bad token there still makes the body undefined.
  std::string readings;
  for (int k = 0; k < 8; ++k) {
    absl::StrAppend(&readings, "{\"t\":", 1700000000000 + k,
                    ",\"v\":70.5,\"ok\":true},");
  }
  for (const char* bad :
       {"1.", "-", "1e", "01", "1.2.3", "tru", "nul", "[1,]", "{\"a\":1,}",
        "{\"a\" 1}", "{\"a\"}", "{]", "[[]", "\"a\x01\"", "\"\\q\""}) {
    const std::string body = absl::StrCat("{\"readings\":[", readings,
                                          "{\"x\":[", bad, "]}],\"i\":5}");
    EXPECT_EQ(Eval("$body.i = 5", Body(body)), "undefined") << body;
  }
  EXPECT_EQ(
      Eval("$body.i = 5", Body(absl::StrCat("{\"readings\":[", readings,
                                            "{\"x\":[\"\xff\"]}],\"i\":5}"))),
      "true");
  EXPECT_EQ(Eval("$body.i = 5", Body(absl::StrCat("{\"readings\":[", readings,
                                                  "{\"x\":[1e5]}],\"i\":5}"))),
            "true");
  // The depth limit (64 open containers) inside a member no path reads.
  for (int levels = 62; levels <= 66; ++levels) {
    const std::string body =
        absl::StrCat("{\"i\":5,\"x\":", std::string(size_t(levels), '['),
                     std::string(size_t(levels), ']'), "}");
    EXPECT_EQ(Eval("$body.i = 5", Body(body)),
              levels < 64 ? "true" : "undefined")
        << levels;
  }
  const std::string b =
      "{\"k\":1,\"o\":{\"k\":7,\"a\":[1,{\"b\":2}]},\"arr\":[10,[20,30]],"
      "\"x\":{\"y\":[1,2,3]},\"k\":3,\"t\\u0065mp\":9}";
  EXPECT_EQ(Eval("$body.k = 3", Body(b)), "true");  // last duplicate wins
  EXPECT_EQ(Eval("$body.o.k = 7", Body(b)), "true");
  EXPECT_EQ(Eval("$body.o.a[1].b = 2", Body(b)), "true");
  EXPECT_EQ(Eval("$body.arr[1][0] = 20", Body(b)), "true");
  EXPECT_EQ(Eval("$body.arr[5] = null", Body(b)), "true");
  EXPECT_EQ(Eval("$body.temp = 9", Body(b)), "true");  // escaped key
  // Not found (the null of a missing path), also under left-out members.
  EXPECT_EQ(Eval("$body.y = null", Body(b)), "true");
  EXPECT_EQ(Eval("$body.o.missing = null", Body(b)), "true");
  EXPECT_EQ(Eval("$body.missing.k = null", Body(b)), "true");
  EXPECT_EQ(Eval("$body.x.y[3] = null", Body(b)), "true");
  // Several paths in one condition share one parse.
  EXPECT_EQ(Eval("$body.k = 3 AND $body.x.y[2] = 3 AND $body.o.k = 7", Body(b)),
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

}  // namespace
}  // namespace edgeroute::query
