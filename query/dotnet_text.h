// The .NET rules edgeHub's strings and numbers follow, for the evaluator and
// the built-ins: strings are sequences of UTF-16 code units (lengths,
// offsets and ordinal comparison count units), numbers are read by
// double.TryParse, case mapping is ToUpperInvariant / ToLowerInvariant, and
// Newtonsoft.Json turns ISO date-time strings into dates. Internal to
// //query.
//
// Strings here are UTF-8 that may hold encoded lone surrogates (see
// value.h); an ill-formed sequence (which repaired input never has) counts
// as one U+FFFD.
//
// Thread-safety: pure functions.

#ifndef EDGEROUTE_QUERY_DOTNET_TEXT_H_
#define EDGEROUTE_QUERY_DOTNET_TEXT_H_

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"

namespace edgeroute::query::internal {

// The code point at s[i] and its length in bytes (*len >= 1).
// REQUIRES: i < s.size().
uint32_t DecodeChar(absl::string_view s, size_t i, size_t* len);

// Length in UTF-16 code units (String.Length).
size_t Utf16Length(absl::string_view s);

// Byte offset of UTF-16 unit `units` (rounded up past a split pair).
size_t Utf16Offset(absl::string_view s, size_t units);

// Ordinal UTF-16 comparison (String.CompareOrdinal): <0, 0, >0.
int CompareUtf16(absl::string_view a, absl::string_view b);

// Char.ToUpperInvariant / ToLowerInvariant of one code point (the C.UTF-8
// locale's simple case mapping; unchanged where it has none).
uint32_t MapCaseInvariant(uint32_t code_point, bool upper);

// double.TryParse(s, NumberStyles.Any, CultureInfo.InvariantCulture):
// surrounding white space, a leading or trailing sign, parentheses for a
// negative number, ',' thousands separators, a fraction, an exponent,
// "Infinity", "NaN" and "∞". Returns false when it fails.
bool ParseDotNetDouble(absl::string_view s, double* out);

// Whether Newtonsoft.Json's default DateParseHandling reads the JSON string
// `s` as a date (ISO 8601 date-times with or without a zone, /Date(ms)/).
bool LooksLikeJsonDate(absl::string_view s);

}  // namespace edgeroute::query::internal

#endif  // EDGEROUTE_QUERY_DOTNET_TEXT_H_
