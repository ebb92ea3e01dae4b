// The evaluation gate: a candidate must reach every test set's minimum and must not regress more
// than a tolerance from the production version's score on any of them.
//
// Config (the "gate" object of a round config; docs/config.md):
//   {"test_sets": {"name": "file.jsonl", …},
//    "metrics": {"name": "exact_match" | "token_accuracy" | "loss" | "perplexity" | "accuracy", …},
//    "min_scores": {"name": value, …},            optional per test set
//    "tolerances": {"name": value, …},            optional per-test-set override
//    "regression_tolerance": 0.02}
// A test set without a metric is judged on token_accuracy. For loss and perplexity lower is better,
// so a "min score" is the highest value allowed and a regression is a rise.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace retain {

// "exact_match" | "token_accuracy" | "loss" | "perplexity" | "accuracy".
bool is_metric(const std::string& metric);
// False for loss and perplexity.
bool higher_is_better(const std::string& metric);

struct GateTestSet {
  std::string name, file, metric = "token_accuracy";
  std::optional<double> min_score;
  std::optional<double> tolerance;  // overrides regression_tolerance for this set
};

struct GateConfig {
  std::vector<GateTestSet> test_sets;  // sorted by name
  double regression_tolerance = 0.02;

  // ConfigError naming `what` and the key for: unknown keys, a metric/min/tolerance for a test set
  // that is not listed, an unknown metric, a negative or non-finite tolerance, no test sets.
  static GateConfig from_json(const nlohmann::json& j, const std::string& what);
  nlohmann::json to_json() const;
  const GateTestSet* find(const std::string& name) const;
};

struct GateFailure {
  std::string test_set, metric;
  std::string kind;  // "below_min" | "regression" | "missing_score"
  double score = 0;
  double threshold = 0;             // the bound that was crossed
  std::optional<double> production;  // the production score, for a regression
  std::string message;              // one readable line
  nlohmann::json to_json() const;
  // The failure in a few words, for a table cell: "old loss 2.31 > max 2", "new exact_match 0.4 <
  // min 0.5", "old loss 2.31 vs production 2.1 + tol 0.02", "old: no score".
  std::string brief() const;
};

struct GateCheck {
  std::string test_set, metric;
  std::optional<double> score, production, min_score;
  double tolerance = 0;
  bool passed = true;
};

struct GateResult {
  bool passed = true;
  std::vector<GateFailure> failures;
  std::vector<GateCheck> checks;  // one per test set, in config order
  // {"passed", "failures": [{test_set, metric, kind, score, threshold, production, message}]}
  nlohmann::json to_json() const;
};

// Judges `candidate` (test set → score on its metric) against the config and `production`
// (test set → the production version's score; a set missing there is not checked for
// regression, but a production score of exactly 0 is a score). A test set with no candidate
// score fails as missing_score. Boundaries pass: a drop of exactly the tolerance, a score exactly
// at the minimum (compared with a 1e-9 slack, so decimal thresholds behave as written).
GateResult run_gate(const GateConfig& config, const std::map<std::string, double>& candidate,
                    const std::map<std::string, double>& production);

}  // namespace retain
