// The report page (report.h): one HTML5 document with inline CSS, inline SVG and a few lines of
// inline JavaScript. Every string from the workspace goes through xml_escape (svg.h) — ids,
// test-set names, settings, error text — since a test-set name is whatever the config said.
#include <algorithm>
#include <cmath>

#include "report_internal.h"
#include "retain/gate.h"
#include "retain/svg.h"

namespace retain {

namespace {

using report_detail::status_colors;
using report_detail::utc_time;

std::string esc(const std::string& text) { return xml_escape(text); }

// Without an external stylesheet or font: the page must open from a file, offline.
const char* const kStyle = R"css(
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; background: #f6f7f9;
       margin: 0; }
header { background: #1d2733; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header .meta { color: #c7d0db; font-size: 13px; }
nav { background: #fff; border-bottom: 1px solid #dde1e6; padding: 8px 32px; position: sticky; top: 0; z-index: 1; }
nav a { margin-right: 18px; color: #1565c0; text-decoration: none; font-weight: 600; }
main { max-width: 1240px; margin: 0 auto; padding: 8px 32px 48px; }
h2 { margin: 28px 0 10px; font-size: 19px; }
h3 { margin: 0 0 6px; font-size: 16px; }
section.card { background: #fff; border: 1px solid #dde1e6; border-radius: 8px; padding: 14px 18px; margin: 12px 0; }
section.card:target { outline: 3px solid #90caf9; }
.scroll { overflow-x: auto; }
.badge { display: inline-block; padding: 1px 9px; border-radius: 10px; font-size: 12px; font-weight: 600;
         border: 1px solid; vertical-align: 2px; margin-left: 6px; }
.pass { color: #2e7d32; } .fail { color: #c62828; } .muted { color: #777; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
th, td { border-bottom: 1px solid #e6e8eb; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f3f5f7; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.gate td { font-weight: 600; }
.better { color: #2e7d32; } .worse { color: #c62828; }
ul.failures { margin: 4px 0 8px; padding-left: 20px; color: #c62828; }
.mix { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.mix table { margin-top: 0; }
.charts { display: flex; flex-wrap: wrap; gap: 10px; }
.charts svg { background: #fff; border: 1px solid #eceef1; border-radius: 6px; }
.note { color: #777; font-style: italic; }
.legend span { margin-right: 14px; white-space: nowrap; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 3px; border: 2px solid; vertical-align: -2px;
          margin-right: 4px; }
code { background: #f1f3f5; padding: 0 4px; border-radius: 3px; font-size: 12px; }
)css";

// Runs once the page is parsed: marks <body> so that a headless browser (the report's test) can
// tell the page loaded and its script ran without an error.
const char* const kScript = R"js(
(function () {
  var charts = document.querySelectorAll('svg').length;
  document.body.setAttribute('data-charts', String(charts));
  document.body.setAttribute('data-ok', 'true');
})();
)js";

std::string badge(const std::string& status) {
  const auto c = status_colors(status);
  return std::string("<span class=\"badge\" style=\"color:") + c.border + ";border-color:" + c.border +
         ";background:" + c.fill + "\">" + esc(status) + "</span>";
}

std::string version_link(const std::string& id) {
  return id.empty() ? "<span class=\"muted\">none</span>" : "<a href=\"#v-" + esc(id) + "\">" + esc(id) + "</a>";
}

// "+0.012" in the colour of better or worse for `metric`.
std::string delta_cell(const std::string& metric, double value, const std::optional<double>& other) {
  if (!other) return "<td class=\"num muted\">–</td><td class=\"num muted\"></td>";
  const double d = value - *other;
  const bool better = is_metric(metric) && !higher_is_better(metric) ? d < 0 : d > 0;
  const std::string cls = d == 0 ? "" : better ? "better" : "worse";
  return "<td class=\"num\">" + format_number(*other) + "</td><td class=\"num " + cls + "\">" + (d > 0 ? "+" : "") +
         format_number(d) + "</td>";
}

std::string scores_table(const ReportVersion& v) {
  if (v.scores.empty()) return "<p class=\"note\">no scores recorded</p>";
  std::string out =
      "<table><tr><th>test set</th><th>metric</th><th>this version</th><th>parent</th><th>Δ parent</th>"
      "<th>production</th><th>Δ production</th></tr>";
  for (const auto& s : v.scores) {
    out += std::string("<tr") + (s.gate_metric ? " class=\"gate\"" : "") + "><td>" + esc(s.test_set) + "</td><td>" +
           esc(s.metric) + (s.gate_metric ? " <span class=\"muted\">(gate)</span>" : "") + "</td><td class=\"num\">" +
           format_number(s.value) + "</td>" + delta_cell(s.metric, s.value, s.parent) +
           delta_cell(s.metric, s.value, s.production) + "</tr>";
  }
  return out + "</table>";
}

// One group per test set, on the gate's metric (else the set's first metric).
std::string scores_chart(const ReportVersion& v) {
  std::vector<BarGroup> groups;
  for (const auto& s : v.scores) {
    if (!groups.empty() && groups.back().label == s.test_set) continue;  // the gate metric sorts first
    const char* direction = is_metric(s.metric) && !higher_is_better(s.metric) ? "↓ better" : "↑ better";
    groups.push_back({s.test_set, s.metric + " (" + direction + ")", {s.parent, s.value, s.production}});
  }
  if (groups.empty()) return "";
  return bar_chart("Scores per test set", {"parent", "this version", "production"}, {"#9e9e9e", "#1f77b4", "#2e7d32"},
                   groups);
}

std::string gate_html(const nlohmann::json& gate) {
  if (!gate.is_object()) return "<p><b>Gate:</b> <span class=\"muted\">not run</span></p>";
  const bool passed = gate.value("passed", false);
  std::string out = std::string("<p><b>Gate:</b> ") +
                    (passed ? "<span class=\"pass\"><b>passed</b></span>" : "<span class=\"fail\"><b>rejected</b></span>") +
                    "</p>";
  const auto failures = gate.value("failures", nlohmann::json::array());
  if (failures.is_array() && !failures.empty()) {
    out += "<ul class=\"failures\">";
    for (const auto& f : failures)
      out += "<li>" + esc(f.is_object() && f.contains("message") && f["message"].is_string() ? f["message"].get<std::string>()
                                                                                            : f.dump()) +
             "</li>";
    out += "</ul>";
  }
  return out;
}

// The settings a person compares between rounds, from the round's resolved config.
std::string settings_line(const nlohmann::json& s) {
  if (!s.is_object()) return "";
  if (s.contains("imported_from")) return "<p class=\"muted\">imported from <code>" + esc(s["imported_from"].is_string() ? s["imported_from"].get<std::string>() : s["imported_from"].dump()) + "</code></p>";
  std::vector<std::string> parts;
  auto add = [&](const char* section, const char* key, const std::string& label) {
    if (s.contains(section) && s[section].is_object() && s[section].contains(key))
      parts.push_back(label + " " + (s[section][key].is_number() ? format_number(s[section][key].get<double>())
                                                                  : s[section][key].dump()));
  };
  add("replay", "ratio", "replay ratio");
  add("ewc", "lambda", "EWC λ");
  add("ewc", "gamma", "γ");
  add("training", "max_steps", "max steps");
  add("training", "lr", "lr");
  add("lora", "rank", "LoRA rank");
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : " · ") + esc(p);
  return out.empty() ? "" : "<p class=\"muted\">" + out + "</p>";
}

std::string version_section(const ReportVersion& v) {
  const VersionRecord& r = v.record;
  std::string out = "<section class=\"card\" id=\"v-" + esc(r.model_id) + "\"><h3>" + esc(r.model_id) + badge(v.status) +
                    "</h3><p>version " + std::to_string(r.version) + " · created " + utc_time(r.created_at) +
                    " · parent " + version_link(r.parent_model_id);
  if (!r.run_id.empty()) out += " · round <a href=\"#run-" + esc(r.run_id) + "\">" + esc(r.run_id) + "</a>";
  if (!r.adapter_base_model_id.empty()) out += " · LoRA adapter over " + version_link(r.adapter_base_model_id);
  out += "</p>" + settings_line(r.settings) + gate_html(r.gate) + scores_table(v);
  out += "<div class=\"scroll\">" + scores_chart(v) + "</div></section>\n";
  return out;
}

std::string topics_table(const ReportRun& run) {
  if (run.topics.empty()) return "";
  constexpr size_t kShown = 12;
  std::string out = "<table><tr><th>topic</th><th>new</th><th>replayed</th></tr>";
  for (size_t i = 0; i < run.topics.size() && i < kShown; ++i) {
    const auto& t = run.topics[i];
    out += "<tr><td>" + esc(t.topic) + "</td><td class=\"num\">" + std::to_string(t.new_examples) +
           "</td><td class=\"num\">" + std::to_string(t.replayed) + "</td></tr>";
  }
  if (run.topics.size() > kShown)
    out += "<tr><td colspan=\"3\" class=\"muted\">… and " + std::to_string(run.topics.size() - kShown) +
           " more topics</td></tr>";
  return out + "</table>";
}

std::string run_section(const ReportRun& run) {
  std::string status = run.status == "promoted" ? "production" : run.status;
  std::string out = "<section class=\"card\" id=\"run-" + esc(run.run_id) + "\"><h3>" + esc(run.run_id) +
                    "<span class=\"badge\" style=\"color:" + status_colors(status).border + ";border-color:" +
                    status_colors(status).border + "\">" + esc(run.status) + "</span></h3><p>" +
                    version_link(run.base_model_id) + " → " + version_link(run.model_id);
  if (run.started_at > 0) out += " · started " + utc_time(run.started_at);
  out += "</p>";
  if (!run.error.empty()) out += "<p class=\"fail\"><b>error:</b> " + esc(run.error) + "</p>";
  out += "<h4>Replay mix</h4>";
  if (!run.mix_note.empty()) out += "<p class=\"note\">" + esc(run.mix_note) + "</p>";
  if (run.replayed >= 0) out += "<div class=\"mix\"><div>" + report_detail::mix_svg(run) + "</div>" + topics_table(run) + "</div>";
  out += "<h4>Training</h4>";
  const auto charts = report_detail::round_curves(run);
  if (charts.empty()) {
    out += "<p class=\"note\">" + esc(run.metrics_note.empty() ? "no metrics: no training records" : run.metrics_note) +
           "</p>";
  } else {
    out += "<div class=\"charts\">";
    for (const auto& c : charts) out += c;
    out += "</div>";
  }
  return out + "</section>\n";
}

std::string sweep_section(const ReportSweep& sweep) {
  const auto& d = sweep.data;
  std::string out = "<section class=\"card\" id=\"sweep-" + esc(sweep.name) + "\"><h3>Sweep " + esc(sweep.name) +
                    "</h3><p>base " + esc(d.value("base_model_id", "")) + " · old task <b>" + esc(d.value("old_set", "")) +
                    "</b> (" + esc(d.value("old_metric", "")) + ") · new task <b>" + esc(d.value("new_set", "")) +
                    "</b> (" + esc(d.value("new_metric", "")) + ")</p><div class=\"scroll\">" + sweep_svg(d) + "</div>";
  out += "<table><tr><th>λ</th><th>replay ratio</th><th>old</th><th>new</th><th>gate</th><th>Pareto</th>"
         "<th>failures</th></tr>";
  for (const auto& p : d.value("points", nlohmann::json::array())) {
    if (!p.is_object()) continue;
    std::string failures;
    for (const auto& f : p.value("failures", nlohmann::json::array()))
      failures += (failures.empty() ? "" : "; ") + (f.is_string() ? f.get<std::string>() : f.dump());
    const bool passed = p.value("passed", false);
    out += "<tr><td class=\"num\">" + format_number(p.value("lambda", NAN)) + "</td><td class=\"num\">" +
           format_number(p.value("replay_ratio", NAN)) + "</td><td class=\"num\">" +
           format_number(p.value("old_score", NAN)) + "</td><td class=\"num\">" + format_number(p.value("new_score", NAN)) +
           "</td><td class=\"" + (passed ? "pass\">pass" : "fail\">FAIL") + "</td><td>" +
           (p.value("pareto", false) ? "★" : "") + "</td><td>" + esc(failures) + "</td></tr>";
  }
  return out + "</table></section>\n";
}

std::string history_table(const std::vector<HistoryEntry>& history) {
  if (history.empty()) return "<p class=\"note\">no promotions yet</p>";
  std::string out = "<table><tr><th>#</th><th>when</th><th>action</th><th>production</th><th>before</th><th>note</th></tr>";
  for (const auto& h : history)
    out += "<tr><td class=\"num\">" + std::to_string(h.seq) + "</td><td>" + utc_time(h.at) + "</td><td>" + esc(h.action) +
           "</td><td>" + version_link(h.model_id) + "</td><td>" + version_link(h.previous_model_id) + "</td><td>" +
           esc(h.note) + "</td></tr>";
  return out + "</table>";
}

std::string legend() {
  std::string out = "<p class=\"legend\">";
  for (const char* s : {"production", "candidate", "retired", "rolled back", "rejected"}) {
    const auto c = status_colors(s);
    out += std::string("<span><i class=\"swatch\" style=\"background:") + c.fill + ";border-color:" + c.border +
           "\"></i>" + s + "</span>";
  }
  return out + "</p>";
}

}  // namespace

std::string render_report_html(const WorkspaceReport& report) {
  std::string out =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
      // Nothing from the network, ever: the page is opened from disk and may travel by e-mail.
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
      "script-src 'unsafe-inline'; img-src data:\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>retain report: " +
      esc(report.workspace) + "</title>\n<style>" + kStyle + "</style></head>\n<body>\n";
  out += "<header><h1>retain workspace report</h1><div class=\"meta\">" + esc(report.workspace) + " · generated " +
         utc_time(report.generated_at) + " · production: " + esc(report.production.empty() ? "none" : report.production) +
         " · " + std::to_string(report.versions.size()) + " versions, " + std::to_string(report.runs.size()) +
         " rounds, " + std::to_string(report.sweeps.size()) + " sweeps</div></header>\n";
  out += "<nav><a href=\"#lineage\">Lineage</a><a href=\"#versions\">Versions</a><a href=\"#rounds\">Rounds</a>"
         "<a href=\"#sweeps\">Sweeps</a><a href=\"#history\">History</a></nav>\n<main>\n";
  for (const auto& note : report.notes) out += "<p class=\"note\">" + esc(note) + "</p>\n";
  out += "<h2 id=\"lineage\">Lineage</h2><section class=\"card\">" + legend() + "<div class=\"scroll\">" +
         lineage_svg(report.versions) + "</div></section>\n";
  out += "<h2 id=\"versions\">Versions</h2>\n";
  for (auto it = report.versions.rbegin(); it != report.versions.rend(); ++it) out += version_section(*it);
  out += "<h2 id=\"rounds\">Rounds</h2>\n";
  if (report.runs.empty()) out += "<p class=\"note\">no rounds yet</p>\n";
  for (auto it = report.runs.rbegin(); it != report.runs.rend(); ++it) out += run_section(*it);
  out += "<h2 id=\"sweeps\">Sweeps</h2>\n";
  if (report.sweeps.empty()) out += "<p class=\"note\">no sweeps in this workspace (<code>retain sweep</code>)</p>\n";
  for (const auto& s : report.sweeps) out += sweep_section(s);
  out += "<h2 id=\"history\">History</h2><section class=\"card\">" + history_table(report.history) + "</section>\n";
  out += std::string("</main>\n<script>") + kScript + "</script>\n</body></html>\n";
  return out;
}

}  // namespace retain
