// Tests of evaluation (eval.h): teacher-forced loss, perplexity and token accuracy against the
// same quantities computed by hand from forward passes, and greedy exact match on a model that
// has memorised one short conversation.
#include <unistd.h>

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "retain/eval.h"
#include "retain/model.h"
#include "retain/tokenizer.h"
#include "retain/trainer.h"

namespace retain {
namespace {

namespace fs = std::filesystem;

GptConfig tiny_config() {
  GptConfig c;
  c.vocab_size = 260;
  c.n_positions = 32;
  c.n_embd = 32;
  c.n_layer = 1;
  c.n_head = 2;
  return c;
}

Gpt seeded_model(uint64_t seed) {
  torch::manual_seed(seed);
  return Gpt(tiny_config());
}

ChatExample chat(const std::string& user, const std::string& assistant) {
  ChatExample ex;
  ex.messages = {{Role::kUser, user, 1}, {Role::kAssistant, assistant, 1}};
  return ex;
}

// Σ over trained positions of the token loss and of (argmax == target), one example at a time.
struct HandStats {
  double loss_sum = 0;
  int64_t correct = 0, trained = 0;
};

HandStats by_hand(Gpt& model, const RenderedChat& ex) {
  torch::NoGradGuard no_grad;
  const int64_t n = ex.ids.size();
  const auto ids = torch::tensor(ex.ids, torch::kLong).view({1, n});
  const auto logits = model->forward(ids.slice(1, 0, n - 1))[0];  // (n − 1, V)
  const auto log_probs = torch::log_softmax(logits.to(torch::kDouble), -1);
  const auto pred = logits.argmax(-1);
  HandStats s;
  for (int64_t t = 0; t + 1 < n; ++t) {
    if (!ex.mask[t + 1]) continue;
    ++s.trained;
    s.loss_sum -= log_probs[t][ex.ids[t + 1]].item<double>();
    s.correct += pred[t].item<int64_t>() == ex.ids[t + 1];
  }
  return s;
}

TEST(EvaluateLoss, MatchesPerExampleForwardPassesForAnyBatchSize) {
  ByteTokenizer tok;
  const std::vector<RenderedChat> set = {tok.render(chat("hello", "hi there")),
                                         tok.render(chat("a", "b")),
                                         tok.render(chat("what is two plus two", "four"))};
  Gpt model = seeded_model(1);
  double loss_sum = 0;
  int64_t trained = 0;
  for (const auto& ex : set) {
    const HandStats s = by_hand(model, ex);
    loss_sum += s.loss_sum, trained += s.trained;
  }
  model->train();
  for (const int64_t batch_size : {1, 2, 16}) {
    const LossStats stats = evaluate_loss(model, set, batch_size);
    EXPECT_TRUE(model->is_training()) << "evaluate_loss must restore the mode";
    EXPECT_EQ(stats.examples, 3);
    EXPECT_EQ(stats.trained_tokens, trained);
    EXPECT_NEAR(stats.loss, loss_sum / trained, 1e-5) << batch_size;
    EXPECT_NEAR(stats.perplexity, std::exp(stats.loss), 1e-9 * stats.perplexity);
    EXPECT_GT(stats.loss, 4.0);  // a fresh model: about ln 260 ≈ 5.56
  }
}

TEST(EvaluateLoss, TokenAccuracyEqualsArgmaxCountByHand) {
  Gpt model = seeded_model(2);
  model->eval();
  // A sequence that the model partly predicts: its own greedy continuation of a prefix, with two
  // tokens changed, and one position left untrained.
  const std::vector<int64_t> prefix = {72, 105, 33};
  GenerateOptions greedy;
  greedy.max_new_tokens = 9;
  const auto continuation = generate(model, prefix, greedy);
  RenderedChat ex;
  ex.ids = prefix;
  ex.ids.insert(ex.ids.end(), continuation.begin(), continuation.end());
  ex.ids[5] = (ex.ids[5] + 1) % 260;
  ex.ids[9] = (ex.ids[9] + 7) % 260;
  ex.mask.assign(ex.ids.size(), 1);
  ex.mask[0] = 0;
  ex.mask[7] = 0;

  const HandStats hand = by_hand(model, ex);
  ASSERT_EQ(hand.trained, 10);
  ASSERT_GT(hand.correct, 0);
  ASSERT_LT(hand.correct, hand.trained);
  const LossStats stats = evaluate_loss(model, {ex}, 4);
  EXPECT_EQ(stats.trained_tokens, 10);
  EXPECT_NEAR(stats.token_accuracy, double(hand.correct) / hand.trained, 1e-12);
  EXPECT_NEAR(stats.loss, hand.loss_sum / hand.trained, 1e-5);
}

TEST(EvaluateLoss, EmptySetGivesZeros) {
  Gpt model = seeded_model(3);
  const LossStats stats = evaluate_loss(model, {}, 4);
  EXPECT_EQ(stats.examples, 0);
  EXPECT_EQ(stats.trained_tokens, 0);
  EXPECT_EQ(stats.loss, 0.0);
  EXPECT_EQ(stats.perplexity, 1.0);
}

TEST(Evaluate, ExactMatchAfterMemorisingOneConversation) {
  ByteTokenizer tok;
  const ChatExample hi = chat("hi", "ok"), yo = chat("yo", "no");
  EvalOptions options;
  options.max_new_tokens = 8;

  Gpt model = seeded_model(4);
  const EvalResult fresh = evaluate(model, tok, {hi}, options);
  EXPECT_EQ(fresh.exact_match, 0.0);
  EXPECT_EQ(fresh.exact_match_examples, 1);

  const fs::path run =
      fs::temp_directory_path() / ("retain_eval_test_memorise_" + std::to_string(::getpid()));
  fs::remove_all(run);
  TrainConfig c;
  c.max_steps = 150;
  c.batch_size = 1;
  c.lr = 1e-2;
  c.log_every = 1000;
  train(model, c, {tok.render(hi)}, {}, run.string(), false);
  fs::remove_all(run);

  const EvalResult memorised = evaluate(model, tok, {hi}, options);
  EXPECT_EQ(memorised.exact_match, 1.0);
  EXPECT_EQ(memorised.loss.token_accuracy, 1.0);
  EXPECT_LT(memorised.loss.loss, 0.1);
  // A prompt it never saw gets the memorised reply, which is not the reference: half match.
  const EvalResult mixed = evaluate(model, tok, {hi, yo}, options);
  EXPECT_EQ(mixed.exact_match_examples, 2);
  EXPECT_EQ(mixed.exact_match, 0.5);
  const auto j = mixed.to_json();
  EXPECT_EQ(j.at("exact_match").get<double>(), 0.5);
  EXPECT_EQ(j.at("examples").get<int64_t>(), 2);
  EXPECT_EQ(j.at("trained_tokens").get<int64_t>(), 6);  // "ok<|end|>" and "no<|end|>"

  options.exact_match = false;
  const EvalResult loss_only = evaluate(model, tok, {hi}, options);
  EXPECT_EQ(loss_only.exact_match_examples, 0);
  EXPECT_FALSE(loss_only.to_json().contains("exact_match"));
}

}  // namespace
}  // namespace retain
