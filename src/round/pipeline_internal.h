// Pieces of the round shared by src/pipeline*.cpp (not part of the public API).
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "retain/distributed.h"
#include "retain/family.h"
#include "retain/pipeline.h"
#include "retain/registry.h"

namespace retain::detail {

// The files of a round's run folder: its state (config, ids, data) and the replayed examples.
inline constexpr const char* kRoundFile = "round.json";
inline constexpr const char* kReplayFile = "replay.jsonl";

// A gate test set read and hashed once, as the base's family reads its data.
struct LoadedTestSet {
  const GateTestSet* config;
  std::unique_ptr<Examples> examples;
  std::string hash;                  // "sha256:<hex>" of the file
  std::vector<std::string> metrics;  // the family's metrics (scores stored of an evaluation)
};

// Reads every test set of the gate for models of `family` (DataError on a bad line or an empty
// set), `model_dir` telling the family what its data must look like. Checks each set's metric
// first (ConfigError): it must be one the family measures.
std::vector<LoadedTestSet> load_test_sets(const GateConfig& gate, const ModelFamily& family, const std::string& model_dir);
// The value of `metric` among `metrics` (ConfigError for one the set does not measure).
double metric_value(const Metrics& metrics, const std::string& metric);
// Every metric of the family measured (not the counts), as registry scores.
std::vector<Score> to_scores(const LoadedTestSet& set, const Metrics& metrics);
// The evaluation settings of a test set: replies are generated only when it is judged on exact_match.
EvalSettings eval_settings(const LoadedTestSet& set, const RoundConfig::Eval& eval);

// A round's model: the base (its family's FamilyModel) and, once set_mix is called, the round's
// mix (the new examples, then the replayed ones) with its training task.
struct RoundModel {
  const ModelFamily* family = nullptr;
  std::unique_ptr<FamilyModel> model;
  std::unique_ptr<Examples> mix, no_valid;
  std::vector<int> strata;  // per mix example: 0 new, 1 replayed
  std::unique_ptr<TrainTask> task;

  torch::nn::Module& module() { return model->module(); }
  void set_mix(const Examples& fresh, const Examples& replayed, int64_t max_seq_len);
  Metrics evaluate(const LoadedTestSet& set, const RoundConfig::Eval& eval) {
    return model->evaluate(*set.examples, eval_settings(set, eval));
  }
  TensorMap fisher(const FisherOptions& options) { return model->fisher(*mix, options); }
};
// The model directory `dir` of any family, on the CPU (a preset is initialised from `seed`), as
// load_trainable_model gives it: with `lora`, adapters to train (fresh, or the directory's own); an
// adapter directory without `lora` is merged into its base.
std::unique_ptr<RoundModel> load_round_model(const std::string& dir, uint64_t seed, const LoraConfig& lora = {});

// What a round trains and judges, loaded the same way by rank 0 (run and resume) and by the
// other ranks of a data-parallel round.
struct RoundInputs {
  std::string base_dir, run_dir;
  std::unique_ptr<RoundModel> model;  // the base (with config.lora's adapters) and the round's mix
  std::optional<EwcState> base_ewc;   // the base's ewc.safetensors, when it has one
  torch::Device device = torch::kCPU;
};
// The base at `base_dir` on `device` with its mix: `fresh`, then the replayed examples staged in
// `run_dir`'s replay.jsonl (the file the run keeps for resume and for the other ranks).
RoundInputs load_round_inputs(const std::string& base_dir, const std::string& run_dir, const RoundConfig& config,
                              const Examples& fresh, torch::Device device);

// RegistryError when a round with `lambda` > 0 starts from `base`, whose folder in the workspace
// `workspace_dir` has no ewc.safetensors: the message gives the `retain fisher` command line that
// writes it there (with the data the version was trained on, when the registry knows the file).
void require_base_fisher(const std::string& workspace_dir, const VersionRecord& base, double lambda);

// A version's score on each set's metric: stored in the registry when measured on the same data,
// otherwise measured now (with `model` when given, else loaded from the version's folder) and stored.
std::map<std::string, double> stored_or_measured(Registry& registry, const std::string& workspace,
                                                 const std::string& model_id, const std::vector<LoadedTestSet>& sets,
                                                 const RoundConfig::Eval& eval, const std::string& device,
                                                 RoundModel* model);

// The round's training, set up the same way on every rank: stratified global batches of the
// model's mix (batch_size × world size), the EWC penalty from the base's state, and the trainer
// hooks. Not copyable: the hooks refer to members.
struct RoundTraining {
  std::optional<EwcPenalty> penalty;
  TrainHooks hooks;

  RoundTraining(RoundModel& model, const RoundConfig& config, const std::optional<EwcState>& base_ewc,
                const std::string& base_model_id, const TrainHooks& user_hooks, Collective* collective);
  RoundTraining(const RoundTraining&) = delete;
  RoundTraining& operator=(const RoundTraining&) = delete;
};

// A data-parallel round: rank 0 waits this long for the others (and they for rank 0, which
// evaluates and registers alone) before the job fails.
inline constexpr std::chrono::hours kRoundGroupTimeout{1};
// The store key under which rank 0 publishes {"run_dir", "base_dir", "from_checkpoint"}.
inline constexpr const char* kRoundKey = "retain/round";

// The part of a data-parallel round a rank other than 0 plays (pipeline_parallel.cpp): join the
// group on `device`, wait for rank 0 to publish the round, train its share of every batch, join the
// sharded Fisher when rank 0's gate passed, and wait at the final barrier. It never writes the
// workspace. `config_device` is the training device of the round's config.
RoundResult follow_round(const DistEnv& env, const std::string& config_device);

}  // namespace retain::detail
