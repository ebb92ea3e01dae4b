// What a round reports (table and JSON), and `retain gate --version`: the gate re-run for a
// registered version against the current production.
#include <cstdio>
#include <filesystem>

#include "pipeline_internal.h"
#include "retain/errors.h"
#include "retain/log.h"
#include "retain/text_table.h"
#include "retain/workspace.h"

namespace retain {
namespace fs = std::filesystem;

namespace {

std::string fixed(double x, int digits = 4) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", digits, x);
  return buf;
}

std::string signed_fixed(double x) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%+.4f", x);
  return buf;
}

const GateCheck* check_of(const GateResult& gate, const std::string& name) {
  for (const auto& c : gate.checks)
    if (c.test_set == name) return &c;
  return nullptr;
}

}  // namespace

nlohmann::json RoundResult::to_json() const {
  nlohmann::json sets = nlohmann::json::array();
  for (const auto& row : scores) {
    const GateCheck* check = check_of(gate, row.name);
    nlohmann::json j = {{"test_set", row.name}, {"metric", row.metric}, {"data_hash", row.data_hash},
                        {"candidate", row.candidate}, {"base", row.base.at(row.metric)}};
    const double cand = detail::metric_value(row.candidate, row.metric);
    j["candidate_score"] = cand;
    j["delta"] = cand - row.base.at(row.metric);
    j["production"] = check && check->production ? nlohmann::json(*check->production) : nlohmann::json();
    j["min_score"] = check && check->min_score ? nlohmann::json(*check->min_score) : nlohmann::json();
    j["passed"] = check ? check->passed : false;
    sets.push_back(j);
  }
  const double tps = training.seconds > 0 ? training.tokens / training.seconds : 0;
  return {{"run_id", run_id},
          {"model_id", model_id},
          {"version", version},
          {"base_model_id", base_model_id},
          {"production_model_id", production_model_id.empty() ? nlohmann::json() : nlohmann::json(production_model_id)},
          {"status", status},
          {"note", note.empty() ? nlohmann::json() : nlohmann::json(note)},
          {"passed", gate.passed},
          {"gate", gate.to_json()},
          {"test_sets", sets},
          {"mix", {{"new_examples", new_examples}, {"replay_examples", replay_examples},
                   {"replay_ratio", new_examples + replay_examples > 0
                                        ? double(replay_examples) / double(new_examples + replay_examples) : 0.0}}},
          {"training", {{"steps", training.steps}, {"seconds", training.seconds}, {"tokens", training.tokens},
                        {"tokens_per_s", tps}, {"last_loss", training.last_loss},
                        {"skipped_updates", training.skipped_updates}, {"resumed_from_step", training.resumed_from_step}}},
          {"fisher_seconds", fisher_seconds},
          {"seconds", seconds}};
}

std::string RoundResult::summary() const {
  std::string out;
  const char* verdict = status == "production" ? "PASSED, promoted to production"
                        : status == "candidate" ? "PASSED, registered as a candidate"
                                                : "REJECTED by the gate";
  out += "round " + base_model_id + " → " + model_id + " (version " + std::to_string(version) + ", run " + run_id +
         "): " + verdict + "\n\n";
  // Regressions are judged against production: where it is not the base, its scores get a column.
  const bool other_production = !production_model_id.empty() && production_model_id != base_model_id;
  std::vector<std::vector<std::string>> rows = {{"test set", "metric", "base"}};
  if (other_production) rows[0].push_back("production");
  rows[0].insert(rows[0].end(), {"candidate", "delta", "bound", "result"});
  for (const auto& row : scores) {
    const GateCheck* check = check_of(gate, row.name);
    const double base = row.base.at(row.metric), cand = detail::metric_value(row.candidate, row.metric);
    std::string bound;
    if (check && check->min_score) bound += (higher_is_better(row.metric) ? "min " : "max ") + fixed(*check->min_score, 3);
    if (check && check->production) bound += std::string(bound.empty() ? "" : ", ") + "tol " + fixed(check->tolerance, 3);
    std::vector<std::string> cells = {row.name, row.metric, fixed(base)};
    if (other_production) cells.push_back(check && check->production ? fixed(*check->production) : "-");
    cells.insert(cells.end(), {fixed(cand), signed_fixed(cand - base), bound.empty() ? "-" : bound,
                               check && check->passed ? "pass" : "FAIL"});
    rows.push_back(std::move(cells));
  }
  out += format_table(rows);
  if (other_production)
    out += "(delta is against the base; regressions are judged against production " + production_model_id + ")\n";
  for (const auto& f : gate.failures) out += "  ✗ " + f.message + "\n";
  const double tps = training.seconds > 0 ? training.tokens / training.seconds : 0;
  char line[256];
  std::snprintf(line, sizeof line,
                "\nmix: %ld new + %ld replayed examples | training: %ld steps in %.1f s, %.0f tokens/s | "
                "Fisher %.1f s | round %.1f s\n",
                long(new_examples), long(replay_examples), long(training.steps), training.seconds, tps, fisher_seconds,
                seconds);
  out += line;
  return out;
}

nlohmann::json RegateResult::to_json() const {
  return {{"model_id", model_id},
          {"production_model_id", production_model_id.empty() ? nlohmann::json() : nlohmann::json(production_model_id)},
          {"passed", gate.passed},
          {"gate", gate.to_json()},
          {"candidate", candidate},
          {"production", production}};
}

RegateResult regate(const std::string& workspace, const std::string& model_id, const GateConfig& gate,
                    const RoundConfig::Eval& eval, const std::string& device) {
  parse_device(device);
  Workspace ws = Workspace::open(workspace);
  Registry registry(ws.db());
  RegateResult r;
  const VersionRecord version = registry.get(model_id);
  r.model_id = version.model_id;
  // The version's family says what its test sets must look like.
  const std::string dir = (std::filesystem::path(ws.dir()) / version.model_dir).string();
  const auto sets = detail::load_test_sets(gate, family_of(dir), dir);
  r.candidate = detail::stored_or_measured(registry, ws.dir(), model_id, sets, eval, device, nullptr);
  if (auto production = registry.production(); production && production->model_id != model_id) {
    r.production_model_id = production->model_id;
    r.production = detail::stored_or_measured(registry, ws.dir(), production->model_id, sets, eval, device, nullptr);
  } else if (production) {
    r.production_model_id = production->model_id;
    log()->info("{} is production: the gate checks only the minimum scores", model_id);
  }
  r.gate = run_gate(gate, r.candidate, r.production);
  registry.set_gate(model_id, r.gate.to_json());
  return r;
}

}  // namespace retain
