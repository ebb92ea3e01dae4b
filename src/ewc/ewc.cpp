// The EWC penalty, online consolidation, ewc.safetensors and Fisher statistics.
#include "retain/ewc.h"

#include <filesystem>
#include <iomanip>
#include <sstream>

#include "retain/errors.h"
#include "retain/hash.h"
#include "retain/lora.h"

namespace retain {

torch::Tensor ewc_penalty(torch::nn::Module& model, const EwcState& state, double lambda) {
  torch::Tensor total;
  auto add = [&](const torch::Tensor& fisher, const torch::Tensor& diff) {
    auto term = (fisher * diff * diff).sum();
    total = total.defined() ? total + term : term;
  };
  std::map<std::string, torch::Tensor> moved;  // adapted weights: W + s·B·A
  for (const LoraSite& site : lora_sites(model))
    moved[site.name + ".weight"] = site.layer->weight + torch::matmul(site.b->weight, site.a->weight) * site.b->scale;
  for (const auto& p : model.named_parameters()) {
    auto f = state.fisher.find(p.key());
    if (f == state.fisher.end()) continue;
    const auto m = moved.find(p.key());
    add(f->second, (m != moved.end() ? m->second : p.value()) - state.anchor.at(p.key()));
  }
  if (!total.defined()) return torch::zeros({});
  // EWC, Kirkpatrick et al. 2017: λ/2 Σ_i F_i (θ_i − θ*_i)²
  return total * (0.5 * lambda);
}

EwcPenalty::EwcPenalty(torch::nn::Module& model, const EwcState& state, double lambda) : lambda_(lambda) {
  for (const auto& p : model.named_parameters()) {
    auto f = state.fisher.find(p.key());
    if (f == state.fisher.end() || !p.value().requires_grad()) continue;
    terms_.push_back({p.value(), f->second.to(p.value().device(), p.value().scalar_type()),
                      state.anchor.at(p.key()).to(p.value().device(), p.value().scalar_type())});
  }
  // A frozen weight under a LoRA adapter moves by scale · B A: penalised through its factors.
  for (const LoraSite& site : lora_sites(model)) {
    const auto f = state.fisher.find(site.name + ".weight");
    if (f == state.fisher.end() || site.layer->weight.requires_grad()) continue;
    const auto& w = site.layer->weight;
    adapted_.push_back({w, f->second.to(w.device(), w.scalar_type()),
                        state.anchor.at(site.name + ".weight").to(w.device(), w.scalar_type()), site.a->weight,
                        site.b->weight, site.b->scale});
  }
}

namespace {

void add_to_grad(const torch::Tensor& param, const torch::Tensor& g, double alpha) {
  auto& grad = param.mutable_grad();
  if (grad.defined()) grad.add_(g, alpha);
  else grad = g * alpha;
}

}  // namespace

torch::Tensor EwcPenalty::add_gradient() const {
  torch::NoGradGuard no_grad;
  torch::Tensor total;
  auto add_term = [&](const torch::Tensor& weighted, const torch::Tensor& diff) {
    auto term = torch::dot(weighted.view(-1), diff.view(-1));
    total = total.defined() ? total.add_(term) : term;
  };
  for (const auto& t : terms_) {
    auto diff = t.param - t.anchor;
    auto weighted = t.fisher * diff;  // F (θ − θ*)
    add_to_grad(t.param, weighted, lambda_);
    add_term(weighted, diff);
  }
  for (const auto& t : adapted_) {
    // θ = W + s·B·A: D = θ − θ*, and with G = F ⊙ D, ∂/∂B = λ s G Aᵀ and ∂/∂A = λ s Bᵀ G.
    auto diff = (t.weight - t.anchor).add_(torch::matmul(t.b, t.a), t.scale);
    auto weighted = t.fisher * diff;
    add_to_grad(t.b, torch::matmul(weighted, t.a.t()), lambda_ * t.scale);
    add_to_grad(t.a, torch::matmul(t.b.t(), weighted), lambda_ * t.scale);
    add_term(weighted, diff);
  }
  if (!total.defined()) return torch::zeros({});
  return total * (0.5 * lambda_);  // λ/2 Σ F (θ − θ*)²
}

EwcState consolidate(const EwcState* previous, const TensorMap& fisher_new, const TensorMap& theta_new,
                     double gamma) {
  if (gamma < 0) throw ConfigError("ewc_gamma must not be negative");
  EwcState out;
  torch::NoGradGuard no_grad;
  for (const auto& [name, f] : fisher_new) {
    auto theta = theta_new.find(name);
    if (theta == theta_new.end()) throw CheckpointError("consolidate: no new weights for parameter " + name);
    torch::Tensor combined = f.to(torch::kFloat).clone();
    if (previous != nullptr) {
      auto prev = previous->fisher.find(name);
      if (prev == previous->fisher.end() || prev->second.sizes() != f.sizes())
        throw CheckpointError("consolidate: the previous Fisher has no matching entry for parameter " + name);
      // Online EWC (Schwarz et al. 2018): F ← γ·F_prev + F_new
      combined.add_(prev->second.to(combined.device(), torch::kFloat), gamma);
    }
    out.fisher[name] = combined;
    out.anchor[name] = theta->second.detach().to(torch::kFloat).clone();
  }
  out.gamma = gamma;
  out.rounds = previous ? previous->rounds + 1 : 1;
  return out;
}

namespace {

// The weights file beside an ewc.safetensors: the version's own weights.
std::string sibling_weights(const std::string& ewc_path) {
  return (std::filesystem::path(ewc_path).parent_path() / kWeightsFile).string();
}

}  // namespace

void save_ewc(const std::string& path, const EwcState& state, bool bf16, const TensorMap* stored_weights) {
  // θ* is usually the version's own weights: where an anchor equals the weights stored beside it,
  // it is not stored twice (the file records the weights' hash, and load_ewc reads them back).
  const std::string weights_path = sibling_weights(path);
  TensorMap read;
  if (stored_weights == nullptr && std::filesystem::is_regular_file(weights_path))
    read = load_safetensors(weights_path).tensors;
  const TensorMap& weights = stored_weights != nullptr ? *stored_weights : read;
  TensorMap tensors;
  const auto dtype = bf16 ? torch::kBFloat16 : torch::kFloat;
  int64_t omitted = 0;
  for (const auto& [name, f] : state.fisher) {
    tensors["fisher." + name] = f.detach().to(torch::kCPU, dtype);
    const torch::Tensor anchor = state.anchor.at(name).detach().to(torch::kCPU, torch::kFloat);
    const auto w = weights.find(name);
    if (w != weights.end() && w->second.sizes() == anchor.sizes() && torch::equal(w->second.to(torch::kFloat), anchor)) {
      ++omitted;
      continue;
    }
    tensors["anchor." + name] = anchor.to(dtype);
  }
  std::ostringstream gamma;
  gamma << std::setprecision(17) << state.gamma;
  StringMap metadata = {{"format_version", std::to_string(kEwcFormat)},
                        {"estimator", state.estimator},
                        {"num_samples", std::to_string(state.num_samples)},
                        {"gamma", gamma.str()},
                        {"data_hash", state.data_hash},
                        {"rounds", std::to_string(state.rounds)}};
  if (omitted > 0) metadata["anchor_weights_sha256"] = sha256_file_hex(weights_path);
  save_safetensors(path, tensors, metadata);
}

EwcState load_ewc(const std::string& path, torch::nn::Module& model) {
  auto file = load_safetensors(path);
  auto meta = [&](const char* key) {
    auto it = file.metadata.find(key);
    if (it == file.metadata.end()) throw CheckpointError(path + ": __metadata__ lacks \"" + key + "\"");
    return it->second;
  };
  if (meta("format_version") != "1" && meta("format_version") != std::to_string(kEwcFormat))
    throw CheckpointError(path + ": unsupported EWC format_version " + meta("format_version"));
  EwcState state;
  try {
    state.estimator = meta("estimator");
    state.num_samples = std::stoll(meta("num_samples"));
    state.gamma = std::stod(meta("gamma"));
    state.rounds = std::stoll(meta("rounds"));
  } catch (const std::logic_error&) {
    throw CheckpointError(path + ": malformed number in __metadata__");
  }
  state.data_hash = file.metadata.count("data_hash") ? file.metadata.at("data_hash") : "";
  // Anchors left out because they equal the weights beside the file (format 2).
  TensorMap weights;
  if (file.metadata.count("anchor_weights_sha256")) {
    const std::string weights_path = sibling_weights(path);
    if (!std::filesystem::is_regular_file(weights_path) ||
        sha256_file_hex(weights_path) != file.metadata.at("anchor_weights_sha256"))
      throw CheckpointError(path + ": its anchor is the weights in " + weights_path +
                            ", which are missing or changed since the Fisher was stored");
    weights = load_safetensors(weights_path).tensors;
  }
  // The file covers one group of the model's parameters: every parameter outside LoRA adapters
  // (a full version's Fisher) or every adapter parameter (a LoRA version's).
  std::vector<std::pair<std::string, torch::Tensor>> base, adapter;
  for (const auto& p : model.named_parameters())
    (is_lora_parameter(p.key()) ? adapter : base).emplace_back(p.key(), p.value());
  const bool adapter_file = !adapter.empty() && file.tensors.count("fisher." + adapter.front().first);
  size_t matched = 0;
  for (const auto& [name, param] : adapter_file ? adapter : base) {
    for (const char* kind : {"fisher.", "anchor."}) {
      auto it = file.tensors.find(kind + name);
      if (it == file.tensors.end() && kind[0] == 'a' && weights.count(name)) {
        state.anchor[name] = weights.at(name).to(param.device(), torch::kFloat);
        continue;
      }
      if (it == file.tensors.end()) throw CheckpointError(path + ": missing " + kind + name);
      if (it->second.sizes() != param.sizes())
        throw CheckpointError(path + ": " + kind + name + " has shape " + c10::str(it->second.sizes()) +
                              ", the model's parameter has " + c10::str(param.sizes()));
      (kind[0] == 'f' ? state.fisher : state.anchor)[name] = it->second.to(param.device(), torch::kFloat);
      ++matched;
    }
  }
  if (matched != file.tensors.size()) {  // a stored tensor no parameter claimed
    for (const auto& [name, t] : file.tensors) {
      const auto dot = name.find('.');
      const auto param = dot == std::string::npos ? name : name.substr(dot + 1);
      if (!state.fisher.count(param)) throw CheckpointError(path + ": tensor " + name + " matches no model parameter");
    }
  }
  return state;
}

std::string fisher_report(const TensorMap& fisher) {
  std::ostringstream out;
  out << std::left << std::setw(28) << "parameter" << std::right << std::setw(12) << "numel" << std::setw(12)
      << "sum" << std::setw(12) << "mean" << std::setw(12) << "p50" << std::setw(12) << "p99" << std::setw(12)
      << "max" << "\n";
  out << std::scientific << std::setprecision(3);
  double total = 0;
  for (const auto& [name, f] : fisher) {
    auto flat = f.detach().to(torch::kCPU, torch::kFloat).flatten();
    auto sorted = std::get<0>(flat.sort());
    auto q = [&](double p) { return sorted[int64_t(p * (sorted.numel() - 1))].item<double>(); };
    const double sum = flat.sum().item<double>();
    total += sum;
    out << std::left << std::setw(28) << name << std::right << std::setw(12) << flat.numel() << std::setw(12) << sum
        << std::setw(12) << sum / std::max<int64_t>(1, flat.numel()) << std::setw(12) << q(0.5) << std::setw(12)
        << q(0.99) << std::setw(12) << sorted[-1].item<double>() << "\n";
  }
  out << "total Fisher mass " << total << "; the penalty of a uniform shift δ of every weight is λ/2·" << total
      << "·δ²\n";
  return out.str();
}

}  // namespace retain
