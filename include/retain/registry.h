// The model registry: versions, their scores, status, lineage, promotion history and runs, in the
// workspace database (docs/workspace.md has the tables).
//
// A version is registered once, complete, in one transaction (with its scores and gate result);
// its model directory must already be in place. At most one version is `production`: a partial
// unique index enforces it in the database itself. Version numbers come from a counter that only
// grows, so a number is never reused, even when a round that reserved one crashed. Every
// promotion, rollback and import is appended to the history; rollback replays it as a stack.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "retain/sqlite.h"

namespace retain {

enum class VersionStatus { kCandidate, kProduction, kRetired, kRejected };
// "candidate" | "production" | "retired" | "rejected"; parse throws RegistryError otherwise.
const char* status_name(VersionStatus status);
VersionStatus parse_status(const std::string& name);

// Throws ConfigError unless `model_id` is 1–128 characters of [A-Za-z0-9._-], not "." or "..".
void check_model_id(const std::string& model_id);

// One score of a version on one test set: `metric` is exact_match, token_accuracy, loss,
// perplexity or accuracy; `data_hash` identifies the test-set file's contents ("sha256:<hex>"),
// so a score measured on other data is never compared.
struct Score {
  std::string test_set, metric;
  double value = 0;
  std::string data_hash;
};

struct VersionRecord {
  std::string model_id;          // unique, safe as a folder name
  std::string parent_model_id;   // "" for an imported base
  int64_t version = 0;           // 1, 2, … from reserve_version()
  int64_t created_at = 0;        // Unix seconds (add(): now when 0)
  VersionStatus status = VersionStatus::kCandidate;
  std::string run_id;            // the run that produced it ("" for an import)
  std::string model_dir;         // relative to the workspace (add(): "versions/<model_id>" when "")
  std::string adapter_base_model_id;  // a LoRA version: the full version its adapter applies to ("" otherwise)
  nlohmann::json settings = nlohmann::json::object();     // replay ratio, λ, γ, estimator, training
  nlohmann::json data_hashes = nlohmann::json::object();  // {file role or path → "sha256:…"}
  nlohmann::json data_files = nlohmann::json::object();   // {file role → its path as given}: a round's
                                                          // new_data and test_set:<name> ({} before schema 6)
  nlohmann::json gate = nlohmann::json();                 // {"passed", "failures": […]}; null when none ran
  std::vector<Score> scores;

  // {model_id, parent_model_id (null when none), version, created_at, status, run_id, model_dir,
  //  adapter_base_model_id (null unless a LoRA version),
  //  settings, data_hashes, data_files, gate, eval_scores: {test_set: {metric: value}},
  //  scores: [{test_set, metric, value, data_hash}]}
  nlohmann::json to_json() const;
};

struct HistoryEntry {
  int64_t seq = 0;
  int64_t at = 0;              // Unix seconds
  std::string action;          // "import" | "promote" | "rollback"
  std::string model_id;        // the version that became production
  std::string previous_model_id;  // the production version before ("" when none)
  std::string note;
  nlohmann::json to_json() const;
};

class Registry {
 public:
  // `db` is a workspace database (Workspace::db()); it must outlive the registry.
  explicit Registry(Database& db);

  // The next version number, taken from the counter in its own transaction (or the caller's).
  int64_t reserve_version();

  // Inserts `record` with its scores. RegistryError when model_id is taken, the parent is
  // unknown, or `version` was not handed out by reserve_version() or is already used; ConfigError
  // for a bad model_id. Registering with status production also retires the current production
  // and appends a history entry (action `import` when there is no parent, `promote` otherwise),
  // all in one transaction.
  void add(const VersionRecord& record);

  std::optional<VersionRecord> find(const std::string& model_id);
  // find() or RegistryError "no version ID in the registry".
  VersionRecord get(const std::string& model_id);
  std::optional<VersionRecord> production();
  // Every version, oldest (lowest number) first.
  std::vector<VersionRecord> list();
  // `model_id`, its parent, the parent's parent, … up to the imported base.
  std::vector<VersionRecord> lineage(const std::string& model_id);
  std::vector<HistoryEntry> history();

  // One transaction: the current production becomes retired, `model_id` becomes production, and
  // a history entry is appended. RegistryError when the version is unknown, already production,
  // or rejected (unless `allow_rejected`).
  void promote(const std::string& model_id, const std::string& note = "", bool allow_rejected = false);
  // Promotes the version that was production before the current one became production (history
  // read as a stack: import/promote push, rollback pops), in one transaction; the current one
  // becomes retired. Returns the new production id. RegistryError when there is nothing to roll
  // back to.
  std::string rollback(const std::string& note = "");

  // Stored score of a version, only when measured on data with the same hash.
  std::optional<double> score(const std::string& model_id, const std::string& test_set,
                              const std::string& metric, const std::string& data_hash);
  // Inserts or replaces scores (keyed by version, test set, metric).
  void set_scores(const std::string& model_id, const std::vector<Score>& scores);
  // Replaces a version's stored gate result (for `retain gate --version`).
  void set_gate(const std::string& model_id, const nlohmann::json& gate);

  // Runs: one row per round, so an audit sees crashed and rejected rounds too.
  // status: "running" | "promoted" | "candidate" | "rejected" | "failed" | "interrupted".
  void start_run(const std::string& run_id, const std::string& base_model_id, const nlohmann::json& settings);
  void finish_run(const std::string& run_id, const std::string& status, const std::string& model_id);
  // A run that stopped on an error (the process alive to say so): status "failed", the error kept.
  void fail_run(const std::string& run_id, const std::string& error);
  // Marks every run still "running" other than `except_run_id` as "interrupted"; returns how many.
  int64_t mark_interrupted_runs(const std::string& except_run_id);
  // {run_id, started_at, finished_at (null until finished; stays null when interrupted), status,
  //  base_model_id, model_id (null when none), settings, error (null unless failed)}.
  std::optional<nlohmann::json> run(const std::string& run_id);

  Database& db() { return db_; }

 private:
  Database& db_;
};

class Workspace;

// `retain import`: registers an existing model directory as a version (docs/workspace.md).
struct ImportOptions {
  std::string source_dir;                 // config.json + model.safetensors (+ tokenizer, ewc, card)
  bool from_hf = false;                   // source_dir is a Hugging Face GPT-2 directory (hf.h),
                                          // converted instead of copied
  std::string adapter_base;               // source_dir is a PEFT LoRA adapter over this registered full
                                          // version (`--peft DIR --base ID`); "" otherwise
  std::string model_id;                   // becomes versions/<model_id>
  std::vector<std::string> replay_files;  // chat JSONL added to the replay buffer, source model_id
  std::optional<bool> promote;            // unset: production when there is none; else as given
  double lock_wait_s = 0;                 // how long to wait for another job's WorkspaceLock
};

struct ImportResult {
  VersionRecord version;            // as registered
  std::string previous_production;  // retired by this import ("" when none)
  int64_t replay_added = 0, replay_duplicates = 0;
};

// Checks everything first: model_id, a loadable model directory with weights, valid replay files,
// then, under the WorkspaceLock, a name free in the registry and in versions/. Then copies every
// regular file of `source_dir` into versions/<model_id> (temp folder, fsync, rename) — or, with
// from_hf, writes the model converted by read_hf_gpt2 there — and, in one
// transaction, reserves a number, registers the version (data_hashes: model.safetensors and each
// replay file) and adds the replay files to the buffer. Throws ConfigError (bad model_id),
// CheckpointError (no config.json, or no model.safetensors: a preset must be trained first, or a
// directory that does not load), DataError (bad replay data), RegistryError (name taken, workspace
// locked by another job longer than lock_wait_s). On any failure nothing is left behind.
ImportResult import_version(Workspace& workspace, const ImportOptions& options);

// `retain registry rollback`: Registry::rollback, and the replay buffer back to what it held while
// the version rolled back to was production. In one transaction: the examples the retired
// version added (source = its id) are deleted and those its round's promotion evicted are put
// back (ReplayBuffer::undo_commit). Examples added by hand (`replay add`) since stay. Throws
// RegistryError as Registry::rollback does; nothing changes then.
struct RollbackResult {
  std::string model_id;  // production now
  std::string retired;   // production before
  int64_t replay_removed = 0, replay_restored = 0;
};
RollbackResult rollback_production(Workspace& workspace, const std::string& note = "");

// `retain registry merge ID`: the LoRA version ID's adapter merged into its base, registered as a
// full version `new_id` (a candidate, parent ID) so that a lineage can go on with full rounds.
// Under the WorkspaceLock; the folder is written atomically and removed when registering fails.
// RegistryError for a full version, an unknown ID, or a `new_id` that is taken. The merged version
// has no Fisher: `retain fisher --model <its id> --workspace DIR --data FILE` writes one into its folder.
VersionRecord merge_lora_version(Workspace& workspace, const std::string& model_id, const std::string& new_id,
                                 double lock_wait_s = 0);

}  // namespace retain
