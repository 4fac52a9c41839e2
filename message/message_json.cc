#include "message/message_json.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace edgeroute {
namespace {

// Adds every member of `object` (string or null values) through `add_string`
// and `add_null`. `what` is "props" or "sys".
template <typename AddString, typename AddNull>
absl::Status AddProperties(const JsonNode& object, absl::string_view text,
                           absl::string_view what, AddString add_string,
                           AddNull add_null) {
  if (object.kind == JsonNode::Kind::kNull) return absl::OkStatus();
  if (object.kind != JsonNode::Kind::kObject) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", what, "\" must be an object of string or null values, found ",
        JsonKindName(object.kind)));
  }
  for (const JsonNode& m : object.children) {
    switch (m.kind) {
      case JsonNode::Kind::kNull:
        add_null(m.key);
        break;
      case JsonNode::Kind::kString:
        add_string(m.key, m.text);
        break;
      default:
        return absl::InvalidArgumentError(absl::StrCat(
            what, " \"", m.key, "\" must be a string or null (found ",
            m.source(text).substr(0, 40), "); properties are strings"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

JsonReaderOptions MessageJsonReaderOptions() {
  JsonReaderOptions options;
  // Deeper than any body a JSON parser accepts (Newtonsoft stops at 64).
  options.max_depth = 1024;
  options.allow_byte_order_mark = false;
  options.strings.lone_surrogate = LoneSurrogate::kReject;
  options.strings.require_utf8 = true;
  return options;
}

absl::StatusOr<MessageView> BuildMessageFromJson(absl::string_view json,
                                                 MessageBuilder* builder,
                                                 absl::string_view source) {
  JsonNode message;
  JsonReadError error;
  if (!ReadJson(json, MessageJsonReaderOptions(), &message, &error)) {
    builder->Clear();
    return absl::InvalidArgumentError(absl::StrCat(
        "message: ", error.message, " (at offset ", error.at, ")"));
  }
  return BuildMessageFromJsonNode(message, json, builder, source);
}

absl::StatusOr<MessageView> BuildMessageFromJsonNode(const JsonNode& message,
                                                     absl::string_view text,
                                                     MessageBuilder* builder,
                                                     absl::string_view source) {
  builder->Clear();
  if (message.kind != JsonNode::Kind::kObject) {
    return absl::InvalidArgumentError(absl::StrCat(
        "message: expected a JSON object, found ", JsonKindName(message.kind)));
  }
  for (const JsonNode& m : message.children) {
    if (m.key == "props") {
      absl::Status s = AddProperties(
          m, text, "props",
          [&](absl::string_view k, absl::string_view v) {
            builder->AddProperty(k, v);
          },
          [&](absl::string_view k) { builder->AddNullProperty(k); });
      if (!s.ok()) return s;
    } else if (m.key == "sys") {
      absl::Status s = AddProperties(
          m, text, "sys",
          [&](absl::string_view k, absl::string_view v) {
            builder->AddSystemProperty(k, v);
          },
          [&](absl::string_view k) { builder->AddNullSystemProperty(k); });
      if (!s.ok()) return s;
    } else if (m.key == "body") {
      builder->SetBody(m.kind == JsonNode::Kind::kString
                           ? absl::string_view(m.text)
                           : m.source(text));
    }
  }
  if (!source.empty()) builder->SetSource(source);
  builder->Finish();
  return builder->view();
}

}  // namespace edgeroute
