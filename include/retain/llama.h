// Model family `llama`: the decoder of Llama 3.x, SmolLM/SmolLM2, TinyLlama (model_type llama),
// Qwen2/2.5 (qwen2), Qwen3 (qwen3) and Mistral (mistral), following Hugging Face's modeling code:
// pre-RMSNorm blocks (fp32 normalisation), rotate-half RoPE (default, linear and llama3 scaling),
// grouped-query attention, optional q/k/v(/o) and MLP biases, Qwen3's per-head q/k norms, a SwiGLU
// MLP, a tied or untied head. Parameters carry Hugging Face's names (model.embed_tokens.weight,
// model.layers.N.self_attn.q_proj.weight, …, lm_head.weight), so that a version folder of this
// family is a Hugging Face directory (docs/formats.md, "Llama-family directories").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "retain/causal_lm.h"
#include "retain/checkpoint.h"

namespace retain {

// config.json of one of the four model types, validated. Keys Hugging Face's config classes
// default are defaulted the same way (LlamaConfig, Qwen2Config, Qwen3Config, MistralConfig).
struct LlamaConfig {
  std::string model_type = "llama";  // llama | qwen2 | qwen3 | mistral
  int64_t vocab_size = 32000;
  int64_t hidden_size = 4096;
  int64_t intermediate_size = 11008;
  int64_t num_hidden_layers = 32;
  int64_t num_attention_heads = 32;
  int64_t num_key_value_heads = 32;
  int64_t head_dim = 128;
  int64_t max_position_embeddings = 2048;
  int64_t sliding_window = 0;  // mistral: the window (0: none); the context is cut to it
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000;
  struct Rope {
    std::string type = "default";  // default | linear | llama3
    double factor = 1;
    double low_freq_factor = 1, high_freq_factor = 4;  // llama3
    int64_t original_max_position_embeddings = 0;      // llama3
  } rope;
  bool qkv_bias = false;   // q/k/v projections (qwen2 always; attention_bias elsewhere)
  bool o_bias = false;     // o_proj (attention_bias for llama and qwen3)
  bool mlp_bias = false;   // gate/up/down (llama's mlp_bias)
  bool qk_norm = false;    // qwen3's q_norm / k_norm
  bool tie_word_embeddings = false;
  std::string dtype = "float32";  // torch_dtype / dtype: the dtype versions store weights in
  nlohmann::json source;          // config.json as read, written back unchanged

  // Validates `j` (ConfigError naming `what` and the key, with the value): refuses MoE
  // (num_experts, num_local_experts), quantized checkpoints (quantization_config), hidden_act other
  // than silu, rope types other than default / linear / llama3, Qwen's sliding-window layers,
  // attention dropout, impossible sizes. Reads rope_theta / rope_scaling and transformers v5's
  // rope_parameters.
  static LlamaConfig from_json(const nlohmann::json& j, const std::string& what);
  // The longest context: max_position_embeddings, or Mistral's sliding_window when smaller (where
  // sliding-window attention equals full attention).
  int64_t context_length() const;
  int64_t num_parameters() const;
};

// The rotary inverse frequencies (head_dim / 2, fp32) with the config's scaling.
torch::Tensor rope_inv_freq(const LlamaConfig& config);

// RMSNorm: w · x / √(mean(x²) + eps) over the last dimension, normalised in fp32 and cast back
// before the weight multiplies. Recorded for the batched Fisher.
class RmsNormImpl : public torch::nn::Module {
 public:
  RmsNormImpl(int64_t size, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;
  double eps;
};
TORCH_MODULE(RmsNorm);

class LlamaAttentionImpl : public torch::nn::Module {
 public:
  explicit LlamaAttentionImpl(const LlamaConfig& c);
  // x (B, T, C), cos/sin (T, head_dim) → (B, T, C); a cache holds (B, H_kv, T_past, D).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        torch::Tensor* cache_k, torch::Tensor* cache_v);
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  RmsNorm q_norm{nullptr}, k_norm{nullptr};  // qwen3 only

 private:
  int64_t heads_, kv_heads_, head_dim_;
};
TORCH_MODULE(LlamaAttention);

class LlamaMlpImpl : public torch::nn::Module {
 public:
  explicit LlamaMlpImpl(const LlamaConfig& c);
  torch::Tensor forward(const torch::Tensor& x);  // down(silu(gate(x)) · up(x))
  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(LlamaMlp);

class LlamaLayerImpl : public torch::nn::Module {
 public:
  explicit LlamaLayerImpl(const LlamaConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        torch::Tensor* cache_k, torch::Tensor* cache_v);
  RmsNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  LlamaAttention self_attn{nullptr};
  LlamaMlp mlp{nullptr};
};
TORCH_MODULE(LlamaLayer);

// Hugging Face's LlamaModel: the part under the "model." prefix.
class LlamaBodyImpl : public torch::nn::Module {
 public:
  explicit LlamaBodyImpl(const LlamaConfig& c);
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RmsNorm norm{nullptr};
};
TORCH_MODULE(LlamaBody);

class LlamaImpl : public torch::nn::Module, public CausalLm {
 public:
  // Initialises normal(0, 0.02) linears and embeddings, zero biases, unit norms (seed torch first).
  explicit LlamaImpl(const LlamaConfig& c);
  torch::Tensor forward(const torch::Tensor& idx);  // (B, T) ids → (B, T, vocab_size) logits
  torch::Tensor forward_cached(const torch::Tensor& idx, KVCache& cache);
  const LlamaConfig& config() const { return config_; }
  torch::nn::Module& lm_module() override { return *this; }
  torch::Tensor logits(const torch::Tensor& idx) override { return forward(idx); }
  torch::Tensor logits_cached(const torch::Tensor& idx, KVCache& cache) override { return forward_cached(idx, cache); }
  int64_t context_length() const override { return config_.context_length(); }
  int64_t vocab_size() const override { return config_.vocab_size; }

  LlamaBody model{nullptr};
  torch::nn::Linear lm_head{nullptr};  // untied only

 private:
  torch::Tensor run(const torch::Tensor& idx, KVCache* cache);
  LlamaConfig config_;
  torch::Tensor inv_freq_;  // buffer, not a parameter
};
TORCH_MODULE(Llama);

// The tensors a config needs, by Hugging Face name, with their shapes.
std::vector<std::pair<std::string, std::vector<int64_t>>> llama_tensor_shapes(const LlamaConfig& config);

}  // namespace retain
