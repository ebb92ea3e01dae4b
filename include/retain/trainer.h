// The training loop: AdamW, warm-up + cosine schedule, clipping, accumulation normalised by
// trained tokens, length-grouped batches, periodic validation, checkpoints and bit-exact resume.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "retain/batch.h"
#include "retain/tokenizer.h"

namespace retain {

// Training settings. Every field is a job-config key of the same name (and a CLI flag with dashes).
struct TrainConfig {
  int64_t max_steps = 0;        // optimizer steps; 0 = derive from epochs
  int64_t epochs = 1;           // passes over the training set when max_steps is 0
  int64_t batch_size = 8;       // examples per micro-batch
  int64_t grad_accum = 1;       // micro-batches per optimizer step
  double lr = 3e-4;             // peak learning rate
  double min_lr_ratio = 0.1;    // cosine decays to lr · min_lr_ratio
  int64_t warmup_steps = 0;     // linear warm-up from 0 to lr
  double weight_decay = 0.01;   // AdamW decoupled decay; not on biases or LayerNorm weights
  double adam_beta1 = 0.9, adam_beta2 = 0.999, adam_eps = 1e-8;
  double grad_clip = 1.0;       // max global gradient L2 norm; 0 disables clipping
  uint64_t seed = 1234;         // data order, initialisation, dropout
  std::string device = "cpu";   // cpu | cuda | cuda:N
  std::string precision = "fp32";  // fp32 | bf16 (autocast; CUDA only)
  bool tf32 = false;            // CUDA: fp32 matrix products and convolutions in TF32
  int64_t eval_every = 0;       // validate every N steps (and at the end); 0 = only at the end
  int64_t log_every = 10;       // progress line and metrics every N steps
  int64_t checkpoint_every = 0; // checkpoint every N steps; 0 = never
  int64_t keep_checkpoints = 2; // newest complete checkpoints kept
  int64_t max_seq_len = 0;      // tokens per sequence; 0 = the model's n_positions
  int64_t max_nonfinite = 10;   // consecutive skipped (non-finite) updates before giving up
  int64_t threads = 0;          // CPU intra-op threads; 0 = LibTorch's default
  bool group_by_length = true;  // batch similar lengths together
  int64_t eval_batch_size = 16;

  // Reads the keys of `j` it knows and rejects any other (ConfigError naming `what` and the key,
  // with the nearest known key as a hint), wrong types and out-of-range values.
  static TrainConfig from_json(const nlohmann::json& j, const std::string& what);
  nlohmann::json to_json() const;
  // The keys from_json accepts.
  static const std::vector<std::string>& keys();
  // Throws ConfigError when the config cannot run here (bf16 without CUDA, a bad device string).
  torch::Device resolved_device() const;
};

// "cpu", "cuda" or "cuda:N" as a device; ConfigError on anything else. Never probes for CUDA.
torch::Device parse_device(const std::string& device);

// bf16 autocast on CUDA while alive (nothing when `enabled` is false): wrap a forward pass.
class AutocastScope {
 public:
  explicit AutocastScope(bool enabled);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool enabled_;
};

// Lets CUDA fp32 matrix products and convolutions use TF32 (about 8× the fp32 rate on Ampere and
// later, 10-bit mantissa inputs) or forbids it. A process-wide setting of LibTorch.
void set_tf32(bool allowed);

// One progress record (every log_every steps and at the last step).
struct StepLog {
  int64_t step = 0, total_steps = 0;
  double loss = 0;       // loss_task + loss_ewc: what the step minimised
  double loss_task = 0;  // mean cross-entropy per trained token of the step
  double loss_ewc = 0;   // the EWC penalty (0 without one)
  double lr = 0, grad_norm = 0, tokens_per_s = 0, eta_s = 0, elapsed_s = 0;
  int64_t skipped_updates = 0, trained_tokens = 0;
};

struct ValidLog {
  int64_t step = 0;
  double loss = 0, perplexity = 0;
  double token_accuracy = 0;  // share of trained tokens predicted right (a classifier: of examples)
};

struct TrainHooks {
  std::function<void(const StepLog&)> on_step;    // after each logged step
  std::function<void(const ValidLog&)> on_valid;  // after each validation
  std::function<void(int64_t step, int64_t total)> on_progress;  // after every step (cheap)
  // Added to every micro-batch's loss (for example the EWC penalty); must be differentiable in
  // the model's parameters. Its value is divided by grad_accum so that a step adds it once.
  std::function<torch::Tensor()> regularizer;
  // Adds a penalty's gradient to the parameters' .grad() in place, once per step after the
  // backward passes (before clipping), and returns the penalty's value (0-dim); cheaper than
  // `regularizer` for penalties whose gradient is known in closed form (EwcPenalty).
  std::function<torch::Tensor()> gradient_regularizer;
  // The batches of epoch e as example indices, replacing epoch_batches (for example stratified
  // batches of new and replayed examples). Must be deterministic in e (resume replays it) and give
  // ceil(size / batch_size) batches.
  std::function<std::vector<std::vector<int64_t>>(int64_t epoch)> epoch_plan;
  // Data-parallel training: batch_size is per rank; ranks train on their slices of the same global
  // batches and sum gradients, and rank 0 alone writes metrics and checkpoints. Null: one process.
  class Collective* collective = nullptr;
};

struct TrainSummary {
  int64_t steps = 0;               // optimizer steps taken in total (including before a resume)
  int64_t skipped_updates = 0;     // non-finite updates skipped
  int64_t resumed_from_step = -1;  // -1 when not resumed
  double last_loss = 0;
  int64_t tokens = 0;              // input tokens processed in this process (not before a resume)
  std::optional<ValidLog> last_valid;
  double seconds = 0;
};

// What the trainer trains, for any model family: the module, its training examples as host
// batches, and the summed loss of a batch. ChatTask (chat_task.h, the chat families) and
// FeatureTask (mlp.h, the mlp family on feature vectors) implement it.
class TrainTask {
 public:
  virtual ~TrainTask() = default;
  virtual torch::nn::Module& module() = 0;
  // One length per training example (tokens; 1 for fixed-size examples), for group_by_length.
  virtual std::vector<int64_t> lengths() const = 0;
  // The host batch of training examples `indices` (pinned when `pin`): inputs, targets, mask and
  // the number of trained units (tokens or examples) in trained_tokens.
  virtual Batch batch(const std::vector<int64_t>& indices, bool pin) const = 0;
  // The sum of the loss over the trained units of `batch` (on the module's device), as a 0-dim
  // tensor; the trainer divides by the trained units of the whole step.
  virtual torch::Tensor loss_sum(const Batch& batch) = 0;
  // Loss and accuracy on the validation set, or nullopt when there is none. `step` is not set.
  virtual std::optional<ValidLog> validate(int64_t batch_size) { return std::nullopt; }
};

// Optimizer steps the config gives for a training set of `num_examples`.
int64_t total_steps(const TrainConfig& config, int64_t num_examples);


// The same loop for any TrainTask (the module on its device; its first parameter says which).
TrainSummary train(TrainTask& task, const TrainConfig& config, const std::string& run_dir, bool resume,
                   const TrainHooks& hooks = {});

// Newest complete checkpoint folder of a run ("" when none).
std::string latest_checkpoint(const std::string& run_dir);

// Makes the host allocator keep the memory a training step frees for the next step instead of
// handing it back to the OS (glibc: blocks up to 32 MiB come from the heap, and the heap is trimmed
// only above 2 GiB free), so a step reuses pages rather than faulting in fresh zeroed ones (on
// gpt-small, batch 8 × 256, CPU: ~90k page faults and ~170 ms of kernel time a step otherwise;
// bench/README.md). Process-wide; train() calls it. Does nothing with another C library.
void reuse_host_memory();

// The CPU threads a job uses when none are asked for: the CPUs idle right now (/proc/stat sampled
// over 0.2 s), at least one. With another job on the machine, OpenMP's spinning workers collapse
// when they outnumber the free cores (bench/threads.py: 2 threads beside one busy process ran at
// 0.20× of one thread), so the default takes what is free; on an idle 2-CPU machine, both (1.64×
// of one, where LibTorch's own default of the physical cores gave one). `--threads` overrides it.
// The CLI sets it when a job gives no threads (the library keeps LibTorch's fixed default, so that
// two runs of one config sum in the same order); data-parallel workers on one machine
// (LOCAL_WORLD_SIZE) share the result.
int default_threads();

}  // namespace retain
