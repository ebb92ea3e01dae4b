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

// Activation capture for per-example gradients (the fast Fisher in ewc.h). While a CaptureScope
// is alive on this thread, every forward pass that requires grad records, for each Linear and
// LayerNorm, its input and its output (in the graph: the Fisher takes the gradient with respect to
// it), plus the embedding sum wte(idx) + wpe(pos)
// (input: idx) and the final hidden state before the tied output projection (output: logits).
struct LayerCapture {
  enum class Kind { kLinear, kLayerNorm, kEmbeddings, kOutput };
  Kind kind;
  const torch::nn::Module* module;  // the Linear / LayerNorm / Gpt module
  torch::Tensor input;              // detached
  torch::Tensor output;             // in the autograd graph
};

class CaptureScope {
 public:
  CaptureScope();
  ~CaptureScope();
  CaptureScope(const CaptureScope&) = delete;
  CaptureScope& operator=(const CaptureScope&) = delete;
  std::vector<LayerCapture>& records() { return records_; }

 private:
  std::vector<LayerCapture> records_;
  std::vector<LayerCapture>* previous_;
};

// Per-layer key/value cache for incremental decoding: k[l], v[l] are (B, H, T_cached, D).
struct KVCache {
  std::vector<torch::Tensor> k, v;
  int64_t length() const { return k.empty() || !k[0].defined() ? 0 : k[0].size(2); }
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

class GptImpl : public torch::nn::Module {
 public:
  // Initialises as GPT-2 does: normal(0, 0.02) weights, residual projections scaled by
  // 1/sqrt(2·n_layer), zero biases, unit LayerNorms. Seed torch first for reproducibility.
  explicit GptImpl(const GptConfig& c);
  // idx: (B, T) int64 token ids, T ≤ n_positions → logits (B, T, vocab_size).
  torch::Tensor forward(const torch::Tensor& idx);
  // Incremental forward: idx (B, T) are the positions after cache.length(); appends to the cache.
  torch::Tensor forward_cached(const torch::Tensor& idx, KVCache& cache);
  const GptConfig& config() const { return config_; }

  torch::nn::Embedding wte{nullptr}, wpe{nullptr};
  torch::nn::ModuleList h{nullptr};
  torch::nn::LayerNorm ln_f{nullptr};

 private:
  torch::Tensor run(const torch::Tensor& idx, KVCache* cache);
  GptConfig config_;
  torch::nn::Dropout drop_{nullptr};
};
TORCH_MODULE(Gpt);

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
  uint64_t seed = 0;         // for sampling
};

// Generates after `prompt` (non-empty) with a KV cache, one sequence. Returns only the new ids.
// The prompt is cut from the left when it exceeds n_positions; generation stops at n_positions.
std::vector<int64_t> generate(Gpt& model, const std::vector<int64_t>& prompt,
                              const GenerateOptions& options);

// Detached views of a module's parameters by name (no copy).
TensorMap parameter_tensors(torch::nn::Module& module);

// Copies `tensors` into the module's parameters of the same names. Every parameter must be present
// with its shape: CheckpointError "<what>: missing parameter P" / "… parameter P has shape …".
void load_parameters(torch::nn::Module& module, const TensorMap& tensors, const std::string& what);

// A model directory: config.json (+ model.safetensors) (+ retain_tokenizer.json).
inline constexpr const char* kConfigFile = "config.json";
inline constexpr const char* kWeightsFile = "model.safetensors";

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

// Writes a model directory atomically (temp folder, fsync, rename): model.safetensors with the
// parameters of `module` (fp32, CPU) and each {file name, text} of `files`. Refuses an existing
// DIR unless `overwrite` (CheckpointError); a failure leaves no temp folder behind.
void write_model_dir(const std::string& dir, torch::nn::Module& module,
                     const std::vector<std::pair<std::string, std::string>>& files, bool overwrite);

// Writes DIR atomically (temp folder, fsync, rename). Refuses an existing DIR unless `overwrite`.
void save_model_dir(const std::string& dir, const GptConfig& config, Gpt& model,
                    const Tokenizer& tokenizer, bool overwrite,
                    const nlohmann::json& card = nlohmann::json());

}  // namespace retain
