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
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
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
  constexpr ByteTables() : ws(), simple_escape(), hex() {
    for (int c = 0; c < 256; ++c) {
      ws[c] = c == ' ' || c == '\n' || c == '\r' || c == '\t';
      simple_escape[c] = c == '"' || c == '\\' || c == '/' || c == 'b' ||
                         c == 'f' || c == 'n' || c == 'r' || c == 't';
      hex[c] = c >= '0' && c <= '9'   ? int8_t(c - '0')
               : c >= 'a' && c <= 'f' ? int8_t(c - 'a' + 10)
               : c >= 'A' && c <= 'F' ? int8_t(c - 'A' + 10)
                                      : int8_t(-1);
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

// What a scanner found: the offset where the token ends (0, where no token
// can end, if it is malformed) and its flags. Returned by value so that both
// stay in registers.
struct Scan {
  size_t end;
  uint8_t flags;
};

// The stop map: bit i of word i / 64 is set when byte i of the padded text
// is '"', '\\', a control character or a non-ASCII byte, where a string
// scan stops. Building it for the whole text first costs less than a vector
// scan per string, which pays a setup for every short key. It covers bytes
// 0..n (the first padding NUL stops every scan); building it reads at most
// 63 bytes past n.
#if !defined(__SSE2__)
void BuildStopMapScalar(const char* base, size_t n, uint64_t* map) {
  for (size_t w = 0; w < (n + 63) / 64; ++w) {
    uint64_t m = 0;
    for (int i = 0; i < 64; ++i) {
      const unsigned char c = U(base[w * 64 + size_t(i)]);
      if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) m |= uint64_t{1} << i;
    }
    map[w] = m;
  }
}
#endif

#if defined(__SSE2__)
// One compare finds '"', control characters and non-ASCII bytes: x ^ 0x02
// maps '"' (0x22) to 0x20 and 0x00-0x1F onto themselves, and nothing else
// below 0x21; non-ASCII bytes are negative as signed.
__attribute__((always_inline)) inline unsigned StopMask16(__m128i v) {
  const __m128i quote_or_control = _mm_cmplt_epi8(
      _mm_xor_si128(v, _mm_set1_epi8(0x02)), _mm_set1_epi8(0x21));
  const __m128i backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'));
  return unsigned(_mm_movemask_epi8(_mm_or_si128(quote_or_control, backslash)));
}

void BuildStopMapSse2(const char* base, size_t n, uint64_t* map) {
  for (size_t w = 0; w < (n + 63) / 64; ++w) {
    const __m128i* b = reinterpret_cast<const __m128i*>(base + w * 64);
    const uint64_t m0 = StopMask16(_mm_loadu_si128(b));
    const uint64_t m1 = StopMask16(_mm_loadu_si128(b + 1));
    const uint64_t m2 = StopMask16(_mm_loadu_si128(b + 2));
    const uint64_t m3 = StopMask16(_mm_loadu_si128(b + 3));
    map[w] = m0 | m1 << 16 | m2 << 32 | m3 << 48;
  }
}
#endif

#if defined(__x86_64__) && defined(__GNUC__)
#define EDGEROUTE_JSON_AVX2 1
// The build targets baseline x86-64; this one function is compiled for
// AVX2 and chosen at run time.
__attribute__((target("avx2"))) void BuildStopMapAvx2(const char* base,
                                                      size_t n, uint64_t* map) {
  const __m256i flip = _mm256_set1_epi8(0x02);
  const __m256i limit = _mm256_set1_epi8(0x21);
  const __m256i backslash = _mm256_set1_epi8('\\');
  for (size_t w = 0; w < (n + 63) / 64; ++w) {
    const __m256i* b = reinterpret_cast<const __m256i*>(base + w * 64);
    const __m256i lo = _mm256_loadu_si256(b);
    const __m256i hi = _mm256_loadu_si256(b + 1);
    const __m256i stop_lo =
        _mm256_or_si256(_mm256_cmpgt_epi8(limit, _mm256_xor_si256(lo, flip)),
                        _mm256_cmpeq_epi8(lo, backslash));
    const __m256i stop_hi =
        _mm256_or_si256(_mm256_cmpgt_epi8(limit, _mm256_xor_si256(hi, flip)),
                        _mm256_cmpeq_epi8(hi, backslash));
    map[w] = uint64_t(uint32_t(_mm256_movemask_epi8(stop_lo))) |
             uint64_t(uint32_t(_mm256_movemask_epi8(stop_hi))) << 32;
  }
}

bool HaveAvx2() {
  static const bool have = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
  }();
  return have;
}
#endif

void BuildStopMap(const char* base, size_t n, uint64_t* map) {
  // The builders cover the words holding text; a word that starts at n
  // holds only padding, every byte of which is a stop.
  if (n % 64 == 0) map[n / 64] = ~uint64_t{0};
#if defined(EDGEROUTE_JSON_AVX2)
  if (HaveAvx2()) return BuildStopMapAvx2(base, n, map);
#endif
#if defined(__SSE2__)
  BuildStopMapSse2(base, n, map);
#else
  BuildStopMapScalar(base, n, map);
#endif
}

// The stop map's set bits as offsets, in order, ending with two copies of
// `n` (whose padding NUL is a stop, so no scan passes it). The parser finds
// a string's closing quote by reading the offset after its opening one: a
// load whose address depends on a counter, not on where the previous token
// ended, so that tokens are no longer one long chain of dependent loads
// (simdjson's structural index, for stops only). Writes up to 16 entries
// past the last offset (up to 32 with AVX-512); returns the count.
#if defined(EDGEROUTE_JSON_AVX2)
__attribute__((target("avx2,bmi,bmi2,popcnt"))) size_t ListStopsBmi(
    const uint64_t* map, size_t words, uint32_t* out) {
  uint32_t* p = out;
  for (size_t w = 0; w < words; ++w) {
    uint64_t bits = map[w];
    const uint32_t base = uint32_t(w * 64);
    const int count = __builtin_popcountll(bits);
    // Eight at a time without a branch per bit (tzcnt of 0 is 64), unrolled
    // (GCC keeps these loops otherwise).
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {
      p[k] = base + uint32_t(_tzcnt_u64(bits));
      bits = _blsr_u64(bits);
    }
    if (count > 8) {
#pragma GCC unroll 8
      for (int k = 8; k < 16; ++k) {
        p[k] = base + uint32_t(_tzcnt_u64(bits));
        bits = _blsr_u64(bits);
      }
      for (int k = 16; bits != 0; ++k) {
        p[k] = base + uint32_t(_tzcnt_u64(bits));
        bits = _blsr_u64(bits);
      }
    }
    p += count;
  }
  return size_t(p - out);
}

// With AVX-512 VBMI2 (IndexVbmi2), one compress of the byte indexes 0..63
// by a word's bits lists them all at once.
#define EDGEROUTE_AVX512 target("avx512f,avx512bw,avx512vbmi2,popcnt")
// base + each byte of 16-byte lane kLane of `packed`, as 32-bit lanes,
// straight from the register. (The masked forms keep GCC's intrinsics from
// reading an undefined register.)
template <int kLane>
__attribute__((EDGEROUTE_AVX512, always_inline)) inline __m512i Widen(
    __m512i base, __m512i packed) {
  return _mm512_add_epi32(
      base, _mm512_maskz_cvtepu8_epi32(
                __mmask16(0xFFFF),
                _mm512_maskz_extracti32x4_epi32(__mmask8(0xF), packed, kLane)));
}

// Copy, stop map and stop list in one pass with AVX-512: each 64-byte block
// of the text is loaded once (the last one masked, which reads nothing past
// the text and gives NULs), stored whole into the padded copy, classified
// as BuildStopMap does, and its stops listed as ListStops does. Whole
// 64-byte stores and loads also spare the later loads of the copy a wait
// for narrower overlapping stores to reach the cache. Writes `words` + 1
// blocks of `padded` (the last all NULs) and `words` words of `map`;
// returns the number of offsets (see ListStops for what it writes past
// them).
__attribute__((EDGEROUTE_AVX512)) size_t IndexVbmi2(const char* text, size_t n,
                                                    size_t words, char* padded,
                                                    uint64_t* map,
                                                    uint32_t* out) {
  static constexpr struct Indexes {
    uint8_t bytes[64];
    constexpr Indexes() : bytes() {
      for (int k = 0; k < 64; ++k) bytes[k] = uint8_t(k);
    }
  } kIndexes;
  const __m512i indexes = _mm512_loadu_si512(kIndexes.bytes);
  const __m512i flip = _mm512_set1_epi8(0x02);
  const __m512i limit = _mm512_set1_epi8(0x21);
  const __m512i backslash = _mm512_set1_epi8('\\');
  uint32_t* p = out;
  for (size_t w = 0; w < words; ++w) {
    const size_t at = w * 64;
    const size_t left = n - at;  // the last block: 0..63
    const __mmask64 valid =
        left >= 64 ? ~__mmask64{0} : (__mmask64{1} << left) - 1;
    const __m512i v = _mm512_maskz_loadu_epi8(valid, text + at);
    _mm512_storeu_si512(padded + at, v);
    const uint64_t bits =
        _mm512_cmplt_epi8_mask(_mm512_xor_si512(v, flip), limit) |
        _mm512_cmpeq_epi8_mask(v, backslash);
    map[w] = bits;
    const int count = __builtin_popcountll(bits);
    const __m512i packed = _mm512_maskz_compress_epi8(bits, indexes);
    const __m512i base = _mm512_set1_epi32(int(at));
    _mm512_storeu_si512(p, Widen<0>(base, packed));
    if (count > 16) {
      _mm512_storeu_si512(p + 16, Widen<1>(base, packed));
      if (count > 32) {
        _mm512_storeu_si512(p + 32, Widen<2>(base, packed));
        _mm512_storeu_si512(p + 48, Widen<3>(base, packed));
      }
    }
    p += count;
  }
  _mm512_storeu_si512(padded + words * 64, _mm512_setzero_si512());
  return size_t(p - out);
}

bool HaveAvx512Vbmi2() {
  static const bool have = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vbmi2") != 0 &&
           __builtin_cpu_supports("avx512bw") != 0;
  }();
  return have;
}
#endif

size_t ListStopsScalar(const uint64_t* map, size_t words, uint32_t* out) {
  uint32_t* p = out;
  for (size_t w = 0; w < words; ++w) {
    for (uint64_t bits = map[w]; bits != 0; bits &= bits - 1) {
      *p++ = uint32_t(w * 64 + unsigned(__builtin_ctzll(bits)));
    }
  }
  return size_t(p - out);
}

void ListStops(const uint64_t* map, size_t n, uint32_t* out) {
  const size_t words = n / 64 + 1;
  size_t count;
#if defined(EDGEROUTE_JSON_AVX2)
  if (HaveAvx2()) {
    count = ListStopsBmi(map, words, out);
  } else {
    count = ListStopsScalar(map, words, out);
  }
#else
  count = ListStopsScalar(map, words, out);
#endif
  out[count] = uint32_t(n);
  out[count + 1] = uint32_t(n);
}

// The rest of a string after its first non-ASCII byte at p: stops only at
// '"', '\\' and control characters.
__attribute__((noinline)) Scan NonAsciiStringEnd(const char* base,
                                                 const char* p, uint8_t f) {
  f |= JsonTape::kHighBit;
  while (true) {
#if defined(__SSE2__)
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i control =
        _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1F)), v);
    const __m128i hit =
        _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                  _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
                     control);
    const unsigned mask = unsigned(_mm_movemask_epi8(hit));
    if (mask == 0) {
      p += 16;
      continue;
    }
    p += __builtin_ctz(mask);
#else
    while (U(*p) >= 0x20 && *p != '"' && *p != '\\') ++p;
#endif
    const unsigned char c = U(*p);
    if (c == '"') return {size_t(p - base), f};
    if (c != '\\') return {0, f};
    f |= JsonTape::kEscaped;
    p = Escape(p);
    if (p == nullptr) return {0, f};
  }
}

// StringEnd's loop, for strings that are long, escaped or not ASCII.
__attribute__((noinline)) Scan StringEndSlow(const char* base,
                                             const uint64_t* stops, size_t i) {
  uint8_t f = 0;
  while (true) {
    const uint64_t bits = stops[i / 64] >> (i % 64);
    if (bits == 0) {
      i = (i | 63) + 1;
      continue;
    }
    i += unsigned(__builtin_ctzll(bits));
    const unsigned char c = U(base[i]);
    if (c == '"') return {i, f};
    if (c == '\\') {
      f |= JsonTape::kEscaped;
      const char* q = Escape(base + i);
      if (q == nullptr) return {0, f};
      i = size_t(q - base);
      continue;
    }
    if (c < 0x20) return {0, f};
    return NonAsciiStringEnd(base, base + i, f);
  }
}

// base[i] is a string's opening quote, which is a stop: the common case,
// inline. The offset after it in the list is the closing quote unless the
// string is escaped, not ASCII or malformed (StringEndSlow decides those).
// Stops before i (whitespace control characters, a string StringEndSlow
// read) are skipped first. On success sets *j past both quotes and *span
// to (begin << 32 | end), both taken from the list rather than from i.
__attribute__((always_inline)) inline bool QuickString(const char* base,
                                                       const uint32_t* offsets,
                                                       size_t i, size_t* j,
                                                       uint64_t* span) {
  size_t k = *j;
  while (offsets[k] < i) ++k;
  *j = k;
  const uint32_t open = offsets[k];
  const uint32_t close = offsets[k + 1];
  if (base[close] != '"') return false;
  *j = k + 2;
  *span = uint64_t{open + 1} << 32 | close;
  return true;
}

// The whole number grammar one byte at a time, for what QuickNumber leaves.
__attribute__((noinline)) Scan NumberSlow(const char* base, const char* p) {
  uint8_t f = JsonTape::kInteger;
  if (*p == '-') ++p;
  if (*p == '0') {
    ++p;
  } else if (*p >= '1' && *p <= '9') {
    ++p;
    while (IsDigit(*p)) ++p;
  } else {
    return {0, f};
  }
  if (*p == '.') {
    f = 0;
    ++p;
    if (!IsDigit(*p)) return {0, f};
    while (IsDigit(*p)) ++p;
  }
  if (*p == 'e' || *p == 'E') {
    f = 0;
    ++p;
    if (*p == '+' || *p == '-') ++p;
    if (!IsDigit(*p)) return {0, f};
    while (IsDigit(*p)) ++p;
  }
  return {size_t(p - base), f};
}

// base[i] is '-' or a digit. The common case, inline: an integer or a
// decimal fraction without exponent that fits in the 16 bytes after the
// sign, checked against one bit mask of their digits. Sets *end and
// *type_flags (kNumber | flags << 8). Otherwise NumberSlow decides.
__attribute__((always_inline)) inline bool QuickNumber(const char* base,
                                                       size_t i, size_t* end,
                                                       uint32_t* type_flags) {
#if defined(__SSE2__)
  const char* const q = base + i + (base[i] == '-');
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
  // Adding 0x50 moves '0'..'9', and nothing else, to -128..-119.
  const __m128i digit =
      _mm_cmpgt_epi8(_mm_set1_epi8(-118), _mm_add_epi8(v, _mm_set1_epi8(0x50)));
  // Bit k set: q[k] is not a digit. Bits 16..31 are set, so ctz always
  // finds one.
  const uint32_t other = ~uint32_t(_mm_movemask_epi8(digit));
  uint32_t k = uint32_t(__builtin_ctz(other));
  // No digit, a leading zero before more digits, or a long run.
  if (k - 1 >= 15 || (*q == '0' && k > 1)) return false;
  uint32_t tf = JsonTape::kNumber | JsonTape::kInteger << 8;
  if (q[k] == '.') {
    const uint32_t j = k + 1 + uint32_t(__builtin_ctz(other >> (k + 1)));
    if (j == k + 1 || j >= 16) return false;
    k = j;
    tf = JsonTape::kNumber;
  }
  if ((U(q[k]) | 0x20) == 'e') return false;
  *end = size_t(q + k - base);
  *type_flags = tf;
  return true;
#else
  return false;
#endif
}

// Two bytes as one little-endian number, so that a compare with
// (a | b << 8) tests for "ab".
__attribute__((always_inline)) inline uint32_t Load16(const char* p) {
  return uint32_t{U(p[0])} | uint32_t{U(p[1])} << 8;
}

// Writes one entry in three stores, the first covering type, flags, padding
// and begin. type_flags is type | flags << 8.
__attribute__((always_inline)) inline void Put(JsonTape::Entry* at,
                                               uint32_t type_flags,
                                               size_t begin, size_t end,
                                               uint32_t next) {
  static_assert(sizeof(JsonTape::Entry) == 16 &&
                    offsetof(JsonTape::Entry, flags) == 1 &&
                    offsetof(JsonTape::Entry, begin) == 4 &&
                    offsetof(JsonTape::Entry, end) == 8 &&
                    offsetof(JsonTape::Entry, next) == 12,
                "Entry layout");
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  const uint64_t head = uint64_t{type_flags} | uint64_t{uint32_t(begin)} << 32;
  std::memcpy(reinterpret_cast<char*>(at), &head, 8);
#else
  at->type = JsonTape::Type(type_flags & 0xFF);
  at->flags = uint8_t(type_flags >> 8);
  at->begin = uint32_t(begin);
#endif
  at->end = uint32_t(end);
  at->next = next;
}

// Put for Value: writes the entry at *out and advances *out and *next, or
// does nothing when the caller only checks the value.
template <bool kEmit>
__attribute__((always_inline)) inline void Emit(JsonTape::Entry** out,
                                                uint32_t* next,
                                                uint32_t type_flags,
                                                size_t begin, size_t end) {
  if (kEmit) Put((*out)++, type_flags, begin, end, (*next)++);
}

// What Value found.
enum class Step { kScalar, kObject, kArray, kError };

// Parses the value at base[*i] (after optional whitespace) if it is a
// scalar, writing its entry; for a container, leaves *i at the bracket for
// the caller. Inlined once per container kind, so that each caller knows
// where to go next without a flag. Without kEmit it only checks the value
// (out and next are left alone).
template <bool kEmit>
__attribute__((always_inline)) inline Step Value(
    const char* base, const uint64_t* stops, const uint32_t* offsets,
    size_t* j_out, size_t* i_out, JsonTape::Entry** out, uint32_t* next) {
  size_t i = *i_out;
  size_t end = 0;
  uint32_t type_flags = 0;
  Scan scan;
  while (true) {
    const char c = base[i];
    if (c == '"') {
      uint64_t span;
      if (__builtin_expect(QuickString(base, offsets, i, j_out, &span), 1)) {
        Emit<kEmit>(out, next, JsonTape::kString, span >> 32, uint32_t(span));
        *i_out = uint32_t(span) + 1;
        return Step::kScalar;
      }
      scan = StringEndSlow(base, stops, i + 1);
      if (scan.end == 0) return Step::kError;
      Emit<kEmit>(out, next, JsonTape::kString | uint32_t{scan.flags} << 8,
                  i + 1, scan.end);
      *i_out = scan.end + 1;
      return Step::kScalar;
    }
    if (IsDigit(c) || c == '-') {
      if (__builtin_expect(QuickNumber(base, i, &end, &type_flags), 1)) {
        Emit<kEmit>(out, next, type_flags, i, end);
        *i_out = end;
        return Step::kScalar;
      }
      scan = NumberSlow(base, base + i);
      if (scan.end == 0) return Step::kError;
      Emit<kEmit>(out, next, JsonTape::kNumber | uint32_t{scan.flags} << 8, i,
                  scan.end);
      *i_out = scan.end;
      return Step::kScalar;
    }
    switch (c) {
      case '{':
        *i_out = i;
        return Step::kObject;
      case '[':
        *i_out = i;
        return Step::kArray;
      case 't':
        if (std::memcmp(base + i, "true", 4) != 0) return Step::kError;
        Emit<kEmit>(out, next, JsonTape::kTrue, i, i + 4);
        *i_out = i + 4;
        return Step::kScalar;
      case 'f':
        if (std::memcmp(base + i + 1, "alse", 4) != 0) return Step::kError;
        Emit<kEmit>(out, next, JsonTape::kFalse, i, i + 5);
        *i_out = i + 5;
        return Step::kScalar;
      case 'n':
        if (std::memcmp(base + i, "null", 4) != 0) return Step::kError;
        Emit<kEmit>(out, next, JsonTape::kNull, i, i + 4);
        *i_out = i + 4;
        return Step::kScalar;
      case ' ':
      case '\n':
      case '\r':
      case '\t':
        i = size_t(SkipWsSlow(base + i) - base);
        continue;
      default:
        return Step::kError;
    }
  }
}

// Checks the container whose bracket is base[i] as Parse does, without
// tape entries: `depth` containers are open around it. Returns the offset
// after it (and moves *j_io along the stop offsets), or 0 when it is
// invalid. The same states as Parse; one bit per container opened here
// says whether it is an array.
__attribute__((noinline)) size_t SkipContainer(const char* base,
                                               const uint64_t* stops,
                                               const uint32_t* offsets,
                                               size_t* j_io, size_t i,
                                               int depth) {
  size_t j = *j_io;
  const int outer = depth;
  uint64_t arrays = 0;  // bit 0: the innermost container opened here
  JsonTape::Entry* no_out = nullptr;
  uint32_t no_next = 0;
  Scan scan;
  uint64_t span = 0;
  if (base[i] == '[') goto open_array;

open_object:
  if (depth >= JsonTape::kMaxDepth) return 0;
  ++depth;
  arrays <<= 1;
  ++i;
  if (base[i] != '"') {
    i = size_t(SkipWs(base + i) - base);
    if (base[i] == '}') {
      ++i;
      goto close;
    }
    if (base[i] != '"') return 0;
  }
key:  // base[i] == '"'
  if (__builtin_expect(QuickString(base, offsets, i, &j, &span), 1)) {
    i = uint32_t(span) + 1;
  } else {
    scan = StringEndSlow(base, stops, i + 1);
    if (scan.end == 0) return 0;
    i = scan.end + 1;
  }
  if (__builtin_expect(base[i] != ':', 0)) {
    i = size_t(SkipWs(base + i) - base);
    if (base[i] != ':') return 0;
  }
  ++i;
  switch (Value<false>(base, stops, offsets, &j, &i, &no_out, &no_next)) {
    case Step::kScalar:
      goto object_next;
    case Step::kObject:
      goto open_object;
    case Step::kArray:
      goto open_array;
    case Step::kError:
      return 0;
  }

array_value:
  switch (Value<false>(base, stops, offsets, &j, &i, &no_out, &no_next)) {
    case Step::kScalar:
      goto array_next;
    case Step::kObject:
      goto open_object;
    case Step::kArray:
      goto open_array;
    case Step::kError:
      return 0;
  }

object_next:
  if (__builtin_expect(Load16(base + i) == (',' | '"' << 8), 1)) {
    ++i;
    goto key;
  }
  if (base[i] == ',') {
    ++i;
    if (base[i] == '"') goto key;
    i = size_t(SkipWs(base + i) - base);
    if (base[i] == '"') goto key;
    return 0;
  }
  if (base[i] == '}') {
    ++i;
    goto close;
  }
  if (!kBytes.ws[U(base[i])]) return 0;
  i = size_t(SkipWsSlow(base + i) - base);
  goto object_next;

array_next:
  if (base[i] == ',') {
    ++i;
    goto array_value;
  }
  if (base[i] == ']') {
    ++i;
    goto close;
  }
  if (!kBytes.ws[U(base[i])]) return 0;
  i = size_t(SkipWsSlow(base + i) - base);
  goto array_next;

close:
  --depth;
  arrays >>= 1;
  if (depth == outer) {
    *j_io = j;
    return i;
  }
  if (arrays & 1) goto array_next;
  goto object_next;

open_array:
  if (depth >= JsonTape::kMaxDepth) return 0;
  ++depth;
  arrays = arrays << 1 | 1;
  ++i;
  if (base[i] == ']') {
    ++i;
    goto close;
  }
  if (kBytes.ws[U(base[i])]) {
    i = size_t(SkipWsSlow(base + i) - base);
    if (base[i] == ']') {
      ++i;
      goto close;
    }
  }
  goto array_value;
}

}  // namespace

void JsonMemberSet::Add(absl::string_view name) {
  for (const std::string& have : names_) {
    if (have == name) return;
  }
  names_.emplace_back(name);
  length_bits_ |= uint64_t{1} << (name.size() % 64);
  // A linear search is cheaper than hashing for a few names.
  constexpr size_t kLinear = 8;
  if (names_.size() > kLinear) large_.insert(names_.begin(), names_.end());
}

bool JsonMemberSet::Contains(absl::string_view key) const {
  if (((length_bits_ >> (key.size() % 64)) & 1) == 0) return false;
  if (!large_.empty()) return large_.contains(key);
  for (const std::string& name : names_) {
    if (name == key) return true;
  }
  return false;
}

bool JsonTape::Parse(absl::string_view text) {
  return ParseImpl<false>(text, nullptr);
}

bool JsonTape::Parse(absl::string_view text, const JsonMemberSet& keep) {
  if (keep.all()) return ParseImpl<false>(text, nullptr);
  return ParseImpl<true>(text, &keep);
}

// One function, with the container stack in an array and gotos between
// states, so that positions and counters stay in registers and nothing
// recurses. Each state tests for the byte compact JSON has there first and
// only then for whitespace. `text` is copied into padded_; offsets are the
// same in both.
// kFiltered: a member of the top-level object that *keep leaves out is
// checked without entries: a scalar by the same Value, a container by
// SkipContainer (writing its entries and rewinding over them cost a quarter
// more on a 4 KiB body).
template <bool kFiltered>
bool JsonTape::ParseImpl(absl::string_view text, const JsonMemberSet* keep) {
  text_ = text;
  const size_t n = text.size();
  if (n > size_t{0xFFFFFFFF} - 2 * kPadding) return false;  // 32-bit offsets
  // The stop map's words: bytes 0..n.
  const size_t words = n / 64 + 1;
  // Whole blocks and one more, so that the copy can be written a block at
  // a time; at least kPadding NULs follow the text.
  static_assert(kPadding == 64, "a block of padding");
  if (padded_.size() < (words + 1) * 64) padded_.resize((words + 1) * 64);
  char* const base = padded_.data();
  // A value takes at least one byte plus a separator, except an unclosed
  // container's opening bracket; at most kMaxDepth of those are open.
  const size_t max_entries = n / 2 + 2 + kMaxDepth;
  if (entries_.size() < max_entries) entries_.resize(max_entries);
  Entry* const tape = entries_.data();
  if (stops_.size() < words) stops_.resize(words);
  const uint64_t* const stops = stops_.data();
  const size_t offset_slots = words * 64 + 40;
  if (stop_offsets_.size() < offset_slots) stop_offsets_.resize(offset_slots);
  const uint32_t* const offsets = stop_offsets_.data();
#if defined(EDGEROUTE_JSON_AVX2)
  if (HaveAvx512Vbmi2()) {
    const size_t count = IndexVbmi2(text.data(), n, words, base, stops_.data(),
                                    stop_offsets_.data());
    stop_offsets_[count] = uint32_t(n);
    stop_offsets_[count + 1] = uint32_t(n);
  } else  // NOLINT(readability/braces)
#endif
  {
    if (n != 0) std::memcpy(base, text.data(), n);
    std::memset(base + n, 0, kPadding);
    BuildStopMap(base, n, stops_.data());
    ListStops(stops, n, stop_offsets_.data());
  }
  size_t j = 0;  // the first offset QuickString may need

  // The entry to write next, and its index + 1 (its next field).
  Entry* out = tape;
  uint32_t next = 1;
  uint32_t open[kMaxDepth];  // tape indexes of the open containers
  int depth = 0;
  Scan scan;
  uint64_t span = 0;
  uint32_t key_type_flags = 0;
  size_t key_begin = 0, key_end = 0;
  // A copy: the tape's byte stores may alias *keep.
  const uint64_t keep_lengths = kFiltered ? keep->length_bits() : 0;
  // Offsets rather than pointers: they are what the tape stores.
  size_t i = size_t(SkipWs(base) - base);
  if (base[i] != '{') return false;

open_object:
  if (depth >= kMaxDepth) return false;
  open[depth++] = next - 1;
  Put(out++, kObject, i, i, next);
  ++next;
  ++i;
  if (base[i] != '"') {
    i = size_t(SkipWs(base + i) - base);
    if (base[i] == '}') {
      ++i;
      goto close;
    }
    if (base[i] != '"') return false;
  }
key:  // base[i] == '"'
  if (__builtin_expect(QuickString(base, offsets, i, &j, &span), 1)) {
    key_type_flags = kString;
    key_begin = span >> 32;
    key_end = uint32_t(span);
  } else {
    scan = StringEndSlow(base, stops, i + 1);
    if (scan.end == 0) return false;
    key_type_flags = kString | uint32_t{scan.flags} << 8;
    key_begin = i + 1;
    key_end = scan.end;
  }
  i = key_end + 1;
  if (__builtin_expect(base[i] != ':', 0)) {
    i = size_t(SkipWs(base + i) - base);
    if (base[i] != ':') return false;
  }
  ++i;
  if (kFiltered && depth == 1 && (key_type_flags & kEscaped << 8) == 0 &&
      (((keep_lengths >> ((key_end - key_begin) % 64)) & 1) == 0 ||
       !keep->Contains(
           absl::string_view(base + key_begin, key_end - key_begin)))) {
    // Scalars inline; a container (i is at its bracket) in SkipContainer.
    switch (Value<false>(base, stops, offsets, &j, &i, &out, &next)) {
      case Step::kScalar:
        goto object_next;
      case Step::kObject:
      case Step::kArray:
        i = SkipContainer(base, stops, offsets, &j, i, depth);
        if (i == 0) return false;
        goto object_next;
      case Step::kError:
        return false;
    }
  }
  Put(out++, key_type_flags, key_begin, key_end, next);
  ++next;
  switch (Value<true>(base, stops, offsets, &j, &i, &out, &next)) {
    case Step::kScalar:
      goto object_next;
    case Step::kObject:
      goto open_object;
    case Step::kArray:
      goto open_array;
    case Step::kError:
      return false;
  }

array_value:
  switch (Value<true>(base, stops, offsets, &j, &i, &out, &next)) {
    case Step::kScalar:
      goto array_next;
    case Step::kObject:
      goto open_object;
    case Step::kArray:
      goto open_array;
    case Step::kError:
      return false;
  }

object_next:
  // ",\"" (the next key) is one 2-byte compare.
  if (__builtin_expect(Load16(base + i) == (',' | '"' << 8), 1)) {
    ++i;
    goto key;
  }
  if (base[i] == ',') {
    ++i;
    if (base[i] == '"') goto key;
    i = size_t(SkipWs(base + i) - base);
    if (base[i] == '"') goto key;
    return false;
  }
  if (base[i] == '}') {
    ++i;
    goto close;
  }
  if (!kBytes.ws[U(base[i])]) return false;
  i = size_t(SkipWsSlow(base + i) - base);
  goto object_next;

array_next:
  if (base[i] == ',') {
    ++i;
    goto array_value;
  }
  if (base[i] == ']') {
    ++i;
    goto close;
  }
  if (!kBytes.ws[U(base[i])]) return false;
  i = size_t(SkipWsSlow(base + i) - base);
  goto array_next;

close : {
  const uint32_t self = open[--depth];
  tape[self].end = uint32_t(i);
  tape[self].next = next - 1;
}
  if (depth == 0) {
    if (!kBytes.ws[U(base[i])]) return i == n;
    return SkipWsSlow(base + i) == base + n;
  }
  if (tape[open[depth - 1]].type == kArray) goto array_next;
  goto object_next;

open_array:
  if (depth >= kMaxDepth) return false;
  open[depth++] = next - 1;
  Put(out++, kArray, i, i, next);
  ++next;
  ++i;
  if (base[i] == ']') {
    ++i;
    goto close;
  }
  if (kBytes.ws[U(base[i])]) {
    i = size_t(SkipWsSlow(base + i) - base);
    if (base[i] == ']') {
      ++i;
      goto close;
    }
  }
  goto array_value;
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
#if FLT_EVAL_METHOD == 0
  // The common token (up to 19 digits, a fraction, no exponent) read from
  // the padded copy, whose bytes after the token end every digit loop
  // without a bounds check: JsonNumberValue's fast path for that shape.
  const char* p = padded_.data() + e.begin;
  const bool negative = *p == '-';
  p += negative;
  uint64_t w = 0;
  int digits = 0;
  for (; IsDigit(*p); ++p, ++digits) w = w * 10 + unsigned(*p - '0');
  int fraction = 0;
  if (*p == '.') {
    for (++p; IsDigit(*p); ++p, ++fraction) w = w * 10 + unsigned(*p - '0');
  }
  if ((U(*p) | 0x20) != 'e' && digits + fraction <= 19 && fraction <= 22 &&
      w <= (uint64_t{1} << 53)) {
    const double d = double(w) / kPow10[fraction];
    *out = negative ? -d : d;
    return true;
  }
#endif
  *out = JsonNumberValue(raw(e));
  return true;
}

}  // namespace edgeroute::query::internal
