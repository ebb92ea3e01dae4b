// LoRA models behind the family interface, and loading for training (see lora_model.h).
#include "retain/lora_model.h"

#include <set>

#include "retain/errors.h"

namespace retain {

LoraModel::LoraModel(std::unique_ptr<FamilyModel> inner, LoraConfig config, LoraLayout layout)
    : inner_(std::move(inner)), config_(std::move(config)), layout_(std::move(layout)) {
  modules_ = int64_t(lora_parameters(inner_->module()).size() / 2);
}

std::string LoraModel::describe() const {
  int64_t trainable = 0;
  for (const auto& [name, t] : lora_parameters(inner_->module())) trainable += t.numel();
  char alpha[32];
  std::snprintf(alpha, sizeof alpha, "%g", config_.alpha);
  return inner_->describe() + ", LoRA r=" + std::to_string(config_.rank) + " alpha=" + alpha + " on " +
         std::to_string(modules_) + " modules (" + std::to_string(trainable) + " trainable parameters)";
}

void LoraModel::set_base(std::string base_ref, std::string base_name) {
  base_ref_ = std::move(base_ref);
  base_name_ = std::move(base_name);
}

void LoraModel::save(const std::string& dir, bool overwrite, const nlohmann::json& card) {
  if (config_.merge) {  // a full version: the adapter folded into the base's weights
    if (has_lora(inner_->module())) merge_lora(inner_->module());
    nlohmann::json merged = card;
    if (merged.is_object()) merged["lora_merged"] = config_.to_json();
    inner_->save(dir, overwrite, merged);
    return;
  }
  if (base_ref_.empty()) throw CheckpointError(dir + ": internal: the adapter's base was not set before saving");
  std::vector<std::pair<std::string, std::string>> files = {
      {kAdapterBaseFile, adapter_base_json(base_ref_, {{"lora", config_.to_json()}})}};
  if (!card.is_null()) files.emplace_back("card.json", card.dump(2) + "\n");
  write_adapter_dir(dir, inner_->module(), config_, layout_, base_name_, files, overwrite);
}

LoraLayout lora_layout_of(const ModelFamily& family, const std::string& what) {
  const auto layout = family.lora_layout();
  if (!layout) throw ConfigError(what + ": lora: the " + family.name() + " family has no LoRA adapters (gpt and llama do)");
  return *layout;
}

namespace {

std::set<std::string> as_set(const std::vector<std::string>& v) { return {v.begin(), v.end()}; }

}  // namespace

TrainableModel load_trainable_model(const std::string& dir, uint64_t seed, const LoraConfig& lora,
                                    const std::string& what) {
  TrainableModel t;
  if (!is_adapter_dir(dir)) {
    t.family = &family_of(dir);
    t.data_dir = dir;
    auto inner = t.family->load(dir, seed);
    if (!lora.enabled()) {
      t.model = std::move(inner);
      return t;
    }
    const LoraLayout layout = lora_layout_of(*t.family, what);
    if (!inner->has_weights())
      throw ConfigError(what + ": lora: " + dir + " has no weights (a preset); LoRA adapts a trained model, so "
                        "fine-tune it fully first");
    attach_lora(inner->module(), lora, layout, seed, what);
    t.model = std::make_unique<LoraModel>(std::move(inner), lora, layout);
    t.adapter_base = dir;
    return t;
  }
  // An adapter directory: its base, with the adapter.
  const std::string base = adapter_base_dir(dir);
  t.family = &family_of(base);
  t.data_dir = base;
  const LoraLayout layout = lora_layout_of(*t.family, dir);
  const AdapterFiles files = read_adapter_files(dir, layout);
  LoraConfig effective = files.config;
  if (lora.enabled()) {
    auto differs = [&](const std::string& key, const std::string& mine, const std::string& theirs) {
      throw ConfigError(what + ": lora." + key + " is " + mine + " but " + dir + "'s adapter has " + theirs +
                        "; a LoRA round continues the base's adapter, so keep its settings (or start a new "
                        "lineage from a merged version: lora.merge)");
    };
    if (lora.rank != files.config.rank)
      differs("rank", std::to_string(lora.rank), std::to_string(files.config.rank));
    if (lora.alpha != files.config.alpha)
      differs("alpha", std::to_string(lora.alpha), std::to_string(files.config.alpha));
    if (!lora.target_modules.empty() && as_set(lora.target_modules) != as_set(files.config.target_modules))
      differs("target_modules", nlohmann::json(lora.target_modules).dump(),
              nlohmann::json(files.config.target_modules).dump());
    effective.dropout = lora.dropout;
    effective.merge = lora.merge;
  }
  auto inner = t.family->load(base, seed);
  if (!inner->has_weights()) throw CheckpointError(dir + ": its base " + base + " has no weights");
  attach_lora(inner->module(), effective, layout, seed, (std::filesystem::path(dir) / kAdapterConfigFile).string());
  load_adapter(inner->module(), files, dir);
  if (!lora.enabled()) {  // evaluation, generation, export, or a full round: one merged model
    merge_lora(inner->module());
    t.model = std::move(inner);
    return t;
  }
  t.model = std::make_unique<LoraModel>(std::move(inner), effective, layout);
  t.adapter_base = base;
  t.continued = true;
  return t;
}

}  // namespace retain
