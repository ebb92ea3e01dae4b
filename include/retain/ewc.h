// Elastic weight consolidation (Kirkpatrick et al. 2017): the diagonal Fisher information of a
// model on its data, the penalty λ/2 · Σ_i F_i (θ_i − θ*_i)², and online consolidation
// F ← γ·F_prev + F_new (Schwarz et al. 2018). Note: several libraries drop the ½, so their λ
// equals half of ours.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "retain/checkpoint.h"

namespace retain {

enum class FisherEstimator {
  kEmpirical,  // mean over examples of the squared gradient of each example's own loss
  kTrue,       // the same with targets sampled from the model's predictive distribution
  kBatch,      // squared mini-batch gradients × batch size: cheap, biased (cross-terms kept)
};
// "empirical" | "true" | "batch"; parse throws ConfigError on anything else.
const char* estimator_name(FisherEstimator e);
FisherEstimator parse_estimator(const std::string& name);

struct FisherOptions {
  FisherEstimator estimator = FisherEstimator::kEmpirical;
  int64_t num_samples = 1000;       // examples used (all when fewer), picked with the seed
  int64_t samples_per_example = 1;  // S, for the true Fisher
  int64_t batch_size = 32;          // examples per pass
  uint64_t seed = 1234;
  // How per-example gradients are computed: kLoop, one backward pass per example (the reference);
  // kBatched, one pass per batch from captured activations; kAuto, batched on CUDA and the loop on
  // CPU, where a batch-1 pass already keeps the cores busy and the loop measured faster.
  enum class Path { kAuto, kBatched, kLoop } path = Path::kAuto;
  // Data-parallel estimation: the sampled examples are dealt to the ranks a whole batch at a time
  // (batch k to rank k mod world size), each rank sums its share, the sums are all-reduced, and
  // every rank returns the whole Fisher — the single-process estimate up to summation order (the
  // true Fisher draws its targets per rank, so it equals it in expectation only). nullptr: alone.
  class Collective* collective = nullptr;
};

// The per-example-loop Fisher of any module: `losses(indices, sample_targets, generator)` returns
// the (N) per-example losses of examples[indices] — the reference path, for any module. `count`
// is the number of examples.
using PerExampleLoss = std::function<torch::Tensor(const std::vector<int64_t>& indices, bool sample_targets,
                                                   at::Generator& generator)>;
TensorMap estimate_fisher_loop(torch::nn::Module& model, int64_t count, const PerExampleLoss& losses,
                               const FisherOptions& options);

// For estimators that walk their batches themselves (the mlp family's): whether batch `k` is this
// process's to estimate on (always, without options.collective), and the end of an estimate — the
// per-process sums all-reduced when distributed, then divided by `count`.
bool fisher_batch_is_mine(const FisherOptions& options, int64_t k);
void finish_fisher_sums(const FisherOptions& options, TensorMap& fisher, int64_t count);

// The examples a Fisher estimate uses, as every path picks them: all of 0..count-1 when
// n <= 0 or n >= count, else n of them drawn with `seed`, sorted.
std::vector<int64_t> fisher_sample_indices(int64_t count, int64_t n, uint64_t seed);

// The EWC state of a version: anchor θ* and Fisher F by parameter name, and provenance.
struct EwcState {
  TensorMap fisher, anchor;
  std::string estimator;
  int64_t num_samples = 0;
  double gamma = 1.0;
  std::string data_hash;  // hash of the data the Fisher was estimated on
  int64_t rounds = 1;     // how many Fishers were consolidated into this one
};

// EWC, Kirkpatrick et al. 2017: λ/2 Σ_i F_i (θ_i − θ*_i)², a 0-dim tensor differentiable in the
// model's parameters (an adapted weight counts as W + s·B·A). Parameters without a Fisher entry
// are not penalised.
torch::Tensor ewc_penalty(torch::nn::Module& model, const EwcState& state, double lambda);

// The penalty on the training path: binds the model's parameters to their F and θ* once, then
// each step adds the gradient λ·F·(θ − θ*) to the parameters' .grad() in place, without an
// autograd graph (a few vectorised passes per parameter, no per-step lookups), and returns the
// penalty's value as a 0-dim tensor on the device. Call after backward, before clipping.
// A frozen weight W under a LoRA adapter (lora.h) with a Fisher entry is penalised as it moves,
// θ = W + s·B·A: the gradient goes to the adapter's factors (λ s G Aᵀ to B, λ s Bᵀ G to A, with
// G = F ⊙ (θ − θ*)), so a first LoRA round from a full version is anchored by that version's Fisher.
class EwcPenalty {
 public:
  EwcPenalty(torch::nn::Module& model, const EwcState& state, double lambda);
  torch::Tensor add_gradient() const;

 private:
  struct Term {
    torch::Tensor param, fisher, anchor;
  };
  // A frozen weight W under a LoRA adapter (lora.h): θ = W + scale · B A.
  struct AdaptedTerm {
    torch::Tensor weight, fisher, anchor, a, b;
    double scale;
  };
  std::vector<Term> terms_;
  std::vector<AdaptedTerm> adapted_;
  double lambda_;
};

// Online EWC: F = γ·F_prev + F_new, θ* = θ_new. `previous` may be null (first round).
EwcState consolidate(const EwcState* previous, const TensorMap& fisher_new, const TensorMap& theta_new,
                     double gamma);

inline constexpr const char* kEwcFile = "ewc.safetensors";
inline constexpr int kEwcFormat = 2;  // 2: anchors equal to the weights beside the file are left out

// Writes fisher.<p> and anchor.<p> with __metadata__ (estimator, num_samples, gamma, data_hash,
// rounds, format_version), in bf16 when `bf16` (half the size), atomically. An anchor equal to the
// same tensor of the model.safetensors beside `path` (a version's θ* is its own weights) is left
// out, and anchor_weights_sha256 records that file's hash. `stored_weights`: that file's tensors
// when the caller has them already (else save_ewc reads the file).
void save_ewc(const std::string& path, const EwcState& state, bool bf16 = false,
              const TensorMap* stored_weights = nullptr);
// Loads and checks every name and shape against `model` (CheckpointError naming the parameter).
// The file covers every parameter outside LoRA adapters (a full version's) or every adapter
// parameter (a LoRA version's); a tensor that matches no parameter is refused.
// Tensors come back as fp32 on the model's device. Anchors left out are read from the
// model.safetensors beside `path` (CheckpointError when it is missing or its hash changed).
EwcState load_ewc(const std::string& path, torch::nn::Module& model);

// Statistics of F per parameter group (sum, max, mean, quantiles) for choosing λ, as a table.
std::string fisher_report(const TensorMap& fisher);

}  // namespace retain
