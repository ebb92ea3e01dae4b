// Pieces of the round shared by src/pipeline*.cpp (not part of the public API).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "retain/pipeline.h"
#include "retain/registry.h"

namespace retain::detail {

// A gate test set read and hashed once.
struct LoadedTestSet {
  const GateTestSet* config;
  std::vector<ChatExample> examples;
  std::string hash;  // "sha256:<hex>" of the file
};

// Reads every test set of the gate (DataError on a bad line or an empty set).
std::vector<LoadedTestSet> load_test_sets(const GateConfig& gate);
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

}  // namespace retain::detail
