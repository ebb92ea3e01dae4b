// AdamW and gradient clipping.
#include "retain/optimizer.h"

#include <cmath>

#include "retain/errors.h"

namespace retain {

AdamW::AdamW(std::vector<std::pair<std::string, torch::Tensor>> params, const AdamWOptions& options)
    : params_(std::move(params)), options_(options) {
  if (options.beta1 < 0 || options.beta1 >= 1 || options.beta2 < 0 || options.beta2 >= 1)
    throw ConfigError("AdamW betas must lie in [0, 1)");
  if (options.eps < 0 || options.weight_decay < 0)
    throw ConfigError("AdamW eps and weight_decay must not be negative");
  for (const auto& [name, p] : params_) {
    exp_avg_.push_back(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    exp_avg_sq_.push_back(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    decay_.push_back(p.dim() >= 2);
  }
}

void AdamW::step(double lr) {
  torch::NoGradGuard no_grad;
  ++step_;
  const double bias1 = 1.0 - std::pow(options_.beta1, double(step_));
  const double bias2 = 1.0 - std::pow(options_.beta2, double(step_));
  const double step_size = lr / bias1;
  const double bias2_sqrt = std::sqrt(bias2);
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& p = params_[i].second;
    const auto& g = p.grad();
    if (!g.defined()) continue;
    // Decoupled weight decay: θ ← θ (1 − lr·wd), before the Adam update, as torch.optim.AdamW.
    if (decay_[i] && options_.weight_decay > 0) p.mul_(1.0 - lr * options_.weight_decay);
    exp_avg_[i].mul_(options_.beta1).add_(g, 1.0 - options_.beta1);
    exp_avg_sq_[i].mul_(options_.beta2).addcmul_(g, g, 1.0 - options_.beta2);
    auto denom = (exp_avg_sq_[i].sqrt() / bias2_sqrt).add_(options_.eps);
    p.addcdiv_(exp_avg_[i], denom, -step_size);
  }
}

void AdamW::zero_grad() {
  for (auto& [name, p] : params_)
    if (p.grad().defined()) p.mutable_grad() = torch::Tensor();
}

TensorMap AdamW::state() const {
  TensorMap out;
  for (size_t i = 0; i < params_.size(); ++i) {
    out["exp_avg." + params_[i].first] = exp_avg_[i];
    out["exp_avg_sq." + params_[i].first] = exp_avg_sq_[i];
  }
  return out;
}

void AdamW::load_state(const TensorMap& state, int64_t steps, const std::string& what) {
  torch::NoGradGuard no_grad;
  auto restore = [&](const std::string& key, torch::Tensor& dst) {
    auto it = state.find(key);
    if (it == state.end()) throw CheckpointError(what + ": missing optimizer tensor " + key);
    if (it->second.sizes() != dst.sizes())
      throw CheckpointError(what + ": optimizer tensor " + key + " has shape " +
                            c10::str(it->second.sizes()) + ", expected " + c10::str(dst.sizes()));
    dst.copy_(it->second);
  };
  for (size_t i = 0; i < params_.size(); ++i) {
    restore("exp_avg." + params_[i].first, exp_avg_[i]);
    restore("exp_avg_sq." + params_[i].first, exp_avg_sq_[i]);
  }
  step_ = steps;
}

torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> sq;
  for (const auto& p : params)
    if (p.grad().defined()) sq.push_back(p.grad().pow(2).sum().to(torch::kFloat));
  if (sq.empty()) return torch::zeros({});
  auto norm = torch::stack(sq).sum().sqrt();
  if (max_norm > 0) {
    // Scale by min(1, max_norm / norm) on the device; a non-finite norm leaves the gradients
    // as they are (the step will be skipped).
    auto scale = torch::clamp_max(max_norm / (norm + 1e-6), 1.0);
    scale = torch::where(torch::isfinite(norm), scale, torch::ones_like(scale));
    for (const auto& p : params)
      if (p.grad().defined()) p.grad().mul_(scale.to(p.grad().dtype()));
  }
  return norm;
}

}  // namespace retain
