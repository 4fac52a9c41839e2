// Type checking (edgeHub's ConditionVisitor rules) and the compiled,
// allocation-free evaluator. Internal to //query.

#ifndef EDGEROUTE_QUERY_PROGRAM_H_
#define EDGEROUTE_QUERY_PROGRAM_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "message/message.h"
#include "query/query.h"
#include "query/syntax.h"

namespace edgeroute::query::internal {

// Static types of the route language.
enum class SType : uint8_t { kString, kNumber, kBool, kNull, kUndefined, kQV };

const char* STypeName(SType t);

// Run-time value kinds. Which kinds occur depends on the static type:
//   string: kStr, kNullStr (null-valued property), kUndef
//   number: kNum (NaN = undefined)      bool: kBool, kUndef
//   null: kNull                          undefined: kUndef
//   body value (QV): kUndef (= None), kNull (JSON null), kMissing (path not
//   found; the static QueryValue.Null), kBool, kNum, kStr, kNullStr
enum class VK : uint8_t {
  kUndef,
  kNull,
  kMissing,
  kBool,
  kNum,
  kStr,
  kNullStr
};

// 16 bytes, so that values travel in two registers.
struct Value {
  union {
    double n = 0;    // kNum
    const char* sp;  // kStr: data
  };
  uint32_t sl = 0;  // kStr: size
  VK k = VK::kUndef;
  bool b = false;  // kBool

  absl::string_view s() const { return absl::string_view(sp, sl); }
  void set_s(absl::string_view v) {
    sp = v.data();
    sl = uint32_t(v.size());
  }
};
static_assert(sizeof(Value) == 16, "Value should fit two registers");

enum class Op : uint8_t {
  kConst,
  kAppProp,     // slot = app slot
  kSysProp,     // slot = sys slot
  kDollarProp,  // slot = app slot of "$name", slot2 = sys slot of "name"
  kBody,        // slot = body path slot, slot2 = app slot of "$body.x" or -1,
                // qv = slot of the (slot, slot2) pair's cached result
  kNeg,
  kNot,  // bool
  kNotQV,
  kArith,    // sub = '+','-','*','/','%' on numbers
  kArithQV,  // sub = '+','-','*','/'
  kConcat,   // args, string|QV
  kCompare,  // sub = comparison, mode = operand static type (kQV: wrapped)
  kAnd,      // mode: see Program::Eval
  kOr,
  kCoalesce,
  kCall,  // sub = builtin id
  // Fused kCompare of a property/body load (node a) with a constant (node
  // b); `flip` is set when the constant was on the left. The node carries
  // copies: load_op, slot, slot2, qv = the load's, constant = b's value.
  kCompareLoadConst,
};

// Built-in functions.
enum class Fn : uint8_t {
  kAbs,
  kCeiling,
  kFloor,
  kExp,
  kSign,
  kSqrt,
  kSquare,
  kPower,
  kAsNumber,
  kIsDefined,
  kIsNull,
  kIsNumber,
  kIsString,
  kIsBool,
  kLength,
  kLower,
  kUpper,
  kSubstring2,
  kSubstring3,
  kIndexOf,
  kStartsWith,
  kEndsWith,
  kContains,
};

struct Node {
  Op op = Op::kConst;
  SType type = SType::kUndefined;
  uint8_t sub = 0;
  SType mode = SType::kUndefined;  // operand type for kCompare/kAnd/kOr/...
  SType ltype = SType::kUndefined, rtype = SType::kUndefined;
  bool flip = false;
  Op load_op = Op::kConst;  // kCompareLoadConst: the load's op
  int a = -1, b = -1, c = -1;
  int slot = -1, slot2 = -1;
  int qv = -1;  // kBody (and fused loads of a kBody): see Op::kBody
  // The fields above and `constant` are what evaluation reads: kept in the
  // first 48 bytes.
  Value constant;
  std::vector<int> args;
  uint32_t begin = 0, end = 0;  // source range (for Explain)
};

// A parsed $body path.
struct BodyPath {
  struct Segment {
    std::string name;  // "*" = wildcard
    std::vector<uint32_t> indexes;
  };
  std::vector<Segment> segments;
  bool junk = false;  // trailing text the run-time parser rejects
  // One member of the top-level object ($body.name, the usual case): looked
  // up without the general walk.
  bool top_member = false;
};

class Scratch;

constexpr uint8_t kPlanFalse = 0, kPlanUndefined = 1, kPlanTrue = 2;

// All compiled conditions of a route set, sharing property and body slots.
class Program {
 public:
  Program() = default;
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;

  // Type-checks and compiles `ast` (positions in `text`). Returns the root
  // node index, or -1 with errors appended to `diags`.
  int Compile(absl::string_view text, const Ast& ast,
              std::vector<RawDiag>* diags);
  // A constant root.
  int AddConstant(SType type, Value v);

  Tri Evaluate(int root, const MessageView& message, Scratch* scratch) const;
  // Value of every node under `root`, one per line (for people).
  std::string Explain(int root, absl::string_view text,
                      const MessageView& message, Scratch* scratch) const;

  std::unique_ptr<Scratch> NewScratch() const;

  // Builds the route-set plan for `roots` (route i's condition is roots[i]).
  // Call once, after every Compile. The plan splits each condition into a
  // three-valued formula (bool AND, OR, NOT) over atoms. Comparisons of a
  // property or body load with a constant are atoms grouped by their load:
  // the load happens once per message and the group's comparisons run as
  // one tight loop per operator, each distinct comparison once however many
  // routes use it. Any other sub-expression is an atom of its own, evaluated
  // by the tree evaluator. Evaluation is pure, so evaluating every atom of a
  // route (no short-circuit) gives the tree evaluator's result.
  // Routes with the same source and the same formula shape (the same
  // code, with other atoms) are also evaluated together, one formula
  // instruction at a time over all of them (EvaluateAllPlanned).
  // `source_of[i]` < `sources` numbers route i's source.
  void BuildPlan(const std::vector<int>& roots,
                 const std::vector<uint32_t>& source_of, size_t sources);
  // Route `route`'s condition through the plan; the same result as
  // Evaluate(roots[route]). REQUIRES: BuildPlan was called;
  // scratch->Begin(message) was called for this message.
  Tri EvaluatePlanned(size_t route, const MessageView& message,
                      Scratch* scratch) const;
  // Every route whose source matches: sets matched[i] to 1 when route i's
  // condition is true, and leaves the others alone. `source_ok[k]` tells
  // whether source k matches the message. REQUIRES: as EvaluatePlanned;
  // matched has a byte per route.
  void EvaluateAllPlanned(const uint8_t* source_ok, const MessageView& message,
                          Scratch* scratch, uint8_t* matched) const;

  size_t app_slots() const { return app_names_.size(); }
  size_t sys_slots() const { return sys_names_.size(); }
  size_t body_slots() const { return body_paths_.size(); }
  size_t qv_slots() const { return qv_keys_.size(); }
  size_t plan_units() const { return plan_units_.size(); }
  size_t plan_values() const { return plan_atoms_ + plan_temps_; }
  size_t plan_shape_temps() const { return plan_shape_temps_; }

 private:
  friend class Compiler;
  friend struct Evaluator;

  // Evaluates node i, whose operands are constants, at compile time.
  Value FoldNode(int i);

  int AppSlot(absl::string_view name);
  int SysSlot(absl::string_view name);
  int BodySlot(absl::string_view path, BodyPath parsed);
  // The slot caching a kBody load's result: one per (body slot, app slot).
  int QvSlot(int slot, int slot2);

  // The plan (see BuildPlan). Atom and temporary results are bytes in
  // Scratch::plan_values_: kPlanFalse < kPlanUndefined < kPlanTrue, so AND
  // is min, OR is max and NOT is kPlanTrue - x (Kleene logic, which is
  // edgeHub's Bool).
  struct PlanAtom {  // one comparison of a group's load with a constant
    uint8_t sub = 0;
    bool flip = false;
    SType mode = SType::kUndefined;
    Value constant;
    uint32_t out = 0;  // index in the value array
  };
  struct PlanGroup {
    Op load_op = Op::kConst;
    int slot = -1, slot2 = -1, qv = -1;
    std::vector<PlanAtom> atoms;
    // When the load is a number: atoms with a number constant, by operator
    // with the load on the left (0 =, 1 !=, 2 <, 3 <=, 4 >, 5 >=).
    // Their results are consecutive values from num_first[op], so the
    // loops store contiguously (and vectorise).
    std::vector<double> num_const[6];
    uint32_t num_first[6] = {0, 0, 0, 0, 0, 0};
    std::vector<uint32_t> not_num;  // indexes in atoms of the others
    // When the load is a string: atoms `= 'c'` / `!= 'c'`. Their results
    // are consecutive too: the `=` ones from str_eq_first, then the `!=`
    // ones. Larger groups find the equal constants in `str_index` (ranges
    // of `str_hits`, which holds result indexes) instead of comparing each.
    std::vector<uint32_t> str_eq;   // indexes in atoms
    std::vector<uint32_t> not_str;  // the others
    uint32_t str_eq_first = 0, str_eq_count = 0;
    uint32_t str_ne_first = 0, str_ne_count = 0;
    absl::flat_hash_map<absl::string_view, std::pair<uint32_t, uint32_t>>
        str_index;
    std::vector<uint32_t> str_hits;
  };
  struct PlanGeneric {  // any other atom: node `node`, result at `out`
    int node = -1;
    uint32_t out = 0;
  };
  struct PlanUnit {  // evaluated at most once per message
    bool is_group = false;
    uint32_t index = 0;  // in plan_groups_ or plan_generics_
  };
  struct PlanInstr {
    enum Code : uint8_t { kAnd, kOr, kNot };
    Code code = kAnd;
    uint32_t a = 0, b = 0, dest = 0;
  };
  struct PlanRoute {
    uint32_t deps_begin = 0, deps_end = 0;  // in plan_deps_
    uint32_t code_begin = 0, code_end = 0;  // in plan_code_
    uint32_t result = 0;                    // value index
  };
  static constexpr uint32_t kShapeTemp = 0x80000000u;
  static constexpr uint32_t kNotConsecutive = 0xFFFFFFFFu;
  // Routes of one source whose formulas have the same shape. Operands of
  // `code` are columns (an atom per route) or, with kShapeTemp set,
  // temporaries (instruction j's results for every route).
  struct PlanShape {
    uint32_t source = 0;
    std::vector<PlanInstr> code;
    uint32_t result = 0;  // column or kShapeTemp | instruction
    std::vector<uint32_t> routes;
    std::vector<uint32_t> columns;  // column k of route r: [k * routes + r]
    // Per column, the first value index when route r's atom is that + r
    // (else kNotConsecutive); likewise the first route when routes are
    // consecutive.
    std::vector<uint32_t> column_base;
    uint32_t routes_base = kNotConsecutive;
  };
  void EvaluateUnit(uint32_t unit, const MessageView& message,
                    Scratch* scratch) const;

  std::vector<PlanGroup> plan_groups_;
  std::vector<PlanGeneric> plan_generics_;
  std::vector<PlanUnit> plan_units_;
  std::vector<uint32_t> plan_deps_;
  std::vector<PlanInstr> plan_code_;
  std::vector<PlanRoute> plan_routes_;
  std::vector<PlanShape> plan_shapes_;
  std::vector<std::vector<uint32_t>> plan_source_units_;  // by source
  size_t plan_atoms_ = 0, plan_temps_ = 0, plan_shape_temps_ = 0;

  std::vector<Node> nodes_;
  std::deque<std::string> strings_;  // storage of constant strings
  std::vector<std::string> app_names_, sys_names_;
  absl::flat_hash_map<std::string, int> app_index_, sys_index_, body_index_;
  std::vector<BodyPath> body_paths_;
  std::vector<std::pair<int, int>> qv_keys_;
  absl::flat_hash_map<std::pair<int, int>, int> qv_index_;
};

// Validates a JsonPath (the text after "$body."). Returns false with a reason
// on a compile-time error; sets parsed->junk for trailing text.
bool ParseBodyPath(absl::string_view path, BodyPath* parsed,
                   std::string* error);

// .NET double.TryParse(s, NumberStyles.Any, InvariantCulture).
bool ParseDotNetDouble(absl::string_view s, double* out);

// Newtonsoft's date-time detection for JSON strings.
bool LooksLikeJsonDate(absl::string_view s);

// Ordinal UTF-16 comparison of two UTF-8 strings: <0, 0, >0.
int CompareUtf16(absl::string_view a, absl::string_view b);

// Bump allocator whose blocks are kept across Reset() (no allocation after
// warm-up).
class Arena {
 public:
  char* Alloc(size_t n);
  void Reset() {
    block_ = 0;
    used_ = 0;
  }

 private:
  std::vector<std::unique_ptr<char[]>> blocks_;
  std::vector<size_t> sizes_;
  size_t block_ = 0, used_ = 0;
};

class Scratch : public EvalScratch {
 public:
  explicit Scratch(const Program& program);
  ~Scratch() override;

  // Starts a new message unless `message` is the cached one.
  void Begin(const MessageView& message) {
    absl::Span<const uint8_t> bytes = message.bytes();
    if (bytes.data() != msg_data_ || bytes.size() != msg_size_ ||
        bytes.data() == nullptr) {
      NewMessage(bytes);
    }
    arena_.Reset();
  }
  void Reset() {
    msg_data_ = nullptr;
    msg_size_ = 0;
  }
  // A byte per route source (RouteSet::EvaluateAll), allocated once.
  uint8_t* source_ok(size_t sources) {
    if (source_ok_.size() < sources) source_ok_.resize(sources);
    return source_ok_.data();
  }
  // Allocates `n` bytes valid until the next Begin().
  char* Alloc(size_t n) { return arena_.Alloc(n); }
  // Allocates `n` bytes valid while the message is cached.
  char* AllocForMessage(size_t n) { return message_arena_.Alloc(n); }

 private:
  friend struct Evaluator;
  friend class Program;
  void NewMessage(absl::Span<const uint8_t> bytes);

  struct Impl;
  std::unique_ptr<Impl> impl_;
  const uint8_t* msg_data_ = nullptr;
  size_t msg_size_ = 0;
  uint32_t gen_ = 0;
  std::vector<uint32_t> app_gen_, sys_gen_, body_gen_, qv_gen_;
  std::vector<PropertyValue> app_val_, sys_val_;
  std::vector<Value> body_val_, qv_val_;
  // Program's plan: per unit the generation it was evaluated for, and the
  // atom/temporary results.
  std::vector<uint32_t> unit_gen_;
  std::vector<uint8_t> plan_values_;
  std::vector<uint8_t> shape_temps_;
  std::vector<uint8_t> source_ok_;
  uint32_t body_parsed_gen_ = 0;
  // Whether some application property's key starts with '$' (only such a
  // key can shadow a $body path), for generation dollar_gen_.
  uint32_t dollar_gen_ = 0;
  bool dollar_props_ = false;
  bool body_ok_ = false;
  Arena arena_, message_arena_;
};

}  // namespace edgeroute::query::internal

#endif  // EDGEROUTE_QUERY_PROGRAM_H_
