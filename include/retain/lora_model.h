// LoRA at the level of model directories and the family interface: a FamilyModel whose module
// carries adapters (trained alone, saved as a PEFT adapter directory over its base), and loading a
// model for training with or without LoRA from a full or an adapter directory.
#pragma once

#include <memory>
#include <string>

#include "retain/family.h"
#include "retain/lora.h"

namespace retain {

// A family's model with adapters on its module: training, evaluation and the Fisher are the
// family's (the adapters run inside captured_linear; only they require grad), and save() writes
// the adapter directory — adapter_config.json, adapter_model.safetensors, retain_adapter.json
// naming the base, card.json — or, with lora.merge, the merged full model through the family.
class LoraModel : public FamilyModel {
 public:
  LoraModel(std::unique_ptr<FamilyModel> inner, LoraConfig config, LoraLayout layout);
  torch::nn::Module& module() override { return inner_->module(); }
  bool has_weights() const override { return inner_->has_weights(); }
  // "<family's description>, LoRA r=8 alpha=16 on 12 modules (4096 trainable parameters)".
  std::string describe() const override;
  std::unique_ptr<TrainTask> task(const Examples& train, const Examples& valid, int64_t max_seq_len) override {
    return inner_->task(train, valid, max_seq_len);
  }
  Metrics evaluate(const Examples& set, const EvalSettings& settings) override {
    return inner_->evaluate(set, settings);
  }
  TensorMap fisher(const Examples& set, const FisherOptions& options) override {
    return inner_->fisher(set, options);
  }
  void save(const std::string& dir, bool overwrite, const nlohmann::json& card) override;

  // Where the saved adapter finds its base: `base_ref` relative to the directory it is saved as
  // (retain_adapter.json), `base_name` for adapter_config.json's base_model_name_or_path.
  void set_base(std::string base_ref, std::string base_name);
  const LoraConfig& config() const { return config_; }
  const LoraLayout& layout() const { return layout_; }
  FamilyModel& inner() { return *inner_; }

 private:
  std::unique_ptr<FamilyModel> inner_;
  LoraConfig config_;
  LoraLayout layout_;
  int64_t modules_ = 0;
  std::string base_ref_, base_name_;
};

// The family's LoRA layout, or ConfigError naming `what` for a family without LoRA.
LoraLayout lora_layout_of(const ModelFamily& family, const std::string& what);

// A model loaded for training.
struct TrainableModel {
  const ModelFamily* family = nullptr;
  std::unique_ptr<FamilyModel> model;
  std::string data_dir;      // the directory whose config.json and tokenizer the data are read for
  std::string adapter_base;  // the frozen base under the adapter ("" without LoRA)
  bool continued = false;    // the adapter is the loaded directory's own (not a fresh one)
};
// From a full directory: without `lora` the model as the family loads it; with it, fresh adapters
// on the frozen weights (a preset without weights is refused). From an adapter directory: with
// `lora`, its base with its adapter trainable — the config's rank, alpha and targets must be the
// adapter's (ConfigError naming `what` otherwise; dropout and merge are the config's); without,
// the adapter merged into its base, every parameter trainable.
TrainableModel load_trainable_model(const std::string& dir, uint64_t seed, const LoraConfig& lora,
                                    const std::string& what);

}  // namespace retain
