#include "base/source_text.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/utf8.h"

namespace edgeroute {

LineIndex::LineIndex(absl::string_view text) : text_(text) {
  starts_.push_back(0);
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n') starts_.push_back(i + 1);
  }
}

TextPosition LineIndex::Position(size_t offset) const {
  if (offset > text_.size()) offset = text_.size();
  const size_t line = std::upper_bound(starts_.begin(), starts_.end(), offset) -
                      starts_.begin();  // 1-based
  TextPosition p;
  p.line = static_cast<int>(line);
  p.line_begin = starts_[line - 1];
  for (size_t i = p.line_begin; i < offset; ++i) {
    if (!IsUtf8Continuation(text_[i])) ++p.column;
  }
  return p;
}

int EndColumnOf(absl::string_view text, size_t begin, size_t end,
                const TextPosition& start) {
  int column = start.column;
  for (size_t i = begin; i < end && i < text.size(); ++i) {
    if (text[i] == '\n' || text[i] == '\r') break;
    if (!IsUtf8Continuation(text[i])) ++column;
  }
  return std::max(column, start.column + 1);
}

size_t OffsetOfLineColumn(absl::string_view text, int line, int column) {
  size_t i = 0;
  for (int l = 1; l < line && i < text.size(); ++i) {
    if (text[i] == '\n') ++l;
  }
  for (int c = 1; c < column && i < text.size();) {
    if (text[i] == '\n') break;
    ++i;
    while (i < text.size() && IsUtf8Continuation(text[i])) ++i;
    ++c;
  }
  return i;
}

std::string CaretExcerpt(absl::string_view text, size_t line_begin, int column,
                         int end_column) {
  size_t line_end = text.find('\n', line_begin);
  if (line_end == absl::string_view::npos) line_end = text.size();
  absl::string_view line = text.substr(line_begin, line_end - line_begin);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  // Split the line into characters.
  std::vector<absl::string_view> chars;
  for (size_t i = 0; i < line.size();) {
    size_t n = 1;
    while (i + n < line.size() && IsUtf8Continuation(line[i + n])) ++n;
    chars.push_back(line.substr(i, n));
    i += n;
  }
  constexpr int kWindow = 100;
  constexpr int kBefore = 40;
  int first = 0;  // index of the first character shown
  int last = static_cast<int>(chars.size());
  std::string prefix, suffix;
  if (last > kWindow + 20) {
    first = std::max(0, column - 1 - kBefore);
    if (first > 0) prefix = "...";
    if (first + kWindow < last) {
      last = first + kWindow;
      suffix = "...";
    }
  }
  std::string out = prefix;
  std::string carets(prefix.size(), ' ');
  for (int i = first; i < last; ++i) {
    out.append(chars[i].data(), chars[i].size());
    if (i < column - 1) carets.push_back(chars[i] == "\t" ? '\t' : ' ');
  }
  out += suffix;
  if (column - 1 >= last) {
    carets.append(static_cast<size_t>(column - 1 - last), ' ');
  }
  carets.push_back('^');
  const int width = std::min(end_column, last + 2) - column;
  for (int i = 1; i < width; ++i) carets.push_back('~');
  return absl::StrCat(out, "\n", carets);
}

}  // namespace edgeroute
