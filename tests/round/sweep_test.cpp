// Pieces of the sweep and of --replay-ratio auto that need no training: the Pareto front (both
// directions) and the retry rule.
#include <gtest/gtest.h>

#include "retain/pipeline.h"
#include "retain/sweep.h"

namespace retain {
namespace {

SweepPoint point(double old_score, double new_score) {
  SweepPoint p;
  p.old_score = old_score;
  p.new_score = new_score;
  return p;
}

TEST(SweepTest, ParetoFrontKeepsOnlyUndominatedPoints) {
  std::vector<SweepPoint> pts = {point(0.9, 0.5), point(0.8, 0.8), point(0.7, 0.7), point(0.5, 0.9), point(0.9, 0.5)};
  mark_pareto(pts, true, true);
  EXPECT_TRUE(pts[0].pareto);
  EXPECT_TRUE(pts[1].pareto);
  EXPECT_FALSE(pts[2].pareto);  // (0.8, 0.8) is better on both
  EXPECT_TRUE(pts[3].pareto);
  EXPECT_TRUE(pts[4].pareto);   // an equal twin does not dominate
}

TEST(SweepTest, ParetoFrontRespectsLowerIsBetter) {
  std::vector<SweepPoint> pts = {point(0.2, 0.9), point(0.3, 0.95), point(0.1, 0.5)};
  mark_pareto(pts, /*old_higher=*/false, /*new_higher=*/true);  // old is a loss
  EXPECT_TRUE(pts[0].pareto);
  EXPECT_TRUE(pts[1].pareto);
  EXPECT_TRUE(pts[2].pareto);
  mark_pareto(pts, false, false);
  EXPECT_FALSE(pts[0].pareto);  // (0.1, 0.5) has lower loss on both
  EXPECT_FALSE(pts[1].pareto);
  EXPECT_TRUE(pts[2].pareto);
}

GateResult failed(const std::string& kind) {
  GateResult g;
  g.passed = false;
  g.failures.push_back({"old", "token_accuracy", kind, 0.5, 0.9, 0.92, ""});
  return g;
}

TEST(SweepTest, AutoRatioRetryRule) {
  EXPECT_EQ(next_replay_ratio(failed("regression"), {0.3}), 0.5);
  EXPECT_EQ(next_replay_ratio(failed("below_min"), {0.3}), 0.2);
  EXPECT_EQ(next_replay_ratio(failed("regression"), {0.3, 0.5}), std::nullopt);
  EXPECT_EQ(next_replay_ratio(failed("regression"), {0.3, 0.2}), 0.5);
  EXPECT_EQ(next_replay_ratio(failed("below_min"), {0.3, 0.5}), 0.2);
  EXPECT_EQ(next_replay_ratio(GateResult{}, {0.3}), std::nullopt);  // passed: stop
}

}  // namespace
}  // namespace retain
