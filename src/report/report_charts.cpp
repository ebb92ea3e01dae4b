// The report's own charts, drawn with svg.h: the lineage graph, the sweep scatter with its Pareto
// front, a round's training curves and its replay mix.
#include <algorithm>
#include <cmath>
#include <ctime>
#include <functional>
#include <map>
#include <set>

#include "report_internal.h"
#include "retain/gate.h"
#include "retain/svg.h"

namespace retain {

namespace report_detail {

StatusColors status_colors(const std::string& status) {
  if (status == "production") return {"#e3f4e4", "#2e7d32"};
  if (status == "candidate") return {"#e3eefb", "#1565c0"};
  if (status == "rejected") return {"#fdeaea", "#c62828"};
  if (status == "rolled back") return {"#fff1e0", "#e65100"};
  return {"#f1f1f1", "#757575"};  // retired, and anything newer
}

std::string utc_time(int64_t unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M UTC", &tm);
  return text;
}

namespace {

const char* const kBlue = "#1f77b4";
const char* const kOrange = "#ff7f0e";
const char* const kGreen = "#2ca02c";
const char* const kPurple = "#9467bd";

// (step, record[key]) of the records of `type` that have a finite number under `key`.
std::vector<std::pair<double, double>> series_of(const std::vector<nlohmann::json>& records, const std::string& type,
                                                 const std::function<std::optional<double>(const nlohmann::json&)>& value) {
  std::vector<std::pair<double, double>> points;
  for (const auto& r : records) {
    if (r.value("type", "") != type || !r.contains("step") || !r["step"].is_number()) continue;
    if (const auto v = value(r); v && std::isfinite(*v)) points.emplace_back(r["step"].get<double>(), *v);
  }
  return points;
}

std::function<std::optional<double>(const nlohmann::json&)> key(const std::string& name) {
  return [name](const nlohmann::json& r) -> std::optional<double> {
    const auto it = r.find(name);
    if (it == r.end() || !it->is_number()) return std::nullopt;
    return it->get<double>();
  };
}

}  // namespace

std::vector<std::string> round_curves(const ReportRun& run) {
  const auto& m = run.metrics;
  const auto loss = series_of(m, "train", key("loss"));
  if (loss.empty()) return {};
  std::vector<ChartSeries> losses;
  const auto ewc = series_of(m, "train", key("loss_ewc"));
  const bool has_ewc = std::any_of(ewc.begin(), ewc.end(), [](const auto& p) { return p.second != 0; });
  // The task loss under the total (drawn first): with a small penalty the two lines coincide.
  if (has_ewc) losses.push_back({"task loss", kGreen, series_of(m, "train", key("loss_task")), true});
  losses.push_back({"train loss", kBlue, loss, false});
  if (const auto valid = series_of(m, "valid", key("loss")); !valid.empty())
    losses.push_back({"validation loss", kOrange, valid, false});
  std::vector<std::string> charts = {
      line_chart("Loss", "step", "loss", losses),
      line_chart("Learning rate", "step", "lr", {{"lr", kPurple, series_of(m, "train", key("lr")), false}}),
      line_chart("Gradient norm (before clipping)", "step", "‖g‖",
                 {{"grad norm", kOrange, series_of(m, "train", key("grad_norm")), false}}),
      line_chart("Throughput", "step", "tokens/s",
                 {{"tokens/s", kGreen, series_of(m, "train", key("tokens_per_s")), false}})};
  if (!ewc.empty()) {
    // The share of the EWC penalty in the loss the optimizer saw: loss = loss_task + loss_ewc.
    auto share = [](const nlohmann::json& r) -> std::optional<double> {
      const auto l = key("loss")(r), e = key("loss_ewc")(r);
      if (!l || !e || *l == 0) return std::nullopt;
      return 100.0 * *e / *l;
    };
    charts.push_back(line_chart(has_ewc ? "EWC share of the loss" : "EWC share of the loss (no penalty)", "step",
                                "% of loss", {{"loss_ewc / loss", kBlue, series_of(m, "train", share), false}}));
  }
  return charts;
}

std::string mix_svg(const ReportRun& run) {
  const double width = 520, height = 64, left = 12, bar_w = width - 2 * left;
  Svg svg(width, height, "replay mix");
  const int64_t total = std::max<int64_t>(0, run.new_examples) + std::max<int64_t>(0, run.replayed);
  if (total == 0) {
    svg.text(left, 30, "no examples recorded", Svg::Anchor::kStart, 12, "#888");
    return svg.str();
  }
  const double new_w = bar_w * double(std::max<int64_t>(0, run.new_examples)) / double(total);
  const std::string n_new = run.new_examples < 0 ? "?" : std::to_string(run.new_examples);
  svg.rect(left, 8, new_w, 26, kBlue, "none", 3, n_new + " new examples");
  svg.rect(left + new_w, 8, bar_w - new_w, 26, kOrange, "none", 3, std::to_string(run.replayed) + " replayed");
  const double share = 100.0 * double(std::max<int64_t>(0, run.replayed)) / double(total);
  svg.text(left, 52, n_new + " new", Svg::Anchor::kStart, 12, kBlue, 0, true);
  svg.text(left + bar_w, 52, std::to_string(std::max<int64_t>(0, run.replayed)) + " replayed (" +
                                 format_number(std::round(share * 10) / 10) + " %)",
           Svg::Anchor::kEnd, 12, "#b35900", 0, true);
  return svg.str();
}

}  // namespace report_detail

using report_detail::status_colors;

namespace {

constexpr double kNodeW = 190, kNodeH = 48, kColGap = 56, kRowGap = 14, kMargin = 16;

// Tidy-tree layout of the lineage: depth is the column; leaves take rows in depth-first order (in
// version order, as list() gives them) and a parent sits at the middle of its children.
struct LineageLayout {
  std::map<std::string, std::pair<double, double>> at;  // model id → (column, row)
  int columns = 0;
  double rows = 0;
};

LineageLayout layout_lineage(const std::vector<ReportVersion>& versions) {
  std::map<std::string, std::vector<const ReportVersion*>> children;
  std::vector<const ReportVersion*> roots;
  std::set<std::string> known;
  for (const auto& v : versions) known.insert(v.record.model_id);
  for (const auto& v : versions) {
    if (known.count(v.record.parent_model_id)) children[v.record.parent_model_id].push_back(&v);
    else roots.push_back(&v);
  }
  LineageLayout layout;
  std::function<double(const ReportVersion*, int)> place = [&](const ReportVersion* v, int depth) {
    layout.columns = std::max(layout.columns, depth + 1);
    const auto& kids = children[v->record.model_id];
    double row = 0;
    if (kids.empty()) {
      row = layout.rows++;
    } else {
      const double first = place(kids.front(), depth + 1);
      double last = first;
      for (size_t i = 1; i < kids.size(); ++i) last = place(kids[i], depth + 1);
      row = (first + last) / 2;
    }
    layout.at[v->record.model_id] = {double(depth), row};
    return row;
  };
  for (const auto* root : roots) place(root, 0);
  return layout;
}

}  // namespace

std::string lineage_svg(const std::vector<ReportVersion>& versions) {
  const LineageLayout layout = layout_lineage(versions);
  const double width = 2 * kMargin + layout.columns * kNodeW + std::max(0, layout.columns - 1) * kColGap;
  const double height = 2 * kMargin + std::max(1.0, layout.rows) * (kNodeH + kRowGap) - kRowGap;
  Svg svg(width, height, "version lineage");
  auto node_x = [&](const std::string& id) { return kMargin + layout.at.at(id).first * (kNodeW + kColGap); };
  auto node_y = [&](const std::string& id) { return kMargin + layout.at.at(id).second * (kNodeH + kRowGap); };
  for (const auto& v : versions) {  // edges first, under the nodes: parent's right side → child's left
    const std::string& parent = v.record.parent_model_id;
    if (!layout.at.count(parent)) continue;
    const double x1 = node_x(parent) + kNodeW, y1 = node_y(parent) + kNodeH / 2;
    const double x2 = node_x(v.record.model_id), y2 = node_y(v.record.model_id) + kNodeH / 2, mid = x1 + kColGap / 2;
    svg.polyline({{x1, y1}, {mid, y1}, {mid, y2}, {x2 - 6, y2}}, "#9e9e9e", 1.6);
    svg.polyline({{x2 - 7, y2 - 4}, {x2 - 1, y2}, {x2 - 7, y2 + 4}}, "#9e9e9e", 1.6);
  }
  for (const auto& v : versions) {
    const std::string& id = v.record.model_id;
    const auto colors = status_colors(v.status);
    const double x = node_x(id), y = node_y(id);
    svg.begin_link("#v-" + id);
    svg.rect(x, y, kNodeW, kNodeH, colors.fill, colors.border, 7,
             id + " (version " + std::to_string(v.record.version) + ", " + v.status + ")");
    svg.text(x + 10, y + 20, shorten(id, 24), Svg::Anchor::kStart, 13, "#111", 0, true);
    svg.text(x + 10, y + 37, "v" + std::to_string(v.record.version) + " · " + v.status, Svg::Anchor::kStart, 11,
             colors.border);
    svg.end_link();
  }
  if (versions.empty()) svg.text(kMargin, kMargin + 20, "no versions registered", Svg::Anchor::kStart, 12, "#888");
  return svg.str();
}

namespace {

void sweep_legend(Svg& svg, double x, double y) {
  svg.circle(x, y + 10, 6, "#2ca02c", "#1a661a", 2);
  svg.text(x + 14, y + 14, "passed the gate", Svg::Anchor::kStart, 11);
  svg.circle(x, y + 32, 6, "#ffffff", "#d62728", 2);
  svg.text(x + 14, y + 36, "rejected", Svg::Anchor::kStart, 11);
  svg.circle(x, y + 54, 9, "none", "#1f77b4", 1.5);
  svg.text(x + 14, y + 58, "on the Pareto front", Svg::Anchor::kStart, 11);
  svg.line(x - 8, y + 76, x + 8, y + 76, "#1f77b4", 2, "6 4");
  svg.text(x + 14, y + 80, "Pareto front", Svg::Anchor::kStart, 11);
  svg.rect(x - 5, y + 93, 10, 10, "#222");
  svg.text(x + 14, y + 102, "base version", Svg::Anchor::kStart, 11);
}

}  // namespace

std::string sweep_svg(const nlohmann::json& sweep) {
  const std::string old_metric = sweep.value("old_metric", ""), new_metric = sweep.value("new_metric", "");
  const double base_old = sweep.value("base_old", 0.0), base_new = sweep.value("base_new", 0.0);
  struct Point {
    double old_score, new_score;
    bool passed, pareto;
    std::string label;
  };
  std::vector<Point> points;
  std::vector<double> xs = {base_old}, ys = {base_new};
  for (const auto& p : sweep.value("points", nlohmann::json::array())) {
    if (!p.is_object()) continue;
    Point q{p.value("old_score", NAN), p.value("new_score", NAN), p.value("passed", false), p.value("pareto", false),
            "λ" + format_number(p.value("lambda", NAN)) + " r" + format_number(p.value("replay_ratio", NAN))};
    points.push_back(q);
    xs.push_back(q.old_score), ys.push_back(q.new_score);
  }
  const double width = 620, height = 400, left = 70, top = 36, right = 170, bottom = 56;
  Svg svg(width, height, "sweep: old task against new task");
  svg.text(12, 20, "Old task against new task, one point per (λ, replay ratio)", Svg::Anchor::kStart, 13, "#222", 0,
           true);
  Axes axes(svg, left, top, width - left - right, height - top - bottom, padded_range(xs, 0.1), padded_range(ys, 0.1));
  auto direction = [](const std::string& metric) {
    return is_metric(metric) && !higher_is_better(metric) ? " (lower is better)" : " (higher is better)";
  };
  axes.draw("old: " + sweep.value("old_set", "") + " " + old_metric + direction(old_metric),
            "new: " + sweep.value("new_set", "") + " " + new_metric + direction(new_metric));
  std::vector<Point> front;
  for (const auto& p : points)
    if (p.pareto) front.push_back(p);
  std::sort(front.begin(), front.end(), [](const Point& a, const Point& b) { return a.old_score < b.old_score; });
  std::vector<std::pair<double, double>> front_xy;
  for (const auto& p : front) front_xy.emplace_back(axes.x(p.old_score), axes.y(p.new_score));
  if (front_xy.size() > 1) svg.polyline(front_xy, "#1f77b4", 2, "6 4");
  svg.rect(axes.x(base_old) - 5, axes.y(base_new) - 5, 10, 10, "#222", "none", 0,
           "base: old " + format_number(base_old) + ", new " + format_number(base_new));
  // Settings that land on the same pixel (λ often changes nothing when the Fisher is small) share
  // one label, so that their names stay readable.
  std::map<std::pair<long, long>, std::string> labels;
  for (const auto& p : points) {
    if (!std::isfinite(p.old_score) || !std::isfinite(p.new_score)) continue;
    const double x = axes.x(p.old_score), y = axes.y(p.new_score);
    if (p.pareto) svg.circle(x, y, 10, "none", "#1f77b4", 1.5);
    svg.circle(x, y, 6, p.passed ? "#2ca02c" : "#ffffff", p.passed ? "#1a661a" : "#d62728", 2,
               p.label + ": old " + format_number(p.old_score) + ", new " + format_number(p.new_score) +
                   (p.passed ? ", passed" : ", rejected") + (p.pareto ? ", on the Pareto front" : ""));
    std::string& label = labels[{std::lround(x), std::lround(y)}];
    label += (label.empty() ? "" : ", ") + p.label;
  }
  for (const auto& [xy, label] : labels)
    svg.text(double(xy.first) + 12, double(xy.second) - 9, label, Svg::Anchor::kStart, 10, "#555");
  svg.text(axes.x(base_old) + 9, axes.y(base_new) + 4, "base", Svg::Anchor::kStart, 10, "#222");
  sweep_legend(svg, width - right + 18, top);
  return svg.str();
}

}  // namespace retain
