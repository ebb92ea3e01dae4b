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
// The value of `metric` in an evaluation (ConfigError for one chat sets do not measure).
double metric_value(const EvalResult& result, const std::string& metric);
// Evaluates a test set, generating replies only when it is judged on exact_match.
EvalResult measure(Gpt& model, const Tokenizer& tokenizer, const LoadedTestSet& set, const RoundConfig::Eval& eval);
// Every metric measured, as registry scores.
std::vector<Score> to_scores(const LoadedTestSet& set, const EvalResult& result);
// A version's score on each set's metric: stored in the registry when measured on the same data,
// otherwise measured now (with `model` when given, else loaded from the version's folder) and stored.
std::map<std::string, double> stored_or_measured(Registry& registry, const std::string& workspace,
                                                 const std::string& model_id, const std::vector<LoadedTestSet>& sets,
                                                 const RoundConfig::Eval& eval, const std::string& device,
                                                 Gpt* model, const Tokenizer* tokenizer);

// The round's training, set up the same way on every rank: the mix (new examples, then the
// replayed ones) with its strata, stratified global batches (batch_size × world size), the EWC
// penalty from the base's state, and the trainer hooks. Not copyable: the hooks refer to members.
struct RoundTraining {
  std::vector<RenderedChat> mix;
  std::vector<int> strata;
  std::optional<EwcPenalty> penalty;
  TrainHooks hooks;

  RoundTraining(Gpt& model, const Tokenizer& tokenizer, const RoundConfig& config,
                const std::optional<EwcState>& base_ewc, const std::string& base_model_id,
                const std::vector<ChatExample>& new_examples, const std::vector<ChatExample>& replay_examples,
                const TrainHooks& user_hooks, Collective* collective);
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
