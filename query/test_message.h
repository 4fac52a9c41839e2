// Test helper: builds messages from the conformance JSON format
// {"props":{...},"sys":{...},"body":B}. Test-only.

#ifndef EDGEROUTE_QUERY_TEST_MESSAGE_H_
#define EDGEROUTE_QUERY_TEST_MESSAGE_H_

#include <string>

#include "absl/strings/string_view.h"
#include "message/message.h"

namespace edgeroute::query::testing {

// Clears `builder` and builds the message; returns false on malformed JSON.
// A JSON-string body is the raw body text; any other JSON value is sent as
// its JSON text; no "body" key means an empty body.
bool BuildTestMessage(absl::string_view json, MessageBuilder* builder,
                      absl::string_view source = "");

// Parses a routes-generated.jsonl line into the route text and the expected
// first-stage result ("error" or "source=S|condition=C|sink=E").
bool ParseRouteCase(absl::string_view json, std::string* route,
                    std::string* expected);

}  // namespace edgeroute::query::testing

#endif  // EDGEROUTE_QUERY_TEST_MESSAGE_H_
