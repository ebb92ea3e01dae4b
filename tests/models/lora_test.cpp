// LoRA adapters for both chat families: a fresh adapter keeps the model's function exactly, merged
// equals unmerged, only the adapters train, PEFT's names and shapes, the EWC penalty's gradient on
// the adapter (direct, and through the factors of a frozen weight), the batched Fisher against the
// loop, adapter directories and what load_trainable_model refuses.
#include <filesystem>

#include <gtest/gtest.h>

#include "retain/chat_family.h"
#include "retain/data.h"
#include "retain/errors.h"
#include "retain/ewc.h"
#include "retain/family.h"
#include "retain/fileio.h"
#include "retain/lora_model.h"
#include "test_util.h"

namespace retain {
namespace {

namespace fs = std::filesystem;
using testing_util::TempDir;

const fs::path kSource = RETAIN_SOURCE_DIR;

std::string preset(const std::string& name) { return (kSource / "models" / name).string(); }

std::unique_ptr<ChatExamples> chats(int n) {
  auto all = read_chat_file((kSource / "data" / "support" / "release1-train.jsonl").string());
  all.resize(std::min<size_t>(all.size(), size_t(n)));
  return std::make_unique<ChatExamples>(std::move(all));
}

torch::Tensor logits_of(FamilyModel& model, const torch::Tensor& ids) {
  torch::NoGradGuard no_grad;
  model.module().eval();
  return as_chat_model(model, "test").lm().logits(ids);
}

torch::Tensor some_ids() { return torch::arange(2, 26, torch::kLong).remainder(200).view({2, 12}); }

// Gives every adapter's B random values, so that the adapter changes the model's function.
void perturb(torch::nn::Module& module, uint64_t seed) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(seed);
  for (const LoraSite& site : lora_sites(module)) site.b->weight.normal_(0, 0.05);
}

LoraConfig rank(int64_t r, double alpha = 16) {
  LoraConfig c;
  c.rank = r;
  c.alpha = alpha;
  return c;
}

class LoraFamilies : public testing::TestWithParam<std::string> {
 protected:
  std::unique_ptr<FamilyModel> load() { return load_family_model(preset(GetParam()), 7); }
  LoraLayout layout() { return *family_of(preset(GetParam())).lora_layout(); }
};

INSTANTIATE_TEST_SUITE_P(Chat, LoraFamilies, testing::Values("gpt-tiny", "llama-tiny", "qwen3-tiny"));

TEST_P(LoraFamilies, AFreshAdapterKeepsTheLogitsExactly) {
  auto model = load();
  const auto before = logits_of(*model, some_ids());
  const auto adapted = attach_lora(model->module(), rank(4), layout(), 1, "test");
  EXPECT_FALSE(adapted.empty());
  EXPECT_TRUE(has_lora(model->module()));
  EXPECT_TRUE(torch::equal(logits_of(*model, some_ids()), before));  // B = 0: the branch adds exact zeros
  for (const auto& [name, t] : lora_parameters(model->module()))
    if (name.find(".lora_B.") != std::string::npos) EXPECT_EQ(t.abs().sum().item<double>(), 0) << name;
    else EXPECT_GT(t.abs().sum().item<double>(), 0) << name;
}

TEST_P(LoraFamilies, MergedEqualsUnmerged) {
  auto model = load();
  attach_lora(model->module(), rank(4, 8), layout(), 1, "test");
  const auto base_logits = [&] {
    auto plain = load();
    return logits_of(*plain, some_ids());
  }();
  perturb(model->module(), 3);
  const auto unmerged = logits_of(*model, some_ids());
  EXPECT_GT((unmerged - base_logits).abs().max().item<double>(), 1e-4);  // the adapter does something
  merge_lora(model->module());
  EXPECT_FALSE(has_lora(model->module()));
  for (const auto& p : model->module().parameters()) EXPECT_TRUE(p.requires_grad());
  const auto merged = logits_of(*model, some_ids());
  EXPECT_LT((merged - unmerged).abs().max().item<double>(), 1e-5);
}

TEST_P(LoraFamilies, DefaultTargetsAreEveryAttentionAndMlpProjection) {
  auto model = load();
  const auto adapted = attach_lora(model->module(), rank(2), layout(), 1, "test");
  const int64_t per_layer = GetParam() == "gpt-tiny" ? 4 : 7;  // c_attn, attn.c_proj, c_fc, mlp.c_proj
  int64_t layers = 0;
  for (const auto& name : adapted)
    if (name.find(GetParam() == "gpt-tiny" ? "attn.c_attn" : "self_attn.q_proj") != std::string::npos) ++layers;
  EXPECT_GT(layers, 0);
  EXPECT_EQ(int64_t(adapted.size()), per_layer * layers);
  // Every trainable parameter is an adapter's; the rest is frozen.
  int64_t trainable = 0;
  for (const auto& p : model->module().named_parameters())
    if (p.value().requires_grad()) {
      EXPECT_TRUE(is_lora_parameter(p.key())) << p.key();
      ++trainable;
    }
  EXPECT_EQ(trainable, 2 * int64_t(adapted.size()));
}

TEST_P(LoraFamilies, OnlyTheAdaptersTrain) {
  TempDir tmp;
  auto model = load();
  attach_lora(model->module(), rank(4), layout(), 1, "test");
  TensorMap frozen;
  for (const auto& p : model->module().named_parameters())
    if (!is_lora_parameter(p.key())) frozen[p.key()] = p.value().detach().clone();
  const TensorMap adapters_before = [&] {
    TensorMap out;
    for (const auto& [n, t] : lora_parameters(model->module())) out[n] = t.clone();
    return out;
  }();
  const auto train_set = chats(8);
  const auto none = family_of(preset(GetParam())).no_examples();
  auto task = model->task(*train_set, *none, 64);
  TrainConfig config;
  config.max_steps = 3;
  config.batch_size = 4;
  config.lr = 1e-2;
  config.threads = 1;
  train(*task, config, tmp / "run", false);
  for (const auto& p : model->module().named_parameters()) {
    if (is_lora_parameter(p.key())) {
      EXPECT_FALSE(torch::equal(p.value(), adapters_before.at(p.key()))) << p.key() << " did not train";
    } else {
      EXPECT_TRUE(torch::equal(p.value(), frozen.at(p.key()))) << p.key() << " changed";
    }
  }
  // The run's checkpoint holds the adapters only.
  config.max_steps = 4;
  config.checkpoint_every = 2;
  train(*task, config, tmp / "run2", false);
  const auto ckpt = load_safetensors(tmp / "run2/checkpoints/step-2/model.safetensors");
  EXPECT_EQ(ckpt.tensors.size(), adapters_before.size());
  for (const auto& [name, t] : ckpt.tensors) EXPECT_TRUE(is_lora_parameter(name)) << name;
}

TEST_P(LoraFamilies, AdapterDirectoriesUsePeftNamesAndShapes) {
  TempDir tmp;
  auto model = load();
  const LoraLayout lay = layout();
  attach_lora(model->module(), rank(4, 32), lay, 1, "test");
  perturb(model->module(), 5);
  write_adapter_dir(tmp / "adapter", model->module(), rank(4, 32), lay, "my-base", {}, false);
  const auto stored = load_safetensors(tmp / "adapter/adapter_model.safetensors").tensors;
  const std::string module = GetParam() == "gpt-tiny" ? "base_model.model.transformer.h.0.attn.c_attn"
                                                      : "base_model.model.model.layers.0.self_attn.q_proj";
  ASSERT_TRUE(stored.count(module + ".lora_A.weight")) << stored.begin()->first;
  ASSERT_TRUE(stored.count(module + ".lora_B.weight"));
  const auto& a = stored.at(module + ".lora_A.weight");
  const auto& b = stored.at(module + ".lora_B.weight");
  EXPECT_EQ(a.size(0), 4);  // [r, in]
  EXPECT_EQ(b.size(1), 4);  // [out, r]
  const auto config = nlohmann::json::parse(read_file(tmp / "adapter/adapter_config.json"));
  EXPECT_EQ(config.at("peft_type"), "LORA");
  EXPECT_EQ(config.at("r"), 4);
  EXPECT_EQ(config.at("lora_alpha"), 32.0);
  EXPECT_EQ(config.at("base_model_name_or_path"), "my-base");
  EXPECT_EQ(config.at("fan_in_fan_out"), GetParam() == "gpt-tiny");
  EXPECT_EQ(config.at("bias"), "none");

  // Read back onto a fresh copy of the base: the same tensors, the same function.
  const AdapterFiles files = read_adapter_files(tmp / "adapter", lay);
  EXPECT_EQ(files.config.rank, 4);
  EXPECT_EQ(files.config.alpha, 32);
  auto other = load();
  attach_lora(other->module(), files.config, lay, 99, "test");
  load_adapter(other->module(), files, "test");
  for (const auto& [name, t] : lora_parameters(model->module()))
    EXPECT_TRUE(torch::equal(t, lora_parameters(other->module()).at(name))) << name;
  EXPECT_TRUE(torch::equal(logits_of(*other, some_ids()), logits_of(*model, some_ids())));
}

TEST_P(LoraFamilies, BatchedFisherEqualsTheLoopOnTheAdapter) {
  auto model = load();
  attach_lora(model->module(), rank(2), layout(), 1, "test");
  perturb(model->module(), 9);
  const auto set = chats(6);
  FisherOptions options;
  options.batch_size = 3;
  options.path = FisherOptions::Path::kLoop;
  const TensorMap loop = model->fisher(*set, options);
  options.path = FisherOptions::Path::kBatched;
  const TensorMap batched = model->fisher(*set, options);
  ASSERT_EQ(loop.size(), lora_parameters(model->module()).size());  // the adapter's parameters only
  ASSERT_EQ(batched.size(), loop.size());
  double mass = 0;
  for (const auto& [name, f] : loop) {
    EXPECT_TRUE(is_lora_parameter(name)) << name;
    EXPECT_TRUE(torch::allclose(batched.at(name), f, 1e-4, 1e-9)) << name << ": "
        << (batched.at(name) - f).abs().max().item<double>();
    mass += f.sum().item<double>();
  }
  EXPECT_GT(mass, 0);
}

// The adapters' gradients as the trainer would leave them after EwcPenalty::add_gradient.
std::map<std::string, torch::Tensor> penalty_grads(torch::nn::Module& module, const EwcPenalty& penalty, double* value) {
  for (auto& p : module.parameters()) p.mutable_grad() = torch::Tensor();
  *value = penalty.add_gradient().item<double>();
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : module.named_parameters())
    if (p.value().grad().defined()) out[p.key()] = p.value().grad().clone();
  return out;
}

std::map<std::string, torch::Tensor> autograd_grads(torch::nn::Module& module, const EwcState& state, double lambda,
                                                   double* value) {
  for (auto& p : module.parameters()) p.mutable_grad() = torch::Tensor();
  auto loss = ewc_penalty(module, state, lambda);
  *value = loss.item<double>();
  loss.backward();
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : module.named_parameters())
    if (p.value().grad().defined()) out[p.key()] = p.value().grad().clone();
  return out;
}

TEST(LoraEwc, ThePenaltyOnTheAdapterHasTheHandGradient) {
  auto model = load_family_model(preset("llama-tiny"), 7);
  attach_lora(model->module(), rank(2), *family_of(preset("llama-tiny")).lora_layout(), 1, "test");
  perturb(model->module(), 2);
  torch::manual_seed(4);
  EwcState state;  // a LoRA version's: the adapter's Fisher and anchor
  for (const auto& [name, t] : lora_parameters(model->module())) {
    state.fisher[name] = torch::rand_like(t);
    state.anchor[name] = t + 0.01 * torch::randn_like(t);
  }
  const double lambda = 3.0;
  const EwcPenalty penalty(model->module(), state, lambda);
  double fast = 0, slow = 0;
  const auto g = penalty_grads(model->module(), penalty, &fast);
  const auto ref = autograd_grads(model->module(), state, lambda, &slow);
  ASSERT_EQ(g.size(), state.fisher.size());
  double by_hand = 0;
  for (const auto& [name, t] : lora_parameters(model->module())) {
    const auto diff = t - state.anchor.at(name);
    const auto hand = lambda * state.fisher.at(name) * diff;  // ∂/∂θ λ/2 F (θ − θ*)²
    EXPECT_TRUE(torch::allclose(g.at(name), hand, 1e-5, 1e-8)) << name;
    EXPECT_TRUE(torch::allclose(ref.at(name), hand, 1e-5, 1e-8)) << name;
    by_hand += 0.5 * lambda * (state.fisher.at(name) * diff * diff).sum().item<double>();
  }
  EXPECT_NEAR(fast, by_hand, 1e-6 * std::max(1.0, by_hand));
  EXPECT_NEAR(slow, by_hand, 1e-6 * std::max(1.0, by_hand));
}

TEST(LoraEwc, AFullFisherPenalisesTheAdaptedWeightThroughItsFactors) {
  for (const std::string name : {"gpt-tiny", "qwen3-tiny"}) {
    auto model = load_family_model(preset(name), 7);
    const TensorMap weights = parameter_tensors(model->module());
    torch::manual_seed(6);
    EwcState state;  // a full version's: every parameter, anchored at the weights the adapter sits on
    for (const auto& [n, w] : weights) {
      state.fisher[n] = torch::rand_like(w);
      state.anchor[n] = w.clone();
    }
    const LoraConfig config = rank(3, 6);
    attach_lora(model->module(), config, *family_of(preset(name)).lora_layout(), 1, "test");
    perturb(model->module(), 8);
    const double lambda = 2.0;
    const EwcPenalty penalty(model->module(), state, lambda);
    double fast = 0, slow = 0;
    const auto g = penalty_grads(model->module(), penalty, &fast);
    const auto ref = autograd_grads(model->module(), state, lambda, &slow);
    // By hand: D = s·B·A for each adapted weight, penalty λ/2 Σ F D², ∂/∂B = λ s (F⊙D) Aᵀ.
    double by_hand = 0;
    for (const LoraSite& site : lora_sites(model->module())) {
      const auto& f = state.fisher.at(site.name + ".weight");
      const auto d = torch::matmul(site.b->weight, site.a->weight) * config.scale();
      by_hand += 0.5 * lambda * (f * d * d).sum().item<double>();
      const auto hand_b = lambda * config.scale() * torch::matmul(f * d, site.a->weight.t());
      EXPECT_TRUE(torch::allclose(g.at(site.name + ".lora_B.weight"), hand_b, 1e-4, 1e-7)) << site.name;
      EXPECT_TRUE(torch::allclose(g.at(site.name + ".lora_A.weight"), ref.at(site.name + ".lora_A.weight"), 1e-4, 1e-7))
          << site.name;
    }
    EXPECT_GT(by_hand, 0);
    EXPECT_NEAR(fast, by_hand, 1e-5 * by_hand) << name;
    EXPECT_NEAR(slow, by_hand, 1e-5 * by_hand) << name;
    for (const auto& [n, t] : g) EXPECT_TRUE(is_lora_parameter(n)) << n << " is frozen but got a gradient";
  }
}

TEST(LoraConfig, RefusesImpossibleSections) {
  auto error = [](const nlohmann::json& j) {
    try {
      LoraConfig::from_json(j, "round.json");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error({{"rank", 0}}).find("lora.rank"), std::string::npos);
  EXPECT_NE(error({{"rank", -2}}).find("lora.rank"), std::string::npos);
  EXPECT_NE(error({{"alpha", 8}}).find("needs \"rank\""), std::string::npos);
  EXPECT_NE(error({{"rank", 8}, {"alpah", 8}}).find("alpha"), std::string::npos);  // did you mean
  EXPECT_NE(error({{"rank", 8}, {"dropout", 1.0}}).find("lora.dropout"), std::string::npos);
  EXPECT_NE(error({{"rank", 8}, {"target_modules", nlohmann::json::array()}}).find("target_modules"), std::string::npos);
  EXPECT_NE(error({{"rank", 8}, {"target_modules", {"q_proj", "a b"}}}).find("\"a b\""), std::string::npos);
  const LoraConfig ok = LoraConfig::from_json({{"rank", 8}, {"alpha", 32}, {"target_modules", {"q_proj", "v_proj"}}}, "x");
  EXPECT_EQ(ok.scale(), 4.0);
  EXPECT_EQ(LoraConfig::from_json(ok.to_json(), "x").to_json(), ok.to_json());

  auto model = load_family_model(preset("llama-tiny"), 7);
  LoraConfig typo = rank(2);
  typo.target_modules = {"q_prj"};
  try {
    attach_lora(model->module(), typo, *family_of(preset("llama-tiny")).lora_layout(), 1, "round.json");
    ADD_FAILURE() << "a target that matches nothing was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("\"q_prj\" matches no linear layer"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(has_lora(model->module()));
  for (const auto& p : model->module().parameters()) EXPECT_TRUE(p.requires_grad());  // nothing was frozen
}

TEST(LoraModelDirs, AdapterDirectoriesLoadMergedOrContinuedAndRefuseOtherSettings) {
  TempDir tmp;
  // A trained base (a preset saved with its weights), and an adapter over it.
  auto base = load_family_model(preset("qwen3-tiny"), 7);
  base->save(tmp / "base", false, nlohmann::json());
  TrainableModel fresh = load_trainable_model(tmp / "base", 1, rank(4), "test");
  ASSERT_NE(dynamic_cast<LoraModel*>(fresh.model.get()), nullptr);
  EXPECT_EQ(fresh.adapter_base, tmp / "base");
  EXPECT_FALSE(fresh.continued);
  perturb(fresh.model->module(), 11);
  auto* lora = dynamic_cast<LoraModel*>(fresh.model.get());
  lora->set_base("../base", "base");
  lora->save(tmp / "adapter", false, {{"created_by", "test"}});
  for (const char* file : {"adapter_config.json", "adapter_model.safetensors", "retain_adapter.json", "card.json"})
    EXPECT_TRUE(fs::exists(fs::path(tmp / "adapter") / file)) << file;
  EXPECT_FALSE(fs::exists(fs::path(tmp / "adapter") / "model.safetensors"));
  EXPECT_TRUE(is_adapter_dir(tmp / "adapter"));
  EXPECT_EQ(config_dir(tmp / "adapter"), tmp / "base");
  EXPECT_EQ(family_of(tmp / "adapter").name(), "llama");

  const auto unmerged = logits_of(*fresh.model, some_ids());
  auto merged = load_family_model(tmp / "adapter", 0);  // evaluation and generation: merged once
  EXPECT_FALSE(has_lora(merged->module()));
  EXPECT_LT((logits_of(*merged, some_ids()) - unmerged).abs().max().item<double>(), 1e-5);

  TrainableModel continued = load_trainable_model(tmp / "adapter", 1, rank(4), "test");
  EXPECT_TRUE(continued.continued);
  EXPECT_EQ(continued.adapter_base, tmp / "base");
  EXPECT_TRUE(torch::equal(logits_of(*continued.model, some_ids()), unmerged));
  try {
    load_trainable_model(tmp / "adapter", 1, rank(8), "round.json");
    ADD_FAILURE() << "a rank other than the adapter's was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("lora.rank is 8"), std::string::npos) << e.what();
  }
  // A preset without weights has nothing for an adapter to adapt.
  EXPECT_THROW(load_trainable_model(preset("qwen3-tiny"), 1, rank(4), "test"), ConfigError);
  // A family without LoRA.
  try {
    lora_layout_of(family_for_type("mlp", "test"), "job.json");
    ADD_FAILURE() << "the mlp family has no LoRA layout";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("the mlp family has no LoRA"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace retain
