// Helpers of the tests of plain-text tables (text_table.h): where each cell of a printed line
// starts, in terminal columns, and the lines of a table inside a command's output.
#pragma once

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "retain/text_table.h"

namespace retain::table_test {

// The column (UTF-8 code points from the line's start) at which each cell of `line` starts; cells
// are separated by two or more spaces, as format_table prints them.
inline std::vector<size_t> cell_offsets(const std::string& line) {
  std::vector<size_t> out;
  size_t column = 0, spaces = 0;
  for (size_t i = 0; i < line.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(line[i]);
    if ((c & 0xC0) == 0x80) continue;  // inside a code point
    if (c == ' ') {
      ++spaces;
    } else {
      if (out.empty() || spaces >= 2) out.push_back(column);
      spaces = 0;
    }
    ++column;
  }
  return out;
}

// The lines of `text` from the first one that starts with `header` up to the next empty line.
inline std::vector<std::string> table_lines(const std::string& text, const std::string& header) {
  std::istringstream in(text);
  std::vector<std::string> out;
  std::string line;
  bool inside = false;
  while (std::getline(in, line)) {
    if (!inside && line.rfind(header, 0) == 0) inside = true;
    if (inside && line.empty()) break;
    if (inside) out.push_back(line);
  }
  return out;
}

// Every cell of every line starts at one of the header's (lines[0]'s) `columns` columns: a line may
// stop early or leave a cell empty, never start one elsewhere. Lines `full` fill every column.
inline void expect_columns(const std::vector<std::string>& lines, size_t columns, const std::vector<size_t>& full = {}) {
  ASSERT_FALSE(lines.empty());
  const auto header = cell_offsets(lines[0]);
  ASSERT_EQ(header.size(), columns) << lines[0];
  for (const auto& line : lines)
    for (size_t o : cell_offsets(line))
      EXPECT_NE(std::find(header.begin(), header.end(), o), header.end()) << "a cell at column " << o << " in\n" << line;
  for (size_t i : full) {
    ASSERT_LT(i, lines.size());
    EXPECT_EQ(cell_offsets(lines[i]), header) << lines[i];
  }
}

}  // namespace retain::table_test
