// GPT-2 architecture (model family `gpt`), generation with a KV cache, and model directories.
#include "retain/model.h"

#include <cmath>
#include <filesystem>

#include <torch/version.h>

#include "retain/checkpoint.h"
#include "retain/errors.h"
#include "retain/fileio.h"

namespace retain {
namespace fs = std::filesystem;

namespace {

int64_t positive_int(const nlohmann::json& j, const char* key, int64_t fallback,
                     const std::string& what) {
  if (!j.contains(key)) return fallback;
  const auto& v = j.at(key);
  if (!v.is_number_integer() || v.get<int64_t>() <= 0)
    throw ConfigError(what + ": \"" + key + "\" must be a positive integer, got " + v.dump());
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

thread_local std::vector<LayerCapture>* g_capture = nullptr;

void capture(LayerCapture::Kind kind, const torch::nn::Module* m, const torch::Tensor& in, torch::Tensor& out) {
  if (g_capture == nullptr || !out.requires_grad()) return;
  g_capture->push_back({kind, m, in.detach(), out});
}

torch::Tensor linear(torch::nn::Linear& layer, const torch::Tensor& x) {
  auto y = layer(x);
  capture(LayerCapture::Kind::kLinear, layer.get(), x, y);
  return y;
}

torch::Tensor layer_norm(torch::nn::LayerNorm& layer, const torch::Tensor& x) {
  auto y = layer(x);
  capture(LayerCapture::Kind::kLayerNorm, layer.get(), x, y);
  return y;
}

}  // namespace

CaptureScope::CaptureScope() : previous_(g_capture) { g_capture = &records_; }
CaptureScope::~CaptureScope() { g_capture = previous_; }

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
  c.vocab_size = positive_int(j, "vocab_size", c.vocab_size, what);
  c.n_positions = positive_int(j, "n_positions", c.n_positions, what);
  c.n_embd = positive_int(j, "n_embd", c.n_embd, what);
  c.n_layer = positive_int(j, "n_layer", c.n_layer, what);
  c.n_head = positive_int(j, "n_head", c.n_head, what);
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

namespace {

// softmax(q kᵀ / √d + causal mask) v. q: (B, H, Tq, D), k, v: (B, H, Tk, D), Tk ≥ Tq; query i sits
// at absolute position Tk − Tq + i and sees keys 0 … that position.
torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, double dropout, bool training) {
  const int64_t tq = q.size(2), tk = k.size(2);
#if TORCH_VERSION_MAJOR >= 2
  // Fused kernels (flash / memory-efficient) where LibTorch has them. is_causal aligns the mask
  // top-left, which is right only when Tq == Tk; a single new query sees every cached key.
  if (tq == tk || tq == 1)
    return at::scaled_dot_product_attention(q, k, v, {}, training ? dropout : 0.0,
                                            /*is_causal=*/tq == tk);
#endif
  auto att = torch::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(double(q.size(-1))));
  if (tq > 1) {
    auto mask = torch::ones({tq, tk}, torch::TensorOptions().dtype(torch::kBool).device(q.device()))
                    .triu(tk - tq + 1);
    att = att.masked_fill(mask, -std::numeric_limits<float>::infinity());
  }
  att = torch::softmax(att, -1);
  if (training && dropout > 0) att = torch::dropout(att, dropout, true);
  return torch::matmul(att, v);
}

}  // namespace

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
  capture(LayerCapture::Kind::kEmbeddings, this, idx, emb);
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
  capture(LayerCapture::Kind::kOutput, this, x, logits);
  return logits;
}

torch::Tensor GptImpl::forward(const torch::Tensor& idx) { return run(idx, nullptr); }

torch::Tensor GptImpl::forward_cached(const torch::Tensor& idx, KVCache& cache) {
  return run(idx, &cache);
}

torch::Tensor token_losses(const torch::Tensor& logits, const torch::Tensor& targets) {
  const int64_t B = logits.size(0), T = logits.size(1), V = logits.size(2);
  auto flat = torch::nn::functional::cross_entropy(
      logits.reshape({B * T, V}).to(torch::kFloat), targets.reshape({B * T}),
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
  return flat.view({B, T});
}

torch::Tensor masked_lm_loss_sum(const torch::Tensor& logits, const torch::Tensor& targets,
                                 const torch::Tensor& mask) {
  return (token_losses(logits, targets) * mask).sum();
}

std::vector<int64_t> generate(Gpt& model, const std::vector<int64_t>& prompt,
                              const GenerateOptions& options) {
  TORCH_CHECK(!prompt.empty(), "generate needs a non-empty prompt");
  torch::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  const int64_t n_positions = model->config().n_positions;
  const auto device = model->wte->weight.device();
  std::vector<int64_t> context(prompt.end() - std::min<int64_t>(prompt.size(), n_positions - 1),
                               prompt.end());
  auto gen = at::detail::createCPUGenerator(options.seed);
  KVCache cache;
  std::vector<int64_t> out;
  auto input = torch::tensor(context, torch::kLong).view({1, -1}).to(device);
  while (static_cast<int64_t>(out.size()) < options.max_new_tokens &&
         cache.length() + input.size(1) <= n_positions) {
    auto logits = model->forward_cached(input, cache).select(1, -1).squeeze(0).to(torch::kFloat).cpu();
    int64_t next;
    if (options.temperature <= 0) {
      next = logits.argmax().item<int64_t>();
    } else {
      logits = logits / options.temperature;
      if (options.top_k > 0 && options.top_k < logits.size(0)) {
        auto kth = std::get<0>(logits.topk(options.top_k)).min();
        logits = logits.masked_fill(logits < kth, -std::numeric_limits<float>::infinity());
      }
      next = torch::multinomial(torch::softmax(logits, -1), 1, false, gen).item<int64_t>();
    }
    if (options.stop_token && next == *options.stop_token) break;
    out.push_back(next);
    input = torch::tensor({next}, torch::kLong).view({1, 1}).to(device);
  }
  if (was_training) model->train();
  return out;
}

TensorMap parameter_tensors(torch::nn::Module& module) {
  TensorMap out;
  for (const auto& p : module.named_parameters()) out[p.key()] = p.value().detach();
  return out;
}

void load_parameters(torch::nn::Module& module, const TensorMap& tensors, const std::string& what) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.named_parameters()) {
    auto it = tensors.find(p.key());
    if (it == tensors.end()) throw CheckpointError(what + ": missing parameter " + p.key());
    if (it->second.sizes() != p.value().sizes())
      throw CheckpointError(what + ": parameter " + p.key() + " has shape " + c10::str(it->second.sizes()) +
                            ", the model needs " + c10::str(p.value().sizes()));
    p.value().copy_(it->second);
  }
}

LoadedModel load_model_dir(const std::string& dir, uint64_t init_seed) {
  const fs::path root(dir);
  const auto config_path = (root / kConfigFile).string();
  if (!fs::exists(config_path))
    throw CheckpointError(dir + ": not a model directory (no " + kConfigFile + ")");
  nlohmann::json cj;
  try {
    cj = nlohmann::json::parse(read_file(config_path));
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(config_path + ": bad JSON: " + e.what());
  }
  LoadedModel loaded;
  loaded.config = GptConfig::from_json(cj, config_path);
  loaded.tokenizer = load_tokenizer(dir);
  if (loaded.tokenizer->vocab_size() > loaded.config.vocab_size)
    throw CheckpointError(config_path + ": vocab_size " + std::to_string(loaded.config.vocab_size) +
                          " is smaller than the tokenizer's " +
                          std::to_string(loaded.tokenizer->vocab_size()));
  torch::manual_seed(init_seed);
  loaded.model = Gpt(loaded.config);
  const auto weights_path = (root / kWeightsFile).string();
  if (!fs::exists(weights_path)) return loaded;
  load_parameters(*loaded.model, load_safetensors(weights_path).tensors, weights_path);
  loaded.has_weights = true;
  return loaded;
}

void write_model_dir(const std::string& dir, torch::nn::Module& module,
                     const std::vector<std::pair<std::string, std::string>>& files, bool overwrite) {
  if (fs::exists(dir) && !overwrite)
    throw CheckpointError(dir + ": already exists; pass --overwrite to replace it");
  build_directory(dir, overwrite, [&](const std::string& tmp) {
    TensorMap tensors;
    for (const auto& p : module.named_parameters())
      tensors[p.key()] = p.value().detach().to(torch::kCPU, torch::kFloat);
    save_safetensors((fs::path(tmp) / kWeightsFile).string(), tensors);
    for (const auto& [name, text] : files) write_file_atomic((fs::path(tmp) / name).string(), text);
  });
}

void save_model_dir(const std::string& dir, const GptConfig& config, Gpt& model,
                    const Tokenizer& tokenizer, bool overwrite, const nlohmann::json& card) {
  std::vector<std::pair<std::string, std::string>> files = {
      {kConfigFile, config.to_json().dump(2) + "\n"}, {kTokenizerFile, tokenizer.to_json().dump(2) + "\n"}};
  if (!card.is_null()) files.emplace_back("card.json", card.dump(2) + "\n");
  write_model_dir(dir, *model, files, overwrite);
}

}  // namespace retain
