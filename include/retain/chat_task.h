// Training a chat LM (any CausalLm: the gpt and llama families) on rendered conversations: the
// trainer's task, the convenience `train`, and the diagonal Fisher on chat data.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "retain/causal_lm.h"
#include "retain/ewc.h"
#include "retain/tokenizer.h"
#include "retain/trainer.h"

namespace retain {

// Masked next-token loss on rendered chat examples, sequences cut to max_len (0: the model's
// context) tokens. Holds references: the model and sets must outlive it.
class ChatTask : public TrainTask {
 public:
  ChatTask(CausalLm& model, const std::vector<RenderedChat>& train_set, const std::vector<RenderedChat>& valid_set,
           int64_t max_len);
  torch::nn::Module& module() override { return model_.lm_module(); }
  std::vector<int64_t> lengths() const override;
  Batch batch(const std::vector<int64_t>& indices, bool pin) const override;
  torch::Tensor loss_sum(const Batch& batch) override;
  std::optional<ValidLog> validate(int64_t batch_size) override;

 private:
  CausalLm& model_;
  const std::vector<RenderedChat>& train_set_;
  const std::vector<RenderedChat>& valid_set_;
  int64_t max_len_;
};

// Trains `model` (already on config.resolved_device(), or on the rank's GPU: DistEnv) on `train_set`
// on the device it is on. `valid_set` may be empty.
// `run_dir` receives metrics.jsonl and checkpoints/step-N/ (model, AdamW moments, schedule and data
// position, RNG state, then a COMPLETE marker). With `resume`, continues from the newest complete
// checkpoint in run_dir (CheckpointError when there is none) and ends bit-identical (CPU) to an
// uninterrupted run. Throws TrainingError after max_nonfinite consecutive non-finite updates.
TrainSummary train(CausalLm& model, const TrainConfig& config, const std::vector<RenderedChat>& train_set,
                   const std::vector<RenderedChat>& valid_set, const std::string& run_dir,
                   bool resume, const TrainHooks& hooks = {});

// Per-parameter diagonal Fisher of a chat LM on chat data (fp32, on the model's device). An
// example's loss is its mean loss over its trained tokens; examples with no trained token are
// skipped. Per-example gradients come from one batched backward pass over the layers the model
// records (capture.h) or one pass per example, as options.path says.
// Throws TrainingError when no example has a trained token or a value is not finite.
TensorMap estimate_fisher(CausalLm& model, const std::vector<RenderedChat>& data, const FisherOptions& options);

}  // namespace retain
