// `retain report`: one self-contained HTML page about a workspace (docs/report.md) — the registry
// as a lineage graph, each version's scores against its parent and production with the gate's
// verdict, each round's training curves and replay mix, and the sweeps' old-vs-new scatter.
//
// The report reads the workspace and never changes it: the registry through Registry's readers,
// the run folders (round.json, replay.jsonl, metrics.jsonl) and sweeps/*/sweep.json as files.
// Whatever a run folder lacks (a round that crashed early, a deleted data file) is shown as such
// in the page, not an error. The page loads nothing from the network: inline CSS, inline SVG and a
// few lines of inline JavaScript, under a Content-Security-Policy that forbids anything else.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "retain/registry.h"

namespace retain {

// One score of a version with what it is compared against: the parent's and the current
// production's score on the same test set, metric and data (hash); nullopt when they have none.
struct ReportScore {
  std::string test_set, metric;
  double value = 0;
  std::optional<double> parent, production;
  bool gate_metric = false;  // the metric the gate judges this test set on
};

struct ReportVersion {
  VersionRecord record;
  // status_name(record.status), except "rolled back" for a retired version that a rollback took
  // out of production (and that was not promoted again since).
  std::string status;
  std::vector<ReportScore> scores;  // by test set, the gate's metric first
};

struct TopicMix {
  std::string topic;
  int64_t new_examples = 0, replayed = 0;
};

struct ReportRun {
  std::string run_id, status, base_model_id, model_id, error;  // status as in the runs table
  int64_t started_at = 0;
  nlohmann::json settings;  // the run's recorded settings (the round config and the data file)
  std::vector<nlohmann::json> metrics;  // metrics.jsonl records
  std::string metrics_note;  // why there are no metrics ("" when read): missing, unreadable, empty
  // The mix: new examples from the round's data file (when it is still there with the same
  // hash), replayed ones from replay.jsonl; -1 when unknown, with mix_note saying why.
  int64_t new_examples = -1, replayed = -1;
  std::vector<TopicMix> topics;  // largest first
  std::string mix_note;
};

struct ReportSweep {
  std::string name;    // the sweep's folder name
  nlohmann::json data;  // its sweep.json (sweep.h's SweepResult::to_json)
};

struct WorkspaceReport {
  std::string workspace;   // absolute path
  int64_t generated_at = 0;  // Unix seconds
  std::string production;  // "" when none
  std::vector<ReportVersion> versions;  // oldest first
  std::vector<HistoryEntry> history;
  std::vector<ReportRun> runs;          // oldest first
  std::vector<ReportSweep> sweeps;      // by folder name
  std::vector<std::string> notes;       // things the report could not read (a bad sweep.json, …)
};

// Reads everything the report shows, with the database opened read-only (Workspace::reading()).
// Throws RegistryError when `workspace_dir` is not a retain workspace or its schema is older than
// this build's (Workspace::open's messages, exit code 5 in the CLI); nothing else is fatal.
WorkspaceReport gather_report(const std::string& workspace_dir);

// The page: HTML5, UTF-8, every user-provided string escaped.
std::string render_report_html(const WorkspaceReport& report);

// The SVG lineage graph of the report's versions: one node per version (its id, status colour,
// a link to its section), an edge from each parent.
std::string lineage_svg(const std::vector<ReportVersion>& versions);
// The SVG scatter of one sweep: old-task score (x) against new-task score (y) per setting, the
// Pareto front joined, rejected settings hollow, the base marked.
std::string sweep_svg(const nlohmann::json& sweep);

// gather_report + render_report_html, written atomically to `out_path` ("" = <workspace>/report.html).
// Returns the path written.
std::string write_report(const std::string& workspace_dir, const std::string& out_path);

}  // namespace retain
