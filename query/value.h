// The route language's types and values: the static types the type checks
// give every expression (edgeHub's ConditionVisitor types), the 16-byte
// value every expression evaluates to, and the operators and built-ins as
// named enums. Internal to //query.

#ifndef EDGEROUTE_QUERY_VALUE_H_
#define EDGEROUTE_QUERY_VALUE_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace edgeroute::query::internal {

// Static types. A body value ($body.x) is a QueryValue: typed at run time.
enum class StaticType : uint8_t {
  kString,
  kNumber,
  kBool,
  kNull,
  kUndefined,
  kQueryValue,
};

// "string", "number", "bool", "null", "undefined", "body value".
const char* StaticTypeName(StaticType type);

// What a Value holds. Which kinds occur depends on the static type:
//   string:      kString, kNullString (a null-valued property), kUndefined
//   number:      kNumber (NaN is the undefined number)
//   bool:        kBool, kUndefined
//   null:        kNull
//   undefined:   kUndefined
//   body value:  kUndefined (None), kNull (JSON null), kMissing (no such
//                path: edgeHub's static QueryValue.Null), kBool, kNumber,
//                kString, kNullString (a null property shadowing the path)
enum class ValueKind : uint8_t {
  kUndefined,
  kNull,
  kMissing,
  kBool,
  kNumber,
  kString,
  kNullString,
};

// A run-time value. 16 bytes, so that values travel in two registers.
// Strings are UTF-8 that may also hold encoded lone surrogates (from
// "\uD800" escapes, which .NET strings can hold too); they point into the
// message, the program's constants or the evaluation scratch.
struct Value {
  union {
    double number = 0;        // kNumber
    const char* string_data;  // kString
  };
  uint32_t string_size = 0;  // kString
  ValueKind kind = ValueKind::kUndefined;
  bool boolean = false;  // kBool

  absl::string_view str() const {
    return absl::string_view(string_data, string_size);
  }
  void set_str(absl::string_view s) {
    string_data = s.data();
    string_size = uint32_t(s.size());
  }
};
static_assert(sizeof(Value) == 16, "Value should fit two registers");

inline Value MakeUndefined() { return Value(); }
inline Value MakeNull() {
  Value v;
  v.kind = ValueKind::kNull;
  return v;
}
inline Value MakeNumber(double d) {
  Value v;
  v.kind = ValueKind::kNumber;
  v.number = d;
  return v;
}
inline Value MakeBool(bool b) {
  Value v;
  v.kind = ValueKind::kBool;
  v.boolean = b;
  return v;
}
inline Value MakeString(absl::string_view s) {
  Value v;
  v.kind = ValueKind::kString;
  v.set_str(s);
  return v;
}

// The comparison operators ('<>' is kNe). The route-set plan keeps one
// table per comparison, indexed by this order.
enum class Comparison : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe };
inline constexpr int kComparisons = 6;

// The comparison that gives the same result with the operands swapped:
// c < v is v > c.
inline Comparison SwapOperands(Comparison c) {
  switch (c) {
    case Comparison::kLt:
      return Comparison::kGt;
    case Comparison::kLe:
      return Comparison::kGe;
    case Comparison::kGt:
      return Comparison::kLt;
    case Comparison::kGe:
      return Comparison::kLe;
    default:
      return c;  // = and != are symmetric
  }
}

// Whether `order` (<0, 0, >0: left against right) satisfies `c`.
inline bool Satisfies(Comparison c, int order) {
  switch (c) {
    case Comparison::kEq:
      return order == 0;
    case Comparison::kNe:
      return order != 0;
    case Comparison::kLt:
      return order < 0;
    case Comparison::kLe:
      return order <= 0;
    case Comparison::kGt:
      return order > 0;
    default:
      return order >= 0;
  }
}

// The arithmetic operators (IEEE doubles; % is the C# remainder).
enum class Arithmetic : uint8_t {
  kAdd,
  kSubtract,
  kMultiply,
  kDivide,
  kRemainder,
};

// The built-in functions (see builtins.cc; concat compiles to Op::kConcat).
enum class Builtin : uint8_t {
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

}  // namespace edgeroute::query::internal

#endif  // EDGEROUTE_QUERY_VALUE_H_
