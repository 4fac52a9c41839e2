#include "base/source_text.h"

#include <string>

#include "gtest/gtest.h"

namespace edgeroute {
namespace {

TEST(LineIndexTest, LinesAndCharacterColumns) {
  const std::string text = "ab\n\xc3\xa9x\n\ty";
  const LineIndex lines(text);
  TextPosition p = lines.Position(0);
  EXPECT_EQ(p.line, 1);
  EXPECT_EQ(p.column, 1);
  p = lines.Position(5);  // 'x' after a two-byte character
  EXPECT_EQ(p.line, 2);
  EXPECT_EQ(p.column, 2);
  EXPECT_EQ(p.line_begin, 3u);
  p = lines.Position(8);  // 'y' after a tab
  EXPECT_EQ(p.line, 3);
  EXPECT_EQ(p.column, 2);
  p = lines.Position(1000);  // clamped to the end
  EXPECT_EQ(p.line, 3);
  EXPECT_EQ(p.column, 3);
}

TEST(EndColumnOfTest, StopsAtTheEndOfTheFirstLine) {
  const std::string text = "abc\r\ndef";
  const TextPosition start = LineIndex(text).Position(1);
  EXPECT_EQ(EndColumnOf(text, 1, 3, start), 4);
  EXPECT_EQ(EndColumnOf(text, 1, 8, start), 4);  // not past '\r'
  EXPECT_EQ(EndColumnOf(text, 1, 1, start), 3);  // at least one column
}

TEST(OffsetOfLineColumnTest, InvertsPositions) {
  const std::string text = "a\xc3\xa9z\nxy";
  EXPECT_EQ(OffsetOfLineColumn(text, 1, 3), 3u);
  EXPECT_EQ(OffsetOfLineColumn(text, 2, 2), 6u);
  EXPECT_EQ(OffsetOfLineColumn(text, 1, 99), 4u);  // end of the line
  EXPECT_EQ(OffsetOfLineColumn(text, 9, 1), text.size());
}

TEST(CaretExcerptTest, CaretUnderTheRangeWithTabsKept) {
  const std::string text = "first\n\tk! = 'x'\r\nlast";
  EXPECT_EQ(CaretExcerpt(text, 6, 2, 4), "\tk! = 'x'\n\t^~");
  // Past the end of the line: the caret still shows where.
  EXPECT_EQ(CaretExcerpt(text, 0, 6, 7), "first\n     ^");
}

TEST(CaretExcerptTest, LongLinesAreCutAroundTheCaret) {
  std::string text(300, 'a');
  text[200] = 'X';
  const std::string excerpt = CaretExcerpt(text, 0, 201, 202);
  const size_t newline = excerpt.find('\n');
  const std::string line = excerpt.substr(0, newline);
  const std::string carets = excerpt.substr(newline + 1);
  EXPECT_EQ(line.substr(0, 3), "...");
  EXPECT_EQ(line.substr(line.size() - 3), "...");
  EXPECT_EQ(line.size(), 106u);
  EXPECT_EQ(line[carets.size() - 1], 'X');
  EXPECT_EQ(carets.back(), '^');
}

}  // namespace
}  // namespace edgeroute
