// EWC benchmark on gpt-small: (1) the fast batched per-example Fisher against the one-example
// reference loop at batch 32, as a speed-up; (2) the cost of the EWC penalty on a training step.
// Usage: build/ewc [--threads N] [--examples N] [--seq T] [--steps N] [--model DIR] [--device cpu|cuda]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>

#include <torch/cuda.h>

#include "retain/batch.h"
#include "retain/ewc.h"
#include "retain/model.h"
#include "retain/optimizer.h"
#include "retain/trainer.h"

using namespace retain;
using Clock = std::chrono::steady_clock;

static torch::Device device{torch::kCPU};

// Seconds since t, after the device has finished its queued work.
static double seconds_since(Clock::time_point t) {
  if (device.is_cuda()) torch::cuda::synchronize();
  return std::chrono::duration<double>(Clock::now() - t).count();
}

int main(int argc, char** argv) {
  int threads = 2, examples = 64, seq = 128, steps = 10;
  std::string model_dir = std::string(RETAIN_SOURCE_DIR) + "/models/gpt-small";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--threads")) threads = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--examples")) examples = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--seq")) seq = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--steps")) steps = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--model")) model_dir = argv[i + 1];
    else if (!std::strcmp(argv[i], "--device")) device = parse_device(argv[i + 1]);
  }
  if (examples < 8 || seq < 2) {  // the penalty's step trains on examples 0–7
    std::fprintf(stderr, "ewc: --examples must be at least 8 and --seq at least 2\n");
    return 2;
  }
  torch::set_num_threads(threads);
  auto loaded = load_model_dir(model_dir, 0);
  auto& model = loaded.model;
  model->to(device);
  // Random conversations of `seq` tokens whose second half is trained.
  std::mt19937 rng(0);
  std::vector<RenderedChat> data(examples);
  for (auto& ex : data) {
    for (int t = 0; t < seq + 1; ++t) {
      ex.ids.push_back(rng() % 256);
      ex.mask.push_back(t > seq / 2);
    }
  }
  std::printf("EWC benchmark: %s (%ld parameters), %d examples × %d tokens, %s, %d threads\n",
              model_dir.c_str(), long(loaded.config.num_parameters()), examples, seq, device.str().c_str(), threads);

  FisherOptions opt;
  opt.num_samples = 0;
  opt.batch_size = 32;
  opt.path = FisherOptions::Path::kBatched;
  estimate_fisher(model, {data.begin(), data.begin() + 4}, opt);  // warm-up
  auto t = Clock::now();
  auto fast = estimate_fisher(model, data, opt);
  const double fast_s = seconds_since(t);
  opt.path = FisherOptions::Path::kLoop;
  t = Clock::now();
  auto loop = estimate_fisher(model, data, opt);
  const double loop_s = seconds_since(t);
  double max_rel = 0;
  for (const auto& [n, f] : loop)
    max_rel = std::max(max_rel, ((fast.at(n) - f).abs().max() / f.abs().max().clamp_min(1e-30)).item<double>());
  std::printf("fisher  batched per-example: %8.3f s (%6.1f examples/s)\n", fast_s, examples / fast_s);
  std::printf("fisher  one-example loop:    %8.3f s (%6.1f examples/s)\n", loop_s, examples / loop_s);
  std::printf("fisher  speed-up %.2fx   max relative difference %.2e\n", loop_s / fast_s, max_rel);

  // Penalty overhead on a training step (batch 8 × seq).
  TensorMap theta;
  for (const auto& p : model->named_parameters()) theta[p.key()] = p.value().detach().clone();
  EwcState state = consolidate(nullptr, fast, theta, 1.0);
  std::vector<std::pair<std::string, torch::Tensor>> named;
  std::vector<torch::Tensor> params;
  for (auto& p : model->named_parameters()) named.emplace_back(p.key(), p.value()), params.push_back(p.value());
  AdamW adam(named, {});
  const EwcPenalty penalty(*model, state, 100.0);
  std::vector<int64_t> idx = {0, 1, 2, 3, 4, 5, 6, 7};
  Batch b = to_device(make_batch(data, idx, seq), device);
  model->train();
  auto step = [&](bool ewc) {
    auto loss = masked_lm_loss_sum(model->forward(b.inputs), b.targets, b.mask) / double(b.trained_tokens);
    loss.backward();
    if (ewc) penalty.add_gradient();
    clip_grad_norm(params, 1.0);
    adam.step(1e-4);
    adam.zero_grad();
  };
  auto time_steps = [&](bool ewc) {
    step(ewc);
    seconds_since(Clock::now());  // drain the queue
    auto t0 = Clock::now();
    for (int i = 0; i < steps; ++i) step(ewc);
    return seconds_since(t0) / steps;
  };
  const double plain = time_steps(false), with_ewc = time_steps(true), plain2 = time_steps(false);
  const double base = std::min(plain, plain2);
  std::printf("step    without EWC %.1f ms, with EWC %.1f ms: penalty overhead %.1f%%\n", base * 1e3,
              with_ewc * 1e3, 100.0 * (with_ewc - base) / base);
  return 0;
}
