// The mlp family: config validation, forward and masked losses, the batched per-example Fisher
// against the one-example loop and a closed form, and model directories.
#include <gtest/gtest.h>

#include "retain/errors.h"
#include "retain/mlp.h"
#include "test_util.h"

namespace retain {
namespace {

MlpConfig small_config(std::vector<int64_t> hidden = {7, 5}) {
  MlpConfig c;
  c.input_size = 6;
  c.hidden_sizes = std::move(hidden);
  c.num_classes = 4;
  return c;
}

TEST(MlpConfig, JsonRoundTripAndValidation) {
  const auto c = small_config();
  const auto back = MlpConfig::from_json(c.to_json(), "config.json");
  EXPECT_EQ(back.input_size, 6);
  EXPECT_EQ(back.hidden_sizes, (std::vector<int64_t>{7, 5}));
  EXPECT_EQ(back.num_classes, 4);
  EXPECT_EQ(c.to_json()["model_type"], "mlp");
  // (6+1)·7 + (7+1)·5 + (5+1)·4
  EXPECT_EQ(c.num_parameters(), 49 + 40 + 24);
  EXPECT_THROW(MlpConfig::from_json({{"model_type", "gpt2"}}, "c"), ConfigError);
  EXPECT_THROW(MlpConfig::from_json({{"hidden_size", 4}}, "c"), ConfigError);  // typo: unknown key
  EXPECT_THROW(MlpConfig::from_json({{"hidden_sizes", {4, 0}}}, "c"), ConfigError);
  EXPECT_THROW(MlpConfig::from_json({{"activation", "tanh"}}, "c"), ConfigError);
}

TEST(Mlp, ForwardShapesAndParameterNames) {
  torch::manual_seed(0);
  MlpClassifier model(small_config());
  EXPECT_EQ(model->forward(torch::rand({3, 6})).sizes(), (std::vector<int64_t>{3, 4}));
  const auto params = model->named_parameters();
  EXPECT_TRUE(params.contains("layers.0.weight"));
  EXPECT_TRUE(params.contains("layers.2.bias"));
  int64_t total = 0;
  for (const auto& p : model->parameters()) total += p.numel();
  EXPECT_EQ(total, small_config().num_parameters());
}

TEST(Mlp, MaskedLossesSeeOnlyAllowedClasses) {
  auto logits = torch::tensor({{1.0, 2.0, 3.0, 4.0}, {0.5, -1.0, 2.0, 0.0}});
  auto labels = torch::tensor({1, 2}, torch::kLong);
  auto allowed = torch::tensor({{true, true, false, false}, {false, false, true, true}});
  auto losses = classifier_losses(logits, labels, allowed);
  // Row 0: −log softmax([1, 2])[1] = log(1 + e^−1); row 1: −log softmax([2, 0])[0] = log(1 + e^−2)
  EXPECT_NEAR(losses[0].item<double>(), std::log(1 + std::exp(-1.0)), 1e-6);
  EXPECT_NEAR(losses[1].item<double>(), std::log(1 + std::exp(-2.0)), 1e-6);
  auto full = classifier_losses(logits, labels);
  EXPECT_NEAR(full[0].item<double>(), -torch::log_softmax(logits[0], 0)[1].item<double>(), 1e-6);
}

void expect_maps_close(const TensorMap& a, const TensorMap& b, double rtol) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) {
    const auto& u = b.at(name);
    const double scale = u.abs().max().item<double>();
    const double diff = (t - u).abs().max().item<double>();
    EXPECT_LE(diff, rtol * scale) << name << ": max |batched − loop| " << diff << " vs max |F| " << scale;
  }
}

TEST(MlpFisher, BatchedEqualsLoop) {
  torch::manual_seed(3);
  MlpClassifier model(small_config());
  const auto x = torch::rand({40, 6});
  const auto y = torch::randint(0, 4, {40}, torch::kLong);
  FisherOptions options;
  options.num_samples = 30;  // both paths pick the same 30 of the 40
  options.batch_size = 8;
  options.path = FisherOptions::Path::kLoop;
  const auto loop = estimate_mlp_fisher(model, x, y, options);
  options.path = FisherOptions::Path::kBatched;
  const auto batched = estimate_mlp_fisher(model, x, y, options);
  expect_maps_close(batched, loop, 1e-5);
  // With task-incremental masks (a per-example allowed set of classes).
  auto allowed = torch::zeros({40, 4}, torch::kBool);
  allowed.index_put_({torch::indexing::Slice(), torch::indexing::Slice(0, 2)}, true);
  allowed.index_put_({torch::indexing::Slice(20, 40), torch::indexing::Slice()}, true);
  const auto y2 = y.remainder(2);
  options.path = FisherOptions::Path::kLoop;
  const auto loop_masked = estimate_mlp_fisher(model, x, y2, options, allowed);
  options.path = FisherOptions::Path::kAuto;
  expect_maps_close(estimate_mlp_fisher(model, x, y2, options, allowed), loop_masked, 1e-5);
  for (const auto& p : model->parameters()) EXPECT_FALSE(p.grad().defined());
}

// Softmax regression (no hidden layer): the gradient of example n is (p_n − e_{y_n}) x_nᵀ for W
// and p_n − e_{y_n} for b, so the empirical Fisher is the mean of their squares.
TEST(MlpFisher, EmpiricalOfSoftmaxRegressionMatchesClosedForm) {
  torch::manual_seed(4);
  MlpClassifier model(small_config({}));
  const auto x = torch::randn({25, 6});
  const auto y = torch::randint(0, 4, {25}, torch::kLong);
  FisherOptions options;
  options.num_samples = 0;
  options.path = FisherOptions::Path::kBatched;
  const auto fisher = estimate_mlp_fisher(model, x, y, options);
  torch::NoGradGuard no_grad;
  const auto r = torch::softmax(model->forward(x), 1) - torch::one_hot(y, 4).to(torch::kFloat);  // (N, C)
  const auto expected_w = (r.pow(2).unsqueeze(2) * x.pow(2).unsqueeze(1)).mean(0);              // (C, D)
  EXPECT_TRUE(torch::allclose(fisher.at("layers.0.weight"), expected_w, 1e-5, 1e-7));
  EXPECT_TRUE(torch::allclose(fisher.at("layers.0.bias"), r.pow(2).mean(0), 1e-5, 1e-7));
}

// The true Fisher averages over labels drawn from the model; with many draws per example it
// approaches E_{y~p}[(p − e_y)²] = p(1 − p)² + Σ_{k≠c} p_k p² = p (1 − p) per bias entry.
TEST(MlpFisher, TrueFisherOfBiasApproachesExpectation) {
  torch::manual_seed(5);
  MlpClassifier model(small_config({}));
  const auto x = torch::randn({8, 6});
  FisherOptions options;
  options.estimator = FisherEstimator::kTrue;
  options.samples_per_example = 4000;
  options.num_samples = 0;
  options.path = FisherOptions::Path::kBatched;
  const auto fisher = estimate_mlp_fisher(model, x, torch::zeros({8}, torch::kLong), options);
  torch::NoGradGuard no_grad;
  const auto p = torch::softmax(model->forward(x), 1);
  const auto expected = (p * (1 - p)).mean(0);
  EXPECT_TRUE(torch::allclose(fisher.at("layers.0.bias"), expected, 0.05, 2e-3))
      << fisher.at("layers.0.bias") << expected;
}

TEST(MlpDir, SaveLoadRoundTripAndRefusals) {
  testing_util::TempDir tmp;
  torch::manual_seed(6);
  MlpClassifier model(small_config());
  const auto dir = tmp / "mlp-v1";
  save_mlp_dir(dir, small_config(), model, /*overwrite=*/false, {{"note", "test"}});
  EXPECT_THROW(save_mlp_dir(dir, small_config(), model, false), CheckpointError);
  auto loaded = load_mlp_dir(dir, 99);
  EXPECT_TRUE(loaded.has_weights);
  EXPECT_EQ(loaded.config.hidden_sizes, small_config().hidden_sizes);
  for (const auto& p : model->named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), loaded.model->named_parameters()[p.key()])) << p.key();
  EXPECT_THROW(load_mlp_dir(tmp / "missing", 1), CheckpointError);
}

}  // namespace
}  // namespace retain
