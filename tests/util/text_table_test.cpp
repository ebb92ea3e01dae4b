// Tests of the plain-text tables (text_table.h): widths in code points, columns sized to their
// longest cell whatever the characters, no trailing blanks.
#include <gtest/gtest.h>

#include "retain/text_table.h"
#include "table_test_util.h"

namespace retain {
namespace {

using table_test::cell_offsets;

TEST(TextTable, WidthCountsCodePointsNotBytes) {
  EXPECT_EQ(display_width(""), 0u);
  EXPECT_EQ(display_width("abc"), 3u);
  EXPECT_EQ(std::string("→✗λ").size(), 8u);
  EXPECT_EQ(display_width("→✗λ"), 3u);
  EXPECT_EQ(display_width("a→b"), 3u);
  EXPECT_EQ(pad_right("λ", 3), "λ  ");
  EXPECT_EQ(pad_right("long", 2), "long");
}

TEST(TextTable, ColumnsStartAtTheSameOffsetsWhateverTheCells) {
  const std::string long_name(38, 'x');
  const std::string text = format_table({{"name", "metric", "result"},
                                         {long_name + "→✗", "loss", "pass"},
                                         {"λ", "token_accuracy", "FAIL"}});
  EXPECT_EQ(text,
            "name" + std::string(38, ' ') + "metric          result\n" +
            long_name + "→✗  loss            pass\n" +
            "λ" + std::string(41, ' ') + "token_accuracy  FAIL\n");
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) EXPECT_EQ(cell_offsets(line), (std::vector<size_t>{0, 42, 58})) << line;
}

TEST(TextTable, RaggedRowsAndEmptyLastCellsLeaveNoTrailingBlanks) {
  EXPECT_EQ(format_table({}), "");
  EXPECT_EQ(format_table({{"a", "bb", ""}, {"ccc"}, {"", "d"}}, 1), "a   bb\nccc\n    d\n");
}

}  // namespace
}  // namespace retain
