// A strict (RFC 8259) JSON parser for message bodies that builds a flat tape
// in reused storage: one pass, no allocation after warm-up, lookups walk the
// tape with skip links. Internal to //query.
//
// Not thread-safe: a JsonTape belongs to one evaluation scratch.

#ifndef EDGEROUTE_QUERY_JSON_H_
#define EDGEROUTE_QUERY_JSON_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"

namespace edgeroute::query::internal {

// The members of the top-level object a parse puts on the tape: the names
// the $body paths of a program start with (JsonTape::Parse). Empty keeps
// none. Built once, then read-only (safe to share between threads).
class JsonMemberSet {
 public:
  // Keeps the members named `name` (a key matches by its raw text).
  void Add(absl::string_view name);
  // Keeps every member.
  void AddAll() { all_ = true; }
  bool all() const { return all_; }
  // Bit k is set when some name's length is k modulo 64: a key whose
  // length's bit is clear is not kept (one shift in the parser's loop).
  uint64_t length_bits() const { return length_bits_; }
  // Whether a member whose key, written without escapes, is `key` is kept.
  bool Contains(absl::string_view key) const;

 private:
  bool all_ = false;
  uint64_t length_bits_ = 0;
  std::vector<std::string> names_;
  // All names once there are more than a few.
  absl::flat_hash_set<std::string> large_;
};

class JsonTape {
 public:
  enum Type : uint8_t {
    kObject,
    kArray,
    kString,
    kNumber,
    kTrue,
    kFalse,
    kNull
  };
  enum Flags : uint8_t {
    kEscaped = 1,  // string/key contains backslash escapes
    kHighBit = 2,  // string/key contains non-ASCII bytes
    kInteger = 4,  // number without fraction or exponent
  };
  struct Entry {
    Type type;
    uint8_t flags;
    uint32_t begin;  // strings: contents without quotes; numbers: the token
    uint32_t end;
    uint32_t next;  // index of the entry after this value's subtree
  };
  // Newtonsoft's default JsonReader.MaxDepth.
  static constexpr int kMaxDepth = 64;

  // Parses `text` (which must stay alive while the tape is used). Returns
  // false unless it is exactly one JSON object (surrounded by whitespace).
  // The tape's contents are unspecified after a failed parse.
  bool Parse(absl::string_view text);

  // The same validation of all of `text`, but the top-level object's tape
  // holds only the members `keep` keeps, and those whose key has escapes
  // (which only a lookup can compare); the other members are checked
  // without entries. Their order, duplicates and subtrees are as Parse
  // gives them. A lookup whose first name `keep` holds finds the same
  // value in both tapes.
  bool Parse(absl::string_view text, const JsonMemberSet& keep);

  // The double a kNumber entry denotes: bit for bit what std::strtod reads
  // from its token (correctly rounded; out of range gives +-inf or +-0, and
  // "-0" gives -0.0). Returns false, leaving *out alone, for other types.
  bool NumberValue(const Entry& e, double* out) const;

  absl::string_view text() const { return text_; }
  const Entry& entry(uint32_t i) const { return entries_[i]; }
  absl::string_view raw(const Entry& e) const {
    return text_.substr(e.begin, e.end - e.begin);
  }
  // The children of a container at entry i start at entry i + 1 and end
  // before entry(i).next; each child's own `next` leads to its sibling. In
  // an object each member is a key entry (type kString) followed by its
  // value. Strings keep their escapes: unescape with
  // UnescapeValidJsonString (base/json_string.h).

 private:
  template <bool kFiltered>
  bool ParseImpl(absl::string_view text, const JsonMemberSet* keep);

  absl::string_view text_;
  std::vector<Entry> entries_;
  // A copy of the text followed by NUL bytes, so that the scanners need no
  // end checks: NUL is invalid wherever the parser can meet it.
  std::vector<char> padded_;
  // Where string scans stop in padded_, one bit per byte (see json.cc).
  std::vector<uint64_t> stops_;
  // The offsets of the stop map's set bits, in order (see json.cc).
  std::vector<uint32_t> stop_offsets_;
};

// The double a JSON number token (RFC 8259 grammar, nothing around it)
// denotes, as std::strtod reads it. Exposed for tests.
double JsonNumberValue(absl::string_view token);

}  // namespace edgeroute::query::internal

#endif  // EDGEROUTE_QUERY_JSON_H_
