// The built-in functions (edgeHub's RC/query/builtins): which overloads
// compile (Compiler::Call, with edgeHub's error messages) and what each
// computes on a message (Evaluator::Call), side by side.
//
// Arguments are QueryValues in edgeHub whenever the overload is a "QV"
// executor: a run-time type mismatch then gives undefined, not an error.

#include <cmath>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/utf8.h"
#include "query/compiler.h"
#include "query/dotnet_text.h"
#include "query/evaluator.h"

namespace edgeroute::query::internal {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A number that is not the undefined number (NaN).
bool IsDefinedNumber(const Value& v) {
  return v.kind == ValueKind::kNumber && !std::isnan(v.number);
}

}  // namespace

// ---------------------------------------------------------------------------
// Compile time: overloads (Builtin.Get, Args.Match).

int Compiler::Call(const AstNode& a, std::vector<int> args) {
  absl::string_view name = Text(a.tok_begin, a.tok_end);
  std::string lname = absl::AsciiStrToLower(name);
  std::vector<StaticType> types;
  for (int k : args) types.push_back(T(k));
  Node n;
  n.op = Op::kCall;
  n.begin = a.begin;
  n.end = a.end;
  auto match = [&](std::initializer_list<StaticType> params) {
    if (types.size() != params.size()) return false;
    size_t i = 0;
    for (StaticType p : params) {
      StaticType t = types[i++];
      if (t != p && t != StaticType::kQueryValue) return false;
    }
    return true;
  };
  auto arg_error = [&](const char* expected) {
    std::vector<std::string> have;
    for (StaticType t : types) have.push_back(StaticTypeName(t));
    Error(a.tok_begin, a.tok_end,
          absl::StrCat("Invalid arguments to built-in function '", name,
                       "': ", lname, "(", absl::StrJoin(have, ", "),
                       "); expected ", expected));
    return Undefined(a);
  };
  struct Unary {
    const char* name;
    Builtin builtin;
  };
  static const Unary kMath[] = {
      {"abs", Builtin::kAbs},       {"ceiling", Builtin::kCeiling},
      {"floor", Builtin::kFloor},   {"exp", Builtin::kExp},
      {"sign", Builtin::kSign},     {"sqrt", Builtin::kSqrt},
      {"square", Builtin::kSquare},
  };
  for (const Unary& u : kMath) {
    if (lname == u.name) {
      if (!match({StaticType::kNumber})) {
        return arg_error(absl::StrCat(u.name, "(number)").c_str());
      }
      n.builtin = u.builtin;
      n.type = StaticType::kNumber;
      n.args = std::move(args);
      return Fold(Add(std::move(n)));
    }
  }
  if (lname == "power") {
    if (!match({StaticType::kNumber, StaticType::kNumber})) {
      return arg_error("power(number, number)");
    }
    n.builtin = Builtin::kPower;
    n.type = StaticType::kNumber;
  } else if (lname == "as_number") {
    if (!match({StaticType::kString}) && !match({StaticType::kNumber})) {
      return arg_error("as_number(string) or as_number(number)");
    }
    n.builtin = Builtin::kAsNumber;
    n.type = StaticType::kNumber;
  } else if (lname == "is_defined" || lname == "is_null" ||
             lname == "is_number" || lname == "is_string" ||
             lname == "is_bool") {
    if (types.size() != 1) {
      return arg_error(absl::StrCat(lname, "(any one value)").c_str());
    }
    n.builtin = lname == "is_defined"  ? Builtin::kIsDefined
                : lname == "is_null"   ? Builtin::kIsNull
                : lname == "is_number" ? Builtin::kIsNumber
                : lname == "is_string" ? Builtin::kIsString
                                       : Builtin::kIsBool;
    n.type = StaticType::kBool;
    n.left_type = types[0];
    if (lname == "is_null" && types[0] == StaticType::kQueryValue) {
      Warn(a.tok_begin, a.tok_end,
           "is_null on a body value is true for every present value and "
           "false for a missing one (an edgeHub bug)",
           absl::StrCat(
               "to test for JSON null write ",
               Text(ast_.nodes[a.kids[0]].begin, ast_.nodes[a.kids[0]].end),
               " = null AND is_defined(...)"));
    }
  } else if (lname == "concat") {
    bool ok = types.size() >= 2;
    for (StaticType t : types) {
      if (t != StaticType::kString && t != StaticType::kQueryValue) ok = false;
    }
    if (!ok) return arg_error("concat(string, string, ...)");
    n.op = Op::kConcat;
    n.type = StaticType::kString;
  } else if (lname == "length") {
    if (!match({StaticType::kString})) return arg_error("length(string)");
    n.builtin = Builtin::kLength;
    n.type = StaticType::kNumber;
  } else if (lname == "lower" || lname == "upper") {
    if (!match({StaticType::kString})) {
      return arg_error(absl::StrCat(lname, "(string)").c_str());
    }
    n.builtin = lname == "lower" ? Builtin::kLower : Builtin::kUpper;
    n.type = StaticType::kString;
  } else if (lname == "substring") {
    if (match({StaticType::kString, StaticType::kNumber})) {
      n.builtin = Builtin::kSubstring2;
    } else if (match({StaticType::kString, StaticType::kNumber,
                      StaticType::kNumber})) {
      n.builtin = Builtin::kSubstring3;
    } else {
      return arg_error(
          "substring(string, number) or substring(string, number, number)");
    }
    n.type = StaticType::kString;
  } else if (lname == "index_of" || lname == "starts_with" ||
             lname == "ends_with" || lname == "contains") {
    if (!match({StaticType::kString, StaticType::kString})) {
      return arg_error(absl::StrCat(lname, "(string, string)").c_str());
    }
    n.builtin = lname == "index_of"      ? Builtin::kIndexOf
                : lname == "starts_with" ? Builtin::kStartsWith
                : lname == "ends_with"   ? Builtin::kEndsWith
                                         : Builtin::kContains;
    n.type = lname == "index_of" ? StaticType::kNumber : StaticType::kBool;
  } else {
    std::string hint;
    if (lname == "twin_change_includes") {
      hint = "twin_change_includes cannot be used in edgeHub routes";
    }
    Error(a.tok_begin, a.tok_end,
          absl::StrCat("Invalid built-in function '", name, "'"),
          std::move(hint));
    return Undefined(a);
  }
  n.args = std::move(args);
  return Fold(Add(std::move(n)));
}

// ---------------------------------------------------------------------------
// Run time.

__attribute__((noinline)) Value Evaluator::Concat(
    const std::vector<int>& args) {
  // Each argument is evaluated once (re-evaluating would be exponential in
  // the nesting of ||); more than kMax arguments are evaluated twice.
  constexpr size_t kMax = 32;
  Value vals[kMax];
  size_t total = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    Value v = Eval(args[i]);
    if (i < kMax) vals[i] = v;
    if (v.kind == ValueKind::kString) {
      total += v.str().size();
    } else if (v.kind != ValueKind::kNullString) {
      return MakeUndefined();
    }
  }
  char* out = s_->Alloc(total + 1);
  size_t pos = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    Value v = i < kMax ? vals[i] : Eval(args[i]);
    if (v.kind == ValueKind::kString && !v.str().empty()) {
      std::memcpy(out + pos, v.str().data(), v.str().size());
      pos += v.str().size();
    }
  }
  return MakeString(absl::string_view(out, pos));
}

__attribute__((noinline)) Value Evaluator::CaseMap(const Value& v, bool upper) {
  if (v.kind != ValueKind::kString) return MakeUndefined();
  // Every sequence of `len` bytes is written as at most 3 * len bytes: a
  // one-byte sequence decodes to at most U+FFFD (3 bytes), and a mapping
  // that would need more than 3 * len is not applied (the character is
  // kept; it is at most as long as its own sequence, or 3 bytes for
  // U+FFFD). So 3 * size bytes always suffice, whatever Decode returns.
  const absl::string_view in = v.str();
  char* out = s_->Alloc(in.size() * 3 + 4);
  size_t pos = 0;
  for (size_t i = 0; i < in.size();) {
    unsigned char c = static_cast<unsigned char>(in[i]);
    if (c < 0x80) {
      out[pos++] = upper ? absl::ascii_toupper(c) : absl::ascii_tolower(c);
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp = DecodeChar(in, i, &len);
    uint32_t mapped = MapCaseInvariant(cp, upper);
    if (mapped > 0x10FFFF || EncodedUtf8Length(mapped) > 3 * len) mapped = cp;
    pos += EncodeUtf8(mapped, out + pos);
    i += len;
  }
  return MakeString(absl::string_view(out, pos));
}

__attribute__((noinline)) Value Evaluator::Call(const Node& n) {
  const Builtin fn = n.builtin;
  Value a = Eval(n.args[0]);
  switch (fn) {
    case Builtin::kAbs:
    case Builtin::kCeiling:
    case Builtin::kFloor:
    case Builtin::kExp:
    case Builtin::kSign:
    case Builtin::kSqrt:
    case Builtin::kSquare: {
      if (a.kind != ValueKind::kNumber) return MakeNumber(kNaN);
      double x = a.number;
      switch (fn) {
        case Builtin::kAbs:
          return MakeNumber(std::fabs(x));
        case Builtin::kCeiling:
          return MakeNumber(std::ceil(x));
        case Builtin::kFloor:
          return MakeNumber(std::floor(x));
        case Builtin::kExp:
          return MakeNumber(std::exp(x));
        case Builtin::kSign:
          return MakeNumber(
              std::isnan(x) ? kNaN : (x > 0 ? 1.0 : (x < 0 ? -1.0 : 0.0)));
        case Builtin::kSqrt:
          return MakeNumber(std::sqrt(x));
        default:
          return MakeNumber(x * x);
      }
    }
    case Builtin::kPower: {
      const Value b = Eval(n.args[1]);
      // Both arguments are wrapped as QueryValues, and an undefined number
      // (NaN) wraps to Undefined: any undefined argument gives undefined,
      // not Math.Pow(NaN, 0) = 1 or Math.Pow(1, NaN) = 1.
      if (!IsDefinedNumber(a) || !IsDefinedNumber(b)) return MakeNumber(kNaN);
      return MakeNumber(std::pow(a.number, b.number));
    }
    case Builtin::kAsNumber: {
      if (a.kind == ValueKind::kNumber) return a;
      double d;
      if (a.kind == ValueKind::kString && ParseDotNetDouble(a.str(), &d))
        return MakeNumber(d);
      return MakeNumber(kNaN);
    }
    case Builtin::kIsDefined:
      return MakeBool(IsDefinedValue(a, n.left_type));
    case Builtin::kIsNull:
      switch (n.left_type) {
        case StaticType::kString:
          return MakeBool(a.kind == ValueKind::kNullString);
        case StaticType::kNull:
          return MakeBool(true);
        case StaticType::kQueryValue:
          if (a.kind == ValueKind::kUndefined) return MakeUndefined();
          return MakeBool(a.kind != ValueKind::kMissing);
        default:
          return MakeBool(false);
      }
    case Builtin::kIsNumber:
      return MakeBool(a.kind == ValueKind::kNumber && std::isfinite(a.number) &&
                      (n.left_type == StaticType::kNumber ||
                       n.left_type == StaticType::kQueryValue));
    case Builtin::kIsString:
      return MakeBool(a.kind == ValueKind::kString &&
                      (n.left_type == StaticType::kString ||
                       n.left_type == StaticType::kQueryValue));
    case Builtin::kIsBool:
      if (n.left_type == StaticType::kBool) {
        return a.kind == ValueKind::kBool ? MakeBool(true) : MakeUndefined();
      }
      if (n.left_type == StaticType::kQueryValue &&
          a.kind == ValueKind::kUndefined)
        return MakeUndefined();
      return MakeBool(n.left_type == StaticType::kQueryValue &&
                      a.kind == ValueKind::kBool);
    case Builtin::kLength:
      if (a.kind != ValueKind::kString) return MakeNumber(kNaN);
      return MakeNumber(double(Utf16Length(a.str())));
    case Builtin::kLower:
      return CaseMap(a, false);
    case Builtin::kUpper:
      return CaseMap(a, true);
    case Builtin::kSubstring2:
    case Builtin::kSubstring3: {
      Value st = Eval(n.args[1]);
      Value cnt;
      if (fn == Builtin::kSubstring3) cnt = Eval(n.args[2]);
      if (a.kind != ValueKind::kString || st.kind != ValueKind::kNumber)
        return MakeUndefined();
      if (fn == Builtin::kSubstring3 && cnt.kind != ValueKind::kNumber)
        return MakeUndefined();
      double len = double(Utf16Length(a.str()));
      if (std::isnan(st.number)) return MakeUndefined();
      double start = std::trunc(st.number);
      if (fn == Builtin::kSubstring2) {
        if (!(start >= 0 && start <= len)) return MakeUndefined();
        return MakeString(a.str().substr(Utf16Offset(a.str(), size_t(start))));
      }
      if (std::isnan(cnt.number)) return MakeUndefined();
      double count = std::trunc(cnt.number);
      if (!(start >= 0 && start < len)) return MakeUndefined();
      if (!(count >= 0 && count <= len - start)) return MakeUndefined();
      size_t b = Utf16Offset(a.str(), size_t(start));
      size_t e = Utf16Offset(a.str(), size_t(start + count));
      return MakeString(a.str().substr(b, e - b));
    }
    case Builtin::kIndexOf:
    case Builtin::kStartsWith:
    case Builtin::kEndsWith:
    case Builtin::kContains: {
      Value b = Eval(n.args[1]);
      if (a.kind != ValueKind::kString || b.kind != ValueKind::kString) {
        return fn == Builtin::kIndexOf ? MakeNumber(kNaN) : MakeUndefined();
      }
      switch (fn) {
        case Builtin::kIndexOf: {
          size_t at = a.str().find(b.str());
          if (at == absl::string_view::npos) return MakeNumber(-1);
          return MakeNumber(double(Utf16Length(a.str().substr(0, at))));
        }
        case Builtin::kStartsWith:
          return MakeBool(absl::StartsWith(a.str(), b.str()));
        case Builtin::kEndsWith:
          return MakeBool(absl::EndsWith(a.str(), b.str()));
        default:
          return MakeBool(absl::StrContains(a.str(), b.str()));
      }
    }
  }
  return MakeUndefined();
}

}  // namespace edgeroute::query::internal
