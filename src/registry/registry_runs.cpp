// The registry's scores, gate results and runs (see registry.h; tables in docs/workspace.md).
#include <cmath>
#include <ctime>

#include "retain/errors.h"
#include "retain/registry.h"

namespace retain {
namespace {

bool is_run_status(const std::string& status) {
  for (const char* s : {"running", "promoted", "candidate", "rejected", "failed", "interrupted"})
    if (status == s) return true;
  return false;
}

int64_t unix_seconds() { return static_cast<int64_t>(std::time(nullptr)); }

}  // namespace

// ---- scores and gate -----------------------------------------------------------------------

std::optional<double> Registry::score(const std::string& model_id, const std::string& test_set,
                                      const std::string& metric, const std::string& data_hash) {
  auto s = db_.prepare("SELECT value, data_hash FROM version_scores "
                       "WHERE model_id = ? AND test_set = ? AND metric = ?");
  s.bind(1, model_id).bind(2, test_set).bind(3, metric);
  if (!s.step() || s.column_text(1) != data_hash) return std::nullopt;
  return s.column_double(0);
}

void Registry::set_scores(const std::string& model_id, const std::vector<Score>& scores) {
  Transaction txn(db_, Transaction::Mode::kWrite);
  get(model_id);  // RegistryError when unknown
  auto insert = db_.prepare(
      "INSERT OR REPLACE INTO version_scores (model_id, test_set, metric, value, data_hash) "
      "VALUES (?, ?, ?, ?, ?)");
  for (const Score& s : scores) {
    // SQLite would store NaN as NULL; a score that is not a number is a bug upstream.
    if (s.test_set.empty() || s.metric.empty() || std::isnan(s.value)) {
      throw RegistryError("cannot store score of " + model_id + " on \"" + s.test_set + "\" (" +
                          s.metric + "): test set and metric must be named and the value a number");
    }
    insert.bind(1, model_id).bind(2, s.test_set).bind(3, s.metric).bind(4, s.value)
        .bind(5, s.data_hash).run();
  }
  txn.commit();
}

void Registry::set_gate(const std::string& model_id, const nlohmann::json& gate) {
  Transaction txn(db_, Transaction::Mode::kWrite);
  get(model_id);
  auto update = db_.prepare("UPDATE versions SET gate = ? WHERE model_id = ?");
  if (gate.is_null()) update.bind_null(1);
  else update.bind(1, gate.dump());
  update.bind(2, model_id).run();
  txn.commit();
}

// ---- runs ----------------------------------------------------------------------------------

void Registry::start_run(const std::string& run_id, const std::string& base_model_id,
                         const nlohmann::json& settings) {
  if (run_id.empty()) throw RegistryError("cannot record a run without a run id");
  Transaction txn(db_, Transaction::Mode::kWrite);
  if (run(run_id)) throw RegistryError("run " + run_id + " is already recorded in the registry");
  auto insert = db_.prepare(
      "INSERT INTO runs (run_id, started_at, status, base_model_id, settings) "
      "VALUES (?, ?, 'running', ?, ?)");
  insert.bind(1, run_id).bind(2, unix_seconds());
  if (base_model_id.empty()) insert.bind_null(3);
  else insert.bind(3, base_model_id);
  insert.bind(4, settings.is_null() ? std::string("{}") : settings.dump()).run();
  txn.commit();
}

void Registry::finish_run(const std::string& run_id, const std::string& status,
                          const std::string& model_id) {
  if (!is_run_status(status) || status == "running") {
    throw RegistryError("cannot finish run " + run_id + " as \"" + status +
                        "\" (expected promoted, candidate, rejected, failed or interrupted)");
  }
  Transaction txn(db_, Transaction::Mode::kWrite);
  auto update = db_.prepare("UPDATE runs SET status = ?, finished_at = ?, model_id = ? WHERE run_id = ?");
  update.bind(1, status).bind(2, unix_seconds());
  if (model_id.empty()) update.bind_null(3);
  else update.bind(3, model_id);
  update.bind(4, run_id).run();
  if (db_.changes() == 0) throw RegistryError("no run " + run_id + " in the registry");
  txn.commit();
}

void Registry::fail_run(const std::string& run_id, const std::string& error) {
  Transaction txn(db_, Transaction::Mode::kWrite);
  auto update = db_.prepare("UPDATE runs SET status = 'failed', finished_at = ?, error = ? WHERE run_id = ?");
  update.bind(1, unix_seconds()).bind(2, error).bind(3, run_id).run();
  if (db_.changes() == 0) throw RegistryError("no run " + run_id + " in the registry");
  txn.commit();
}

int64_t Registry::mark_interrupted_runs(const std::string& except_run_id) {
  // finished_at stays null: when an interrupted run stopped is not known.
  Transaction txn(db_, Transaction::Mode::kWrite);
  db_.prepare("UPDATE runs SET status = 'interrupted' WHERE status = 'running' AND run_id <> ?")
      .bind(1, except_run_id)
      .run();
  const int64_t marked = db_.changes();
  txn.commit();
  return marked;
}

std::optional<nlohmann::json> Registry::run(const std::string& run_id) {
  auto s = db_.prepare("SELECT run_id, started_at, finished_at, status, base_model_id, model_id, "
                       "settings, error FROM runs WHERE run_id = ?");
  if (!s.bind(1, run_id).step()) return std::nullopt;
  auto nullable_int = [&](int c) { return s.column_is_null(c) ? nlohmann::json() : nlohmann::json(s.column_int(c)); };
  auto nullable_text = [&](int c) { return s.column_is_null(c) ? nlohmann::json() : nlohmann::json(s.column_text(c)); };
  nlohmann::json j;
  j["run_id"] = s.column_text(0);
  j["started_at"] = s.column_int(1);
  j["finished_at"] = nullable_int(2);
  j["status"] = s.column_text(3);
  j["base_model_id"] = nullable_text(4);
  j["model_id"] = nullable_text(5);
  j["error"] = nullable_text(7);
  try {
    j["settings"] = nlohmann::json::parse(s.column_text(6));
  } catch (const nlohmann::json::exception& e) {
    throw RegistryError("registry: stored settings of run " + run_id + " are not valid JSON: " + e.what());
  }
  return j;
}

}  // namespace retain
