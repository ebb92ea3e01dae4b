// Reading a Hugging Face GPT-2 directory into retain's layout (see hf.h). Every rule is checked
// before anything is written; the names and layouts are the inverse of hf_export.cpp's.
#include <filesystem>
#include <set>

#include "retain/errors.h"
#include "retain/fileio.h"
#include "retain/gpt_hf.h"

namespace retain {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPrefix = "transformer.";

// Hugging Face's GPT2Config defaults, for keys a config.json leaves out.
nlohmann::json hf_defaults() {
  return {{"vocab_size", 50257}, {"n_positions", 1024}, {"n_embd", 768},     {"n_layer", 12},
          {"n_head", 12},        {"layer_norm_epsilon", 1e-5}, {"embd_pdrop", 0.1},
          {"attn_pdrop", 0.1},   {"resid_pdrop", 0.1}};
}

// The settings of GPT2Config that change the computation and that retain's GPT-2 implements in
// one way only: a config asking for another is refused rather than silently run differently.
void check_supported(const nlohmann::json& j, const GptConfig& c, const std::string& path) {
  const auto refuse = [&](const std::string& key, const std::string& want) {
    throw CheckpointError(path + ": \"" + key + "\" is " + j[key].dump() + "; retain's GPT-2 supports " +
                          want + " only");
  };
  if (j.contains("activation_function")) {
    const auto& a = j["activation_function"];
    if (a != "gelu_new" && a != "gelu_pytorch_tanh") refuse("activation_function", "gelu_new (tanh GELU)");
  }
  if (j.contains("n_inner") && !j["n_inner"].is_null() && j["n_inner"] != 4 * c.n_embd)
    refuse("n_inner", "null or 4·n_embd (" + std::to_string(4 * c.n_embd) + ")");
  const auto flag_is = [&](const char* key, bool want) {
    if (j.contains(key) && j[key] != want) refuse(key, want ? "true" : "false");
  };
  flag_is("tie_word_embeddings", true);
  flag_is("scale_attn_weights", true);
  flag_is("scale_attn_by_inverse_layer_idx", false);
  flag_is("add_cross_attention", false);
}

GptConfig read_config(const std::string& dir) {
  const std::string path = (fs::path(dir) / "config.json").string();
  if (!fs::is_regular_file(path))
    throw CheckpointError(dir + ": not a Hugging Face model directory (no config.json)");
  const nlohmann::json j = read_json_file(path);
  if (!j.is_object()) throw CheckpointError(path + ": must be a JSON object");
  if (!j.contains("model_type") || j["model_type"] != "gpt2") {
    throw CheckpointError(path + ": \"model_type\" is " + (j.contains("model_type") ? j["model_type"].dump() : "missing") +
                          "; only Hugging Face GPT-2 (\"gpt2\") models can be imported");
  }
  nlohmann::json merged = hf_defaults();
  for (const auto& [key, value] : j.items()) merged[key] = value;
  GptConfig config;
  try {
    config = GptConfig::from_json(merged, path);
  } catch (const ConfigError& e) {
    throw CheckpointError(e.what());
  }
  check_supported(j, config, path);
  return config;
}

bool is_attention_buffer(const std::string& name) {
  for (const std::string suffix : {".attn.bias", ".attn.masked_bias"})
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      return true;
  return false;
}

// Every parameter of retain's GPT-2 with its shape (retain's layout).
std::map<std::string, std::vector<int64_t>> expected_shapes(const GptConfig& c) {
  const int64_t e = c.n_embd;
  std::map<std::string, std::vector<int64_t>> shapes = {
      {"wte.weight", {c.vocab_size, e}}, {"wpe.weight", {c.n_positions, e}},
      {"ln_f.weight", {e}}, {"ln_f.bias", {e}}};
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const std::string p = "h." + std::to_string(l) + ".";
    for (const char* ln : {"ln_1", "ln_2"}) {
      shapes[p + ln + ".weight"] = {e};
      shapes[p + ln + ".bias"] = {e};
    }
    shapes[p + "attn.c_attn.weight"] = {3 * e, e};
    shapes[p + "attn.c_attn.bias"] = {3 * e};
    shapes[p + "attn.c_proj.weight"] = {e, e};
    shapes[p + "attn.c_proj.bias"] = {e};
    shapes[p + "mlp.c_fc.weight"] = {4 * e, e};
    shapes[p + "mlp.c_fc.bias"] = {4 * e};
    shapes[p + "mlp.c_proj.weight"] = {e, 4 * e};
    shapes[p + "mlp.c_proj.bias"] = {e};
  }
  return shapes;
}

std::string dtype_name(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat: return "F32";
    case torch::kHalf: return "F16";
    case torch::kBFloat16: return "BF16";
    case torch::kDouble: return "F64";
    default: return "";
  }
}

std::string shape_text(c10::IntArrayRef shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

bool is_conv1d_weight(const std::string& name) {
  for (const std::string suffix : {".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight"})
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      return true;
  return false;
}

HfGpt2Model read_hf_gpt2(const std::string& dir) {
  if (!fs::is_directory(dir)) throw CheckpointError(dir + ": not a folder");
  HfGpt2Model m;
  m.config = read_config(dir);
  m.source_vocab_size = m.config.vocab_size;
  const auto expected = expected_shapes(m.config);

  torch::Tensor lm_head;
  std::string lm_head_file;
  for (auto& [hf_name, entry] : read_weight_files(dir)) {
    auto& [tensor, file] = entry;
    const std::string name = hf_name.rfind(kPrefix, 0) == 0 ? hf_name.substr(std::string(kPrefix).size()) : hf_name;
    if (is_attention_buffer(name)) {
      m.ignored.push_back(hf_name);
      continue;
    }
    const std::string dtype = dtype_name(tensor.scalar_type());
    if (dtype.empty()) throw CheckpointError(file + ": tensor " + hf_name + " is not a float tensor");
    if (m.source_dtype.empty()) m.source_dtype = dtype;
    if (hf_name == "lm_head.weight") {
      lm_head = tensor.to(torch::kFloat);
      lm_head_file = file;
      continue;
    }
    const auto want = expected.find(name);
    if (want == expected.end()) {
      throw CheckpointError(file + ": unexpected tensor " + hf_name + " (not a parameter of GPT-2 with " +
                            std::to_string(m.config.n_layer) + " layers)");
    }
    torch::Tensor t = tensor.to(torch::kFloat);
    if (is_conv1d_weight(name) && t.dim() == 2) t = t.t().contiguous();
    if (t.sizes().vec() != want->second) {
      throw CheckpointError(file + ": tensor " + hf_name + " has shape " + shape_text(tensor.sizes()) +
                            "; config.json implies " + shape_text(want->second) +
                            (is_conv1d_weight(name) ? " (stored [in, out] as Conv1D)" : ""));
    }
    if (m.tensors.count(name)) throw CheckpointError(file + ": tensor " + name + " appears with and without the prefix");
    m.tensors[name] = t;
  }
  for (const auto& [name, shape] : expected)
    if (!m.tensors.count(name)) throw CheckpointError(dir + ": missing tensor " + name + " " + shape_text(shape));
  if (lm_head.defined()) {
    if (!torch::equal(lm_head, m.tensors["wte.weight"]))
      throw CheckpointError(lm_head_file + ": lm_head.weight differs from wte.weight; retain ties the "
                            "output projection to the token embeddings and cannot import an untied head");
    m.ignored.push_back("lm_head.weight");
  }

  m.tokenizer = Gpt2BpeTokenizer::from_dir(dir);
  if (!m.tokenizer)
    throw CheckpointError(dir + ": no tokenizer files (tokenizer.json, or vocab.json + merges.txt)");
  if (m.tokenizer->vocab_size() > m.config.vocab_size) {
    // The chat tokens (and any added token) need rows; each starts as the mean embedding, so it
    // carries no token's meaning and the model's outputs on old ids are unchanged.
    torch::Tensor& wte = m.tensors["wte.weight"];  // (V, C)
    m.added_rows = m.tokenizer->vocab_size() - m.config.vocab_size;
    wte = torch::cat({wte, wte.mean(0, true).expand({m.added_rows, wte.size(1)})}, 0).contiguous();
    m.config.vocab_size = m.tokenizer->vocab_size();
  }
  return m;
}

void write_hf_import(const HfGpt2Model& model, const std::string& source_dir, const std::string& out_dir) {
  if (fs::exists(out_dir)) throw CheckpointError(out_dir + ": already exists");
  build_directory(out_dir, false, [&](const std::string& tmp) {
    save_safetensors((fs::path(tmp) / kWeightsFile).string(), model.tensors);
    const nlohmann::json card = {
        {"created_by", "retain import --from-hf"},
        {"imported_from_hf",
         {{"source", fs::absolute(source_dir).lexically_normal().string()},
          {"source_vocab_size", model.source_vocab_size},
          {"added_rows", model.added_rows},
          {"source_dtype", model.source_dtype},
          {"ignored", model.ignored}}}};
    write_file_atomic((fs::path(tmp) / kConfigFile).string(), model.config.to_json().dump(2) + "\n");
    write_file_atomic((fs::path(tmp) / kTokenizerFile).string(), model.tokenizer->to_json().dump(2) + "\n");
    write_file_atomic((fs::path(tmp) / "card.json").string(), card.dump(2) + "\n");
  });
}

}  // namespace retain
