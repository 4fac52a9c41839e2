// A strict (RFC 8259) JSON parser for message bodies that builds a flat tape
// in reused storage: one pass, no allocation after warm-up, lookups walk the
// tape with skip links. Internal to //query.
//
// Not thread-safe: a JsonTape belongs to one evaluation scratch.

#ifndef EDGEROUTE_QUERY_JSON_H_
#define EDGEROUTE_QUERY_JSON_H_

#include <cstdint>
#include <vector>

#include "absl/strings/string_view.h"

namespace edgeroute::query::internal {

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
