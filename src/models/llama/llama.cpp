// The Llama-family decoder (see llama.h), written from Hugging Face's modeling_llama / qwen2 /
// qwen3 / mistral.
#include "retain/llama.h"

#include <cmath>

#include "retain/capture.h"

namespace retain {
namespace {

torch::nn::Linear linear(int64_t in, int64_t out, bool bias) {
  return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias));
}

// rotate_half(x) = cat(−x₂, x₁) over the last dimension.
torch::Tensor rotate_half(const torch::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// x (B, H, T, D) rotated by position: x·cos + rotate_half(x)·sin, cos/sin (T, D).
torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  return x * cos + rotate_half(x) * sin;
}

}  // namespace

torch::Tensor rope_inv_freq(const LlamaConfig& c) {
  const int64_t D = c.head_dim;
  auto inv = 1.0 / torch::pow(torch::tensor(c.rope_theta, torch::kFloat),
                              torch::arange(0, D, 2, torch::kFloat) / double(D));
  if (c.rope.type == "linear") return inv / c.rope.factor;
  if (c.rope.type != "llama3") return inv;
  // Llama 3.1: long wavelengths divided by the factor, short ones kept, a linear blend between.
  const double orig = double(c.rope.original_max_position_embeddings);
  const double low = c.rope.low_freq_factor, high = c.rope.high_freq_factor;
  const auto wavelen = 2 * M_PI / inv;
  auto scaled = torch::where(wavelen > orig / low, inv / c.rope.factor, inv);
  const auto smooth = (orig / wavelen - low) / (high - low);
  const auto blended = (1 - smooth) * scaled / c.rope.factor + smooth * scaled;
  const auto medium = wavelen.ge(orig / high).logical_and(wavelen.le(orig / low));
  return torch::where(medium, blended, scaled);
}

RmsNormImpl::RmsNormImpl(int64_t size, double eps_) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({size}));
}

torch::Tensor RmsNormImpl::forward(const torch::Tensor& x) {
  const auto xf = x.to(torch::kFloat);
  auto y = weight * (xf * torch::rsqrt(xf.pow(2).mean(-1, true) + eps)).to(x.scalar_type());
  if (capturing()) capture({LayerCapture::Kind::kRmsNorm, this, x, y, eps, "", ""});
  return y;
}

LlamaAttentionImpl::LlamaAttentionImpl(const LlamaConfig& c)
    : heads_(c.num_attention_heads), kv_heads_(c.num_key_value_heads), head_dim_(c.head_dim) {
  const int64_t C = c.hidden_size;
  q_proj = register_module("q_proj", linear(C, heads_ * head_dim_, c.qkv_bias));
  k_proj = register_module("k_proj", linear(C, kv_heads_ * head_dim_, c.qkv_bias));
  v_proj = register_module("v_proj", linear(C, kv_heads_ * head_dim_, c.qkv_bias));
  o_proj = register_module("o_proj", linear(heads_ * head_dim_, C, c.o_bias));
  if (c.qk_norm) {
    q_norm = register_module("q_norm", RmsNorm(head_dim_, c.rms_norm_eps));
    k_norm = register_module("k_norm", RmsNorm(head_dim_, c.rms_norm_eps));
  }
}

torch::Tensor LlamaAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                          torch::Tensor* cache_k, torch::Tensor* cache_v) {
  const int64_t B = x.size(0), T = x.size(1);
  auto q = captured_linear(q_proj, x).view({B, T, heads_, head_dim_});   // (B, T, H, D)
  auto k = captured_linear(k_proj, x).view({B, T, kv_heads_, head_dim_});
  auto v = captured_linear(v_proj, x).view({B, T, kv_heads_, head_dim_});
  if (q_norm) {  // Qwen3: per-head RMSNorm before RoPE
    q = q_norm(q);
    k = k_norm(k);
  }
  q = apply_rope(q.transpose(1, 2), cos, sin);  // (B, H, T, D)
  k = apply_rope(k.transpose(1, 2), cos, sin);  // (B, KV, T, D)
  v = v.transpose(1, 2);
  if (cache_k) {
    if (cache_k->defined()) {
      k = torch::cat({*cache_k, k}, 2);
      v = torch::cat({*cache_v, v}, 2);
    }
    *cache_k = k;
    *cache_v = v;
  }
  // Grouped-query attention: query head h reads kv head h / (H / KV).
  const int64_t rep = heads_ / kv_heads_;
  if (rep > 1) {
    k = k.repeat_interleave(rep, 1);
    v = v.repeat_interleave(rep, 1);
  }
  auto y = causal_attention(q, k, v, 0.0, false);  // (B, H, T, D)
  y = y.transpose(1, 2).contiguous().view({B, T, heads_ * head_dim_});
  return captured_linear(o_proj, y);
}

LlamaMlpImpl::LlamaMlpImpl(const LlamaConfig& c) {
  gate_proj = register_module("gate_proj", linear(c.hidden_size, c.intermediate_size, c.mlp_bias));
  up_proj = register_module("up_proj", linear(c.hidden_size, c.intermediate_size, c.mlp_bias));
  down_proj = register_module("down_proj", linear(c.intermediate_size, c.hidden_size, c.mlp_bias));
}

torch::Tensor LlamaMlpImpl::forward(const torch::Tensor& x) {
  return captured_linear(down_proj, torch::silu(captured_linear(gate_proj, x)) * captured_linear(up_proj, x));
}

LlamaLayerImpl::LlamaLayerImpl(const LlamaConfig& c) {
  input_layernorm = register_module("input_layernorm", RmsNorm(c.hidden_size, c.rms_norm_eps));
  self_attn = register_module("self_attn", LlamaAttention(c));
  post_attention_layernorm = register_module("post_attention_layernorm", RmsNorm(c.hidden_size, c.rms_norm_eps));
  mlp = register_module("mlp", LlamaMlp(c));
}

torch::Tensor LlamaLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                      torch::Tensor* cache_k, torch::Tensor* cache_v) {
  auto h = x + self_attn->forward(input_layernorm(x), cos, sin, cache_k, cache_v);
  return h + mlp(post_attention_layernorm(h));
}

LlamaBodyImpl::LlamaBodyImpl(const LlamaConfig& c) {
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(c.vocab_size, c.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) layers->push_back(LlamaLayer(c));
  norm = register_module("norm", RmsNorm(c.hidden_size, c.rms_norm_eps));
}

LlamaImpl::LlamaImpl(const LlamaConfig& c) : config_(c) {
  model = register_module("model", LlamaBody(c));
  if (!c.tie_word_embeddings) lm_head = register_module("lm_head", linear(c.hidden_size, c.vocab_size, false));
  inv_freq_ = register_buffer("inv_freq", rope_inv_freq(c));
  torch::NoGradGuard no_grad;
  for (auto& p : named_parameters()) {
    const std::string& name = p.key();
    auto& t = p.value();
    if (name.find("norm") != std::string::npos) t.fill_(1.0);
    else if (name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0) t.zero_();
    else t.normal_(0.0, 0.02);
  }
}

torch::Tensor LlamaImpl::run(const torch::Tensor& idx, KVCache* cache) {
  const int64_t T = idx.size(1);
  const int64_t past = cache ? cache->length() : 0;
  TORCH_CHECK(past + T <= context_length(), "sequence of ", past + T, " tokens exceeds the context of ",
              context_length());
  auto x = model->embed_tokens(idx);  // (B, T, C)
  if (capturing()) capture({LayerCapture::Kind::kEmbeddings, nullptr, idx, x, 0, "model.embed_tokens.weight", ""});
  // RoPE angles in fp32 (positions × inverse frequencies), cast to the activations' dtype.
  const auto positions = torch::arange(past, past + T, torch::TensorOptions().dtype(torch::kFloat).device(idx.device()));
  const auto freqs = torch::outer(positions, inv_freq_.to(torch::kFloat));
  const auto emb = torch::cat({freqs, freqs}, -1);  // (T, D)
  const auto cos = emb.cos().to(x.scalar_type()), sin = emb.sin().to(x.scalar_type());
  const int64_t L = config_.num_hidden_layers;
  if (cache && cache->k.empty()) {
    cache->k.resize(L);
    cache->v.resize(L);
  }
  for (int64_t l = 0; l < L; ++l) {
    auto layer = model->layers[l]->as<LlamaLayer>();
    x = cache ? layer->forward(x, cos, sin, &cache->k[l], &cache->v[l]) : layer->forward(x, cos, sin, nullptr, nullptr);
  }
  x = model->norm(x);
  if (lm_head) return captured_linear(lm_head, x);
  auto logits = torch::nn::functional::linear(x, model->embed_tokens->weight);  // tied head
  if (capturing()) capture({LayerCapture::Kind::kTiedOutput, nullptr, x, logits, 0, "model.embed_tokens.weight", ""});
  return logits;
}

torch::Tensor LlamaImpl::forward(const torch::Tensor& idx) { return run(idx, nullptr); }

torch::Tensor LlamaImpl::forward_cached(const torch::Tensor& idx, KVCache& cache) { return run(idx, &cache); }

}  // namespace retain
