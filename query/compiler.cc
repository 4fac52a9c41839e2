#include "query/compiler.h"

#include <cmath>
#include <cstdlib>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/json_string.h"
#include "base/utf8.h"
#include "query/body.h"
#include "query/evaluator.h"

namespace edgeroute::query::internal {
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

}  // namespace

int CompileCondition(absl::string_view text, const Ast& ast, Program* program,
                     std::vector<RawDiag>* diags) {
  if (ast.root < 0) {
    // The parsers never give an empty WHERE clause a tree; say so anyway.
    diags->push_back(
        RawDiag::Error(0, 1, "Syntax error: a WHERE clause needs a condition"));
    return -1;
  }
  return Compiler(program, text, ast, diags).Run();
}

int Compiler::Run() {
  int root = Build(ast_.root);
  return errors_ ? -1 : root;
}

absl::string_view Compiler::Text(uint32_t b, uint32_t e) const {
  return text_.substr(b, e - b);
}

void Compiler::Error(uint32_t b, uint32_t e, std::string msg,
                     std::string suggestion) {
  ++errors_;
  diags_->push_back(
      RawDiag::Error(b, e, std::move(msg), std::move(suggestion)));
}

void Compiler::Warn(uint32_t b, uint32_t e, std::string msg,
                    std::string suggestion) {
  diags_->push_back(
      RawDiag::Warning(b, e, std::move(msg), std::move(suggestion)));
}

int Compiler::Add(Node n) { return p_->AddNode(std::move(n)); }

int Compiler::Const(StaticType t, Value v, const AstNode& a) {
  Node n;
  n.op = Op::kConst;
  n.type = t;
  n.constant = v;
  n.begin = a.begin;
  n.end = a.end;
  return Add(std::move(n));
}

int Compiler::Undefined(const AstNode& a) {
  return Const(StaticType::kUndefined, {}, a);
}

const Node& Compiler::N(int i) const { return p_->node(i); }

StaticType Compiler::T(int i) const { return N(i).type; }

bool Compiler::IsConst(int i) const { return N(i).op == Op::kConst; }

int Compiler::Fold(int i) {
  const Node& n = N(i);
  // A fused load-vs-constant compare has a load operand: never folds.
  if (n.op == Op::kCompareLoadConst) return i;
  bool all_const = true;
  for (int k : {n.left, n.right}) {
    if (k >= 0 && !IsConst(k)) all_const = false;
  }
  for (int k : n.args) {
    if (!IsConst(k)) all_const = false;
  }
  if (!all_const || n.op == Op::kConst || n.op == Op::kAppProp ||
      n.op == Op::kSysProp || n.op == Op::kDollarProp || n.op == Op::kBody) {
    return i;
  }
  const Value v = EvaluateConstant(p_, i);
  Node& m = p_->mutable_node(i);
  m.op = Op::kConst;
  m.constant = v;
  return i;
}

int Compiler::Literal(const AstNode& a) {
  absl::string_view t = Text(a.tok_begin, a.tok_end);
  Value v;
  switch (a.op) {
    case Tok::kTrue:
    case Tok::kFalse:
      v.kind = ValueKind::kBool;
      v.boolean = a.op == Tok::kTrue;
      return Const(StaticType::kBool, v, a);
    case Tok::kNull:
      v.kind = ValueKind::kNull;
      return Const(StaticType::kNull, v, a);
    case Tok::kUndefined:
      return Undefined(a);
    case Tok::kString: {
      const absl::string_view text =
          p_->InternString(Unescape(t.substr(1, t.size() - 2)));
      v.kind = ValueKind::kString;
      v.set_str(text);
      return Const(StaticType::kString, v, a);
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
      v.kind = ValueKind::kNumber;
      v.number = double(int64_t(bits));
      return Const(StaticType::kNumber, v, a);
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
      v.kind = ValueKind::kNumber;
      v.number = std::strtod(s.c_str(), nullptr);
      return Const(StaticType::kNumber, v, a);
    }
    default:
      return Undefined(a);
  }
}

int Compiler::Property(const AstNode& a, bool escaped) {
  absl::string_view tok = Text(a.tok_begin, a.tok_end);  // "$name"
  absl::string_view name = tok.substr(1);
  bool brackets = name.find_first_of("[]") != absl::string_view::npos;
  if (absl::StartsWithIgnoreCase(name, "body.")) {
    absl::string_view path = name.substr(5);
    BodyPath parsed;
    std::string why;
    if (!ParseBodyPath(path, &parsed, &why)) {
      Error(
          a.tok_begin, a.tok_end,
          absl::StrCat("Invalid JsonPath '", path, "' in '", tok, "': ", why));
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
    n.type = StaticType::kQueryValue;
    n.load.body = p_->BodySlot(path, std::move(parsed));
    n.load.app = (escaped || brackets) ? -1 : p_->AppSlot(tok);
    n.load.body_cache = p_->BodyCacheSlot(n.load.body, n.load.app);
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
  n.type = StaticType::kString;
  n.begin = a.begin;
  n.end = a.end;
  if (escaped) {
    n.op = Op::kSysProp;
    n.load.sys = p_->SysSlot(name);
  } else {
    n.op = Op::kDollarProp;
    n.load.app = p_->AppSlot(tok);
    n.load.sys = p_->SysSlot(name);
  }
  return Add(std::move(n));
}

bool Compiler::IsCmp(::edgeroute::query::internal::Tok t) {
  using K = ::edgeroute::query::internal::Tok;
  return t == K::kEq || t == K::kNe1 || t == K::kNe2 || t == K::kLt ||
         t == K::kLe || t == K::kGt || t == K::kGe;
}

bool Compiler::QvCompatible(StaticType t) {
  return t == StaticType::kString || t == StaticType::kNumber ||
         t == StaticType::kBool || t == StaticType::kNull ||
         t == StaticType::kQueryValue;
}

void Compiler::OperandError(const AstNode& a, StaticType l, StaticType r,
                            StaticType el, StaticType er, std::string extra) {
  std::string suggestion;
  const AstNode& left = ast_.nodes[a.kids[0]];
  if (left.kind == AstKind::kUnary &&
      left.op == ::edgeroute::query::internal::Tok::kNot &&
      !left.parenthesised) {
    suggestion = absl::StrCat("NOT binds tighter than comparisons: write NOT (",
                              Text(ast_.nodes[left.kids[0]].begin, a.end), ")");
  }
  Error(a.tok_begin, a.tok_end,
        absl::StrCat("Invalid operands to binary operator '",
                     Text(a.tok_begin, a.tok_end), "': have '",
                     StaticTypeName(l), "' and '", StaticTypeName(r),
                     "', expected '", StaticTypeName(el), "' and '",
                     StaticTypeName(er), "'", extra),
        std::move(suggestion));
}

int Compiler::Binary(const AstNode& a, int l, int r) {
  using K = ::edgeroute::query::internal::Tok;
  StaticType lt = T(l), rt = T(r);
  Node n;
  n.left = l;
  n.right = r;
  n.left_type = lt;
  n.begin = a.begin;
  n.end = a.end;
  K op = a.op;
  if (op == K::kPlus || op == K::kMinus || op == K::kStar || op == K::kSlash ||
      op == K::kPercent) {
    n.arithmetic = op == K::kPlus    ? Arithmetic::kAdd
                   : op == K::kMinus ? Arithmetic::kSubtract
                   : op == K::kStar  ? Arithmetic::kMultiply
                   : op == K::kSlash ? Arithmetic::kDivide
                                     : Arithmetic::kRemainder;
    bool ln = lt == StaticType::kNumber, rn = rt == StaticType::kNumber;
    bool lq = lt == StaticType::kQueryValue, rq = rt == StaticType::kQueryValue;
    if (ln && rn) {
      n.op = Op::kArithmetic;
      n.type = StaticType::kNumber;
    } else if ((ln || lq) && (rn || rq)) {
      if (n.arithmetic == Arithmetic::kRemainder) {
        Error(a.tok_begin, a.tok_end,
              "Invalid operands to binary operator '%': there is no '%' "
              "for body values");
        return Undefined(a);
      }
      n.op = Op::kArithmeticQueryValue;
      n.type = StaticType::kQueryValue;
    } else {
      OperandError(a, lt, rt, StaticType::kNumber, StaticType::kNumber);
      return Undefined(a);
    }
    return Fold(Add(std::move(n)));
  }
  if (op == K::kConcat) {
    bool ok = (lt == StaticType::kString || lt == StaticType::kQueryValue) &&
              (rt == StaticType::kString || rt == StaticType::kQueryValue);
    if (!ok) {
      OperandError(a, lt, rt, StaticType::kString, StaticType::kString);
      return Undefined(a);
    }
    n.op = Op::kConcat;
    n.type = StaticType::kString;
    n.args = {l, r};
    n.left = n.right = -1;
    return Fold(Add(std::move(n)));
  }
  if (IsCmp(op)) {
    switch (op) {
      case K::kEq:
        n.comparison = Comparison::kEq;
        break;
      case K::kNe1:
      case K::kNe2:
        n.comparison = Comparison::kNe;
        break;
      case K::kLt:
        n.comparison = Comparison::kLt;
        break;
      case K::kLe:
        n.comparison = Comparison::kLe;
        break;
      case K::kGt:
        n.comparison = Comparison::kGt;
        break;
      default:
        n.comparison = Comparison::kGe;
        break;
    }
    if (lt == rt && lt != StaticType::kQueryValue) {
      n.operand_type = lt;
    } else if ((lt == StaticType::kQueryValue && QvCompatible(rt)) ||
               (rt == StaticType::kQueryValue && QvCompatible(lt))) {
      n.operand_type = StaticType::kQueryValue;
    } else {
      OperandError(a, lt, rt, lt,
                   lt == StaticType::kQueryValue ? StaticType::kString : lt);
      return Undefined(a);
    }
    n.op = Op::kCompare;
    n.type = StaticType::kBool;
    auto is_load = [&](int k) {
      Op o = N(k).op;
      return o == Op::kAppProp || o == Op::kSysProp || o == Op::kDollarProp ||
             o == Op::kBody;
    };
    if (is_load(l) && IsConst(r)) {
      n.op = Op::kCompareLoadConst;
    } else if (IsConst(l) && is_load(r)) {
      n.op = Op::kCompareLoadConst;
      n.constant_on_left = true;
      std::swap(n.left, n.right);
    }
    if (n.op == Op::kCompareLoadConst) {
      // The evaluator reads only this node: a copy of the load (its op,
      // slots) and of the constant.
      n.load_op = N(n.left).op;
      n.load = N(n.left).load;
      n.constant = N(n.right).constant;
    }
    return Fold(Add(std::move(n)));
  }
  if (op == K::kAnd || op == K::kOr) {
    bool is_and = op == K::kAnd;
    auto logical = [](StaticType t) {
      return t == StaticType::kBool || t == StaticType::kNull ||
             t == StaticType::kUndefined || t == StaticType::kQueryValue;
    };
    auto right_ok = [](StaticType t) {
      return t == StaticType::kBool || t == StaticType::kNull ||
             t == StaticType::kUndefined;
    };
    if (!logical(lt) || (lt != StaticType::kQueryValue && !right_ok(rt))) {
      OperandError(a, lt, rt, StaticType::kBool, StaticType::kBool);
      return Undefined(a);
    }
    n.op = is_and ? Op::kAnd : Op::kOr;
    if (lt == StaticType::kQueryValue) {
      if (is_and && rt == StaticType::kNull) {
        Error(a.tok_begin, a.tok_end,
              "Invalid operands to binary operator 'AND': a body value AND "
              "null has no result type");
        return Undefined(a);
      }
      // QueryValue's & and | return Bool.
      n.operand_type = StaticType::kQueryValue;
      n.type = StaticType::kBool;
      return Fold(Add(std::move(n)));
    }
    bool lnull = lt == StaticType::kNull, rnull = rt == StaticType::kNull;
    bool lund = lt == StaticType::kUndefined,
         rund = rt == StaticType::kUndefined;
    if ((lnull && rund) || (lund && rnull)) {
      OperandError(a, lt, rt, StaticType::kBool, StaticType::kBool,
                   " (no operator between null and undefined)");
      return Undefined(a);
    }
    if (lnull || rnull) {
      n.operand_type = StaticType::kNull;
      if (is_and) {
        n.type = StaticType::kNull;
      } else {
        n.type = (lnull && rnull) ? StaticType::kNull : StaticType::kBool;
      }
    } else if (lund && rund) {
      n.operand_type = StaticType::kUndefined;
      n.type = StaticType::kUndefined;
    } else {
      n.operand_type = StaticType::kBool;
      n.type = StaticType::kBool;
    }
    return Fold(Add(std::move(n)));
  }
  if (op == K::kCoalesce) {
    if (lt == rt && lt != StaticType::kQueryValue) {
      n.operand_type = lt;
      n.type = lt;
    } else if ((lt == StaticType::kQueryValue && QvCompatible(rt)) ||
               (rt == StaticType::kQueryValue && QvCompatible(lt))) {
      n.operand_type = StaticType::kQueryValue;
      n.type = StaticType::kQueryValue;
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

int Compiler::Build(int idx) {
  const AstNode& a = ast_.nodes[idx];
  switch (a.kind) {
    case AstKind::kLiteral:
      return Literal(a);
    case AstKind::kId: {
      Node n;
      n.op = Op::kAppProp;
      n.type = StaticType::kString;
      n.load.app = p_->AppSlot(Text(a.tok_begin, a.tok_end));
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
      StaticType t = T(operand);
      Node n;
      n.left = operand;
      n.begin = a.begin;
      n.end = a.end;
      if (a.op == ::edgeroute::query::internal::Tok::kMinus) {
        if (t != StaticType::kNumber) {
          Error(a.tok_begin, a.tok_end,
                absl::StrCat("Invalid operand to unary operator '-': have '",
                             StaticTypeName(t), "', expected 'number'"),
                t == StaticType::kQueryValue ? "write (0 - x) for a body value"
                                             : "");
          return Undefined(a);
        }
        n.op = Op::kNegate;
        n.type = StaticType::kNumber;
        return Fold(Add(std::move(n)));
      }
      if (t == StaticType::kBool) {
        n.op = Op::kNot;
        n.type = StaticType::kBool;
      } else if (t == StaticType::kNull) {
        Value v;
        v.kind = ValueKind::kBool;
        v.boolean = true;
        return Const(StaticType::kBool, v, a);
      } else if (t == StaticType::kQueryValue) {
        n.op = Op::kNotQueryValue;
        n.type = StaticType::kBool;  // QueryValue's ! returns Bool
      } else {
        Error(a.tok_begin, a.tok_end,
              absl::StrCat("Invalid operand to unary operator 'NOT': have '",
                           StaticTypeName(t), "', expected 'bool'"));
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

}  // namespace edgeroute::query::internal
