// `retain report`: the SVG writer and the escaping as units, metrics.csv, the page of a
// hand-made report, and end to end a tiny workspace (an import, a promoted round, a rejected
// round, a round rolled back, a sweep) reported through the executable and rendered by headless
// Chromium, which must run the page's script without an error and show every version.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <regex>

#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "retain/errors.h"
#include "retain/hash.h"
#include "retain/metrics_file.h"
#include "retain/report.h"
#include "retain/svg.h"

namespace retain {
namespace {

namespace fs = std::filesystem;
using cli_test::CliResult;
using cli_test::read_text;
using cli_test::write_text;
using nlohmann::json;

const fs::path kSource = RETAIN_SOURCE_DIR;
// A test-set name with every character HTML treats specially.
const std::string kNastySet = "<b>&\"x\"";
const std::string kNastySetEscaped = "&lt;b&gt;&amp;&quot;x&quot;";

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

// Every http:// or https:// in `html` outside an xmlns attribute (none is expected at all).
std::vector<std::string> external_references(const std::string& html) {
  std::vector<std::string> out;
  const std::regex url(R"((xmlns(:\w+)?=")?https?://[^\s"'<>)]*)");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), url); it != std::sregex_iterator(); ++it)
    if (!(*it)[1].matched) out.push_back(it->str());
  return out;
}

TEST(ReportSvg, EscapesEveryMarkupCharacter) {
  EXPECT_EQ(xml_escape(kNastySet + "'"), kNastySetEscaped + "&#39;");
  EXPECT_EQ(xml_escape("plain λ text"), "plain λ text");
  Svg svg(100, 50, "chart of " + kNastySet);
  svg.text(1, 2, kNastySet);
  svg.rect(0, 0, 10, 10, "#fff", "none", 0, "tip " + kNastySet);
  const std::string out = svg.str();
  EXPECT_EQ(out.find(kNastySet), std::string::npos) << out;
  EXPECT_EQ(count(out, kNastySetEscaped), 3u) << out;  // aria-label, text, title
}

TEST(ReportSvg, NiceTicksAreRoundNumbersCoveringTheRange) {
  const auto fifths = nice_ticks(0, 1, 5);
  ASSERT_EQ(fifths.size(), 6u);
  for (size_t i = 0; i < fifths.size(); ++i) EXPECT_NEAR(fifths[i], 0.2 * double(i), 1e-12) << i;
  const auto t = nice_ticks(3.9, 4.55, 4);  // step 0.2: 4.0, 4.2, 4.4
  ASSERT_EQ(t.size(), 3u);
  EXPECT_NEAR(t[0], 4.0, 1e-12);
  EXPECT_NEAR(t[2], 4.4, 1e-12);
  EXPECT_EQ(nice_ticks(-50, 250, 3), (std::vector<double>{0, 100, 200}));
  EXPECT_EQ(nice_ticks(2, 2, 4), (std::vector<double>{2}));
  EXPECT_TRUE(nice_ticks(0, INFINITY, 4).empty());
}

TEST(ReportSvg, NumbersAndShortenedLabels) {
  EXPECT_EQ(format_number(0.123456), "0.1235");
  EXPECT_EQ(format_number(-0.0), "0");
  EXPECT_EQ(format_number(15234.6), "15235");  // tokens/s in full, not 1.523e+04
  EXPECT_EQ(format_number(NAN), "nan");
  EXPECT_EQ(shorten("abcdef", 10), "abcdef");
  EXPECT_EQ(shorten("abcdef", 3), "abc…");
  EXPECT_EQ(shorten("aλλ", 2), "a…");  // never half of a two-byte character
}

TEST(ReportSvg, LineChartMapsPointsIntoThePlotArea) {
  const std::string svg = line_chart("Loss", "step", "loss", {{"a", "#f00", {{0, 1}, {10, 2}}, false},
                                                             {"b", "#00f", {{0, 2}, {10, 1}}, true}});
  EXPECT_EQ(count(svg, "<polyline"), 2u);
  EXPECT_EQ(count(svg, "stroke-dasharray=\"5 3\""), 2u);  // series b and its legend entry
  // x from 0 to 10 spans the plot: the first point sits on the left edge (62 units in).
  EXPECT_NE(svg.find("points=\"62.0,"), std::string::npos) << svg;
  EXPECT_NE(line_chart("empty", "x", "y", {}).find("no data"), std::string::npos);
}

TEST(ReportSvg, BarHeightsAreProportionalWithinAGroup) {
  const std::string svg = bar_chart("scores", {"a", "b", "c"}, {"#111", "#222", "#333"}, {{"set", "loss", {1.0, 2.0, std::nullopt}}});
  // The bars (those with a tooltip; the legend's swatches have none).
  const std::regex bar("<rect x=\"[\\d.]+\" y=\"[\\d.]+\" width=\"[\\d.]+\" height=\"([\\d.]+)\" fill=\"#(111|222)\"[^>]*><title>");
  std::vector<double> heights;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), bar); it != std::sregex_iterator(); ++it)
    heights.push_back(std::stod((*it)[1]));
  ASSERT_EQ(heights.size(), 2u) << svg;
  EXPECT_NEAR(heights[1] / heights[0], 2.0, 0.02);
  EXPECT_NE(svg.find("n/a"), std::string::npos);
}

TEST(ReportMetricsCsv, FixedColumnsThenOtherScalarsQuotedAsRfc4180) {
  const std::vector<json> records = {
      {{"type", "train"}, {"step", 1}, {"loss", 2.5}, {"lr", 0.001}, {"zeta", "a,\"b\""}, {"nested", {{"x", 1}}}},
      {{"type", "valid"}, {"step", 1}, {"loss", 2.25}, {"token_accuracy", 0.5}, {"alpha", true}}};
  EXPECT_EQ(metrics_columns(records),
            (std::vector<std::string>{"type", "step", "loss", "lr", "token_accuracy", "alpha", "zeta"}));
  EXPECT_EQ(metrics_csv(records),
            "type,step,loss,lr,token_accuracy,alpha,zeta\n"
            "train,1,2.5,0.001,,,\"a,\"\"b\"\"\"\n"
            "valid,1,2.25,,0.5,true,\n");
}

TEST(ReportMetricsCsv, TornLinesAreSkippedAndCounted) {
  const fs::path dir = cli_test::fresh_test_dir("retain_report_csv");
  write_text(dir / "metrics.jsonl", "{\"type\":\"train\",\"step\":1,\"loss\":3}\n[1]\n{\"type\":\"train\",\"st");
  const MetricsFile file = read_metrics_jsonl((dir / "metrics.jsonl").string());
  EXPECT_EQ(file.records.size(), 1u);
  EXPECT_EQ(file.skipped_lines, 2);
  write_metrics_csv((dir / "metrics.jsonl").string(), (dir / "metrics.csv").string());
  EXPECT_EQ(read_text(dir / "metrics.csv"), "type,step,loss\ntrain,1,3\n");
  EXPECT_THROW(read_metrics_jsonl((dir / "missing.jsonl").string()), Error);
  fs::remove_all(dir);
}

// A report made by hand: two rounds from one base, one of them rejected with a failure whose
// text is markup, and a sweep with a rejected point.
WorkspaceReport handmade_report() {
  WorkspaceReport r;
  r.workspace = "/tmp/ws";
  r.production = "m-v2";
  auto version = [](const std::string& id, const std::string& parent, int64_t n, const std::string& status) {
    ReportVersion v;
    v.record.model_id = id;
    v.record.parent_model_id = parent;
    v.record.version = n;
    v.status = status;
    v.scores.push_back({kNastySet, "loss", 1.5, 2.0, std::nullopt, true});
    return v;
  };
  r.versions = {version("m-v1", "", 1, "retired"), version("m-v2", "m-v1", 2, "production"),
                version("m-v3", "m-v1", 3, "rejected")};
  r.versions[2].record.gate = {{"passed", false}, {"failures", {{{"message", "<script>alert(1)</script> regressed"}}}}};
  ReportRun run;
  run.run_id = "run-3";
  run.status = "failed";
  run.error = "disk <full>";
  run.metrics_note = "no metrics: gone";
  r.runs.push_back(run);
  r.sweeps.push_back({"s1", {{"old_set", "old"}, {"new_set", kNastySet}, {"old_metric", "loss"}, {"new_metric", "token_accuracy"},
                              {"base_old", 4.0}, {"base_new", 0.1},
                              {"points", {{{"lambda", 0}, {"replay_ratio", 0.3}, {"old_score", 3.9}, {"new_score", 0.2},
                                           {"passed", true}, {"pareto", true}},
                                          {{"lambda", 10}, {"replay_ratio", 0}, {"old_score", 4.2}, {"new_score", 0.15},
                                           {"passed", false}, {"pareto", false}}}}}});
  return r;
}

TEST(ReportHtml, EscapesUserTextAndLoadsNothingFromOutside) {
  const std::string html = render_report_html(handmade_report());
  EXPECT_EQ(html.find(kNastySet), std::string::npos);
  EXPECT_GE(count(html, kNastySetEscaped), 3u);  // score table, bar chart, sweep axis
  EXPECT_EQ(html.find("<script>alert"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt; regressed"), std::string::npos);
  EXPECT_NE(html.find("disk &lt;full&gt;"), std::string::npos);
  EXPECT_NE(html.find("no metrics: gone"), std::string::npos);
  EXPECT_TRUE(external_references(html).empty()) << external_references(html)[0];
  EXPECT_NE(html.find("default-src 'none'"), std::string::npos);
  EXPECT_EQ(count(html, "<script>"), 1u);  // the page's own, nothing else
  // The sweep: the rejected point hollow, the front ringed.
  EXPECT_NE(html.find("λ10 r0: old 4.2, new 0.15, rejected"), std::string::npos);
  EXPECT_NE(html.find("on the Pareto front</title>"), std::string::npos);
}

TEST(ReportHtml, LineageSitsAParentBetweenItsChildren) {
  const std::string svg = lineage_svg(handmade_report().versions);
  std::map<std::string, std::pair<double, double>> at;
  const std::regex node("<rect x=\"([\\d.]+)\" y=\"([\\d.]+)\"[^>]*><title>([^ ]+) \\(");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), node); it != std::sregex_iterator(); ++it)
    at[(*it)[3]] = {std::stod((*it)[1]), std::stod((*it)[2])};
  ASSERT_EQ(at.size(), 3u) << svg;
  EXPECT_LT(at["m-v1"].first, at["m-v2"].first);
  EXPECT_EQ(at["m-v2"].first, at["m-v3"].first);
  EXPECT_NE(at["m-v2"].second, at["m-v3"].second);
  EXPECT_DOUBLE_EQ(at["m-v1"].second, (at["m-v2"].second + at["m-v3"].second) / 2);
  EXPECT_EQ(count(svg, "<a href=\"#v-"), 3u);
  EXPECT_NE(svg.find("stroke=\"#c62828\""), std::string::npos);  // the rejected node's border
}

TEST(ReportCliErrors, NotAWorkspaceIsARegistryError) {
  const fs::path dir = cli_test::fresh_test_dir("retain_report_nowhere");
  const CliResult r = cli_test::run_cli({"report", "--workspace", (dir / "nowhere").string()}, dir, "report");
  EXPECT_EQ(r.code, kExitRegistry) << r.describe();
  EXPECT_NE(r.err.find("no retain workspace"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "nowhere"));
  fs::remove_all(dir);
}

// Every file under `dir` with its size, and the database's hash. SQLite's WAL index files are left
// out: a read-only connection to a WAL database makes them (an empty -wal) and cannot remove them.
std::vector<std::string> tree(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name == "retain.db-shm" || (name == "retain.db-wal" && e.file_size() == 0)) continue;
    if (e.is_regular_file()) out.push_back(fs::relative(e.path(), dir).string() + " " + std::to_string(e.file_size()));
  }
  std::sort(out.begin(), out.end());
  out.push_back(sha256_file_hex((dir / "retain.db").string()));
  return out;
}

// The tiny workspace every end-to-end test reads, built once for the suite through the CLI:
// support-v1 imported, support-v2 promoted, support-v3 rejected, support-v4 promoted and then
// rolled back (support-v2 is production again), and a sweep of two settings from support-v2.
class ReportCli : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("retain_report_cli_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    cli_test::write_support_sample(kSource, dir_);
    setup_ok_ = build_workspace();
  }
  static void TearDownTestSuite() {
    if (setup_ok_ && !failed_) fs::remove_all(dir_);
  }
  void SetUp() override { ASSERT_TRUE(setup_ok_) << "the workspace could not be built; see " << dir_; }
  void TearDown() override { failed_ = failed_ || HasFailure(); }

  static std::string path(const std::string& name) { return (dir_ / name).string(); }
  static CliResult run(const std::vector<std::string>& args, const std::string& tag) {
    return cli_test::run_cli(args, dir_, tag);
  }
  static bool ok(const CliResult& r, int code = kExitOk) {
    if (r.code != code) ADD_FAILURE() << r.describe();
    return r.code == code;
  }
  static void round_config(const std::string& name, double old_max_loss) {
    const json c = {{"replay", {{"ratio", 0.3}}},
                    {"ewc", {{"lambda", 10.0}, {"num_samples", 8}}},
                    {"training", {{"max_steps", 4}, {"batch_size", 4}, {"threads", 1}, {"lr", 1e-3}, {"log_every", 1}}},
                    {"gate", {{"test_sets", {{"old", path("old-test.jsonl")}, {kNastySet, path("new-test.jsonl")}}},
                              {"metrics", {{"old", "loss"}, {kNastySet, "token_accuracy"}}},
                              {"min_scores", {{"old", old_max_loss}}},
                              {"regression_tolerance", 1e9}}}};
    write_text(dir_ / name, c.dump(2));
  }
  static bool build_workspace() {
    round_config("pass.json", 1e9);
    round_config("fail.json", 0.0);  // old-set loss must not exceed 0: always rejected
    auto train = [](const std::string& config, int code) {
      return ok(run({"train", "--config", path(config), "--data", path("new.jsonl"), "--workspace", path("ws")},
                    "train-" + config), code);
    };
    return ok(run({"finetune", "--model", (kSource / "models" / "gpt-tiny").string(), "--train", path("old.jsonl"),
                   "--out", path("base"), "--max-steps", "2", "--batch-size", "4", "--threads", "1"}, "finetune")) &&
           ok(run({"fisher", "--model", path("base"), "--data", path("old.jsonl"), "--samples", "8"}, "fisher")) &&
           ok(run({"init", "--workspace", path("ws")}, "init")) &&
           ok(run({"import", path("base"), "--name", "support-v1", "--workspace", path("ws"), "--replay-data",
                   path("old.jsonl")}, "import")) &&
           train("pass.json", kExitOk) && train("fail.json", kExitRejected) && train("pass.json", kExitOk) &&
           ok(run({"registry", "rollback", "--workspace", path("ws")}, "rollback")) &&
           ok(run({"sweep", "--config", path("pass.json"), "--data", path("new.jsonl"), "--workspace", path("ws"),
                   "--lambda", "0,10", "--replay-ratio", "0.3", "--old", "old", "--new", kNastySet}, "sweep"));
  }
  // `retain report` of `workspace` into `out` ("" = the default); its HTML.
  static std::string report(const std::string& workspace, const std::string& out = "") {
    std::vector<std::string> args = {"report", "--workspace", workspace};
    if (!out.empty()) args.insert(args.end(), {"--out", out});
    const CliResult r = run(args, "report");
    if (!ok(r)) return "";
    const std::string written = out.empty() ? (fs::path(workspace) / "report.html").string() : out;
    EXPECT_EQ(r.out, written + "\n");
    return read_text(written);
  }

  static inline fs::path dir_;
  static inline bool setup_ok_ = false, failed_ = false;
};

TEST_F(ReportCli, ShowsEveryVersionVerdictChartAndRoundAndChangesNothing) {
  const auto before = tree(dir_ / "ws");
  ASSERT_FALSE(report(path("ws"), path("elsewhere.html")).empty());
  EXPECT_EQ(tree(dir_ / "ws"), before);  // the report reads the workspace only
  const std::string html = report(path("ws"));  // the default: report.html in the workspace
  ASSERT_FALSE(html.empty());
  for (const char* id : {"support-v1", "support-v2", "support-v3", "support-v4"})
    EXPECT_NE(html.find(std::string("id=\"v-") + id + "\""), std::string::npos) << id;
  EXPECT_EQ(html.find("support-v5"), std::string::npos);  // the sweep's candidates stay in its scratch copy
  // Statuses and verdicts as the registry has them, and support-v4 as rolled back.
  EXPECT_NE(html.find("support-v2<span class=\"badge\" style=\"color:#2e7d32"), std::string::npos);
  EXPECT_NE(html.find("v4 · rolled back"), std::string::npos);
  EXPECT_NE(html.find("v3 · rejected"), std::string::npos);
  EXPECT_EQ(count(html, "<b>rejected</b>"), 1u);
  EXPECT_EQ(count(html, "<b>passed</b>"), 2u);
  EXPECT_NE(html.find("old: loss"), std::string::npos);  // the failure's message
  EXPECT_NE(html.find("is above the maximum 0"), std::string::npos);
  // One chart of each kind: lineage, score bars, curves (loss, lr, grad norm, tokens/s, EWC
  // share), the mix, the sweep scatter.
  for (const char* label : {"version lineage", "Scores per test set", "Loss", "Learning rate", "Gradient norm",
                            "Throughput", "EWC share of the loss", "replay mix", "sweep: old task against new task"})
    EXPECT_TRUE(std::regex_search(html, std::regex(std::string("<svg [^>]*aria-label=\"") + label))) << label;
  EXPECT_EQ(count(html, "aria-label=\"Loss\""), 3u);  // one per round
  // The mix: 16 new examples and floor(16 · 0.3 / 0.7) = 6 replayed in every round.
  EXPECT_EQ(count(html, ">16 new</text>"), 3u);
  EXPECT_EQ(count(html, ">6 replayed (27.3 %)</text>"), 3u);
  // Escaped test-set name; nothing external.
  EXPECT_EQ(html.find(kNastySet), std::string::npos);
  EXPECT_NE(html.find("<td>" + kNastySetEscaped + "</td>"), std::string::npos);
  EXPECT_TRUE(external_references(html).empty()) << external_references(html)[0];
}

TEST_F(ReportCli, ARoundWithoutMetricsSaysSoAndTheRestIsReported) {
  const fs::path copy = dir_ / "ws-no-metrics";
  fs::remove_all(copy);
  fs::copy(dir_ / "ws", copy, fs::copy_options::recursive);
  int removed = 0;
  for (const auto& run : fs::directory_iterator(copy / "runs"))
    if (run.path().filename().string().find("support-v3") != std::string::npos)
      removed += fs::remove(run.path() / "metrics.jsonl");
  ASSERT_EQ(removed, 1);
  const std::string html = report(copy.string());
  EXPECT_EQ(count(html, "no metrics: "), 1u);
  EXPECT_EQ(count(html, "aria-label=\"Loss\""), 2u);
  EXPECT_NE(html.find("id=\"v-support-v3\""), std::string::npos);
}

TEST_F(ReportCli, EveryRoundHasItsMetricsAsCsv) {
  int runs = 0;
  for (const auto& run : fs::directory_iterator(dir_ / "ws" / "runs")) {
    ++runs;
    const std::string csv = read_text(run.path() / "metrics.csv");
    // A round has no validation set: no valid records, so no perplexity or token_accuracy column.
    EXPECT_EQ(csv.rfind("type,step,loss,loss_task,loss_ewc,lr,grad_norm,tokens_per_s,skipped_updates,elapsed_s\n", 0), 0u)
        << csv.substr(0, 200);
    const MetricsFile jsonl = read_metrics_jsonl((run.path() / "metrics.jsonl").string());
    EXPECT_EQ(count(csv, "\n"), jsonl.records.size() + 1);
    EXPECT_EQ(count(csv, "\ntrain,4,"), 1u);  // the last of 4 steps, logged every step
  }
  EXPECT_EQ(runs, 3);
}

// Runs `command` through the shell; its exit status.
int shell(const std::string& command) {
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

// Chromium's DOM dump of `page` (stderr to `log`), or "" when it failed.
std::string chromium_dom(const fs::path& page, const fs::path& dir, const std::string& tag) {
  const fs::path dom = dir / (tag + ".dom.html"), log = dir / (tag + ".chromium.log");
  const std::string cmd = "timeout 60 chromium --headless --no-sandbox --disable-gpu --no-first-run "
                          "--user-data-dir=" + (dir / "chromium-profile").string() +
                          " --enable-logging=stderr --v=0 --dump-dom 'file://" + page.string() + "' > '" +
                          dom.string() + "' 2> '" + log.string() + "'";
  const int code = shell(cmd);
  EXPECT_EQ(code, 0) << cmd << "\n" << read_text(log);
  return read_text(dom) + "\n<!--stderr-->\n" + read_text(log);
}

TEST_F(ReportCli, ChromiumRendersItWithoutErrorsAndShowsEveryVersion) {
  // Installed by scripts/setup.sh: a missing browser fails this test, it does not skip it.
  ASSERT_EQ(shell("command -v chromium > /dev/null"), 0) << "chromium is not installed; run scripts/setup.sh";
  const std::string html = report(path("ws"), path("chromium.html"));
  ASSERT_FALSE(html.empty());
  const std::string out = chromium_dom(dir_ / "chromium.html", dir_, "report");
  const std::string dom = out.substr(0, out.find("\n<!--stderr-->\n"));
  EXPECT_NE(dom.find("data-ok=\"true\""), std::string::npos) << dom.substr(0, 500);
  EXPECT_EQ(out.find("Uncaught"), std::string::npos) << out.substr(out.find("<!--stderr-->"));
  for (const char* id : {"support-v1", "support-v2", "support-v3", "support-v4"})
    EXPECT_NE(dom.find(std::string("id=\"v-") + id + "\""), std::string::npos) << id;
  // The check can fail: a page whose script throws is caught by the same two signs.
  write_text(dir_ / "broken.html", "<!DOCTYPE html><html><body><script>throw new Error('boom');"
                                   "document.body.setAttribute('data-ok','true')</script></body></html>");
  const std::string broken = chromium_dom(dir_ / "broken.html", dir_, "broken");
  EXPECT_EQ(broken.find("data-ok=\"true\""), std::string::npos);
  EXPECT_NE(broken.find("Uncaught"), std::string::npos) << broken;
}

}  // namespace
}  // namespace retain
