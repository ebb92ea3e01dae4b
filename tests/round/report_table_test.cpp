// The tables a person reads after a round and a sweep (RoundResult::summary, SweepResult::table),
// built from results made by hand: columns stay aligned for a 40-character test-set name with
// unicode in it, regressions are shown against production as the gate judges them, and a failing
// sweep setting says why.
#include <gtest/gtest.h>

#include "retain/gate.h"
#include "retain/pipeline.h"
#include "retain/sweep.h"
#include "table_test_util.h"

namespace retain {
namespace {

using table_test::cell_offsets;
using table_test::expect_columns;
using table_test::table_lines;

// 40 code points (45 bytes): long, and with characters of more than one byte.
const std::string kLongSet = "support-release-one-regressions→v2-✗-old";

GateConfig gate_config() {
  return GateConfig::from_json({{"test_sets", {{kLongSet, "a.jsonl"}, {"new", "b.jsonl"}}},
                                {"metrics", {{kLongSet, "loss"}, {"new", "token_accuracy"}}},
                                {"min_scores", {{"new", 0.5}}},
                                {"regression_tolerance", 0.02}},
                               "test");
}

TEST(ReportTable, RoundSummaryKeepsItsColumnsAndShowsProduction) {
  ASSERT_EQ(display_width(kLongSet), 40u);
  RoundResult r;
  r.run_id = "20260101-000000-support-v3";
  r.model_id = "support-v3";
  r.base_model_id = "support-v1";
  r.production_model_id = "support-v2";
  r.status = "rejected";
  r.scores = {{kLongSet, "loss", "sha256:a", {{"loss", 2.5}, {"perplexity", 12.2}}, {{"loss", 2.4}}},
              {"new", "token_accuracy", "sha256:b", {{"token_accuracy", 0.4}}, {{"token_accuracy", 0.3}}}};
  r.gate = run_gate(gate_config(), {{kLongSet, 2.5}, {"new", 0.4}}, {{kLongSet, 2.45}, {"new", 0.41}});
  const std::string text = r.summary();
  const auto lines = table_lines(text, "test set");
  ASSERT_GE(lines.size(), 4u) << text;  // header, two sets, the note on production, the failures
  expect_columns({lines[0], lines[1], lines[2]}, 8, {1, 2});
  EXPECT_NE(lines[0].find("production"), std::string::npos) << text;
  EXPECT_NE(lines[1].find("2.4500"), std::string::npos) << text;  // production's score, which the gate used
  EXPECT_NE(lines[3].find("judged against production support-v2"), std::string::npos) << text;
  EXPECT_NE(text.find("✗ " + kLongSet + ": loss 2.5 regressed from production's 2.45"), std::string::npos) << text;
}

TEST(ReportTable, SweepTableGivesEachFailingSettingItsReason) {
  const GateConfig gate = gate_config();
  SweepResult s;
  s.base_model_id = "support-v1";
  s.production_model_id = "support-v1";
  s.old_set = kLongSet, s.new_set = "new";
  s.old_metric = "loss", s.new_metric = "token_accuracy";
  s.base_old = 2.4, s.base_new = 0.3;
  s.production_old = 2.4, s.production_new = 0.3;
  s.out_dir = "/tmp/sweep";
  for (double lambda : {0.0, 1000.0}) {
    SweepPoint p;
    p.lambda = lambda, p.ratio = 0.3, p.seconds = 12.5, p.pareto = true;
    p.old_score = lambda > 0 ? 2.41 : 2.6;
    p.new_score = lambda > 0 ? 0.45 : 0.7;
    const GateResult g = run_gate(gate, {{kLongSet, p.old_score}, {"new", p.new_score}}, {{kLongSet, 2.4}, {"new", 0.3}});
    p.status = g.passed ? "candidate" : "rejected";
    for (const auto& f : g.failures) p.reason += (p.reason.empty() ? "" : "; ") + f.brief();
    s.points.push_back(p);
  }
  const std::string text = s.table();
  const auto lines = table_lines(text, "lambda");
  ASSERT_EQ(lines.size(), 4u) << text;  // header, base, two settings
  // λ = 0 regressed on the old set: every column filled, the reason in the last one.
  expect_columns(lines, 10, {2});
  EXPECT_NE(lines[2].find("FAIL"), std::string::npos) << lines[2];
  EXPECT_NE(lines[2].find("+0.2000"), std::string::npos) << lines[2];  // old: 2.6 against production's 2.4
  EXPECT_EQ(lines[2].substr(lines[2].find(kLongSet + " loss")), kLongSet + " loss 2.6 vs production 2.4 + tol 0.02");
  // λ = 1000 missed the new set's minimum and is within tolerance on the old one.
  EXPECT_NE(lines[3].find("FAIL"), std::string::npos) << lines[3];
  EXPECT_NE(lines[3].find("new token_accuracy 0.45 < min 0.5"), std::string::npos) << lines[3];
  EXPECT_NE(text.find("compares each candidate with production support-v1"), std::string::npos) << text;
}

TEST(ReportTable, BriefFailuresNameTheSetTheScoreAndTheBound) {
  const GateResult g = run_gate(gate_config(), {{kLongSet, 2.3}}, {{kLongSet, 2.0}, {"new", 0.41}});
  ASSERT_EQ(g.failures.size(), 2u);
  EXPECT_EQ(g.failures[0].brief(), "new: no score");
  EXPECT_EQ(g.failures[1].brief(), kLongSet + " loss 2.3 vs production 2 + tol 0.02");
}

}  // namespace
}  // namespace retain
