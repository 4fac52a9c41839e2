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
};

class Scratch;

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
  // Evaluate without the per-call Begin, for evaluating many roots on one
  // message. REQUIRES: scratch->Begin(message) was called for this message
  // (allocations then live until the next Begin).
  Tri EvaluateStarted(int root, const MessageView& message,
                      Scratch* scratch) const;
  // Value of every node under `root`, one per line (for people).
  std::string Explain(int root, absl::string_view text,
                      const MessageView& message, Scratch* scratch) const;

  std::unique_ptr<Scratch> NewScratch() const;

  size_t app_slots() const { return app_names_.size(); }
  size_t sys_slots() const { return sys_names_.size(); }
  size_t body_slots() const { return body_paths_.size(); }
  size_t qv_slots() const { return qv_keys_.size(); }

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
  // Allocates `n` bytes valid until the next Begin().
  char* Alloc(size_t n) { return arena_.Alloc(n); }
  // Allocates `n` bytes valid while the message is cached.
  char* AllocForMessage(size_t n) { return message_arena_.Alloc(n); }

 private:
  friend struct Evaluator;
  void NewMessage(absl::Span<const uint8_t> bytes);

  struct Impl;
  std::unique_ptr<Impl> impl_;
  const uint8_t* msg_data_ = nullptr;
  size_t msg_size_ = 0;
  uint32_t gen_ = 0;
  std::vector<uint32_t> app_gen_, sys_gen_, body_gen_, qv_gen_;
  std::vector<PropertyValue> app_val_, sys_val_;
  std::vector<Value> body_val_, qv_val_;
  uint32_t body_parsed_gen_ = 0;
  bool body_ok_ = false;
  Arena arena_, message_arena_;
};

}  // namespace edgeroute::query::internal

#endif  // EDGEROUTE_QUERY_PROGRAM_H_
