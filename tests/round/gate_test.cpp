// The evaluation gate: each failure kind, the tolerance boundary, a zero previous score, the
// direction of loss-like metrics, and config validation.
#include <gtest/gtest.h>

#include "retain/errors.h"
#include "retain/gate.h"

namespace retain {
namespace {

using json = nlohmann::json;

GateConfig two_sets() {
  return GateConfig::from_json(json::parse(R"({
    "test_sets": {"old": "old.jsonl", "new": "new.jsonl"},
    "metrics": {"old": "token_accuracy", "new": "exact_match"},
    "min_scores": {"new": 0.5},
    "regression_tolerance": 0.02})"),
                               "gate");
}

TEST(GateTest, PassesWhenEveryScoreMeetsItsBounds) {
  const auto r = run_gate(two_sets(), {{"old", 0.90}, {"new", 0.6}}, {{"old", 0.91}, {"new", 0.1}});
  EXPECT_TRUE(r.passed);
  EXPECT_TRUE(r.failures.empty());
  ASSERT_EQ(r.checks.size(), 2u);  // sorted by name
  EXPECT_EQ(r.checks[1].test_set, "old");
  EXPECT_DOUBLE_EQ(*r.checks[1].production, 0.91);
}

TEST(GateTest, BelowMinimumFailsWithItsReason) {
  const auto r = run_gate(two_sets(), {{"old", 0.95}, {"new", 0.49}}, {{"old", 0.95}});
  ASSERT_FALSE(r.passed);
  ASSERT_EQ(r.failures.size(), 1u);
  EXPECT_EQ(r.failures[0].test_set, "new");
  EXPECT_EQ(r.failures[0].kind, "below_min");
  EXPECT_DOUBLE_EQ(r.failures[0].threshold, 0.5);
  EXPECT_NE(r.failures[0].message.find("below the minimum"), std::string::npos) << r.failures[0].message;
}

TEST(GateTest, RegressionPastToleranceFailsAndTheBoundaryPasses) {
  // 0.80 − 0.78 is 0.020000000000000018 in binary: the boundary must still pass.
  EXPECT_TRUE(run_gate(two_sets(), {{"old", 0.78}, {"new", 0.9}}, {{"old", 0.80}}).passed);
  const auto r = run_gate(two_sets(), {{"old", 0.7799}, {"new", 0.9}}, {{"old", 0.80}});
  ASSERT_FALSE(r.passed);
  ASSERT_EQ(r.failures.size(), 1u);
  EXPECT_EQ(r.failures[0].kind, "regression");
  EXPECT_NEAR(r.failures[0].threshold, 0.78, 1e-12);
  EXPECT_DOUBLE_EQ(*r.failures[0].production, 0.80);
}

TEST(GateTest, BothFailureKindsAreReportedTogether) {
  const auto r = run_gate(two_sets(), {{"old", 0.1}, {"new", 0.0}}, {{"old", 0.9}, {"new", 0.3}});
  ASSERT_EQ(r.failures.size(), 3u);  // new below min and regressed; old regressed
  EXPECT_EQ(r.failures[0].test_set, "new");
  EXPECT_EQ(r.failures[0].kind, "below_min");
  EXPECT_EQ(r.failures[1].kind, "regression");
  EXPECT_EQ(r.failures[2].test_set, "old");
  EXPECT_EQ(r.failures[2].kind, "regression");
}

TEST(GateTest, ZeroProductionScoreStillCounts) {
  // A production score of exactly 0 with a higher-is-better metric cannot be regressed from; with a
  // lower-is-better one (loss 0) any rise past the tolerance must fail.
  auto config = GateConfig::from_json(json::parse(R"({"test_sets": {"a": "a.jsonl"}, "metrics": {"a": "loss"}})"), "gate");
  const auto r = run_gate(config, {{"a", 0.05}}, {{"a", 0.0}});
  ASSERT_FALSE(r.passed);
  EXPECT_EQ(r.failures[0].kind, "regression");
  EXPECT_DOUBLE_EQ(*r.failures[0].production, 0.0);
  EXPECT_TRUE(run_gate(config, {{"a", 0.02}}, {{"a", 0.0}}).passed);
}

TEST(GateTest, LowerIsBetterForLossAndPerplexity) {
  auto config = GateConfig::from_json(json::parse(R"({
    "test_sets": {"l": "l.jsonl", "p": "p.jsonl"}, "metrics": {"l": "loss", "p": "perplexity"},
    "min_scores": {"l": 1.0, "p": 3.0}, "tolerances": {"p": 0.5}})"), "gate");
  EXPECT_TRUE(run_gate(config, {{"l", 0.5}, {"p", 2.0}}, {{"l", 0.49}, {"p", 1.6}}).passed);
  const auto r = run_gate(config, {{"l", 1.1}, {"p", 2.2}}, {{"l", 0.6}, {"p", 1.6}});
  ASSERT_EQ(r.failures.size(), 3u);
  EXPECT_EQ(r.failures[0].kind, "below_min");  // loss above its maximum
  EXPECT_NE(r.failures[0].message.find("above the maximum"), std::string::npos);
  EXPECT_EQ(r.failures[1].kind, "regression");
  EXPECT_EQ(r.failures[2].test_set, "p");
  EXPECT_NEAR(r.failures[2].threshold, 2.1, 1e-12);  // per-set tolerance 0.5
}

TEST(GateTest, NoProductionScoreMeansNoRegressionCheck) {
  EXPECT_TRUE(run_gate(two_sets(), {{"old", 0.0}, {"new", 0.5}}, {}).passed);
}

TEST(GateTest, MissingOrNonFiniteCandidateScoreFails) {
  auto r = run_gate(two_sets(), {{"old", 0.9}}, {});
  ASSERT_EQ(r.failures.size(), 1u);
  EXPECT_EQ(r.failures[0].kind, "missing_score");
  r = run_gate(two_sets(), {{"old", 0.9}, {"new", std::nan("")}}, {});
  ASSERT_EQ(r.failures.size(), 1u);
  EXPECT_EQ(r.failures[0].kind, "missing_score");
}

TEST(GateTest, ResultJsonShape) {
  const auto j = run_gate(two_sets(), {{"old", 0.5}, {"new", 0.9}}, {{"old", 0.9}}).to_json();
  EXPECT_EQ(j.at("passed"), false);
  ASSERT_EQ(j.at("failures").size(), 1u);
  const auto& f = j.at("failures").at(0);
  for (const char* key : {"test_set", "metric", "kind", "score", "threshold", "production", "message"})
    EXPECT_TRUE(f.contains(key)) << key;
  EXPECT_DOUBLE_EQ(f.at("production").get<double>(), 0.9);
}

TEST(GateTest, ConfigErrorsNameTheKey) {
  auto expect_error = [](const char* text, const char* fragment) {
    try {
      GateConfig::from_json(json::parse(text), "round.json: gate");
      FAIL() << "accepted " << text;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  expect_error(R"({"test_sets": {}})", "non-empty");
  expect_error(R"({"test_sets": {"a": "a"}, "metric": {}})", "did you mean \"metrics\"");
  expect_error(R"({"test_sets": {"a": "a"}, "metrics": {"a": "f1"}})", "metrics.a must be one of");
  expect_error(R"({"test_sets": {"a": "a"}, "min_scores": {"b": 1}})", "\"b\", which is not in");
  expect_error(R"({"test_sets": {"a": "a"}, "regression_tolerance": -1})", "must be ≥ 0");
  expect_error(R"({"test_sets": {"a": 3}})", "test_sets.a must be a file path");
}

TEST(GateTest, ConfigRoundTripsThroughJson) {
  const auto config = two_sets();
  const auto again = GateConfig::from_json(config.to_json(), "gate");
  EXPECT_EQ(again.to_json(), config.to_json());
  EXPECT_EQ(again.find("new")->metric, "exact_match");
  EXPECT_EQ(again.find("missing"), nullptr);
}

}  // namespace
}  // namespace retain
