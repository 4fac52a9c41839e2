// Positions in a source text (line, column) and caret excerpts, for every
// diagnostic the project prints: route and condition errors (query/), and
// manifest errors, where route diagnostics are moved to the manifest line.
//
// Lines are separated by '\n' (a '\r' before it is not shown); columns are
// 1-based and count characters (UTF-8 sequences: bytes that are not
// continuation bytes), a tab counting as one.
//
// Thread-safety: LineIndex is immutable after construction; the functions
// are pure.

#ifndef EDGEROUTE_BASE_SOURCE_TEXT_H_
#define EDGEROUTE_BASE_SOURCE_TEXT_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace edgeroute {

struct TextPosition {
  int line = 1;
  int column = 1;
  // Offset of the first byte of `line`.
  size_t line_begin = 0;
};

// The line starts of a text, so that many offsets can be turned into
// positions without rescanning the text for each. The text must outlive
// the index.
class LineIndex {
 public:
  explicit LineIndex(absl::string_view text);

  // The position of byte `offset` (clamped to the text's size).
  TextPosition Position(size_t offset) const;

 private:
  absl::string_view text_;
  std::vector<size_t> starts_;
};

// The column one past [begin, end) when the range stays on the line of
// `start` (the position of `begin`); otherwise one past that line's last
// character. Always > start.column.
int EndColumnOf(absl::string_view text, size_t begin, size_t end,
                const TextPosition& start);

// The byte offset of 1-based (line, column), clamped to the end of the line
// and of the text.
size_t OffsetOfLineColumn(absl::string_view text, int line, int column);

// The line that starts at `line_begin`, "\n", and a caret line under its
// characters [column, end_column): spaces (tabs kept, so the caret lines up)
// then "^~~~". A line longer than 120 characters is cut to a 100-character
// window around the caret, with "..." where it was cut.
std::string CaretExcerpt(absl::string_view text, size_t line_begin, int column,
                         int end_column);

}  // namespace edgeroute

#endif  // EDGEROUTE_BASE_SOURCE_TEXT_H_
