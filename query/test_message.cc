#include "query/test_message.h"

#include <string_view>

#include "absl/strings/str_cat.h"
#include "simdjson.h"

namespace edgeroute::query::testing {
namespace {

bool AddProperties(simdjson::ondemand::object obj, bool system,
                   MessageBuilder* builder) {
  for (auto field : obj) {
    std::string_view key;
    if (field.unescaped_key().get(key)) return false;
    simdjson::ondemand::value value;
    if (field.value().get(value)) return false;
    bool is_null = false;
    if (value.is_null().get(is_null)) return false;
    if (is_null) {
      if (system) {
        builder->AddNullSystemProperty(
            absl::string_view(key.data(), key.size()));
      } else {
        builder->AddNullProperty(absl::string_view(key.data(), key.size()));
      }
      continue;
    }
    std::string_view v;
    if (value.get_string().get(v)) return false;
    if (system) {
      builder->AddSystemProperty(absl::string_view(key.data(), key.size()),
                                 absl::string_view(v.data(), v.size()));
    } else {
      builder->AddProperty(absl::string_view(key.data(), key.size()),
                           absl::string_view(v.data(), v.size()));
    }
  }
  return true;
}

// Skips one JSON string starting at s[i] == '"'; returns the index after it.
size_t SkipString(absl::string_view s, size_t i) {
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
    } else if (s[i] == '"') {
      return i + 1;
    }
  }
  return s.size();
}

// The raw text of the value of top-level key `key` in the JSON object `s`.
absl::string_view RawTopLevelValue(absl::string_view s, absl::string_view key) {
  int depth = 0;
  for (size_t i = 0; i < s.size();) {
    char c = s[i];
    if (c == '"') {
      size_t end = SkipString(s, i);
      if (depth == 1 && s.substr(i + 1, end - i - 2) == key) {
        size_t j = end;
        while (j < s.size() && (s[j] == ' ' || s[j] == ':')) ++j;
        size_t start = j;
        int d = 0;
        while (j < s.size()) {
          char v = s[j];
          if (v == '"') {
            j = SkipString(s, j);
            if (d == 0) break;
            continue;
          }
          if (v == '{' || v == '[') ++d;
          if (v == '}' || v == ']') {
            if (d == 0) break;
            --d;
            if (d == 0) {
              ++j;
              break;
            }
          }
          if (v == ',' && d == 0) break;
          ++j;
        }
        absl::string_view raw = s.substr(start, j - start);
        while (!raw.empty() && raw.back() == ' ') raw.remove_suffix(1);
        return raw;
      }
      i = end;
      continue;
    }
    if (c == '{' || c == '[') ++depth;
    if (c == '}' || c == ']') --depth;
    ++i;
  }
  return absl::string_view();
}

}  // namespace

bool BuildTestMessage(absl::string_view json, MessageBuilder* builder,
                      absl::string_view source) {
  builder->Clear();
  if (!source.empty()) builder->SetSource(source);
  simdjson::ondemand::parser parser;
  simdjson::padded_string padded(json.data(), json.size());
  simdjson::ondemand::document doc;
  if (parser.iterate(padded).get(doc)) return false;
  simdjson::ondemand::object root;
  if (doc.get_object().get(root)) return false;
  for (auto field : root) {
    std::string_view key;
    if (field.unescaped_key().get(key)) return false;
    simdjson::ondemand::value value;
    if (field.value().get(value)) return false;
    if (key == "props" || key == "sys") {
      simdjson::ondemand::object obj;
      if (value.get_object().get(obj)) return false;
      if (!AddProperties(obj, key == "sys", builder)) return false;
    } else if (key == "body") {
      simdjson::ondemand::json_type type;
      if (value.type().get(type)) return false;
      if (type == simdjson::ondemand::json_type::string) {
        std::string_view s;
        if (value.get_string().get(s)) return false;
        builder->SetBody(absl::string_view(s.data(), s.size()));
      } else {
        absl::string_view raw = RawTopLevelValue(json, "body");
        builder->SetBody(raw);
      }
    }
  }
  builder->Finish();
  return true;
}

bool ParseRouteCase(absl::string_view json, std::string* route,
                    std::string* expected) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(json.data(), json.size()).get(doc)) return false;
  std::string_view r;
  if (doc["route"].get_string().get(r)) return false;
  route->assign(r.data(), r.size());
  simdjson::dom::element e;
  if (doc["expect"].get(e)) return false;
  if (e.is_string()) {
    *expected = std::string(e.get_string().value_unsafe());
    return true;
  }
  std::string_view s, c, k;
  if (e["source"].get_string().get(s) || e["condition"].get_string().get(c) ||
      e["sink"].get_string().get(k)) {
    return false;
  }
  *expected = absl::StrCat("source=", absl::string_view(s.data(), s.size()),
                           "|condition=", absl::string_view(c.data(), c.size()),
                           "|sink=", absl::string_view(k.data(), k.size()));
  return true;
}

}  // namespace edgeroute::query::testing
