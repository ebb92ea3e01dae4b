// The model registry (see registry.h): versions, lineage, promotion and rollback, on the tables of
// schema migration 2 (src/workspace_schema.cpp, docs/workspace.md). Every change is one write
// transaction, or a savepoint inside the caller's, so a crash leaves the registry as it was; the
// rule "at most one production" is also an index, so no code path can break it.
#include "retain/registry.h"

#include <ctime>
#include <map>
#include <set>

#include "retain/errors.h"
#include "retain/log.h"

namespace retain {
namespace {

// Column list matching read_version().
constexpr const char* kVersionColumns =
    "version, model_id, coalesce(parent_model_id, ''), created_at, status, run_id, model_dir, "
    "settings, data_hashes, gate, coalesce(adapter_base_model_id, ''), data_files";

nlohmann::json stored_json(const std::string& text, const std::string& what) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw RegistryError("registry: stored " + what + " is not valid JSON: " + e.what());
  }
}

VersionRecord read_version(const Statement& s) {
  VersionRecord r;
  r.version = s.column_int(0);
  r.model_id = s.column_text(1);
  r.parent_model_id = s.column_text(2);
  r.created_at = s.column_int(3);
  r.status = parse_status(s.column_text(4));
  r.run_id = s.column_text(5);
  r.model_dir = s.column_text(6);
  r.settings = stored_json(s.column_text(7), "settings of " + r.model_id);
  r.data_hashes = stored_json(s.column_text(8), "data hashes of " + r.model_id);
  if (!s.column_is_null(9)) r.gate = stored_json(s.column_text(9), "gate result of " + r.model_id);
  r.adapter_base_model_id = s.column_text(10);
  r.data_files = stored_json(s.column_text(11), "data files of " + r.model_id);
  return r;
}

// Scores from columns `first` … first+3: test_set, metric, value, data_hash.
Score read_score(const Statement& s, int first) {
  return Score{s.column_text(first), s.column_text(first + 1), s.column_double(first + 2),
               s.column_text(first + 3)};
}

// The production version's id, "" when there is none.
std::string production_id(Database& db) {
  auto s = db.prepare("SELECT model_id FROM versions WHERE status = 'production'");
  return s.step() ? s.column_text(0) : std::string();
}

// Retires `previous` ("" when none), makes `model_id` production and appends the history entry.
// The caller holds the write transaction. Retiring first matters: the one-production index is
// checked per statement.
void make_production(Database& db, const std::string& model_id, const std::string& previous,
                     const char* action, const std::string& note) {
  if (!previous.empty()) {
    db.prepare("UPDATE versions SET status = 'retired' WHERE model_id = ?").bind(1, previous).run();
  }
  db.prepare("UPDATE versions SET status = 'production' WHERE model_id = ?").bind(1, model_id).run();
  auto insert = db.prepare(
      "INSERT INTO registry_history (at, action, model_id, previous_model_id, note) "
      "VALUES (?, ?, ?, ?, ?)");
  insert.bind(1, static_cast<int64_t>(std::time(nullptr))).bind(2, action).bind(3, model_id);
  if (previous.empty()) insert.bind_null(4);
  else insert.bind(4, previous);
  insert.bind(5, note).run();
}

// The history read as a stack of production versions: import and promote push the version that
// became production, rollback pops back to the entry below.
std::vector<std::string> production_stack(const std::vector<HistoryEntry>& history) {
  std::vector<std::string> stack;
  for (const HistoryEntry& e : history) {
    if (e.action == "rollback" && !stack.empty()) stack.pop_back();
    if (stack.empty() || stack.back() != e.model_id) stack.push_back(e.model_id);
  }
  return stack;
}

nlohmann::json null_if_empty(const std::string& text) {
  return text.empty() ? nlohmann::json() : nlohmann::json(text);
}

}  // namespace

// ---- names and records ---------------------------------------------------------------------

const char* status_name(VersionStatus status) {
  switch (status) {
    case VersionStatus::kCandidate: return "candidate";
    case VersionStatus::kProduction: return "production";
    case VersionStatus::kRetired: return "retired";
    case VersionStatus::kRejected: return "rejected";
  }
  return "?";
}

VersionStatus parse_status(const std::string& name) {
  for (VersionStatus s : {VersionStatus::kCandidate, VersionStatus::kProduction,
                          VersionStatus::kRetired, VersionStatus::kRejected}) {
    if (name == status_name(s)) return s;
  }
  throw RegistryError("unknown version status \"" + name +
                      "\" (expected candidate, production, retired or rejected)");
}

void check_model_id(const std::string& model_id) {
  bool ok = !model_id.empty() && model_id.size() <= 128 && model_id != "." && model_id != "..";
  for (const char c : model_id) {
    ok = ok && ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                c == '.' || c == '_' || c == '-');
  }
  if (!ok) {
    throw ConfigError("model id \"" + model_id + "\" is not allowed: use 1–128 characters of "
                      "A–Z, a–z, 0–9, '.', '_' and '-' (not \".\" or \"..\"), e.g. support-v3");
  }
}

nlohmann::json VersionRecord::to_json() const {
  nlohmann::json eval_scores = nlohmann::json::object();
  nlohmann::json score_list = nlohmann::json::array();
  for (const Score& s : scores) {
    eval_scores[s.test_set][s.metric] = s.value;
    score_list.push_back({{"test_set", s.test_set}, {"metric", s.metric}, {"value", s.value},
                          {"data_hash", s.data_hash}});
  }
  nlohmann::json j;
  j["model_id"] = model_id;
  j["parent_model_id"] = null_if_empty(parent_model_id);
  j["version"] = version;
  j["created_at"] = created_at;
  j["status"] = status_name(status);
  j["run_id"] = run_id;
  j["model_dir"] = model_dir;
  j["adapter_base_model_id"] = null_if_empty(adapter_base_model_id);
  j["settings"] = settings;
  j["data_hashes"] = data_hashes;
  j["data_files"] = data_files;
  j["gate"] = gate;
  j["eval_scores"] = eval_scores;
  j["scores"] = score_list;
  return j;
}

nlohmann::json HistoryEntry::to_json() const {
  return {{"seq", seq}, {"at", at}, {"action", action}, {"model_id", model_id},
          {"previous_model_id", null_if_empty(previous_model_id)}, {"note", note}};
}

// ---- registering ---------------------------------------------------------------------------

Registry::Registry(Database& db) : db_(db) {}

int64_t Registry::reserve_version() {
  Transaction txn(db_, Transaction::Mode::kWrite);
  const int64_t version = db_.query_int("SELECT next_version FROM registry_state WHERE id = 0");
  db_.exec("UPDATE registry_state SET next_version = next_version + 1 WHERE id = 0");
  txn.commit();
  return version;
}

void Registry::add(const VersionRecord& record) {
  const std::string& id = record.model_id;
  check_model_id(id);
  Transaction txn(db_, Transaction::Mode::kWrite);
  if (find(id)) throw RegistryError("version " + id + " is already in the registry; choose another id");
  if (!record.parent_model_id.empty() && !find(record.parent_model_id)) {
    throw RegistryError("cannot register " + id + ": its parent " + record.parent_model_id +
                        " is not in the registry");
  }
  if (!record.adapter_base_model_id.empty()) {
    const auto base = find(record.adapter_base_model_id);
    if (!base) throw RegistryError("cannot register " + id + ": its adapter's base " + record.adapter_base_model_id +
                                   " is not in the registry");
    if (!base->adapter_base_model_id.empty())
      throw RegistryError("cannot register " + id + ": its adapter's base " + record.adapter_base_model_id +
                          " is itself a LoRA version");
  }
  const int64_t next = db_.query_int("SELECT next_version FROM registry_state WHERE id = 0");
  if (record.version < 1 || record.version >= next) {
    throw RegistryError("cannot register " + id + ": version number " +
                        std::to_string(record.version) + " was not reserved (reserve_version() " +
                        "has handed out 1 to " + std::to_string(next - 1) + ")");
  }
  {
    auto taken = db_.prepare("SELECT model_id FROM versions WHERE version = ?");
    if (taken.bind(1, record.version).step()) {
      throw RegistryError("cannot register " + id + ": version number " +
                          std::to_string(record.version) + " is already used by " +
                          taken.column_text(0));
    }
  }
  const bool production = record.status == VersionStatus::kProduction;
  auto insert = db_.prepare(
      "INSERT INTO versions (version, model_id, parent_model_id, created_at, status, run_id, "
      "model_dir, settings, data_hashes, gate, adapter_base_model_id, data_files) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  insert.bind(1, record.version).bind(2, id);
  if (record.parent_model_id.empty()) insert.bind_null(3);
  else insert.bind(3, record.parent_model_id);
  insert.bind(4, record.created_at != 0 ? record.created_at : static_cast<int64_t>(std::time(nullptr)))
      // A new production version goes in as a candidate and is promoted below, after the old one
      // is retired.
      .bind(5, production ? "candidate" : status_name(record.status))
      .bind(6, record.run_id)
      .bind(7, record.model_dir.empty() ? "versions/" + id : record.model_dir)
      .bind(8, record.settings.dump())
      .bind(9, record.data_hashes.dump());
  if (record.gate.is_null()) insert.bind_null(10);
  else insert.bind(10, record.gate.dump());
  if (record.adapter_base_model_id.empty()) insert.bind_null(11);
  else insert.bind(11, record.adapter_base_model_id);
  insert.bind(12, record.data_files.dump());
  insert.run();
  if (!record.scores.empty()) set_scores(id, record.scores);
  if (production) {
    make_production(db_, id, production_id(db_),
                    record.parent_model_id.empty() ? "import" : "promote", "");
  }
  txn.commit();
  // Inside a caller's transaction nothing is durable yet: the caller reports it after its commit.
  if (!db_.in_transaction()) log()->info("registered {} as version {} ({})", id, record.version, status_name(record.status));
}

// ---- reading -------------------------------------------------------------------------------

std::optional<VersionRecord> Registry::find(const std::string& model_id) {
  Transaction txn(db_, Transaction::Mode::kRead);  // the row and its scores from one snapshot
  std::optional<VersionRecord> record;
  {
    auto s = db_.prepare(std::string("SELECT ") + kVersionColumns + " FROM versions WHERE model_id = ?");
    if (!s.bind(1, model_id).step()) return std::nullopt;
    record = read_version(s);
  }
  {
    auto s = db_.prepare("SELECT test_set, metric, value, data_hash FROM version_scores "
                         "WHERE model_id = ? ORDER BY test_set, metric");
    s.bind(1, model_id);
    while (s.step()) record->scores.push_back(read_score(s, 0));
  }
  txn.commit();
  return record;
}

VersionRecord Registry::get(const std::string& model_id) {
  auto record = find(model_id);
  if (!record) throw RegistryError("no version " + model_id + " in the registry");
  return std::move(*record);
}

std::optional<VersionRecord> Registry::production() {
  Transaction txn(db_, Transaction::Mode::kRead);
  const std::string id = production_id(db_);
  auto record = id.empty() ? std::nullopt : find(id);
  txn.commit();
  return record;
}

std::vector<VersionRecord> Registry::list() {
  Transaction txn(db_, Transaction::Mode::kRead);
  std::vector<VersionRecord> records;
  {
    auto s = db_.prepare(std::string("SELECT ") + kVersionColumns + " FROM versions ORDER BY version");
    while (s.step()) records.push_back(read_version(s));
  }
  std::map<std::string, std::vector<Score>> scores;
  {
    auto s = db_.prepare("SELECT model_id, test_set, metric, value, data_hash FROM version_scores "
                         "ORDER BY model_id, test_set, metric");
    while (s.step()) scores[s.column_text(0)].push_back(read_score(s, 1));
  }
  txn.commit();
  for (VersionRecord& r : records) r.scores = std::move(scores[r.model_id]);
  return records;
}

std::vector<VersionRecord> Registry::lineage(const std::string& model_id) {
  Transaction txn(db_, Transaction::Mode::kRead);
  std::vector<VersionRecord> chain{get(model_id)};
  std::set<std::string> seen{model_id};
  while (!chain.back().parent_model_id.empty()) {
    const std::string parent = chain.back().parent_model_id;
    // The foreign key makes a cycle impossible; the check keeps a damaged database from looping.
    if (!seen.insert(parent).second) throw RegistryError("lineage of " + model_id + " loops at " + parent);
    chain.push_back(get(parent));
  }
  txn.commit();
  return chain;
}

std::vector<HistoryEntry> Registry::history() {
  std::vector<HistoryEntry> entries;
  auto s = db_.prepare("SELECT seq, at, action, model_id, coalesce(previous_model_id, ''), note "
                       "FROM registry_history ORDER BY seq");
  while (s.step()) {
    entries.push_back(HistoryEntry{s.column_int(0), s.column_int(1), s.column_text(2),
                                   s.column_text(3), s.column_text(4), s.column_text(5)});
  }
  return entries;
}

// ---- promotion -----------------------------------------------------------------------------

void Registry::promote(const std::string& model_id, const std::string& note, bool allow_rejected) {
  Transaction txn(db_, Transaction::Mode::kWrite);
  const VersionRecord target = get(model_id);
  if (target.status == VersionStatus::kProduction)
    throw RegistryError(model_id + " is already the production version");
  if (target.status == VersionStatus::kRejected && !allow_rejected) {
    throw RegistryError(model_id + " was rejected by the evaluation gate; promote it with --force "
                        "only if you accept its failures (`retain registry show " + model_id + "`)");
  }
  const std::string previous = production_id(db_);
  make_production(db_, model_id, previous, "promote", note);
  txn.commit();
  log()->info("promoted {} to production{}", model_id, previous.empty() ? "" : " (retired " + previous + ")");
}

std::string Registry::rollback(const std::string& note) {
  Transaction txn(db_, Transaction::Mode::kWrite);
  const std::string current = production_id(db_);
  if (current.empty()) throw RegistryError("nothing to roll back: no version is in production");
  const std::vector<std::string> stack = production_stack(history());
  if (stack.empty() || stack.back() != current) {
    throw RegistryError("cannot roll back: " + current + " is production but the history's latest "
                        "production is " + (stack.empty() ? "none" : stack.back()) +
                        "; promote the version you want with `retain registry promote`");
  }
  if (stack.size() < 2) {
    throw RegistryError("nothing to roll back to: " + current +
                        " is the first production version in the history");
  }
  const std::string target = stack[stack.size() - 2];
  make_production(db_, target, current, "rollback", note);
  txn.commit();
  log()->info("rolled back to {} (retired {})", target, current);
  return target;
}

}  // namespace retain
