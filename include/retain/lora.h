// LoRA (Hu et al. 2021): low-rank adapters on a model's linear projections. A projection y = W x
// (+ b) gains y += (alpha / r) · B A dropout(x) with A (r × in) and B (out × r); W stays frozen and
// only A and B train. Adapters live inside the model's module tree as children lora_A and lora_B
// of the Linear they adapt, so that their parameters are named as PEFT names them
// (<module>.lora_A.weight), the trainer, the checkpoints, the EWC penalty and the Fisher see them
// as the only trainable parameters, and captured_linear (capture.h) runs them for every family.
//
// A LoRA model directory (docs/formats.md, "LoRA adapter directories") is PEFT's layout —
// adapter_config.json and adapter_model.safetensors — plus retain_adapter.json naming the base
// model directory the adapter applies to.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "retain/checkpoint.h"

namespace retain {

// The `lora` section of a job or round config. rank 0 (no section) is full fine-tuning.
struct LoraConfig {
  int64_t rank = 0;
  double alpha = 16;   // the update is scaled by alpha / rank
  double dropout = 0;  // on the adapter's input, while training
  // Module names as Hugging Face's (q_proj, c_attn, …); a name matches a module whose name is it or
  // ends with "." + it. Empty: the family's default, every linear projection of attention and MLP.
  std::vector<std::string> target_modules;
  bool merge = false;  // the version is saved merged (a full model) instead of as an adapter

  bool enabled() const { return rank > 0; }
  double scale() const { return alpha / double(rank); }
  // Reads the section (ConfigError naming `what` and the key: unknown keys, rank ≤ 0 or over 4096,
  // a non-finite or non-positive alpha, dropout outside [0, 1), targets that are not names).
  static LoraConfig from_json(const nlohmann::json& j, const std::string& what);
  nlohmann::json to_json() const;  // {} when not enabled
  static const std::vector<std::string>& keys();
};

// Where a family's adapters go by default and how its module names map to Hugging Face's.
struct LoraLayout {
  std::vector<std::string> default_targets;  // q_proj, …, down_proj; c_attn, c_proj, c_fc
  std::string hf_prefix;                     // prepended to a module name ("transformer." for gpt)
  bool fan_in_fan_out = false;               // Hugging Face stores W as (in, out) (GPT-2's Conv1D)
};

// One factor of an adapter, registered under the Linear it adapts as lora_A (r × in) or lora_B
// (out × r). Each carries the adapter's scale and dropout.
class LoraFactorImpl : public torch::nn::Module {
 public:
  LoraFactorImpl(int64_t out_features, int64_t in_features, double scale, double dropout);
  torch::Tensor weight;
  double scale, dropout;
};
TORCH_MODULE(LoraFactor);

// scale · B(A(dropout(x))) when `layer` carries an adapter (recording A and B for the batched
// Fisher), else an undefined tensor. captured_linear adds it to the layer's output.
torch::Tensor lora_branch(const torch::nn::Module& layer, const torch::Tensor& x);

// An adapted Linear: its name in the module tree, the layer and its two factors.
struct LoraSite {
  std::string name;
  torch::nn::LinearImpl* layer;
  LoraFactorImpl* a;
  LoraFactorImpl* b;
};
// Every adapted Linear of `root`, in module order.
std::vector<LoraSite> lora_sites(torch::nn::Module& root);

// Adds a fresh adapter (A kaiming-uniform as PEFT initialises it, from `seed`; B zero, so the
// model's function is unchanged) to every Linear of `root` matching config's targets (the layout's
// default when it has none), and freezes every other parameter. ConfigError naming `what` for a
// target that matches no Linear. Returns the adapted modules' names, in module order.
std::vector<std::string> attach_lora(torch::nn::Module& root, const LoraConfig& config, const LoraLayout& layout,
                                     uint64_t seed, const std::string& what);
// Whether `root` carries adapters.
bool has_lora(torch::nn::Module& root);
// Whether `name` is an adapter parameter's (<module>.lora_A.weight or .lora_B.weight).
bool is_lora_parameter(const std::string& name);
// Folds every adapter into its Linear (W ← W + scale · B A, in W's dtype), removes the adapters and
// makes every parameter trainable again: the model then computes what it computed with them.
void merge_lora(torch::nn::Module& root);
// The adapter parameters by retain name (detached views).
TensorMap lora_parameters(torch::nn::Module& root);

// PEFT adapter directories.
inline constexpr const char* kAdapterConfigFile = "adapter_config.json";
inline constexpr const char* kAdapterWeightsFile = "adapter_model.safetensors";
inline constexpr const char* kAdapterBaseFile = "retain_adapter.json";

// Whether `dir` holds an adapter (adapter_config.json) rather than a full model.
bool is_adapter_dir(const std::string& dir);
// The base model directory of the retain adapter directory `dir`, from retain_adapter.json (a path
// relative to `dir`). CheckpointError naming the file when it is missing or malformed, or the base
// is not a directory.
std::string adapter_base_dir(const std::string& dir);
// The model directory whose config.json and tokenizer describe `dir`: the base for an adapter.
std::string config_dir(const std::string& dir);

struct AdapterFiles {
  LoraConfig config;  // r, lora_alpha, lora_dropout, target_modules of adapter_config.json
  TensorMap tensors;  // lora_A / lora_B weights by retain name
};
// Reads adapter_config.json of `dir` (CheckpointError naming the file and key: peft_type other
// than LORA, bias other than "none", DoRA, rsLoRA, per-module ranks, modules_to_save).
LoraConfig read_adapter_config(const std::string& dir, const LoraLayout& layout);
// read_adapter_config and adapter_model.safetensors (CheckpointError for tensors that are not
// lora_A / lora_B weights of the layout's prefix, not float, or not finite).
AdapterFiles read_adapter_files(const std::string& dir, const LoraLayout& layout);
// Copies `files`' tensors into the adapters of `root` (which must carry the same modules and
// shapes: CheckpointError naming `what` and the parameter otherwise).
void load_adapter(torch::nn::Module& root, const AdapterFiles& files, const std::string& what);

// Writes `root`'s adapters as a PEFT directory at `dir`, atomically: adapter_config.json
// (`base_model_name_or_path` as given), adapter_model.safetensors (fp32) and the extra `files`.
void write_adapter_dir(const std::string& dir, torch::nn::Module& root, const LoraConfig& config,
                       const LoraLayout& layout, const std::string& base_model_name_or_path,
                       const std::vector<std::pair<std::string, std::string>>& files, bool overwrite);
// Copies the adapter directory `adapter_dir` to `out_dir` as PEFT reads it (adapter_model.safetensors
// byte for byte, adapter_config.json with `base_model_name_or_path`), atomically.
void export_peft(const std::string& adapter_dir, const std::string& out_dir, const std::string& base_model_name_or_path,
                 bool overwrite);
// retain_adapter.json's text: {"format_version": 1, "base": `base_ref`} (`base_ref` relative to the
// adapter directory) plus `extra` keys.
std::string adapter_base_json(const std::string& base_ref, const nlohmann::json& extra = nlohmann::json::object());

}  // namespace retain
