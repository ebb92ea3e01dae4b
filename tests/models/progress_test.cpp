// Tests of progress reporting (progress.h): lines at the right moments of an injected clock with
// rate and ETA computed right, the bar on every update, and the Fisher and evaluation loops
// logging their progress to the library's logger.
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "retain/eval.h"
#include "retain/ewc.h"
#include "retain/log.h"
#include "retain/model.h"
#include "retain/progress.h"
#include "retain/tokenizer.h"
#include "test_util.h"

namespace retain {
namespace {

using testing_util::CapturedLog;

size_t count_with(const std::vector<std::string>& lines, const std::string& text) {
  size_t n = 0;
  for (const auto& l : lines) n += l.find(text) != std::string::npos;
  return n;
}

TEST(Progress, LogsEveryIntervalWithRateAndEtaThenOneFinalLine) {
  CapturedLog captured;
  double now = 100.0;
  Progress progress("eval faq", 100, "examples", [&] { return now; }, 5.0);
  // 4 examples a second: lines at t = 5 s and 10 s (not at 2 s, 4.9 s or 7 s), then the last.
  for (const double t : {2.0, 4.9, 5.0, 7.0, 10.0}) {
    now = 100.0 + t;
    progress.update(int64_t(4 * t));
  }
  const ProgressState mid = progress.state();
  EXPECT_EQ(mid.done, 40);
  EXPECT_DOUBLE_EQ(mid.rate, 4.0);
  EXPECT_DOUBLE_EQ(mid.eta_s, 15.0);  // 60 left at 4/s
  now = 125.0;
  progress.update(100);
  progress.update(100);  // the final line once
  const auto lines = captured.lines();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], "eval faq: 20/100 examples (20%) | 4.0 examples/s | eta 0m20s");
  EXPECT_EQ(lines[1], "eval faq: 40/100 examples (40%) | 4.0 examples/s | eta 0m15s");
  EXPECT_EQ(lines[2], "eval faq: 100/100 examples | 4.0 examples/s | done in 0m25s");
}

TEST(Progress, AnotherLineRestartsTheIntervalAndTheBarSeesEveryUpdate) {
  CapturedLog captured;
  std::vector<int64_t> drawn;
  set_progress_bar([&](const ProgressState& s) { drawn.push_back(s.done); });
  double now = 0.0;
  Progress progress("train", 10, "steps", [&] { return now; }, 5.0);
  now = 4.0;
  progress.update(1);
  progress.logged();  // the trainer's own step line at t = 4 s
  now = 8.0;
  progress.update(2);  // 4 s after that line: silent
  now = 9.0;
  progress.update(3);  // 5 s after it: a line
  set_progress_bar({});
  EXPECT_EQ(drawn, (std::vector<int64_t>{1, 2, 3}));
  const auto lines = captured.lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].rfind("train: 3/10 steps (30%)", 0), 0u) << lines[0];
}

TEST(Progress, DurationsAndAnEmptyPhase) {
  EXPECT_EQ(format_duration(7.4), "0m07s");
  EXPECT_EQ(format_duration(725), "12m05s");
  EXPECT_EQ(format_duration(3720), "1h02m");
  CapturedLog captured;
  Progress empty("fisher", 0);
  empty.update(0);
  ASSERT_EQ(captured.lines().size(), 1u);
  EXPECT_NE(captured.lines()[0].find("fisher: 0/0 examples"), std::string::npos);
}

TEST(Progress, FisherAndEvaluationLogTheirProgress) {
  CapturedLog captured;
  // The Fisher of a one-weight model on 12 examples: the loss w·x per example.
  const auto x = torch::arange(12, torch::kFloat);
  torch::nn::Linear lin(torch::nn::LinearOptions(1, 1).bias(false));
  auto losses = [&](const std::vector<int64_t>& idx, bool, at::Generator&) {
    return lin(x.index_select(0, torch::tensor(idx, torch::kLong)).unsqueeze(1)).squeeze(1);
  };
  FisherOptions opt;
  opt.num_samples = 0;
  estimate_fisher_loop(*lin, 12, losses, opt);

  GptConfig c;
  c.vocab_size = 260;
  c.n_positions = 32;
  c.n_embd = 16;
  c.n_layer = 1;
  c.n_head = 2;
  Gpt model(c);
  ByteTokenizer tok;
  ChatExample ex;
  ex.messages = {{Role::kUser, "hi", 1}, {Role::kAssistant, "yo", 1}};
  EvalOptions eval;
  eval.label = "eval faq";
  eval.max_new_tokens = 2;
  evaluate(model, tok, {ex, ex, ex}, eval);

  const auto lines = captured.lines();
  EXPECT_EQ(count_with(lines, "fisher: 12/12 examples |"), 1u);
  EXPECT_EQ(count_with(lines, "eval faq: 3/3 examples |"), 1u);
  EXPECT_EQ(count_with(lines, "eval faq exact match: 3/3 examples |"), 1u);
}

}  // namespace
}  // namespace retain
