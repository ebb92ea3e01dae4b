// The llama family: config rules, RoPE scaling, the KV cache, the batched per-example Fisher
// against the loop, the dtype kept on disk, and refusals that leave nothing written.
#include <cmath>
#include <filesystem>

#include <gtest/gtest.h>

#include "retain/chat_task.h"
#include "retain/errors.h"
#include "retain/family.h"
#include "retain/fileio.h"
#include "retain/llama.h"
#include "test_util.h"

namespace retain {
namespace {

namespace fs = std::filesystem;
using testing_util::TempDir;

nlohmann::json tiny(const std::string& type) {
  nlohmann::json j = {{"model_type", type},        {"vocab_size", 300},      {"hidden_size", 32},
                      {"intermediate_size", 48},   {"num_hidden_layers", 2}, {"num_attention_heads", 4},
                      {"num_key_value_heads", 2}, {"max_position_embeddings", 64}, {"rms_norm_eps", 1e-5},
                      {"tie_word_embeddings", true}};
  if (type == "qwen3") j["head_dim"] = 12;
  return j;
}

std::string config_error(const nlohmann::json& j) {
  try {
    LlamaConfig::from_json(j, "config.json");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(LlamaConfig, DefaultsPerModelType) {
  const auto qwen2 = LlamaConfig::from_json(tiny("qwen2"), "c");
  EXPECT_TRUE(qwen2.qkv_bias);  // Qwen2 always has q/k/v biases, no key says so
  EXPECT_FALSE(qwen2.o_bias);
  const auto qwen3 = LlamaConfig::from_json(tiny("qwen3"), "c");
  EXPECT_TRUE(qwen3.qk_norm);
  EXPECT_EQ(qwen3.head_dim, 12);
  nlohmann::json no_head_dim = tiny("qwen3");
  no_head_dim.erase("head_dim");
  EXPECT_EQ(LlamaConfig::from_json(no_head_dim, "c").head_dim, 128);  // Qwen3Config's default
  auto biased = tiny("llama");
  biased["attention_bias"] = true;
  const auto llama = LlamaConfig::from_json(biased, "c");
  EXPECT_TRUE(llama.qkv_bias && llama.o_bias);
  EXPECT_EQ(llama.head_dim, 8);
  auto mistral = tiny("mistral");
  mistral["sliding_window"] = 16;
  EXPECT_EQ(LlamaConfig::from_json(mistral, "c").context_length(), 16);
  mistral["sliding_window"] = nullptr;
  EXPECT_EQ(LlamaConfig::from_json(mistral, "c").context_length(), 64);
}

TEST(LlamaConfig, RefusesWhatItDoesNotImplementByName) {
  auto j = tiny("llama");
  j["num_experts"] = 8;
  EXPECT_NE(config_error(j).find("\"num_experts\""), std::string::npos) << config_error(j);
  j = tiny("llama");
  j["quantization_config"] = {{"quant_method", "gptq"}};
  EXPECT_NE(config_error(j).find("quantization_config"), std::string::npos);
  j = tiny("llama");
  j["hidden_act"] = "gelu";
  EXPECT_NE(config_error(j).find("\"hidden_act\" must be silu"), std::string::npos) << config_error(j);
  j = tiny("llama");
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4}};
  EXPECT_NE(config_error(j).find("yarn"), std::string::npos) << config_error(j);
  j = tiny("qwen2");
  j["use_sliding_window"] = true;
  EXPECT_NE(config_error(j).find("use_sliding_window"), std::string::npos);
  j = tiny("llama");
  j["num_key_value_heads"] = 3;
  EXPECT_NE(config_error(j).find("num_key_value_heads"), std::string::npos);
}

TEST(LlamaRope, Llama3ScalingMatchesTheFormula) {
  auto j = tiny("llama");
  j["rope_theta"] = 10000.0;
  const auto plain = rope_inv_freq(LlamaConfig::from_json(j, "c"));
  j["rope_parameters"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                          {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 32}};
  const auto scaled = rope_inv_freq(LlamaConfig::from_json(j, "c"));
  ASSERT_EQ(scaled.size(0), 4);
  for (int64_t i = 0; i < 4; ++i) {
    const double f = plain[i].item<double>(), wavelen = 2 * M_PI / f;
    double want = f;
    if (wavelen > 32.0) want = f / 8;
    else if (wavelen >= 8.0) {
      const double s = (32.0 / wavelen - 1) / 3;
      want = (1 - s) * f / 8 + s * f;
    }
    EXPECT_NEAR(scaled[i].item<double>(), want, 1e-6 * f) << i;
  }
  // Some frequency of each kind, so that the test covers all three branches.
  EXPECT_NEAR(scaled[0].item<double>(), plain[0].item<double>(), 1e-9);
  EXPECT_NEAR(scaled[3].item<double>(), plain[3].item<double>() / 8, 1e-9);
}

TEST(LlamaModel, CachedDecodingEqualsTheFullForward) {
  for (const std::string type : {"llama", "qwen3", "qwen2"}) {
    torch::manual_seed(0);
    Llama model(LlamaConfig::from_json(tiny(type), "c"));
    model->eval();
    torch::NoGradGuard no_grad;
    const auto ids = torch::randint(0, 300, {2, 11}, torch::kLong);
    const auto full = model->forward(ids);
    KVCache cache;
    const auto a = model->forward_cached(ids.narrow(1, 0, 6), cache);
    const auto b = model->forward_cached(ids.narrow(1, 6, 5), cache);
    EXPECT_EQ(cache.length(), 11);
    EXPECT_EQ(cache.k[0].size(1), 2);  // the cache holds the kv heads, not their repeats
    EXPECT_LT((torch::cat({a, b}, 1) - full).abs().max().item<double>(), 1e-5) << type;
  }
}

std::vector<RenderedChat> random_chats(int64_t n, int64_t vocab) {
  std::vector<RenderedChat> out;
  for (int64_t i = 0; i < n; ++i) {
    RenderedChat c;
    const int64_t len = 5 + i % 7;
    for (int64_t t = 0; t < len; ++t) {
      c.ids.push_back((i * 31 + t * 7) % vocab);
      c.mask.push_back(t >= 2 ? 1 : 0);
    }
    out.push_back(c);
  }
  return out;
}

// The batched path covers RMSNorm, all seven projections, q/k norms, biases, the embedding and a
// tied or untied head: it must equal the one-example loop.
TEST(LlamaFisher, BatchedEqualsTheLoop) {
  for (const bool tied : {true, false}) {
    for (const std::string type : {"llama", "qwen2", "qwen3"}) {
      auto j = tiny(type);
      j["tie_word_embeddings"] = tied;
      if (type == "llama") j["attention_bias"] = j["mlp_bias"] = true;
      torch::manual_seed(1);
      Llama model(LlamaConfig::from_json(j, "c"));
      {  // norms away from 1, so that their Fisher is not the trivial one
        torch::NoGradGuard g;
        for (auto& p : model->named_parameters())
          if (p.key().find("norm") != std::string::npos) p.value().add_(torch::randn_like(p.value()) * 0.2);
      }
      const auto data = random_chats(9, 300);
      FisherOptions o;
      o.batch_size = 4;
      o.path = FisherOptions::Path::kLoop;
      const auto loop = estimate_fisher(*model, data, o);
      o.path = FisherOptions::Path::kBatched;
      const auto batched = estimate_fisher(*model, data, o);
      ASSERT_EQ(loop.size(), batched.size());
      for (const auto& [name, f] : loop) {
        const double scale = f.abs().max().item<double>();
        ASSERT_GT(scale, 0) << name << " has no Fisher (" << type << ")";
        const double diff = (batched.at(name) - f).abs().max().item<double>();
        EXPECT_LE(diff, 1e-5 * scale) << type << (tied ? " tied " : " untied ") << name;
      }
    }
  }
}

// An interrupted fine-tune of a Llama-family model resumes bit-identical to an uninterrupted one.
TEST(LlamaTrain, ResumeIsBitIdentical) {
  TempDir tmp;
  const auto data = random_chats(6, 300);
  TrainConfig c;
  c.max_steps = 5;
  c.batch_size = 2;
  c.grad_accum = 2;
  c.checkpoint_every = 2;
  c.warmup_steps = 1;
  c.eval_every = 0;
  const auto config = LlamaConfig::from_json(tiny("qwen3"), "c");
  torch::manual_seed(5);
  Llama x(config);
  train(*x, c, data, {}, tmp / "x", false);
  torch::manual_seed(5);
  Llama y(config);
  TrainHooks crash;
  crash.on_progress = [](int64_t step, int64_t) {
    if (step == 3) throw std::runtime_error("simulated crash");
  };
  EXPECT_THROW(train(*y, c, data, {}, tmp / "y", false, crash), std::runtime_error);
  torch::manual_seed(99);
  Llama z(config);
  const auto sz = train(*z, c, data, {}, tmp / "y", /*resume=*/true);
  EXPECT_EQ(sz.resumed_from_step, 2);
  auto zp = z->named_parameters();
  for (const auto& p : x->named_parameters()) EXPECT_TRUE(torch::equal(p.value(), zp[p.key()])) << p.key();
}

// A bf16 checkpoint stays bf16 on disk after a save; its config.json is written back as read.
TEST(LlamaDir, KeepsTheCheckpointDtype) {
  TempDir tmp;
  fs::create_directories(tmp / "src");
  auto j = tiny("llama");
  j["vocab_size"] = 260;
  j["torch_dtype"] = "bfloat16";
  write_file_atomic(tmp / "src/config.json", j.dump(2));
  torch::manual_seed(2);
  Llama model(LlamaConfig::from_json(j, "c"));
  TensorMap bf16;
  for (const auto& p : model->named_parameters()) bf16[p.key()] = p.value().detach().to(torch::kBFloat16);
  save_safetensors(tmp / "src/model.safetensors", bf16);
  const auto loaded = load_family_model(tmp / "src", 0);
  EXPECT_TRUE(loaded->has_weights());
  loaded->save(tmp / "out", false, {{"created_by", "test"}});
  const auto saved = load_safetensors(tmp / "out/model.safetensors");
  for (const auto& [name, t] : bf16) {
    ASSERT_EQ(saved.tensors.at(name).scalar_type(), torch::kBFloat16) << name;
    EXPECT_TRUE(torch::equal(saved.tensors.at(name), t)) << name;
  }
  EXPECT_EQ(nlohmann::json::parse(read_file(tmp / "out/config.json")), j);
}

TEST(LlamaDir, BadWeightsAreRefusedNamingTheTensor) {
  TempDir tmp;
  auto j = tiny("llama");
  j["vocab_size"] = 260;
  torch::manual_seed(3);
  Llama model(LlamaConfig::from_json(j, "c"));
  auto write = [&](const std::string& dir, TensorMap t) {
    fs::create_directories(tmp / dir);
    write_file_atomic(tmp / (dir + "/config.json"), j.dump());
    save_safetensors(tmp / (dir + "/model.safetensors"), t);
  };
  auto error = [&](const std::string& dir) {
    try {
      load_family_model(tmp / dir, 0);
    } catch (const CheckpointError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  TensorMap good;
  for (const auto& p : model->named_parameters()) good[p.key()] = p.value().detach().clone();
  auto missing = good;
  missing.erase("model.layers.1.mlp.up_proj.weight");
  write("missing", missing);
  EXPECT_NE(error("missing").find("model.layers.1.mlp.up_proj.weight is missing"), std::string::npos) << error("missing");
  auto shape = good;
  shape["model.norm.weight"] = torch::ones({31});
  write("shape", shape);
  EXPECT_NE(error("shape").find("model.norm.weight has shape"), std::string::npos) << error("shape");
  auto unknown = good;
  unknown["model.layers.0.self_attn.q_proj.lora_A"] = torch::ones({2, 2});
  write("unknown", unknown);
  EXPECT_NE(error("unknown").find("unknown tensor model.layers.0.self_attn.q_proj.lora_A"), std::string::npos);
  auto nan = good;
  nan["model.norm.weight"] = torch::full({32}, std::nan(""));
  write("nan", nan);
  EXPECT_NE(error("nan").find("non-finite"), std::string::npos);
  write("good", good);
  EXPECT_EQ(error("good"), "");
}

}  // namespace
}  // namespace retain
