// Tests of retain::AdamW and clip_grad_norm (optimizer.h): AdamW against LibTorch's own
// torch::optim::AdamW with the same parameter groups, the decay rule, state round trips, and
// clipping against norms computed by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "retain/errors.h"
#include "retain/optimizer.h"

namespace retain {
namespace {

using Named = std::vector<std::pair<std::string, torch::Tensor>>;

// Parameters of mixed rank, as in a model: two matrices, a bias-like vector, a scalar-like vector.
Named random_params(uint64_t seed) {
  torch::manual_seed(seed);
  return {{"w1", torch::randn({4, 3})},
          {"b1", torch::randn({3})},
          {"w2", torch::randn({2, 5})},
          {"g", torch::randn({1})}};
}

Named clone_params(const Named& params) {
  Named out;
  for (const auto& [name, p] : params) out.emplace_back(name, p.detach().clone().requires_grad_(true));
  return out;
}

void set_grads(const Named& params, const std::vector<torch::Tensor>& grads) {
  for (size_t i = 0; i < params.size(); ++i) params[i].second.mutable_grad() = grads[i].clone();
}

std::vector<torch::Tensor> random_grads(const Named& params) {
  std::vector<torch::Tensor> grads;
  for (const auto& [name, p] : params) grads.push_back(torch::randn_like(p));
  return grads;
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

TEST(AdamW, MatchesTorchOptimAdamWWithNoDecayOnVectors) {
  const AdamWOptions options{0.9, 0.95, 1e-8, 0.1};
  Named ours = clone_params(random_params(1));
  Named theirs = clone_params(ours);
  AdamW adamw(ours, options);

  // torch's AdamW with two groups: decay on matrices, none on vectors (what retain does by rank).
  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& [name, p] : theirs) (p.dim() >= 2 ? decay : no_decay).push_back(p);
  auto group_options = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(1e-2).betas({options.beta1, options.beta2}).eps(options.eps)
            .weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, group_options(options.weight_decay));
  groups.emplace_back(no_decay, group_options(0.0));
  torch::optim::AdamW reference(groups, torch::optim::AdamWOptions(1e-2));

  torch::manual_seed(2);
  for (int step = 0; step < 5; ++step) {
    const double lr = 1e-2 * (1.0 + step);  // a changing learning rate, as a schedule gives
    for (auto& g : reference.param_groups())
      static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
    const auto grads = random_grads(ours);
    set_grads(ours, grads);
    set_grads(theirs, grads);
    adamw.step(lr);
    reference.step();
  }
  EXPECT_EQ(adamw.steps(), 5);
  for (size_t i = 0; i < ours.size(); ++i) {
    EXPECT_LT(max_abs_diff(ours[i].second, theirs[i].second), 1e-6) << ours[i].first;
    // The parameters moved, so the comparison is not between two untouched copies.
    EXPECT_GT(max_abs_diff(ours[i].second, random_params(1)[i].second), 1e-3) << ours[i].first;
  }
}

TEST(AdamW, DecaysMatricesButNotVectors) {
  // With zero gradients the Adam term is exactly 0, leaving only the decay θ ← θ (1 − lr·wd).
  Named params = clone_params(random_params(3));
  const Named start = clone_params(params);
  AdamW adamw(params, {0.9, 0.999, 1e-8, 0.5});
  for (int step = 0; step < 3; ++step) {
    for (auto& [name, p] : params) p.mutable_grad() = torch::zeros_like(p);
    adamw.step(0.1);
  }
  const double factor = std::pow(1.0 - 0.1 * 0.5, 3);
  for (size_t i = 0; i < params.size(); ++i) {
    const auto& p = params[i].second;
    if (p.dim() >= 2)
      EXPECT_LT(max_abs_diff(p, start[i].second * factor), 1e-6) << params[i].first;
    else
      EXPECT_TRUE(torch::equal(p, start[i].second)) << params[i].first;
  }
}

TEST(AdamW, LeavesParametersWithoutGradientAlone) {
  Named params = clone_params(random_params(4));
  const Named start = clone_params(params);
  AdamW adamw(params, {});
  params[0].second.mutable_grad() = torch::ones_like(params[0].second);
  adamw.step(0.1);
  EXPECT_FALSE(torch::equal(params[0].second, start[0].second));
  for (size_t i = 1; i < params.size(); ++i)
    EXPECT_TRUE(torch::equal(params[i].second, start[i].second)) << params[i].first;
  adamw.zero_grad();
  EXPECT_FALSE(params[0].second.grad().defined());
}

TEST(AdamW, StateRoundTripContinuesIdentically) {
  Named a = clone_params(random_params(5));
  AdamW first(a, {0.9, 0.99, 1e-6, 0.05});
  torch::manual_seed(6);
  for (int step = 0; step < 3; ++step) {
    set_grads(a, random_grads(a));
    first.step(3e-2);
  }
  // A second optimizer on copies of the parameters, restored from the first one's state.
  Named b = clone_params(a);
  AdamW second(b, {0.9, 0.99, 1e-6, 0.05});
  TensorMap state;
  for (const auto& [key, t] : first.state()) state[key] = t.clone();
  EXPECT_EQ(state.size(), 2 * a.size());
  EXPECT_TRUE(state.count("exp_avg.w1") && state.count("exp_avg_sq.g"));
  second.load_state(state, first.steps(), "opt.safetensors");
  EXPECT_EQ(second.steps(), 3);
  for (int step = 0; step < 2; ++step) {
    const auto grads = random_grads(a);
    set_grads(a, grads);
    set_grads(b, grads);
    first.step(3e-2);
    second.step(3e-2);
  }
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
}

TEST(AdamW, LoadStateRejectsMissingAndMisShapedTensors) {
  Named params = clone_params(random_params(7));
  AdamW adamw(params, {});
  TensorMap state = adamw.state();
  state["exp_avg_sq.w2"] = torch::zeros({5, 2});
  try {
    adamw.load_state(state, 1, "opt.safetensors");
    ADD_FAILURE() << "accepted a mis-shaped moment";
  } catch (const CheckpointError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("opt.safetensors"), std::string::npos) << msg;
    EXPECT_NE(msg.find("exp_avg_sq.w2"), std::string::npos) << msg;
  }
  state = adamw.state();
  state.erase("exp_avg.b1");
  try {
    adamw.load_state(state, 1, "opt.safetensors");
    ADD_FAILURE() << "accepted a missing moment";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("missing optimizer tensor exp_avg.b1"), std::string::npos)
        << e.what();
  }
}

TEST(AdamW, RejectsBadOptions) {
  EXPECT_THROW(AdamW(random_params(8), {1.0, 0.999, 1e-8, 0.01}), ConfigError);
  EXPECT_THROW(AdamW(random_params(8), {0.9, -0.1, 1e-8, 0.01}), ConfigError);
  EXPECT_THROW(AdamW(random_params(8), {0.9, 0.999, -1e-8, 0.01}), ConfigError);
  EXPECT_THROW(AdamW(random_params(8), {0.9, 0.999, 1e-8, -0.01}), ConfigError);
}

// ---------------------------------------------------------------------------------------------
// clip_grad_norm

// Two parameters with gradients (3, 4) and (12): global norm √(9 + 16 + 144) = 13.
std::vector<torch::Tensor> params_with_grads() {
  auto a = torch::zeros({2}, torch::requires_grad());
  auto b = torch::zeros({1, 1}, torch::requires_grad());
  auto none = torch::zeros({3}, torch::requires_grad());  // no gradient: ignored
  a.mutable_grad() = torch::tensor({3.f, 4.f});
  b.mutable_grad() = torch::tensor({{12.f}});
  return {a, b, none};
}

TEST(ClipGradNorm, ReturnsTheGlobalNormAndLeavesSmallGradients) {
  auto params = params_with_grads();
  const auto norm = clip_grad_norm(params, 26.0);
  EXPECT_EQ(norm.dim(), 0);
  EXPECT_NEAR(norm.item<double>(), 13.0, 1e-6);
  EXPECT_TRUE(torch::equal(params[0].grad(), torch::tensor({3.f, 4.f})));
  EXPECT_TRUE(torch::equal(params[1].grad(), torch::tensor({{12.f}})));
  EXPECT_FALSE(params[2].grad().defined());
  // max_norm 0 disables clipping but still measures.
  EXPECT_NEAR(clip_grad_norm(params, 0.0).item<double>(), 13.0, 1e-6);
  EXPECT_TRUE(torch::equal(params[1].grad(), torch::tensor({{12.f}})));
}

TEST(ClipGradNorm, ScalesLargeGradientsToMaxNorm) {
  auto params = params_with_grads();
  const auto norm = clip_grad_norm(params, 6.5);
  EXPECT_NEAR(norm.item<double>(), 13.0, 1e-6);  // the norm before clipping
  EXPECT_LT(max_abs_diff(params[0].grad(), torch::tensor({1.5f, 2.f})), 1e-6);
  EXPECT_LT(max_abs_diff(params[1].grad(), torch::tensor({{6.f}})), 1e-6);
  EXPECT_NEAR(clip_grad_norm(params, 0.0).item<double>(), 6.5, 1e-5);
}

TEST(ClipGradNorm, NonFiniteNormLeavesGradientsUntouched) {
  for (const float bad :
       {std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()}) {
    auto params = params_with_grads();
    params[1].mutable_grad() = torch::tensor({{bad}});
    const auto norm = clip_grad_norm(params, 1.0);
    EXPECT_FALSE(std::isfinite(norm.item<double>()));
    EXPECT_TRUE(torch::equal(params[0].grad(), torch::tensor({3.f, 4.f}))) << bad;
    EXPECT_EQ(std::isnan(bad), std::isnan(params[1].grad().item<float>()));
    EXPECT_EQ(std::isinf(bad), std::isinf(params[1].grad().item<float>()));
  }
}

TEST(ClipGradNorm, NoGradientsGivesZero) {
  std::vector<torch::Tensor> params = {torch::ones({2}, torch::requires_grad())};
  EXPECT_EQ(clip_grad_norm(params, 1.0).item<double>(), 0.0);
}

}  // namespace
}  // namespace retain
