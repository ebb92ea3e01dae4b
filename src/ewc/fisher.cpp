// Diagonal Fisher estimation for any module: the one-example-at-a-time reference loop, and the
// batched per-example path from captured layer activations (capture.h).
#include <random>
#include <unordered_map>

#include <ATen/CPUGeneratorImpl.h>

#include "retain/capture.h"
#include "retain/distributed.h"
#include "retain/errors.h"
#include "retain/ewc.h"
#include "retain/progress.h"
#include "retain/random.h"

namespace retain {

const char* estimator_name(FisherEstimator e) {
  switch (e) {
    case FisherEstimator::kEmpirical: return "empirical";
    case FisherEstimator::kTrue: return "true";
    case FisherEstimator::kBatch: return "batch";
  }
  return "?";
}

FisherEstimator parse_estimator(const std::string& name) {
  if (name == "empirical") return FisherEstimator::kEmpirical;
  if (name == "true") return FisherEstimator::kTrue;
  if (name == "batch") return FisherEstimator::kBatch;
  throw ConfigError("unknown Fisher estimator \"" + name + "\"; expected empirical, true or batch");
}

namespace {

// The examples used: all when there are at most n, else n picked with the seed (sorted, so the
// batches stay in data order).
std::vector<int64_t> pick(int64_t count, int64_t n, uint64_t seed) { return sample_sorted(count, n, seed); }

// The batches this process estimates on, and the end of the estimate: with a collective, batch k
// belongs to rank k mod world size and the sums are all-reduced before the mean.
class Shard {
 public:
  explicit Shard(const FisherOptions& options) : collective_(options.collective) {
    if (options.batch_size < 1) throw ConfigError("Fisher batch_size must be at least 1");
  }
  bool mine(int64_t batch) const {
    return collective_ == nullptr || batch % collective_->world_size() == collective_->rank();
  }
  // Sums over the ranks (when distributed), then divides by `count`.
  void finish(TensorMap& fisher, int64_t count) const {
    if (collective_ != nullptr) {
      std::vector<torch::Tensor> sums;
      for (auto& [n, f] : fisher) sums.push_back(f);
      collective_->allreduce_sum(sums);
    }
    for (auto& [n, f] : fisher) f.div_(double(count));
  }

 private:
  Collective* collective_;
};

void check_finite(const TensorMap& fisher) {
  for (const auto& [name, f] : fisher)
    if (!torch::isfinite(f).all().item<bool>())
      throw TrainingError("Fisher of parameter " + name + " is not finite; check the model and data");
}

// Adds Σ_n G_n² to fisher[name] for per-example gradients G (N, …); a parameter the Fisher does
// not cover (frozen: no requires_grad) is skipped.
void add_sq(TensorMap& fisher, const std::string& name, const torch::Tensor& per_example, double scale) {
  const auto it = fisher.find(name);
  if (it != fisher.end()) it->second.add_(per_example.pow_(2).sum(0), scale);  // per_example is a temporary
}

using ModuleNames = std::unordered_map<const torch::nn::Module*, std::string>;

ModuleNames module_names(torch::nn::Module& model) {
  ModuleNames names;
  for (const auto& m : model.named_modules("", /*include_self=*/false)) names[m.value().get()] = m.key();
  return names;
}

// (N, …, D) → (N, M, D): every position of an example in one dimension.
torch::Tensor per_position(const torch::Tensor& t) { return t.reshape({t.size(0), -1, t.size(-1)}); }

// Per-example squared gradients of every recorded layer's parameters. `grads[i]` is the gradient
// of the summed loss with respect to records[i].output. Linear: G_n = Σ_t g_nt x_ntᵀ; LayerNorm
// and RMSNorm: G_n = Σ_t g_nt ⊙ x̂_nt; embeddings gather the rows of the example's tokens, plus a
// tied output projection's Σ_t g_nt h_ntᵀ.
void accumulate_captured(const ModuleNames& names, std::vector<LayerCapture>& records,
                         const std::vector<torch::Tensor>& grads, TensorMap& fisher, double scale) {
  torch::NoGradGuard no_grad;
  std::unordered_map<std::string, std::pair<torch::Tensor, torch::Tensor>> embedded;  // name → (ids, grad)
  for (size_t i = 0; i < records.size(); ++i) {
    const LayerCapture& r = records[i];
    if (!grads[i].defined()) continue;
    // A frozen layer (LoRA trains only the adapters) has no Fisher entry: skip its work.
    if (r.module != nullptr && !fisher.count(names.at(r.module) + ".weight")) continue;
    const auto g = per_position(grads[i]);
    if (r.kind == LayerCapture::Kind::kLinear) {
      const auto& prefix = names.at(r.module);
      add_sq(fisher, prefix + ".weight", torch::bmm(g.transpose(1, 2), per_position(r.input)), scale);  // (N, out, in)
      add_sq(fisher, prefix + ".bias", g.sum(1), scale);
    } else if (r.kind == LayerCapture::Kind::kLayerNorm) {
      const auto& prefix = names.at(r.module);
      const double eps = dynamic_cast<const torch::nn::LayerNormImpl*>(r.module)->options.eps();
      const auto x = per_position(r.input);
      auto xhat = (x - x.mean(-1, true)) / (x.var(-1, /*unbiased=*/false, true) + eps).sqrt();
      add_sq(fisher, prefix + ".weight", (g * xhat).sum(1), scale);
      add_sq(fisher, prefix + ".bias", g.sum(1), scale);
    } else if (r.kind == LayerCapture::Kind::kRmsNorm) {
      const auto& prefix = names.at(r.module);
      const auto x = per_position(r.input).to(torch::kFloat);
      auto xhat = x * torch::rsqrt(x.pow(2).mean(-1, true) + r.eps);
      add_sq(fisher, prefix + ".weight", (g.to(torch::kFloat) * xhat).sum(1), scale);
    } else if (r.kind == LayerCapture::Kind::kEmbeddings) {
      embedded[r.embedding] = {r.input, g};
      if (!r.positions.empty() && fisher.count(r.positions)) {
        const int64_t T = g.size(1);
        fisher.at(r.positions).narrow(0, 0, T).add_(g.pow(2).sum(0), scale);
      }
    } else if (fisher.count(r.embedding)) {  // kTiedOutput: logits = h Eᵀ, so dL/dE gets gᵀ h per example, plus the embedding rows
      const auto h = per_position(r.input);
      auto e = torch::bmm(g.transpose(1, 2), h);  // (N, V, C)
      const auto it = embedded.find(r.embedding);
      if (it != embedded.end()) {
        const auto& [ids, eg] = it->second;
        e.scatter_add_(1, ids.reshape({ids.size(0), -1, 1}).expand({eg.size(0), eg.size(1), eg.size(2)}), eg);
        embedded.erase(it);
      }
      add_sq(fisher, r.embedding, e, scale);
    }
  }
  for (auto& [name, ig] : embedded) {  // an untied embedding: only its rows
    if (!fisher.count(name)) continue;
    const auto& [ids, eg] = ig;
    auto e = torch::zeros({eg.size(0), fisher.at(name).size(0), eg.size(2)}, eg.options());
    e.scatter_add_(1, ids.reshape({ids.size(0), -1, 1}).expand({eg.size(0), eg.size(1), eg.size(2)}), eg);
    add_sq(fisher, name, e, scale);
  }
}

}  // namespace

bool fisher_batch_is_mine(const FisherOptions& options, int64_t k) { return Shard(options).mine(k); }

void finish_fisher_sums(const FisherOptions& options, TensorMap& fisher, int64_t count) {
  Shard(options).finish(fisher, count);
}

std::vector<int64_t> fisher_sample_indices(int64_t count, int64_t n, uint64_t seed) {
  return pick(count, n, seed);
}

TensorMap estimate_fisher_loop(torch::nn::Module& model, int64_t count, const PerExampleLoss& losses,
                               const FisherOptions& options) {
  TensorMap fisher;
  std::vector<std::pair<std::string, torch::Tensor>> params;
  for (auto& p : model.named_parameters())
    if (p.value().requires_grad()) {
      params.emplace_back(p.key(), p.value());
      fisher[p.key()] = torch::zeros_like(p.value(), torch::kFloat);
    }
  auto gen = at::detail::createCPUGenerator(options.seed);
  const auto idx = pick(count, options.num_samples, options.seed);
  const bool sample = options.estimator == FisherEstimator::kTrue;
  const int64_t repeats = sample ? std::max<int64_t>(1, options.samples_per_example) : 1;
  auto zero = [&] { for (auto& [n, p] : params) p.mutable_grad() = torch::Tensor(); };
  auto add = [&](double scale) {
    torch::NoGradGuard no_grad;
    for (auto& [n, p] : params)
      if (p.grad().defined()) fisher.at(n).add_(p.grad().to(torch::kFloat).pow(2), scale);
  };
  const Shard shard(options);
  Progress progress("fisher", int64_t(idx.size()));
  if (options.estimator == FisherEstimator::kBatch) {
    int64_t batches = 0;
    for (size_t s = 0; s < idx.size(); s += options.batch_size, ++batches) {
      if (!shard.mine(batches)) continue;
      std::vector<int64_t> chunk(idx.begin() + s, idx.begin() + std::min(idx.size(), s + options.batch_size));
      zero();
      losses(chunk, false, gen).mean().backward();
      add(double(chunk.size()));  // B · (mean gradient)²
      progress.update(int64_t(s + chunk.size()));
    }
    zero();
    shard.finish(fisher, std::max<int64_t>(1, batches));
  } else {
    for (size_t p = 0; p < idx.size(); ++p) {
      if (!shard.mine(int64_t(p) / options.batch_size)) continue;
      for (int64_t r = 0; r < repeats; ++r) {
        zero();
        losses({idx[p]}, sample, gen).sum().backward();
        add(1.0 / repeats);
      }
      progress.update(int64_t(p) + 1);
    }
    zero();
    shard.finish(fisher, std::max<int64_t>(1, int64_t(idx.size())));
  }
  check_finite(fisher);
  return fisher;
}


TensorMap estimate_fisher_batched(torch::nn::Module& model, int64_t count, const PerExampleLoss& losses,
                                  const FisherOptions& options) {
  TensorMap fisher;
  for (auto& p : model.named_parameters())
    if (p.value().requires_grad()) fisher[p.key()] = torch::zeros_like(p.value(), torch::kFloat);
  const ModuleNames names = module_names(model);
  auto gen = at::detail::createCPUGenerator(options.seed);
  const auto idx = pick(count, options.num_samples, options.seed);
  const bool sample = options.estimator == FisherEstimator::kTrue;
  const int64_t repeats = sample ? std::max<int64_t>(1, options.samples_per_example) : 1;
  const Shard shard(options);
  Progress progress("fisher", int64_t(idx.size()));
  for (size_t s = 0; s < idx.size(); s += options.batch_size) {
    if (!shard.mine(int64_t(s) / options.batch_size)) continue;
    std::vector<int64_t> chunk(idx.begin() + s, idx.begin() + std::min(idx.size(), s + options.batch_size));
    for (int64_t r = 0; r < repeats; ++r) {
      CaptureScope scope;
      const torch::Tensor loss = losses(chunk, sample, gen).sum();
      // Gradients with respect to the captured layer outputs only: autograd then skips the
      // parameters' own (summed) gradients, a third of a backward pass that is not needed here.
      std::vector<torch::Tensor> outputs;
      for (const auto& rec : scope.records()) outputs.push_back(rec.output);
      const auto grads = torch::autograd::grad({loss}, outputs, {}, /*retain_graph=*/false,
                                               /*create_graph=*/false, /*allow_unused=*/true);
      accumulate_captured(names, scope.records(), grads, fisher, 1.0 / repeats);
    }
    progress.update(int64_t(s + chunk.size()));
  }
  for (auto& p : model.parameters()) p.mutable_grad() = torch::Tensor();
  shard.finish(fisher, int64_t(idx.size()));
  check_finite(fisher);
  return fisher;
}

}  // namespace retain
