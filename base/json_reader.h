// A strict (RFC 8259) JSON reader for control-plane input -- deployment
// manifests, the test-message format, JSON lines -- that keeps where every
// value starts and ends in the source, so that every problem can be
// reported at its line and column, and a value's exact source text can be
// taken as it was written. Clarity over speed: message bodies on the data
// plane are read by the route language's own tape parser (query/json.h).
//
// Thread-safety: ReadJson is a pure function; a JsonNode is a plain value.

#ifndef EDGEROUTE_BASE_JSON_READER_H_
#define EDGEROUTE_BASE_JSON_READER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "base/json_string.h"

namespace edgeroute {

// One JSON value and its place in the source.
struct JsonNode {
  enum class Kind : uint8_t { kNull, kBool, kNumber, kString, kArray, kObject };

  Kind kind = Kind::kNull;
  // Source byte range of the value: [begin, end).
  size_t begin = 0;
  size_t end = 0;
  bool boolean = false;
  // Decoded text for a string; the number's text as written for a number.
  std::string text;
  // Array items, or object members in source order (duplicates kept).
  std::vector<JsonNode> children;
  // For object members: the decoded key and where its opening quote is.
  std::string key;
  size_t key_begin = 0;

  // The value's source text, exactly as written.
  absl::string_view source(absl::string_view text_read) const {
    return text_read.substr(begin, end - begin);
  }
};

// "null", "a boolean", "a number", "a string", "an array", "an object".
const char* JsonKindName(JsonNode::Kind kind);

// The member of `object` named `key`: the last one spelled exactly so (as in
// Newtonsoft's JObject), else, when `ignore_case`, the last one equal to it
// ignoring ASCII case (as Newtonsoft binds names to members). Null when
// there is none or `object` is not an object.
const JsonNode* FindJsonMember(const JsonNode& object, absl::string_view key,
                               bool ignore_case);

struct JsonReaderOptions {
  // Deeper nesting is an error that says so.
  int max_depth = 128;
  // A UTF-8 byte order mark before the value is skipped.
  bool allow_byte_order_mark = true;
  // How strings (and member names) are decoded.
  JsonStringOptions strings;
};

struct JsonReadError {
  // Offset in the text of the problem.
  size_t at = 0;
  // What is wrong there, e.g. "expected ',' or '}' after an object member".
  std::string message;
};

// Reads `text` as exactly one JSON value, with nothing but white space
// around it. On failure returns false and fills *error (*root is then
// unspecified).
bool ReadJson(absl::string_view text, const JsonReaderOptions& options,
              JsonNode* root, JsonReadError* error);

}  // namespace edgeroute

#endif  // EDGEROUTE_BASE_JSON_READER_H_
