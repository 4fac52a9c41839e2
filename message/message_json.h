// The test-message format: a message written as JSON, as the conformance
// files, the edgeroute command line (eval) and the tests write messages.
// The one parser of that format.
//
//   {"props": {...}, "sys": {...}, "body": B}
//   props -- application properties; each value a string or null;
//   sys   -- system properties under edgeHub's internal names (contentType,
//            contentEncoding, connectionDeviceId, connectionModuleId,
//            outputName, messageId, cid, ...); each value a string or null;
//   body  -- a JSON string is the raw body text; any other JSON value is sent
//            as its JSON text, byte for byte as written; no "body" key means
//            an empty body.
// Every key is optional; other keys are ignored; a key given twice adds both.
// The text must be strict JSON whose strings are UTF-8 (no lone surrogate
// escapes). The message source is derived from the system properties
// (MessageBuilder::Finish) unless the caller names one.
//
// Thread-safety: pure functions over the caller's builder.

#ifndef EDGEROUTE_MESSAGE_MESSAGE_JSON_H_
#define EDGEROUTE_MESSAGE_MESSAGE_JSON_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/json_reader.h"
#include "message/message.h"

namespace edgeroute {

// How the format's JSON is read (strict: UTF-8 strings, no lone surrogates;
// also for JSON lines that carry messages).
JsonReaderOptions MessageJsonReaderOptions();

// Clears `builder`, builds the message `json` describes and returns a view
// of it, valid until the builder's next Clear(). `source`, when not empty,
// is the message source instead of the derived one. Returns
// InvalidArgument naming the offending key on bad input.
absl::StatusOr<MessageView> BuildMessageFromJson(absl::string_view json,
                                                 MessageBuilder* builder,
                                                 absl::string_view source = "");

// The same for a message already read (e.g. the "message" member of a JSON
// line): `message` is a node of `text`, the text ReadJson read it from.
absl::StatusOr<MessageView> BuildMessageFromJsonNode(
    const JsonNode& message, absl::string_view text, MessageBuilder* builder,
    absl::string_view source = "");

}  // namespace edgeroute

#endif  // EDGEROUTE_MESSAGE_MESSAGE_JSON_H_
