// The continual benchmark's chart: average accuracy after each task, one line per method, as a
// hand-written standalone SVG (no dependency; opens in any browser).
#include <cstdio>
#include <sstream>

#include "retain/continual_bench.h"

namespace retain {

namespace {

constexpr double kWidth = 640, kHeight = 400;
constexpr double kLeft = 60, kRight = 150, kTop = 40, kBottom = 50;  // margins around the plot
const char* const kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};

std::string num(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", v);
  return text;
}

}  // namespace

std::string continual_svg(const ContinualBenchResult& result) {
  const int64_t T = result.config.tasks;
  const double plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;
  auto px = [&](int64_t task) { return kLeft + (T == 1 ? plot_w / 2 : plot_w * double(task) / double(T - 1)); };
  auto py = [&](double acc) { return kTop + plot_h * (1.0 - acc); };

  std::ostringstream svg;
  svg << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << kWidth << "\" height=\"" << kHeight
      << "\" viewBox=\"0 0 " << kWidth << " " << kHeight << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
      << "<rect x=\"0\" y=\"0\" width=\"" << kWidth << "\" height=\"" << kHeight << "\" fill=\"white\"/>\n"
      << "<text x=\"" << num(kLeft + plot_w / 2) << "\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">"
      << "Fashion-MNIST " << protocol_name(result.config.protocol) << ": average accuracy after each task"
      << "</text>\n";
  // Grid and y ticks: 0, 0.2, …, 1.
  for (int i = 0; i <= 5; ++i) {
    const double y = py(i / 5.0);
    svg << "<line x1=\"" << num(kLeft) << "\" y1=\"" << num(y) << "\" x2=\"" << num(kLeft + plot_w) << "\" y2=\""
        << num(y) << "\" stroke=\"#dddddd\"/>\n"
        << "<text x=\"" << num(kLeft - 8) << "\" y=\"" << num(y + 4) << "\" text-anchor=\"end\">" << num(i / 5.0)
        << "</text>\n";
  }
  for (int64_t t = 0; t < T; ++t)
    svg << "<text x=\"" << num(px(t)) << "\" y=\"" << num(kTop + plot_h + 18) << "\" text-anchor=\"middle\">"
        << t + 1 << "</text>\n";
  // Axes and their labels.
  svg << "<line x1=\"" << num(kLeft) << "\" y1=\"" << num(kTop) << "\" x2=\"" << num(kLeft) << "\" y2=\""
      << num(kTop + plot_h) << "\" stroke=\"black\"/>\n"
      << "<line x1=\"" << num(kLeft) << "\" y1=\"" << num(kTop + plot_h) << "\" x2=\"" << num(kLeft + plot_w)
      << "\" y2=\"" << num(kTop + plot_h) << "\" stroke=\"black\"/>\n"
      << "<text x=\"" << num(kLeft + plot_w / 2) << "\" y=\"" << num(kHeight - 12)
      << "\" text-anchor=\"middle\">tasks trained</text>\n"
      << "<text x=\"16\" y=\"" << num(kTop + plot_h / 2) << "\" text-anchor=\"middle\" transform=\"rotate(-90 16 "
      << num(kTop + plot_h / 2) << ")\">average accuracy on tasks so far</text>\n";
  // One line per method, a dot per task, and a legend entry.
  for (size_t m = 0; m < result.methods.size(); ++m) {
    const auto& method = result.methods[m];
    const char* color = kColors[m % (sizeof kColors / sizeof kColors[0])];
    svg << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"2\" points=\"";
    for (size_t t = 0; t < method.average_after.size(); ++t)
      svg << (t ? " " : "") << num(px(int64_t(t))) << "," << num(py(method.average_after[t].mean));
    svg << "\"/>\n";
    for (size_t t = 0; t < method.average_after.size(); ++t)
      svg << "<circle cx=\"" << num(px(int64_t(t))) << "\" cy=\"" << num(py(method.average_after[t].mean))
          << "\" r=\"3\" fill=\"" << color << "\"/>\n";
    const double ly = kTop + 10 + 20 * double(m), lx = kLeft + plot_w + 16;
    svg << "<line x1=\"" << num(lx) << "\" y1=\"" << num(ly) << "\" x2=\"" << num(lx + 24) << "\" y2=\"" << num(ly)
        << "\" stroke=\"" << color << "\" stroke-width=\"2\"/>\n"
        << "<text x=\"" << num(lx + 30) << "\" y=\"" << num(ly + 4) << "\">" << method_name(method.method)
        << "</text>\n";
  }
  svg << "</svg>\n";
  return svg.str();
}

}  // namespace retain
