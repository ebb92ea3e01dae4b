// A small SVG writer for the charts retain draws itself (the workspace report): shapes, text,
// axes with "nice" ticks, line charts and bar charts. Every string that reaches the output is
// escaped here, so a caller can pass a user's test-set name or an error message as it is.
//
// Coordinates are SVG user units (pixels at 100 %); y grows downwards. The output is an inline
// <svg> element (no XML prolog, no external references) for an HTML page.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace retain {

// `text` with & < > " ' replaced by entities: safe in XML and HTML text and in quoted attributes.
std::string xml_escape(std::string_view text);

// A number for a label: %.4g, with "-0" shown as "0"; non-finite values as "nan", "inf", "-inf".
std::string format_number(double value);

// `text` cut to at most `max_bytes` bytes at a UTF-8 character boundary, with "…" when cut.
std::string shorten(const std::string& text, size_t max_bytes);

// Tick positions covering [lo, hi]: multiples of 1, 2 or 5 × 10^k, about `target` of them (at
// least two when lo < hi). lo == hi gives {lo}. Non-finite bounds give {}.
std::vector<double> nice_ticks(double lo, double hi, int target);

class Svg {
 public:
  // An element `width` × `height` units; `label` becomes its aria-label (a screen reader's name).
  Svg(double width, double height, const std::string& label);

  // `title` (when non-empty) is the tooltip a browser shows on hover.
  void line(double x1, double y1, double x2, double y2, const std::string& stroke, double width = 1,
            const std::string& dash = "");
  void rect(double x, double y, double w, double h, const std::string& fill, const std::string& stroke = "none",
            double radius = 0, const std::string& title = "");
  void circle(double cx, double cy, double r, const std::string& fill, const std::string& stroke = "none",
              double stroke_width = 1, const std::string& title = "");
  void polyline(const std::vector<std::pair<double, double>>& points, const std::string& stroke, double width = 1.5,
                const std::string& dash = "");
  enum class Anchor { kStart, kMiddle, kEnd };
  // Text at (x, y) (the baseline); `rotate` degrees about that point.
  void text(double x, double y, const std::string& text, Anchor anchor = Anchor::kStart, double size = 12,
            const std::string& fill = "#222", double rotate = 0, bool bold = false);
  // Children of a link to `href` (a fragment such as "#v-support-v2") until end_link().
  void begin_link(const std::string& href);
  void end_link();

  double width() const { return width_; }
  double height() const { return height_; }
  std::string str() const;

 private:
  double width_, height_;
  std::string label_, body_;
};

// A plot area inside an Svg, mapping data coordinates to units: draws the frame, grid lines,
// tick labels and axis titles. A degenerate range (lo == hi) is widened so that it maps.
class Axes {
 public:
  Axes(Svg& svg, double left, double top, double width, double height, std::pair<double, double> x_range,
       std::pair<double, double> y_range);
  double x(double value) const;
  double y(double value) const;
  // Grid and tick labels for both axes, the frame, and the titles (skipped when empty).
  void draw(const std::string& x_title, const std::string& y_title, int x_ticks = 5, int y_ticks = 4);
  const std::vector<double>& y_ticks() const { return y_tick_values_; }

 private:
  Svg& svg_;
  double left_, top_, width_, height_;
  double x0_, x1_, y0_, y1_;
  std::vector<double> y_tick_values_;
};

// The range of `values` (finite ones), padded by `pad` of its span on each side; {0, 1} when none.
std::pair<double, double> padded_range(const std::vector<double>& values, double pad);

struct ChartSeries {
  std::string name, color;
  std::vector<std::pair<double, double>> points;  // (x, y), finite values only are drawn
  bool dashed = false;
};

// A line chart `width` × `height` with a title, axis titles, one polyline per series (with a dot
// at each point when a series has few), and a legend when there is more than one series.
std::string line_chart(const std::string& title, const std::string& x_title, const std::string& y_title,
                       const std::vector<ChartSeries>& series, double width = 360, double height = 220);

struct BarGroup {
  std::string label;                 // under the group (a test set)
  std::string note;                  // a second line under it (the metric), may be empty
  std::vector<std::optional<double>> values;  // one per bar name; nullopt: no bar ("n/a")
};

// Grouped bars: each group has one bar per entry of `bar_names` (coloured by `colors`), its value
// written above it; each group is scaled on its own y axis from 0 (values of different metrics
// share a chart without one dwarfing the other), and a legend names the bars.
std::string bar_chart(const std::string& title, const std::vector<std::string>& bar_names,
                      const std::vector<std::string>& colors, const std::vector<BarGroup>& groups,
                      double group_width = 170, double height = 220);

}  // namespace retain
