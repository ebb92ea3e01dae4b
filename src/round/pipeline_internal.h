// Pieces of the round shared by src/pipeline*.cpp (not part of the public API).
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "retain/distributed.h"
#include "retain/mlp.h"
#include "retain/pipeline.h"
#include "retain/registry.h"

namespace retain::detail {

// The files of a round's run folder: its state (config, ids, data) and the replayed examples.
inline constexpr const char* kRoundFile = "round.json";
inline constexpr const char* kReplayFile = "replay.jsonl";

// A gate test set read and hashed once: chat examples, or (for the mlp family) feature examples.
struct LoadedTestSet {
  const GateTestSet* config;
  std::vector<ChatExample> examples;
  FeatureSet features;
  std::string hash;  // "sha256:<hex>" of the file
};

// Reads every test set of the gate (DataError on a bad line or an empty set): chat JSONL, or
// feature JSONL when `classifier` is given (checked against its input size and classes). Checks
// each set's metric first (ConfigError): accuracy for classifiers, never for chat sets; a
// classifier is judged on accuracy, loss or perplexity.
std::vector<LoadedTestSet> load_test_sets(const GateConfig& gate, const MlpConfig* classifier = nullptr);
// The value of `metric` in an evaluation (ConfigError for one the set does not measure). A
// classifier's evaluation keeps its accuracy in loss.token_accuracy.
double metric_value(const EvalResult& result, const std::string& metric);
// Every metric measured, as registry scores (a classifier's: accuracy, loss, perplexity).
std::vector<Score> to_scores(const LoadedTestSet& set, const EvalResult& result);

// A round's new data or its replayed lines, read and validated once: chats for the gpt family, or
// feature examples for a `classifier` (the mlp family). An empty file gives empty data.
struct RoundData {
  std::vector<ChatExample> chats;
  FeatureSet features;
  int64_t size() const { return features.size() > 0 ? features.size() : int64_t(chats.size()); }
};
RoundData read_round_data(const std::string& path, const MlpConfig* classifier);

// The model family's side of a round (pipeline_models.cpp): a version's model; its scores on test
// sets; and, once set_mix is called, the round's mix (new examples, then replayed ones, as the
// trainer's task), the Fisher on it, and the version folder.
class RoundModel {
 public:
  virtual ~RoundModel() = default;
  virtual torch::nn::Module& module() = 0;
  // For the mlp family its config (test sets and data are feature files), else nullptr.
  virtual const MlpConfig* classifier() const { return nullptr; }
  // Evaluates a test set (a chat set generates replies only when judged on exact_match).
  virtual EvalResult evaluate(const LoadedTestSet& set, const RoundConfig::Eval& eval) = 0;
  // The mix: the round's new data, then the replayed examples.
  virtual void set_mix(const RoundData& fresh, const RoundData& replayed, int64_t max_seq_len) = 0;
  virtual TrainTask& task() = 0;
  virtual const std::vector<int>& strata() const = 0;  // per mix example: 0 new, 1 replayed
  virtual TensorMap fisher(const FisherOptions& options) = 0;
  virtual void save(const std::string& dir, const nlohmann::json& card) = 0;
};
// The model directory `dir` of either family, on the CPU (a preset is initialised from `seed`).
std::unique_ptr<RoundModel> load_round_model(const std::string& dir, uint64_t seed);

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
