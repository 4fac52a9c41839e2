// Percent-encoding (RFC 3986) as IoT Hub uses it: in SAS token fields and in
// the property bags of MQTT topics.

#ifndef EDGEROUTE_BASE_PERCENT_ENCODING_H_
#define EDGEROUTE_BASE_PERCENT_ENCODING_H_

#include <string>

#include "absl/strings/string_view.h"

namespace edgeroute {

// Appends `text` to *out with every byte but the unreserved ones (ALPHA,
// DIGIT, '-', '.', '_', '~') written as %XX, upper-case hex.
void PercentEncode(absl::string_view text, std::string* out);

// What a '%' that does not start an escape (two hex digits) means.
enum class PercentDecoding {
  kStrict,   // an error: the text is malformed
  kLenient,  // itself, as .NET's HttpUtility.UrlDecode reads it
};

// Appends `text` to *out with its %XX escapes decoded ('+' stays '+').
// Returns false only in kStrict mode, on a malformed escape; *out then
// holds part of the text.
bool PercentDecode(absl::string_view text, PercentDecoding mode,
                   std::string* out);

}  // namespace edgeroute

#endif  // EDGEROUTE_BASE_PERCENT_ENCODING_H_
