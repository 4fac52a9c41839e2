#include "base/json_reader.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace edgeroute {
namespace {

class JsonReader {
 public:
  JsonReader(absl::string_view src, const JsonReaderOptions& options)
      : src_(src), options_(options) {}

  // Parses the whole text as one JSON value. On failure returns false with
  // error_at() and error() set.
  bool Parse(JsonNode* root) {
    if (options_.allow_byte_order_mark && src_.size() >= 3 &&
        src_.substr(0, 3) == "\xEF\xBB\xBF") {
      pos_ = 3;
    }
    SkipSpace();
    if (pos_ >= src_.size()) return Fail(pos_, "the file is empty");
    if (!ParseValue(root, 0)) return false;
    SkipSpace();
    if (pos_ < src_.size()) {
      return Fail(pos_, "unexpected text after the end of the JSON value");
    }
    return true;
  }

  size_t error_at() const { return error_at_; }
  const std::string& error() const { return error_; }

 private:
  bool Fail(size_t at, std::string message) {
    error_at_ = at;
    error_ = std::move(message);
    return false;
  }

  void SkipSpace() {
    while (pos_ < src_.size()) {
      const char c = src_[pos_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
      ++pos_;
    }
  }

  bool Literal(absl::string_view word) {
    if (src_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  bool ParseValue(JsonNode* node, int depth) {
    if (depth > options_.max_depth) {
      return Fail(pos_, absl::StrCat("JSON nested deeper than ",
                                     options_.max_depth, " levels"));
    }
    node->begin = pos_;
    if (pos_ >= src_.size()) return Fail(pos_, "expected a value");
    const char c = src_[pos_];
    bool ok = true;
    switch (c) {
      case '{':
        ok = ParseObject(node, depth);
        break;
      case '[':
        ok = ParseArray(node, depth);
        break;
      case '"': {
        node->kind = JsonNode::Kind::kString;
        JsonStringError e;
        const size_t next = DecodeJsonString(src_, pos_, options_.strings,
                                             &node->text, nullptr, &e);
        if (next == 0) return Fail(e.at, std::move(e.message));
        pos_ = next;
        break;
      }
      case 't':
      case 'f':
      case 'n':
        if (Literal("true")) {
          node->kind = JsonNode::Kind::kBool;
          node->boolean = true;
        } else if (Literal("false")) {
          node->kind = JsonNode::Kind::kBool;
        } else if (Literal("null")) {
          node->kind = JsonNode::Kind::kNull;
        } else {
          return Fail(pos_,
                      "expected a value (true, false and null are "
                      "lowercase; strings need double quotes)");
        }
        break;
      default:
        if (c == '-' || (c >= '0' && c <= '9')) {
          ok = ParseNumber(node);
        } else if (c == '\'') {
          return Fail(pos_, "strings need double quotes in JSON");
        } else if (c == '}' || c == ']') {
          return Fail(
              pos_, absl::StrCat("expected a value before '", std::string(1, c),
                                 "' (trailing commas are not JSON)"));
        } else {
          return Fail(pos_, "expected a value");
        }
    }
    node->end = pos_;
    return ok;
  }

  bool ParseNumber(JsonNode* node) {
    node->kind = JsonNode::Kind::kNumber;
    const size_t start = pos_;
    auto digit = [&](size_t at) {
      return at < src_.size() && src_[at] >= '0' && src_[at] <= '9';
    };
    if (src_[pos_] == '-') ++pos_;
    if (!digit(pos_)) return Fail(pos_, "expected a digit");
    if (src_[pos_] == '0' && digit(pos_ + 1)) {
      return Fail(pos_, "numbers must not have leading zeros");
    }
    while (digit(pos_)) ++pos_;
    if (pos_ < src_.size() && src_[pos_] == '.') {
      ++pos_;
      if (!digit(pos_)) return Fail(pos_, "expected a digit after '.'");
      while (digit(pos_)) ++pos_;
    }
    if (pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < src_.size() && (src_[pos_] == '+' || src_[pos_] == '-')) {
        ++pos_;
      }
      if (!digit(pos_)) return Fail(pos_, "expected a digit in the exponent");
      while (digit(pos_)) ++pos_;
    }
    node->text = std::string(src_.substr(start, pos_ - start));
    return true;
  }

  bool ParseArray(JsonNode* node, int depth) {
    node->kind = JsonNode::Kind::kArray;
    ++pos_;  // [
    SkipSpace();
    if (pos_ < src_.size() && src_[pos_] == ']') {
      ++pos_;
      return true;
    }
    while (true) {
      node->children.emplace_back();
      SkipSpace();
      if (!ParseValue(&node->children.back(), depth + 1)) return false;
      SkipSpace();
      if (pos_ < src_.size() && src_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < src_.size() && src_[pos_] == ']') {
        ++pos_;
        return true;
      }
      return Fail(pos_, "expected ',' or ']' in array");
    }
  }

  bool ParseObject(JsonNode* node, int depth) {
    node->kind = JsonNode::Kind::kObject;
    const size_t open = pos_;
    ++pos_;  // {
    SkipSpace();
    if (pos_ < src_.size() && src_[pos_] == '}') {
      ++pos_;
      return true;
    }
    while (true) {
      SkipSpace();
      if (pos_ >= src_.size()) {
        return Fail(open, "unterminated object: no closing '}'");
      }
      if (src_[pos_] != '"') {
        if (src_[pos_] == '}') {
          return Fail(pos_,
                      "expected a member name before '}' (trailing "
                      "commas are not JSON)");
        }
        return Fail(pos_, "expected a member name in double quotes");
      }
      JsonNode member;
      member.key_begin = pos_;
      JsonStringError e;
      const size_t next = DecodeJsonString(src_, pos_, options_.strings,
                                           &member.key, nullptr, &e);
      if (next == 0) return Fail(e.at, std::move(e.message));
      pos_ = next;
      SkipSpace();
      if (pos_ >= src_.size() || src_[pos_] != ':') {
        return Fail(pos_, "expected ':' after the member name");
      }
      ++pos_;
      SkipSpace();
      if (!ParseValue(&member, depth + 1)) return false;
      node->children.push_back(std::move(member));
      SkipSpace();
      if (pos_ < src_.size() && src_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < src_.size() && src_[pos_] == '}') {
        ++pos_;
        return true;
      }
      if (pos_ >= src_.size()) {
        return Fail(open, "unterminated object: no closing '}'");
      }
      return Fail(pos_, "expected ',' or '}' after an object member");
    }
  }

  absl::string_view src_;
  const JsonReaderOptions& options_;
  size_t pos_ = 0;
  size_t error_at_ = 0;
  std::string error_;
};

}  // namespace

const char* JsonKindName(JsonNode::Kind kind) {
  switch (kind) {
    case JsonNode::Kind::kNull:
      return "null";
    case JsonNode::Kind::kBool:
      return "a boolean";
    case JsonNode::Kind::kNumber:
      return "a number";
    case JsonNode::Kind::kString:
      return "a string";
    case JsonNode::Kind::kArray:
      return "an array";
    case JsonNode::Kind::kObject:
      return "an object";
  }
  return "?";
}

const JsonNode* FindJsonMember(const JsonNode& object, absl::string_view key,
                               bool ignore_case) {
  if (object.kind != JsonNode::Kind::kObject) return nullptr;
  const JsonNode* found = nullptr;
  // The last exact duplicate wins, as in Newtonsoft's JObject.
  for (const JsonNode& m : object.children) {
    if (m.key == key) found = &m;
  }
  if (found != nullptr || !ignore_case) return found;
  for (const JsonNode& m : object.children) {
    if (absl::EqualsIgnoreCase(m.key, key)) found = &m;
  }
  return found;
}

bool ReadJson(absl::string_view text, const JsonReaderOptions& options,
              JsonNode* root, JsonReadError* error) {
  JsonReader reader(text, options);
  if (reader.Parse(root)) return true;
  error->at = reader.error_at();
  error->message = reader.error();
  return false;
}

}  // namespace edgeroute
