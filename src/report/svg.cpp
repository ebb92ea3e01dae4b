// The SVG writer and the two generic charts of svg.h. Hand-written: no plotting library for C++
// in Debian draws a better line chart than these few functions, and the output has to be one
// self-contained element anyway.
#include "retain/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace retain {

namespace {

// Coordinates with one decimal: enough at screen resolution, and short.
std::string num(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", v);
  return text;
}

std::string attr(const char* name, const std::string& value) { return std::string(" ") + name + "=\"" + xml_escape(value) + "\""; }
std::string attr(const char* name, double value) { return std::string(" ") + name + "=\"" + num(value) + "\""; }

std::string title_element(const std::string& title) {
  return title.empty() ? "" : "<title>" + xml_escape(title) + "</title>";
}

}  // namespace

std::string xml_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string format_number(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char text[32];
  // Whole numbers up to a billion in full (tokens/s: 15000, not 1.5e+04).
  if (std::abs(value) >= 1e4 && std::abs(value) < 1e9) std::snprintf(text, sizeof text, "%.0f", value);
  else std::snprintf(text, sizeof text, "%.4g", value == 0 ? 0.0 : value);
  return text;
}

std::string shorten(const std::string& text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // a continuation byte
  return text.substr(0, cut) + "…";
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) return {};
  if (hi < lo) std::swap(lo, hi);
  if (lo == hi) return {lo};
  const double raw = (hi - lo) / std::max(1, target);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = 10 * magnitude;
  for (const double m : {1.0, 2.0, 5.0})
    if (raw <= m * magnitude) {
      step = m * magnitude;
      break;
    }
  std::vector<double> ticks;
  // Multiples of the step from the first at or above lo; the index keeps float error from piling up.
  const double first = std::ceil(lo / step - 1e-9);
  for (int i = 0;; ++i) {
    const double t = (first + i) * step;
    if (t > hi + step * 1e-9) break;
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  }
  if (ticks.size() < 2) ticks = {lo, hi};
  return ticks;
}

Svg::Svg(double width, double height, const std::string& label) : width_(width), height_(height), label_(label) {}

void Svg::line(double x1, double y1, double x2, double y2, const std::string& stroke, double width,
               const std::string& dash) {
  body_ += "<line" + attr("x1", x1) + attr("y1", y1) + attr("x2", x2) + attr("y2", y2) + attr("stroke", stroke) +
           attr("stroke-width", width) + (dash.empty() ? "" : attr("stroke-dasharray", dash)) + "/>\n";
}

void Svg::rect(double x, double y, double w, double h, const std::string& fill, const std::string& stroke, double radius,
               const std::string& title) {
  body_ += "<rect" + attr("x", x) + attr("y", y) + attr("width", std::max(0.0, w)) + attr("height", std::max(0.0, h)) +
           attr("fill", fill) + attr("stroke", stroke) + (radius > 0 ? attr("rx", radius) : "") + ">" +
           title_element(title) + "</rect>\n";
}

void Svg::circle(double cx, double cy, double r, const std::string& fill, const std::string& stroke, double stroke_width,
                 const std::string& title) {
  body_ += "<circle" + attr("cx", cx) + attr("cy", cy) + attr("r", r) + attr("fill", fill) + attr("stroke", stroke) +
           attr("stroke-width", stroke_width) + ">" + title_element(title) + "</circle>\n";
}

void Svg::polyline(const std::vector<std::pair<double, double>>& points, const std::string& stroke, double width,
                   const std::string& dash) {
  std::string coords;
  for (const auto& [x, y] : points) coords += (coords.empty() ? "" : " ") + num(x) + "," + num(y);
  body_ += "<polyline fill=\"none\"" + attr("stroke", stroke) + attr("stroke-width", width) +
           (dash.empty() ? "" : attr("stroke-dasharray", dash)) + " stroke-linejoin=\"round\" points=\"" + coords +
           "\"/>\n";
}

void Svg::text(double x, double y, const std::string& text, Anchor anchor, double size, const std::string& fill,
               double rotate, bool bold) {
  const char* anchors[] = {"start", "middle", "end"};
  body_ += "<text" + attr("x", x) + attr("y", y) + attr("text-anchor", anchors[int(anchor)]) + attr("font-size", size) +
           attr("fill", fill) + (bold ? " font-weight=\"bold\"" : "") +
           (rotate != 0 ? " transform=\"rotate(" + num(rotate) + " " + num(x) + " " + num(y) + ")\"" : "") + ">" +
           xml_escape(text) + "</text>\n";
}

void Svg::begin_link(const std::string& href) { body_ += "<a" + attr("href", href) + ">\n"; }
void Svg::end_link() { body_ += "</a>\n"; }

std::string Svg::str() const {
  return "<svg" + attr("width", width_) + attr("height", height_) + " viewBox=\"0 0 " + num(width_) + " " +
         num(height_) + "\" role=\"img\"" + attr("aria-label", label_) +
         " font-family=\"system-ui, sans-serif\">\n" + body_ + "</svg>\n";
}

Axes::Axes(Svg& svg, double left, double top, double width, double height, std::pair<double, double> x_range,
           std::pair<double, double> y_range)
    : svg_(svg), left_(left), top_(top), width_(width), height_(height),
      x0_(x_range.first), x1_(x_range.second), y0_(y_range.first), y1_(y_range.second) {
  auto widen = [](double& lo, double& hi) {
    if (!(hi > lo)) {
      const double pad = std::max(1e-9, std::abs(lo) * 0.1);
      lo -= pad, hi += pad;
    }
  };
  widen(x0_, x1_);
  widen(y0_, y1_);
}

double Axes::x(double value) const { return left_ + (value - x0_) / (x1_ - x0_) * width_; }
double Axes::y(double value) const { return top_ + height_ - (value - y0_) / (y1_ - y0_) * height_; }

void Axes::draw(const std::string& x_title, const std::string& y_title, int x_ticks, int y_ticks) {
  y_tick_values_ = nice_ticks(y0_, y1_, y_ticks);
  for (const double t : y_tick_values_) {
    if (t < y0_ || t > y1_) continue;
    svg_.line(left_, y(t), left_ + width_, y(t), "#e6e6e6");
    svg_.text(left_ - 6, y(t) + 4, format_number(t), Svg::Anchor::kEnd, 10, "#555");
  }
  if (x_ticks > 0)
    for (const double t : nice_ticks(x0_, x1_, x_ticks)) {
      if (t < x0_ || t > x1_) continue;
      svg_.line(x(t), top_ + height_, x(t), top_ + height_ + 4, "#888");
      svg_.text(x(t), top_ + height_ + 16, format_number(t), Svg::Anchor::kMiddle, 10, "#555");
    }
  svg_.line(left_, top_ + height_, left_ + width_, top_ + height_, "#888");
  svg_.line(left_, top_, left_, top_ + height_, "#888");
  if (!x_title.empty()) svg_.text(left_ + width_ / 2, top_ + height_ + 32, x_title, Svg::Anchor::kMiddle, 11, "#444");
  if (!y_title.empty())
    svg_.text(left_ - 44, top_ + height_ / 2, y_title, Svg::Anchor::kMiddle, 11, "#444", -90);
}

std::pair<double, double> padded_range(const std::vector<double>& values, double pad) {
  double lo = INFINITY, hi = -INFINITY;
  for (const double v : values)
    if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  if (lo > hi) return {0, 1};
  const double span = hi > lo ? hi - lo : std::max(std::abs(lo), 1e-9);
  return {lo - pad * span, hi + pad * span};
}

std::string line_chart(const std::string& title, const std::string& x_title, const std::string& y_title,
                       const std::vector<ChartSeries>& series, double width, double height) {
  Svg svg(width, height, title);
  svg.text(12, 18, title, Svg::Anchor::kStart, 13, "#222", 0, true);
  std::vector<double> xs, ys;
  for (const auto& s : series)
    for (const auto& [x, y] : s.points)
      if (std::isfinite(x) && std::isfinite(y)) xs.push_back(x), ys.push_back(y);
  const double legend = series.size() > 1 ? 16.0 * double(series.size() > 3 ? 2 : 1) : 0;
  const double left = 62, top = 30 + legend, right = 14, bottom = 42;
  Axes axes(svg, left, top, width - left - right, height - top - bottom, padded_range(xs, 0), padded_range(ys, 0.08));
  axes.draw(x_title, y_title);
  double lx = left;
  for (size_t i = 0; i < series.size(); ++i) {
    const auto& s = series[i];
    std::vector<std::pair<double, double>> points;
    for (const auto& [x, y] : s.points)
      if (std::isfinite(x) && std::isfinite(y)) points.emplace_back(axes.x(x), axes.y(y));
    if (points.size() > 1) svg.polyline(points, s.color, 1.8, s.dashed ? "5 3" : "");
    if (points.size() <= 12)
      for (const auto& [px, py] : points) svg.circle(px, py, 2.6, s.color);
    if (series.size() > 1) {
      const double ly = 30 + (i >= 3 && series.size() > 3 ? 16 : 0);
      if (i == 3) lx = left;
      svg.line(lx, ly - 4, lx + 16, ly - 4, s.color, 2, s.dashed ? "5 3" : "");
      svg.text(lx + 20, ly, s.name, Svg::Anchor::kStart, 10, "#333");
      lx += 28 + 6.2 * double(s.name.size());
    }
  }
  if (xs.empty()) svg.text(left + (width - left - right) / 2, top + 40, "no data", Svg::Anchor::kMiddle, 12, "#888");
  return svg.str();
}

std::string bar_chart(const std::string& title, const std::vector<std::string>& bar_names,
                      const std::vector<std::string>& colors, const std::vector<BarGroup>& groups, double group_width,
                      double height) {
  const double left = 12, top = 50, bottom = 44;
  const double width = left * 2 + group_width * double(std::max<size_t>(1, groups.size()));
  Svg svg(width, height, title);
  svg.text(left, 18, title, Svg::Anchor::kStart, 13, "#222", 0, true);
  double lx = left;
  for (size_t b = 0; b < bar_names.size(); ++b) {
    svg.rect(lx, 28, 10, 10, colors[b % colors.size()], "none", 2);
    svg.text(lx + 14, 37, bar_names[b], Svg::Anchor::kStart, 10, "#333");
    lx += 30 + 6.2 * double(bar_names[b].size());
  }
  const double plot_h = height - top - bottom, base_y = top + plot_h;
  for (size_t g = 0; g < groups.size(); ++g) {
    const auto& group = groups[g];
    const double gx = left + group_width * double(g);
    double hi = 0;
    for (const auto& v : group.values)
      if (v && std::isfinite(*v)) hi = std::max(hi, std::abs(*v));
    if (hi == 0) hi = 1;
    const double slot = (group_width - 30) / double(std::max<size_t>(1, group.values.size()));
    for (size_t b = 0; b < group.values.size(); ++b) {
      const double bx = gx + 15 + slot * double(b) + slot * 0.12, bw = slot * 0.76;
      const auto& v = group.values[b];
      const std::string name = b < bar_names.size() ? bar_names[b] : "";
      if (!v || !std::isfinite(*v)) {
        svg.text(bx + bw / 2, base_y - 4, "n/a", Svg::Anchor::kMiddle, 10, "#999");
        continue;
      }
      const double h = std::abs(*v) / hi * plot_h * 0.92;
      svg.rect(bx, base_y - h, bw, h, colors[b % colors.size()], "none", 2,
               group.label + " · " + name + ": " + format_number(*v));
      svg.text(bx + bw / 2, base_y - h - 4, format_number(*v), Svg::Anchor::kMiddle, 10, "#333");
    }
    svg.line(gx + 10, base_y, gx + group_width - 10, base_y, "#888");
    svg.text(gx + group_width / 2, base_y + 16, shorten(group.label, 26), Svg::Anchor::kMiddle, 11, "#222");
    if (!group.note.empty()) svg.text(gx + group_width / 2, base_y + 30, group.note, Svg::Anchor::kMiddle, 10, "#666");
  }
  return svg.str();
}

}  // namespace retain
