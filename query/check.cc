// Stage 2: type checks with edgeHub's operand rules, property resolution,
// literal parsing and constant folding.

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/json_string.h"
#include "base/utf8.h"
#include "query/lexer.h"
#include "query/program.h"

namespace edgeroute::query::internal {

const char* STypeName(SType t) {
  switch (t) {
    case SType::kString:
      return "string";
    case SType::kNumber:
      return "number";
    case SType::kBool:
      return "bool";
    case SType::kNull:
      return "null";
    case SType::kUndefined:
      return "undefined";
    case SType::kQV:
      return "body value";
  }
  return "?";
}

namespace {

// ConditionVisitor.Unescape: pass 1 replaces \[Uu]XXXX (an escaped
// surrogate pair becomes one character), pass 2 replaces \" \' \\ -- each
// a left-to-right, non-overlapping regex replacement.
std::string Unescape(absl::string_view raw) {
  auto unicode_escape = [&](size_t i, uint32_t* unit) {
    return raw[i] == '\\' && i + 1 < raw.size() &&
           (raw[i + 1] == 'u' || raw[i + 1] == 'U') &&
           ReadHex4(raw, i + 2, unit);
  };
  std::string pass1;
  for (size_t i = 0; i < raw.size();) {
    uint32_t unit = 0;
    if (!unicode_escape(i, &unit)) {
      pass1.push_back(raw[i]);
      ++i;
      continue;
    }
    i += 6;
    uint32_t low = 0;
    if (IsHighSurrogate(unit) && i < raw.size() && unicode_escape(i, &low) &&
        IsLowSurrogate(low)) {
      i += 6;
      AppendUtf8(CombineSurrogates(unit, low), &pass1);
      continue;
    }
    AppendUtf8(unit, &pass1);
  }
  std::string out;
  for (size_t i = 0; i < pass1.size();) {
    if (pass1[i] == '\\' && i + 1 < pass1.size() &&
        (pass1[i + 1] == '"' || pass1[i + 1] == '\'' || pass1[i + 1] == '\\')) {
      out.push_back(pass1[i + 1]);
      i += 2;
      continue;
    }
    out.push_back(pass1[i]);
    ++i;
  }
  return out;
}

struct BuiltinInfo {
  const char* name;
};

}  // namespace

class Compiler {
 public:
  Compiler(Program* p, absl::string_view text, const Ast& ast,
           std::vector<RawDiag>* diags)
      : p_(p), text_(text), ast_(ast), diags_(diags) {}

  int Run() {
    int root = Build(ast_.root);
    return errors_ ? -1 : root;
  }

 private:
  absl::string_view Text(uint32_t b, uint32_t e) const {
    return text_.substr(b, e - b);
  }
  void Error(uint32_t b, uint32_t e, std::string msg,
             std::string suggestion = "") {
    ++errors_;
    RawDiag d;
    d.message = std::move(msg);
    d.begin = b;
    d.end = e > b ? e : b + 1;
    d.suggestion = std::move(suggestion);
    diags_->push_back(std::move(d));
  }
  void Warn(uint32_t b, uint32_t e, std::string msg, std::string suggestion) {
    RawDiag d;
    d.severity = Diagnostic::Severity::kWarning;
    d.message = std::move(msg);
    d.begin = b;
    d.end = e > b ? e : b + 1;
    d.suggestion = std::move(suggestion);
    diags_->push_back(std::move(d));
  }

  int Add(Node n) {
    p_->nodes_.push_back(std::move(n));
    return int(p_->nodes_.size() - 1);
  }
  int Const(SType t, Value v, const AstNode& a) {
    Node n;
    n.op = Op::kConst;
    n.type = t;
    n.constant = v;
    n.begin = a.begin;
    n.end = a.end;
    return Add(std::move(n));
  }
  int Undefined(const AstNode& a) { return Const(SType::kUndefined, {}, a); }
  const Node& N(int i) const { return p_->nodes_[i]; }
  SType T(int i) const { return N(i).type; }
  bool IsConst(int i) const { return N(i).op == Op::kConst; }

  // Folds node `i` to a constant when its operands are constants.
  int Fold(int i) {
    const Node& n = N(i);
    // A fused load-vs-constant compare has a load operand: never folds.
    if (n.op == Op::kCompareLoadConst) return i;
    bool all_const = true;
    for (int k : {n.a, n.b, n.c}) {
      if (k >= 0 && !IsConst(k)) all_const = false;
    }
    for (int k : n.args) {
      if (!IsConst(k)) all_const = false;
    }
    if (!all_const || n.op == Op::kConst || n.op == Op::kAppProp ||
        n.op == Op::kSysProp || n.op == Op::kDollarProp || n.op == Op::kBody) {
      return i;
    }
    Value v = p_->FoldNode(i);
    Node& m = p_->nodes_[i];
    m.op = Op::kConst;
    m.constant = v;
    return i;
  }

  int Literal(const AstNode& a) {
    absl::string_view t = Text(a.tok_begin, a.tok_end);
    Value v;
    switch (a.op) {
      case Tok::kTrue:
      case Tok::kFalse:
        v.k = VK::kBool;
        v.b = a.op == Tok::kTrue;
        return Const(SType::kBool, v, a);
      case Tok::kNull:
        v.k = VK::kNull;
        return Const(SType::kNull, v, a);
      case Tok::kUndefined:
        return Undefined(a);
      case Tok::kString: {
        p_->strings_.push_back(Unescape(t.substr(1, t.size() - 2)));
        v.k = VK::kStr;
        v.set_s(p_->strings_.back());
        return Const(SType::kString, v, a);
      }
      case Tok::kHex: {
        absl::string_view digits = t.substr(2);
        while (digits.size() > 1 && digits[0] == '0') digits.remove_prefix(1);
        if (digits.size() > 16) {
          Warn(a.begin, a.end,
               "hex literal has more than 16 digits: it is the undefined "
               "value",
               "");
          return Undefined(a);
        }
        uint64_t bits = 0;
        for (char c : digits) bits = bits * 16 + uint64_t(HexDigitValue(c));
        v.k = VK::kNum;
        v.n = double(int64_t(bits));
        return Const(SType::kNumber, v, a);
      }
      case Tok::kInteger:
      case Tok::kReal: {
        // A real with no mantissa digits (e3, -E5) fails double.TryParse.
        size_t i = (t[0] == '-') ? 1 : 0;
        bool mantissa = i < t.size() && (t[i] >= '0' && t[i] <= '9');
        if (!mantissa && i < t.size() && t[i] == '.') mantissa = true;
        if (!mantissa) {
          Warn(a.begin, a.end,
               absl::StrCat("'", t,
                            "' is read as a number without digits, which is "
                            "the undefined value"),
               "");
          return Undefined(a);
        }
        std::string s(t);
        v.k = VK::kNum;
        v.n = std::strtod(s.c_str(), nullptr);
        return Const(SType::kNumber, v, a);
      }
      default:
        return Undefined(a);
    }
  }

  // $name / {$name}.
  int Property(const AstNode& a, bool escaped) {
    absl::string_view tok = Text(a.tok_begin, a.tok_end);  // "$name"
    absl::string_view name = tok.substr(1);
    bool brackets = name.find_first_of("[]") != absl::string_view::npos;
    if (absl::StartsWithIgnoreCase(name, "body.")) {
      absl::string_view path = name.substr(5);
      BodyPath parsed;
      std::string why;
      if (!ParseBodyPath(path, &parsed, &why)) {
        Error(a.tok_begin, a.tok_end,
              absl::StrCat("Invalid JsonPath '", path, "' in '", tok,
                           "': ", why));
        return Undefined(a);
      }
      if (parsed.junk) {
        Warn(a.tok_begin, a.tok_end,
             absl::StrCat("'", tok,
                          "' has text after a valid path; edgeHub accepts it "
                          "but the query is undefined on every message"),
             "");
      }
      Node n;
      n.op = Op::kBody;
      n.type = SType::kQV;
      n.slot = p_->BodySlot(path, std::move(parsed));
      n.slot2 = (escaped || brackets) ? -1 : p_->AppSlot(tok);
      n.qv = p_->QvSlot(n.slot, n.slot2);
      n.begin = a.begin;
      n.end = a.end;
      return Add(std::move(n));
    }
    if (brackets) {
      Warn(a.tok_begin, a.tok_end,
           absl::StrCat("'", tok,
                        "' contains '[' or ']' and is not a $body path: it "
                        "is the undefined value"),
           "");
      return Undefined(a);
    }
    if (absl::EqualsIgnoreCase(name, "correlationId")) {
      Warn(a.tok_begin, a.tok_end,
           "edgeHub stores the correlation id as 'cid': $correlationId is "
           "never set",
           "write $cid");
    }
    Node n;
    n.type = SType::kString;
    n.begin = a.begin;
    n.end = a.end;
    if (escaped) {
      n.op = Op::kSysProp;
      n.slot = p_->SysSlot(name);
    } else {
      n.op = Op::kDollarProp;
      n.slot = p_->AppSlot(tok);
      n.slot2 = p_->SysSlot(name);
    }
    return Add(std::move(n));
  }

  static bool IsCmp(::edgeroute::query::internal::Tok t) {
    using K = ::edgeroute::query::internal::Tok;
    return t == K::kEq || t == K::kNe1 || t == K::kNe2 || t == K::kLt ||
           t == K::kLe || t == K::kGt || t == K::kGe;
  }
  static bool QvCompatible(SType t) {
    return t == SType::kString || t == SType::kNumber || t == SType::kBool ||
           t == SType::kNull || t == SType::kQV;
  }

  void OperandError(const AstNode& a, SType l, SType r, SType el, SType er,
                    std::string extra = "") {
    std::string suggestion;
    const AstNode& left = ast_.nodes[a.kids[0]];
    if (left.kind == AstKind::kUnary &&
        left.op == ::edgeroute::query::internal::Tok::kNot &&
        !left.parenthesised) {
      suggestion =
          absl::StrCat("NOT binds tighter than comparisons: write NOT (",
                       Text(ast_.nodes[left.kids[0]].begin, a.end), ")");
    }
    Error(a.tok_begin, a.tok_end,
          absl::StrCat("Invalid operands to binary operator '",
                       Text(a.tok_begin, a.tok_end), "': have '", STypeName(l),
                       "' and '", STypeName(r), "', expected '", STypeName(el),
                       "' and '", STypeName(er), "'", extra),
          std::move(suggestion));
  }

  int Binary(const AstNode& a, int l, int r) {
    using K = ::edgeroute::query::internal::Tok;
    SType lt = T(l), rt = T(r);
    Node n;
    n.a = l;
    n.b = r;
    n.ltype = lt;
    n.rtype = rt;
    n.begin = a.begin;
    n.end = a.end;
    K op = a.op;
    if (op == K::kPlus || op == K::kMinus || op == K::kStar ||
        op == K::kSlash || op == K::kPercent) {
      char c = op == K::kPlus    ? '+'
               : op == K::kMinus ? '-'
               : op == K::kStar  ? '*'
               : op == K::kSlash ? '/'
                                 : '%';
      n.sub = uint8_t(c);
      bool ln = lt == SType::kNumber, rn = rt == SType::kNumber;
      bool lq = lt == SType::kQV, rq = rt == SType::kQV;
      if (ln && rn) {
        n.op = Op::kArith;
        n.type = SType::kNumber;
      } else if ((ln || lq) && (rn || rq)) {
        if (c == '%') {
          Error(a.tok_begin, a.tok_end,
                "Invalid operands to binary operator '%': there is no '%' "
                "for body values");
          return Undefined(a);
        }
        n.op = Op::kArithQV;
        n.type = SType::kQV;
      } else {
        OperandError(a, lt, rt, SType::kNumber, SType::kNumber);
        return Undefined(a);
      }
      return Fold(Add(std::move(n)));
    }
    if (op == K::kConcat) {
      bool ok = (lt == SType::kString || lt == SType::kQV) &&
                (rt == SType::kString || rt == SType::kQV);
      if (!ok) {
        OperandError(a, lt, rt, SType::kString, SType::kString);
        return Undefined(a);
      }
      n.op = Op::kConcat;
      n.type = SType::kString;
      n.args = {l, r};
      n.a = n.b = -1;
      return Fold(Add(std::move(n)));
    }
    if (IsCmp(op)) {
      switch (op) {
        case K::kEq:
          n.sub = 0;
          break;
        case K::kNe1:
        case K::kNe2:
          n.sub = 1;
          break;
        case K::kLt:
          n.sub = 2;
          break;
        case K::kLe:
          n.sub = 3;
          break;
        case K::kGt:
          n.sub = 4;
          break;
        default:
          n.sub = 5;
          break;
      }
      if (lt == rt && lt != SType::kQV) {
        n.mode = lt;
      } else if ((lt == SType::kQV && QvCompatible(rt)) ||
                 (rt == SType::kQV && QvCompatible(lt))) {
        n.mode = SType::kQV;
      } else {
        OperandError(a, lt, rt, lt, lt == SType::kQV ? SType::kString : lt);
        return Undefined(a);
      }
      n.op = Op::kCompare;
      n.type = SType::kBool;
      auto is_load = [&](int k) {
        Op o = N(k).op;
        return o == Op::kAppProp || o == Op::kSysProp || o == Op::kDollarProp ||
               o == Op::kBody;
      };
      if (is_load(l) && IsConst(r)) {
        n.op = Op::kCompareLoadConst;
      } else if (IsConst(l) && is_load(r)) {
        n.op = Op::kCompareLoadConst;
        n.flip = true;
        std::swap(n.a, n.b);
      }
      if (n.op == Op::kCompareLoadConst) {
        // The evaluator reads only this node: a copy of the load (its op,
        // slots) and of the constant.
        n.load_op = N(n.a).op;
        n.slot = N(n.a).slot;
        n.slot2 = N(n.a).slot2;
        n.qv = N(n.a).qv;
        n.constant = N(n.b).constant;
      }
      return Fold(Add(std::move(n)));
    }
    if (op == K::kAnd || op == K::kOr) {
      bool is_and = op == K::kAnd;
      auto logical = [](SType t) {
        return t == SType::kBool || t == SType::kNull ||
               t == SType::kUndefined || t == SType::kQV;
      };
      auto right_ok = [](SType t) {
        return t == SType::kBool || t == SType::kNull || t == SType::kUndefined;
      };
      if (!logical(lt) || (lt != SType::kQV && !right_ok(rt))) {
        OperandError(a, lt, rt, SType::kBool, SType::kBool);
        return Undefined(a);
      }
      n.op = is_and ? Op::kAnd : Op::kOr;
      if (lt == SType::kQV) {
        if (is_and && rt == SType::kNull) {
          Error(a.tok_begin, a.tok_end,
                "Invalid operands to binary operator 'AND': a body value AND "
                "null has no result type");
          return Undefined(a);
        }
        // QueryValue's & and | return Bool.
        n.mode = SType::kQV;
        n.type = SType::kBool;
        return Fold(Add(std::move(n)));
      }
      bool lnull = lt == SType::kNull, rnull = rt == SType::kNull;
      bool lund = lt == SType::kUndefined, rund = rt == SType::kUndefined;
      if ((lnull && rund) || (lund && rnull)) {
        OperandError(a, lt, rt, SType::kBool, SType::kBool,
                     " (no operator between null and undefined)");
        return Undefined(a);
      }
      if (lnull || rnull) {
        n.mode = SType::kNull;
        if (is_and) {
          n.type = SType::kNull;
        } else {
          n.type = (lnull && rnull) ? SType::kNull : SType::kBool;
        }
      } else if (lund && rund) {
        n.mode = SType::kUndefined;
        n.type = SType::kUndefined;
      } else {
        n.mode = SType::kBool;
        n.type = SType::kBool;
      }
      return Fold(Add(std::move(n)));
    }
    if (op == K::kCoalesce) {
      if (lt == rt && lt != SType::kQV) {
        n.mode = lt;
        n.type = lt;
      } else if ((lt == SType::kQV && QvCompatible(rt)) ||
                 (rt == SType::kQV && QvCompatible(lt))) {
        n.mode = SType::kQV;
        n.type = SType::kQV;
      } else {
        OperandError(a, lt, rt, lt, lt);
        return Undefined(a);
      }
      n.op = Op::kCoalesce;
      return Fold(Add(std::move(n)));
    }
    Error(a.tok_begin, a.tok_end, "unsupported operator");
    return Undefined(a);
  }

  int Call(const AstNode& a, std::vector<int> args) {
    absl::string_view name = Text(a.tok_begin, a.tok_end);
    std::string lname = absl::AsciiStrToLower(name);
    std::vector<SType> types;
    for (int k : args) types.push_back(T(k));
    Node n;
    n.op = Op::kCall;
    n.begin = a.begin;
    n.end = a.end;
    auto match = [&](std::initializer_list<SType> params) {
      if (types.size() != params.size()) return false;
      size_t i = 0;
      for (SType p : params) {
        SType t = types[i++];
        if (t != p && t != SType::kQV) return false;
      }
      return true;
    };
    auto arg_error = [&](const char* expected) {
      std::vector<std::string> have;
      for (SType t : types) have.push_back(STypeName(t));
      Error(a.tok_begin, a.tok_end,
            absl::StrCat("Invalid arguments to built-in function '", name,
                         "': ", lname, "(", absl::StrJoin(have, ", "),
                         "); expected ", expected));
      return Undefined(a);
    };
    struct Unary {
      const char* name;
      Fn fn;
    };
    static const Unary kMath[] = {
        {"abs", Fn::kAbs},       {"ceiling", Fn::kCeiling},
        {"floor", Fn::kFloor},   {"exp", Fn::kExp},
        {"sign", Fn::kSign},     {"sqrt", Fn::kSqrt},
        {"square", Fn::kSquare},
    };
    for (const Unary& u : kMath) {
      if (lname == u.name) {
        if (!match({SType::kNumber})) {
          return arg_error(absl::StrCat(u.name, "(number)").c_str());
        }
        n.sub = uint8_t(u.fn);
        n.type = SType::kNumber;
        n.args = std::move(args);
        return Fold(Add(std::move(n)));
      }
    }
    if (lname == "power") {
      if (!match({SType::kNumber, SType::kNumber})) {
        return arg_error("power(number, number)");
      }
      n.sub = uint8_t(Fn::kPower);
      n.type = SType::kNumber;
    } else if (lname == "as_number") {
      if (!match({SType::kString}) && !match({SType::kNumber})) {
        return arg_error("as_number(string) or as_number(number)");
      }
      n.sub = uint8_t(Fn::kAsNumber);
      n.type = SType::kNumber;
    } else if (lname == "is_defined" || lname == "is_null" ||
               lname == "is_number" || lname == "is_string" ||
               lname == "is_bool") {
      if (types.size() != 1) {
        return arg_error(absl::StrCat(lname, "(any one value)").c_str());
      }
      n.sub = uint8_t(lname == "is_defined"  ? Fn::kIsDefined
                      : lname == "is_null"   ? Fn::kIsNull
                      : lname == "is_number" ? Fn::kIsNumber
                      : lname == "is_string" ? Fn::kIsString
                                             : Fn::kIsBool);
      n.type = SType::kBool;
      n.ltype = types[0];
      if (lname == "is_null" && types[0] == SType::kQV) {
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
      for (SType t : types) {
        if (t != SType::kString && t != SType::kQV) ok = false;
      }
      if (!ok) return arg_error("concat(string, string, ...)");
      n.op = Op::kConcat;
      n.type = SType::kString;
    } else if (lname == "length") {
      if (!match({SType::kString})) return arg_error("length(string)");
      n.sub = uint8_t(Fn::kLength);
      n.type = SType::kNumber;
    } else if (lname == "lower" || lname == "upper") {
      if (!match({SType::kString})) {
        return arg_error(absl::StrCat(lname, "(string)").c_str());
      }
      n.sub = uint8_t(lname == "lower" ? Fn::kLower : Fn::kUpper);
      n.type = SType::kString;
    } else if (lname == "substring") {
      if (match({SType::kString, SType::kNumber})) {
        n.sub = uint8_t(Fn::kSubstring2);
      } else if (match({SType::kString, SType::kNumber, SType::kNumber})) {
        n.sub = uint8_t(Fn::kSubstring3);
      } else {
        return arg_error(
            "substring(string, number) or substring(string, number, number)");
      }
      n.type = SType::kString;
    } else if (lname == "index_of" || lname == "starts_with" ||
               lname == "ends_with" || lname == "contains") {
      if (!match({SType::kString, SType::kString})) {
        return arg_error(absl::StrCat(lname, "(string, string)").c_str());
      }
      n.sub = uint8_t(lname == "index_of"      ? Fn::kIndexOf
                      : lname == "starts_with" ? Fn::kStartsWith
                      : lname == "ends_with"   ? Fn::kEndsWith
                                               : Fn::kContains);
      n.type = lname == "index_of" ? SType::kNumber : SType::kBool;
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

  int Build(int idx) {
    const AstNode& a = ast_.nodes[idx];
    switch (a.kind) {
      case AstKind::kLiteral:
        return Literal(a);
      case AstKind::kId: {
        Node n;
        n.op = Op::kAppProp;
        n.type = SType::kString;
        n.slot = p_->AppSlot(Text(a.tok_begin, a.tok_end));
        n.begin = a.begin;
        n.end = a.end;
        return Add(std::move(n));
      }
      case AstKind::kSysProp:
        return Property(a, false);
      case AstKind::kEscSysProp:
        return Property(a, true);
      case AstKind::kCall: {
        std::vector<int> args;
        for (int k : a.kids) args.push_back(Build(k));
        // twin_change_includes takes raw text; its arguments do not matter.
        return Call(a, std::move(args));
      }
      case AstKind::kUnary: {
        int operand = Build(a.kids[0]);
        SType t = T(operand);
        Node n;
        n.a = operand;
        n.begin = a.begin;
        n.end = a.end;
        if (a.op == ::edgeroute::query::internal::Tok::kMinus) {
          if (t != SType::kNumber) {
            Error(a.tok_begin, a.tok_end,
                  absl::StrCat("Invalid operand to unary operator '-': have '",
                               STypeName(t), "', expected 'number'"),
                  t == SType::kQV ? "write (0 - x) for a body value" : "");
            return Undefined(a);
          }
          n.op = Op::kNeg;
          n.type = SType::kNumber;
          return Fold(Add(std::move(n)));
        }
        if (t == SType::kBool) {
          n.op = Op::kNot;
          n.type = SType::kBool;
        } else if (t == SType::kNull) {
          Value v;
          v.k = VK::kBool;
          v.b = true;
          return Const(SType::kBool, v, a);
        } else if (t == SType::kQV) {
          n.op = Op::kNotQV;
          n.type = SType::kBool;  // QueryValue's ! returns Bool
        } else {
          Error(a.tok_begin, a.tok_end,
                absl::StrCat("Invalid operand to unary operator 'NOT': have '",
                             STypeName(t), "', expected 'bool'"));
          return Undefined(a);
        }
        return Fold(Add(std::move(n)));
      }
      case AstKind::kError:
        Error(a.tok_begin, a.tok_end, a.message);
        return Undefined(a);
      case AstKind::kBinary: {
        int l = Build(a.kids[0]);
        int r = Build(a.kids[1]);
        return Binary(a, l, r);
      }
    }
    return Undefined(a);
  }

  Program* p_;
  absl::string_view text_;
  const Ast& ast_;
  std::vector<RawDiag>* diags_;
  int errors_ = 0;
};

int Program::Compile(absl::string_view text, const Ast& ast,
                     std::vector<RawDiag>* diags) {
  if (ast.root < 0) {
    return AddConstant(SType::kUndefined, {});
  }
  Compiler c(this, text, ast, diags);
  return c.Run();
}

int Program::AddConstant(SType type, Value v) {
  Node n;
  n.op = Op::kConst;
  n.type = type;
  n.constant = v;
  nodes_.push_back(std::move(n));
  return int(nodes_.size() - 1);
}

int Program::AppSlot(absl::string_view name) {
  std::string key = absl::AsciiStrToLower(name);
  auto it = app_index_.find(key);
  if (it != app_index_.end()) return it->second;
  int slot = int(app_names_.size());
  app_names_.emplace_back(name);
  app_index_.emplace(std::move(key), slot);
  return slot;
}

int Program::SysSlot(absl::string_view name) {
  std::string key = absl::AsciiStrToLower(name);
  auto it = sys_index_.find(key);
  if (it != sys_index_.end()) return it->second;
  int slot = int(sys_names_.size());
  sys_names_.emplace_back(name);
  sys_index_.emplace(std::move(key), slot);
  return slot;
}

int Program::BodySlot(absl::string_view path, BodyPath parsed) {
  std::string key(path);  // property names are case-sensitive
  auto it = body_index_.find(key);
  if (it != body_index_.end()) return it->second;
  int slot = int(body_paths_.size());
  parsed.top_member = parsed.segments.size() == 1 &&
                      parsed.segments[0].indexes.empty() &&
                      parsed.segments[0].name != "*";
  body_paths_.push_back(std::move(parsed));
  body_index_.emplace(std::move(key), slot);
  return slot;
}

int Program::QvSlot(int slot, int slot2) {
  auto it = qv_index_.find(std::make_pair(slot, slot2));
  if (it != qv_index_.end()) return it->second;
  int qv = int(qv_keys_.size());
  qv_keys_.emplace_back(slot, slot2);
  qv_index_.emplace(std::make_pair(slot, slot2), qv);
  return qv;
}

bool ParseBodyPath(absl::string_view path, BodyPath* parsed,
                   std::string* error) {
  // JsonPath.g4: seg ('.' seg)*, seg = IDENT ('[' INT ']')*. A purely
  // numeric name lexes as INT and is rejected. No EOF rule: a valid prefix
  // followed by anything else compiles (the rest is "junk").
  // IDENT is the lexer's ID character set less '.', plus the space.
  auto is_ident_char = [](char c) {
    return c != '.' && (c == ' ' || IsIdChar(static_cast<unsigned char>(c)));
  };
  size_t i = 0;
  const size_t n = path.size();
  while (true) {
    size_t start = i;
    while (i < n && is_ident_char(path[i])) ++i;
    if (i == start) {
      *error = i >= n ? "a property name is missing at the end"
                      : absl::StrCat("a property name is expected at '",
                                     path.substr(i), "'");
      return false;
    }
    absl::string_view name = path.substr(start, i - start);
    bool numeric = true;
    for (char c : name) {
      if (c < '0' || c > '9') numeric = false;
    }
    if (numeric) {
      *error =
          absl::StrCat("'", name, "' is a number, not a property name (use [",
                       name, "] for an array index)");
      return false;
    }
    BodyPath::Segment seg;
    seg.name = std::string(name);
    while (i < n && path[i] == '[') {
      size_t j = i + 1;
      uint64_t v = 0;
      size_t d = 0;
      while (j < n && path[j] >= '0' && path[j] <= '9') {
        if (v < (uint64_t(1) << 40)) v = v * 10 + uint64_t(path[j] - '0');
        ++j;
        ++d;
      }
      if (d == 0 || j >= n || path[j] != ']') {
        *error = "an array index must be written [digits]";
        return false;
      }
      seg.indexes.push_back(v > 0xFFFFFFFFu ? 0xFFFFFFFFu : uint32_t(v));
      i = j + 1;
    }
    parsed->segments.push_back(std::move(seg));
    if (i >= n) return true;
    if (path[i] == '.') {
      ++i;
      continue;
    }
    parsed->junk = true;
    return true;
  }
}

}  // namespace edgeroute::query::internal
