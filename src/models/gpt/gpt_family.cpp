// The `gpt` family (GPT-2's architecture) behind the family interface: model directories with
// retain's GPT config and tokenizer file, chat data, and Hugging Face GPT-2 directories.
#include <filesystem>

#include "retain/chat_family.h"
#include "retain/errors.h"
#include "retain/gpt_hf.h"
#include "retain/model.h"
#include "../families.h"

namespace retain {
namespace {

namespace fs = std::filesystem;

// The loaded directory, first base of GptModel so that it exists before ChatModel refers to it.
struct LoadedGpt {
  LoadedModel loaded;
};

class GptModel : private LoadedGpt, public ChatModel {
 public:
  GptModel(LoadedModel m)
      : LoadedGpt{std::move(m)},
        ChatModel(*loaded.model, *loaded.tokenizer, loaded.has_weights,
                  "gpt, " + std::to_string(loaded.config.num_parameters()) + " parameters") {}
  void save(const std::string& dir, bool overwrite, const nlohmann::json& card) override {
    save_model_dir(dir, loaded.config, loaded.model, *loaded.tokenizer, overwrite, card);
  }
};

class GptFamily : public ChatFamily {
 public:
  std::string name() const override { return "gpt"; }
  std::vector<std::string> model_types() const override { return {"gpt2", "gpt"}; }
  std::unique_ptr<FamilyModel> load(const std::string& dir, uint64_t init_seed) const override {
    return std::make_unique<GptModel>(load_model_dir(dir, init_seed));
  }
  HfImport import_hf(const std::string& hf_dir, const std::string& out_dir) const override {
    const HfGpt2Model hf = read_hf_gpt2(hf_dir);
    write_hf_import(hf, hf_dir, out_dir);
    HfImport info;
    info.source_dtype = hf.source_dtype;
    info.added_embedding_rows = hf.added_rows;
    return info;
  }
  void export_hf(const std::string& model_dir, const std::string& out_dir, bool overwrite) const override {
    export_hf_gpt2(model_dir, out_dir, overwrite);
  }
  // Hugging Face's GPT-2 keeps its blocks under "transformer." and its projections as Conv1D
  // (W stored as (in, out)); the adapters' shapes are the same either way.
  std::optional<LoraLayout> lora_layout() const override {
    return LoraLayout{{"c_attn", "c_proj", "c_fc"}, "transformer.", true};
  }
};

}  // namespace

const ModelFamily& gpt_family() {
  static const GptFamily family;
  return family;
}

}  // namespace retain
