#include "tools/message_json.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "base/json_string.h"

namespace edgeroute::tools {
namespace {

bool IsJsonSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

size_t SkipSpace(absl::string_view s, size_t i) {
  while (i < s.size() && IsJsonSpace(s[i])) ++i;
  return i;
}

// Returns the offset one past the string literal starting at s[i] ('"'), or
// npos when it does not end.
size_t SkipString(absl::string_view s, size_t i) {
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
    } else if (s[i] == '"') {
      return i + 1;
    }
  }
  return absl::string_view::npos;
}

// Returns the offset one past the JSON value starting at s[i], or npos.
size_t SkipValue(absl::string_view s, size_t i) {
  if (i >= s.size()) return absl::string_view::npos;
  if (s[i] == '"') return SkipString(s, i);
  if (s[i] == '{' || s[i] == '[') {
    int depth = 0;
    while (i < s.size()) {
      const char c = s[i];
      if (c == '"') {
        i = SkipString(s, i);
        if (i == absl::string_view::npos) return i;
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      if (c == '}' || c == ']') {
        if (--depth == 0) return i + 1;
      }
      ++i;
    }
    return absl::string_view::npos;
  }
  const size_t start = i;
  while (i < s.size() && !IsJsonSpace(s[i]) && s[i] != ',' && s[i] != '}' &&
         s[i] != ']') {
    ++i;
  }
  return i == start ? absl::string_view::npos : i;
}

// Adds every member of the object `raw` (string or null values) through
// `add_string` / `add_null`.
template <typename AddString, typename AddNull>
absl::Status AddProperties(absl::string_view raw, absl::string_view what,
                           AddString add_string, AddNull add_null) {
  if (raw == "null") return absl::OkStatus();
  absl::StatusOr<std::vector<JsonMember>> members = SplitJsonObject(raw);
  if (!members.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", what,
                     "\" must be an object of string or null "
                     "values: ",
                     members.status().message()));
  }
  for (const JsonMember& m : *members) {
    if (m.raw_value == "null") {
      add_null(m.key);
    } else if (!m.raw_value.empty() && m.raw_value[0] == '"') {
      absl::StatusOr<std::string> value = DecodeJsonString(m.raw_value);
      if (!value.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, " \"", m.key, "\": ", value.status().message()));
      }
      add_string(m.key, *value);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " \"", m.key, "\" must be a string or null (found ",
          m.raw_value.substr(0, 40), "); properties are strings"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<JsonMember>> SplitJsonObject(
    absl::string_view json) {
  std::vector<JsonMember> out;
  size_t i = SkipSpace(json, 0);
  if (i >= json.size() || json[i] != '{') {
    return absl::InvalidArgumentError("expected a JSON object");
  }
  i = SkipSpace(json, i + 1);
  if (i < json.size() && json[i] == '}') {
    i = SkipSpace(json, i + 1);
  } else {
    while (true) {
      if (i >= json.size() || json[i] != '"') {
        return absl::InvalidArgumentError(
            absl::StrCat("expected a member name at offset ", i));
      }
      const size_t key_end = SkipString(json, i);
      if (key_end == absl::string_view::npos) {
        return absl::InvalidArgumentError("unterminated member name");
      }
      absl::StatusOr<std::string> key =
          DecodeJsonString(json.substr(i, key_end - i));
      if (!key.ok()) return key.status();
      i = SkipSpace(json, key_end);
      if (i >= json.size() || json[i] != ':') {
        return absl::InvalidArgumentError(
            absl::StrCat("expected ':' after \"", *key, "\""));
      }
      i = SkipSpace(json, i + 1);
      const size_t value_end = SkipValue(json, i);
      if (value_end == absl::string_view::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat("bad or unterminated value of \"", *key, "\""));
      }
      out.push_back(JsonMember{*std::move(key), json.substr(i, value_end - i)});
      i = SkipSpace(json, value_end);
      if (i < json.size() && json[i] == ',') {
        i = SkipSpace(json, i + 1);
        continue;
      }
      if (i < json.size() && json[i] == '}') {
        i = SkipSpace(json, i + 1);
        break;
      }
      return absl::InvalidArgumentError(absl::StrCat(
          "expected ',' or '}' after the value of \"", out.back().key, "\""));
    }
  }
  if (i != json.size()) {
    return absl::InvalidArgumentError("unexpected text after the JSON object");
  }
  return out;
}

absl::StatusOr<std::string> DecodeJsonString(absl::string_view raw) {
  if (raw.empty() || raw[0] != '"') {
    return absl::InvalidArgumentError(
        absl::StrCat("expected a JSON string, found ", raw.substr(0, 40)));
  }
  // As strict as a JSON parser: UTF-8 only, no lone surrogates.
  constexpr JsonStringOptions kStrict = {LoneSurrogate::kReject,
                                         /*require_utf8=*/true};
  std::string value;
  JsonStringError error;
  const size_t end =
      edgeroute::DecodeJsonString(raw, 0, kStrict, &value, nullptr, &error);
  if (end == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid JSON string ", raw.substr(0, 40), ": ", error.message));
  }
  if (end != raw.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid JSON string ", raw.substr(0, 40)));
  }
  return value;
}

std::string JsonQuote(absl::string_view text) {
  return edgeroute::JsonQuote(text);
}

absl::StatusOr<MessageView> BuildMessageFromJson(absl::string_view json,
                                                 MessageBuilder* builder) {
  builder->Clear();
  absl::StatusOr<std::vector<JsonMember>> members = SplitJsonObject(json);
  if (!members.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("message: ", members.status().message()));
  }
  for (const JsonMember& m : *members) {
    if (m.key == "props") {
      absl::Status s = AddProperties(
          m.raw_value, "props",
          [&](absl::string_view k, absl::string_view v) {
            builder->AddProperty(k, v);
          },
          [&](absl::string_view k) { builder->AddNullProperty(k); });
      if (!s.ok()) return s;
    } else if (m.key == "sys") {
      absl::Status s = AddProperties(
          m.raw_value, "sys",
          [&](absl::string_view k, absl::string_view v) {
            builder->AddSystemProperty(k, v);
          },
          [&](absl::string_view k) { builder->AddNullSystemProperty(k); });
      if (!s.ok()) return s;
    } else if (m.key == "body") {
      if (!m.raw_value.empty() && m.raw_value[0] == '"') {
        absl::StatusOr<std::string> body = DecodeJsonString(m.raw_value);
        if (!body.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat("body: ", body.status().message()));
        }
        builder->SetBody(*body);
      } else {
        builder->SetBody(m.raw_value);
      }
    }
  }
  builder->Finish();
  return builder->view();
}

}  // namespace edgeroute::tools
