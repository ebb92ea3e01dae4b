// The evaluation gate (see gate.h): config validation and the pass/fail decision.
#include "retain/gate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "retain/config.h"
#include "retain/errors.h"

namespace retain {

namespace {

const std::vector<std::string> kMetrics = {"exact_match", "token_accuracy", "loss", "perplexity", "accuracy"};
const std::vector<std::string> kKeys = {"test_sets", "metrics", "min_scores", "tolerances", "regression_tolerance"};
constexpr double kSlack = 1e-9;

double number(const nlohmann::json& v, const std::string& where) {
  if (!v.is_number()) throw ConfigError(where + " must be a number");
  const double x = v.get<double>();
  if (!std::isfinite(x)) throw ConfigError(where + " must be finite");
  return x;
}

// Reads {"name": value} for listed test sets; `read` stores each value.
template <typename F>
void per_test_set(const nlohmann::json& j, const char* key, GateConfig& config, const std::string& what, F read) {
  if (!j.contains(key)) return;
  const auto& obj = j.at(key);
  if (!obj.is_object()) throw ConfigError(what + ": \"" + key + "\" must be an object {test set: value}");
  for (const auto& item : obj.items()) {
    const std::string& name = item.key();  // not a structured binding: the lambda captures it
    const nlohmann::json& value = item.value();
    auto it = std::find_if(config.test_sets.begin(), config.test_sets.end(),
                           [&](const GateTestSet& t) { return t.name == name; });
    if (it == config.test_sets.end())
      throw ConfigError(what + ": \"" + key + "\" names test set \"" + name + "\", which is not in \"test_sets\"");
    read(*it, value, what + ": " + key + "." + name);
  }
}

std::string format(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", x);
  return buf;
}

}  // namespace

bool is_metric(const std::string& metric) {
  return std::find(kMetrics.begin(), kMetrics.end(), metric) != kMetrics.end();
}

bool higher_is_better(const std::string& metric) { return metric != "loss" && metric != "perplexity"; }

GateConfig GateConfig::from_json(const nlohmann::json& j, const std::string& what) {
  if (!j.is_object()) throw ConfigError(what + ": the gate must be a JSON object");
  reject_unknown_keys(j, kKeys, what);
  GateConfig config;
  if (!j.contains("test_sets") || !j.at("test_sets").is_object() || j.at("test_sets").empty())
    throw ConfigError(what + ": \"test_sets\" must be a non-empty object {name: file}");
  for (const auto& [name, file] : j.at("test_sets").items()) {
    if (!file.is_string() || file.get<std::string>().empty())
      throw ConfigError(what + ": test_sets." + name + " must be a file path");
    GateTestSet t;
    t.name = name;
    t.file = file.get<std::string>();
    config.test_sets.push_back(t);
  }
  per_test_set(j, "metrics", config, what, [](GateTestSet& t, const nlohmann::json& v, const std::string& where) {
    if (!v.is_string() || !is_metric(v.get<std::string>()))
      throw ConfigError(where + " must be one of exact_match, token_accuracy, loss, perplexity, accuracy");
    t.metric = v.get<std::string>();
  });
  per_test_set(j, "min_scores", config, what, [](GateTestSet& t, const nlohmann::json& v, const std::string& where) {
    t.min_score = number(v, where);
  });
  per_test_set(j, "tolerances", config, what, [](GateTestSet& t, const nlohmann::json& v, const std::string& where) {
    t.tolerance = number(v, where);
    if (*t.tolerance < 0) throw ConfigError(where + " must be ≥ 0");
  });
  if (j.contains("regression_tolerance")) {
    config.regression_tolerance = number(j.at("regression_tolerance"), what + ": regression_tolerance");
    if (config.regression_tolerance < 0) throw ConfigError(what + ": regression_tolerance must be ≥ 0");
  }
  return config;
}

nlohmann::json GateConfig::to_json() const {
  nlohmann::json sets = nlohmann::json::object(), metrics = nlohmann::json::object();
  nlohmann::json mins = nlohmann::json::object(), tolerances = nlohmann::json::object();
  for (const auto& t : test_sets) {
    sets[t.name] = t.file;
    metrics[t.name] = t.metric;
    if (t.min_score) mins[t.name] = *t.min_score;
    if (t.tolerance) tolerances[t.name] = *t.tolerance;
  }
  return {{"test_sets", sets}, {"metrics", metrics}, {"min_scores", mins}, {"tolerances", tolerances},
          {"regression_tolerance", regression_tolerance}};
}

const GateTestSet* GateConfig::find(const std::string& name) const {
  for (const auto& t : test_sets)
    if (t.name == name) return &t;
  return nullptr;
}

nlohmann::json GateFailure::to_json() const {
  return {{"test_set", test_set}, {"metric", metric}, {"kind", kind}, {"score", score},
          {"threshold", threshold}, {"production", production ? nlohmann::json(*production) : nlohmann::json()},
          {"message", message}};
}

std::string GateFailure::brief() const {
  const bool up = higher_is_better(metric);
  if (kind == "below_min") return test_set + " " + metric + " " + format(score) + (up ? " < min " : " > max ") + format(threshold);
  if (kind == "regression" && production)
    return test_set + " " + metric + " " + format(score) + " vs production " + format(*production) + (up ? " - tol " : " + tol ") +
           format(std::abs(threshold - *production));
  return test_set + ": " + (std::isfinite(score) ? "no score" : metric + " not finite");
}

nlohmann::json GateResult::to_json() const {
  nlohmann::json f = nlohmann::json::array();
  for (const auto& failure : failures) f.push_back(failure.to_json());
  return {{"passed", passed}, {"failures", f}};
}

GateResult run_gate(const GateConfig& config, const std::map<std::string, double>& candidate,
                    const std::map<std::string, double>& production) {
  GateResult result;
  for (const auto& t : config.test_sets) {
    GateCheck check;
    check.test_set = t.name;
    check.metric = t.metric;
    check.min_score = t.min_score;
    check.tolerance = t.tolerance.value_or(config.regression_tolerance);
    const bool up = higher_is_better(t.metric);
    auto fail = [&](const std::string& kind, double score, double threshold, const std::string& message) {
      GateFailure f{t.name, t.metric, kind, score, threshold, check.production, message};
      result.failures.push_back(f);
      check.passed = false;
    };
    if (auto p = production.find(t.name); p != production.end()) check.production = p->second;
    auto c = candidate.find(t.name);
    if (c == candidate.end()) {
      fail("missing_score", 0, 0, t.name + ": no " + t.metric + " score for the candidate");
      result.checks.push_back(check);
      continue;
    }
    const double score = c->second;
    check.score = score;
    if (!std::isfinite(score)) {
      fail("missing_score", score, 0, t.name + ": " + t.metric + " is not finite (" + format(score) + ")");
    } else {
      if (t.min_score) {
        const double m = *t.min_score;
        const bool below = up ? score < m - kSlack : score > m + kSlack;
        if (below)
          fail("below_min", score, m,
               t.name + ": " + t.metric + " " + format(score) + (up ? " is below the minimum " : " is above the maximum ") +
                   format(m));
      }
      if (check.production) {
        const double prev = *check.production;
        const double threshold = up ? prev - check.tolerance : prev + check.tolerance;
        const bool regressed = up ? score < threshold - kSlack : score > threshold + kSlack;
        if (regressed)
          fail("regression", score, threshold,
               t.name + ": " + t.metric + " " + format(score) + " regressed from production's " + format(prev) +
                   " by more than " + format(check.tolerance) + (up ? " (lower is worse)" : " (higher is worse)"));
      }
    }
    result.checks.push_back(check);
  }
  result.passed = result.failures.empty();
  return result;
}

}  // namespace retain
