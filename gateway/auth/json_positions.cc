#include "gateway/auth/json_positions.h"

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace edgeroute {
namespace gateway {
namespace auth {
namespace {

using Json = nlohmann::ordered_json;

// An input iterator over the text that records how many bytes nlohmann's
// lexer has taken from it. In every SAX callback that count ends the token
// just read (a number's count includes the one byte of look-ahead that ended
// it), which is how the recorder finds where values start.
class CountingIterator {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;

  CountingIterator(const char* base, const char* at, size_t* consumed)
      : base_(base), at_(at), consumed_(consumed) {}

  reference operator*() const {
    *consumed_ = static_cast<size_t>(at_ - base_) + 1;
    return *at_;
  }
  CountingIterator& operator++() {
    ++at_;
    return *this;
  }
  CountingIterator operator++(int) {
    CountingIterator before = *this;
    ++at_;
    return before;
  }
  bool operator==(const CountingIterator& other) const {
    return at_ == other.at_;
  }
  bool operator!=(const CountingIterator& other) const {
    return at_ != other.at_;
  }

 private:
  const char* base_;
  const char* at_;
  size_t* consumed_;
};

bool IsNumberByte(char c) {
  return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' ||
         c == 'e' || c == 'E';
}

bool IsLetter(char c) { return c >= 'a' && c <= 'z'; }

// nlohmann's message without its "[json.exception...] parse error at line L,
// column C: " prefix (the position is reported in our own form).
std::string ParseErrorText(const char* what) {
  const absl::string_view text(what);
  const size_t column = text.find("column ");
  if (column != absl::string_view::npos) {
    const size_t colon = text.find(": ", column);
    if (colon != absl::string_view::npos) {
      return std::string(text.substr(colon + 2));
    }
  }
  return std::string(text);
}

}  // namespace

// The SAX handler that builds the document and records positions.
class PositionRecorder {
 public:
  using number_integer_t = Json::number_integer_t;
  using number_unsigned_t = Json::number_unsigned_t;
  using number_float_t = Json::number_float_t;
  using string_t = Json::string_t;
  using binary_t = Json::binary_t;

  PositionRecorder(absl::string_view text, const size_t* consumed,
                   size_t max_depth, PositionedJson* out)
      : text_(text), consumed_(consumed), max_depth_(max_depth), out_(out) {}

  bool null() { return Add(nullptr, LiteralStart()) != nullptr; }
  bool boolean(bool value) { return Add(value, LiteralStart()) != nullptr; }
  bool number_integer(number_integer_t value) {
    return Add(value, NumberStart()) != nullptr;
  }
  bool number_unsigned(number_unsigned_t value) {
    return Add(value, NumberStart()) != nullptr;
  }
  bool number_float(number_float_t value, const string_t& /*text*/) {
    return Add(value, NumberStart()) != nullptr;
  }
  bool string(string_t& value) {
    return Add(std::move(value), StringStart()) != nullptr;
  }
  bool binary(binary_t& /*value*/) {
    return Fail(*consumed_, "binary values are not JSON");
  }
  bool start_object(size_t /*elements*/) {
    return Open(Json::object(), "object");
  }
  bool start_array(size_t /*elements*/) { return Open(Json::array(), "array"); }
  bool end_object() {
    stack_.pop_back();
    return true;
  }
  bool end_array() {
    stack_.pop_back();
    return true;
  }
  bool key(string_t& name) {
    const size_t start = StringStart();
    const std::string pointer =
        PositionedJson::Pointer(stack_.back().pointer, name);
    if (stack_.back().node->contains(name)) {
      return Fail(start,
                  absl::StrCat("member \"", name, "\" appears twice (first at ",
                               out_->WhereName(pointer), ")"));
    }
    pending_name_ = std::move(name);
    pending_name_offset_ = start;
    return true;
  }
  bool parse_error(size_t position, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& error) {
    // `position` counts bytes read including the offending one.
    return Fail(position == 0 ? 0 : position - 1, ParseErrorText(error.what()));
  }

  bool failed() const { return !error_.empty(); }
  absl::Status error() const {
    return absl::InvalidArgumentError(absl::StrCat(
        error_position_.line, ":", error_position_.column, ": ", error_));
  }

 private:
  struct Open_ {
    Json* node;
    std::string pointer;
  };

  // Where the string token that ends at *consumed_ starts (its opening
  // quote): the nearest '"' before the closing one that is not escaped.
  size_t StringStart() const {
    size_t end = std::min(*consumed_, text_.size());
    if (end < 2) return 0;
    for (size_t i = end - 1; i-- > 0;) {
      if (text_[i] != '"') continue;
      size_t backslashes = 0;
      while (backslashes < i && text_[i - 1 - backslashes] == '\\') {
        ++backslashes;
      }
      if (backslashes % 2 == 0) return i;
    }
    return 0;
  }
  size_t NumberStart() const {
    size_t end = std::min(*consumed_, text_.size());
    // The byte of look-ahead that ended the number (absent at the end of the
    // text). When it could continue a number, the text is not valid JSON
    // anyway and the parse fails right after this value.
    if (end > 0 && !IsNumberByte(text_[end - 1])) --end;
    while (end > 0 && IsNumberByte(text_[end - 1])) --end;
    return end;
  }
  size_t LiteralStart() const {
    size_t end = std::min(*consumed_, text_.size());
    while (end > 0 && IsLetter(text_[end - 1])) --end;
    return end;
  }

  // Adds `value` where the parser is (root, array element or object member)
  // and records its position. Returns the added value.
  Json* Add(Json value, size_t start) {
    std::string pointer;
    Json* added;
    if (stack_.empty()) {
      out_->root_ = std::move(value);
      added = &out_->root_;
    } else if (stack_.back().node->is_array()) {
      Json& array = *stack_.back().node;
      pointer = PositionedJson::Pointer(stack_.back().pointer, array.size());
      array.push_back(std::move(value));
      added = &array.back();
    } else {
      pointer = PositionedJson::Pointer(stack_.back().pointer, pending_name_);
      out_->name_offsets_[pointer] = pending_name_offset_;
      Json& member = (*stack_.back().node)[pending_name_];
      member = std::move(value);
      added = &member;
    }
    out_->value_offsets_[pointer] = start;
    last_pointer_ = std::move(pointer);
    return added;
  }
  bool Open(Json container, const char* kind) {
    const size_t start = *consumed_ == 0 ? 0 : *consumed_ - 1;
    if (stack_.size() >= max_depth_) {
      return Fail(start, absl::StrCat(kind, " nested deeper than ", max_depth_,
                                      " levels"));
    }
    Json* added = Add(std::move(container), start);
    stack_.push_back(Open_{added, last_pointer_});
    return true;
  }
  bool Fail(size_t offset, std::string message) {
    if (error_.empty()) {
      error_position_ = PositionedJson::PositionOf(text_, offset);
      error_ = std::move(message);
    }
    return false;
  }

  absl::string_view text_;
  const size_t* consumed_;
  size_t max_depth_;
  PositionedJson* out_;
  // Open containers, innermost last. Only the innermost one grows, so the
  // pointers to the others stay valid.
  std::vector<Open_> stack_;
  std::string pending_name_;
  size_t pending_name_offset_ = 0;
  std::string last_pointer_;
  TextPosition error_position_;
  std::string error_;
};

absl::StatusOr<PositionedJson> PositionedJson::Parse(absl::string_view text,
                                                     size_t max_depth) {
  PositionedJson out;
  out.line_starts_.push_back(0);
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n') out.line_starts_.push_back(i + 1);
  }
  size_t consumed = 0;
  PositionRecorder recorder(text, &consumed, max_depth, &out);
  const CountingIterator first(text.data(), text.data(), &consumed);
  const CountingIterator last(text.data(), text.data() + text.size(),
                              &consumed);
  const bool ok = Json::sax_parse(first, last, &recorder);
  if (!ok || recorder.failed()) {
    if (recorder.failed()) return recorder.error();
    return absl::InvalidArgumentError("1:1: not a JSON document");
  }
  return out;
}

TextPosition PositionedJson::PositionOf(absl::string_view text, size_t offset) {
  offset = std::min(offset, text.size());
  TextPosition position;
  size_t line_start = 0;
  for (size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++position.line;
      line_start = i + 1;
    }
  }
  position.column = offset - line_start + 1;
  return position;
}

TextPosition PositionedJson::PositionOfOffset(size_t offset) const {
  // The last line that starts at or before `offset`.
  const auto next =
      std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
  const size_t line = static_cast<size_t>(next - line_starts_.begin());
  TextPosition position;
  position.line = line;
  position.column = offset - line_starts_[line - 1] + 1;
  return position;
}

TextPosition PositionedJson::ValueAt(const std::string& pointer) const {
  auto it = value_offsets_.find(pointer);
  return PositionOfOffset(it == value_offsets_.end() ? 0 : it->second);
}

TextPosition PositionedJson::NameAt(const std::string& pointer) const {
  auto it = name_offsets_.find(pointer);
  if (it == name_offsets_.end()) return ValueAt(pointer);
  return PositionOfOffset(it->second);
}

std::string PositionedJson::WhereValue(const std::string& pointer) const {
  const TextPosition p = ValueAt(pointer);
  return absl::StrCat(p.line, ":", p.column);
}

std::string PositionedJson::WhereName(const std::string& pointer) const {
  const TextPosition p = NameAt(pointer);
  return absl::StrCat(p.line, ":", p.column);
}

std::string PositionedJson::Pointer(const std::string& parent,
                                    absl::string_view name) {
  return absl::StrCat(parent, "/",
                      absl::StrReplaceAll(name, {{"~", "~0"}, {"/", "~1"}}));
}

std::string PositionedJson::Pointer(const std::string& parent, size_t index) {
  return absl::StrCat(parent, "/", index);
}

}  // namespace auth
}  // namespace gateway
}  // namespace edgeroute
