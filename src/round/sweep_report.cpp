// What a sweep reports: the table, JSON, and the old-task vs new-task SVG with its Pareto front.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "retain/gate.h"
#include "retain/sweep.h"
#include "retain/text_table.h"

namespace retain {

namespace {

std::string fmt(const char* format, double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, x);
  return buf;
}

std::string escape_xml(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

// "nice" tick step for a range: 1, 2 or 5 × 10^k giving about `n` ticks.
double tick_step(double span, int n) {
  const double raw = span / n;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * mag) return m * mag;
  return 10 * mag;
}

}  // namespace

nlohmann::json SweepResult::to_json() const {
  nlohmann::json points_json = nlohmann::json::array();
  for (const auto& p : points)
    points_json.push_back({{"lambda", p.lambda}, {"replay_ratio", p.ratio}, {"model_id", p.model_id},
                           {"status", p.status}, {"passed", p.status != "rejected"}, {"old_score", p.old_score},
                           {"new_score", p.new_score}, {"failures", p.failures}, {"reason", p.reason}, {"seconds", p.seconds},
                           {"pareto", p.pareto}});
  return {{"base_model_id", base_model_id},
          {"old_set", old_set},
          {"new_set", new_set},
          {"old_metric", old_metric},
          {"new_metric", new_metric},
          {"base_old", base_old},
          {"base_new", base_new},
          {"production_model_id", production_model_id.empty() ? nlohmann::json() : nlohmann::json(production_model_id)},
          {"production_old", production_old ? nlohmann::json(*production_old) : nlohmann::json()},
          {"production_new", production_new ? nlohmann::json(*production_new) : nlohmann::json()},
          {"points", points_json},
          {"out_dir", out_dir}};
}

std::string SweepResult::table() const {
  std::string out = "sweep of " + base_model_id + ": old task " + old_set + " (" + old_metric + "), new task " + new_set +
                    " (" + new_metric + "); " +
                    (production_model_id.empty() ? "no production version: the gate checks the minimums only"
                                                 : "the gate compares each candidate with production " + production_model_id) +
                    "\n\n";
  // "vs prod" is what the gate judges against its tolerance: the candidate's score minus production's.
  auto versus = [](double score, const std::optional<double>& production) {
    return production ? fmt("%+.4f", score - *production) : std::string("-");
  };
  std::vector<std::vector<std::string>> rows = {
      {"lambda", "replay", "old", "old vs prod", "new", "new vs prod", "gate", "pareto", "time", "reason"},
      {"base", "", fmt("%.4f", base_old), versus(base_old, production_old), fmt("%.4f", base_new),
       versus(base_new, production_new)}};
  if (!production_model_id.empty() && production_model_id != base_model_id)
    rows.push_back({"production", "", production_old ? fmt("%.4f", *production_old) : "-", "",
                    production_new ? fmt("%.4f", *production_new) : "-"});
  for (const auto& p : points)
    rows.push_back({fmt("%g", p.lambda), fmt("%g", p.ratio), fmt("%.4f", p.old_score), versus(p.old_score, production_old),
                    fmt("%.4f", p.new_score), versus(p.new_score, production_new), p.status == "rejected" ? "FAIL" : "pass",
                    p.pareto ? "*" : "", fmt("%.1f s", p.seconds), p.reason});
  out += format_table(rows);
  out += "\n(* on the Pareto front; results and the plot in " + out_dir + ")\n";
  return out;
}

std::string SweepResult::svg() const {
  const double W = 720, H = 540, left = 80, right = 200, top = 50, bottom = 70;
  const double pw = W - left - right, ph = H - top - bottom;
  double x0 = base_old, x1 = base_old, y0 = base_new, y1 = base_new;
  for (const auto& p : points) {
    x0 = std::min(x0, p.old_score), x1 = std::max(x1, p.old_score);
    y0 = std::min(y0, p.new_score), y1 = std::max(y1, p.new_score);
  }
  auto widen = [](double& a, double& b) {
    const double pad = std::max(1e-3, (b - a) * 0.08);
    a -= pad, b += pad;
  };
  widen(x0, x1);
  widen(y0, y1);
  auto X = [&](double v) { return left + (v - x0) / (x1 - x0) * pw; };
  auto Y = [&](double v) { return top + ph - (v - y0) / (y1 - y0) * ph; };

  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + fmt("%.0f", W) + "\" height=\"" +
                  fmt("%.0f", H) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s += "<text x=\"" + fmt("%.0f", left) + "\" y=\"28\" font-size=\"15\">retain sweep: old task vs new task (" +
       escape_xml(base_model_id) + ")</text>\n";
  s += "<rect x=\"" + fmt("%.1f", left) + "\" y=\"" + fmt("%.1f", top) + "\" width=\"" + fmt("%.1f", pw) +
       "\" height=\"" + fmt("%.1f", ph) + "\" fill=\"none\" stroke=\"#444\"/>\n";
  const double xs = tick_step(x1 - x0, 6), ys = tick_step(y1 - y0, 6);
  for (double v = std::ceil(x0 / xs) * xs; v <= x1; v += xs)
    s += "<line x1=\"" + fmt("%.1f", X(v)) + "\" x2=\"" + fmt("%.1f", X(v)) + "\" y1=\"" + fmt("%.1f", top) +
         "\" y2=\"" + fmt("%.1f", top + ph) + "\" stroke=\"#eee\"/><text x=\"" + fmt("%.1f", X(v)) + "\" y=\"" +
         fmt("%.1f", top + ph + 18) + "\" text-anchor=\"middle\">" + fmt("%g", std::round(v / xs) * xs) + "</text>\n";
  for (double v = std::ceil(y0 / ys) * ys; v <= y1; v += ys)
    s += "<line x1=\"" + fmt("%.1f", left) + "\" x2=\"" + fmt("%.1f", left + pw) + "\" y1=\"" + fmt("%.1f", Y(v)) +
         "\" y2=\"" + fmt("%.1f", Y(v)) + "\" stroke=\"#eee\"/><text x=\"" + fmt("%.1f", left - 8) + "\" y=\"" +
         fmt("%.1f", Y(v) + 4) + "\" text-anchor=\"end\">" + fmt("%g", std::round(v / ys) * ys) + "</text>\n";
  auto direction = [](const std::string& metric) {
    return higher_is_better(metric) ? std::string(", higher is better") : std::string(", lower is better");
  };
  s += "<text x=\"" + fmt("%.1f", left + pw / 2) + "\" y=\"" + fmt("%.1f", H - 25) + "\" text-anchor=\"middle\">old task: " +
       escape_xml(old_set + " " + old_metric + direction(old_metric)) + "</text>\n";
  s += "<text transform=\"translate(20," + fmt("%.1f", top + ph / 2) + ") rotate(-90)\" text-anchor=\"middle\">new task: " +
       escape_xml(new_set + " " + new_metric + direction(new_metric)) + "</text>\n";

  // The Pareto front, through its points in order of the old-task score.
  std::vector<const SweepPoint*> front;
  for (const auto& p : points)
    if (p.pareto) front.push_back(&p);
  std::sort(front.begin(), front.end(), [](const SweepPoint* a, const SweepPoint* b) { return a->old_score < b->old_score; });
  if (front.size() > 1) {
    s += "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" stroke-dasharray=\"6 4\" points=\"";
    for (const auto* p : front) s += fmt("%.1f", X(p->old_score)) + "," + fmt("%.1f", Y(p->new_score)) + " ";
    s += "\"/>\n";
  }
  s += "<rect x=\"" + fmt("%.1f", X(base_old) - 5) + "\" y=\"" + fmt("%.1f", Y(base_new) - 5) +
       "\" width=\"10\" height=\"10\" fill=\"black\"/><text x=\"" + fmt("%.1f", X(base_old) + 8) + "\" y=\"" +
       fmt("%.1f", Y(base_new) - 8) + "\">base</text>\n";
  for (const auto& p : points) {
    const bool passed = p.status != "rejected";
    s += "<circle cx=\"" + fmt("%.1f", X(p.old_score)) + "\" cy=\"" + fmt("%.1f", Y(p.new_score)) + "\" r=\"6\" fill=\"" +
         (passed ? "#2ca02c" : "white") + "\" stroke=\"" + (passed ? "#1a661a" : "#d62728") +
         "\" stroke-width=\"2\"><title>" + escape_xml("λ=" + fmt("%g", p.lambda) + ", replay " + fmt("%g", p.ratio) +
                                                       ": old " + fmt("%.4f", p.old_score) + ", new " +
                                                       fmt("%.4f", p.new_score) + (passed ? ", passed" : ", rejected")) +
         "</title></circle>\n";
    s += "<text x=\"" + fmt("%.1f", X(p.old_score) + 8) + "\" y=\"" + fmt("%.1f", Y(p.new_score) + 4) +
         "\" font-size=\"10\" fill=\"#555\">" + escape_xml("λ" + fmt("%g", p.lambda) + " r" + fmt("%g", p.ratio)) +
         "</text>\n";
  }
  const double lx = left + pw + 20;
  s += "<circle cx=\"" + fmt("%.0f", lx) + "\" cy=\"" + fmt("%.0f", top + 10) +
       "\" r=\"6\" fill=\"#2ca02c\" stroke=\"#1a661a\" stroke-width=\"2\"/><text x=\"" + fmt("%.0f", lx + 12) + "\" y=\"" +
       fmt("%.0f", top + 14) + "\">passed the gate</text>\n";
  s += "<circle cx=\"" + fmt("%.0f", lx) + "\" cy=\"" + fmt("%.0f", top + 32) +
       "\" r=\"6\" fill=\"white\" stroke=\"#d62728\" stroke-width=\"2\"/><text x=\"" + fmt("%.0f", lx + 12) + "\" y=\"" +
       fmt("%.0f", top + 36) + "\">rejected</text>\n";
  s += "<line x1=\"" + fmt("%.0f", lx - 8) + "\" x2=\"" + fmt("%.0f", lx + 8) + "\" y1=\"" + fmt("%.0f", top + 54) +
       "\" y2=\"" + fmt("%.0f", top + 54) + "\" stroke=\"#1f77b4\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/><text x=\"" +
       fmt("%.0f", lx + 12) + "\" y=\"" + fmt("%.0f", top + 58) + "\">Pareto front</text>\n";
  s += "<rect x=\"" + fmt("%.0f", lx - 5) + "\" y=\"" + fmt("%.0f", top + 71) + "\" width=\"10\" height=\"10\" fill=\"black\"/><text x=\"" +
       fmt("%.0f", lx + 12) + "\" y=\"" + fmt("%.0f", top + 80) + "\">base version</text>\n";
  s += "</svg>\n";
  return s;
}

}  // namespace retain
