// The JSON parser as it was before it was tuned, kept to test the tuned one
// against: json_test and json_fuzzer require both to give the same result
// and the same tape for every input. Test-only (//query:json_reference is
// testonly); header-only, so scripts/fuzz.sh never compiles it into the
// product.

#ifndef EDGEROUTE_QUERY_JSON_REFERENCE_H_
#define EDGEROUTE_QUERY_JSON_REFERENCE_H_

#include <cstdint>
#include <cstring>
#include <vector>

#include "absl/strings/string_view.h"
#include "query/json.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace edgeroute::query::internal::reference {

inline bool IsWs(char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}
inline bool IsDigit(char c) { return c >= '0' && c <= '9'; }
inline int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Bytes that end the fast scan of a string: '"', '\\', control characters
// and non-ASCII bytes (to set kHighBit).
struct StringClass {
  bool special[256];
  constexpr StringClass() : special() {
    for (int c = 0; c < 256; ++c) {
      special[c] = c < 0x20 || c == '"' || c == '\\' || c >= 0x80;
    }
  }
};
inline constexpr StringClass kStringClass;

// Recursive-descent parser over a pre-sized tape. Each function takes the
// position of the value it parses and returns the position after it, or
// nullptr on malformed input. Positions travel in registers: the tape's
// uint8_t stores may alias any member, so members are copied to locals
// before the loops.
class Parser {
 public:
  Parser(const char* base, const char* end, JsonTape::Entry* tape)
      : base_(base), end_(end), tape_(tape) {}

  bool Document() {
    const char* p = SkipWs(base_);
    if (p >= end_ || *p != '{') return false;
    p = Object(p, 0);
    if (p == nullptr) return false;
    return SkipWs(p) == end_;
  }

 private:
  __attribute__((always_inline)) const char* SkipWs(const char* p) const {
    const char* const end = end_;
    while (p < end && static_cast<unsigned char>(*p) <= ' ' && IsWs(*p)) ++p;
    return p;
  }

  __attribute__((always_inline)) uint32_t Add(JsonTape::Type type,
                                              uint8_t flags, const char* begin,
                                              const char* end) {
    const uint32_t index = count_++;
    JsonTape::Entry e;
    e.type = type;
    e.flags = flags;
    e.begin = uint32_t(begin - base_);
    e.end = uint32_t(end - base_);
    e.next = index + 1;
    tape_[index] = e;
    return index;
  }

  // *p == '"'.
  __attribute__((always_inline)) const char* String(const char* p) {
    const char* const end = end_;
    const char* begin = ++p;
    uint8_t flags = 0;
    while (true) {
#if defined(__SSE2__)
      // 16 bytes at a time: stop at '"', '\\', a control character or a
      // non-ASCII byte (signed compare: bytes >= 0x80 are negative).
      while (end - p >= 16) {
        __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        __m128i hit =
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                      _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
                         _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
        int mask = _mm_movemask_epi8(hit);
        if (mask != 0) {
          p += __builtin_ctz(unsigned(mask));
          goto found;
        }
        p += 16;
      }
#endif
      while (p < end && !kStringClass.special[static_cast<unsigned char>(*p)]) {
        ++p;
      }
      if (p >= end) return nullptr;
#if defined(__SSE2__)
    found:
#endif
      unsigned char c = static_cast<unsigned char>(*p);
      if (c == '"') break;
      if (c >= 0x80) {
        flags |= JsonTape::kHighBit;
        ++p;
        continue;
      }
      if (c < 0x20) return nullptr;
      // backslash
      flags |= JsonTape::kEscaped;
      if (end - p < 2) return nullptr;
      char e = p[1];
      if (e == 'u') {
        if (end - p < 6 || Hex(p[2]) < 0 || Hex(p[3]) < 0 || Hex(p[4]) < 0 ||
            Hex(p[5]) < 0) {
          return nullptr;
        }
        p += 6;
      } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' ||
                 e == 'n' || e == 'r' || e == 't') {
        p += 2;
      } else {
        return nullptr;
      }
    }
    Add(JsonTape::kString, flags, begin, p);
    return p + 1;
  }

  __attribute__((always_inline)) const char* Number(const char* p) {
    const char* const end = end_;
    const char* begin = p;
    uint8_t flags = JsonTape::kInteger;
    if (*p == '-') ++p;
    if (p >= end) return nullptr;
    if (*p == '0') {
      ++p;
    } else if (*p >= '1' && *p <= '9') {
      ++p;
      while (p < end && IsDigit(*p)) ++p;
    } else {
      return nullptr;
    }
    if (p < end && *p == '.') {
      flags = 0;
      ++p;
      if (p >= end || !IsDigit(*p)) return nullptr;
      while (p < end && IsDigit(*p)) ++p;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
      flags = 0;
      ++p;
      if (p < end && (*p == '+' || *p == '-')) ++p;
      if (p >= end || !IsDigit(*p)) return nullptr;
      while (p < end && IsDigit(*p)) ++p;
    }
    Add(JsonTape::kNumber, flags, begin, p);
    return p;
  }

  const char* Literal(const char* p, const char* word, size_t len,
                      JsonTape::Type type) {
    if (size_t(end_ - p) < len || std::memcmp(p, word, len) != 0) {
      return nullptr;
    }
    Add(type, 0, p, p + len);
    return p + len;
  }

  // Parses one value at *p (no leading whitespace).
  const char* Value(const char* p, int depth) {
    if (p >= end_) return nullptr;
    switch (*p) {
      case '"':
        return String(p);
      case '{':
        return Object(p, depth);
      case '[':
        return Array(p, depth);
      case 't':
        return Literal(p, "true", 4, JsonTape::kTrue);
      case 'f':
        return Literal(p, "false", 5, JsonTape::kFalse);
      case 'n':
        return Literal(p, "null", 4, JsonTape::kNull);
      default:
        if (*p == '-' || IsDigit(*p)) return Number(p);
        return nullptr;
    }
  }

  // *p == '{'.
  const char* Object(const char* p, int depth) {
    if (depth >= JsonTape::kMaxDepth) return nullptr;
    const uint32_t self = Add(JsonTape::kObject, 0, p, p);
    p = SkipWs(p + 1);
    if (p < end_ && *p == '}') {
      ++p;
    } else {
      while (true) {
        if (p >= end_ || *p != '"') return nullptr;
        p = String(p);
        if (p == nullptr) return nullptr;
        p = SkipWs(p);
        if (p >= end_ || *p != ':') return nullptr;
        p = SkipWs(p + 1);
        // Scalars inline; containers recurse.
        if (p >= end_) return nullptr;
        if (*p == '"') {
          p = String(p);
        } else if (*p == '-' || IsDigit(*p)) {
          p = Number(p);
        } else {
          p = Value(p, depth + 1);
        }
        if (p == nullptr) return nullptr;
        p = SkipWs(p);
        if (p >= end_) return nullptr;
        if (*p == ',') {
          p = SkipWs(p + 1);
          continue;
        }
        if (*p != '}') return nullptr;
        ++p;
        break;
      }
    }
    tape_[self].end = uint32_t(p - base_);
    tape_[self].next = count_;
    return p;
  }

  // *p == '['.
  const char* Array(const char* p, int depth) {
    if (depth >= JsonTape::kMaxDepth) return nullptr;
    const uint32_t self = Add(JsonTape::kArray, 0, p, p);
    p = SkipWs(p + 1);
    if (p < end_ && *p == ']') {
      ++p;
    } else {
      while (true) {
        p = Value(p, depth + 1);
        if (p == nullptr) return nullptr;
        p = SkipWs(p);
        if (p >= end_) return nullptr;
        if (*p == ',') {
          p = SkipWs(p + 1);
          continue;
        }
        if (*p != ']') return nullptr;
        ++p;
        break;
      }
    }
    tape_[self].end = uint32_t(p - base_);
    tape_[self].next = count_;
    return p;
  }

  const char* const base_;
  const char* const end_;
  JsonTape::Entry* const tape_;
  uint32_t count_ = 0;
};

// Parses `text` into `tape` (resized to the entries it holds) and returns
// whether it is exactly one JSON object; `tape` is meaningless on failure.
// The old JsonTape::Parse sized the tape n / 2 + 2, which an unclosed run of
// '[' overruns before the parse fails; the extra kMaxDepth is the fix.
inline bool Parse(absl::string_view text, std::vector<JsonTape::Entry>* tape) {
  tape->assign(text.size() / 2 + 2 + JsonTape::kMaxDepth, JsonTape::Entry());
  Parser parser(text.data(), text.data() + text.size(), tape->data());
  if (!parser.Document()) return false;
  tape->resize((*tape)[0].next);
  return true;
}

// A full tape (from Parse) cut down to what JsonTape::Parse(text, keep)
// gives: the top-level members whose key has escapes or that `keep` keeps,
// in order, with their subtrees and links renumbered.
inline std::vector<JsonTape::Entry> KeepMembers(
    const std::vector<JsonTape::Entry>& full, absl::string_view text,
    const JsonMemberSet& keep) {
  if (keep.all()) return full;
  std::vector<JsonTape::Entry> out;
  out.push_back(full[0]);
  for (uint32_t k = 1; k < full[0].next; k = full[k + 1].next) {
    const JsonTape::Entry& key = full[k];
    if (!(key.flags & JsonTape::kEscaped) &&
        !keep.Contains(text.substr(key.begin, key.end - key.begin))) {
      continue;
    }
    // The member's entries keep their order; links move down by what was
    // left out before them.
    const uint32_t removed = k - uint32_t(out.size());
    for (uint32_t e = k; e < full[k + 1].next; ++e) {
      JsonTape::Entry copy = full[e];
      copy.next -= removed;
      out.push_back(copy);
    }
  }
  out[0].next = uint32_t(out.size());
  return out;
}

}  // namespace edgeroute::query::internal::reference

#endif  // EDGEROUTE_QUERY_JSON_REFERENCE_H_
