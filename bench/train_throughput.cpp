// Training throughput: tokens/s of retain's fine-tuning step on a model preset (gpt-small by
// default), next to a PyTorch (Python) twin of the same model and step run with the same settings.
//
// The step is the trainer's (src/trainer.cpp), built from the library's own pieces: Gpt forward →
// masked_lm_loss_sum / trained tokens → backward → clip_grad_norm → AdamW step → zero_grad, with
// the loss and gradient norm read on the host once per step as the trainer does, after the
// trainer's reuse_host_memory(). The batch is random token ids with every position trained, the
// same batch every step.
//
// Both sides start from the same weights and batch (written to a temporary safetensors file that
// the twin reads), so their per-step losses must agree: the table prints the largest difference,
// and --check turns a difference above tolerance into exit status 1.
//
//   build/train_throughput [--threads 2] [--steps 20] [--warmup 3] [--model models/gpt-small]
//                            [--preset gpt2-124m] [--batch 8] [--seq 256] [--device cpu|cuda]
//                            [--precision fp32|bf16] [--tf32] [--peak-tflops 989] [--no-twin]
//                            [--check] [--json] [--no-reuse-host-memory]
//
// --preset gpt2-124m is GPT-2 124M's shape (12 layers, 12 heads, 768 wide, 1,024 positions,
// vocabulary 50,257; no dropout). Model FLOPs utilisation = model FLOPs per token × tokens/s ÷
// the peak, with PaLM's count per token: 6·N (N the parameters without the position embeddings;
// the tied output projection counted once) + 12·layers·T·width for attention. On CUDA the peak is
// the dense bf16 rate of an H100 / H200 (989 TFLOP/s) unless --peak-tflops says otherwise; on the
// CPU, where no datasheet figure fits the machine at hand, it is the fp32 matrix-product rate this
// benchmark measures itself (the best of timed 1024³ products on the same threads), so the
// figure reads as the share of what this machine's BLAS can do.
//
// The twin runs as `$RETAIN_PYTHON bench/train_throughput_twin.py …` (default /usr/bin/python3,
// Debian's python3-torch). When it cannot run, the reason is printed with retain's figure alone.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/cuda.h>
#include <torch/torch.h>
#include <torch/version.h>
#include <sys/wait.h>
#include <unistd.h>

#include "retain/batch.h"
#include "retain/checkpoint.h"
#include "retain/model.h"
#include "retain/optimizer.h"
#include "retain/trainer.h"

namespace {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr double kLr = 3e-4, kWeightDecay = 0.01, kGradClip = 1.0;
constexpr uint64_t kSeed = 1234;
constexpr double kLossTolerance = 1e-3;  // relative, per step (fp32, same kernels, same threads)

struct Options {
  int64_t threads = 2, steps = 20, warmup = 3, batch = 8, seq = 256;
  std::string model_dir = std::string(RETAIN_SOURCE_DIR) + "/models/gpt-small";
  std::string device = "cpu";
  std::string precision = "fp32";
  bool tf32 = false;
  double peak_tflops = 989;
  bool peak_given = false;  // --peak-tflops: on the CPU too, instead of the measured GEMM rate
  std::string preset;  // "" or gpt2-124m
  bool twin = true, check = false, json = false;
  bool reuse_host_memory = true;  // as retain::train; off shows the cost of glibc's heap trimming
};

[[noreturn]] void usage(const std::string& problem) {
  std::cerr << "train_throughput: " << problem << "\n"
            << "usage: train_throughput [--threads N] [--steps N] [--warmup N] [--model DIR]\n"
            << "                        [--preset gpt2-124m] [--batch B] [--seq T] [--device cpu|cuda]\n"
            << "                        [--precision fp32|bf16] [--tf32] [--peak-tflops P] [--no-twin]\n"
            << "                        [--check] [--json] [--no-reuse-host-memory]\n";
  std::exit(2);
}

int64_t parse_count(const std::string& flag, const char* text, int64_t min) {
  char* end = nullptr;
  const long long v = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0' || v < min)
    usage(flag + " needs an integer ≥ " + std::to_string(min) + ", got \"" + text + "\"");
  return v;
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage(a + " needs a value");
      return argv[++i];
    };
    if (a == "--threads") o.threads = parse_count(a, value(), 1);
    else if (a == "--steps") o.steps = parse_count(a, value(), 1);
    else if (a == "--warmup") o.warmup = parse_count(a, value(), 0);
    else if (a == "--batch") o.batch = parse_count(a, value(), 1);
    else if (a == "--seq") o.seq = parse_count(a, value(), 1);
    else if (a == "--model") o.model_dir = value();
    else if (a == "--device") o.device = value();
    else if (a == "--preset") o.preset = value();
    else if (a == "--precision") o.precision = value();
    else if (a == "--tf32") o.tf32 = true;
    else if (a == "--peak-tflops") o.peak_tflops = std::atof(value()), o.peak_given = true;
    else if (a == "--no-twin") o.twin = false;
    else if (a == "--check") o.check = true;
    else if (a == "--json") o.json = true;
    else if (a == "--no-reuse-host-memory") o.reuse_host_memory = false;
    else if (a == "--help" || a == "-h") usage("measures tokens/s of retain's training step");
    else usage("unknown flag " + a);
  }
  if (o.device != "cpu" && o.device != "cuda") usage("--device must be cpu or cuda");
  if (o.device == "cuda" && !torch::cuda::is_available()) usage("--device cuda: no CUDA device");
  if (o.precision != "fp32" && o.precision != "bf16") usage("--precision must be fp32 or bf16");
  if (o.precision == "bf16" && o.device != "cuda") usage("--precision bf16 needs --device cuda");
  if (!o.preset.empty() && o.preset != "gpt2-124m") usage("--preset: only gpt2-124m is known");
  if (!(o.peak_tflops > 0)) usage("--peak-tflops must be positive");
  return o;
}

struct Figures {
  double tokens_per_s = 0, ms_per_step = 0;  // over the timed steps
  double median_ms_per_step = 0;  // less sensitive than the mean to a busy neighbour
  std::vector<double> losses, grad_norms;  // every step, warm-up included
};

// The shared starting point: every parameter by its name, and the batch under "batch.*".
retain::TensorMap initial_state(retain::Gpt& model, const retain::Batch& batch) {
  retain::TensorMap state;
  for (const auto& p : model->named_parameters()) state[p.key()] = p.value().detach().cpu();
  state["batch.inputs"] = batch.inputs;
  state["batch.targets"] = batch.targets;
  state["batch.mask"] = batch.mask;
  return state;
}

// This machine's fp32 matrix-product rate on the current threads, in FLOP/s: the best of timed
// 1024 × 1024 × 1024 products (large enough for the BLAS to reach its peak), for about 0.5 s.
double measure_gemm_flops() {
  torch::NoGradGuard no_grad;
  constexpr int64_t n = 1024;
  const auto a = torch::randn({n, n}), b = torch::randn({n, n});
  auto c = torch::empty({n, n});
  torch::mm_out(c, a, b);  // warm-up: the BLAS's thread pool and buffers
  double best = 0;
  const auto until = Clock::now() + std::chrono::milliseconds(500);
  for (int i = 0; i < 50 && (i < 3 || Clock::now() < until); ++i) {
    const auto t0 = Clock::now();
    torch::mm_out(c, a, b);
    best = std::max(best, 2.0 * n * n * n / std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

void sync(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0 : n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// warmup + steps training steps exactly as retain::train takes them (grad_accum 1, fp32).
Figures run_retain(retain::Gpt& model, const retain::Batch& host_batch, const Options& o) {
  const torch::Device device(o.device);
  if (o.reuse_host_memory) retain::reuse_host_memory();
  model->to(device);
  model->train();
  std::vector<std::pair<std::string, torch::Tensor>> named;
  std::vector<torch::Tensor> params;
  for (auto& p : model->named_parameters())
    if (p.value().requires_grad()) named.emplace_back(p.key(), p.value()), params.push_back(p.value());
  retain::AdamWOptions adam;
  adam.weight_decay = kWeightDecay;
  retain::AdamW optimizer(named, adam);
  const retain::Batch b = retain::to_device(host_batch, device);
  const double norm = 1.0 / double(b.trained_tokens);

  Figures f;
  Clock::time_point t0, t_step;
  std::vector<double> step_ms;
  for (int64_t step = 0; step < o.warmup + o.steps; ++step) {
    if (step == o.warmup) {
      sync(device);
      t0 = t_step = Clock::now();
    }
    torch::Tensor loss;
    {
      retain::AutocastScope autocast(o.precision == "bf16");
      auto logits = model->forward(b.inputs);  // (B, T, V)
      loss = retain::masked_lm_loss_sum(logits, b.targets, b.mask) * norm;
    }
    loss.backward();
    auto grad_norm = retain::clip_grad_norm(params, kGradClip);
    const auto host = torch::stack({loss.detach(), grad_norm.to(loss.device())}).cpu();  // one sync
    f.losses.push_back(host[0].item<double>());
    f.grad_norms.push_back(host[1].item<double>());
    if (std::isfinite(f.losses.back()) && std::isfinite(f.grad_norms.back())) optimizer.step(kLr);
    optimizer.zero_grad();
    if (step >= o.warmup) {
      const auto now = Clock::now();  // the host read above has synchronised the step
      step_ms.push_back(1e3 * std::chrono::duration<double>(now - t_step).count());
      t_step = now;
    }
  }
  sync(device);
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  f.median_ms_per_step = median(step_ms);
  f.tokens_per_s = double(o.steps * b.tokens) / seconds;
  f.ms_per_step = 1e3 * seconds / double(o.steps);
  return f;
}

struct Twin {
  bool ok = false;
  std::string why;  // when !ok
  Figures figures;
  std::string torch_version;
  int64_t threads = 0;
};

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

Twin run_twin(const Options& o, const std::string& state_path) {
  Twin t;
  const char* env = std::getenv("RETAIN_PYTHON");
  const std::string python = env != nullptr && *env != '\0' ? env : "/usr/bin/python3";
  const std::string script = std::string(RETAIN_SOURCE_DIR) + "/bench/train_throughput_twin.py";
  std::ostringstream cmd;
  cmd << shell_quote(python) << ' ' << shell_quote(script) << " --threads " << o.threads
      << " --steps " << o.steps << " --warmup " << o.warmup << " --precision " << o.precision
      << (o.tf32 ? " --tf32" : "") << " --model "
      << shell_quote(o.model_dir) << " --batch " << o.batch << " --seq " << o.seq << " --device "
      << o.device << " --state " << shell_quote(state_path) << " --json 2>&1";
  FILE* pipe = popen(cmd.str().c_str(), "r");
  if (pipe == nullptr) {
    t.why = "cannot start " + python;
    return t;
  }
  std::string output, json_line;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, pipe) != nullptr) output += buf;
  const int status = pclose(pipe);
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);)
    if (!line.empty() && line[0] == '{') json_line = line;
  if (status != 0 || json_line.empty()) {
    // The last line of its output is the reason (a Python traceback ends with the error).
    std::string last;
    std::istringstream again(output);
    for (std::string line; std::getline(again, line);)
      if (!line.empty()) last = line;
    const std::string how = WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                              : "wait status " + std::to_string(status);
    t.why = python + " " + script + " failed (" + how + ")" +
            (last.empty() ? "" : ": " + last);
    return t;
  }
  try {
    const auto j = nlohmann::json::parse(json_line);
    t.figures.tokens_per_s = j.at("tokens_per_s").get<double>();
    t.figures.ms_per_step = j.at("ms_per_step").get<double>();
    t.figures.median_ms_per_step = j.at("median_ms_per_step").get<double>();
    t.figures.losses = j.at("losses").get<std::vector<double>>();
    t.figures.grad_norms = j.at("grad_norms").get<std::vector<double>>();
    t.threads = j.at("threads").get<int64_t>();
    t.torch_version = j.at("torch").get<std::string>();
    t.ok = true;
  } catch (const nlohmann::json::exception& e) {
    t.why = "the twin's JSON line is malformed (" + std::string(e.what()) + "): " + json_line;
  }
  return t;
}

// The 1-minute load average (Linux), to record how busy the machine was; -1 when unknown.
double load_average() {
  std::ifstream in("/proc/loadavg");
  double load = -1;
  if (!(in >> load)) return -1;
  return load;
}

// Largest relative per-step difference between two loss (or norm) sequences.
double max_rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return INFINITY;
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::abs(a[i] - b[i]) / std::max(1e-12, std::abs(b[i])));
  return worst;
}

// A model folder with GPT-2 124M's config.json, in the temporary folder.
std::string write_preset(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("retain_bench_" + name + "_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  retain::GptConfig c;
  c.vocab_size = 50257, c.n_positions = 1024, c.n_embd = 768, c.n_layer = 12, c.n_head = 12;
  std::ofstream((dir / "config.json").string()) << c.to_json().dump(2) << "\n";
  return dir.string();
}

// Model FLOPs per trained token (PaLM, appendix B): 6·N + 12·L·T·C.
double flops_per_token(const retain::GptConfig& c, int64_t seq) {
  const double n = double(c.num_parameters() - c.n_positions * c.n_embd);
  return 6.0 * n + 12.0 * double(c.n_layer) * double(seq) * double(c.n_embd);
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse_args(argc, argv);
  try {
    torch::set_num_threads(o.threads);
    if (o.device == "cuda") retain::set_tf32(o.tf32);
    if (!o.preset.empty()) o.model_dir = write_preset(o.preset);
    auto loaded = retain::load_model_dir(o.model_dir, kSeed);
    const auto& cfg = loaded.config;
    if (o.seq > cfg.n_positions)
      usage("--seq " + std::to_string(o.seq) + " exceeds the model's n_positions (" +
            std::to_string(cfg.n_positions) + ")");

    // Random token ids, every position trained: (B, T+1) → inputs, targets (B, T).
    auto gen = at::detail::createCPUGenerator(kSeed);
    auto ids = torch::randint(0, cfg.vocab_size, {o.batch, o.seq + 1}, gen, torch::kLong);
    retain::Batch batch;
    batch.inputs = ids.slice(1, 0, o.seq).contiguous();
    batch.targets = ids.slice(1, 1, o.seq + 1).contiguous();
    batch.mask = torch::ones({o.batch, o.seq}, torch::kFloat);
    batch.trained_tokens = batch.tokens = o.batch * o.seq;

    std::string state_path;
    if (o.twin) {
      state_path = (fs::temp_directory_path() /
                    ("retain_bench_" + std::to_string(::getpid()) + ".safetensors")).string();
      retain::save_safetensors(state_path, initial_state(loaded.model, batch));
    }
    const double load_before = load_average();
    const Figures r = run_retain(loaded.model, batch, o);
    Twin twin;
    if (o.twin) {
      twin = run_twin(o, state_path);
      std::error_code ec;
      fs::remove(state_path, ec);
    } else {
      twin.why = "--no-twin";
    }
    const double load_after = load_average();
    const double loss_diff = twin.ok ? max_rel_diff(r.losses, twin.figures.losses) : NAN;
    const double norm_diff = twin.ok ? max_rel_diff(r.grad_norms, twin.figures.grad_norms) : NAN;
    // bf16 rounds differently in each implementation's kernels: compare the losses loosely.
    const double tolerance = o.precision == "bf16" ? 2e-2 : kLossTolerance;
    const bool agree = !twin.ok || loss_diff <= tolerance;
    const double flops = flops_per_token(cfg, o.seq);
    const bool measured_peak = o.device == "cpu" && !o.peak_given;
    const double gemm_flops = o.device == "cpu" ? measure_gemm_flops() : NAN;
    const double peak_flops = measured_peak ? gemm_flops : o.peak_tflops * 1e12;
    const double mfu = flops * r.tokens_per_s / peak_flops;
    if (!o.preset.empty()) {
      std::error_code ec;
      fs::remove_all(o.model_dir, ec);
    }

    if (o.json) {
      nlohmann::json j = {{"model", o.model_dir}, {"batch", o.batch}, {"seq", o.seq},
                          {"steps", o.steps}, {"warmup", o.warmup}, {"threads", o.threads},
                          {"device", o.device}, {"reuse_host_memory", o.reuse_host_memory},
                          {"precision", o.precision}, {"tf32", o.tf32}, {"preset", o.preset},
                          {"parameters", cfg.num_parameters()}, {"flops_per_token", flops},
                          {"peak_tflops", peak_flops / 1e12},
                          {"peak_source", measured_peak ? "measured fp32 GEMM" : "given"},
                          {"gemm_gflops", std::isnan(gemm_flops) ? nlohmann::json() : nlohmann::json(gemm_flops / 1e9)},
                          {"load_before", load_before},
                          {"load_after", load_after},
                          {"retain", {{"tokens_per_s", r.tokens_per_s}, {"ms_per_step", r.ms_per_step},
                                      {"median_ms_per_step", r.median_ms_per_step},
                                      {"torch", TORCH_VERSION}, {"final_loss", r.losses.back()},
                                      {"mfu", mfu}}}};
      if (twin.ok) {
        j["twin"] = {{"tokens_per_s", twin.figures.tokens_per_s},
                     {"ms_per_step", twin.figures.ms_per_step},
                     {"median_ms_per_step", twin.figures.median_ms_per_step},
                     {"torch", twin.torch_version},
                     {"final_loss", twin.figures.losses.back()}};
        j["ratio"] = r.tokens_per_s / twin.figures.tokens_per_s;
        j["twin"]["mfu"] = flops * twin.figures.tokens_per_s / peak_flops;
        j["ratio_median"] = twin.figures.median_ms_per_step / r.median_ms_per_step;
        j["max_rel_loss_diff"] = loss_diff;
        j["max_rel_grad_norm_diff"] = norm_diff;
      } else {
        j["twin_error"] = twin.why;
      }
      std::cout << j.dump() << std::endl;
    } else {
      std::printf("train_throughput: %s, %ld params, batch %ld x %ld tokens, %ld steps after %ld "
                  "warm-up, %s %s%s, %ld threads; load average %.2f before, %.2f after\n",
                  o.preset.empty() ? o.model_dir.c_str() : o.preset.c_str(), long(cfg.num_parameters()),
                  long(o.batch), long(o.seq), long(o.steps), long(o.warmup), o.device.c_str(),
                  o.precision.c_str(), o.tf32 ? " +tf32" : "", long(o.threads), load_before, load_after);
      if (measured_peak)
        std::printf("model FLOPs %.3g per token; of peak = FLOPs/token x tokens/s / this machine's fp32 GEMM "
                    "rate (%.1f GFLOP/s on %ld threads, measured now)\n",
                    flops, gemm_flops / 1e9, long(o.threads));
      else
        std::printf("model FLOPs %.3g per token; MFU = FLOPs/token x tokens/s / %.0f TFLOP/s\n", flops,
                    o.peak_tflops);
      std::printf("%-8s %10s %9s %12s %8s %10s %10s %8s\n", "", "tokens/s", "ms/step",
                  "median ms", "threads", "torch", "last loss", measured_peak ? "of peak" : "MFU");
      std::printf("%-8s %10.0f %9.1f %12.1f %8ld %10s %10.4f %7.2f%%\n", "retain", r.tokens_per_s,
                  r.ms_per_step, r.median_ms_per_step, long(o.threads), TORCH_VERSION,
                  r.losses.back(), 100 * mfu);
      if (twin.ok) {
        std::printf("%-8s %10.0f %9.1f %12.1f %8ld %10s %10.4f %7.2f%%\n", "twin",
                    twin.figures.tokens_per_s, twin.figures.ms_per_step,
                    twin.figures.median_ms_per_step, long(twin.threads),
                    twin.torch_version.c_str(), twin.figures.losses.back(),
                    100 * flops * twin.figures.tokens_per_s / peak_flops);
        std::printf("ratio retain/twin: %.3f (tokens/s), %.3f (median step)\n",
                    r.tokens_per_s / twin.figures.tokens_per_s,
                    twin.figures.median_ms_per_step / r.median_ms_per_step);
        std::printf("per-step agreement over %zu steps: max relative difference loss %.2e, "
                    "grad norm %.2e (%s)\n",
                    r.losses.size(), loss_diff, norm_diff, agree ? "ok" : "MISMATCH");
      } else {
        std::printf("twin not run: %s\n", twin.why.c_str());
      }
    }
    if (o.check && twin.ok && !agree) {
      std::cerr << "train_throughput: --check: retain and the twin disagree (max relative loss "
                << "difference " << loss_diff << " > " << tolerance << ")\n";
      return 1;
    }
    if (o.check && !twin.ok) {
      std::cerr << "train_throughput: --check needs the twin: " << twin.why << "\n";
      return 1;
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "train_throughput: " << e.what() << "\n";
    return 1;
  }
}
