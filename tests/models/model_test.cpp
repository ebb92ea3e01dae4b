// Tests of the GPT-2 model (model.h): config validation, parameter names and count, causality, the
// KV cache, a hand-written reference forward pass, the loss helpers, greedy generation, and model
// directories (save → load → identical tensors, refusals, mis-shaped weights).
//
// Models are tiny (2 layers, n_embd 16) and run on the CPU in fp32.
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "test_util.h"
#include "retain/checkpoint.h"
#include "retain/errors.h"
#include "retain/model.h"
#include "retain/tokenizer.h"

namespace retain {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

GptConfig tiny_config(int64_t vocab_size = 37) {
  GptConfig c;
  c.vocab_size = vocab_size;
  c.n_positions = 16;
  c.n_embd = 16;
  c.n_layer = 2;
  c.n_head = 2;
  return c;
}

// A seeded model whose LayerNorm weights and every bias are perturbed away from their 1 / 0
// initialisation, so a reference that forgot one of them would disagree.
Gpt perturbed_model(const GptConfig& c, uint64_t seed) {
  torch::manual_seed(seed);
  Gpt model(c);
  torch::NoGradGuard no_grad;
  for (auto& p : model->named_parameters())
    if (p.value().dim() == 1) p.value().add_(torch::randn_like(p.value()) * 0.1);
  model->eval();
  return model;
}

using testing_util::TempDir;

void expect_config_error(const json& j, const std::vector<std::string>& needles) {
  try {
    GptConfig::from_json(j, "m/config.json");
    ADD_FAILURE() << "accepted " << j.dump();
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("m/config.json: ", 0), 0u) << msg;
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << msg;
  }
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

// ---------------------------------------------------------------------------------------------
// GptConfig

TEST(GptConfig, ReadsHuggingFaceKeysAndIgnoresOthers) {
  const json j = {{"model_type", "gpt"},  {"vocab_size", 300}, {"n_positions", 32},
                  {"n_embd", 24},         {"n_layer", 3},      {"n_head", 4},
                  {"layer_norm_epsilon", 1e-6}, {"attn_pdrop", 0.1}, {"torch_dtype", "float32"}};
  const GptConfig c = GptConfig::from_json(j, "m/config.json");
  EXPECT_EQ(c.model_type, "gpt2");
  EXPECT_EQ(c.vocab_size, 300);
  EXPECT_EQ(c.n_positions, 32);
  EXPECT_EQ(c.n_embd, 24);
  EXPECT_EQ(c.n_layer, 3);
  EXPECT_EQ(c.n_head, 4);
  EXPECT_DOUBLE_EQ(c.layer_norm_epsilon, 1e-6);
  EXPECT_DOUBLE_EQ(c.attn_pdrop, 0.1);
  // to_json → from_json gives the same config back.
  const GptConfig back = GptConfig::from_json(c.to_json(), "back");
  EXPECT_EQ(back.to_json(), c.to_json());
}

TEST(GptConfig, RejectsNEmbdNotDivisibleByNHead) {
  expect_config_error({{"n_embd", 30}, {"n_head", 4}}, {"n_embd (30)", "n_head (4)", "divisible"});
}

TEST(GptConfig, RejectsNonPositiveAndMistypedSizes) {
  expect_config_error({{"n_layer", -1}}, {"\"n_layer\"", "positive integer", "-1"});
  expect_config_error({{"n_embd", 0}}, {"\"n_embd\"", "positive integer"});
  expect_config_error({{"vocab_size", -260}}, {"\"vocab_size\""});
  expect_config_error({{"n_positions", "1024"}}, {"\"n_positions\"", "\"1024\""});
  expect_config_error({{"n_head", 2.5}}, {"\"n_head\""});
  expect_config_error({{"layer_norm_epsilon", 0}}, {"\"layer_norm_epsilon\""});
  expect_config_error({{"resid_pdrop", 1.0}}, {"\"resid_pdrop\"", "[0, 1)"});
}

TEST(GptConfig, RejectsUnknownModelType) {
  expect_config_error({{"model_type", "llama"}}, {"unsupported model_type \"llama\"", "gpt2"});
  expect_config_error({{"model_type", 2}}, {"\"model_type\" must be a string"});
  expect_config_error(json::array({1, 2}), {"JSON object"});
}

TEST(GptConfig, NumParametersMatchesTheModelsParameters) {
  for (const auto& c : {tiny_config(), tiny_config(260), [] {
         GptConfig c = tiny_config();
         c.n_layer = 3, c.n_embd = 24, c.n_head = 3, c.n_positions = 40;
         return c;
       }()}) {
    Gpt model(c);
    int64_t count = 0;
    for (const auto& p : model->parameters()) count += p.numel();
    EXPECT_EQ(c.num_parameters(), count);
  }
  // Hugging Face's GPT-2 small (GPT2Model, tied head) has 124,439,808 parameters.
  GptConfig gpt2;
  gpt2.vocab_size = 50257, gpt2.n_positions = 1024, gpt2.n_embd = 768, gpt2.n_layer = 12,
  gpt2.n_head = 12;
  EXPECT_EQ(gpt2.num_parameters(), 124439808);
}

// ---------------------------------------------------------------------------------------------
// Parameters

TEST(Gpt, ParameterNamesAndShapesAreHuggingFaceGpt2s) {
  const GptConfig c = tiny_config();
  Gpt model(c);
  const int64_t C = c.n_embd, V = c.vocab_size, P = c.n_positions;
  std::map<std::string, std::vector<int64_t>> expected = {
      {"wte.weight", {V, C}}, {"wpe.weight", {P, C}}, {"ln_f.weight", {C}}, {"ln_f.bias", {C}}};
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string h = "h." + std::to_string(l) + ".";
    expected[h + "ln_1.weight"] = {C};
    expected[h + "ln_1.bias"] = {C};
    expected[h + "attn.c_attn.weight"] = {3 * C, C};  // torch layout [out, in]
    expected[h + "attn.c_attn.bias"] = {3 * C};
    expected[h + "attn.c_proj.weight"] = {C, C};
    expected[h + "attn.c_proj.bias"] = {C};
    expected[h + "ln_2.weight"] = {C};
    expected[h + "ln_2.bias"] = {C};
    expected[h + "mlp.c_fc.weight"] = {4 * C, C};
    expected[h + "mlp.c_fc.bias"] = {4 * C};
    expected[h + "mlp.c_proj.weight"] = {C, 4 * C};
    expected[h + "mlp.c_proj.bias"] = {C};
  }
  std::map<std::string, std::vector<int64_t>> actual;
  for (const auto& p : model->named_parameters())
    actual[p.key()] = std::vector<int64_t>(p.value().sizes().begin(), p.value().sizes().end());
  EXPECT_EQ(actual, expected);
  for (const auto& [name, shape] : actual) EXPECT_EQ(name.find("lm_head"), std::string::npos);
  // Buffers would be saved too; there must be none.
  EXPECT_EQ(model->named_buffers().size(), 0u);
}

TEST(Gpt, InitialisationFollowsGpt2) {
  GptConfig c = tiny_config(300);
  c.n_embd = 64, c.n_head = 4;
  torch::manual_seed(7);
  Gpt model(c);
  auto params = model->named_parameters();
  EXPECT_TRUE(torch::equal(params["h.1.ln_2.weight"], torch::ones({64})));
  EXPECT_TRUE(torch::equal(params["h.0.attn.c_attn.bias"], torch::zeros({192})));
  EXPECT_NEAR(params["wte.weight"].std().item<double>(), 0.02, 0.002);
  // Residual projections: 0.02 / sqrt(2 · n_layer) = 0.01.
  EXPECT_NEAR(params["h.0.mlp.c_proj.weight"].std().item<double>(), 0.01, 0.001);
  EXPECT_NEAR(params["h.1.attn.c_proj.weight"].std().item<double>(), 0.01, 0.002);
  // Same seed, same weights.
  torch::manual_seed(7);
  Gpt again(c);
  EXPECT_TRUE(torch::equal(again->named_parameters()["h.1.mlp.c_fc.weight"],
                           params["h.1.mlp.c_fc.weight"]));
}

// ---------------------------------------------------------------------------------------------
// Forward pass

TEST(Gpt, LogitsAtPositionTDoNotDependOnLaterTokens) {
  const GptConfig c = tiny_config();
  Gpt model = perturbed_model(c, 1);
  torch::NoGradGuard no_grad;
  torch::manual_seed(2);
  const auto idx = torch::randint(c.vocab_size, {2, 12}, torch::kLong);
  const auto logits = model->forward(idx);
  ASSERT_EQ(logits.sizes(), torch::IntArrayRef({2, 12, c.vocab_size}));
  for (int64_t t : {0, 4, 10}) {
    auto changed = idx.clone();
    changed.slice(1, t + 1).copy_((idx.slice(1, t + 1) + 1) % c.vocab_size);
    const auto other = model->forward(changed);
    EXPECT_LT(max_abs_diff(other.slice(1, 0, t + 1), logits.slice(1, 0, t + 1)), 1e-6) << "t=" << t;
    // The later positions do see the change (else the test would prove nothing).
    EXPECT_GT(max_abs_diff(other.slice(1, t + 1), logits.slice(1, t + 1)), 1e-4) << "t=" << t;
  }
}

TEST(Gpt, ForwardCachedStepByStepEqualsFullForward) {
  const GptConfig c = tiny_config();
  Gpt model = perturbed_model(c, 3);
  torch::NoGradGuard no_grad;
  torch::manual_seed(4);
  const auto idx = torch::randint(c.vocab_size, {2, c.n_positions}, torch::kLong);
  const auto full = model->forward(idx);

  KVCache cache;
  std::vector<torch::Tensor> parts = {model->forward_cached(idx.slice(1, 0, 5), cache)};  // a prefix
  EXPECT_EQ(cache.length(), 5);
  for (int64_t t = 5; t < c.n_positions; ++t) {
    parts.push_back(model->forward_cached(idx.slice(1, t, t + 1), cache));
    EXPECT_EQ(cache.length(), t + 1);
  }
  const auto stepped = torch::cat(parts, 1);
  ASSERT_EQ(stepped.sizes(), full.sizes());
  EXPECT_LT(max_abs_diff(stepped, full), 1e-5);
  // A chunk of several new positions after a cached prefix.
  KVCache cache2;
  model->forward_cached(idx.slice(1, 0, 6), cache2);
  const auto chunk = model->forward_cached(idx.slice(1, 6, 11), cache2);
  EXPECT_LT(max_abs_diff(chunk, full.slice(1, 6, 11)), 1e-5);
  // Past n_positions is refused.
  EXPECT_THROW(model->forward_cached(idx.slice(1, 0, 1), cache), c10::Error);
}

// GPT-2 written out with plain tensor ops, in fp64, from the named parameters.
torch::Tensor reference_forward(Gpt& model, const torch::Tensor& idx) {
  const GptConfig& c = model->config();
  std::map<std::string, torch::Tensor> w;
  for (const auto& p : model->named_parameters()) w[p.key()] = p.value().detach().to(torch::kDouble);
  const int64_t B = idx.size(0), T = idx.size(1), C = c.n_embd, H = c.n_head, D = C / H;
  const double eps = c.layer_norm_epsilon;

  // LayerNorm: (x − mean) / sqrt(var + eps) · γ + β, biased variance over the last dimension.
  auto layer_norm = [&](const torch::Tensor& x, const std::string& name) {
    auto mean = x.mean(-1, true);
    auto var = (x - mean).pow(2).mean(-1, true);
    return (x - mean) / torch::sqrt(var + eps) * w[name + ".weight"] + w[name + ".bias"];
  };
  auto linear = [&](const torch::Tensor& x, const std::string& name) {
    return torch::matmul(x, w[name + ".weight"].t()) + w[name + ".bias"];
  };
  // GELU, tanh approximation (Hendrycks & Gimpel 2016): ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
  auto gelu = [](const torch::Tensor& x) {
    return 0.5 * x * (1.0 + torch::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x.pow(3))));
  };
  // mask[i][j] = −∞ where key j comes after query i.
  auto mask = torch::zeros({T, T}, torch::kDouble);
  for (int64_t i = 0; i < T; ++i)
    for (int64_t j = i + 1; j < T; ++j) mask[i][j].fill_(-std::numeric_limits<double>::infinity());

  auto x = w["wte.weight"].index_select(0, idx.reshape({-1})).view({B, T, C}) +
           w["wpe.weight"].slice(0, 0, T);  // (B, T, C)
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const std::string h = "h." + std::to_string(l) + ".";
    auto qkv = linear(layer_norm(x, h + "ln_1"), h + "attn.c_attn");  // (B, T, 3C)
    auto heads = [&](int64_t part) {
      return qkv.slice(2, part * C, (part + 1) * C).reshape({B, T, H, D}).permute({0, 2, 1, 3});
    };
    auto q = heads(0), k = heads(1), v = heads(2);                       // (B, H, T, D)
    auto att = torch::matmul(q, k.transpose(2, 3)) / std::sqrt(double(D)) + mask;  // (B, H, T, T)
    att = torch::exp(att - std::get<0>(att.max(-1, true)));
    att = att / att.sum(-1, true);
    auto y = torch::matmul(att, v).permute({0, 2, 1, 3}).reshape({B, T, C});
    x = x + linear(y, h + "attn.c_proj");
    x = x + linear(gelu(linear(layer_norm(x, h + "ln_2"), h + "mlp.c_fc")), h + "mlp.c_proj");
  }
  return torch::matmul(layer_norm(x, "ln_f"), w["wte.weight"].t());  // tied head, (B, T, V)
}

TEST(Gpt, ForwardMatchesHandWrittenReference) {
  GptConfig c = tiny_config();
  c.layer_norm_epsilon = 1e-3;  // large enough that dropping eps would show
  Gpt model = perturbed_model(c, 5);
  torch::NoGradGuard no_grad;
  {
    // Larger weights than the 0.02 initialisation, so that every block matters in the logits.
    for (auto& p : model->parameters())
      if (p.dim() == 2) p.mul_(10.0);
  }
  torch::manual_seed(6);
  const auto idx = torch::randint(c.vocab_size, {2, 11}, torch::kLong);
  const auto logits = model->forward(idx);
  const auto expected = reference_forward(model, idx);
  EXPECT_GT(expected.abs().max().item<double>(), 0.5);  // not a degenerate comparison
  EXPECT_LT(max_abs_diff(logits, expected), 1e-5);
}

// ---------------------------------------------------------------------------------------------
// Losses

TEST(Losses, TokenLossesEqualNegativeLogSoftmaxOfTheTarget) {
  torch::manual_seed(8);
  const auto logits = torch::randn({2, 3, 7}) * 3;
  const auto targets = torch::randint(7, {2, 3}, torch::kLong);
  const auto losses = token_losses(logits, targets);
  ASSERT_EQ(losses.sizes(), torch::IntArrayRef({2, 3}));
  EXPECT_EQ(losses.scalar_type(), torch::kFloat);
  const auto expected = -torch::log_softmax(logits, -1).gather(2, targets.unsqueeze(2)).squeeze(2);
  EXPECT_LT(max_abs_diff(losses, expected), 1e-6);
}

TEST(Losses, MaskedLossSumByHand) {
  torch::manual_seed(9);
  const auto logits = torch::randn({2, 4, 5});
  const auto targets = torch::randint(5, {2, 4}, torch::kLong);
  const auto mask = torch::tensor({{1.f, 0.f, 1.f, 1.f}, {0.f, 0.f, 1.f, 0.f}});
  // Σ over masked positions of log Σ_v exp(z_v) − z_target.
  double expected = 0;
  for (int b = 0; b < 2; ++b)
    for (int t = 0; t < 4; ++t) {
      if (mask[b][t].item<float>() == 0) continue;
      double sum_exp = 0;
      for (int v = 0; v < 5; ++v) sum_exp += std::exp(logits[b][t][v].item<double>());
      expected += std::log(sum_exp) - logits[b][t][targets[b][t].item<int64_t>()].item<double>();
    }
  const auto sum = masked_lm_loss_sum(logits, targets, mask);
  EXPECT_EQ(sum.dim(), 0);
  EXPECT_NEAR(sum.item<double>(), expected, 1e-5);
  EXPECT_EQ(masked_lm_loss_sum(logits, targets, torch::zeros_like(mask)).item<double>(), 0.0);
}

// ---------------------------------------------------------------------------------------------
// Generation

// Greedy decoding by full forward passes over the growing sequence.
std::vector<int64_t> argmax_rollout(Gpt& model, std::vector<int64_t> seq, int64_t n) {
  torch::NoGradGuard no_grad;
  std::vector<int64_t> out;
  for (int64_t i = 0; i < n; ++i) {
    const auto logits = model->forward(torch::tensor(seq, torch::kLong).view({1, -1}));
    out.push_back(logits[0][-1].argmax().item<int64_t>());
    seq.push_back(out.back());
  }
  return out;
}

TEST(Generate, GreedyEqualsArgmaxRolloutOfFullForwards) {
  const GptConfig c = tiny_config();
  Gpt model = perturbed_model(c, 10);
  model->train();  // generate must switch to eval and back
  const std::vector<int64_t> prompt = {3, 14, 15, 9};
  GenerateOptions options;
  options.max_new_tokens = 8;
  const auto out = generate(model, prompt, options);
  EXPECT_TRUE(model->is_training());
  model->eval();
  EXPECT_EQ(out, argmax_rollout(model, prompt, 8));
}

TEST(Generate, StopsAtTheStopTokenWithoutReturningIt) {
  const GptConfig c = tiny_config();
  Gpt model = perturbed_model(c, 11);
  const std::vector<int64_t> prompt = {1, 2, 3};
  GenerateOptions options;
  options.max_new_tokens = 10;
  const auto free_run = generate(model, prompt, options);
  ASSERT_EQ(free_run.size(), 10u);
  // The first position k ≥ 1 whose token did not appear before it.
  size_t k = 1;
  while (k < free_run.size() &&
         std::find(free_run.begin(), free_run.begin() + k, free_run[k]) != free_run.begin() + k)
    ++k;
  ASSERT_LT(k, free_run.size()) << "greedy output repeats one token; pick another seed";
  options.stop_token = free_run[k];
  const auto stopped = generate(model, prompt, options);
  EXPECT_EQ(stopped, std::vector<int64_t>(free_run.begin(), free_run.begin() + k));
}

TEST(Generate, StopsAtNPositions) {
  const GptConfig c = tiny_config();  // n_positions 16
  Gpt model = perturbed_model(c, 12);
  GenerateOptions options;
  options.max_new_tokens = 100;
  // 10 prompt positions + 6 fed-back tokens fill the 16 positions; the 7th token is predicted at
  // the last position and never fed back.
  EXPECT_EQ(generate(model, std::vector<int64_t>(10, 4), options).size(), 7u);
  // A prompt longer than the context is cut from the left to n_positions − 1 tokens.
  std::vector<int64_t> long_prompt(40);
  for (size_t i = 0; i < long_prompt.size(); ++i) long_prompt[i] = (i * 7) % c.vocab_size;
  options.max_new_tokens = 1;
  const std::vector<int64_t> tail(long_prompt.end() - 15, long_prompt.end());
  EXPECT_EQ(generate(model, long_prompt, options), argmax_rollout(model, tail, 1));
}

TEST(Generate, SamplingIsReproducibleFromTheSeed) {
  const GptConfig c = tiny_config();
  Gpt model = perturbed_model(c, 13);
  GenerateOptions options;
  options.max_new_tokens = 12;
  options.temperature = 5.0;  // flat enough that two seeds disagree
  options.seed = 42;
  const auto a = generate(model, {5}, options);
  EXPECT_EQ(generate(model, {5}, options), a);
  options.seed = 43;
  EXPECT_NE(generate(model, {5}, options), a);
  // top_k 1 is greedy whatever the temperature.
  options.top_k = 1;
  GenerateOptions greedy;
  greedy.max_new_tokens = 12;
  EXPECT_EQ(generate(model, {5}, options), generate(model, {5}, greedy));
}

// ---------------------------------------------------------------------------------------------
// Model directories

TEST(ModelDir, SaveThenLoadGivesIdenticalTensors) {
  TempDir tmp;
  const std::string dir = (tmp.path / "model").string();
  const GptConfig c = tiny_config(260);
  Gpt model = perturbed_model(c, 14);
  save_model_dir(dir, c, model, ByteTokenizer(), /*overwrite=*/false, json{{"note", "test"}});
  EXPECT_TRUE(fs::exists(fs::path(dir) / kConfigFile));
  EXPECT_TRUE(fs::exists(fs::path(dir) / kWeightsFile));
  EXPECT_TRUE(fs::exists(fs::path(dir) / kTokenizerFile));
  EXPECT_TRUE(fs::exists(fs::path(dir) / "card.json"));

  LoadedModel loaded = load_model_dir(dir, /*init_seed=*/999);
  EXPECT_TRUE(loaded.has_weights);
  EXPECT_EQ(loaded.config.to_json(), c.to_json());
  EXPECT_EQ(loaded.tokenizer->type(), "byte");
  auto saved = model->named_parameters();
  auto got = loaded.model->named_parameters();
  ASSERT_EQ(got.size(), saved.size());
  for (const auto& p : saved) {
    ASSERT_TRUE(got.contains(p.key())) << p.key();
    EXPECT_TRUE(torch::equal(got[p.key()], p.value())) << p.key();
  }
  // Nothing but the model folder is left beside it (no temporary folder).
  std::vector<std::string> entries;
  for (const auto& e : fs::directory_iterator(tmp.path))
    entries.push_back(e.path().filename().string());
  EXPECT_EQ(entries, std::vector<std::string>{"model"});
}

TEST(ModelDir, RefusesAnExistingFolderUnlessOverwrite) {
  TempDir tmp;
  const std::string dir = (tmp.path / "model").string();
  const GptConfig c = tiny_config(260);
  Gpt first = perturbed_model(c, 15);
  save_model_dir(dir, c, first, ByteTokenizer(), false);
  Gpt second = perturbed_model(c, 16);
  try {
    save_model_dir(dir, c, second, ByteTokenizer(), false);
    ADD_FAILURE() << "overwrote without overwrite";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("already exists"), std::string::npos) << e.what();
  }
  // The refused save left the first model in place.
  EXPECT_TRUE(torch::equal(load_model_dir(dir, 0).model->wte->weight, first->wte->weight));
  save_model_dir(dir, c, second, ByteTokenizer(), /*overwrite=*/true);
  EXPECT_TRUE(torch::equal(load_model_dir(dir, 0).model->wte->weight, second->wte->weight));
  std::vector<std::string> entries;
  for (const auto& e : fs::directory_iterator(tmp.path))
    entries.push_back(e.path().filename().string());
  EXPECT_EQ(entries, std::vector<std::string>{"model"});
}

TEST(ModelDir, MisShapedOrMissingTensorIsACheckpointErrorNamingIt) {
  TempDir tmp;
  const std::string dir = (tmp.path / "model").string();
  const GptConfig c = tiny_config(260);
  Gpt model = perturbed_model(c, 17);
  save_model_dir(dir, c, model, ByteTokenizer(), false);
  const std::string weights = (fs::path(dir) / kWeightsFile).string();
  const TensorMap original = load_safetensors(weights).tensors;

  TensorMap bad = original;
  bad["h.1.mlp.c_fc.weight"] = torch::zeros({4 * c.n_embd, c.n_embd + 1});
  save_safetensors(weights, bad);
  try {
    load_model_dir(dir, 0);
    ADD_FAILURE() << "loaded a mis-shaped tensor";
  } catch (const CheckpointError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("h.1.mlp.c_fc.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[64, 17]"), std::string::npos) << msg;
  }

  bad = original;
  bad.erase("ln_f.bias");
  save_safetensors(weights, bad);
  try {
    load_model_dir(dir, 0);
    ADD_FAILURE() << "loaded with a missing tensor";
  } catch (const CheckpointError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("missing parameter ln_f.bias"), std::string::npos) << msg;
  }

  bad = original;
  bad["h.0.attn.bias"] = torch::ones({1, 1, 4, 4});  // a buffer of another layout: not ours
  save_safetensors(weights, bad);
  try {
    load_model_dir(dir, 0);
    ADD_FAILURE() << "loaded with an unknown tensor";
  } catch (const CheckpointError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("unknown tensor h.0.attn.bias"), std::string::npos) << msg;
  }
}

TEST(ModelDir, PresetWithoutWeightsIsInitialisedFromTheSeed) {
  TempDir tmp;
  const GptConfig c = tiny_config(260);
  {
    std::ofstream out(tmp.path / kConfigFile);
    out << c.to_json().dump();
  }
  LoadedModel a = load_model_dir(tmp.path.string(), 5);
  LoadedModel b = load_model_dir(tmp.path.string(), 5);
  LoadedModel other = load_model_dir(tmp.path.string(), 6);
  EXPECT_FALSE(a.has_weights);
  EXPECT_TRUE(torch::equal(a.model->wte->weight, b.model->wte->weight));
  EXPECT_FALSE(torch::equal(a.model->wte->weight, other.model->wte->weight));
  // A vocabulary smaller than the tokenizer's is refused.
  GptConfig small = c;
  small.vocab_size = 100;
  {
    std::ofstream out(tmp.path / kConfigFile);
    out << small.to_json().dump();
  }
  EXPECT_THROW(load_model_dir(tmp.path.string(), 5), CheckpointError);
  EXPECT_THROW(load_model_dir((tmp.path / "absent").string(), 5), CheckpointError);
}

}  // namespace
}  // namespace retain
