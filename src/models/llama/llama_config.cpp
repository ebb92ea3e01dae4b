// config.json of the Llama family (see LlamaConfig in llama.h): Hugging Face's defaults per
// model_type, every key this decoder does not implement refused by name with its value.
#include <cmath>

#include "retain/errors.h"
#include "retain/llama.h"

namespace retain {
namespace {

struct Reader {
  const nlohmann::json& j;
  const std::string& what;

  bool has(const char* key) const { return j.contains(key) && !j.at(key).is_null(); }
  [[noreturn]] void fail(const std::string& key, const std::string& rule) const {
    throw ConfigError(what + ": \"" + key + "\" " + rule + (j.contains(key) ? ", got " + j.at(key).dump() : ""));
  }
  // A positive integer, at most `max` (sizes bounded by what any real checkpoint has, so that a
  // typo cannot ask for terabytes).
  int64_t positive(const char* key, int64_t fallback, int64_t max = int64_t(1) << 20) const {
    if (!has(key)) return fallback;
    const auto& v = j.at(key);
    if (!v.is_number_integer() || v.get<int64_t>() <= 0) fail(key, "must be a positive integer");
    if (v.get<int64_t>() > max) fail(key, "must be at most " + std::to_string(max));
    return v.get<int64_t>();
  }
  double number(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    if (!j.at(key).is_number() || !std::isfinite(j.at(key).get<double>())) fail(key, "must be a number");
    return j.at(key).get<double>();
  }
  bool flag(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    if (!j.at(key).is_boolean()) fail(key, "must be true or false");
    return j.at(key).get<bool>();
  }
};

void refuse_present(const Reader& r, const char* key, const std::string& why) {
  if (r.has(key)) r.fail(key, why);
}

// rope_scaling (transformers v4) or rope_parameters (v5): type, factor, llama3's frequencies.
void read_rope(const Reader& r, LlamaConfig& c) {
  const char* key = r.has("rope_parameters") ? "rope_parameters" : "rope_scaling";
  c.rope_theta = r.number("rope_theta", c.rope_theta);
  if (!r.has(key)) return;
  const nlohmann::json& s = r.j.at(key);
  if (!s.is_object()) r.fail(key, "must be an object or null");
  const Reader rs{s, r.what + ": " + key};
  if (rs.has("rope_theta")) c.rope_theta = rs.number("rope_theta", c.rope_theta);
  std::string type = "default";
  for (const char* k : {"rope_type", "type"})
    if (rs.has(k)) {
      if (!s.at(k).is_string()) rs.fail(k, "must be a string");
      type = s.at(k).get<std::string>();
      break;
    }
  if (type != "default" && type != "linear" && type != "llama3")
    rs.fail(s.contains("rope_type") ? "rope_type" : "type",
            "is a RoPE scaling retain does not implement (it reads default, linear and llama3)");
  c.rope.type = type;
  if (type == "default") return;
  c.rope.factor = rs.number("factor", 0);
  if (!(c.rope.factor >= 1)) rs.fail("factor", "must be a number ≥ 1");
  if (type == "llama3") {
    c.rope.low_freq_factor = rs.number("low_freq_factor", 1);
    c.rope.high_freq_factor = rs.number("high_freq_factor", 4);
    c.rope.original_max_position_embeddings = rs.positive("original_max_position_embeddings", c.max_position_embeddings);
    if (!(c.rope.high_freq_factor > c.rope.low_freq_factor))
      rs.fail("high_freq_factor", "must be larger than low_freq_factor");
  }
}

}  // namespace

LlamaConfig LlamaConfig::from_json(const nlohmann::json& j, const std::string& what) {
  if (!j.is_object()) throw ConfigError(what + ": a config must be a JSON object");
  const Reader r{j, what};
  LlamaConfig c;
  c.source = j;
  if (!j.contains("model_type") || !j.at("model_type").is_string()) r.fail("model_type", "must be a string");
  c.model_type = j.at("model_type").get<std::string>();
  const std::string& t = c.model_type;
  if (t != "llama" && t != "qwen2" && t != "qwen3" && t != "mistral")
    r.fail("model_type", "is not one of the Llama family's llama, qwen2, qwen3, mistral");
  // Hugging Face's config-class defaults.
  const bool qwen = t == "qwen2" || t == "qwen3";
  c.vocab_size = r.positive("vocab_size", qwen ? 151936 : 32000, int64_t(1) << 24);
  c.hidden_size = r.positive("hidden_size", 4096);
  c.intermediate_size = r.positive("intermediate_size", t == "llama" ? 11008 : t == "mistral" ? 14336 : 22016);
  c.num_hidden_layers = r.positive("num_hidden_layers", 32, 4096);
  c.num_attention_heads = r.positive("num_attention_heads", 32);
  c.num_key_value_heads = r.positive("num_key_value_heads", t == "mistral" ? 8 : c.num_attention_heads);
  const int64_t default_head_dim = t == "qwen3" ? 128 : c.hidden_size / c.num_attention_heads;
  c.head_dim = r.positive("head_dim", default_head_dim);
  c.max_position_embeddings =
      r.positive("max_position_embeddings", t == "llama" ? 2048 : t == "mistral" ? 131072 : 32768, int64_t(1) << 24);
  c.rms_norm_eps = r.number("rms_norm_eps", 1e-6);
  c.tie_word_embeddings = r.flag("tie_word_embeddings", false);
  const bool attention_bias = r.flag("attention_bias", false);
  c.qkv_bias = t == "qwen2" ? true : attention_bias;
  c.o_bias = (t == "llama" || t == "qwen3") && attention_bias;
  c.mlp_bias = t == "llama" && r.flag("mlp_bias", false);
  c.qk_norm = t == "qwen3";
  read_rope(r, c);

  // What this decoder does not implement, refused by name.
  for (const char* key : {"num_experts", "num_local_experts", "moe_intermediate_size", "num_experts_per_tok"})
    refuse_present(r, key, "belongs to a mixture-of-experts model, which retain does not train");
  refuse_present(r, "quantization_config", "marks a quantized checkpoint; import the full-precision weights");
  if (r.has("hidden_act") && j.at("hidden_act") != "silu") r.fail("hidden_act", "must be silu (SwiGLU)");
  if (r.number("attention_dropout", 0) != 0) r.fail("attention_dropout", "must be 0");
  if (qwen && r.flag("use_sliding_window", false))
    r.fail("use_sliding_window", "asks for sliding-window layers, which retain does not implement");
  if (t == "mistral") c.sliding_window = j.contains("sliding_window") ? r.positive("sliding_window", 0) : 4096;
  if (t == "mistral" && c.rope.type != "default") r.fail("rope_scaling", "is not read by Mistral's modeling code");
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    r.fail("num_key_value_heads", "must divide num_attention_heads (" + std::to_string(c.num_attention_heads) + ")");
  if (c.head_dim % 2 != 0) r.fail("head_dim", "must be even (rotary pairs)");
  if (!(c.rms_norm_eps > 0)) r.fail("rms_norm_eps", "must be positive");
  if (!(c.rope_theta > 0)) r.fail("rope_theta", "must be positive");
  for (const char* key : {"torch_dtype", "dtype"})
    if (r.has(key)) {
      const auto& v = j.at(key);
      if (!v.is_string() || (v != "float32" && v != "bfloat16" && v != "float16"))
        r.fail(key, "must be float32, bfloat16 or float16");
      c.dtype = v.get<std::string>();
    }
  return c;
}

int64_t LlamaConfig::context_length() const {
  return sliding_window > 0 ? std::min(sliding_window, max_position_embeddings) : max_position_embeddings;
}

int64_t LlamaConfig::num_parameters() const {
  int64_t n = 0;
  for (const auto& [name, shape] : llama_tensor_shapes(*this)) {
    int64_t k = 1;
    for (const int64_t d : shape) k *= d;
    n += k;
  }
  return n;
}

std::vector<std::pair<std::string, std::vector<int64_t>>> llama_tensor_shapes(const LlamaConfig& c) {
  const int64_t C = c.hidden_size, D = c.head_dim, H = c.num_attention_heads, KV = c.num_key_value_heads,
                I = c.intermediate_size;
  std::vector<std::pair<std::string, std::vector<int64_t>>> out = {{"model.embed_tokens.weight", {c.vocab_size, C}}};
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    out.push_back({p + "input_layernorm.weight", {C}});
    out.push_back({p + "self_attn.q_proj.weight", {H * D, C}});
    out.push_back({p + "self_attn.k_proj.weight", {KV * D, C}});
    out.push_back({p + "self_attn.v_proj.weight", {KV * D, C}});
    out.push_back({p + "self_attn.o_proj.weight", {C, H * D}});
    if (c.qkv_bias) {
      out.push_back({p + "self_attn.q_proj.bias", {H * D}});
      out.push_back({p + "self_attn.k_proj.bias", {KV * D}});
      out.push_back({p + "self_attn.v_proj.bias", {KV * D}});
    }
    if (c.o_bias) out.push_back({p + "self_attn.o_proj.bias", {C}});
    if (c.qk_norm) {
      out.push_back({p + "self_attn.q_norm.weight", {D}});
      out.push_back({p + "self_attn.k_norm.weight", {D}});
    }
    out.push_back({p + "post_attention_layernorm.weight", {C}});
    out.push_back({p + "mlp.gate_proj.weight", {I, C}});
    out.push_back({p + "mlp.up_proj.weight", {I, C}});
    out.push_back({p + "mlp.down_proj.weight", {C, I}});
    if (c.mlp_bias) {
      out.push_back({p + "mlp.gate_proj.bias", {I}});
      out.push_back({p + "mlp.up_proj.bias", {I}});
      out.push_back({p + "mlp.down_proj.bias", {C}});
    }
  }
  out.push_back({"model.norm.weight", {C}});
  if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", {c.vocab_size, C}});
  return out;
}

}  // namespace retain
