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

bool JsonTape::Parse(absl::string_view text) {
  text_ = text;
  const char* const base = text.data();
  const char* p = base;
  const char* const end = base + text.size();
  // Every value takes at least one byte plus a separator, so n / 2 + 2
  // entries always suffice; the vector only grows.
  size_t max_entries = text.size() / 2 + 2;
  if (entries_.size() < max_entries) entries_.resize(max_entries);
  Entry* const tape = entries_.data();
  uint32_t count = 0;
  uint32_t stack[kMaxDepth + 1];
  int depth = 0;

#define EDGEROUTE_SKIP_WS()                                              \
  while (p < end && static_cast<unsigned char>(*p) <= ' ' && IsWs(*p)) { \
    ++p;                                                                 \
  }

  // Scans a string whose opening quote is at *p; adds an entry.
  auto string = [&]() -> bool {
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
          break;
        }
        p += 16;
      }
#endif
      while (p < end && !kStringClass.special[static_cast<unsigned char>(*p)]) {
        ++p;
      }
      if (p >= end) return false;
      unsigned char c = static_cast<unsigned char>(*p);
      if (c == '"') break;
      if (c >= 0x80) {
        flags |= kHighBit;
        ++p;
        continue;
      }
      if (c < 0x20) return false;
      // backslash
      flags |= kEscaped;
      if (end - p < 2) return false;
      char e = p[1];
      if (e == 'u') {
        if (end - p < 6 || Hex(p[2]) < 0 || Hex(p[3]) < 0 || Hex(p[4]) < 0 ||
            Hex(p[5]) < 0) {
          return false;
        }
        p += 6;
      } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' ||
                 e == 'n' || e == 'r' || e == 't') {
        p += 2;
      } else {
        return false;
      }
    }
    tape[count] = {kString, flags, uint32_t(begin - base), uint32_t(p - base),
                   count + 1};
    ++count;
    ++p;  // closing quote
    return true;
  };

  EDGEROUTE_SKIP_WS();
  if (p >= end || *p != '{') return false;
  bool expect_key = false;
  // Each iteration parses one value, then the punctuation after it.
  while (true) {
    if (expect_key) {
      // After '{' or ',' in an object: "key" ws ':' ws
      if (p >= end || *p != '"' || !string()) return false;
      EDGEROUTE_SKIP_WS();
      if (p >= end || *p != ':') return false;
      ++p;
      EDGEROUTE_SKIP_WS();
      expect_key = false;
    }
    if (p >= end) return false;
    const char c = *p;
    if (c == '"') {
      if (!string()) return false;
    } else if (c == '{' || c == '[') {
      if (depth >= kMaxDepth) return false;
      stack[depth++] = count;
      tape[count] = {c == '{' ? kObject : kArray, 0, uint32_t(p - base), 0, 0};
      ++count;
      ++p;
      EDGEROUTE_SKIP_WS();
      if (p >= end || *p != (c == '{' ? '}' : ']')) {
        if (c == '{') expect_key = true;
        continue;
      }
      // empty container: closed below
    } else if (c == '-' || IsDigit(c)) {
      const char* begin = p;
      uint8_t flags = kInteger;
      if (*p == '-') ++p;
      if (p >= end) return false;
      if (*p == '0') {
        ++p;
      } else if (*p >= '1' && *p <= '9') {
        ++p;
        while (p < end && IsDigit(*p)) ++p;
      } else {
        return false;
      }
      if (p < end && *p == '.') {
        flags = 0;
        ++p;
        if (p >= end || !IsDigit(*p)) return false;
        while (p < end && IsDigit(*p)) ++p;
      }
      if (p < end && (*p == 'e' || *p == 'E')) {
        flags = 0;
        ++p;
        if (p < end && (*p == '+' || *p == '-')) ++p;
        if (p >= end || !IsDigit(*p)) return false;
        while (p < end && IsDigit(*p)) ++p;
      }
      tape[count] = {kNumber, flags, uint32_t(begin - base), uint32_t(p - base),
                     count + 1};
      ++count;
    } else {
      Type type;
      size_t len;
      const char* word;
      if (c == 't') {
        type = kTrue, len = 4, word = "true";
      } else if (c == 'f') {
        type = kFalse, len = 5, word = "false";
      } else if (c == 'n') {
        type = kNull, len = 4, word = "null";
      } else {
        return false;
      }
      if (size_t(end - p) < len || std::memcmp(p, word, len) != 0) {
        return false;
      }
      tape[count] = {type, 0, uint32_t(p - base), uint32_t(p - base + len),
                     count + 1};
      ++count;
      p += len;
    }
    // Close containers and find the next value.
    while (true) {
      EDGEROUTE_SKIP_WS();
      if (depth == 0) return p == end;
      if (p >= end) return false;
      Entry& top = tape[stack[depth - 1]];
      const char q = *p;
      if (q == ',') {
        ++p;
        EDGEROUTE_SKIP_WS();
        if (top.type == kObject) expect_key = true;
        break;
      }
      if (q == (top.type == kObject ? '}' : ']')) {
        ++p;
        top.end = uint32_t(p - base);
        top.next = count;
        --depth;
        continue;
      }
      return false;
    }
  }
#undef EDGEROUTE_SKIP_WS
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
