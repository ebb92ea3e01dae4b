// What every decoder LM shares (see causal_lm.h): the per-token loss and generation with a KV cache.
#include "retain/causal_lm.h"

#include <ATen/CPUGeneratorImpl.h>

#include <torch/version.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace retain {

torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, double dropout, bool training) {
  const int64_t tq = q.size(2), tk = k.size(2);
#if TORCH_VERSION_MAJOR >= 2
  // Fused kernels (flash / memory-efficient) where LibTorch has them. is_causal aligns the mask
  // top-left, which is right only when Tq == Tk; a single new query sees every cached key.
  if (tq == tk || tq == 1)
    return at::scaled_dot_product_attention(q, k, v, {}, training ? dropout : 0.0,
                                            /*is_causal=*/tq == tk);
#endif
  auto att = torch::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(double(q.size(-1))));
  if (tq > 1) {
    auto mask = torch::ones({tq, tk}, torch::TensorOptions().dtype(torch::kBool).device(q.device()))
                    .triu(tk - tq + 1);
    att = att.masked_fill(mask, -std::numeric_limits<float>::infinity());
  }
  att = torch::softmax(att, -1);
  if (training && dropout > 0) att = torch::dropout(att, dropout, true);
  return torch::matmul(att, v);
}

torch::Device CausalLm::device() {
  for (const auto& p : lm_module().parameters()) return p.device();
  return torch::kCPU;
}

torch::Tensor token_losses(const torch::Tensor& logits, const torch::Tensor& targets) {
  const int64_t B = logits.size(0), T = logits.size(1), V = logits.size(2);
  auto flat = torch::nn::functional::cross_entropy(
      logits.reshape({B * T, V}).to(torch::kFloat), targets.reshape({B * T}),
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
  return flat.view({B, T});
}

torch::Tensor masked_lm_loss_sum(const torch::Tensor& logits, const torch::Tensor& targets,
                                 const torch::Tensor& mask) {
  return (token_losses(logits, targets) * mask).sum();
}

std::vector<int64_t> generate(CausalLm& model, const std::vector<int64_t>& prompt,
                              const GenerateOptions& options) {
  TORCH_CHECK(!prompt.empty(), "generate needs a non-empty prompt");
  torch::NoGradGuard no_grad;
  torch::nn::Module& module = model.lm_module();
  const bool was_training = module.is_training();
  module.eval();
  const int64_t n_positions = model.context_length();
  const auto device = model.device();
  std::vector<int64_t> context(prompt.end() - std::min<int64_t>(prompt.size(), n_positions - 1),
                               prompt.end());
  auto gen = at::detail::createCPUGenerator(options.seed);
  KVCache cache;
  std::vector<int64_t> out;
  auto input = torch::tensor(context, torch::kLong).view({1, -1}).to(device);
  while (static_cast<int64_t>(out.size()) < options.max_new_tokens &&
         cache.length() + input.size(1) <= n_positions) {
    auto logits = model.logits_cached(input, cache).select(1, -1).squeeze(0).to(torch::kFloat).cpu();
    int64_t next;
    if (options.temperature <= 0) {
      next = logits.argmax().item<int64_t>();
    } else {
      logits = logits / options.temperature;
      if (options.top_k > 0 && options.top_k < logits.size(0)) {
        auto kth = std::get<0>(logits.topk(options.top_k)).min();
        logits = logits.masked_fill(logits < kth, -std::numeric_limits<float>::infinity());
      }
      next = torch::multinomial(torch::softmax(logits, -1), 1, false, gen).item<int64_t>();
    }
    if (options.stop_token && next == *options.stop_token) break;
    if (std::find(options.stop_tokens.begin(), options.stop_tokens.end(), next) != options.stop_tokens.end()) break;
    out.push_back(next);
    input = torch::tensor({next}, torch::kLong).view({1, 1}).to(device);
  }
  if (was_training) module.train();
  return out;
}

}  // namespace retain
