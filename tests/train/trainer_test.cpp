// Tests of the training loop and its config (trainer.h, train_checkpoint.h): key validation with
// hints, step arithmetic, learning on a tiny model, accumulation normalised by the window's trained
// tokens, bit-exact resume after a simulated crash, the regularizer hook, non-finite updates, and
// checkpoint retention.
//
// The model is one layer of width 32 on byte tokens; every run takes well under a second on a CPU.
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "test_util.h"
#include "retain/batch.h"
#include "retain/errors.h"
#include "retain/model.h"
#include "retain/optimizer.h"
#include "retain/tokenizer.h"
#include "retain/train_checkpoint.h"
#include "retain/trainer.h"

namespace retain {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using testing_util::TempDir;

GptConfig tiny_model_config() {
  GptConfig c;
  c.vocab_size = 260;
  c.n_positions = 64;
  c.n_embd = 32;
  c.n_layer = 1;
  c.n_head = 2;
  return c;
}

Gpt seeded_model(const GptConfig& c, uint64_t seed) {
  torch::manual_seed(seed);
  return Gpt(c);
}

// `n` short conversations of different lengths, rendered with the byte tokenizer.
std::vector<RenderedChat> synthetic_chats(int n, int offset = 0) {
  ByteTokenizer tok;
  std::vector<RenderedChat> out;
  for (int i = offset; i < offset + n; ++i) {
    ChatExample ex;
    const char letter = static_cast<char>('a' + i % 26);
    ex.messages = {{Role::kUser, std::string("say ") + letter, 1},
                   {Role::kAssistant, std::string(1 + i % 4, letter) + "!", 1}};
    out.push_back(tok.render(ex));
  }
  return out;
}

TrainConfig small_config(int64_t max_steps) {
  TrainConfig c;
  c.max_steps = max_steps;
  c.batch_size = 2;
  c.lr = 1e-2;
  c.log_every = 1;
  c.seed = 7;
  return c;
}

std::vector<json> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  std::vector<json> out;
  for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));
  return out;
}

void expect_same_parameters(Gpt& a, Gpt& b) {
  auto pa = a->named_parameters();
  auto pb = b->named_parameters();
  for (const auto& p : pa) EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();
}

double max_param_diff(Gpt& a, Gpt& b) {
  double d = 0;
  auto pb = b->named_parameters();
  for (const auto& p : a->named_parameters())
    d = std::max(d, (p.value() - pb[p.key()]).abs().max().item<double>());
  return d;
}

// ---------------------------------------------------------------------------------------------
// TrainConfig

void expect_config_error(const json& j, const std::vector<std::string>& needles) {
  try {
    TrainConfig::from_json(j, "job.json");
    ADD_FAILURE() << "accepted " << j.dump();
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << msg;
  }
}

TEST(TrainConfig, UnknownKeyNamesItAndHintsTheNearestKey) {
  expect_config_error({{"max_step", 5}},
                      {"job.json: ", "unknown key \"max_step\"", "did you mean \"max_steps\"?"});
  expect_config_error({{"lr", 1e-3}, {"batchsize", 4}},
                      {"\"batchsize\"", "did you mean \"batch_size\"?"});
  // Nothing close: no hint.
  try {
    TrainConfig::from_json({{"completely_unrelated", 1}}, "job.json");
    ADD_FAILURE();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).find("did you mean"), std::string::npos) << e.what();
  }
}

TEST(TrainConfig, WrongTypesAndRangesAreRejected) {
  expect_config_error({{"lr", "fast"}}, {"\"lr\" must be a number", "\"fast\""});
  expect_config_error({{"batch_size", 0}}, {"\"batch_size\" must be an integer ≥ 1"});
  expect_config_error({{"batch_size", 2.5}}, {"\"batch_size\""});
  expect_config_error({{"group_by_length", 1}}, {"\"group_by_length\" must be true or false"});
  expect_config_error({{"device", 0}}, {"\"device\" must be a string"});
  expect_config_error({{"weight_decay", -0.1}}, {"\"weight_decay\""});
  expect_config_error({{"adam_beta2", 1.0}}, {"adam_beta2"});
  expect_config_error({{"min_lr_ratio", 1.5}}, {"min_lr_ratio"});
  // Bounded by what a machine or a schedule can have, and finite (a flag can say "inf").
  expect_config_error({{"lr", std::numeric_limits<double>::infinity()}}, {"\"lr\" must be a number, finite"});
  expect_config_error({{"lr", 1e30}}, {"\"lr\"", "≤ 10"});
  expect_config_error({{"grad_accum", 1000000000}}, {"\"grad_accum\"", "≤ 65536"});
  expect_config_error({{"threads", 100000}}, {"\"threads\"", "≤ 1024"});
  expect_config_error({{"batch_size", int64_t(1) << 40}}, {"\"batch_size\"", "≤ 1048576"});
  expect_config_error({{"precision", "fp16"}}, {"fp32 or bf16"});
  expect_config_error({{"device", "tpu"}}, {"cpu, cuda or cuda:N", "tpu"});
  expect_config_error(json::array(), {"JSON object"});
}

TEST(TrainConfig, Bf16OnCpuIsAConfigError) {
  expect_config_error({{"precision", "bf16"}}, {"bf16", "CUDA"});
  expect_config_error({{"precision", "bf16"}, {"device", "cpu"}}, {"bf16"});
}

TEST(TrainConfig, ReadsEveryKeyAndRoundTrips) {
  const json j = {{"max_steps", 12}, {"lr", 5e-4}, {"group_by_length", false},
                  {"seed", 99},      {"device", "cpu"}, {"warmup_steps", 3}};
  const TrainConfig c = TrainConfig::from_json(j, "job.json");
  EXPECT_EQ(c.max_steps, 12);
  EXPECT_DOUBLE_EQ(c.lr, 5e-4);
  EXPECT_FALSE(c.group_by_length);
  EXPECT_EQ(c.seed, 99u);
  EXPECT_EQ(c.warmup_steps, 3);
  EXPECT_EQ(c.batch_size, TrainConfig().batch_size);  // untouched keys keep their defaults
  const json all = c.to_json();
  EXPECT_EQ(all.size(), TrainConfig::keys().size());
  EXPECT_EQ(TrainConfig::from_json(all, "again").to_json(), all);
}

TEST(TrainConfig, TotalStepsArithmetic) {
  TrainConfig c;
  c.max_steps = 7;
  EXPECT_EQ(total_steps(c, 1000), 7);  // max_steps wins
  c.max_steps = 0;
  c.epochs = 3, c.batch_size = 4, c.grad_accum = 2;
  // 10 examples → 3 micro-batches per epoch → 9 micro-batches → 4 whole steps of 2.
  EXPECT_EQ(total_steps(c, 10), 4);
  c.grad_accum = 1;
  EXPECT_EQ(total_steps(c, 10), 9);
  EXPECT_EQ(total_steps(c, 12), 9);
  c.epochs = 1, c.grad_accum = 8;
  EXPECT_EQ(total_steps(c, 10), 1);  // never less than one step
}

// ---------------------------------------------------------------------------------------------
// train()

TEST(Train, LossDecreasesAndMetricsAreWritten) {
  TempDir tmp;
  const auto data = synthetic_chats(12);
  const auto valid = synthetic_chats(2);  // seen in training: its loss must fall
  Gpt model = seeded_model(tiny_model_config(), 1);
  TrainConfig c = small_config(40);
  c.batch_size = 4;
  c.log_every = 5;
  c.eval_every = 20;
  std::vector<StepLog> steps;
  std::vector<ValidLog> valids;
  TrainHooks hooks;
  hooks.on_step = [&](const StepLog& s) { steps.push_back(s); };
  hooks.on_valid = [&](const ValidLog& v) { valids.push_back(v); };
  const TrainSummary summary = train(model, c, data, valid, tmp / "run", false, hooks);

  EXPECT_EQ(summary.steps, 40);
  EXPECT_EQ(summary.skipped_updates, 0);
  EXPECT_EQ(summary.resumed_from_step, -1);
  ASSERT_EQ(steps.size(), 8u);  // every 5 steps
  EXPECT_EQ(steps.front().step, 5);
  EXPECT_EQ(steps.back().step, 40);
  EXPECT_EQ(steps.back().total_steps, 40);
  EXPECT_DOUBLE_EQ(summary.last_loss, steps.back().loss);
  // ln 260 ≈ 5.56 nats at the start; the tiny set is largely learned in 40 steps.
  EXPECT_LT(summary.last_loss, 0.5 * steps.front().loss);
  EXPECT_LT(summary.last_loss, 2.0);
  ASSERT_EQ(valids.size(), 2u);  // at step 20 and at the end
  EXPECT_EQ(valids[0].step, 20);
  EXPECT_EQ(valids[1].step, 40);
  EXPECT_LT(valids[1].loss, valids[0].loss);
  EXPECT_NEAR(valids[1].perplexity, std::exp(valids[1].loss), 1e-9);
  ASSERT_TRUE(summary.last_valid.has_value());
  EXPECT_EQ(summary.last_valid->step, 40);
  EXPECT_FALSE(model->is_training());

  const auto records = read_jsonl(tmp / "run/metrics.jsonl");
  int train_records = 0, valid_records = 0;
  for (const auto& r : records) {
    if (r.at("type") == "train") {
      ++train_records;
      EXPECT_TRUE(r.contains("loss") && r.contains("lr") && r.contains("grad_norm")) << r.dump();
    } else if (r.at("type") == "valid") {
      ++valid_records;
      EXPECT_TRUE(r.contains("perplexity") && r.contains("token_accuracy")) << r.dump();
    }
  }
  EXPECT_EQ(train_records, 8);
  EXPECT_EQ(valid_records, 2);
  EXPECT_DOUBLE_EQ(records.back().at("loss").get<double>(), valids.back().loss);
}

TEST(Train, AccumulationIsNormalisedByTheWindowsTrainedTokens) {
  // batch 2 × accumulation 2 and batch 4 × 1 see the same 4 examples in the first step (without
  // length grouping a batch of 4 is two consecutive batches of 2 of the same permutation; see
  // EpochBatches.UngroupedBatchesAreConsecutiveSlicesOfOnePermutation). The loss is the sum over
  // the window's trained tokens divided by their count, so both give the same gradient.
  // adam_eps 1 makes the first AdamW step ≈ lr·g (not lr·sign g), and clipping is off, so a loss
  // scaled or weighted differently would move the weights differently.
  TempDir tmp;
  const auto data = synthetic_chats(8);
  TrainConfig c = small_config(1);
  c.group_by_length = false;
  c.lr = 1.0;
  c.adam_eps = 1.0;
  c.grad_clip = 0;
  c.weight_decay = 0;

  // The premise: the two halves carry different numbers of trained tokens.
  std::vector<int64_t> lengths;
  for (const auto& ex : data) lengths.push_back(ex.ids.size());
  const auto halves = epoch_batches(lengths, 2, c.seed, 0, false);
  ASSERT_NE(make_batch(data, halves[0], 64).trained_tokens,
            make_batch(data, halves[1], 64).trained_tokens);

  Gpt start = seeded_model(tiny_model_config(), 2);
  TrainConfig accumulated = c;
  accumulated.batch_size = 2, accumulated.grad_accum = 2;
  Gpt a = seeded_model(tiny_model_config(), 2);
  const auto sa = train(a, accumulated, data, {}, tmp / "a", false);
  TrainConfig whole = c;
  whole.batch_size = 4, whole.grad_accum = 1;
  Gpt b = seeded_model(tiny_model_config(), 2);
  const auto sb = train(b, whole, data, {}, tmp / "b", false);

  EXPECT_NEAR(sa.last_loss, sb.last_loss, 1e-5);
  EXPECT_GT(max_param_diff(a, start), 1e-3);  // the step did move the weights
  EXPECT_LT(max_param_diff(a, b), 1e-5);

  // Both equal the step computed by hand from the mean loss over the 4 examples' trained tokens.
  // AdamW's first step has m̂ = g and v̂ = g², so θ₁ = θ₀ − lr · g / (|g| + eps).
  const Batch batch = make_batch(data, epoch_batches(lengths, 4, c.seed, 0, false).at(0), 64);
  const auto loss = masked_lm_loss_sum(start->forward(batch.inputs), batch.targets, batch.mask) /
                    double(batch.trained_tokens);
  loss.backward();
  EXPECT_NEAR(sa.last_loss, loss.item<double>(), 1e-5);
  auto trained = a->named_parameters();
  torch::NoGradGuard no_grad;
  for (const auto& p : start->named_parameters()) {
    const auto g = p.value().grad();
    const auto expected = p.value() - c.lr * g / (g.abs() + c.adam_eps);
    EXPECT_LT((trained[p.key()] - expected).abs().max().item<double>(), 1e-5) << p.key();
  }
}

TEST(Train, ResumeAfterACrashEndsBitIdenticalToAnUninterruptedRun) {
  TempDir tmp;
  const auto data = synthetic_chats(6);
  GptConfig mc = tiny_model_config();
  mc.embd_pdrop = mc.attn_pdrop = mc.resid_pdrop = 0.1;  // so the RNG state matters too
  TrainConfig c = small_config(6);
  c.grad_accum = 2;  // 3 micro-batches an epoch, 2 a step: steps straddle epochs
  c.checkpoint_every = 3;
  c.warmup_steps = 2;

  Gpt x = seeded_model(mc, 11);
  const auto sx = train(x, c, data, {}, tmp / "x", false);

  // Run Y: identical, but the process "dies" right after step 4 (the checkpoint is from step 3).
  Gpt y = seeded_model(mc, 11);
  TrainHooks crash;
  crash.on_progress = [](int64_t step, int64_t) {
    if (step == 4) throw std::runtime_error("simulated crash");
  };
  EXPECT_THROW(train(y, c, data, {}, tmp / "y", false, crash), std::runtime_error);
  EXPECT_EQ(latest_checkpoint(tmp / "y"), tmp / "y/checkpoints/step-3");
  EXPECT_FALSE(torch::equal(y->wte->weight, x->wte->weight));

  // A new process: a differently initialised model, and other draws from the RNG meanwhile.
  Gpt z = seeded_model(mc, 99);
  torch::rand({100});
  const auto sz = train(z, c, data, {}, tmp / "y", /*resume=*/true);
  EXPECT_EQ(sz.resumed_from_step, 3);
  EXPECT_EQ(sz.steps, 6);
  EXPECT_EQ(sz.last_loss, sx.last_loss);
  expect_same_parameters(z, x);

  // metrics.jsonl reads as one uninterrupted run: the crashed run's step-4 record is gone.
  auto train_curve = [](const std::vector<json>& records) {
    std::vector<std::pair<int64_t, double>> out;
    for (const auto& r : records)
      if (r.at("type") == "train")
        out.emplace_back(r.at("step").get<int64_t>(), r.at("loss").get<double>());
    return out;
  };
  const auto cx = train_curve(read_jsonl(tmp / "x/metrics.jsonl"));
  const auto cy = train_curve(read_jsonl(tmp / "y/metrics.jsonl"));
  EXPECT_EQ(cx.size(), 6u);
  EXPECT_EQ(cy, cx);
}

TEST(Train, ResumeWithoutACheckpointIsACheckpointError) {
  TempDir tmp;
  Gpt model = seeded_model(tiny_model_config(), 3);
  EXPECT_THROW(train(model, small_config(2), synthetic_chats(4), {}, tmp / "run", true),
               CheckpointError);
}

TEST(Train, RegularizerValueIsAddedOncePerStep) {
  // A constant penalty of 1000 with zero gradient: the step's loss rises by exactly 1000 even with
  // 2 micro-batches (each adds 1000 / grad_accum), and the weights are unchanged.
  TempDir tmp;
  const auto data = synthetic_chats(8);
  TrainConfig c = small_config(3);
  c.grad_accum = 2;
  Gpt plain = seeded_model(tiny_model_config(), 4);
  std::vector<double> plain_losses;
  TrainHooks plain_hooks;
  plain_hooks.on_step = [&](const StepLog& s) { plain_losses.push_back(s.loss); };
  train(plain, c, data, {}, tmp / "plain", false, plain_hooks);

  Gpt reg = seeded_model(tiny_model_config(), 4);
  std::vector<double> reg_losses;
  TrainHooks hooks;
  hooks.on_step = [&](const StepLog& s) { reg_losses.push_back(s.loss); };
  hooks.regularizer = [&] { return reg->ln_f->bias.sum() * 0.0 + 1000.0; };
  train(reg, c, data, {}, tmp / "reg", false, hooks);

  ASSERT_EQ(reg_losses.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(reg_losses[i] - plain_losses[i], 1000.0, 1e-3) << i;
  expect_same_parameters(reg, plain);
}

TEST(Train, RegularizerGradientIsApplied) {
  // A stiff pull of ln_f.bias towards 1 dominates its gradient, whose sign is then the same every
  // step, so AdamW moves every element by lr a step: 10 × 0.01 = 0.1. Without it the task's
  // gradient moves the elements both ways.
  TempDir tmp;
  const auto data = synthetic_chats(8);
  TrainConfig c = small_config(10);
  c.min_lr_ratio = 1.0;  // constant lr
  Gpt plain = seeded_model(tiny_model_config(), 5);
  train(plain, c, data, {}, tmp / "plain", false);
  Gpt reg = seeded_model(tiny_model_config(), 5);
  TrainHooks hooks;
  hooks.regularizer = [&] { return 1e4 * (reg->ln_f->bias - 1.0).pow(2).sum(); };
  const auto s = train(reg, c, data, {}, tmp / "reg", false, hooks);
  EXPECT_GT(s.last_loss, 1e3);  // the penalty is part of the reported loss
  EXPECT_LT((reg->ln_f->bias - 0.1).abs().max().item<double>(), 1e-4);
  EXPECT_GT((plain->ln_f->bias - 0.1).abs().max().item<double>(), 0.05);
}

TEST(Train, NonFiniteUpdatesAreSkippedThenFatal) {
  TempDir tmp;
  const auto data = synthetic_chats(8);
  const double nan = std::numeric_limits<double>::quiet_NaN();

  // One NaN step among five: skipped and counted, training goes on.
  {
    Gpt model = seeded_model(tiny_model_config(), 6);
    int calls = 0;
    TrainHooks hooks;
    hooks.regularizer = [&] { return model->ln_f->bias.sum() * (++calls == 2 ? nan : 0.0); };
    const auto s = train(model, small_config(5), data, {}, tmp / "one", false, hooks);
    EXPECT_EQ(s.steps, 5);
    EXPECT_EQ(s.skipped_updates, 1);
    for (const auto& p : model->parameters()) EXPECT_TRUE(torch::isfinite(p).all().item<bool>());
  }
  // NaN every step: TrainingError after max_nonfinite in a row, the weights never touched.
  {
    Gpt model = seeded_model(tiny_model_config(), 7);
    Gpt start = seeded_model(tiny_model_config(), 7);
    TrainConfig c = small_config(10);
    c.max_nonfinite = 3;
    TrainHooks hooks;
    int progress = 0;
    hooks.on_progress = [&](int64_t, int64_t) { ++progress; };
    hooks.regularizer = [&] { return model->ln_f->bias.sum() * nan; };
    try {
      train(model, c, data, {}, tmp / "all", false, hooks);
      ADD_FAILURE() << "no TrainingError";
    } catch (const TrainingError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("step 3"), std::string::npos) << msg;
      EXPECT_NE(msg.find("3 non-finite updates in a row"), std::string::npos) << msg;
    }
    EXPECT_EQ(progress, 2);
    expect_same_parameters(model, start);
  }
}

TEST(TrainCheckpoints, KeepsTheNewestAndIgnoresIncompleteFolders) {
  TempDir tmp;
  const auto data = synthetic_chats(6);
  TrainConfig c = small_config(7);
  c.checkpoint_every = 2;
  c.keep_checkpoints = 2;
  Gpt model = seeded_model(tiny_model_config(), 8);
  train(model, c, data, {}, tmp / "run", false);

  // Checkpoints at steps 2, 4, 6 (none at the last step); the oldest was removed.
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(tmp.path / "run/checkpoints"))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"step-4", "step-6"}));
  for (const auto& n : names)
    EXPECT_TRUE(fs::exists(tmp.path / "run/checkpoints" / n / "COMPLETE")) << n;
  EXPECT_EQ(latest_checkpoint(tmp / "run"), tmp / "run/checkpoints/step-6");

  // A newer folder without COMPLETE (a crash mid-save) is neither latest nor loadable.
  const fs::path torn = tmp.path / "run/checkpoints/step-9";
  fs::copy(tmp.path / "run/checkpoints/step-6", torn);
  fs::remove(torn / "COMPLETE");
  EXPECT_EQ(latest_checkpoint(tmp / "run"), tmp / "run/checkpoints/step-6");
  Gpt other = seeded_model(tiny_model_config(), 9);
  AdamW optimizer({}, {});
  EXPECT_THROW(load_train_checkpoint(torn.string(), *other, optimizer), CheckpointError);
  const auto s = train(other, c, data, {}, tmp / "run", true);
  EXPECT_EQ(s.resumed_from_step, 6);
  EXPECT_EQ(s.steps, 7);
  expect_same_parameters(other, model);
  EXPECT_EQ(latest_checkpoint(tmp / "nothing"), "");
}

}  // namespace
}  // namespace retain
