// JSON helpers of the edgeroute command line: the test-message format of the
// conformance files, and JSON-lines input and output.
//
// The message format is {"props": {...}, "sys": {...}, "body": B}:
//   props -- application properties; each value a string or null;
//   sys   -- system properties under edgeHub's internal names (contentType,
//            contentEncoding, connectionDeviceId, connectionModuleId,
//            outputName, messageId, cid, ...); each value a string or null;
//   body  -- a JSON string is the raw body text; any other JSON value is sent
//            as its JSON text, byte for byte as written; no "body" key means
//            an empty body.
// Every key is optional; other keys are ignored. The message source is
// derived from the system properties (MessageBuilder::Finish).

#ifndef EDGEROUTE_TOOLS_MESSAGE_JSON_H_
#define EDGEROUTE_TOOLS_MESSAGE_JSON_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "message/message.h"

namespace edgeroute::tools {

// One member of a JSON object: its decoded key and the exact source text of
// its value (leading and trailing white space removed).
struct JsonMember {
  std::string key;
  absl::string_view raw_value;
};

// Splits the JSON object `json` into its top-level members, in order,
// without interpreting the values beyond finding where they end (strings,
// nesting). Returns InvalidArgument when `json` is not one object.
absl::StatusOr<std::vector<JsonMember>> SplitJsonObject(absl::string_view json);

// Decodes the JSON string literal `raw` (with its quotes) into UTF-8.
absl::StatusOr<std::string> DecodeJsonString(absl::string_view raw);

// `text` as a JSON string literal, with quotes.
std::string JsonQuote(absl::string_view text);

// Clears `builder`, builds the message `json` describes (format above), and
// returns a view of it, valid until the builder's next Clear().
// Returns InvalidArgument naming the offending key on bad input.
absl::StatusOr<MessageView> BuildMessageFromJson(absl::string_view json,
                                                 MessageBuilder* builder);

}  // namespace edgeroute::tools

#endif  // EDGEROUTE_TOOLS_MESSAGE_JSON_H_
