// A decoder language model over token ids, as the chat families (gpt, llama) expose it to the
// training task, evaluation, generation and the Fisher, which are written once for all of them.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include <torch/torch.h>

namespace retain {

// Per-layer key/value cache for incremental decoding: k[l], v[l] are (B, H_kv, T_cached, D).
struct KVCache {
  std::vector<torch::Tensor> k, v;
  int64_t length() const { return k.empty() || !k[0].defined() ? 0 : k[0].size(2); }
};

class CausalLm {
 public:
  virtual ~CausalLm() = default;
  // The torch module whose parameters are the model's.
  virtual torch::nn::Module& lm_module() = 0;
  // idx: (B, T) int64 token ids, T ≤ context_length() → logits (B, T, V). While a CaptureScope
  // (capture.h) is alive and grad is on, records every layer whose parameters it trains.
  virtual torch::Tensor logits(const torch::Tensor& idx) = 0;
  // Incremental: idx (B, T) are the positions after cache.length(); appends to the cache.
  virtual torch::Tensor logits_cached(const torch::Tensor& idx, KVCache& cache) = 0;
  // Rows of the output: ids are in [0, vocab_size()).
  virtual int64_t vocab_size() const = 0;
  // The longest sequence the model reads (GPT-2's n_positions, Llama's max_position_embeddings).
  virtual int64_t context_length() const = 0;
  // The device of the model's parameters.
  torch::Device device();
};

// Causal softmax attention, scale 1/√D: q (B, H, Tq, D), k and v (B, H, Tk, D) with Tk ≥ Tq, the
// queries being the last Tq positions → (B, H, Tq, D). Fused scaled_dot_product_attention on
// LibTorch 2.x where its mask alignment is right (Tq == Tk, or one query); else the explicit form.
torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               double dropout, bool training);

// Per-token cross-entropy: logits (B, T, V), targets (B, T) → (B, T) fp32 losses.
torch::Tensor token_losses(const torch::Tensor& logits, const torch::Tensor& targets);
// Sum of the per-token losses where mask (B, T) is 1 — the numerator of the masked LM loss; the
// caller divides by the number of trained tokens of its normalisation window.
torch::Tensor masked_lm_loss_sum(const torch::Tensor& logits, const torch::Tensor& targets,
                                 const torch::Tensor& mask);

struct GenerateOptions {
  int64_t max_new_tokens = 64;
  double temperature = 0.0;  // 0 = greedy
  int64_t top_k = 0;         // 0 = no top-k filter
  std::optional<int64_t> stop_token;  // generation stops after emitting it (it is not returned)
  std::vector<int64_t> stop_tokens;   // more such tokens (the template's end of turn, eos ids)
  uint64_t seed = 0;         // for sampling
};

// Generates after `prompt` (non-empty) with a KV cache, one sequence. Returns only the new ids.
// The prompt is cut from the left when it exceeds the context; generation stops at its end.
std::vector<int64_t> generate(CausalLm& model, const std::vector<int64_t>& prompt,
                              const GenerateOptions& options);

}  // namespace retain
