// The family registry: config.json's model_type → the family that reads it (see family.h).
#include "retain/family.h"

#include <filesystem>

#include "retain/errors.h"
#include "retain/fileio.h"
#include "retain/lora_model.h"
#include "families.h"

namespace retain {
namespace fs = std::filesystem;

ModelFamily::HfImport ModelFamily::import_hf(const std::string& hf_dir, const std::string&) const {
  throw CheckpointError(hf_dir + ": the " + name() + " family has no Hugging Face format to import");
}

void ModelFamily::export_hf(const std::string& model_dir, const std::string&, bool) const {
  throw CheckpointError(model_dir + ": the " + name() + " family has no Hugging Face format to export to");
}

const std::vector<const ModelFamily*>& model_families() {
  // One line per family.
  static const std::vector<const ModelFamily*> kFamilies = {&gpt_family(), &llama_family(), &mlp_family()};
  return kFamilies;
}

const ModelFamily& family_for_type(const std::string& model_type, const std::string& where) {
  std::string known;
  for (const ModelFamily* family : model_families())
    for (const auto& type : family->model_types()) {
      if (type == model_type) return *family;
      known += (known.empty() ? "" : ", ") + type;
    }
  throw CheckpointError(where + ": \"model_type\" is \"" + model_type + "\", which retain does not read (it reads " +
                        known + ")");
}

const ModelFamily& family_of(const std::string& model_dir) {
  if (is_adapter_dir(model_dir)) return family_of(adapter_base_dir(model_dir));
  const std::string path = (fs::path(model_dir) / "config.json").string();
  if (!fs::is_regular_file(path))
    throw CheckpointError(model_dir + ": not a model directory (no config.json)");
  const nlohmann::json config = read_json_file(path);
  if (!config.is_object()) throw CheckpointError(path + ": must be a JSON object");
  if (!config.contains("model_type")) return gpt_family();  // retain's GPT presets may omit it
  if (!config["model_type"].is_string()) throw CheckpointError(path + ": \"model_type\" must be a string");
  return family_for_type(config["model_type"].get<std::string>(), path);
}

std::unique_ptr<FamilyModel> load_family_model(const std::string& dir, uint64_t init_seed) {
  if (is_adapter_dir(dir)) return load_trainable_model(dir, init_seed, LoraConfig{}, dir).model;
  return family_of(dir).load(dir, init_seed);
}

}  // namespace retain
