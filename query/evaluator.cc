// The tree evaluator (see evaluator.h): the nodes most conditions consist of
// in a function with a small frame (Eval), everything else in EvalSlow.

#include "query/evaluator.h"

#include <cmath>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "query/dotnet_text.h"
#include "simdjson.h"

namespace edgeroute::query::internal {
namespace {

double Compute(Arithmetic op, double a, double b) {
  switch (op) {
    case Arithmetic::kAdd:
      return a + b;
    case Arithmetic::kSubtract:
      return a - b;
    case Arithmetic::kMultiply:
      return a * b;
    case Arithmetic::kDivide:
      return a / b;
    default:
      return std::fmod(a, b);
  }
}

// Kleene AND / OR on bools (edgeHub's Bool struct): False AND x = False,
// True OR x = True, otherwise undefined wins over the remaining value.
Value AndOrBool(bool is_and, const Value& l, const Value& r) {
  const bool lf = l.kind == ValueKind::kBool && !l.boolean;
  const bool rf = r.kind == ValueKind::kBool && !r.boolean;
  const bool lt = l.kind == ValueKind::kBool && l.boolean;
  const bool rt = r.kind == ValueKind::kBool && r.boolean;
  if (is_and) {
    if (lf || rf) return MakeBool(false);
    if (lt && rt) return MakeBool(true);
    return MakeUndefined();
  }
  if (lt || rt) return MakeBool(true);
  if (lf && rf) return MakeBool(false);
  return MakeUndefined();
}

// Body values compare across types by rank: Bool < Double < String < Null.
int TypeRank(ValueKind kind) {
  switch (kind) {
    case ValueKind::kBool:
      return 0;
    case ValueKind::kNumber:
      return 1;
    case ValueKind::kString:
    case ValueKind::kNullString:
      return 2;
    default:
      return 3;  // null, missing
  }
}

}  // namespace

absl::string_view Evaluator::RepairedText(absl::string_view text) {
  if (simdjson::validate_utf8(text.data(), text.size())) return text;
  char* out = s_->AllocForMessage(text.size() * kUtf8RepairGrowth);
  return absl::string_view(out, ReplaceInvalidUtf8(text, out));
}

Value Evaluator::BodyLoadSlow(const LoadSlots& slots) {
  PropertyValue shadow;
  if (slots.app >= 0) {
    if (s_->dollar_gen_ != s_->gen_) {
      s_->dollar_gen_ = s_->gen_;
      s_->dollar_props_ = m_.AnyPropertyKeyStartsWith('$');
    }
    if (s_->dollar_props_) shadow = App(slots.app);
  }
  const Value v = shadow.missing() ? Body(slots.body) : FromProperty(shadow);
  s_->body_cache_gen_[slots.body_cache] = s_->gen_;
  s_->body_cache_values_[slots.body_cache] = v;
  return v;
}

__attribute__((noinline)) Value Evaluator::Compare(Comparison comparison,
                                                   StaticType operand_type,
                                                   const Value& l,
                                                   const Value& r) {
  int order = 0;
  switch (operand_type) {
    case StaticType::kString:
      if (l.kind != ValueKind::kString || r.kind != ValueKind::kString) {
        return MakeUndefined();
      }
      order = CompareUtf16(l.str(), r.str());
      break;
    case StaticType::kNumber:
      if (std::isnan(l.number) || std::isnan(r.number)) return MakeUndefined();
      order = l.number < r.number ? -1 : (l.number > r.number ? 1 : 0);
      break;
    case StaticType::kBool:
      if (l.kind != ValueKind::kBool || r.kind != ValueKind::kBool) {
        return MakeUndefined();
      }
      order = int(l.boolean) - int(r.boolean);
      break;
    case StaticType::kNull:
      order = 0;
      break;
    case StaticType::kUndefined:
      return MakeUndefined();
    case StaticType::kQueryValue: {
      if (l.kind == ValueKind::kUndefined || r.kind == ValueKind::kUndefined) {
        return MakeUndefined();
      }
      // An undefined number (NaN) wraps as an undefined body value.
      if ((l.kind == ValueKind::kNumber && std::isnan(l.number)) ||
          (r.kind == ValueKind::kNumber && std::isnan(r.number))) {
        return MakeUndefined();
      }
      const int rl = TypeRank(l.kind), rr = TypeRank(r.kind);
      if (rl != rr) {
        order = rl < rr ? -1 : 1;
      } else if (rl == 0) {
        order = int(l.boolean) - int(r.boolean);
      } else if (rl == 1) {
        order = l.number < r.number ? -1 : (l.number > r.number ? 1 : 0);
      } else if (rl == 2) {
        const bool ln = l.kind == ValueKind::kNullString;
        const bool rn = r.kind == ValueKind::kNullString;
        if (ln || rn) {
          order = (ln && rn) ? 0 : (ln ? -1 : 1);
        } else {
          order = CompareUtf16(l.str(), r.str());
        }
      } else {
        order = 0;
      }
      break;
    }
  }
  return MakeBool(Satisfies(comparison, order));
}

__attribute__((always_inline)) inline Value Evaluator::CompareLoadConst(
    const Node& n) {
  // The load and the constant were copied into this node.
  const Value v = Load(n.load_op, n.load);
  const Value& c = n.constant;
  if (v.kind == ValueKind::kNumber && c.kind == ValueKind::kNumber &&
      !std::isnan(v.number) && !std::isnan(c.number)) {
    const double l = n.constant_on_left ? c.number : v.number;
    const double r = n.constant_on_left ? v.number : c.number;
    switch (n.comparison) {
      case Comparison::kEq:
        return MakeBool(l == r);
      case Comparison::kNe:
        return MakeBool(l != r);
      case Comparison::kLt:
        return MakeBool(l < r);
      case Comparison::kLe:
        return MakeBool(l <= r);
      case Comparison::kGt:
        return MakeBool(l > r);
      default:
        return MakeBool(l >= r);
    }
  }
  if ((n.comparison == Comparison::kEq || n.comparison == Comparison::kNe) &&
      v.kind == ValueKind::kString && c.kind == ValueKind::kString) {
    const bool eq = v.str() == c.str();
    return MakeBool(n.comparison == Comparison::kEq ? eq : !eq);
  }
  return n.constant_on_left ? Compare(n.comparison, n.operand_type, c, v)
                            : Compare(n.comparison, n.operand_type, v, c);
}

Value Evaluator::Eval(int i) {
  const Node& n = p_.node(i);
  switch (n.op) {
    case Op::kConst:
      return n.constant;
    case Op::kCompareLoadConst:
      return CompareLoadConst(n);
    case Op::kAnd:
    case Op::kOr: {
      if (n.operand_type != StaticType::kBool) break;
      const bool is_and = n.op == Op::kAnd;
      const Value l = Eval(n.left);
      // False AND x = False, True OR x = True (see EvalSlow).
      if (l.kind == ValueKind::kBool && l.boolean != is_and) return l;
      const Value r = Eval(n.right);
      return AndOrBool(is_and, l, r);
    }
    default:
      break;
  }
  return EvalSlow(i);
}

__attribute__((noinline)) Value Evaluator::EvalSlow(int i) {
  const Node& n = p_.node(i);
  switch (n.op) {
    case Op::kConst:
      return n.constant;
    case Op::kAppProp:
    case Op::kSysProp:
    case Op::kDollarProp:
    case Op::kBody:
      return Load(n.op, n.load);
    case Op::kNegate:
      return MakeNumber(-Eval(n.left).number);
    case Op::kNot:
    case Op::kNotQueryValue: {
      const Value v = Eval(n.left);
      return v.kind == ValueKind::kBool ? MakeBool(!v.boolean)
                                        : MakeUndefined();
    }
    case Op::kArithmetic: {
      const Value l = Eval(n.left);
      const Value r = Eval(n.right);
      return MakeNumber(Compute(n.arithmetic, l.number, r.number));
    }
    case Op::kArithmeticQueryValue: {
      const Value l = Eval(n.left);
      const Value r = Eval(n.right);
      // A number only from two numbers; an undefined number (NaN) wraps as
      // an undefined body value, so it gives undefined too.
      if (l.kind != ValueKind::kNumber || r.kind != ValueKind::kNumber ||
          std::isnan(l.number) || std::isnan(r.number)) {
        return MakeUndefined();
      }
      return MakeNumber(Compute(n.arithmetic, l.number, r.number));
    }
    case Op::kConcat:
      return Concat(n.args);
    case Op::kCompare: {
      const Value l = Eval(n.left);
      const Value r = Eval(n.right);
      return Compare(n.comparison, n.operand_type, l, r);
    }
    case Op::kCompareLoadConst:
      return CompareLoadConst(n);
    case Op::kAnd:
    case Op::kOr: {
      const bool is_and = n.op == Op::kAnd;
      if (n.operand_type == StaticType::kNull &&
          (is_and || n.type == StaticType::kNull)) {
        return MakeNull();  // null AND x is null whatever x is
      }
      const Value l = Eval(n.left);
      // Evaluation has no side effects, so the three-valued logic may
      // skip the right side once the left decides: False AND x = False,
      // True OR x = True (for Bool operands; QueryValue logic needs both).
      if (n.operand_type == StaticType::kBool && l.kind == ValueKind::kBool &&
          l.boolean != is_and) {
        return l;
      }
      const Value r = Eval(n.right);
      switch (n.operand_type) {
        case StaticType::kQueryValue:
          if (l.kind != ValueKind::kBool || r.kind != ValueKind::kBool) {
            return MakeUndefined();
          }
          return MakeBool(is_and ? (l.boolean && r.boolean)
                                 : (l.boolean || r.boolean));
        case StaticType::kNull:
          // null OR b is b (the null side was the left or the right one).
          return n.left_type == StaticType::kNull ? r : l;
        case StaticType::kUndefined:
          return MakeUndefined();
        default:
          return AndOrBool(is_and, l, r);
      }
    }
    case Op::kCoalesce: {
      const Value l = Eval(n.left);
      const StaticType t = n.operand_type == StaticType::kQueryValue
                               ? n.left_type
                               : n.operand_type;
      if (IsDefinedValue(l, t)) return l;
      return Eval(n.right);
    }
    case Op::kCall:
      return Call(n);
  }
  return MakeUndefined();
}

bool IsDefinedValue(const Value& v, StaticType type) {
  switch (type) {
    case StaticType::kNumber:
      return !std::isnan(v.number);
    case StaticType::kNull:
      return true;
    case StaticType::kUndefined:
      return false;
    default:
      return v.kind != ValueKind::kUndefined;
  }
}

Tri FinalResult(const Value& v, StaticType type) {
  switch (type) {
    case StaticType::kBool:
    case StaticType::kQueryValue:
      if (v.kind == ValueKind::kBool) {
        return v.boolean ? Tri::kTrue : Tri::kFalse;
      }
      return Tri::kUndefined;
    case StaticType::kNull:
      return Tri::kFalse;
    default:
      return Tri::kUndefined;
  }
}

namespace {

std::string Show(const Value& v) {
  switch (v.kind) {
    case ValueKind::kUndefined:
      return "undefined";
    case ValueKind::kNull:
      return "null";
    case ValueKind::kMissing:
      return "null (no such body path)";
    case ValueKind::kBool:
      return v.boolean ? "true" : "false";
    case ValueKind::kNumber:
      if (std::isnan(v.number)) return "undefined (NaN)";
      return absl::StrCat(v.number);
    case ValueKind::kString:
      return absl::StrCat("'", v.str(), "'");
    case ValueKind::kNullString:
      return "null";
  }
  return "?";
}

void ExplainNode(const Program& p, int i, int depth, absl::string_view text,
                 Evaluator* ev, std::string* out) {
  const Node& n = p.node(i);
  const Value v = ev->Eval(i);
  absl::string_view src;
  if (n.end > n.begin && n.end <= text.size()) {
    src = text.substr(n.begin, n.end - n.begin);
  }
  absl::StrAppend(out, std::string(size_t(depth) * 2, ' '), src, "  ->  ",
                  Show(v), "  (", StaticTypeName(n.type), ")\n");
  for (int k : {n.left, n.right}) {
    if (k >= 0) ExplainNode(p, k, depth + 1, text, ev, out);
  }
  for (int k : n.args) ExplainNode(p, k, depth + 1, text, ev, out);
}

}  // namespace

Tri EvaluateRoot(const Program& program, int root, const MessageView& message,
                 Scratch* scratch) {
  scratch->Begin(message);
  Evaluator ev(program, message, scratch);
  return FinalResult(ev.Eval(root), program.node(root).type);
}

std::string ExplainRoot(const Program& program, int root,
                        absl::string_view text, const MessageView& message,
                        Scratch* scratch) {
  scratch->Reset();
  scratch->Begin(message);
  Evaluator ev(program, message, scratch);
  std::string out;
  ExplainNode(program, root, 0, text, &ev, &out);
  return out;
}

Value EvaluateConstant(Program* program, int i) {
  Scratch scratch(*program, PlanSizes());
  MessageView empty;
  scratch.Begin(empty);
  Evaluator ev(*program, empty, &scratch);
  Value v = ev.Eval(i);
  if (v.kind == ValueKind::kString) {
    v.set_str(program->InternString(std::string(v.str())));
  }
  return v;
}

}  // namespace edgeroute::query::internal
