// CUDA tests: the same computations on the GPU and on the CPU must agree — the forward pass, the
// Fisher (batched on the device against the CPU loop), the EWC penalty and its gradient, the
// evaluation, greedy generation, and training in fp32 (TF32 off) and bf16 autocast. Each test skips
// where no CUDA device is present (the CPU machines that run CI); scripts/gpu-check.sh runs them.
#include <gtest/gtest.h>

#include <random>

#include <torch/cuda.h>

#include "retain/eval.h"
#include "retain/ewc.h"
#include "retain/model.h"
#include "retain/trainer.h"
#include "test_util.h"

namespace retain {
namespace {

using testing_util::TempDir;

class CudaTest : public testing::Test {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
    set_tf32(false);  // fp32 comparisons need fp32 matrix products
  }
  static GptConfig tiny() {
    GptConfig c;
    c.vocab_size = 300, c.n_positions = 64, c.n_embd = 32, c.n_layer = 2, c.n_head = 4;
    return c;
  }
  // Random conversations of `len` tokens whose second half is trained.
  static std::vector<RenderedChat> data(int n, int len, unsigned seed = 0) {
    std::mt19937 rng(seed);
    std::vector<RenderedChat> out(n);
    for (auto& ex : out)
      for (int t = 0; t < len; ++t) ex.ids.push_back(rng() % 300), ex.mask.push_back(t >= len / 2);
    return out;
  }
  // A copy of `model` on `device`.
  static Gpt copy_to(Gpt& model, const torch::Device& device) {
    Gpt other(model->config());
    load_parameters(*other, parameter_tensors(*model), "copy");
    other->to(device);
    return other;
  }
};

double max_rel(const TensorMap& a, const TensorMap& b) {
  double worst = 0;
  for (const auto& [name, t] : a) {
    const auto other = b.at(name).to(torch::kCPU);
    worst = std::max(worst, (t.cpu() - other).abs().max().item<double>() /
                                std::max(1e-30, t.abs().max().item<double>()));
  }
  return worst;
}

TEST_F(CudaTest, ForwardEvaluationAndGenerationMatchTheCpu) {
  torch::manual_seed(1);
  Gpt cpu(tiny());
  Gpt gpu = copy_to(cpu, torch::kCUDA);
  cpu->eval(), gpu->eval();
  torch::NoGradGuard no_grad;
  const auto ids = torch::randint(300, {3, 40}, torch::kLong);
  EXPECT_TRUE(torch::allclose(cpu->forward(ids), gpu->forward(ids.cuda()).cpu(), 1e-4, 1e-4));
  const auto set = data(10, 30);
  const LossStats a = evaluate_loss(cpu, set, 4), b = evaluate_loss(gpu, set, 4);
  EXPECT_NEAR(a.loss, b.loss, 1e-4 * a.loss);
  EXPECT_EQ(a.token_accuracy, b.token_accuracy);
  GenerateOptions g;
  g.max_new_tokens = 12;
  EXPECT_EQ(generate(cpu, {1, 2, 3}, g), generate(gpu, {1, 2, 3}, g));
}

TEST_F(CudaTest, BatchedFisherOnTheDeviceEqualsTheCpuLoop) {
  torch::manual_seed(2);
  Gpt cpu(tiny());
  Gpt gpu = copy_to(cpu, torch::kCUDA);
  const auto set = data(24, 33, 3);
  FisherOptions o;
  o.batch_size = 8;
  o.path = FisherOptions::Path::kLoop;
  const TensorMap reference = estimate_fisher(cpu, set, o);
  o.path = FisherOptions::Path::kBatched;
  const TensorMap fast = estimate_fisher(gpu, set, o);
  EXPECT_TRUE(fast.at("wte.weight").is_cuda());
  EXPECT_LT(max_rel(reference, fast), 1e-4);
}

TEST_F(CudaTest, EwcPenaltyAndItsGradientOnTheDevice) {
  torch::manual_seed(3);
  Gpt cpu(tiny());
  TensorMap fisher, anchor;
  for (const auto& [name, t] : parameter_tensors(*cpu)) {
    fisher[name] = torch::rand_like(t);
    anchor[name] = t + 0.01 * torch::randn_like(t);
  }
  const EwcState state_cpu = consolidate(nullptr, fisher, anchor, 1.0);
  TensorMap fisher_gpu, anchor_gpu;
  for (const auto& [name, t] : fisher) fisher_gpu[name] = t.cuda(), anchor_gpu[name] = anchor.at(name).cuda();
  const EwcState state_gpu = consolidate(nullptr, fisher_gpu, anchor_gpu, 1.0);
  Gpt gpu = copy_to(cpu, torch::kCUDA);
  const double want = ewc_penalty(*cpu, state_cpu, 50.0).item<double>();
  EXPECT_NEAR(ewc_penalty(*gpu, state_gpu, 50.0).item<double>(), want, 1e-4 * want);
  const EwcPenalty penalty(*gpu, state_gpu, 50.0);
  EXPECT_NEAR(penalty.add_gradient().item<double>(), want, 1e-4 * want);
  // λ·F·(θ − θ*) in .grad().
  const torch::Tensor g = gpu->ln_f->weight.grad().cpu();
  const torch::Tensor expect = 50.0 * fisher.at("ln_f.weight") * (cpu->ln_f->weight.detach() - anchor.at("ln_f.weight"));
  EXPECT_TRUE(torch::allclose(g, expect, 1e-4, 1e-6));
}

TEST_F(CudaTest, TrainingInFp32MatchesTheCpuAndBf16Learns) {
  TempDir dir;
  const auto set = data(32, 40, 4);
  TrainConfig c;
  c.max_steps = 6, c.batch_size = 8, c.lr = 1e-3, c.log_every = 1, c.group_by_length = false;
  c.adam_eps = 1e-4;  // as in the data-parallel test: keeps the comparison about the gradients
  torch::manual_seed(4);
  Gpt cpu(tiny());
  Gpt gpu = copy_to(cpu, torch::kCUDA);
  Gpt gpu_bf16 = copy_to(cpu, torch::kCUDA);
  const TrainSummary a = train(cpu, c, set, {}, dir / "cpu", false);
  c.device = "cuda";
  const TrainSummary b = train(gpu, c, set, {}, dir / "gpu", false);
  EXPECT_NEAR(a.last_loss, b.last_loss, 1e-3 * a.last_loss);
  EXPECT_LT(max_rel(parameter_tensors(*cpu), parameter_tensors(*gpu)), 1e-3);

  c.precision = "bf16";
  c.max_steps = 30;
  const TrainSummary bf16 = train(gpu_bf16, c, set, {}, dir / "bf16", false);
  EXPECT_EQ(bf16.skipped_updates, 0);
  EXPECT_LT(bf16.last_loss, std::log(300.0) - 0.5);  // learnt something beyond uniform
  for (const auto& [name, t] : parameter_tensors(*gpu_bf16)) EXPECT_EQ(t.scalar_type(), torch::kFloat) << name;
}

}  // namespace
}  // namespace retain
