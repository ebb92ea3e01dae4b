// EWC: the penalty by hand, Fisher estimators against closed forms, the fast per-example path
// against the one-example loop, online consolidation, and ewc.safetensors.
#include <filesystem>

#include <gtest/gtest.h>

#include "retain/errors.h"
#include "retain/ewc.h"
#include "retain/model.h"
#include "retain/trainer.h"
#include "test_util.h"

namespace retain {
namespace {
namespace fs = std::filesystem;

struct TwoParams : torch::nn::Module {
  torch::Tensor a = register_parameter("a", torch::tensor({1.5}));
  torch::Tensor b = register_parameter("b", torch::tensor({-2.0}));
};

TEST(EwcPenalty, MatchesHandComputationAndGradient) {
  TwoParams m;
  EwcState s;
  s.fisher = {{"a", torch::tensor({0.5})}, {"b", torch::tensor({3.0})}};
  s.anchor = {{"a", torch::tensor({1.0})}, {"b", torch::tensor({-1.0})}};
  const double lambda = 4.0;
  auto pen = ewc_penalty(m, s, lambda);
  // λ/2 · (0.5·0.5² + 3·(−1)²) = 2 · (0.125 + 3) = 6.25
  EXPECT_NEAR(pen.item<double>(), 6.25, 1e-6);
  pen.backward();
  // ∂/∂θ = λ·F·(θ − θ*): a → 4·0.5·0.5 = 1, b → 4·3·(−1) = −12
  EXPECT_NEAR(m.a.grad().item<double>(), 1.0, 1e-6);
  EXPECT_NEAR(m.b.grad().item<double>(), -12.0, 1e-6);
}

TEST(EwcPenalty, InPlaceGradientEqualsAutograd) {
  TwoParams m;
  EwcState s;
  s.fisher = {{"a", torch::tensor({0.5})}, {"b", torch::tensor({3.0})}};
  s.anchor = {{"a", torch::tensor({1.0})}, {"b", torch::tensor({-1.0})}};
  m.b.mutable_grad() = torch::tensor({0.25});  // an existing task gradient is added to
  const auto value = EwcPenalty(m, s, 4.0).add_gradient();
  EXPECT_NEAR(value.item<double>(), 6.25, 1e-6);
  EXPECT_NEAR(m.a.grad().item<double>(), 1.0, 1e-6);
  EXPECT_NEAR(m.b.grad().item<double>(), -12.0 + 0.25, 1e-6);
}

TEST(EwcPenalty, ZeroAtAnchorAndSkipsParametersWithoutFisher) {
  TwoParams m;
  EwcState s;
  s.fisher = {{"a", torch::tensor({2.0})}};
  s.anchor = {{"a", torch::tensor({1.5})}};
  EXPECT_EQ(ewc_penalty(m, s, 100.0).item<double>(), 0.0);
}

// Logistic regression: per-example loss BCE(σ(w·x), y); its gradient is (p − y)·x, so the
// empirical Fisher is the mean of (p − y)² x².
TEST(Fisher, EmpiricalOfLogisticRegressionMatchesClosedForm) {
  torch::manual_seed(0);
  const int64_t n = 64, d = 5;
  auto x = torch::randn({n, d});
  auto y = (torch::rand({n}) > 0.5).to(torch::kFloat);
  torch::nn::Linear lin(torch::nn::LinearOptions(d, 1).bias(false));
  auto losses = [&](const std::vector<int64_t>& idx, bool, at::Generator&) {
    auto i = torch::tensor(idx, torch::kLong);
    auto logits = lin(x.index_select(0, i)).squeeze(1);
    return torch::binary_cross_entropy_with_logits(logits, y.index_select(0, i), {}, {}, at::Reduction::None);
  };
  FisherOptions opt;
  opt.num_samples = 0;
  auto fisher = estimate_fisher_loop(*lin, n, losses, opt);
  torch::NoGradGuard ng;
  auto p = torch::sigmoid(lin(x).squeeze(1));
  auto expected = ((p - y).pow(2).unsqueeze(1) * x.pow(2)).mean(0).view({1, d});
  EXPECT_TRUE(torch::allclose(fisher.at("weight"), expected, 1e-5, 1e-7));
}

// Linear model with a unit-variance Gaussian likelihood: targets y ~ N(w·x, 1), gradient
// (w·x − y)·x, so the true Fisher is E[x²] per weight. Sampling tolerance: 4000 draws.
TEST(Fisher, TrueOfGaussianLinearModelIsMeanSquaredInput) {
  torch::manual_seed(1);
  const int64_t n = 50, d = 3;
  auto x = torch::randn({n, d});
  torch::nn::Linear lin(torch::nn::LinearOptions(d, 1).bias(false));
  auto losses = [&](const std::vector<int64_t>& idx, bool sample, at::Generator& gen) {
    EXPECT_TRUE(sample);
    auto xi = x.index_select(0, torch::tensor(idx, torch::kLong));
    auto mean = lin(xi).squeeze(1);
    auto target = mean.detach() + at::normal(0.0, 1.0, {int64_t(idx.size())}, gen);
    return 0.5 * (mean - target).pow(2);
  };
  FisherOptions opt;
  opt.estimator = FisherEstimator::kTrue;
  opt.samples_per_example = 80;
  opt.num_samples = 0;
  auto fisher = estimate_fisher_loop(*lin, n, losses, opt);
  auto expected = x.pow(2).mean(0).view({1, d});
  EXPECT_TRUE(torch::allclose(fisher.at("weight"), expected, 0.08, 0.0))
      << fisher.at("weight") << expected;
}

// Softmax regression with targets sampled from the model: E_y[(p − e_y)_j²] = p_j (1 − p_j), so the
// true Fisher of W[j, i] is the mean over examples of p_j (1 − p_j) x_i².
TEST(Fisher, TrueOfSoftmaxRegressionMatchesExpectationOverClasses) {
  torch::manual_seed(2);
  const int64_t n = 40, d = 3, k = 4;
  auto x = torch::randn({n, d});
  torch::nn::Linear lin(torch::nn::LinearOptions(d, k).bias(false));
  auto losses = [&](const std::vector<int64_t>& idx, bool sample, at::Generator& gen) {
    EXPECT_TRUE(sample);
    auto logits = lin(x.index_select(0, torch::tensor(idx, torch::kLong)));
    auto y = torch::multinomial(torch::softmax(logits.detach(), -1), 1, true, gen).squeeze(1);
    return torch::nn::functional::cross_entropy(
        logits, y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
  };
  FisherOptions opt;
  opt.estimator = FisherEstimator::kTrue;
  opt.samples_per_example = 150;
  opt.num_samples = 0;
  auto fisher = estimate_fisher_loop(*lin, n, losses, opt);
  torch::NoGradGuard ng;
  auto p = torch::softmax(lin(x), -1);                                           // (n, k)
  auto expected = torch::einsum("nj,ni->ji", {p * (1 - p), x.pow(2)}) / double(n);  // (k, d)
  EXPECT_TRUE(torch::allclose(fisher.at("weight"), expected, 0.1, 0.0)) << fisher.at("weight") << expected;
}

GptConfig tiny_config() {
  GptConfig c;
  c.vocab_size = 260;
  c.n_positions = 48;
  c.n_embd = 32;
  c.n_layer = 2;
  c.n_head = 2;
  return c;
}

std::vector<RenderedChat> tiny_chats(int n) {
  ByteTokenizer tok;
  std::vector<RenderedChat> out;
  for (int i = 0; i < n; ++i) {
    ChatExample ex;
    ex.messages = {{Role::kUser, "question " + std::to_string(i * 7 % 13), 1},
                   {Role::kAssistant, std::string(1 + i % 5, 'a' + i % 3) + " ok", 1}};
    out.push_back(tok.render(ex));
  }
  return out;
}

TEST(Fisher, FastPerExamplePathEqualsTheLoopOnGpt) {
  torch::manual_seed(3);
  Gpt model(tiny_config());
  const auto data = tiny_chats(11);  // uneven lengths: padding inside the batches
  FisherOptions opt;
  opt.num_samples = 0;
  opt.batch_size = 4;
  opt.path = FisherOptions::Path::kBatched;
  auto fast = estimate_fisher(model, data, opt);
  opt.path = FisherOptions::Path::kLoop;
  auto loop = estimate_fisher(model, data, opt);
  ASSERT_EQ(fast.size(), loop.size());
  for (const auto& [name, f] : loop) {
    const double scale = f.abs().max().item<double>();
    const double diff = (fast.at(name) - f).abs().max().item<double>();
    EXPECT_LE(diff, 1e-5 * scale + 1e-12) << name << " max " << scale;
    EXPECT_GT(scale, 0.0) << name;
  }
}

TEST(Consolidate, OnlineArithmetic) {
  EwcState prev;
  prev.fisher = {{"w", torch::tensor({1.0, 2.0})}};
  prev.anchor = {{"w", torch::tensor({0.0, 0.0})}};
  auto next = consolidate(&prev, {{"w", torch::tensor({3.0, 5.0})}}, {{"w", torch::tensor({7.0, 8.0})}}, 0.5);
  EXPECT_TRUE(torch::allclose(next.fisher.at("w"), torch::tensor({3.5, 6.0})));
  EXPECT_TRUE(torch::equal(next.anchor.at("w"), torch::tensor({7.0f, 8.0f})));
  EXPECT_EQ(next.rounds, 2);
  EXPECT_THROW(consolidate(&prev, {{"v", torch::tensor({1.0})}}, {{"v", torch::tensor({1.0})}}, 1.0),
               CheckpointError);
}

TEST(EwcFile, RoundTripAndMismatchErrors) {
  const auto dir = fs::temp_directory_path() / ("ewc_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  torch::manual_seed(4);
  Gpt model(tiny_config());
  TensorMap theta;
  for (const auto& p : model->named_parameters()) theta[p.key()] = p.value().detach();
  TensorMap fisher;
  for (const auto& [n, t] : theta) fisher[n] = torch::rand_like(t);
  auto state = consolidate(nullptr, fisher, theta, 0.9);
  state.estimator = "empirical";
  state.num_samples = 12;
  state.data_hash = "sha256:abc";
  const auto path = (dir / "ewc.safetensors").string();
  save_ewc(path, state);
  auto back = load_ewc(path, *model);
  EXPECT_EQ(back.estimator, "empirical");
  EXPECT_EQ(back.num_samples, 12);
  EXPECT_DOUBLE_EQ(back.gamma, 0.9);
  for (const auto& [n, f] : fisher) {
    EXPECT_TRUE(torch::equal(back.fisher.at(n), f)) << n;
    EXPECT_TRUE(torch::equal(back.anchor.at(n), theta.at(n))) << n;
  }
  // bf16 halves the file and stays within bf16 precision.
  const auto path16 = (dir / "ewc16.safetensors").string();
  save_ewc(path16, state, /*bf16=*/true);
  EXPECT_LT(fs::file_size(path16), fs::file_size(path) * 0.55);
  EXPECT_TRUE(torch::allclose(load_ewc(path16, *model).fisher.at("wte.weight"), fisher.at("wte.weight"), 1e-2, 1e-2));
  // A model of another shape: the error names the parameter.
  auto other_cfg = tiny_config();
  other_cfg.n_embd = 16;
  Gpt other(other_cfg);
  try {
    load_ewc(path, *other);
    FAIL() << "expected CheckpointError";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("wte.weight"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

// Training with the penalty as regularizer: λ = 0 is exactly no EWC; a huge λ pins θ to θ*.
TEST(EwcTraining, ZeroLambdaIsBitIdenticalAndHugeLambdaPins) {
  const auto data = tiny_chats(16);
  const auto run_root = fs::temp_directory_path() / ("ewc_train_" + std::to_string(::getpid()));
  TrainConfig cfg;
  cfg.max_steps = 40;
  cfg.batch_size = 4;
  cfg.lr = 1e-2;
  cfg.weight_decay = 0;
  cfg.log_every = 100;
  auto run = [&](std::optional<double> lambda, const std::string& name) {
    torch::manual_seed(5);
    Gpt model(tiny_config());
    TensorMap theta;
    for (const auto& p : model->named_parameters()) theta[p.key()] = p.value().detach().clone();
    TensorMap ones;
    for (const auto& [n, t] : theta) ones[n] = torch::ones_like(t);
    EwcState state = consolidate(nullptr, ones, theta, 1.0);
    TrainHooks hooks;
    if (lambda) hooks.regularizer = [&] { return ewc_penalty(*model, state, *lambda); };
    train(model, cfg, data, {}, (run_root / name).string(), false, hooks);
    TensorMap out;
    for (const auto& p : model->named_parameters()) out[p.key()] = p.value().detach().clone();
    return std::make_pair(out, theta);
  };
  auto [plain, theta] = run(std::nullopt, "plain");
  auto [zero, theta0] = run(0.0, "zero");
  auto [pinned, theta1] = run(1e6, "pinned");
  double moved_plain = 0, moved_pinned = 0;
  for (const auto& [n, t] : plain) {
    EXPECT_TRUE(torch::equal(t, zero.at(n))) << n;
    moved_plain = std::max(moved_plain, (t - theta.at(n)).abs().max().item<double>());
    moved_pinned = std::max(moved_pinned, (pinned.at(n) - theta.at(n)).abs().max().item<double>());
  }
  // AdamW normalises step sizes, so a steep penalty leaves an oscillation of about the final
  // learning rate (1e-3 after the cosine decay) around θ*, while plain training drifts away.
  EXPECT_GT(moved_plain, 5e-2);
  EXPECT_LT(moved_pinned, 5e-3);
  fs::remove_all(run_root);
}

}  // namespace
}  // namespace retain

namespace retain {
namespace {

// θ* equal to the weights beside ewc.safetensors is not stored twice; it comes back from them,
// and weights changed since then are refused.
TEST(EwcFile, AnchorEqualToTheWeightsIsNotStoredTwice) {
  testing_util::TempDir tmp;
  torch::manual_seed(4);
  torch::nn::Linear model(3, 2);
  TensorMap weights = parameter_tensors(*model);
  save_safetensors(tmp / "model.safetensors", weights);
  EwcState state;
  for (const auto& [name, w] : weights) {
    state.fisher[name] = torch::rand_like(w);
    state.anchor[name] = w.clone();
  }
  state.anchor["bias"] = state.anchor["bias"] + 1;  // this one differs: stored
  save_ewc(tmp / "ewc.safetensors", state);
  const auto file = load_safetensors(tmp / "ewc.safetensors");
  EXPECT_FALSE(file.tensors.count("anchor.weight"));
  EXPECT_TRUE(file.tensors.count("anchor.bias"));
  EXPECT_EQ(file.metadata.at("format_version"), "2");
  const EwcState back = load_ewc(tmp / "ewc.safetensors", *model);
  for (const auto& [name, a] : state.anchor) EXPECT_TRUE(torch::equal(back.anchor.at(name), a)) << name;
  for (const auto& [name, f] : state.fisher) EXPECT_TRUE(torch::equal(back.fisher.at(name), f)) << name;
  // The weights change: the stored hash no longer matches.
  weights["weight"] = weights["weight"] + 1;
  save_safetensors(tmp / "model.safetensors", weights);
  try {
    load_ewc(tmp / "ewc.safetensors", *model);
    ADD_FAILURE() << "changed weights were accepted as the anchor";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("changed since"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace retain
