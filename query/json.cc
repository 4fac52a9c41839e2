#include "query/json.h"

#include <cfloat>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>
#include <system_error>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace edgeroute::query::internal {
namespace {

// Every scanner may read this far past the byte that stops it (16-byte
// loads, a literal's last byte, a \u escape's hex digits).
constexpr size_t kPadding = 64;

struct ByteTables {
  bool ws[256];
  bool simple_escape[256];  // the byte after '\\', other than 'u'
  int8_t hex[256];          // -1 for non-hex digits
#if !defined(__SSE2__)
  bool string_special[256];
#endif
  constexpr ByteTables() : ws(), simple_escape(), hex() {
    for (int c = 0; c < 256; ++c) {
      ws[c] = c == ' ' || c == '\n' || c == '\r' || c == '\t';
      simple_escape[c] = c == '"' || c == '\\' || c == '/' || c == 'b' ||
                         c == 'f' || c == 'n' || c == 'r' || c == 't';
      hex[c] = c >= '0' && c <= '9'   ? int8_t(c - '0')
               : c >= 'a' && c <= 'f' ? int8_t(c - 'a' + 10)
               : c >= 'A' && c <= 'F' ? int8_t(c - 'A' + 10)
                                      : int8_t(-1);
#if !defined(__SSE2__)
      string_special[c] = c < 0x20 || c == '"' || c == '\\' || c >= 0x80;
#endif
    }
  }
};
constexpr ByteTables kBytes;

inline unsigned char U(char c) { return static_cast<unsigned char>(c); }
inline bool IsDigit(char c) { return unsigned(U(c) - '0') < 10; }
inline int Hex(char c) { return kBytes.hex[U(c)]; }

// Whitespace runs longer than a few bytes are indentation: scan those 16
// bytes at a time.
__attribute__((noinline)) const char* SkipWsSlow(const char* p) {
  for (int i = 0; i < 4; ++i, ++p) {
    if (!kBytes.ws[U(*p)]) return p;
  }
#if defined(__SSE2__)
  while (true) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    __m128i ws =
        _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(' ')),
                                  _mm_cmpeq_epi8(v, _mm_set1_epi8('\n'))),
                     _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\r')),
                                  _mm_cmpeq_epi8(v, _mm_set1_epi8('\t'))));
    unsigned other = ~unsigned(_mm_movemask_epi8(ws)) & 0xFFFF;
    if (other != 0) return p + __builtin_ctz(other);
    p += 16;
  }
#else
  while (kBytes.ws[U(*p)]) ++p;
  return p;
#endif
}

// Compact JSON has no whitespace: one compare decides.
__attribute__((always_inline)) inline const char* SkipWs(const char* p) {
  if (U(*p) > ' ') return p;
  return SkipWsSlow(p);
}

// *p == '\\'. Returns the position after the escape, or nullptr.
__attribute__((always_inline)) inline const char* Escape(const char* p) {
  unsigned char e = U(p[1]);
  if (e == 'u') {
    if ((kBytes.hex[U(p[2])] | kBytes.hex[U(p[3])] | kBytes.hex[U(p[4])] |
         kBytes.hex[U(p[5])]) < 0) {
      return nullptr;
    }
    return p + 6;
  }
  if (!kBytes.simple_escape[e]) return nullptr;
  return p + 2;
}

// p is just after a string's opening quote. Returns the position of the
// closing quote (setting *flags), or nullptr. The padding's NUL ends every
// scan as a control character.
__attribute__((always_inline)) inline const char* StringEnd(const char* p,
                                                            uint8_t* flags) {
  uint8_t f = 0;
#if defined(__SSE2__)
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i backslash = _mm_set1_epi8('\\');
  // ASCII-only strings (the common case) stop at '"', '\\', control
  // characters and non-ASCII bytes: a signed compare with 0x20 catches both
  // of the latter in one instruction.
  while (true) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    __m128i hit = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
        _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
    unsigned mask = unsigned(_mm_movemask_epi8(hit));
    if (mask == 0) {
      p += 16;
      continue;
    }
    p += __builtin_ctz(mask);
    unsigned char c = U(*p);
    if (c == '"') {
      *flags = f;
      return p;
    }
    if (c == '\\') {
      f |= JsonTape::kEscaped;
      p = Escape(p);
      if (p == nullptr) return nullptr;
      continue;
    }
    if (c < 0x20) return nullptr;
    break;
  }
  // Once a non-ASCII byte is seen, the rest of the string is scanned without
  // stopping at more of them.
  f |= JsonTape::kHighBit;
  const __m128i max_control = _mm_set1_epi8(0x1F);
  while (true) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    __m128i control = _mm_cmpeq_epi8(_mm_min_epu8(v, max_control), v);
    __m128i hit = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
        control);
    unsigned mask = unsigned(_mm_movemask_epi8(hit));
    if (mask == 0) {
      p += 16;
      continue;
    }
    p += __builtin_ctz(mask);
    unsigned char c = U(*p);
    if (c == '"') {
      *flags = f;
      return p;
    }
    if (c != '\\') return nullptr;
    f |= JsonTape::kEscaped;
    p = Escape(p);
    if (p == nullptr) return nullptr;
  }
#else
  while (true) {
    while (!kBytes.string_special[U(*p)]) ++p;
    unsigned char c = U(*p);
    if (c == '"') {
      *flags = f;
      return p;
    }
    if (c >= 0x80) {
      f |= JsonTape::kHighBit;
      ++p;
    } else if (c == '\\') {
      f |= JsonTape::kEscaped;
      p = Escape(p);
      if (p == nullptr) return nullptr;
    } else {
      return nullptr;
    }
  }
#endif
}

// The number grammar one byte at a time, for tokens too long for the
// window of NumberEnd.
__attribute__((noinline)) const char* NumberSlow(const char* p,
                                                 uint8_t* flags) {
  uint8_t f = JsonTape::kInteger;
  if (*p == '-') ++p;
  if (*p == '0') {
    ++p;
  } else if (*p >= '1' && *p <= '9') {
    ++p;
    while (IsDigit(*p)) ++p;
  } else {
    return nullptr;
  }
  if (*p == '.') {
    f = 0;
    ++p;
    if (!IsDigit(*p)) return nullptr;
    while (IsDigit(*p)) ++p;
  }
  if (*p == 'e' || *p == 'E') {
    f = 0;
    ++p;
    if (*p == '+' || *p == '-') ++p;
    if (!IsDigit(*p)) return nullptr;
    while (IsDigit(*p)) ++p;
  }
  *flags = f;
  return p;
}

// *p is '-' or a digit. Returns the end of the number token (setting
// *flags), or nullptr. Tokens that fit in 16 bytes after the sign are
// checked against one bit mask of their digits.
__attribute__((always_inline)) inline const char* NumberEnd(const char* p,
                                                            uint8_t* flags) {
#if defined(__SSE2__)
  const char* q = p + (*p == '-');
  __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
  __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('0' - 1)),
                                _mm_cmplt_epi8(v, _mm_set1_epi8('9' + 1)));
  // Bit i set: q[i] is not a digit. Bits 16..31 are set, so every shift by
  // at most 16 leaves a bit for ctz.
  const uint32_t other = ~uint32_t(_mm_movemask_epi8(digit));
  uint32_t i = *q == '0' ? 1 : __builtin_ctz(other);
  if (i == 0) return nullptr;
  if (i >= 16) return NumberSlow(p, flags);
  uint8_t f = JsonTape::kInteger;
  if (*(q + i) == '.') {
    ++i;
    uint32_t j = i + __builtin_ctz(other >> i);
    if (j >= 16) return NumberSlow(p, flags);
    if (j == i) return nullptr;
    i = j;
    f = 0;
  }
  if ((U(q[i]) | 0x20) == 'e') {
    ++i;
    if (q[i] == '+' || q[i] == '-') ++i;
    if (i >= 16) return NumberSlow(p, flags);
    uint32_t j = i + __builtin_ctz(other >> i);
    if (j >= 16) return NumberSlow(p, flags);
    if (j == i) return nullptr;
    i = j;
    f = 0;
  }
  *flags = f;
  return q + i;
#else
  return NumberSlow(p, flags);
#endif
}

// Writes one entry with two 8-byte stores.
__attribute__((always_inline)) inline void Put(JsonTape::Entry* at,
                                               JsonTape::Type type,
                                               uint8_t flags, uint32_t begin,
                                               uint32_t end, uint32_t next) {
  static_assert(sizeof(JsonTape::Entry) == 16 &&
                    offsetof(JsonTape::Entry, flags) == 1 &&
                    offsetof(JsonTape::Entry, begin) == 4 &&
                    offsetof(JsonTape::Entry, end) == 8 &&
                    offsetof(JsonTape::Entry, next) == 12,
                "Entry layout");
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  const uint64_t head =
      uint64_t{type} | uint64_t{flags} << 8 | uint64_t{begin} << 32;
  const uint64_t tail = uint64_t{end} | uint64_t{next} << 32;
  std::memcpy(reinterpret_cast<char*>(at), &head, 8);
  std::memcpy(reinterpret_cast<char*>(at) + 8, &tail, 8);
#else
  at->type = type;
  at->flags = flags;
  at->begin = begin;
  at->end = end;
  at->next = next;
#endif
}

}  // namespace

// One function, with the container stack in an array and gotos between
// states, so that positions and counters stay in registers and nothing
// recurses. Each state tests for the byte compact JSON has there first and
// only then for whitespace. `text` is copied into padded_; offsets are the
// same in both.
bool JsonTape::Parse(absl::string_view text) {
  text_ = text;
  const size_t n = text.size();
  if (n > size_t{0xFFFFFFFF} - kPadding) return false;  // offsets are 32-bit
  if (padded_.size() < n + kPadding) padded_.resize(n + kPadding);
  char* const base = padded_.data();
  if (n != 0) std::memcpy(base, text.data(), n);
  std::memset(base + n, 0, kPadding);
  // A value takes at least one byte plus a separator, except an unclosed
  // container's opening bracket; at most kMaxDepth of those are open.
  const size_t max_entries = n / 2 + 2 + kMaxDepth;
  if (entries_.size() < max_entries) entries_.resize(max_entries);
  Entry* const tape = entries_.data();

  uint32_t count = 0;
  uint32_t open[kMaxDepth];  // tape indexes of the open containers
  int depth = 0;
  bool in_array = false;
  uint8_t flags = 0;
  const char* e = nullptr;
  const char* p = SkipWs(base);
  if (*p != '{') return false;

open_object:
  if (depth >= kMaxDepth) return false;
  open[depth++] = count;
  ++count;
  Put(tape + count - 1, kObject, 0, uint32_t(p - base), uint32_t(p - base),
      count);
  in_array = false;
  ++p;
  if (*p != '"') {
    p = SkipWs(p);
    if (*p == '}') {
      ++p;
      goto close;
    }
    if (*p != '"') return false;
  }
key:  // *p == '"'
  e = StringEnd(p + 1, &flags);
  if (e == nullptr) return false;
  ++count;
  Put(tape + count - 1, kString, flags, uint32_t(p + 1 - base),
      uint32_t(e - base), count);
  p = e + 1;
  if (*p != ':') {
    p = SkipWs(p);
    if (*p != ':') return false;
  }
  ++p;
value:
  if (*p == '"') {
    e = StringEnd(p + 1, &flags);
    if (e == nullptr) return false;
    ++count;
    Put(tape + count - 1, kString, flags, uint32_t(p + 1 - base),
        uint32_t(e - base), count);
    p = e + 1;
  } else if (IsDigit(*p) || *p == '-') {
    e = NumberEnd(p, &flags);
    if (e == nullptr) return false;
    ++count;
    Put(tape + count - 1, kNumber, flags, uint32_t(p - base),
        uint32_t(e - base), count);
    p = e;
  } else {
    switch (*p) {
      case '{':
        goto open_object;
      case '[':
        goto open_array;
      case 't':
        if (std::memcmp(p, "true", 4) != 0) return false;
        ++count;
        Put(tape + count - 1, kTrue, 0, uint32_t(p - base),
            uint32_t(p + 4 - base), count);
        p += 4;
        break;
      case 'f':
        if (std::memcmp(p + 1, "alse", 4) != 0) return false;
        ++count;
        Put(tape + count - 1, kFalse, 0, uint32_t(p - base),
            uint32_t(p + 5 - base), count);
        p += 5;
        break;
      case 'n':
        if (std::memcmp(p, "null", 4) != 0) return false;
        ++count;
        Put(tape + count - 1, kNull, 0, uint32_t(p - base),
            uint32_t(p + 4 - base), count);
        p += 4;
        break;
      case ' ':
      case '\n':
      case '\r':
      case '\t':
        p = SkipWsSlow(p);
        goto value;
      default:
        return false;
    }
  }
  if (in_array) goto array_next;
object_next:
  if (*p == ',') {
    ++p;
    if (*p == '"') goto key;
    p = SkipWs(p);
    if (*p == '"') goto key;
    return false;
  }
  if (*p == '}') {
    ++p;
    goto close;
  }
  if (!kBytes.ws[U(*p)]) return false;
  p = SkipWsSlow(p);
  goto object_next;

array_next:
  if (*p == ',') {
    ++p;
    goto value;
  }
  if (*p == ']') {
    ++p;
    goto close;
  }
  if (!kBytes.ws[U(*p)]) return false;
  p = SkipWsSlow(p);
  goto array_next;

close : {
  const uint32_t self = open[--depth];
  tape[self].end = uint32_t(p - base);
  tape[self].next = count;
}
  if (depth == 0) {
    if (!kBytes.ws[U(*p)]) return p == base + n;
    return SkipWsSlow(p) == base + n;
  }
  in_array = tape[open[depth - 1]].type == kArray;
  if (in_array) goto array_next;
  goto object_next;

open_array:
  if (depth >= kMaxDepth) return false;
  open[depth++] = count;
  ++count;
  Put(tape + count - 1, kArray, 0, uint32_t(p - base), uint32_t(p - base),
      count);
  in_array = true;
  ++p;
  if (*p == ']') {
    ++p;
    goto close;
  }
  if (kBytes.ws[U(*p)]) {
    p = SkipWsSlow(p);
    if (*p == ']') {
      ++p;
      goto close;
    }
  }
  goto value;
}

namespace {

// Exact powers of ten: 10^22 is the largest a double holds exactly.
constexpr double kPow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                             1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                             1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

__attribute__((noinline)) double NumberValueSlow(absl::string_view token) {
  double d = 0;
  auto r = std::from_chars(token.data(), token.data() + token.size(), d);
  if (r.ec == std::errc::result_out_of_range) {
    // strtod gives +-inf or +-0 (or a subnormal) where from_chars gives
    // up; it needs a terminated string.
    std::string copy(token);
    d = std::strtod(copy.c_str(), nullptr);
  }
  return d;
}

}  // namespace

double JsonNumberValue(absl::string_view token) {
#if FLT_EVAL_METHOD == 0
  // Clinger's fast path: when the decimal significand w is exact in a
  // double (w <= 2^53) and 10^|e| is too (|e| <= 22), w * 10^e or w / 10^-e
  // is one correctly rounded IEEE operation, hence what strtod returns.
  const char* p = token.data();
  const char* const end = p + token.size();
  const bool negative = p != end && *p == '-';
  p += negative;
  uint64_t w = 0;
  int digits = 0;  // significant digits in w
  int exponent = 0;
  // Digits are counted before w takes them: past 19, w may wrap to 0.
  for (; p != end && IsDigit(*p); ++p) {
    const unsigned d = unsigned(*p - '0');
    digits += (w | d) != 0;
    w = w * 10 + d;
  }
  if (p != end && *p == '.') {
    for (++p; p != end && IsDigit(*p); ++p) {
      const unsigned d = unsigned(*p - '0');
      digits += (w | d) != 0;
      w = w * 10 + d;
      --exponent;
    }
  }
  if (p != end && (*p == 'e' || *p == 'E')) {
    ++p;
    const bool negative_exponent = p != end && *p == '-';
    if (p != end && (*p == '-' || *p == '+')) ++p;
    int e = 0;
    for (; p != end && IsDigit(*p); ++p) {
      if (e < 100000) e = e * 10 + (*p - '0');
    }
    exponent += negative_exponent ? -e : e;
  }
  if (digits <= 19 && w <= (uint64_t{1} << 53) && exponent >= -22 &&
      exponent <= 22) {
    double d = double(w);
    d = exponent < 0 ? d / kPow10[-exponent] : d * kPow10[exponent];
    return negative ? -d : d;
  }
#endif
  return NumberValueSlow(token);
}

bool JsonTape::NumberValue(const Entry& e, double* out) const {
  if (e.type != kNumber) return false;
  *out = JsonNumberValue(raw(e));
  return true;
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
