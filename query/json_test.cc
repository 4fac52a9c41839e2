// The tuned JsonTape::Parse against the parser it replaced (json_reference.h):
// same result and the same tape for every grammar edge, and JsonNumberValue
// against std::strtod bit for bit.

#include "query/json.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"
#include "query/json_reference.h"

namespace edgeroute::query::internal {
namespace {

std::string Show(absl::string_view text) {
  std::string out;
  for (char c : text.substr(0, 300)) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7F) {
      absl::StrAppend(&out, "\\x", absl::Hex(u, absl::kZeroPad2));
    } else {
      out.push_back(c);
    }
  }
  if (text.size() > 300) absl::StrAppend(&out, "... (", text.size(), " bytes)");
  return out;
}

// Compares `tape`'s entries with `want`.
::testing::AssertionResult SameTape(const JsonTape& tape,
                                    const std::vector<JsonTape::Entry>& want,
                                    absl::string_view text,
                                    absl::string_view what) {
  if (tape.entry(0).next != want.size()) {
    return ::testing::AssertionFailure()
           << what << ": tape has " << tape.entry(0).next
           << " entries, reference " << want.size() << " for '" << Show(text)
           << "'";
  }
  for (size_t i = 0; i < want.size(); ++i) {
    const JsonTape::Entry& a = tape.entry(uint32_t(i));
    const JsonTape::Entry& b = want[i];
    if (a.type != b.type || a.flags != b.flags || a.begin != b.begin ||
        a.end != b.end || a.next != b.next) {
      return ::testing::AssertionFailure()
             << what << ": entry " << i << " differs: {" << int(a.type) << ","
             << int(a.flags) << "," << a.begin << "," << a.end << "," << a.next
             << "} vs reference {" << int(b.type) << "," << int(b.flags) << ","
             << b.begin << "," << b.end << "," << b.next << "} for '"
             << Show(text) << "'";
    }
  }
  return ::testing::AssertionSuccess();
}

// The member sets every text is also parsed with: none (only escaped keys
// stay), a few of the names the tests use, and more than the linear
// search takes (the hash set).
const std::vector<JsonMemberSet>& KeepSets() {
  static const std::vector<JsonMemberSet>* sets = [] {
    auto* v = new std::vector<JsonMemberSet>(3);
    (*v)[1].Add("a");
    (*v)[1].Add("temperature");
    (*v)[1].Add("k\xC3\xA9y");
    for (const std::string& name :
         {std::string("b"), std::string("c"), std::string("d"),
          std::string("e"), std::string("f"), std::string("n"),
          std::string("z"), std::string("s"), std::string("x"), std::string(),
          std::string("note"), std::string("key"), std::string(70, 'k')}) {
      (*v)[2].Add(name);
    }
    return v;
  }();
  return *sets;
}

// Compares `tape`'s parse of `text` with the reference's: the result, and
// on success every entry; then the same for each member set of KeepSets()
// against the reference's tape cut down to its members.
::testing::AssertionResult SameParse(JsonTape& tape, absl::string_view text) {
  std::vector<JsonTape::Entry> want;
  const bool want_ok = reference::Parse(text, &want);
  const bool ok = tape.Parse(text);
  if (ok != want_ok) {
    return ::testing::AssertionFailure()
           << "Parse gives " << ok << ", reference " << want_ok << " for '"
           << Show(text) << "'";
  }
  if (ok) {
    if (tape.text().data() != text.data() ||
        tape.text().size() != text.size()) {
      return ::testing::AssertionFailure() << "text() is not the parsed text";
    }
    ::testing::AssertionResult same = SameTape(tape, want, text, "full");
    if (!same) return same;
  }
  for (size_t s = 0; s < KeepSets().size(); ++s) {
    const JsonMemberSet& keep = KeepSets()[s];
    const std::string what = absl::StrCat("member set ", s);
    if (tape.Parse(text, keep) != want_ok) {
      return ::testing::AssertionFailure()
             << what << ": Parse gives " << !want_ok << ", reference "
             << want_ok << " for '" << Show(text) << "'";
    }
    if (!want_ok) continue;
    ::testing::AssertionResult same =
        SameTape(tape, reference::KeepMembers(want, text, keep), text, what);
    if (!same) return same;
  }
  return ::testing::AssertionSuccess();
}

// A fresh tape each time: its storage is sized for this text alone, so
// AddressSanitizer sees any write past it.
::testing::AssertionResult Same(absl::string_view text) {
  JsonTape tape;
  return SameParse(tape, text);
}

// Checks agreement and the expected result.
void Expect(absl::string_view text, bool ok) {
  EXPECT_TRUE(Same(text));
  JsonTape tape;
  EXPECT_EQ(tape.Parse(text), ok) << "'" << Show(text) << "'";
}

TEST(JsonTapeTest, Documents) {
  Expect("{}", true);
  Expect(" \t\r\n{ \t\r\n} \t\r\n", true);
  Expect("{\"a\":1}", true);
  Expect("{\"a\":[]}", true);
  Expect("{\"a\":[ ]}", true);
  Expect("{\"a\":{}}", true);
  Expect("{\"a\":[1,2.5,-3e4,\"s\",true,false,null,{},[]]}", true);
  Expect("{\"a\":1,\"a\":2}", true);
  Expect("{\"\":\"\"}", true);
  Expect("{\"a\" : 1 , \"b\" : [ 1 , { \"c\" : null } ] }", true);
  Expect("", false);
  Expect(" ", false);
  Expect("{", false);
  Expect("}", false);
  Expect("[]", false);
  Expect("[{}]", false);
  Expect("\"a\"", false);
  Expect("1", false);
  Expect("true", false);
  Expect("null", false);
  Expect("{}{}", false);
  Expect("{} x", false);
  Expect("{}\v", false);
  Expect("{}\f", false);
  Expect(absl::string_view("{}\0", 3), false);
  Expect(absl::string_view("{\0}", 3), false);
  Expect("\xEF\xBB\xBF{}", false);
  Expect("{,}", false);
  Expect("{\"a\"}", false);
  Expect("{\"a\":}", false);
  Expect("{\"a\":1,}", false);
  Expect("{\"a\":1 \"b\":2}", false);
  Expect("{\"a\"::1}", false);
  Expect("{\"a\":1,,\"b\":2}", false);
  Expect("{a:1}", false);
  Expect("{'a':1}", false);
  Expect("{\"a\":'x'}", false);
  Expect("{\"a\":[1,]}", false);
  Expect("{\"a\":[,1]}", false);
  Expect("{\"a\":[1 2]}", false);
  Expect("{\"a\":[1}", false);
  Expect("{\"a\":{]}", false);
  Expect("{\"a\":[}", false);
  Expect("{\"a\":1]", false);
  Expect("{\"a\":1}}", false);
  Expect("{\"a\":1}]", false);
  Expect("{/*c*/}", false);
  Expect("{\"a\":1}//", false);
  Expect("{\"a\":NaN}", false);
  Expect("{\"a\":Infinity}", false);
  Expect("{\"a\":undefined}", false);
  Expect("{\"a\":True}", false);
}

TEST(JsonTapeTest, Literals) {
  for (const char* word : {"true", "false", "null"}) {
    std::string w = word;
    Expect(absl::StrCat("{\"a\":", w, "}"), true);
    Expect(absl::StrCat("{\"a\":[", w, "]}"), true);
    Expect(absl::StrCat("{\"a\":", w, "x}"), false);
    Expect(absl::StrCat("{\"a\":", w, "e}"), false);
    for (size_t i = 0; i < w.size(); ++i) {
      Expect(absl::StrCat("{\"a\":", w.substr(0, i), "}"), false);
      Expect(absl::StrCat("{\"a\":", w.substr(0, i)), false);
      Expect(absl::StrCat("{\"a\":[", w.substr(0, i)), false);
      std::string bad = w;
      bad[i] = char(bad[i] ^ 0x20);
      Expect(absl::StrCat("{\"a\":", bad, "}"), false);
    }
    Expect(absl::StrCat("{\"a\":", w), false);
  }
}

TEST(JsonTapeTest, Numbers) {
  for (const char* n : {"0",
                        "-0",
                        "1",
                        "-1",
                        "10",
                        "123456789",
                        "0.0",
                        "0.5",
                        "-0.5",
                        "1.25",
                        "1e5",
                        "1E5",
                        "1e+5",
                        "1e-5",
                        "1E-05",
                        "0e0",
                        "-0e-0",
                        "1.5e300",
                        "1e400",
                        "-1e400",
                        "1e-400",
                        "12345678901234567890123",
                        "1700000000123",
                        "47.6062",
                        "-122.3321",
                        "9007199254740993",
                        "0.000000000000000000000000001",
                        "1.7976931348623157e308",
                        "4.9e-324",
                        "2.2250738585072011e-308",
                        "123456789012345.5",
                        "1234567890123456",
                        "12345678901234567",
                        "1.234567890123456",
                        "1.2345678901234567",
                        "1e1234567890123456789"}) {
    Expect(absl::StrCat("{\"a\":", n, "}"), true);
    Expect(absl::StrCat("{\"a\":[", n, "]}"), true);
    Expect(absl::StrCat("{\"a\":[", n, ",", n, "]}"), true);
    Expect(absl::StrCat("{\"a\": ", n, " }"), true);
  }
  for (const char* n : {"-",
                        "--1",
                        "+1",
                        "01",
                        "-01",
                        "00",
                        "1.",
                        "-1.",
                        ".5",
                        "-.5",
                        "1e",
                        "1e+",
                        "1e-",
                        "1E",
                        "1.e5",
                        "1.5e",
                        "1.5e+",
                        "0x10",
                        "1ee5",
                        "1e5.5",
                        "1.5.5",
                        "1e5e5",
                        "- 1",
                        "1 .5",
                        "0.",
                        "0.e1",
                        "1e+-5",
                        "١",
                        "12345678901234567.",
                        "12345678901234567e",
                        "1.2345678901234567e",
                        "1.2345678901234567e+",
                        "0.0000000000000001.5"}) {
    Expect(absl::StrCat("{\"a\":", n, "}"), false);
    Expect(absl::StrCat("{\"a\":[", n, "]}"), false);
    Expect(absl::StrCat("{\"a\":", n), false);
  }
  // Runs of digits around the 16-byte window, in each part of the number.
  for (int len = 1; len <= 40; ++len) {
    std::string digits(size_t(len), '7');
    for (const std::string& n :
         {digits, "-" + digits, "1." + digits, digits + ".5", "1e" + digits,
          digits + "e-" + digits, "-" + digits + "." + digits + "E+1",
          "0." + digits, digits + "." + digits}) {
      Expect(absl::StrCat("{\"a\":", n, "}"), true);
      Expect(absl::StrCat("{\"a\":[", n, ",", n, "]}"), true);
      Expect(absl::StrCat("{\"a\":", n, "x}"), false);
      Expect(absl::StrCat("{\"a\":", n, "."), false);
      Expect(absl::StrCat("{\"a\":", n, ".}"), false);
      Expect(absl::StrCat("{\"a\":", n, "e}"), false);
      Expect(absl::StrCat("{\"a\":", n, "e-"), false);
      Expect(absl::StrCat("{\"a\":", n), false);
    }
  }
}

TEST(JsonTapeTest, Strings) {
  Expect("{\"a\":\"\"}", true);
  Expect("{\"a\":\"x\\\"y\"}", true);
  Expect("{\"a\\\"b\":1}", true);
  Expect("{\"\\\\\":\"\\\\\"}", true);
  Expect("{\"a\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}", true);
  Expect("{\"a\":\"\\u0000\\uFFFF\\uabcd\\uD83D\\uDE00\\ud800\"}", true);
  Expect("{\"a\":\"\x7F\"}", true);
  Expect("{\"a\":\"\xC3\xA9\"}", true);
  Expect("{\"\xC3\xA9\":\"\xFF\xFE\"}", true);
  Expect("{\"a\":\"\xE2\x82\xAC\\n\"}", true);
  Expect("{\"a\":\"x}", false);
  Expect("{\"a\":\"x\\\"}", false);
  Expect("{\"a\":\"\\\"", false);
  Expect("{\"a\":\"\\", false);
  Expect("{\"a\":\"\\u", false);
  Expect("{\"a\":\"\\u123", false);
  Expect("{\"a\":\"\\u123\"}", false);
  Expect("{\"a\":\"\\U1234\"}", false);
  Expect("{\"a\":\"\\x41\"}", false);
  Expect("{\"a\":\"\\'\"}", false);
  Expect("{\"a\":\"\\a\"}", false);
  Expect("{\"a\":\"\\0\"}", false);
  Expect("{\"a\":\"\\ \"}", false);
  Expect("{\"a\":\"\\\xC3\xA9\"}", false);
  Expect("{\"a\":\"\t\"}", false);
  Expect("{\"a\":\"\n\"}", false);
  Expect("{\"a\":\"\xC3\xA9\t\"}", false);
  Expect(absl::string_view("{\"a\":\"\0\"}", 9), false);
  Expect(absl::string_view("{\"a\":\"\xC3\0\"}", 10), false);
  // Every escape letter, and \u with a bad digit at each place.
  for (int e = 0; e < 256; ++e) {
    std::string esc = "\\";
    esc.push_back(char(e));
    if (e == 'u') esc += "0041";
    Expect(absl::StrCat("{\"a\":\"", esc, "\"}"),
           std::strchr("\"\\/bfnrtu", e) != nullptr && e != 0);
    Expect(absl::StrCat("{\"", esc, "\":0}"),
           std::strchr("\"\\/bfnrtu", e) != nullptr && e != 0);
  }
  for (int place = 0; place < 4; ++place) {
    for (const char bad : {'g', 'G', '/', ':', '@', '`', '"', '\0', 'x'}) {
      std::string hex = "aB9f";
      hex[size_t(place)] = bad;
      Expect(absl::StrCat("{\"a\":\"\\u", hex, "\"}"), false);
      Expect(absl::StrCat("{\"a\":\"\\u", hex, "\"}"), false);
    }
    Expect(absl::StrCat("{\"a\":\"\\u", std::string("0123").substr(0, place)),
           false);
  }
  // Every byte as string contents and as a key.
  for (int c = 0; c < 256; ++c) {
    std::string s(1, char(c));
    bool ok = c >= 0x20 && c != '"' && c != '\\';
    Expect(absl::StrCat("{\"a\":\"", s, "\"}"), ok);
    Expect(absl::StrCat("{\"", s, "\":1}"), ok);
    Expect(absl::StrCat("{\"a\":\"\xC3\xA9", s, "\"}"), ok);
    Expect(absl::StrCat("{\"a\":\"", s, "xxxxxxxxxxxxxxxxxxxxxxxx\"}"), ok);
    Expect(absl::StrCat("{\"a\":\"\xC3\xA9xxxxxxxxxxxxxxxxxxx", s, "\"}"), ok);
  }
}

TEST(JsonTapeTest, StringLengthsAroundBlockBoundaries) {
  for (size_t len = 0; len <= 140; ++len) {
    const std::string x(len, 'x');
    for (size_t lead = 0; lead < 3; ++lead) {
      const std::string pad(lead, ' ');
      Expect(absl::StrCat(pad, "{\"a\":\"", x, "\"}"), true);
      Expect(absl::StrCat(pad, "{\"", x, "\":\"", x, "\"}"), true);
      Expect(absl::StrCat(pad, "{\"a\":\"", x), false);
      Expect(absl::StrCat(pad, "{\"a\":\"", x, "\\"), false);
      Expect(absl::StrCat(pad, "{\"a\":\"", x, "\\u00"), false);
      Expect(absl::StrCat(pad, "{\"", x), false);
      Expect(absl::StrCat(pad, "{\"a\":\"", x, "\t\"}"), false);
      Expect(absl::StrCat(pad, "{\"a\":\"", x, "\\n", x, "\"}"), true);
      Expect(absl::StrCat(pad, "{\"a\":\"", x, "\\u20AC", x, "\"}"), true);
      Expect(absl::StrCat(pad, "{\"a\":\"", x, "\\\"", x, "\"}"), true);
      Expect(absl::StrCat(pad, "{\"a\":\"", x, "\xC3\xA9", x, "\"}"), true);
      Expect(absl::StrCat(pad, "{\"a\":\"", x, "\xC3\xA9", x, "\n\"}"), false);
      Expect(absl::StrCat(pad, "{\"a\":\"", x, "\xC3\xA9", x), false);
      Expect(absl::StrCat(pad, "{\"a\":\"\xC3\xA9", x, "\\t", x, "\"}"), true);
      Expect(absl::StrCat(pad, "{\"a\":\"\xC3\xA9", x, "\\q", x, "\"}"), false);
    }
  }
}

std::string Nested(int levels, const char* open, const char* close,
                   const char* inner) {
  std::string s = "{\"a\":";
  for (int i = 1; i < levels; ++i) s += open;
  s += inner;
  for (int i = 1; i < levels; ++i) s += close;
  return s + "}";
}

TEST(JsonTapeTest, Depth) {
  for (int levels = 1; levels <= 70; ++levels) {
    const bool ok = levels <= JsonTape::kMaxDepth;
    Expect(Nested(levels, "[", "]", "1"), ok);
    Expect(Nested(levels, "[", "]", "[]"), levels + 1 <= JsonTape::kMaxDepth);
    Expect(Nested(levels, "{\"b\":", "}", "1"), ok);
    Expect(Nested(levels, "[{\"b\":", "}]", "1"), levels <= 32);
    Expect(Nested(levels, "[1,", "]", "1"), ok);
  }
  // An unclosed run of brackets: the tape must hold an opening bracket per
  // byte until the depth limit stops it.
  for (int levels = 1; levels <= 70; ++levels) {
    Expect(absl::StrCat("{\"a\":", std::string(size_t(levels), '[')), false);
    Expect(absl::StrCat("{\"a\":", std::string(size_t(levels), '['), "1"),
           false);
    Expect(absl::StrCat("{\"\":", std::string(size_t(levels), '['), "1,1"),
           false);
  }
}

TEST(JsonTapeTest, Whitespace) {
  const std::string doc =
      "{\"a\":[1,{\"b\":true},\"s\",null,false,-2.5e3,[],{}],\"c\":{}}";
  // Each kind and a long run of whitespace between any two bytes.
  for (size_t i = 0; i <= doc.size(); ++i) {
    for (const char* ws : {" ", "\t", "\r", "\n", "\n        ",
                           " \t\r\n \t\r\n \t\r\n \t\r\n \t\r\n \t\r\n", "\f",
                           "\v", "\xC2\xA0"}) {
      std::string s = doc.substr(0, i) + ws + doc.substr(i);
      EXPECT_TRUE(Same(s));
    }
  }
  for (size_t len = 0; len <= 70; ++len) {
    const std::string ws(len, ' ');
    Expect(absl::StrCat(ws, "{", ws, "\"a\"", ws, ":", ws, "[", ws, "1", ws,
                        ",", ws, "2", ws, "]", ws, "}", ws),
           true);
    Expect(absl::StrCat(ws, "{", ws, "\"a\"", ws, ":", ws, "1", ws), false);
    Expect(ws, false);
  }
}

const char* const kSamples[] = {
    "{\"deviceId\":\"sensor-0042\",\"deviceType\":\"type3\","
    "\"temperature\":72.5,\"humidity\":41.25,\"pressure\":1013.2,"
    "\"battery\":87,\"status\":\"ok\",\"firmware\":\"1.4.2\","
    "\"location\":{\"lat\":47.6062,\"lon\":-122.3321},"
    "\"ts\":1700000000123,\"seq\":123456,\"tags\":[\"a\",\"b\"],"
    "\"note\":"
    "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
    "{\n  \"a\": [1, 2, {\"b\": null}],\n  \"c\": \"\\u00e9\\n\",\n"
    "  \"d\": -0.5e-3,\n  \"e\": true,\n  \"f\": false\n}\n",
    "{\"k\xC3\xA9y\":\"v\xE2\x82\xACl\\\"ue\",\"n\":[[[[]]],{}],\"z\":0}",
};

// Every prefix of the samples, and each prefix followed by junk.
TEST(JsonTapeTest, Prefixes) {
  for (const char* sample : kSamples) {
    const std::string s = sample;
    for (size_t len = 0; len <= s.size() && len <= 200; ++len) {
      const std::string prefix = s.substr(0, len);
      EXPECT_TRUE(Same(prefix));
      EXPECT_TRUE(Same(prefix + std::string(1, '\0')));
      EXPECT_TRUE(Same(prefix + "}"));
      EXPECT_TRUE(Same(prefix + "\"}"));
      EXPECT_TRUE(Same(prefix + "]}"));
    }
    Expect(s, true);
  }
}

// Random byte edits of the samples; a few thousand are enough to reach
// every state with each kind of byte.
TEST(JsonTapeTest, Mutations) {
  std::mt19937 rng(20240611);
  const char kBytes[] =
      "{}[]:,\"\\ \t\n0123456789-+.eEtrufalsn\x80\xC3\xFF\x01";
  for (int round = 0; round < 20000; ++round) {
    std::string s = kSamples[rng() % 3];
    const int edits = 1 + int(rng() % 3);
    for (int k = 0; k < edits; ++k) {
      const size_t at = rng() % (s.size() + 1);
      const char c =
          rng() % 4 == 0 ? char(rng()) : kBytes[rng() % (sizeof(kBytes) - 1)];
      switch (rng() % 3) {
        case 0:
          if (at < s.size()) s[at] = c;
          break;
        case 1:
          s.insert(s.begin() + long(at), c);
          break;
        default:
          if (at < s.size()) s.erase(at, 1);
          break;
      }
    }
    ASSERT_TRUE(Same(s));
  }
}

// One tape reused: a short text after a long one must not see the long
// one's bytes past its end.
TEST(JsonTapeTest, ReusedTape) {
  JsonTape tape;
  const std::string long_doc =
      absl::StrCat("{\"a\":\"", std::string(300, 'x'), "\"}");
  for (size_t len = 0; len < long_doc.size(); ++len) {
    ASSERT_TRUE(SameParse(tape, long_doc));
    ASSERT_TRUE(SameParse(tape, long_doc.substr(0, len)));
  }
  for (const char* sample : kSamples) {
    EXPECT_TRUE(SameParse(tape, sample));
    EXPECT_TRUE(tape.Parse(sample));
  }
  // The tape views the caller's text, not a copy.
  const std::string doc = "{\"key\":\"value\",\"n\":12}";
  ASSERT_TRUE(tape.Parse(doc));
  EXPECT_EQ(tape.raw(tape.entry(1)), "key");
  EXPECT_EQ(tape.raw(tape.entry(1)).data(), doc.data() + 2);
  EXPECT_EQ(tape.raw(tape.entry(2)), "value");
  EXPECT_EQ(tape.raw(tape.entry(4)), "12");
}

uint64_t Bits(double d) {
  uint64_t b;
  std::memcpy(&b, &d, sizeof b);
  return b;
}

::testing::AssertionResult SameNumber(const std::string& token) {
  const double want = std::strtod(token.c_str(), nullptr);
  const double got = JsonNumberValue(token);
  if (Bits(got) != Bits(want)) {
    return ::testing::AssertionFailure()
           << token << ": " << absl::StrCat(got) << " (" << Bits(got)
           << "), strtod " << absl::StrCat(want) << " (" << Bits(want) << ")";
  }
  // The tape's NumberValue (its own fast path) for a valid token.
  JsonTape tape;
  const std::string doc = absl::StrCat("{\"n\":", token, "}");
  if (tape.Parse(doc) && tape.entry(2).type == JsonTape::kNumber) {
    double from_tape = 0;
    tape.NumberValue(tape.entry(2), &from_tape);
    if (Bits(from_tape) != Bits(want)) {
      return ::testing::AssertionFailure()
             << token << ": NumberValue " << absl::StrCat(from_tape) << " ("
             << Bits(from_tape) << "), strtod " << absl::StrCat(want) << " ("
             << Bits(want) << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

// Parse(text, keep): what the tape holds, and that the members left out
// are still checked (SameParse compares every other test's texts too).
TEST(JsonTapeTest, KeptMembers) {
  JsonMemberSet keep;
  keep.Add("temperature");
  JsonTape tape;
  const std::string doc =
      "{\"a\":1,\"temperature\":72.5,\"b\":[1,{\"c\":2}],\"s\":\"x\"}";
  ASSERT_TRUE(tape.Parse(doc, keep));
  ASSERT_EQ(tape.entry(0).next, 3u);
  EXPECT_EQ(tape.entry(0).end, doc.size());
  EXPECT_EQ(tape.raw(tape.entry(1)), "temperature");
  EXPECT_EQ(tape.entry(2).type, JsonTape::kNumber);
  EXPECT_EQ(tape.raw(tape.entry(2)), "72.5");
  EXPECT_TRUE(SameParse(tape, doc));

  // Anything invalid after (or before) the kept member fails the parse.
  for (const char* bad :
       {",\"x\":[1,2,]}", ",\"x\":\"\\u12G4\"}", ",\"x\":01}", ",\"x\":tru}",
        ",\"x\":{\"y\" 1}}", "} x", ",}", ",\"x\":\"a\x01\"}", ",\"x\":[}",
        ",\"x\":{]}", ",\"x\":-}", ",\"x\":1.}", ",\"x\":[1 2]}", "",
        ",\"x\":{\"y\":1,}}", ",\"x\":nul}", ",\"x\":\"abc}"}) {
    const std::string text = absl::StrCat("{\"temperature\":1", bad);
    EXPECT_FALSE(tape.Parse(text, keep)) << Show(text);
    EXPECT_TRUE(SameParse(tape, text));
    const std::string before =
        absl::StrCat("{\"x\":", absl::string_view(bad).substr(0, 0), "[1,,2]",
                     ",\"temperature\":1}");
    EXPECT_FALSE(tape.Parse(before, keep)) << Show(before);
  }

  // Duplicates stay, in order, with a skipped member between them.
  JsonMemberSet t;
  t.Add("t");
  ASSERT_TRUE(tape.Parse("{\"t\":1,\"x\":{\"t\":5},\"t\":3}", t));
  ASSERT_EQ(tape.entry(0).next, 5u);
  EXPECT_EQ(tape.raw(tape.entry(2)), "1");
  EXPECT_EQ(tape.entry(2).next, 3u);
  EXPECT_EQ(tape.raw(tape.entry(4)), "3");

  // A key with escapes stays whatever it says.
  ASSERT_TRUE(tape.Parse("{\"t\\u0065mp\":7,\"x\":1}", t));
  ASSERT_EQ(tape.entry(0).next, 3u);
  EXPECT_EQ(tape.entry(1).flags & JsonTape::kEscaped, JsonTape::kEscaped);

  // None kept: the object alone.
  ASSERT_TRUE(tape.Parse("{\"a\":{\"b\":[1,2]},\"c\":\"d\"}", JsonMemberSet()));
  EXPECT_EQ(tape.entry(0).next, 1u);

  // Every member.
  JsonMemberSet all;
  all.AddAll();
  ASSERT_TRUE(tape.Parse(doc, all));
  EXPECT_EQ(tape.entry(0).next, 13u);
}

// The depth limit holds inside a member that is left out.
TEST(JsonTapeTest, KeptMembersDepth) {
  JsonMemberSet keep;
  keep.Add("t");
  JsonTape tape;
  for (int levels = 1; levels <= 70; ++levels) {
    for (const char* open : {"[", "{\"y\":"}) {
      const char* close = open[0] == '[' ? "]" : "}";
      std::string nested;
      for (int i = 1; i < levels; ++i) nested += open;
      nested += "1";
      for (int i = 1; i < levels; ++i) nested += close;
      const std::string text =
          absl::StrCat("{\"t\":0,\"x\":", nested, ",\"t\":2}");
      EXPECT_EQ(tape.Parse(text, keep), levels <= JsonTape::kMaxDepth)
          << levels << " " << open;
      EXPECT_TRUE(SameParse(tape, text));
    }
  }
}

// A left-out member is checked token by token wherever the error is: deep
// inside it, after a long valid run (past 64-byte blocks), or at its end;
// each bad token gives the reference's answer, and its valid neighbour
// parses.
TEST(JsonTapeTest, LeftOutMemberErrorsDeepInside) {
  JsonMemberSet keep;
  keep.Add("temperature");
  JsonTape tape;
  std::string readings;
  for (int i = 0; i < 6; ++i) {
    absl::StrAppend(&readings, "{\"t\":", 1700000000000 + i, ",\"v\":-7", i,
                    ".5e-3,\"ok\":true,\"n\":null},");
  }
  const struct {
    const char* bad;
    const char* good;
  } kCases[] = {
      {"01", "0"},
      {"-01", "-0"},
      {"1.", "1.0"},
      {"-", "-1"},
      {"1e", "1e5"},
      {"1e+", "1e+5"},
      {"1.2.3", "1.23"},
      {"1e2e3", "1e23"},
      {"1e2.3", "1.2e3"},
      {".5", "0.5"},
      {"+1", "1"},
      {"1-2", "-12"},
      {"tru", "true"},
      {"nul", "null"},
      {"fals", "false"},
      {"truex", "true"},
      {"nulll", "null"},
      {"True", "true"},
      {"[1,]", "[1]"},
      {"[,1]", "[1]"},
      {"{\"a\":1,}", "{\"a\":1}"},
      {"{\"a\" 1}", "{\"a\" :1}"},
      {"{\"a\"}", "{\"a\":{}}"},
      {"{\"a\":}", "{\"a\":[]}"},
      {"[1 2]", "[1, 2]"},
      {"{1:2}", "{\"1\":2}"},
      {"[\"a\":1]", "[\"a\",1]"},
      {"{\"a\":1:2}", "{\"a\":12}"},
      {"{]", "{}"},
      {"[}", "[]"},
      {"[[]", "[[]]"},
      {"\"a\x01b\"", "\"a b\""},
      {"\"a\x1f\"", "\"a\\u001f\""},
      {"\"\\x\"", "\"\\n\""},
      {"\"\\u12G4\"", "\"\\u12F4\""},
      {"\xc3\xa9", "\"\xc3\xa9\""},
      {"1 x", "1 "},
  };
  // The fragment deep inside a left-out member, after whole blocks of valid
  // readings, between them, and last in a left-out member's object.
  auto texts = [&readings](const char* fragment) {
    return std::vector<std::string>{
        absl::StrCat("{\"temperature\":1,\"x\":[", fragment, "]}"),
        absl::StrCat("{\"x\":{\"a\":[[{\"b\":", fragment,
                     "}]]},\"temperature\":1}"),
        absl::StrCat("{\"x\":[", readings, "{\"b\":[", fragment,
                     "]}],\"temperature\":1}"),
        absl::StrCat("{\"x\":[", readings, fragment, ",", readings,
                     "{}],\"temperature\":1}"),
        absl::StrCat("{\"temperature\":1,\"x\":{\"r\":[", readings,
                     "{}],\"y\":", fragment, "}}"),
    };
  };
  for (const auto& c : kCases) {
    for (const std::string& text : texts(c.bad)) {
      EXPECT_FALSE(tape.Parse(text, keep)) << Show(text);
      EXPECT_TRUE(SameParse(tape, text));
    }
    for (const std::string& text : texts(c.good)) {
      EXPECT_TRUE(tape.Parse(text, keep)) << Show(text);
      EXPECT_TRUE(SameParse(tape, text));
    }
  }
  // Strings are not checked for UTF-8 (a lookup repairs what it reads).
  for (const std::string& text : texts("\"\xff\xfe\"")) {
    EXPECT_TRUE(tape.Parse(text, keep)) << Show(text);
    EXPECT_TRUE(SameParse(tape, text));
  }
}

// More names than the linear search takes.
TEST(JsonTapeTest, ManyKeptMembers) {
  JsonMemberSet keep;
  std::string doc = "{";
  for (int i = 0; i < 40; ++i) {
    if (i % 2 == 0) keep.Add(absl::StrCat("m", i));
    absl::StrAppend(&doc, i == 0 ? "" : ",", "\"m", i, "\":", i);
  }
  doc += "}";
  EXPECT_TRUE(keep.Contains("m38"));
  EXPECT_FALSE(keep.Contains("m39"));
  EXPECT_FALSE(keep.Contains("m3"));
  JsonTape tape;
  ASSERT_TRUE(tape.Parse(doc, keep));
  ASSERT_EQ(tape.entry(0).next, 41u);
  for (uint32_t k = 1, i = 0; k < 41; k += 2, i += 2) {
    EXPECT_EQ(tape.raw(tape.entry(k)), absl::StrCat("m", i));
  }
}

TEST(JsonNumberValueTest, Edges) {
  for (const char* n : {"0",
                        "-0",
                        "0.0",
                        "-0.0",
                        "0e0",
                        "-0e-5",
                        "0e400",
                        "-0e-400",
                        "1",
                        "-1",
                        "10",
                        "0.1",
                        "0.2",
                        "0.3",
                        "1.5",
                        "72.5",
                        "41.25",
                        "1013.2",
                        "47.6062",
                        "-122.3321",
                        "1700000000123",
                        "123456",
                        "9007199254740991",
                        "9007199254740992",
                        "9007199254740993",
                        "9007199254740994",
                        "9007199254740995",
                        "18014398509481985",
                        "1e22",
                        "1e23",
                        "9007199254740993e22",
                        "9007199254740992e22",
                        "1e-22",
                        "1e-23",
                        "123456789012345678901234567890",
                        "0.000000000000000000000000000000001234",
                        "1.7976931348623157e308",
                        "1.7976931348623158e308",
                        "1.7976931348623159e308",
                        "1e308",
                        "1e309",
                        "-1e309",
                        "2e308",
                        "1e400",
                        "-1e400",
                        "1e99999999999999999999",
                        "2.2250738585072014e-308",
                        "2.2250738585072011e-308",
                        "4.9406564584124654e-324",
                        "4.9e-324",
                        "5e-324",
                        "3e-324",
                        "2.5e-324",
                        "2.4703282292062327e-324",
                        "2.4703282292062328e-324",
                        "1e-324",
                        "1e-400",
                        "-1e-400",
                        "1e-99999999999999999999",
                        "18446744073709551615",
                        "18446744073709551616",
                        "99999999999999999999",
                        "0.99999999999999999999",
                        "3.0540412e5",
                        "89255.0e-22",
                        "8.98846567431158e307",
                        "2.2250738585072012e-308",
                        "7.038531e-26",
                        "1448997445238699",
                        "4503599627370496.5",
                        "4503599627370497.5"}) {
    EXPECT_TRUE(SameNumber(n));
  }
}

std::string Digits(std::mt19937& rng, int n, bool leading_nonzero) {
  std::string s;
  for (int i = 0; i < n; ++i) {
    char d = char('0' + rng() % 10);
    if (i == 0 && leading_nonzero && d == '0') d = '1';
    s.push_back(d);
  }
  return s;
}

TEST(JsonNumberValueTest, Random) {
  std::mt19937 rng(7);
  for (int i = 0; i < 400000; ++i) {
    std::string s;
    if (rng() % 2) s += "-";
    const int int_digits = 1 + int(rng() % (rng() % 4 == 0 ? 30 : 17));
    if (rng() % 5 == 0) {
      s += "0";
    } else {
      s += Digits(rng, int_digits, true);
    }
    if (rng() % 2) {
      s += ".";
      s += Digits(rng, 1 + int(rng() % (rng() % 4 == 0 ? 30 : 17)), false);
    }
    if (rng() % 2) {
      s += rng() % 2 ? "e" : "E";
      switch (rng() % 3) {
        case 0:
          s += "-";
          break;
        case 1:
          s += "+";
          break;
        default:
          break;
      }
      const int range = std::vector<int>{10, 25, 40, 330, 400}[rng() % 5];
      s += std::to_string(rng() % unsigned(range));
    }
    ASSERT_TRUE(SameNumber(s));
  }
  // Exactly representable significands next to halfway points.
  for (int i = 0; i < 100000; ++i) {
    const uint64_t w = (uint64_t{1} << 53) - 4 + rng() % 8;
    const int e = int(rng() % 46) - 23;
    ASSERT_TRUE(SameNumber(absl::StrCat(w, "e", e)));
    ASSERT_TRUE(SameNumber(absl::StrCat(rng() % 1000000, "e", e)));
  }
}

TEST(JsonNumberValueTest, TapeEntries) {
  JsonTape tape;
  ASSERT_TRUE(
      tape.Parse("{\"a\":[-0,1.5e3,\"7\",true,null,12345678901234567890]}"));
  const double want[] = {-0.0, 1500, 0, 0, 0, 12345678901234567890.0};
  const bool number[] = {true, true, false, false, false, true};
  for (uint32_t i = 0; i < 6; ++i) {
    double d = 42;
    ASSERT_EQ(tape.NumberValue(tape.entry(3 + i), &d), number[i]) << i;
    if (number[i]) {
      EXPECT_EQ(Bits(d), Bits(want[i])) << i;
    } else {
      EXPECT_EQ(d, 42) << i;
    }
  }
}

}  // namespace
}  // namespace edgeroute::query::internal
