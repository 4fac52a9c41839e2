// UTF-8 decoding and repair with one rule for ill-formed bytes: each maximal
// ill-formed subsequence (Unicode 15, section 3.9, "U+FFFD Substitution of
// Maximal Subparts") reads as one U+FFFD. This is what .NET's UTF8Encoding
// (and so edgeHub) and the WHATWG decoders do, so a string that arrives as
// bytes means the same character sequence here as there.
//
// Thread-safety: pure functions.

#ifndef EDGEROUTE_BASE_UTF8_H_
#define EDGEROUTE_BASE_UTF8_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace edgeroute {

inline constexpr uint32_t kReplacementCharacter = 0xFFFD;

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
