// Plain-text tables for a terminal (the round summary, the sweep, `registry list`): left-aligned
// columns, each as wide as its longest cell, so that long test-set or version names never push a
// row out of line. Widths count UTF-8 code points, so "→", "λ" or "✗" take one column like any
// letter (East Asian wide characters, which take two on most terminals, are not special-cased).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace retain {

// The columns `s` takes on a terminal: its UTF-8 code points (bytes that do not continue a
// multi-byte sequence). Bytes that are not valid UTF-8 count one each.
size_t display_width(const std::string& s);

// `s` followed by spaces up to `width` display columns (unchanged when it is as wide or wider).
std::string pad_right(const std::string& s, size_t width);

// The rows as lines, one '\n' each: cell c of every row starts at the same column, the widest cell
// of a column is followed by `gap` spaces, and trailing blanks are cut (a short row or an empty
// last cell leaves none). Rows may have different numbers of cells. No rows: "".
std::string format_table(const std::vector<std::vector<std::string>>& rows, size_t gap = 2);

}  // namespace retain
