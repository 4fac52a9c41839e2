#include "query/json.h"

#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace edgeroute::query::internal {
namespace {

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
constexpr StringClass kStringClass;

}  // namespace

namespace {

// Recursive-descent parser over a pre-sized tape. Every function returns
// false on malformed input; `p` always stays within [p, end].
class Parser {
 public:
  Parser(const char* base, const char* end, JsonTape::Entry* tape)
      : base_(base), p_(base), end_(end), tape_(tape) {}

  bool Document() {
    SkipWs();
    if (p_ >= end_ || *p_ != '{') return false;
    if (!Object(0)) return false;
    SkipWs();
    return p_ == end_;
  }
  uint32_t count() const { return count_; }

 private:
  void SkipWs() {
    while (p_ < end_ && static_cast<unsigned char>(*p_) <= ' ' && IsWs(*p_)) {
      ++p_;
    }
  }

  JsonTape::Entry& Add(JsonTape::Type type, uint8_t flags, const char* begin,
                       const char* end) {
    JsonTape::Entry& e = tape_[count_];
    e.type = type;
    e.flags = flags;
    e.begin = uint32_t(begin - base_);
    e.end = uint32_t(end - base_);
    e.next = ++count_;
    return e;
  }

  // *p_ == '"'.
  bool String() {
    const char* begin = ++p_;
    uint8_t flags = 0;
    while (true) {
#if defined(__SSE2__)
      // 16 bytes at a time: stop at '"', '\\', a control character or a
      // non-ASCII byte (signed compare: bytes >= 0x80 are negative).
      while (end_ - p_ >= 16) {
        __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p_));
        __m128i hit =
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                      _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
                         _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
        int mask = _mm_movemask_epi8(hit);
        if (mask != 0) {
          p_ += __builtin_ctz(unsigned(mask));
          goto found;
        }
        p_ += 16;
      }
#endif
      while (p_ < end_ &&
             !kStringClass.special[static_cast<unsigned char>(*p_)]) {
        ++p_;
      }
      if (p_ >= end_) return false;
#if defined(__SSE2__)
    found:
#endif
      unsigned char c = static_cast<unsigned char>(*p_);
      if (c == '"') break;
      if (c >= 0x80) {
        flags |= JsonTape::kHighBit;
        ++p_;
        continue;
      }
      if (c < 0x20) return false;
      // backslash
      flags |= JsonTape::kEscaped;
      if (end_ - p_ < 2) return false;
      char e = p_[1];
      if (e == 'u') {
        if (end_ - p_ < 6 || Hex(p_[2]) < 0 || Hex(p_[3]) < 0 ||
            Hex(p_[4]) < 0 || Hex(p_[5]) < 0) {
          return false;
        }
        p_ += 6;
      } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' ||
                 e == 'n' || e == 'r' || e == 't') {
        p_ += 2;
      } else {
        return false;
      }
    }
    Add(JsonTape::kString, flags, begin, p_);
    ++p_;
    return true;
  }

  bool Number() {
    const char* begin = p_;
    uint8_t flags = JsonTape::kInteger;
    if (*p_ == '-') ++p_;
    if (p_ >= end_) return false;
    if (*p_ == '0') {
      ++p_;
    } else if (*p_ >= '1' && *p_ <= '9') {
      ++p_;
      while (p_ < end_ && IsDigit(*p_)) ++p_;
    } else {
      return false;
    }
    if (p_ < end_ && *p_ == '.') {
      flags = 0;
      ++p_;
      if (p_ >= end_ || !IsDigit(*p_)) return false;
      while (p_ < end_ && IsDigit(*p_)) ++p_;
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      flags = 0;
      ++p_;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ >= end_ || !IsDigit(*p_)) return false;
      while (p_ < end_ && IsDigit(*p_)) ++p_;
    }
    Add(JsonTape::kNumber, flags, begin, p_);
    return true;
  }

  bool Literal(const char* word, size_t len, JsonTape::Type type) {
    if (size_t(end_ - p_) < len || std::memcmp(p_, word, len) != 0) {
      return false;
    }
    Add(type, 0, p_, p_ + len);
    p_ += len;
    return true;
  }

  // Parses one value at *p_ (no leading whitespace).
  bool Value(int depth) {
    if (p_ >= end_) return false;
    switch (*p_) {
      case '"':
        return String();
      case '{':
        return Object(depth);
      case '[':
        return Array(depth);
      case 't':
        return Literal("true", 4, JsonTape::kTrue);
      case 'f':
        return Literal("false", 5, JsonTape::kFalse);
      case 'n':
        return Literal("null", 4, JsonTape::kNull);
      default:
        if (*p_ == '-' || IsDigit(*p_)) return Number();
        return false;
    }
  }

  // *p_ == '{'.
  bool Object(int depth) {
    if (depth >= JsonTape::kMaxDepth) return false;
    uint32_t self = count_;
    Add(JsonTape::kObject, 0, p_, p_);
    ++p_;
    SkipWs();
    if (p_ < end_ && *p_ == '}') {
      ++p_;
    } else {
      while (true) {
        if (p_ >= end_ || *p_ != '"' || !String()) return false;
        SkipWs();
        if (p_ >= end_ || *p_ != ':') return false;
        ++p_;
        SkipWs();
        if (!Value(depth + 1)) return false;
        SkipWs();
        if (p_ >= end_) return false;
        if (*p_ == ',') {
          ++p_;
          SkipWs();
          continue;
        }
        if (*p_ != '}') return false;
        ++p_;
        break;
      }
    }
    tape_[self].end = uint32_t(p_ - base_);
    tape_[self].next = count_;
    return true;
  }

  // *p_ == '['.
  bool Array(int depth) {
    if (depth >= JsonTape::kMaxDepth) return false;
    uint32_t self = count_;
    Add(JsonTape::kArray, 0, p_, p_);
    ++p_;
    SkipWs();
    if (p_ < end_ && *p_ == ']') {
      ++p_;
    } else {
      while (true) {
        if (!Value(depth + 1)) return false;
        SkipWs();
        if (p_ >= end_) return false;
        if (*p_ == ',') {
          ++p_;
          SkipWs();
          continue;
        }
        if (*p_ != ']') return false;
        ++p_;
        break;
      }
    }
    tape_[self].end = uint32_t(p_ - base_);
    tape_[self].next = count_;
    return true;
  }

  const char* const base_;
  const char* p_;
  const char* const end_;
  JsonTape::Entry* const tape_;
  uint32_t count_ = 0;
};

}  // namespace

bool JsonTape::Parse(absl::string_view text) {
  text_ = text;
  // Every value takes at least one byte plus a separator, so n / 2 + 2
  // entries always suffice; the vector only grows.
  size_t max_entries = text.size() / 2 + 2;
  if (entries_.size() < max_entries) entries_.resize(max_entries);
  Parser parser(text.data(), text.data() + text.size(), entries_.data());
  return parser.Document();
}

size_t UnescapeJsonString(absl::string_view raw, char* out) {
  size_t o = 0;
  auto put = [&](uint32_t cp) {
    if (cp < 0x80) {
      out[o++] = char(cp);
    } else if (cp < 0x800) {
      out[o++] = char(0xC0 | (cp >> 6));
      out[o++] = char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out[o++] = char(0xE0 | (cp >> 12));
      out[o++] = char(0x80 | ((cp >> 6) & 0x3F));
      out[o++] = char(0x80 | (cp & 0x3F));
    } else {
      out[o++] = char(0xF0 | (cp >> 18));
      out[o++] = char(0x80 | ((cp >> 12) & 0x3F));
      out[o++] = char(0x80 | ((cp >> 6) & 0x3F));
      out[o++] = char(0x80 | (cp & 0x3F));
    }
  };
  for (size_t i = 0; i < raw.size();) {
    char c = raw[i];
    if (c != '\\' || i + 1 >= raw.size()) {
      out[o++] = c;
      ++i;
      continue;
    }
    char e = raw[i + 1];
    switch (e) {
      case 'b':
        out[o++] = '\b';
        i += 2;
        continue;
      case 'f':
        out[o++] = '\f';
        i += 2;
        continue;
      case 'n':
        out[o++] = '\n';
        i += 2;
        continue;
      case 'r':
        out[o++] = '\r';
        i += 2;
        continue;
      case 't':
        out[o++] = '\t';
        i += 2;
        continue;
      case 'u': {
        if (i + 5 >= raw.size()) {
          out[o++] = c;
          ++i;
          continue;
        }
        uint32_t u = uint32_t(Hex(raw[i + 2]) << 12 | Hex(raw[i + 3]) << 8 |
                              Hex(raw[i + 4]) << 4 | Hex(raw[i + 5]));
        i += 6;
        if (u >= 0xD800 && u < 0xDC00 && i + 5 < raw.size() + 0 &&
            raw[i] == '\\' && raw[i + 1] == 'u') {
          uint32_t l = uint32_t(Hex(raw[i + 2]) << 12 | Hex(raw[i + 3]) << 8 |
                                Hex(raw[i + 4]) << 4 | Hex(raw[i + 5]));
          if (l >= 0xDC00 && l < 0xE000) {
            i += 6;
            put(0x10000 + ((u - 0xD800) << 10) + (l - 0xDC00));
            continue;
          }
        }
        // A lone surrogate is kept as its 3-byte (WTF-8) form, at most as
        // long as the 6-byte escape.
        put(u);
        continue;
      }
      default:  // " \ /
        out[o++] = e;
        i += 2;
        continue;
    }
  }
  return o;
}

}  // namespace edgeroute::query::internal
