#include "tools/json_lines.h"

#include "absl/strings/str_cat.h"
#include "base/json_string.h"
#include "message/message_json.h"

namespace edgeroute::tools {

absl::Status ReadJsonLine(absl::string_view line, JsonNode* root) {
  JsonReadError error;
  if (!ReadJson(line, MessageJsonReaderOptions(), root, &error)) {
    return absl::InvalidArgumentError(
        absl::StrCat(error.message, " (at offset ", error.at, ")"));
  }
  if (root->kind != JsonNode::Kind::kObject) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected a JSON object, found ", JsonKindName(root->kind)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> StringMember(const JsonNode& object,
                                         absl::string_view key) {
  const JsonNode* member = FindJsonMember(object, key, false);
  if (member == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("missing \"", key, "\""));
  }
  if (member->kind != JsonNode::Kind::kString) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", key, "\": expected a JSON string, found ",
                     JsonKindName(member->kind)));
  }
  return member->text;
}

std::string JsonList(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ", ";
    AppendJsonQuoted(items[i], &out);
  }
  out += "]";
  return out;
}

}  // namespace edgeroute::tools
