// The compiled form of a route set's conditions: one program of expression
// nodes that share the slots they load (each distinct application property,
// system property and $body path once), built by the compiler
// (compiler.h), evaluated by the tree evaluator (evaluator.h) and the
// route-set plan (plan.h). Internal to //query.
//
// Thread-safety: built on one thread; immutable afterwards and then safe to
// read from many threads.

#ifndef EDGEROUTE_QUERY_PROGRAM_H_
#define EDGEROUTE_QUERY_PROGRAM_H_

#include <cstdint>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "query/body.h"
#include "query/json.h"
#include "query/value.h"

namespace edgeroute::query::internal {

// What a node does. The slots each kind reads are in LoadSlots.
enum class Op : uint8_t {
  kConst,          // constant
  kAppProp,        // name: application property load.app
  kSysProp,        // {$name}: system property load.sys
  kDollarProp,     // $name: application property "$name" (load.app) if there
                   // is one, else system property "name" (load.sys)
  kBody,           // $body.path: application property "$body.path" (load.app,
                   // -1 for {$body.path}) if there is one, else the body path
                   // load.body; the result is cached per message in
                   // load.body_cache
  kNegate,         // -left (number)
  kNot,            // NOT left (bool)
  kNotQueryValue,  // NOT left (body value)
  kArithmetic,     // left `arithmetic` right (numbers)
  kArithmeticQueryValue,  // the same on body values (number or undefined)
  kConcat,                // args: strings or body values (|| and concat)
  kCompare,               // left `comparison` right; operand_type below
  kAnd,                   // left AND right; operand_type: see the evaluator
  kOr,                    // left OR right
  kCoalesce,              // left ?? right
  kCall,                  // builtin(args)
  // A kCompare of a load with a constant, fused: the node carries copies of
  // the load (load_op, load) and of the constant (constant), so evaluating
  // it reads this node only. constant_on_left when the route wrote the
  // constant first.
  kCompareLoadConst,
};

// The slots a load reads; -1 for none. 16 bytes.
struct LoadSlots {
  int app = -1;
  int sys = -1;
  int body = -1;
  int body_cache = -1;
};

struct Node {
  Op op = Op::kConst;
  StaticType type = StaticType::kUndefined;
  // The operator or function, by op: kCompare and kCompareLoadConst
  // compare, kArithmetic* compute, kCall calls.
  union {
    Comparison comparison = Comparison::kEq;
    Arithmetic arithmetic;
    Builtin builtin;
  };
  // kCompare, kCompareLoadConst, kAnd, kOr, kCoalesce: the type both
  // operands are compared or combined as (kQueryValue: the non-body side
  // was wrapped as a body value).
  StaticType operand_type = StaticType::kUndefined;
  // kAnd, kOr, kCoalesce: the left operand's static type; kCall: the first
  // argument's (the is_* functions test it).
  StaticType left_type = StaticType::kUndefined;
  bool constant_on_left = false;  // kCompareLoadConst
  Op load_op = Op::kConst;        // kCompareLoadConst: the load's op
  int left = -1;
  int right = -1;
  LoadSlots load;  // loads and kCompareLoadConst
  // The fields above and `constant` are what evaluation reads: they are
  // the first 48 bytes.
  Value constant;               // kConst, kCompareLoadConst
  std::vector<int> args;        // kCall, kConcat
  uint32_t begin = 0, end = 0;  // source range (for Explain)
};

class Program {
 public:
  Program() = default;
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;

  // Appends a node; returns its index.
  int AddNode(Node node);
  // A constant node of `type` holding `value`.
  int AddConstant(StaticType type, Value value);
  const Node& node(int i) const { return nodes_[i]; }
  Node& mutable_node(int i) { return nodes_[i]; }

  // Keeps `s` for the program's lifetime (constant strings); returns it.
  absl::string_view InternString(std::string s);

  // The slot of each distinct load. Property names are matched ignoring
  // ASCII case (as edgeHub's dictionaries do), body paths exactly.
  int AppSlot(absl::string_view name);
  int SysSlot(absl::string_view name);
  int BodySlot(absl::string_view path, BodyPath parsed);
  // The cache slot of a kBody load: one per (body slot, app slot).
  int BodyCacheSlot(int body_slot, int app_slot);

  const std::string& app_name(int slot) const { return app_names_[slot]; }
  const std::string& sys_name(int slot) const { return sys_names_[slot]; }
  const BodyPath& body_path(int slot) const { return body_paths_[slot]; }
  size_t app_slots() const { return app_names_.size(); }
  size_t sys_slots() const { return sys_names_.size(); }
  size_t body_slots() const { return body_paths_.size(); }
  size_t body_cache_slots() const { return body_cache_keys_.size(); }
  // The top-level members the body paths start with: the only ones the
  // body's tape needs (JsonTape::Parse).
  const JsonMemberSet& body_members() const { return body_members_; }

 private:
  std::vector<Node> nodes_;
  std::deque<std::string> strings_;  // storage of constant strings
  std::vector<std::string> app_names_, sys_names_;
  absl::flat_hash_map<std::string, int> app_index_, sys_index_, body_index_;
  std::vector<BodyPath> body_paths_;
  JsonMemberSet body_members_;
  std::vector<std::pair<int, int>> body_cache_keys_;
  absl::flat_hash_map<std::pair<int, int>, int> body_cache_index_;
};

}  // namespace edgeroute::query::internal

#endif  // EDGEROUTE_QUERY_PROGRAM_H_
