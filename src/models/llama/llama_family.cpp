// The `llama` family behind the family interface: a version folder is a Hugging Face directory
// (config.json as given, model.safetensors under Hugging Face's names in the checkpoint's dtype,
// the tokenizer files as shipped), so import checks and copies and export copies back.
#include <filesystem>
#include <set>

#include "retain/chat_family.h"
#include "retain/config.h"
#include "retain/errors.h"
#include "retain/fileio.h"
#include "retain/llama.h"
#include "retain/tokenizer.h"
#include "../families.h"

namespace retain {
namespace {

namespace fs = std::filesystem;

// The files of a directory that describe its tokenizer and generation, copied as they are.
const std::vector<std::string>& tokenizer_files() {
  static const std::vector<std::string> kFiles = {
      "tokenizer.json",     "tokenizer_config.json", "vocab.json",        "merges.txt",
      "special_tokens_map.json", "added_tokens.json", "tokenizer.model", "chat_template.jinja",
      "generation_config.json"};
  return kFiles;
}

torch::ScalarType dtype_named(const std::string& name) {
  if (name == "bfloat16") return torch::kBFloat16;
  if (name == "float16") return torch::kFloat16;
  return torch::kFloat;
}

LlamaConfig read_config(const std::string& dir) {
  const std::string path = (fs::path(dir) / kConfigFile).string();
  if (!fs::is_regular_file(path)) throw CheckpointError(dir + ": not a model directory (no config.json)");
  const nlohmann::json j = read_json_file(path);
  try {
    return LlamaConfig::from_json(j, path);
  } catch (const ConfigError& e) {
    throw CheckpointError(e.what());
  }
}

// Hugging Face checkpoints of older transformers carry the rotary inverse frequencies as buffers.
bool is_rotary_buffer(const std::string& name) {
  const std::string suffix = ".rotary_emb.inv_freq";
  return name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

struct Weights {
  TensorMap tensors;  // Hugging Face names, as stored
  torch::ScalarType dtype = torch::kFloat;
};

// Every tensor the config needs, checked: present, known, of its shape, floating point of one
// dtype, finite. A stored lm_head.weight of a tied model must equal the embedding.
Weights read_weights(const std::string& dir, const LlamaConfig& config) {
  auto files = read_weight_files(dir);
  Weights w;
  std::set<std::string> seen;
  bool first = true;
  for (const auto& [name, shape] : llama_tensor_shapes(config)) {
    const auto it = files.find(name);
    if (it == files.end()) throw CheckpointError(dir + ": tensor " + name + " is missing (config.json asks for it)");
    const auto& [t, file] = it->second;
    if (t.sizes().vec() != shape)
      throw CheckpointError(file + ": tensor " + name + " has shape " + c10::str(t.sizes()) + ", config.json asks for " +
                            c10::str(c10::IntArrayRef(shape)));
    if (!t.is_floating_point()) throw CheckpointError(file + ": tensor " + name + " is not floating point");
    if (first) w.dtype = t.scalar_type(), first = false;
    if (t.scalar_type() != w.dtype)
      throw CheckpointError(file + ": tensor " + name + " is " + c10::toString(t.scalar_type()) + ", the others " +
                            c10::toString(w.dtype));
    if (!torch::isfinite(t).all().item<bool>()) throw CheckpointError(file + ": tensor " + name + " has non-finite values");
    w.tensors[name] = t;
    seen.insert(name);
  }
  for (const auto& [name, entry] : files) {
    if (seen.count(name) || is_rotary_buffer(name)) continue;
    if (name == "lm_head.weight" && config.tie_word_embeddings) {
      if (!torch::equal(entry.first, w.tensors.at("model.embed_tokens.weight")))
        throw CheckpointError(entry.second + ": lm_head.weight differs from model.embed_tokens.weight but config.json "
                              "says tie_word_embeddings true");
      continue;
    }
    throw CheckpointError(entry.second + ": unknown tensor " + name + " (not part of this " + config.model_type +
                          " config)");
  }
  return w;
}

// The tokenizer of `dir`, which a model must have and whose ids must fit its embedding.
std::unique_ptr<Tokenizer> read_tokenizer(const std::string& dir, const LlamaConfig& config, bool required) {
  bool any = false;
  for (const auto& f : tokenizer_files()) any = any || (f != "generation_config.json" && fs::exists(fs::path(dir) / f));
  if (required && !any)
    throw CheckpointError(dir + ": no tokenizer files (tokenizer.json, tokenizer.model or vocab.json + merges.txt); "
                          "see docs/formats.md, \"Tokenizers\"");
  auto tokenizer = load_tokenizer(dir);
  if (tokenizer->vocab_size() > config.vocab_size)
    throw CheckpointError(dir + "/config.json: vocab_size " + std::to_string(config.vocab_size) +
                          " is smaller than the tokenizer's " + std::to_string(tokenizer->vocab_size()) +
                          " ids (a tokenizer whose chat template needs tokens the model lacks; see docs/formats.md, "
                          "\"Tokenizers\")");
  return tokenizer;
}

std::vector<std::pair<std::string, std::string>> read_tokenizer_files(const std::string& dir) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& f : tokenizer_files())
    if (fs::is_regular_file(fs::path(dir) / f)) out.emplace_back(f, read_file((fs::path(dir) / f).string()));
  return out;
}

// Writes a Llama-family directory: config.json, model.safetensors ({"format": "pt"}), the
// tokenizer files and (optionally) card.json, atomically.
void write_llama_dir(const std::string& dir, const LlamaConfig& config, const TensorMap& tensors,
                     const std::vector<std::pair<std::string, std::string>>& files, const nlohmann::json& card,
                     bool overwrite) {
  if (fs::exists(dir) && !overwrite) throw CheckpointError(dir + ": already exists; pass --overwrite to replace it");
  build_directory(dir, overwrite, [&](const std::string& tmp) {
    save_safetensors((fs::path(tmp) / kWeightsFile).string(), tensors, {{"format", "pt"}});
    write_file_atomic((fs::path(tmp) / kConfigFile).string(), config.source.dump(2) + "\n");
    for (const auto& [name, text] : files) write_file_atomic((fs::path(tmp) / name).string(), text);
    if (!card.is_null()) write_file_atomic((fs::path(tmp) / "card.json").string(), card.dump(2) + "\n");
  });
}

struct LoadedLlama {
  LlamaConfig config;
  Llama model{nullptr};
  std::unique_ptr<Tokenizer> tokenizer;
  std::vector<std::pair<std::string, std::string>> files;  // tokenizer files, kept for saving
  torch::ScalarType stored = torch::kFloat;                 // the dtype versions store
  bool has_weights = false;

  LoadedLlama(const std::string& dir, uint64_t seed) : config(read_config(dir)) {
    tokenizer = read_tokenizer(dir, config, false);
    files = read_tokenizer_files(dir);
    stored = dtype_named(config.dtype);
    const bool weights = fs::exists(fs::path(dir) / kWeightsFile) || fs::exists(fs::path(dir) / kIndexFile);
    // The weights are checked against the config before the model is built: a config that asks
    // for more layers or a larger vocabulary than the weights have allocates nothing.
    Weights w = weights ? read_weights(dir, config) : Weights{};
    torch::manual_seed(seed);
    model = Llama(config);
    if (!weights) return;
    stored = w.dtype;
    TensorMap fp32;
    for (auto& [name, t] : w.tensors) fp32[name] = t.to(torch::kFloat);  // fp32 master weights
    load_parameters(*model, fp32, dir);
    has_weights = true;
  }
};

class LlamaModel : private LoadedLlama, public ChatModel {
 public:
  LlamaModel(const std::string& dir, uint64_t seed)
      : LoadedLlama(dir, seed),
        ChatModel(*LoadedLlama::model, *LoadedLlama::tokenizer, LoadedLlama::has_weights,
                  config.model_type + ", " + std::to_string(config.num_parameters()) + " parameters") {}
  // Weights in the checkpoint's dtype: a bf16 model stays bf16 on disk.
  void save(const std::string& dir, bool overwrite, const nlohmann::json& card) override {
    TensorMap tensors;
    for (const auto& p : model->named_parameters()) tensors[p.key()] = p.value().detach().to(torch::kCPU, stored);
    write_llama_dir(dir, config, tensors, files, card, overwrite);
  }
};

class LlamaFamily : public ChatFamily {
 public:
  std::string name() const override { return "llama"; }
  std::vector<std::string> model_types() const override { return {"llama", "qwen2", "qwen3", "mistral"}; }
  std::unique_ptr<FamilyModel> load(const std::string& dir, uint64_t init_seed) const override {
    return std::make_unique<LlamaModel>(dir, init_seed);
  }
  // Everything checked before a byte is written; the tensors are copied as stored (bit-identical).
  HfImport import_hf(const std::string& hf_dir, const std::string& out_dir) const override {
    const LlamaConfig config = read_config(hf_dir);
    const Weights w = read_weights(hf_dir, config);
    read_tokenizer(hf_dir, config, true);
    const nlohmann::json card = {{"created_by", "retain import --from-hf"},
                                 {"imported_from_hf", fs::absolute(hf_dir).lexically_normal().string()},
                                 {"model_type", config.model_type}};
    write_llama_dir(out_dir, config, w.tensors, read_tokenizer_files(hf_dir), card, false);
    HfImport info;
    info.source_dtype = w.dtype == torch::kBFloat16 ? "BF16" : w.dtype == torch::kFloat16 ? "F16" : "F32";
    return info;
  }
  void export_hf(const std::string& model_dir, const std::string& out_dir, bool overwrite) const override {
    const LlamaConfig config = read_config(model_dir);
    const Weights w = read_weights(model_dir, config);
    write_llama_dir(out_dir, config, w.tensors, read_tokenizer_files(model_dir), nlohmann::json(), overwrite);
  }
  std::optional<LoraLayout> lora_layout() const override {
    return LoraLayout{{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}, "", false};
  }
};

}  // namespace

const ModelFamily& llama_family() {
  static const LlamaFamily family;
  return family;
}

}  // namespace retain
