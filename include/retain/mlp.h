// Model family `mlp`: a fully connected classifier on feature vectors (input → hidden ReLU layers
// → class logits), its model directories, and its exact per-example Fisher.
//
// Parameters are named layers.<i>.weight / layers.<i>.bias, i = 0 for the first hidden layer and
// hidden_sizes.size() for the output layer; weights are [out, in]. The class is MlpClassifier
// because `Mlp` is already the GPT block's feed-forward module (model.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "retain/checkpoint.h"
#include "retain/eval.h"
#include "retain/ewc.h"
#include "retain/features.h"
#include "retain/replay_row.h"
#include "retain/trainer.h"

namespace retain {

// config.json of an mlp model directory: {"model_type": "mlp", "input_size": 784,
// "hidden_sizes": [400, 400], "num_classes": 10, "activation": "relu"}.
struct MlpConfig {
  int64_t input_size = 784;
  std::vector<int64_t> hidden_sizes = {400, 400};
  int64_t num_classes = 10;

  // Unknown keys, a model_type other than "mlp", an activation other than "relu", or a
  // non-positive size throw ConfigError naming `what` and the key. Missing keys keep the defaults.
  static MlpConfig from_json(const nlohmann::json& j, const std::string& what);
  nlohmann::json to_json() const;
  int64_t num_parameters() const;
};

class MlpClassifierImpl : public torch::nn::Module {
 public:
  // PyTorch's default Linear initialisation; seed torch first for reproducibility.
  explicit MlpClassifierImpl(const MlpConfig& config);
  // x: (B, input_size) float → logits (B, num_classes).
  torch::Tensor forward(const torch::Tensor& x);
  // The same forward, also returning every Linear's input (B, in) and output (B, out), in order —
  // what the per-example Fisher needs (outputs stay in the graph).
  torch::Tensor forward_recorded(const torch::Tensor& x, std::vector<torch::Tensor>& inputs,
                                 std::vector<torch::Tensor>& outputs);
  const MlpConfig& config() const { return config_; }

  torch::nn::ModuleList layers{nullptr};

 private:
  MlpConfig config_;
};
TORCH_MODULE(MlpClassifier);

// Logits with the classes outside `allowed` set to −inf, so that softmax, argmax and the loss see
// only the allowed classes (task-incremental heads). allowed: (B, C) or (C) bool; undefined = all.
torch::Tensor mask_logits(const torch::Tensor& logits, const torch::Tensor& allowed);

// Per-example cross-entropy: logits (B, C), labels (B) int64 → (B) losses, over the allowed
// classes only when `allowed` is defined.
torch::Tensor classifier_losses(const torch::Tensor& logits, const torch::Tensor& labels,
                                const torch::Tensor& allowed = {});

// Diagonal Fisher of the classifier on x (N, input_size), labels y (N), by parameter name (fp32).
// `allowed` (N, C) or (C) restricts the output classes as in classifier_losses. options.path:
// kLoop → estimate_fisher_loop (one backward per example, the reference); kBatched and kAuto →
// one backward pass per batch of options.batch_size examples, with the exact per-example squared
// gradients of every Linear: for example n with input x_n and output gradient g_n the weight
// gradient is g_n x_nᵀ, so Σ_n (g_n x_nᵀ)² = (g²)ᵀ (x²) and the bias gets Σ_n g_n². Both paths use
// the same examples (fisher_sample_indices). Estimators: empirical (the given labels), true
// (labels drawn from the model's softmax, options.samples_per_example draws each), batch (squared
// mini-batch gradients × batch size, always through the loop). The model runs in eval mode and its
// gradients are left undefined. Throws TrainingError when a value is not finite.
TensorMap estimate_mlp_fisher(MlpClassifier& model, const torch::Tensor& x, const torch::Tensor& y,
                              const FisherOptions& options, const torch::Tensor& allowed = {});

// A model directory of the mlp family: config.json + model.safetensors (+ card.json), written
// atomically (temp folder, fsync, rename); an existing DIR is refused unless `overwrite`.
void save_mlp_dir(const std::string& dir, const MlpConfig& config, MlpClassifier& model, bool overwrite,
                  const nlohmann::json& card = nlohmann::json());

struct LoadedMlp {
  MlpConfig config;
  MlpClassifier model{nullptr};
  bool has_weights = false;  // false: initialised from `init_seed`
};
// Loads DIR on CPU (CheckpointError when it is not an mlp directory or a parameter is missing or
// has the wrong shape; ConfigError for a bad config).
LoadedMlp load_mlp_dir(const std::string& dir, uint64_t init_seed);

// Whether DIR/config.json declares "model_type": "mlp" (false when it is absent or unreadable: the
// gpt loader then reports the problem).
bool is_mlp_dir(const std::string& dir);
// DIR's mlp config read from config.json alone (no weights), or nullopt when DIR is not of the mlp
// family. ConfigError for a bad mlp config.
std::optional<MlpConfig> read_mlp_config(const std::string& dir);

// Feature data for a classifier of `config`: `path` is feature JSONL, or an IDX image file whose
// labels are the IDX file `labels_path`. DataError naming the file when there is no labels file for
// IDX images, a feature count differs from config.input_size, or a label is ≥ num_classes.
FeatureSet read_features(const std::string& path, const std::string& labels_path, const MlpConfig& config);

// Loss (mean cross-entropy per example), perplexity exp(loss) and accuracy of the classifier on a
// feature set, in batches on the model's device, under NoGradGuard and eval mode (restored after).
LossStats evaluate_classifier(MlpClassifier& model, const FeatureSet& set, int64_t batch_size);

// The mlp family through the trainer (trainer.h): mean cross-entropy over examples, every example
// one trained unit (lengths 1), validation by evaluate_classifier. Holds references: the model and
// the sets must outlive it.
class FeatureTask : public TrainTask {
 public:
  FeatureTask(MlpClassifier& model, const FeatureSet& train, const FeatureSet& valid);
  torch::nn::Module& module() override { return *model_; }
  std::vector<int64_t> lengths() const override;
  Batch batch(const std::vector<int64_t>& indices, bool pin) const override;
  torch::Tensor loss_sum(const Batch& batch) override;
  std::optional<ValidLog> validate(int64_t batch_size) override;

 private:
  MlpClassifier& model_;
  const FeatureSet& train_;
  const FeatureSet& valid_;
};

// The mlp family's replay-buffer rows: {"features": [...], "label": k} per example, topic
// "class k", tokens = the feature count, the hash over the line.
std::vector<ReplayRow> feature_replay_rows(const FeatureSet& set);

}  // namespace retain
