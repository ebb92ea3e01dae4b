// Model family `gpt`: GPT-2's architecture with Hugging Face GPT-2 parameter names, and model
// directories (config.json + model.safetensors + the tokenizer's file).
//
// Parameters are named as in Hugging Face's GPT2Model (wte, wpe, h.N.ln_1, h.N.attn.c_attn,
// h.N.attn.c_proj, h.N.ln_2, h.N.mlp.c_fc, h.N.mlp.c_proj, ln_f). Linear weights are stored
// [out, in] (torch's layout); Hugging Face's Conv1D stores [in, out], so exchange transposes them.
// The output projection is tied to wte.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "retain/causal_lm.h"
#include "retain/chat_task.h"
#include "retain/eval.h"
#include "retain/checkpoint.h"
#include "retain/tokenizer.h"

namespace retain {

// Hugging Face GPT-2 config keys. Unknown keys in config.json are ignored (Hugging Face configs
// carry many); the keys below are validated.
struct GptConfig {
  std::string model_type = "gpt2";
  int64_t vocab_size = 260;
  int64_t n_positions = 256;
  int64_t n_embd = 64;
  int64_t n_layer = 2;
  int64_t n_head = 2;
  double layer_norm_epsilon = 1e-5;
  double embd_pdrop = 0.0, attn_pdrop = 0.0, resid_pdrop = 0.0;  // dropout probabilities

  // Throws ConfigError naming `what` and the key when a key has the wrong type or value
  // (n_embd not divisible by n_head, a non-positive size, a probability outside [0, 1)).
  static GptConfig from_json(const nlohmann::json& j, const std::string& what);
  nlohmann::json to_json() const;
  // Number of trainable parameters (tied output counted once).
  int64_t num_parameters() const;
};

class CausalSelfAttentionImpl : public torch::nn::Module {
 public:
  explicit CausalSelfAttentionImpl(const GptConfig& c);
  // x: (B, T, C) → (B, T, C). With a cache, x holds the T newest positions and the cache grows.
  torch::Tensor forward(const torch::Tensor& x, torch::Tensor* cache_k = nullptr,
                        torch::Tensor* cache_v = nullptr);
  torch::nn::Linear c_attn{nullptr}, c_proj{nullptr};

 private:
  int64_t n_head_;
  double attn_pdrop_;
  torch::nn::Dropout resid_dropout_{nullptr};
};
TORCH_MODULE(CausalSelfAttention);

class MlpImpl : public torch::nn::Module {
 public:
  explicit MlpImpl(const GptConfig& c);
  torch::Tensor forward(const torch::Tensor& x);  // (B, T, C) → (B, T, C), GELU (tanh)
  torch::nn::Linear c_fc{nullptr}, c_proj{nullptr};

 private:
  torch::nn::Dropout dropout_{nullptr};
};
TORCH_MODULE(Mlp);

class BlockImpl : public torch::nn::Module {
 public:
  explicit BlockImpl(const GptConfig& c);
  torch::Tensor forward(const torch::Tensor& x, torch::Tensor* cache_k = nullptr,
                        torch::Tensor* cache_v = nullptr);
  torch::nn::LayerNorm ln_1{nullptr}, ln_2{nullptr};
  CausalSelfAttention attn{nullptr};
  Mlp mlp{nullptr};
};
TORCH_MODULE(Block);

class GptImpl : public torch::nn::Module, public CausalLm {
 public:
  // Initialises as GPT-2 does: normal(0, 0.02) weights, residual projections scaled by
  // 1/sqrt(2·n_layer), zero biases, unit LayerNorms. Seed torch first for reproducibility.
  explicit GptImpl(const GptConfig& c);
  // idx: (B, T) int64 token ids, T ≤ n_positions → logits (B, T, vocab_size).
  torch::Tensor forward(const torch::Tensor& idx);
  // Incremental forward: idx (B, T) are the positions after cache.length(); appends to the cache.
  torch::Tensor forward_cached(const torch::Tensor& idx, KVCache& cache);
  const GptConfig& config() const { return config_; }
  // CausalLm: forward, forward_cached and n_positions.
  torch::nn::Module& lm_module() override { return *this; }
  torch::Tensor logits(const torch::Tensor& idx) override { return forward(idx); }
  torch::Tensor logits_cached(const torch::Tensor& idx, KVCache& cache) override { return forward_cached(idx, cache); }
  int64_t context_length() const override { return config_.n_positions; }
  int64_t vocab_size() const override { return config_.vocab_size; }

  torch::nn::Embedding wte{nullptr}, wpe{nullptr};
  torch::nn::ModuleList h{nullptr};
  torch::nn::LayerNorm ln_f{nullptr};

 private:
  torch::Tensor run(const torch::Tensor& idx, KVCache* cache);
  GptConfig config_;
  torch::nn::Dropout drop_{nullptr};
};
TORCH_MODULE(Gpt);

// The chat-LM functions (causal_lm.h, eval.h, chat_task.h) on a GPT.
inline std::vector<int64_t> generate(Gpt& model, const std::vector<int64_t>& prompt, const GenerateOptions& options) {
  return generate(static_cast<CausalLm&>(*model), prompt, options);
}
inline LossStats evaluate_loss(Gpt& model, const std::vector<RenderedChat>& set, int64_t batch_size) {
  return evaluate_loss(static_cast<CausalLm&>(*model), set, batch_size);
}
inline EvalResult evaluate(Gpt& model, const Tokenizer& tokenizer, const std::vector<ChatExample>& examples,
                           const EvalOptions& options) {
  return evaluate(static_cast<CausalLm&>(*model), tokenizer, examples, options);
}
inline TrainSummary train(Gpt& model, const TrainConfig& config, const std::vector<RenderedChat>& train_set,
                          const std::vector<RenderedChat>& valid_set, const std::string& run_dir, bool resume,
                          const TrainHooks& hooks = {}) {
  return train(static_cast<CausalLm&>(*model), config, train_set, valid_set, run_dir, resume, hooks);
}
inline TensorMap estimate_fisher(Gpt& model, const std::vector<RenderedChat>& data, const FisherOptions& options) {
  return estimate_fisher(static_cast<CausalLm&>(*model), data, options);
}

struct LoadedModel {
  GptConfig config;
  Gpt model{nullptr};
  std::unique_ptr<Tokenizer> tokenizer;
  bool has_weights = false;  // false: a preset, freshly initialised with `init_seed`
};

// Loads DIR on CPU. Weights are loaded when DIR/model.safetensors exists; every parameter must be
// present with its shape (CheckpointError naming the parameter otherwise). Without weights the
// model is initialised from `init_seed`. Checks tokenizer vocab ≤ config vocab_size.
LoadedModel load_model_dir(const std::string& dir, uint64_t init_seed);

// Writes DIR atomically (temp folder, fsync, rename). Refuses an existing DIR unless `overwrite`.
void save_model_dir(const std::string& dir, const GptConfig& config, Gpt& model,
                    const Tokenizer& tokenizer, bool overwrite,
                    const nlohmann::json& card = nlohmann::json());

}  // namespace retain
