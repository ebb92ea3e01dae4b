// The mlp family on feature data through the library's trainer and evaluation (see mlp.h).
#include <algorithm>
#include <cmath>
#include <filesystem>

#include "retain/config.h"
#include "retain/errors.h"
#include "retain/mlp.h"

namespace retain {

namespace fs = std::filesystem;

bool is_mlp_dir(const std::string& dir) {
  try {
    const nlohmann::json j = load_json_file((fs::path(dir) / "config.json").string());
    return j.is_object() && j.value("model_type", "") == "mlp";
  } catch (const std::exception&) {
    return false;
  }
}

std::optional<MlpConfig> read_mlp_config(const std::string& dir) {
  if (!is_mlp_dir(dir)) return std::nullopt;
  const std::string path = (fs::path(dir) / "config.json").string();
  return MlpConfig::from_json(load_json_file(path), path);
}

FeatureSet read_features(const std::string& path, const std::string& labels_path, const MlpConfig& config) {
  FeatureSet set;
  if (!labels_path.empty()) {
    set = read_idx_pair(path, labels_path);
  } else if (fs::path(path).extension() == ".jsonl") {
    set = read_feature_jsonl(path);
  } else {
    throw DataError(path + ": not feature JSONL (.jsonl); IDX images need their labels file "
                    "(--train-labels / --valid-labels / --test-labels)");
  }
  if (set.size() > 0 && set.num_features() != config.input_size)
    throw DataError(path + ": examples have " + std::to_string(set.num_features()) +
                    " features; the model's input_size is " + std::to_string(config.input_size));
  if (set.size() > 0 && set.num_classes() > config.num_classes)
    throw DataError((labels_path.empty() ? path : labels_path) + ": label " + std::to_string(set.num_classes() - 1) +
                    " is outside the model's " + std::to_string(config.num_classes) + " classes");
  return set;
}

LossStats evaluate_classifier(MlpClassifier& model, const FeatureSet& set, int64_t batch_size) {
  if (batch_size < 1) throw ConfigError("evaluation batch_size must be at least 1");
  LossStats stats;
  stats.examples = set.size();
  if (set.size() == 0) return stats;
  const bool was_training = model->is_training();
  model->eval();
  torch::NoGradGuard no_grad;
  const auto device = model->parameters().front().device();
  double loss_sum = 0;
  int64_t correct = 0;
  for (int64_t begin = 0; begin < set.size(); begin += batch_size) {
    const int64_t end = std::min(set.size(), begin + batch_size);
    const auto x = set.x.slice(0, begin, end).to(device), y = set.y.slice(0, begin, end).to(device);
    const auto logits = model->forward(x);  // (B, C)
    loss_sum += classifier_losses(logits, y).sum().item<double>();
    correct += logits.argmax(1).eq(y).sum().item<int64_t>();
  }
  model->train(was_training);
  stats.loss = loss_sum / double(set.size());
  stats.perplexity = std::exp(stats.loss);
  stats.token_accuracy = double(correct) / double(set.size());
  stats.trained_tokens = set.size();
  return stats;
}

FeatureTask::FeatureTask(MlpClassifier& model, const FeatureSet& train, const FeatureSet& valid)
    : model_(model), train_(train), valid_(valid) {}

std::vector<int64_t> FeatureTask::lengths() const { return std::vector<int64_t>(train_.size(), 1); }

Batch FeatureTask::batch(const std::vector<int64_t>& indices, bool pin) const {
  const auto idx = torch::tensor(indices, torch::kLong);
  Batch b;
  b.inputs = train_.x.index_select(0, idx);   // (B, D)
  b.targets = train_.y.index_select(0, idx);  // (B)
  b.mask = torch::ones({int64_t(indices.size())}, torch::kFloat);
  if (pin) b.inputs = b.inputs.pin_memory(), b.targets = b.targets.pin_memory(), b.mask = b.mask.pin_memory();
  b.trained_tokens = b.tokens = int64_t(indices.size());
  return b;
}

torch::Tensor FeatureTask::loss_sum(const Batch& b) {
  return classifier_losses(model_->forward(b.inputs), b.targets).sum();
}

std::optional<ValidLog> FeatureTask::validate(int64_t batch_size) {
  if (valid_.size() == 0) return std::nullopt;
  const LossStats s = evaluate_classifier(model_, valid_, batch_size);
  return ValidLog{0, s.loss, s.perplexity, s.token_accuracy};
}

}  // namespace retain
