// The tree evaluator: runs a program's nodes on one message with edgeHub's
// run-time semantics -- property and $body loads (each once per message,
// cached in the scratch), comparisons, three-valued logic, arithmetic and
// the built-ins. Allocation-free after warm-up (strings built during
// evaluation live in the scratch's arenas), no exceptions, no locks.
// Internal to //query.
//
// Where each part is:
//   evaluator.cc -- loads of properties, Eval, comparisons, logic, Explain
//   body.cc      -- $body: decoding the body, resolving paths, JSON values
//   builtins.cc  -- the built-in functions (Call, CaseMap, Concat)
//
// Thread-safety: an Evaluator lives for one evaluation on one thread; the
// program is shared read-only, the scratch belongs to the thread.

#ifndef EDGEROUTE_QUERY_EVALUATOR_H_
#define EDGEROUTE_QUERY_EVALUATOR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "base/utf8.h"
#include "message/message.h"
#include "query/json.h"
#include "query/program.h"
#include "query/query.h"
#include "query/scratch.h"
#include "query/value.h"

namespace edgeroute::query::internal {

class Evaluator {
 public:
  // REQUIRES: scratch->Begin(message) was called for this message.
  Evaluator(const Program& program, const MessageView& message,
            Scratch* scratch)
      : p_(program), m_(message), s_(scratch) {}

  // The value of node `i`.
  Value Eval(int i);

  // A property or body load: `op` is the load's op, `slots` its slots.
  Value Load(Op op, const LoadSlots& slots) {
    switch (op) {
      case Op::kAppProp:
        return FromProperty(App(slots.app));
      case Op::kSysProp:
        return FromProperty(Sys(slots.sys));
      case Op::kDollarProp: {
        PropertyValue v = App(slots.app);
        if (!v.missing()) return FromProperty(v);
        return FromProperty(Sys(slots.sys));
      }
      default:  // kBody
        return BodyLoad(slots);
    }
  }

  // `left` compared with `right`, both of static type `operand_type`
  // (kQueryValue: compared as body values, by type rank across types).
  // Undefined when either side is undefined.
  static Value Compare(Comparison comparison, StaticType operand_type,
                       const Value& left, const Value& right);

 private:
  PropertyValue App(int slot) {
    if (s_->app_gen_[slot] != s_->gen_) {
      s_->app_values_[slot] = m_.FindProperty(p_.app_name(slot));
      s_->app_gen_[slot] = s_->gen_;
    }
    return s_->app_values_[slot];
  }
  PropertyValue Sys(int slot) {
    if (s_->sys_gen_[slot] != s_->gen_) {
      s_->sys_values_[slot] = m_.FindSystemProperty(p_.sys_name(slot));
      s_->sys_gen_[slot] = s_->gen_;
    }
    return s_->sys_values_[slot];
  }
  // A property's value as the language reads it: ill-formed UTF-8 is
  // repaired (each maximal ill-formed subsequence reads as U+FFFD, as when
  // edgeHub decodes the bytes into a .NET string); the message keeps its
  // bytes.
  Value FromProperty(PropertyValue v) {
    Value r;
    if (v.has_string()) {
      r.kind = ValueKind::kString;
      r.set_str(IsAscii(v.value) ? v.value : RepairedText(v.value));
    } else if (v.is_null()) {
      r.kind = ValueKind::kNullString;
    }
    return r;
  }
  // `text` when it is UTF-8, else its repaired copy (message arena).
  absl::string_view RepairedText(absl::string_view text);

  // A kBody load: a shadowing "$body.x" application property if there is
  // one, else the body path; cached per message.
  Value BodyLoad(const LoadSlots& slots) {
    if (s_->body_cache_gen_[slots.body_cache] == s_->gen_) {
      return s_->body_cache_values_[slots.body_cache];
    }
    return BodyLoadSlow(slots);
  }
  Value BodyLoadSlow(const LoadSlots& slots);

  // body.cc: the value at body path `slot`, cached per message.
  Value Body(int slot) {
    if (s_->body_gen_[slot] == s_->gen_) return s_->body_values_[slot];
    return BodySlow(slot);
  }
  Value BodySlow(int slot);
  // Parses the body once per message; false when it is not a JSON object
  // edgeHub would read (headers, encoding, syntax).
  bool EnsureBody();
  // A JSON string's text: unescaped, and repaired as .NET's decoder does.
  absl::string_view JsonString(const JsonTape& tape, const JsonTape::Entry& e);
  Value FromJson(const JsonTape& tape, uint32_t index);
  bool KeyEquals(const JsonTape& tape, const JsonTape::Entry& key,
                 absl::string_view name);
  void Resolve(const JsonTape& tape, const BodyPath& path, size_t segment,
               size_t index, uint32_t entry, int* count, uint32_t* found);

  // evaluator.cc.
  Value CompareLoadConst(const Node& n);
  Value EvalSlow(int i);

  // builtins.cc.
  Value Call(const Node& n);
  Value Concat(const std::vector<int>& args);
  Value CaseMap(const Value& v, bool upper);

  const Program& p_;
  const MessageView& m_;
  Scratch* s_;
};

// Whether `v` of static type `type` is defined (is_defined, ??).
bool IsDefinedValue(const Value& v, StaticType type);

// The three-valued result of a condition whose root has static type `type`
// and value `v` (edgeHub's final Convert to Bool).
Tri FinalResult(const Value& v, StaticType type);

// Evaluates node `root` of `program` on `message`.
Tri EvaluateRoot(const Program& program, int root, const MessageView& message,
                 Scratch* scratch);

// The value of every node under `root`, one per line (for people).
std::string ExplainRoot(const Program& program, int root,
                        absl::string_view text, const MessageView& message,
                        Scratch* scratch);

// The value of node `i`, whose operands are constants, at compile time
// (constant folding). A string result points into the program's constants.
Value EvaluateConstant(Program* program, int i);

}  // namespace edgeroute::query::internal

#endif  // EDGEROUTE_QUERY_EVALUATOR_H_
