// AdamW (Loshchilov & Hutter 2019) with decoupled weight decay, its state kept by parameter name
// so that checkpoints are self-describing safetensors files and resume is bit-exact.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "retain/checkpoint.h"

namespace retain {

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01;
};

class AdamW {
 public:
  // `params`: (name, tensor) pairs; tensors of dimension < 2 (biases, LayerNorm weights) get no
  // weight decay. Throws ConfigError on a beta outside [0, 1) or a negative eps / decay.
  AdamW(std::vector<std::pair<std::string, torch::Tensor>> params, const AdamWOptions& options);
  // One update from the parameters' .grad() with learning rate `lr`; parameters without a gradient
  // are left alone. Same arithmetic as torch.optim.AdamW (single-tensor path).
  void step(double lr);
  void zero_grad();
  int64_t steps() const { return step_; }
  // "exp_avg.<name>", "exp_avg_sq.<name>" for every parameter.
  TensorMap state() const;
  // Restores moments and the step count; CheckpointError naming the tensor on a missing or
  // mis-shaped entry.
  void load_state(const TensorMap& state, int64_t steps, const std::string& what);
  const std::vector<std::pair<std::string, torch::Tensor>>& params() const { return params_; }

 private:
  std::vector<std::pair<std::string, torch::Tensor>> params_;
  std::vector<torch::Tensor> exp_avg_, exp_avg_sq_;
  std::vector<bool> decay_;
  AdamWOptions options_;
  int64_t step_ = 0;
};

// Global L2 norm of the gradients; when finite and above max_norm (> 0), scales them to max_norm.
// Returns the norm before clipping as a 0-dim tensor on the gradients' device (no host sync).
torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm);

}  // namespace retain
