// JSON string literals (RFC 8259, section 7): writing them (quoting) and
// reading them (unescaping), for every part of the project that reads or
// writes JSON text. The surrogate and UTF-8 rules come from base/utf8.h.
//
// Three readers for three kinds of input:
//   UnescapeValidJsonString -- the data plane: the contents of a string a
//       validating parser (the $body tape) already checked; no errors.
//   DecodeJsonString        -- control-plane input (manifests, the test
//       message format, JSON lines): checks everything, says where and why,
//       and can map every output byte to the source offset it came from.
//
// Thread-safety: pure functions.

#ifndef EDGEROUTE_BASE_JSON_STRING_H_
#define EDGEROUTE_BASE_JSON_STRING_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace edgeroute {

// `text` as a JSON string literal with its quotes: '"', '\\' and control
// characters are escaped (\n \r \t \b \f, the others as \u00XX); every
// other byte is copied as it is.
std::string JsonQuote(absl::string_view text);
void AppendJsonQuoted(absl::string_view text, std::string* out);

// The value of the hex digit `c`, or -1.
inline int HexDigitValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Reads the four hex digits at s[at..at+3] into *unit. Returns false (and
// leaves *unit alone) when there are fewer than four or one is not hex.
bool ReadHex4(absl::string_view s, size_t at, uint32_t* unit);

// What an escaped surrogate that is not half of a pair ("\uD800" alone)
// becomes.
enum class LoneSurrogate : uint8_t {
  // Its three-byte encoding (EncodeUtf8 of the surrogate): what a .NET
  // string holds, so the route language sees the same UTF-16 units.
  kKeep,
  // U+FFFD.
  kReplace,
  // An error.
  kReject,
};

// Unescapes the contents (between the quotes) of a JSON string that a
// validating parser accepted: every backslash starts a valid escape. Lone
// surrogates are kept (LoneSurrogate::kKeep). Writes at most raw.size()
// bytes to `out` and returns the number written.
size_t UnescapeValidJsonString(absl::string_view raw, char* out);

struct JsonStringOptions {
  LoneSurrogate lone_surrogate = LoneSurrogate::kReplace;
  // Reject a string whose bytes are not UTF-8 (else they are copied as
  // they are).
  bool require_utf8 = false;
};

// Why DecodeJsonString failed: the offset in the text and what is wrong
// there ("unterminated string", "invalid escape '\q' in string", ...).
struct JsonStringError {
  size_t at = 0;
  std::string message;
};

// Decodes the JSON string literal whose opening quote is at text[begin].
// Control characters must be escaped, escapes must be JSON's. On success
// returns the offset one past the closing quote and sets *out; when
// `offsets` is not null it receives, for every byte of *out, the offset in
// `text` of the character or escape that produced it, plus one last entry:
// the closing quote's offset. On failure returns 0 and fills *error.
// REQUIRES: begin < text.size() and text[begin] == '"'.
size_t DecodeJsonString(absl::string_view text, size_t begin,
                        const JsonStringOptions& options, std::string* out,
                        std::vector<size_t>* offsets, JsonStringError* error);

}  // namespace edgeroute

#endif  // EDGEROUTE_BASE_JSON_STRING_H_
