// What the workspace report shows, gathered from the registry and the run folders (report.h).
// Reading only: the registry through its readers, everything else as files; whatever a run
// folder lacks becomes a note in the page rather than an error.
#include "retain/report.h"

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "retain/errors.h"
#include "retain/fileio.h"
#include "retain/hash.h"
#include "retain/metrics_file.h"
#include "retain/replay_row.h"
#include "retain/workspace.h"

namespace retain {

namespace fs = std::filesystem;

namespace {

// The metric the gate of `settings` (a round's resolved config) judges `test_set` on; "" when the
// version had no gate (an import) or the set is not in it.
std::string gate_metric_of(const nlohmann::json& settings, const std::string& test_set) {
  const auto gate = settings.find("gate");
  if (gate == settings.end() || !gate->is_object()) return "";
  const auto sets = gate->find("test_sets");
  if (sets == gate->end() || !sets->is_object() || !sets->contains(test_set)) return "";
  const auto metrics = gate->find("metrics");
  if (metrics != gate->end() && metrics->is_object() && metrics->contains(test_set) && (*metrics)[test_set].is_string())
    return (*metrics)[test_set].get<std::string>();
  return "token_accuracy";  // gate.h: a test set without a metric is judged on token_accuracy
}

std::optional<double> matching_score(const std::optional<VersionRecord>& other, const Score& s) {
  if (!other) return std::nullopt;
  for (const Score& o : other->scores)
    if (o.test_set == s.test_set && o.metric == s.metric && o.data_hash == s.data_hash) return o.value;
  return std::nullopt;
}

std::vector<ReportScore> compared_scores(const VersionRecord& v, const std::optional<VersionRecord>& parent,
                                         const std::optional<VersionRecord>& production) {
  std::vector<ReportScore> out;
  for (const Score& s : v.scores) {
    ReportScore r;
    r.test_set = s.test_set;
    r.metric = s.metric;
    r.value = s.value;
    r.parent = matching_score(parent, s);
    r.production = production && production->model_id == v.model_id ? std::optional<double>(s.value)
                                                                     : matching_score(production, s);
    r.gate_metric = gate_metric_of(v.settings, s.test_set) == s.metric;
    out.push_back(r);
  }
  std::stable_sort(out.begin(), out.end(), [](const ReportScore& a, const ReportScore& b) {
    return a.test_set != b.test_set ? a.test_set < b.test_set : a.gate_metric > b.gate_metric;
  });
  return out;
}

// Versions a rollback took out of production and nothing promoted since: history read in order.
std::set<std::string> rolled_back(const std::vector<HistoryEntry>& history) {
  std::set<std::string> out;
  for (const HistoryEntry& h : history) {
    if (h.action == "rollback") out.insert(h.previous_model_id);
    out.erase(h.model_id);
  }
  return out;
}

// The topic the buffer files a JSONL line under (replay_row.h): a chat's topic or the first words
// of its last user message, a feature row's "class <label>"; "(unreadable)" otherwise.
std::string line_topic(const std::string& line, const std::string& file, int64_t number) {
  ChatExample example;
  std::vector<DataIssue> issues;
  if (parse_chat_line(line, file, number, example, issues)) return replay_topic(example);
  try {
    const auto j = nlohmann::json::parse(line);
    if (j.is_object() && j.contains("label")) return "class " + j["label"].dump();
  } catch (const nlohmann::json::exception&) {
  }
  return "(unreadable)";
}

// Counts the lines of a JSONL file by topic into `topics` (new or replayed); returns the count.
int64_t count_topics(const std::string& path, bool replayed, std::map<std::string, TopicMix>& topics) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read " + path);
  std::string line;
  int64_t n = 0, number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string topic = line_topic(line, path, number);
    TopicMix& t = topics[topic];
    t.topic = topic;
    ++(replayed ? t.replayed : t.new_examples);
    ++n;
  }
  return n;
}

// The mix of a round: replay.jsonl in its folder, and its data file when it is unchanged.
void read_mix(ReportRun& run, const fs::path& run_dir) {
  std::map<std::string, TopicMix> topics;
  const fs::path replay = run_dir / "replay.jsonl";
  if (fs::exists(replay)) run.replayed = count_topics(replay.string(), true, topics);
  else run.mix_note = "the round stopped before its mix was drawn (no replay.jsonl)";
  const std::string data = run.settings.value("data", "");
  nlohmann::json round;
  try {
    round = nlohmann::json::parse(read_file((run_dir / "round.json").string()));
  } catch (const std::exception&) {
  }
  const std::string hash = round.is_object() ? round.value("data_hash", "") : "";
  if (data.empty()) {
    if (run.mix_note.empty()) run.mix_note = "the run records no data file";
  } else if (!fs::exists(data)) {
    if (run.mix_note.empty()) run.mix_note = "new examples not counted: " + data + " is gone";
  } else if (!hash.empty() && "sha256:" + sha256_file_hex(data) != hash) {
    if (run.mix_note.empty()) run.mix_note = "new examples not counted: " + data + " changed since the round";
  } else {
    run.new_examples = count_topics(data, false, topics);
  }
  for (auto& [name, t] : topics) run.topics.push_back(t);
  std::stable_sort(run.topics.begin(), run.topics.end(), [](const TopicMix& a, const TopicMix& b) {
    return a.new_examples + a.replayed > b.new_examples + b.replayed;
  });
}

ReportRun read_run(Registry& registry, const fs::path& runs_dir, const std::string& run_id) {
  ReportRun run;
  run.run_id = run_id;
  run.status = "unknown";
  if (const auto row = registry.run(run_id)) {
    auto text = [&](const char* key) { return (*row)[key].is_string() ? (*row)[key].get<std::string>() : ""; };
    run.status = text("status");
    run.base_model_id = text("base_model_id");
    run.model_id = text("model_id");
    run.error = text("error");
    run.started_at = (*row)["started_at"].get<int64_t>();
    run.settings = (*row)["settings"];
  }
  if (!run.settings.is_object()) run.settings = nlohmann::json::object();
  const fs::path dir = runs_dir / run_id;
  const fs::path metrics = dir / "metrics.jsonl";
  try {
    if (!fs::exists(metrics)) {
      run.metrics_note = "no metrics: " + metrics.string() + " does not exist";
    } else {
      run.metrics = read_metrics_jsonl(metrics.string()).records;
      if (run.metrics.empty()) run.metrics_note = "no metrics: " + metrics.string() + " has no records";
    }
  } catch (const std::exception& e) {
    run.metrics.clear();
    run.metrics_note = std::string("no metrics: ") + e.what();
  }
  try {
    read_mix(run, dir);
  } catch (const std::exception& e) {
    run.mix_note = std::string("mix unreadable: ") + e.what();
  }
  return run;
}

std::vector<ReportSweep> read_sweeps(const fs::path& dir, std::vector<std::string>& notes) {
  std::vector<ReportSweep> sweeps;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return sweeps;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const fs::path file = entry.path() / "sweep.json";
    if (!fs::exists(file, ec)) continue;
    try {
      ReportSweep s{entry.path().filename().string(), nlohmann::json::parse(read_file(file.string()))};
      if (!s.data.is_object() || !s.data.contains("points") || !s.data["points"].is_array())
        throw Error("no \"points\" array");
      sweeps.push_back(std::move(s));
    } catch (const std::exception& e) {
      notes.push_back("sweep " + file.string() + " skipped: " + e.what());
    }
  }
  std::sort(sweeps.begin(), sweeps.end(), [](const ReportSweep& a, const ReportSweep& b) { return a.name < b.name; });
  return sweeps;
}

}  // namespace

WorkspaceReport gather_report(const std::string& workspace_dir) {
  Workspace ws = Workspace::open(workspace_dir, Workspace::reading());  // never migrated, never written
  Registry registry(ws.db());
  WorkspaceReport report;
  report.workspace = fs::absolute(ws.dir()).lexically_normal().string();
  report.generated_at = std::time(nullptr);
  const auto production = registry.production();
  if (production) report.production = production->model_id;
  report.history = registry.history();
  const std::set<std::string> rolled = rolled_back(report.history);
  std::map<std::string, VersionRecord> by_id;
  const std::vector<VersionRecord> versions = registry.list();
  for (const auto& v : versions) by_id[v.model_id] = v;
  std::set<std::string> run_ids;
  for (const auto& v : versions) {
    ReportVersion rv;
    rv.record = v;
    rv.status = v.status == VersionStatus::kRetired && rolled.count(v.model_id) ? "rolled back" : status_name(v.status);
    const auto parent = by_id.find(v.parent_model_id);
    rv.scores = compared_scores(v, parent == by_id.end() ? std::nullopt : std::optional<VersionRecord>(parent->second),
                                production);
    report.versions.push_back(std::move(rv));
    if (!v.run_id.empty()) run_ids.insert(v.run_id);
  }
  // Every run folder (failed and interrupted rounds have no version) and every version's run.
  std::error_code ec;
  if (fs::is_directory(ws.runs_dir(), ec))
    for (const auto& entry : fs::directory_iterator(ws.runs_dir(), ec))
      if (entry.is_directory(ec)) run_ids.insert(entry.path().filename().string());
  for (const auto& id : run_ids) report.runs.push_back(read_run(registry, ws.runs_dir(), id));
  std::stable_sort(report.runs.begin(), report.runs.end(),
                   [](const ReportRun& a, const ReportRun& b) { return a.started_at < b.started_at; });
  report.sweeps = read_sweeps(fs::path(ws.dir()) / "sweeps", report.notes);
  return report;
}

std::string write_report(const std::string& workspace_dir, const std::string& out_path) {
  const WorkspaceReport report = gather_report(workspace_dir);
  const std::string path = out_path.empty() ? (fs::path(report.workspace) / "report.html").string() : out_path;
  write_file_atomic(path, render_report_html(report));
  return path;
}

}  // namespace retain
