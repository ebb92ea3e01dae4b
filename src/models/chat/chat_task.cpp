// The chat families' training task and Fisher (see chat_task.h).
#include "retain/chat_task.h"

#include <algorithm>

#include "retain/batch.h"
#include "retain/capture.h"
#include "retain/errors.h"
#include "retain/eval.h"

namespace retain {
namespace {

// Targets drawn from the model's predictive distribution at every position: logits (B, T, V).
torch::Tensor sample_targets(const torch::Tensor& logits, at::Generator& gen) {
  torch::NoGradGuard no_grad;
  const int64_t V = logits.size(-1);
  auto probs = torch::softmax(logits.detach().to(torch::kFloat).reshape({-1, V}), -1).cpu();
  return torch::multinomial(probs, 1, true, gen).view(logits.sizes().slice(0, 2)).to(logits.device());
}

// Each example's mean loss over its trained tokens: (B).
torch::Tensor per_example_loss(const torch::Tensor& logits, const torch::Tensor& targets,
                               const torch::Tensor& mask) {
  return (token_losses(logits, targets) * mask).sum(1) / mask.sum(1).clamp_min(1.0);
}

}  // namespace

ChatTask::ChatTask(CausalLm& model, const std::vector<RenderedChat>& train_set, const std::vector<RenderedChat>& valid_set,
                   int64_t max_len)
    : model_(model), train_set_(train_set), valid_set_(valid_set),
      max_len_(max_len > 0 ? std::min(max_len, model.context_length()) : model.context_length()) {}

std::vector<int64_t> ChatTask::lengths() const {
  std::vector<int64_t> out;
  out.reserve(train_set_.size());
  for (const auto& ex : train_set_) out.push_back(ex.ids.size());
  return out;
}

Batch ChatTask::batch(const std::vector<int64_t>& indices, bool pin) const {
  return make_batch(train_set_, indices, max_len_, pin);
}

torch::Tensor ChatTask::loss_sum(const Batch& b) {
  auto logits = model_.logits(b.inputs);  // (B, T, V)
  return masked_lm_loss_sum(logits, b.targets, b.mask);
}

std::optional<ValidLog> ChatTask::validate(int64_t batch_size) {
  if (valid_set_.empty()) return std::nullopt;
  const auto stats = evaluate_loss(model_, valid_set_, batch_size, "valid");
  return ValidLog{0, stats.loss, stats.perplexity, stats.token_accuracy};
}

TrainSummary train(CausalLm& model, const TrainConfig& config, const std::vector<RenderedChat>& train_set,
                   const std::vector<RenderedChat>& valid_set, const std::string& run_dir,
                   bool resume, const TrainHooks& hooks) {
  ChatTask task(model, train_set, valid_set, config.max_seq_len);
  return train(task, config, run_dir, resume, hooks);
}

TensorMap estimate_fisher(CausalLm& model, const std::vector<RenderedChat>& data, const FisherOptions& options) {
  torch::nn::Module& module = model.lm_module();
  const bool was_training = module.is_training();
  module.eval();  // no dropout: the Fisher of the deterministic model
  const auto device = model.device();
  const int64_t max_len = model.context_length();
  // Examples with no trained token carry no loss; they are left out.
  std::vector<RenderedChat> usable;
  for (const auto& ex : data)
    if (std::count(ex.mask.begin() + 1, ex.mask.end(), 1) > 0) usable.push_back(ex);
  if (usable.empty()) throw TrainingError("no example with a trained token to estimate the Fisher on");

  auto batch_losses = [&](const std::vector<int64_t>& indices, bool sample, at::Generator& gen) {
    Batch b = to_device(make_batch(usable, indices, max_len), device);
    auto logits = model.logits(b.inputs);
    auto targets = sample ? sample_targets(logits, gen) : b.targets;
    return per_example_loss(logits, targets, b.mask);
  };
  const bool loop = options.path == FisherOptions::Path::kLoop ||
                    (options.path == FisherOptions::Path::kAuto && !device.is_cuda());
  TensorMap fisher = loop || options.estimator == FisherEstimator::kBatch
                         ? estimate_fisher_loop(module, usable.size(), batch_losses, options)
                         : estimate_fisher_batched(module, usable.size(), batch_losses, options);
  module.train(was_training);
  return fisher;
}

}  // namespace retain
