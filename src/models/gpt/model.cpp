// GPT-2 architecture (model family `gpt`), generation with a KV cache, and model directories.
#include "retain/model.h"

#include <cmath>
#include <filesystem>

#include <torch/version.h>

#include "retain/capture.h"
#include "retain/checkpoint.h"
#include "retain/errors.h"
#include "retain/fileio.h"

namespace retain {
namespace fs = std::filesystem;

namespace {

// A positive integer at most `max` (sizes bounded by what any real checkpoint has).
int64_t positive_int(const nlohmann::json& j, const char* key, int64_t fallback, const std::string& what,
                     int64_t max = int64_t(1) << 20) {
  if (!j.contains(key)) return fallback;
  const auto& v = j.at(key);
  if (!v.is_number_integer() || v.get<int64_t>() <= 0 || v.get<int64_t>() > max)
    throw ConfigError(what + ": \"" + key + "\" must be a positive integer of at most " + std::to_string(max) +
                      ", got " + v.dump());
  return v.get<int64_t>();
}

double probability(const nlohmann::json& j, const char* key, double fallback,
                   const std::string& what) {
  if (!j.contains(key)) return fallback;
  const auto& v = j.at(key);
  if (!v.is_number() || v.get<double>() < 0 || v.get<double>() >= 1)
    throw ConfigError(what + ": \"" + key + "\" must be a number in [0, 1), got " + v.dump());
  return v.get<double>();
}

torch::Tensor linear(torch::nn::Linear& layer, const torch::Tensor& x) { return captured_linear(layer, x); }

torch::Tensor layer_norm(torch::nn::LayerNorm& layer, const torch::Tensor& x) { return captured_layer_norm(layer, x); }

}  // namespace


GptConfig GptConfig::from_json(const nlohmann::json& j, const std::string& what) {
  if (!j.is_object()) throw ConfigError(what + ": model config must be a JSON object");
  GptConfig c;
  if (j.contains("model_type")) {
    if (!j["model_type"].is_string()) throw ConfigError(what + ": \"model_type\" must be a string");
    c.model_type = j["model_type"].get<std::string>();
  }
  if (c.model_type != "gpt2" && c.model_type != "gpt")
    throw ConfigError(what + ": unsupported model_type \"" + c.model_type +
                      "\"; this build knows gpt2 (family gpt)");
  c.model_type = "gpt2";
  c.vocab_size = positive_int(j, "vocab_size", c.vocab_size, what, int64_t(1) << 24);
  c.n_positions = positive_int(j, "n_positions", c.n_positions, what, int64_t(1) << 24);
  c.n_embd = positive_int(j, "n_embd", c.n_embd, what, int64_t(1) << 16);
  c.n_layer = positive_int(j, "n_layer", c.n_layer, what, 4096);
  c.n_head = positive_int(j, "n_head", c.n_head, what, 4096);
  if (j.contains("layer_norm_epsilon")) {
    const auto& v = j["layer_norm_epsilon"];
    if (!v.is_number() || v.get<double>() <= 0)
      throw ConfigError(what + ": \"layer_norm_epsilon\" must be a positive number");
    c.layer_norm_epsilon = v.get<double>();
  }
  c.embd_pdrop = probability(j, "embd_pdrop", c.embd_pdrop, what);
  c.attn_pdrop = probability(j, "attn_pdrop", c.attn_pdrop, what);
  c.resid_pdrop = probability(j, "resid_pdrop", c.resid_pdrop, what);
  if (c.n_embd % c.n_head != 0)
    throw ConfigError(what + ": n_embd (" + std::to_string(c.n_embd) +
                      ") must be divisible by n_head (" + std::to_string(c.n_head) + ")");
  return c;
}

nlohmann::json GptConfig::to_json() const {
  return {{"model_type", model_type},   {"vocab_size", vocab_size},
          {"n_positions", n_positions}, {"n_embd", n_embd},
          {"n_layer", n_layer},         {"n_head", n_head},
          {"n_inner", nullptr},         {"activation_function", "gelu_new"},
          {"layer_norm_epsilon", layer_norm_epsilon},
          {"embd_pdrop", embd_pdrop},   {"attn_pdrop", attn_pdrop},
          {"resid_pdrop", resid_pdrop}, {"tie_word_embeddings", true},
          {"architectures", {"GPT2LMHeadModel"}}};
}

int64_t GptConfig::num_parameters() const {
  const int64_t c = n_embd;
  const int64_t per_block = 2 * 2 * c            // ln_1, ln_2
                            + c * 3 * c + 3 * c  // c_attn
                            + c * c + c          // attn.c_proj
                            + c * 4 * c + 4 * c  // c_fc
                            + 4 * c * c + c;     // mlp.c_proj
  return vocab_size * c + n_positions * c + n_layer * per_block + 2 * c;
}

CausalSelfAttentionImpl::CausalSelfAttentionImpl(const GptConfig& c)
    : n_head_(c.n_head), attn_pdrop_(c.attn_pdrop) {
  c_attn = register_module("c_attn", torch::nn::Linear(c.n_embd, 3 * c.n_embd));
  c_proj = register_module("c_proj", torch::nn::Linear(c.n_embd, c.n_embd));
  resid_dropout_ = register_module("resid_dropout", torch::nn::Dropout(c.resid_pdrop));
}

torch::Tensor CausalSelfAttentionImpl::forward(const torch::Tensor& x, torch::Tensor* cache_k,
                                               torch::Tensor* cache_v) {
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2), D = C / n_head_;
  auto qkv = linear(c_attn, x).split(C, 2);  // 3 × (B, T, C)
  auto q = qkv[0].view({B, T, n_head_, D}).transpose(1, 2);  // (B, H, T, D)
  auto k = qkv[1].view({B, T, n_head_, D}).transpose(1, 2);
  auto v = qkv[2].view({B, T, n_head_, D}).transpose(1, 2);
  if (cache_k != nullptr) {
    if (cache_k->defined()) {
      k = torch::cat({*cache_k, k}, 2);
      v = torch::cat({*cache_v, v}, 2);
    }
    *cache_k = k;
    *cache_v = v;
  }
  auto y = causal_attention(q, k, v, attn_pdrop_, is_training());  // (B, H, T, D)
  y = y.transpose(1, 2).contiguous().view({B, T, C});
  return resid_dropout_(linear(c_proj, y));
}

MlpImpl::MlpImpl(const GptConfig& c) {
  c_fc = register_module("c_fc", torch::nn::Linear(c.n_embd, 4 * c.n_embd));
  c_proj = register_module("c_proj", torch::nn::Linear(4 * c.n_embd, c.n_embd));
  dropout_ = register_module("dropout", torch::nn::Dropout(c.resid_pdrop));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  return dropout_(linear(c_proj, torch::gelu(linear(c_fc, x), "tanh")));
}

BlockImpl::BlockImpl(const GptConfig& c) {
  auto ln = torch::nn::LayerNormOptions({c.n_embd}).eps(c.layer_norm_epsilon);
  ln_1 = register_module("ln_1", torch::nn::LayerNorm(ln));
  attn = register_module("attn", CausalSelfAttention(c));
  ln_2 = register_module("ln_2", torch::nn::LayerNorm(ln));
  mlp = register_module("mlp", Mlp(c));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x, torch::Tensor* cache_k,
                                 torch::Tensor* cache_v) {
  auto y = x + attn(layer_norm(ln_1, x), cache_k, cache_v);
  return y + mlp(layer_norm(ln_2, y));
}

GptImpl::GptImpl(const GptConfig& c) : config_(c) {
  wte = register_module("wte", torch::nn::Embedding(c.vocab_size, c.n_embd));
  wpe = register_module("wpe", torch::nn::Embedding(c.n_positions, c.n_embd));
  drop_ = register_module("drop", torch::nn::Dropout(c.embd_pdrop));
  h = register_module("h", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.n_layer; ++i) h->push_back(Block(c));
  ln_f = register_module("ln_f", torch::nn::LayerNorm(
                                     torch::nn::LayerNormOptions({c.n_embd}).eps(c.layer_norm_epsilon)));
  // GPT-2 initialisation (Radford et al. 2019): residual projections scaled by 1/√(2·n_layer).
  torch::NoGradGuard no_grad;
  const double std_proj = 0.02 / std::sqrt(2.0 * c.n_layer);
  for (auto& p : named_parameters()) {
    const std::string& name = p.key();
    auto& t = p.value();
    if (name.find("ln_") != std::string::npos) {
      if (name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0) t.fill_(1.0);
      else t.zero_();
    } else if (name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0) {
      t.zero_();
    } else if (name.find("c_proj.weight") != std::string::npos) {
      t.normal_(0.0, std_proj);
    } else {
      t.normal_(0.0, 0.02);
    }
  }
}

torch::Tensor GptImpl::run(const torch::Tensor& idx, KVCache* cache) {
  const int64_t T = idx.size(1);
  const int64_t past = cache ? cache->length() : 0;
  TORCH_CHECK(past + T <= config_.n_positions, "sequence of ", past + T,
              " tokens exceeds n_positions = ", config_.n_positions);
  auto pos = torch::arange(past, past + T, torch::TensorOptions().dtype(torch::kLong).device(idx.device()));
  auto emb = wte(idx) + wpe(pos);  // (B, T, C)
  if (capturing()) capture({LayerCapture::Kind::kEmbeddings, nullptr, idx, emb, 0, "wte.weight", "wpe.weight"});
  auto x = drop_(emb);
  if (cache && cache->k.empty()) {
    cache->k.resize(config_.n_layer);
    cache->v.resize(config_.n_layer);
  }
  for (int64_t l = 0; l < config_.n_layer; ++l) {
    auto block = h[l]->as<Block>();
    x = cache ? block->forward(x, &cache->k[l], &cache->v[l]) : block->forward(x);
  }
  x = layer_norm(ln_f, x);
  auto logits = torch::nn::functional::linear(x, wte->weight);  // tied output projection, (B, T, V)
  if (capturing()) capture({LayerCapture::Kind::kTiedOutput, nullptr, x, logits, 0, "wte.weight", ""});
  return logits;
}

torch::Tensor GptImpl::forward(const torch::Tensor& idx) { return run(idx, nullptr); }

torch::Tensor GptImpl::forward_cached(const torch::Tensor& idx, KVCache& cache) {
  return run(idx, &cache);
}

LoadedModel load_model_dir(const std::string& dir, uint64_t init_seed) {
  const fs::path root(dir);
  const auto config_path = (root / kConfigFile).string();
  if (!fs::exists(config_path))
    throw CheckpointError(dir + ": not a model directory (no " + kConfigFile + ")");
  const nlohmann::json cj = read_json_file(config_path);
  LoadedModel loaded;
  loaded.config = GptConfig::from_json(cj, config_path);
  loaded.tokenizer = load_tokenizer(dir);
  if (loaded.tokenizer->vocab_size() > loaded.config.vocab_size)
    throw CheckpointError(config_path + ": vocab_size " + std::to_string(loaded.config.vocab_size) +
                          " is smaller than the tokenizer's " +
                          std::to_string(loaded.tokenizer->vocab_size()));
  const auto weights_path = (root / kWeightsFile).string();
  const bool weights = fs::exists(weights_path);
  // The weights are read and compared with the config before the model is built, so that a config
  // asking for more than the weights hold allocates nothing.
  const TensorMap tensors = weights ? load_safetensors(weights_path).tensors : TensorMap{};
  if (weights) {
    const GptConfig& c = loaded.config;
    auto expect = [&](const std::string& name, std::vector<int64_t> shape) {
      const auto it = tensors.find(name);
      if (it == tensors.end())
        throw CheckpointError(weights_path + ": missing parameter " + name + " (" + config_path + " asks for it)");
      if (it->second.sizes().vec() != shape)
        throw CheckpointError(weights_path + ": parameter " + name + " has shape " + c10::str(it->second.sizes()) +
                              ", " + config_path + " asks for " + c10::str(c10::IntArrayRef(shape)));
    };
    expect("wte.weight", {c.vocab_size, c.n_embd});
    expect("wpe.weight", {c.n_positions, c.n_embd});
    expect("h." + std::to_string(c.n_layer - 1) + ".ln_1.weight", {c.n_embd});
    if (tensors.count("h." + std::to_string(c.n_layer) + ".ln_1.weight"))
      throw CheckpointError(weights_path + ": holds more blocks than n_layer " + std::to_string(c.n_layer) + " (" +
                            config_path + ")");
  }
  torch::manual_seed(init_seed);
  loaded.model = Gpt(loaded.config);
  if (!weights) return loaded;
  // A tensor the model has no parameter for means the folder is not what config.json says (another
  // architecture's weights, a hand-edited file): refused rather than silently dropped.
  const auto params = loaded.model->named_parameters();
  for (const auto& [name, tensor] : tensors)
    if (!params.contains(name))
      throw CheckpointError(weights_path + ": unknown tensor " + name + " (not a parameter of the gpt model " +
                            config_path + " describes)");
  load_parameters(*loaded.model, tensors, weights_path);
  loaded.has_weights = true;
  return loaded;
}

void save_model_dir(const std::string& dir, const GptConfig& config, Gpt& model,
                    const Tokenizer& tokenizer, bool overwrite, const nlohmann::json& card) {
  std::vector<std::pair<std::string, std::string>> files = {
      {kConfigFile, config.to_json().dump(2) + "\n"}, {kTokenizerFile, tokenizer.to_json().dump(2) + "\n"}};
  if (!card.is_null()) files.emplace_back("card.json", card.dump(2) + "\n");
  write_model_dir(dir, *model, files, overwrite);
}

}  // namespace retain
