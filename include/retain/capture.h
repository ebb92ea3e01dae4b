// Activation capture for per-example gradients, the fast path of the diagonal Fisher.
//
// While a CaptureScope is alive on this thread, a model family's forward pass (when it requires
// grad) records, for each layer whose parameters the Fisher covers, the layer's input (detached)
// and its output (in the autograd graph). estimate_fisher_batched then takes the gradient of the
// batch's summed loss with respect to those outputs only and forms every example's parameter
// gradient from them: the EWC layer knows layers and parameter names, not model classes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "retain/checkpoint.h"
#include "retain/ewc.h"

namespace retain {

struct LayerCapture {
  enum class Kind {
    kLinear,      // a torch::nn::Linear: weight, and bias when it has one
    kLayerNorm,   // a torch::nn::LayerNorm: weight and bias
    kRmsNorm,     // an RMSNorm over the last dimension (weight only; `eps`)
    kEmbeddings,  // input: token ids (N, T); output: the embedding rows (plus positions)
    kTiedOutput,  // input: the final hidden state (N, T, C); output: logits = h · Eᵀ
  };
  Kind kind;
  const torch::nn::Module* module;  // the layer (kLinear, kLayerNorm, kRmsNorm), else nullptr
  torch::Tensor input;              // detached; (N, …, in)
  torch::Tensor output;             // in the autograd graph; (N, …, out)
  double eps = 0;                   // kRmsNorm
  std::string embedding;            // kEmbeddings / kTiedOutput: the token embedding's parameter
  std::string positions;            // kEmbeddings: the position embedding's parameter ("" when none)
};

class CaptureScope {
 public:
  CaptureScope();
  ~CaptureScope();
  CaptureScope(const CaptureScope&) = delete;
  CaptureScope& operator=(const CaptureScope&) = delete;
  std::vector<LayerCapture>& records() { return records_; }

 private:
  std::vector<LayerCapture> records_;
  std::vector<LayerCapture>* previous_;
};

// Whether a CaptureScope is recording on this thread.
bool capturing();
// Records `record` when a scope is alive and record.output requires grad (input is detached here).
void capture(LayerCapture record);
// A Linear's forward, recorded: layer(x), plus its LoRA adapter's branch when it carries one
// (lora.h; the adapter's factors are recorded, a frozen layer is not).
torch::Tensor captured_linear(torch::nn::Linear& layer, const torch::Tensor& x);
// A LayerNorm's forward, recorded: layer(x).
torch::Tensor captured_layer_norm(torch::nn::LayerNorm& layer, const torch::Tensor& x);

// The per-example Fisher from captured activations: for each chunk of options.batch_size sampled
// examples, `losses(indices, sample_targets, generator)` runs the model's forward (which records)
// and returns the per-example losses (B); the summed loss's gradients with respect to the recorded
// outputs give every example's gradient of each covered parameter (Linear: Σ_t g xᵀ; norms:
// Σ_t g ⊙ x̂; embeddings: rows gathered per token; a tied output adds gᵀ h to the embedding).
// Parameters not covered by a record keep a zero Fisher, so a family must record every layer it
// trains. Same sampling, sharding and result as estimate_fisher_loop (to rounding).
TensorMap estimate_fisher_batched(torch::nn::Module& model, int64_t count, const PerExampleLoss& losses,
                                  const FisherOptions& options);

}  // namespace retain
