// The built-in functions: every overload edgeHub accepts, their run-time
// results (undefined on a type mismatch), and the functions it lacks.

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

// power wraps both arguments as QueryValues, and an undefined number wraps
// to Undefined: any undefined argument gives undefined, never
// Math.Pow(NaN, 0) = 1 or Math.Pow(1, NaN) = 1.
TEST_F(QueryTest, PowerOfAnUndefinedArgumentIsUndefined) {
  EXPECT_EQ(Eval("power(as_number($contentType), 0) = 1"), "undefined");
  EXPECT_EQ(Eval("is_defined(power(as_number($contentType), 0))"), "false");
  EXPECT_EQ(Eval("is_defined(power(as_number(k), 0))", Props()), "false");
  EXPECT_EQ(Eval("power(1, as_number(k)) = 1", Props()), "undefined");
  EXPECT_EQ(Eval("is_defined(power(0 / 0, 0))"), "false");  // folded
  EXPECT_EQ(Eval("is_defined(power(1, 0 / 0))"), "false");
  EXPECT_EQ(Eval("power($body.o, 0) = 1", Body("{\"o\":{}}")), "undefined");
  // Defined arguments still give Math.Pow, infinities included.
  EXPECT_EQ(Eval("power(as_number(n), 0) = 1", Props()), "true");
  EXPECT_EQ(Eval("power(0, -1) = 1 / 0"), "true");
  // The other math built-ins already give undefined for undefined input.
  for (const char* f : {"abs", "ceiling", "floor", "exp", "sign", "sqrt",
                        "square"}) {
    EXPECT_EQ(Eval(absl::StrCat("is_defined(", f, "(as_number(k)))"), Props()),
              "false")
        << f;
  }
}

// Arithmetic on body values wraps the other side the same way.
TEST_F(QueryTest, BodyArithmeticWithAnUndefinedNumberIsUndefined) {
  const Msg body = Body("{\"x\":2}");
  EXPECT_EQ(Eval("is_defined(as_number('a') + $body.x)", body), "false");
  EXPECT_EQ(Eval("is_defined($body.x * as_number('a'))", body), "false");
  EXPECT_EQ(Eval("(as_number('a') + $body.x) ?? 7 = 7", body), "true");
  EXPECT_EQ(Eval("$body.x + 1 = 3", body), "true");
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

TEST_F(QueryTest, UnknownAndDisabledBuiltins) {
  auto d = Diags("foo(1) = 1");
  ASSERT_FALSE(d.empty());
  EXPECT_EQ(d[0].message, "Invalid built-in function 'foo'");
  EXPECT_EQ(Eval("twin_change_includes(properties.reported.x)"),
            "compile-error");
  EXPECT_EQ(Eval("log(1) = 0"), "compile-error");
}

}  // namespace
}  // namespace edgeroute::query
