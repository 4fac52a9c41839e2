// UTF-8 decoding, encoding and repair, and the UTF-16 surrogate rules, for
// every part of the project that reads text (the text layer's UTF-8 part;
// JSON strings are in base/json_string.h, positions and caret excerpts in
// base/source_text.h).
//
// One rule for ill-formed bytes: each maximal ill-formed subsequence (Unicode 15, section 3.9, "U+FFFD Substitution of
// Maximal Subparts") reads as one U+FFFD. This is what .NET's UTF8Encoding
// (and so edgeHub) and the WHATWG decoders do, so a string that arrives as
// bytes means the same character sequence here as there.
//
// Thread-safety: pure functions.

#ifndef EDGEROUTE_BASE_UTF8_H_
#define EDGEROUTE_BASE_UTF8_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/strings/string_view.h"

namespace edgeroute {

inline constexpr uint32_t kReplacementCharacter = 0xFFFD;

// UTF-16 surrogates (what "\uD83D\uDE00" escapes spell).
inline bool IsHighSurrogate(uint32_t unit) {
  return unit >= 0xD800 && unit <= 0xDBFF;
}
inline bool IsLowSurrogate(uint32_t unit) {
  return unit >= 0xDC00 && unit <= 0xDFFF;
}
inline bool IsSurrogate(uint32_t unit) {
  return unit >= 0xD800 && unit <= 0xDFFF;
}
// The supplementary code point of a surrogate pair.
// REQUIRES: IsHighSurrogate(high) && IsLowSurrogate(low).
inline uint32_t CombineSurrogates(uint32_t high, uint32_t low) {
  return 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
}

// Whether `byte` continues a sequence (10xxxxxx): not the first byte of a
// character. Columns count the bytes that are not continuations.
inline bool IsUtf8Continuation(char byte) {
  return (static_cast<unsigned char>(byte) & 0xC0) == 0x80;
}

// Whether every byte of `s` is ASCII (eight bytes at a time). Inline: the
// evaluator asks it of every property value it reads.
inline bool IsAscii(absl::string_view s) {
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t word;
    std::memcpy(&word, s.data() + i, 8);
    if (word & 0x8080808080808080ull) return false;
  }
  for (; i < s.size(); ++i) {
    if (static_cast<unsigned char>(s[i]) >= 0x80) return false;
  }
  return true;
}

// Decodes the sequence that starts at s[i]. Returns its code point and sets
// *len to its length in bytes (1-4); for an ill-formed sequence returns
// U+FFFD with *len the length of its maximal subpart (at least 1).
// Surrogates (ED A0..BF ..), overlong forms and code points past U+10FFFF
// are ill-formed. REQUIRES: i < s.size().
uint32_t DecodeUtf8(absl::string_view s, size_t i, size_t* len);

// DecodeUtf8, except that an encoded surrogate (ED A0..BF 80..BF) decodes
// as that surrogate: for strings that hold what EncodeUtf8 wrote for a
// "\uD800" escape (the route language's evaluator).
uint32_t DecodeUtf8OrSurrogate(absl::string_view s, size_t i, size_t* len);

// Writes the UTF-8 encoding of `cp` (at most 4 bytes) to `out` and returns
// its length. Code points D800-DFFF are encoded as three bytes, which is not
// UTF-8 but lets a string hold a lone surrogate from a "\uD800" escape the
// way a .NET string does. REQUIRES: cp <= 0x10FFFF.
size_t EncodeUtf8(uint32_t cp, char* out);
// The number of bytes EncodeUtf8 writes for `cp` (1-4).
inline size_t EncodedUtf8Length(uint32_t cp) {
  return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}
void AppendUtf8(uint32_t cp, std::string* out);

// Offset of the first byte of the first ill-formed sequence in `s`, or
// absl::string_view::npos when `s` is well-formed UTF-8.
size_t FindInvalidUtf8(absl::string_view s);
inline bool IsValidUtf8(absl::string_view s) {
  return FindInvalidUtf8(s) == absl::string_view::npos;
}

// ReplaceInvalidUtf8 writes at most this many bytes per input byte (a lone
// ill-formed byte becomes the three bytes of U+FFFD).
inline constexpr size_t kUtf8RepairGrowth = 3;

// Copies `s` to `out`, replacing each maximal ill-formed subsequence with
// U+FFFD, and returns the number of bytes written.
// REQUIRES: `out` has room for kUtf8RepairGrowth * s.size() bytes.
size_t ReplaceInvalidUtf8(absl::string_view s, char* out);
// The same into a string (cleared first).
void ReplaceInvalidUtf8(absl::string_view s, std::string* out);

}  // namespace edgeroute

#endif  // EDGEROUTE_BASE_UTF8_H_
