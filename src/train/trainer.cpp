// The training loop (see trainer.h). Reads top to bottom: periodic validation and checkpoints,
// then the step (batch → forward → loss → backward → clip → AdamW), then diagnostics.
#include "retain/trainer.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <thread>

#include "retain/batch.h"
#include "retain/distributed.h"
#include "retain/errors.h"
#include "retain/log.h"
#include "retain/metrics_file.h"
#include "retain/optimizer.h"
#include "retain/progress.h"
#include "retain/train_checkpoint.h"

namespace retain {
namespace fs = std::filesystem;

int64_t total_steps(const TrainConfig& config, int64_t num_examples) {
  if (config.max_steps > 0) return config.max_steps;
  const int64_t batches = (num_examples + config.batch_size - 1) / config.batch_size;
  return std::max<int64_t>(1, (config.epochs * batches) / config.grad_accum);
}

void reuse_host_memory() {
#if defined(__GLIBC__)
  // Setting either knob turns off glibc's adaptive mmap threshold, so set both: the threshold at
  // its adaptive maximum (32 MiB on 64-bit), and a trim threshold no step's working set reaches.
  mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max());
#endif
}

namespace {

// Busy and total jiffies of all CPUs from /proc/stat's first line; {0, 0} when unreadable.
std::pair<uint64_t, uint64_t> cpu_jiffies() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  uint64_t v[8] = {0};
  if (!(in >> cpu) || cpu != "cpu") return {0, 0};
  for (auto& x : v) in >> x;  // user nice system idle iowait irq softirq steal
  const uint64_t idle = v[3] + v[4];
  uint64_t total = 0;
  for (auto x : v) total += x;
  return {total - idle, total};
}

}  // namespace

int default_threads() {
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  const auto [busy0, total0] = cpu_jiffies();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto [busy1, total1] = cpu_jiffies();
  if (total1 <= total0) return std::max(1, torch::get_num_threads());
  const double busy_cores = cores * double(busy1 - busy0) / double(total1 - total0);
  const int idle = int(std::floor(cores - busy_cores + 0.25));  // a core three-quarters free counts
  const char* local = std::getenv("LOCAL_WORLD_SIZE");
  const int workers = local != nullptr ? std::max(1, std::atoi(local)) : 1;
  return std::max(1, std::clamp(idle, 1, cores) / workers);
}

namespace {

// Linear warm-up to lr, then cosine decay to lr · min_lr_ratio at the last step.
double learning_rate(const TrainConfig& c, int64_t step, int64_t total) {
  if (step < c.warmup_steps) return c.lr * double(step + 1) / double(c.warmup_steps);
  const double progress = double(step - c.warmup_steps) / double(std::max<int64_t>(1, total - c.warmup_steps));
  const double min_lr = c.lr * c.min_lr_ratio;
  return min_lr + 0.5 * (c.lr - min_lr) * (1.0 + std::cos(M_PI * std::min(1.0, progress)));
}

}  // namespace

AutocastScope::AutocastScope(bool enabled) : enabled_(enabled) {
  if (!enabled_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  at::autocast::set_autocast_enabled(at::kCUDA, true);
  at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
#else
  at::autocast::set_enabled(true);
  at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
#endif
}

AutocastScope::~AutocastScope() {
  if (!enabled_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  at::autocast::set_autocast_enabled(at::kCUDA, false);
#else
  at::autocast::set_enabled(false);
#endif
  at::autocast::clear_cache();
}

void set_tf32(bool allowed) {
  at::globalContext().setAllowTF32CuBLAS(allowed);
  at::globalContext().setAllowTF32CuDNN(allowed);
}

namespace {

// The deterministic micro-batch stream: micro-batch m is batch (m mod B) of epoch m / B.
class BatchStream {
 public:
  BatchStream(const TrainTask& task, const TrainConfig& c,
              const std::function<std::vector<std::vector<int64_t>>(int64_t)>& plan)
      : task_(task), config_(c), plan_(plan), lengths_(task.lengths()) {
    per_epoch_ = (int64_t(lengths_.size()) + c.batch_size - 1) / c.batch_size;
  }
  // The rank's share of global micro-batch `micro`: rows [rank·b, (rank+1)·b) of it, where b is
  // the per-rank batch size (the stream's config holds the global one).
  Batch get(int64_t micro, bool pin, int rank = 0, int64_t per_rank = 0) {
    const int64_t epoch = micro / per_epoch_;
    if (epoch != epoch_) {
      order_ = plan_ ? plan_(epoch)
                     : epoch_batches(lengths_, config_.batch_size, config_.seed, epoch, config_.group_by_length);
      if (int64_t(order_.size()) != per_epoch_)
        throw TrainingError("epoch plan has " + std::to_string(order_.size()) + " batches, expected " +
                            std::to_string(per_epoch_));
      epoch_ = epoch;
    }
    const auto& global = order_[micro % per_epoch_];
    if (per_rank <= 0) return task_.batch(global, pin);
    const size_t begin = std::min(global.size(), size_t(rank * per_rank));
    const size_t end = std::min(global.size(), begin + size_t(per_rank));
    return task_.batch(std::vector<int64_t>(global.begin() + begin, global.begin() + end), pin);
  }

 private:
  const TrainTask& task_;
  const TrainConfig& config_;
  std::function<std::vector<std::vector<int64_t>>(int64_t)> plan_;
  int64_t per_epoch_ = 1, epoch_ = -1;
  std::vector<int64_t> lengths_;
  std::vector<std::vector<int64_t>> order_;
};

}  // namespace


TrainSummary train(TrainTask& task, const TrainConfig& config, const std::string& run_dir, bool resume,
                   const TrainHooks& hooks) {
  using Clock = std::chrono::steady_clock;
  torch::nn::Module& model = task.module();
  const int64_t num_examples = int64_t(task.lengths().size());
  if (num_examples == 0) throw TrainingError("the training set is empty");
  config.resolved_device();  // validates the device and precision settings
  const auto first = model.parameters();
  if (first.empty()) throw TrainingError("the model has no parameters");
  const torch::Device device = first.front().device();  // cuda:<local rank> in a data-parallel job
  // LibTorch's default when no count is given (the CLI picks the free CPUs); a resume takes the
  // run's own count below.
  if (config.threads > 0) torch::set_num_threads(config.threads);
  if (device.is_cuda()) set_tf32(config.tf32);
  reuse_host_memory();
  // Data parallel: every rank walks the same global batches (batch_size × world_size examples)
  // and trains on its slice; gradients and token counts are summed across ranks, so N ranks with
  // batch B take the same steps as one rank with batch N·B.
  Collective* collective = hooks.collective;
  const int world = collective ? collective->world_size() : 1;
  const int rank = collective ? collective->rank() : 0;
  TrainConfig global = config;
  global.batch_size = config.batch_size * world;
  const int64_t total = total_steps(global, num_examples);
  const bool pin = device.is_cuda();

  std::vector<std::pair<std::string, torch::Tensor>> named;
  std::vector<torch::Tensor> params;
  for (auto& p : model.named_parameters())
    if (p.value().requires_grad()) named.emplace_back(p.key(), p.value()), params.push_back(p.value());
  AdamW optimizer(named, {config.adam_beta1, config.adam_beta2, config.adam_eps, config.weight_decay});

  TrainerState state;
  state.world_size = world;
  TrainSummary summary;
  // Dropout: each rank its own masks. A resume restores rank 0's generator from the checkpoint; the
  // other ranks reseed from the step (their masks then differ from an uninterrupted run's).
  torch::manual_seed(config.seed + uint64_t(rank));
  if (rank == 0) fs::create_directories(fs::path(run_dir) / "checkpoints");
  if (resume) {
    const std::string dir = latest_checkpoint(run_dir);
    if (dir.empty())
      throw CheckpointError(run_dir + ": no complete checkpoint to resume from (checkpoints/step-N "
                            "with a COMPLETE marker)");
    state = load_train_checkpoint(dir, model, optimizer);
    // The run's own thread count, so that the resume stays bit-identical on CPU (reductions sum
    // in another order with another count).
    if (config.threads == 0 && state.threads > 0) torch::set_num_threads(int(state.threads));
    if (state.world_size != world)
      throw CheckpointError(dir + ": written by a run of " + std::to_string(state.world_size) +
                            " data-parallel worker(s); resume it with " + std::to_string(state.world_size) +
                            " (--nproc " + std::to_string(state.world_size) + "), not " + std::to_string(world) +
                            ": the batches and the schedule depend on it");
    if (rank > 0) torch::manual_seed(config.seed + uint64_t(rank) + 1000003ull * uint64_t(state.step));
    summary.resumed_from_step = state.step;
    log()->info("resumed from {} (step {}/{})", dir, state.step, total);
  }
  state.threads = torch::get_num_threads();  // recorded in every checkpoint
  std::optional<MetricsWriter> metrics;  // rank 0 alone writes the run folder
  if (rank == 0) metrics.emplace((fs::path(run_dir) / "metrics.jsonl").string(), resume ? state.step : -1);

  BatchStream stream(task, global, hooks.epoch_plan);
  model.train();
  const auto t_start = Clock::now();
  auto t_log = t_start;
  int64_t tokens_since_log = 0;
  const int64_t start_step = state.step;
  Progress progress("train", total - start_step, "steps");  // the bar, and a line when steps are slow

  for (int64_t step = start_step; step <= total; ++step) {
    const bool last_step = step == total;

    // Periodic jobs first: validation, then a checkpoint of the state after `step` updates.
    const bool validate_now = (config.eval_every > 0 && step % config.eval_every == 0 && step > 0) || last_step;
    if (const auto valid = validate_now ? task.validate(config.eval_batch_size) : std::nullopt) {
      ValidLog v = *valid;
      v.step = step;
      model.train();
      log()->info("valid step {}/{} | loss {:.4f} | ppl {:.3f} | token_acc {:.4f}", step, total,
                  v.loss, v.perplexity, v.token_accuracy);
      if (metrics) metrics->write({{"type", "valid"}, {"step", step}, {"loss", v.loss},
                     {"perplexity", v.perplexity}, {"token_accuracy", v.token_accuracy}});
      summary.last_valid = v;
      if (hooks.on_valid) hooks.on_valid(v);
    }
    if (config.checkpoint_every > 0 && step % config.checkpoint_every == 0 && step > start_step && !last_step) {
      state.step = step;
      if (rank == 0) save_train_checkpoint(run_dir, state, model, optimizer, config.keep_checkpoints);
    }
    if (last_step) break;

    // The training step: one optimizer update over grad_accum micro-batches.
    std::vector<Batch> window;
    int64_t window_tokens = 0;
    for (int64_t a = 0; a < config.grad_accum; ++a) {
      window.push_back(stream.get(state.micro_batch + a, pin, rank, collective ? config.batch_size : 0));
      window_tokens += window.back().trained_tokens;
    }
    if (collective) {
      std::vector<torch::Tensor> count = {torch::full({1}, double(window_tokens), torch::TensorOptions().device(device))};
      collective->allreduce_sum(count);
      window_tokens = std::llround(count[0].item<double>());
    }
    // Normalise by the trained tokens of the whole window, not per micro-batch.
    const double norm = 1.0 / double(std::max<int64_t>(1, window_tokens));
    torch::Tensor loss_step = torch::zeros({}, torch::TensorOptions().device(device));
    for (const auto& host_batch : window) {
      if (host_batch.inputs.size(0) == 0) continue;  // a rank's empty slice of a short last batch
      Batch b = to_device(host_batch, device);
      torch::Tensor loss;
      {
        AutocastScope autocast(config.precision == "bf16");
        loss = task.loss_sum(b) * norm;
      }
      if (hooks.regularizer) loss = loss + hooks.regularizer() / double(config.grad_accum);
      loss.backward();
      loss_step += loss.detach().to(torch::kFloat);
      tokens_since_log += b.tokens;
      summary.tokens += b.tokens;
    }
    if (collective) {  // sum the gradients (and the loss) of every rank's slice
      std::vector<torch::Tensor> sums;
      for (auto& p : params) {
        if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
        sums.push_back(p.grad());
      }
      sums.push_back(loss_step);
      collective->allreduce_sum(sums);
    }
    // loss_step is the task loss (plus a `regularizer`'s share); loss_ewc the closed-form penalty.
    torch::Tensor loss_ewc = torch::zeros({}, loss_step.options());
    if (hooks.gradient_regularizer) loss_ewc = hooks.gradient_regularizer().to(loss_step.device(), torch::kFloat);
    auto grad_norm_t = clip_grad_norm(params, config.grad_clip);
    const auto host = torch::stack({loss_step, loss_ewc, grad_norm_t.to(loss_step.device())}).cpu();  // one sync
    const double loss_task = host[0].item<double>(), loss_ewc_value = host[1].item<double>();
    const double loss_value = loss_task + loss_ewc_value, grad_norm = host[2].item<double>();
    const double lr = learning_rate(config, step, total);
    if (std::isfinite(loss_value) && std::isfinite(grad_norm)) {
      optimizer.step(lr);
      state.nonfinite_run = 0;
    } else {
      ++state.skipped_updates;
      if (++state.nonfinite_run >= config.max_nonfinite)
        throw TrainingError("step " + std::to_string(step + 1) + ": " +
                            std::to_string(state.nonfinite_run) +
                            " non-finite updates in a row (loss " + std::to_string(loss_value) +
                            "); lower --lr or check the data");
      log()->warn("step {}: non-finite loss or gradient, update skipped", step + 1);
    }
    optimizer.zero_grad();
    state.micro_batch += config.grad_accum;
    state.step = step + 1;
    summary.last_loss = loss_value;
    if (hooks.on_progress) hooks.on_progress(state.step, total);
    progress.update(state.step - start_step);

    // Diagnostics.
    if (state.step % config.log_every == 0 || state.step == total) {
      const auto now = Clock::now();
      const double dt = std::chrono::duration<double>(now - t_log).count();
      const double elapsed = std::chrono::duration<double>(now - t_start).count();
      StepLog s;
      s.step = state.step;
      s.total_steps = total;
      s.loss = loss_value;
      s.loss_task = loss_task;
      s.loss_ewc = loss_ewc_value;
      s.lr = lr;
      s.grad_norm = grad_norm;
      s.tokens_per_s = dt > 0 ? tokens_since_log / dt : 0;
      s.elapsed_s = elapsed;
      s.eta_s = elapsed / double(state.step - start_step) * double(total - state.step);
      s.skipped_updates = state.skipped_updates;
      if (hooks.gradient_regularizer)
        log()->info("step {}/{} | loss {:.4f} (task {:.4f} + ewc {:.4f}) | lr {:.2e} | grad_norm {:.3f} | tok/s {:.0f} | eta {}",
                    s.step, s.total_steps, s.loss, s.loss_task, s.loss_ewc, s.lr, s.grad_norm, s.tokens_per_s,
                    format_duration(s.eta_s));
      else
        log()->info("step {}/{} | loss {:.4f} | lr {:.2e} | grad_norm {:.3f} | tok/s {:.0f} | eta {}",
                    s.step, s.total_steps, s.loss, s.lr, s.grad_norm, s.tokens_per_s,
                    format_duration(s.eta_s));
      if (metrics) metrics->write({{"type", "train"}, {"step", s.step}, {"loss", s.loss}, {"loss_task", s.loss_task},
                     {"loss_ewc", s.loss_ewc}, {"lr", s.lr},
                     {"grad_norm", s.grad_norm}, {"tokens_per_s", s.tokens_per_s},
                     {"skipped_updates", s.skipped_updates}, {"elapsed_s", s.elapsed_s}});
      if (hooks.on_step) hooks.on_step(s);
      progress.logged();
      t_log = now;
      tokens_since_log = 0;
    }
  }
  model.eval();
  if (metrics) {
    // metrics.csv beside metrics.jsonl, rewritten whole and atomically from it: its header is the
    // union of the records' keys, known only now, and a resumed run's rows are the JSONL's as kept.
    // A convenience copy: failing to write it costs a warning, not the trained model.
    const fs::path jsonl = fs::path(run_dir) / "metrics.jsonl";
    try {
      write_metrics_csv(jsonl.string(), (fs::path(run_dir) / "metrics.csv").string());
    } catch (const Error& e) {
      log()->warn("metrics.csv not written: {}", e.what());
    }
  }
  summary.steps = state.step;
  summary.skipped_updates = state.skipped_updates;
  // A job whose every update was skipped has trained nothing: it fails rather than save its input.
  if (state.step > 0 && state.skipped_updates >= state.step)
    throw TrainingError("every one of the " + std::to_string(state.step) +
                        " updates was skipped (non-finite loss or gradient); nothing was trained. Lower the "
                        "learning rate or check the data");
  summary.seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
  return summary;
}

}  // namespace retain
