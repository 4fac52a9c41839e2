// JSON lines of the batch commands (route --jsonl, eval --jsonl): reading
// one input line with the positioned reader, and writing lists. Private to
// //tools:cli.

#ifndef EDGEROUTE_TOOLS_JSON_LINES_H_
#define EDGEROUTE_TOOLS_JSON_LINES_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/json_reader.h"

namespace edgeroute::tools {

// Reads `line` as one JSON object, as strictly as the test-message format
// (UTF-8 strings, no lone surrogates). InvalidArgument says what is wrong
// and at which offset.
absl::Status ReadJsonLine(absl::string_view line, JsonNode* root);

// The string value of member `key` of `object` (the last one of that name).
// InvalidArgument when it is missing or not a string.
absl::StatusOr<std::string> StringMember(const JsonNode& object,
                                         absl::string_view key);

// ["a", "b"]: each item as a JSON string.
std::string JsonList(const std::vector<std::string>& items);

}  // namespace edgeroute::tools

#endif  // EDGEROUTE_TOOLS_JSON_LINES_H_
