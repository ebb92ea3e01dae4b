// One continual round (design.md, "One round, as data flows"): validate the new data, mix it with
// replayed examples, fine-tune the base version with the EWC penalty, evaluate every gate test set,
// run the gate, and register the candidate — promoted with its consolidated Fisher, or rejected —
// with the buffer updated in the same transaction.
//
// Crash safety: the round holds the workspace lock; the version directory is built in the run
// folder and renamed into versions/ only when complete, and the registry references it only in the
// final transaction. Whatever is left by a killed round (a version folder nobody references, staged
// examples, a run marked running) is cleaned up by the next round, which finds it under the lock.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "retain/eval.h"
#include "retain/ewc.h"
#include "retain/family.h"
#include "retain/gate.h"
#include "retain/replay.h"
#include "retain/lora.h"
#include "retain/trainer.h"

namespace retain {

// A round's job config (configs/*.json, docs/config.md): sections "replay", "ewc", "lora",
// "training", "eval", "gate", and "name". Unknown keys anywhere are errors.
struct RoundConfig {
  std::string name;  // versions are <name>-v<N>; "" = the base's id without its -v<N> suffix
  struct Replay {
    double ratio = 0.3;  // share of replayed examples in the mix, in [0, 1)
    bool auto_ratio = false;  // "auto": let the gate choose (run_round_auto)
    SampleStrategy strategy = SampleStrategy::kDiverse;
    int64_t per_topic_cap = 0;
  } replay;
  struct Ewc {
    double lambda = 0;  // λ in λ/2 Σ F (θ − θ*)²; 0 trains without the penalty
    double gamma = 1.0;  // online EWC decay of the base's Fisher
    FisherOptions fisher;  // estimator, num_samples, batch_size, path (seed = training.seed)
    bool bf16 = false;     // store ewc.safetensors in bf16
  } ewc;
  LoraConfig lora;        // "lora": train an adapter on the frozen base (rank 0: full fine-tuning)
  TrainConfig training;
  struct Eval {
    int64_t batch_size = 16;
    int64_t max_new_tokens = 128;  // for exact_match
  } eval;
  GateConfig gate;

  // Validates once (ConfigError naming `what`, the section and the key).
  static RoundConfig from_json(const nlohmann::json& j, const std::string& what);
  nlohmann::json to_json() const;
};

// Applies "section.key=value" overrides (value parsed as JSON, else taken as a string) to a config
// object before from_json, so flags are validated like the file. ConfigError on a malformed one.
void apply_overrides(nlohmann::json& config, const std::vector<std::string>& overrides);

struct RoundOptions {
  std::string workspace;  // the workspace folder
  std::string data;       // new chat JSONL
  std::string base;       // base version id; "" = production
  bool promote = true;    // false: a passing candidate stays a candidate
  // A passing round whose starting production is no longer production when it registers (it was
  // resumed after other rounds promoted, or ran beside one) stays a candidate unless this is set.
  bool promote_stale = false;
  double lock_wait_s = 0;  // how long to wait for another job's workspace lock
  TrainHooks hooks;        // progress callbacks (tests, the CLI)
};

struct TestSetScores {
  std::string name, metric, data_hash;
  Metrics candidate;  // every metric measured on the set
  std::map<std::string, double> base;  // metric → value (from the registry or measured now)
};

struct RoundResult {
  std::string run_id, model_id, base_model_id, production_model_id;
  int64_t version = 0;
  std::string status;  // "production" | "candidate" | "rejected"
  std::string note;    // why a passing candidate was not promoted (or was, over a newer production)
  GateResult gate;
  std::vector<TestSetScores> scores;
  int64_t new_examples = 0, replay_examples = 0;
  TrainSummary training;
  double fisher_seconds = 0, seconds = 0;
  nlohmann::json to_json() const;
  // The table a person reads: base vs candidate per test set with deltas and pass/fail, then the
  // mix, time and tokens/s.
  std::string summary() const;
};

// Runs one round (steps in the file comment). DataError / ConfigError before any change for bad
// data or settings; a rejected candidate is a result with status "rejected", not an exception.
RoundResult run_round(const RoundConfig& config, const RoundOptions& options);
// `--replay-ratio auto`: rounds at 0.3; when the gate fails because a test set regressed from
// production, again at 0.5; when it fails only because a score missed its minimum, again at 0.2;
// each ratio at most once, stopping at the first pass. Every attempt is registered (rejected ones
// with their failures) and returned, the last one deciding. Without auto_ratio: one round.
std::vector<RoundResult> run_round_auto(const RoundConfig& config, const RoundOptions& options);
// The next ratio run_round_auto tries after `gate` rejected an attempt, given the ratios `tried`
// so far; nullopt when it stops.
std::optional<double> next_replay_ratio(const GateResult& gate, const std::vector<double>& tried);
// The summary of several attempts: one line each, then the last attempt's table.
std::string attempts_summary(const std::vector<RoundResult>& attempts);

// Continues the interrupted round `run_id` from its last training checkpoint (or from the start
// of training when it had none). RegistryError when the run finished or is unknown.
RoundResult resume_round(const std::string& run_id, const RoundOptions& options);

// `retain gate --version ID`: re-runs the gate for a registered version against the current
// production, with stored scores where the test-set data is unchanged, measuring the rest (and
// storing them), and stores the new gate result with the version.
struct RegateResult {
  std::string model_id, production_model_id;
  GateResult gate;
  std::map<std::string, double> candidate, production;  // test set → score on its metric
  nlohmann::json to_json() const;
};
RegateResult regate(const std::string& workspace, const std::string& model_id, const GateConfig& gate,
                    const RoundConfig::Eval& eval, const std::string& device);

// Phases where RETAIN_FAULT_AT=<phase> kills the process with SIGKILL (crash-safety tests):
// staged, training, trained, evaluated, version_partial, version_written, registering.
void fault_point(const char* phase);

}  // namespace retain
