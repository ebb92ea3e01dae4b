// Model family `mlp`: the classifier, its losses, its exact batched per-example Fisher and its
// model directories.
#include <filesystem>
#include <limits>

#include <ATen/CPUGeneratorImpl.h>

#include "retain/errors.h"
#include "retain/fileio.h"
#include "retain/mlp.h"
#include "retain/model.h"

namespace retain {

namespace fs = std::filesystem;

MlpConfig MlpConfig::from_json(const nlohmann::json& j, const std::string& what) {
  if (!j.is_object()) throw ConfigError(what + ": the mlp config must be a JSON object");
  MlpConfig c;
  auto positive = [&](const nlohmann::json& v, const std::string& key) {
    if (!v.is_number_integer() || v.get<int64_t>() <= 0)
      throw ConfigError(what + ": \"" + key + "\" must be a positive integer");
    return v.get<int64_t>();
  };
  for (const auto& [key, v] : j.items()) {
    if (key == "model_type") {
      if (v != "mlp") throw ConfigError(what + ": \"model_type\" must be \"mlp\"");
    } else if (key == "activation") {
      if (v != "relu") throw ConfigError(what + ": \"activation\" must be \"relu\" (the only one supported)");
    } else if (key == "input_size") {
      c.input_size = positive(v, key);
    } else if (key == "num_classes") {
      c.num_classes = positive(v, key);
    } else if (key == "hidden_sizes") {
      if (!v.is_array()) throw ConfigError(what + ": \"hidden_sizes\" must be an array of positive integers");
      c.hidden_sizes.clear();
      for (const auto& h : v) c.hidden_sizes.push_back(positive(h, "hidden_sizes"));
    } else {
      throw ConfigError(what + ": unknown key \"" + key + "\" in the mlp config");
    }
  }
  return c;
}

nlohmann::json MlpConfig::to_json() const {
  return {{"model_type", "mlp"},
          {"input_size", input_size},
          {"hidden_sizes", hidden_sizes},
          {"num_classes", num_classes},
          {"activation", "relu"}};
}

int64_t MlpConfig::num_parameters() const {
  int64_t total = 0, in = input_size;
  for (int64_t h : hidden_sizes) {
    total += (in + 1) * h;
    in = h;
  }
  return total + (in + 1) * num_classes;
}

MlpClassifierImpl::MlpClassifierImpl(const MlpConfig& config) : config_(config) {
  layers = register_module("layers", torch::nn::ModuleList());
  int64_t in = config.input_size;
  for (int64_t h : config.hidden_sizes) {
    layers->push_back(torch::nn::Linear(in, h));
    in = h;
  }
  layers->push_back(torch::nn::Linear(in, config.num_classes));
}

torch::Tensor MlpClassifierImpl::forward(const torch::Tensor& x) {
  auto h = x;  // (B, in)
  const size_t n = layers->size();
  for (size_t i = 0; i < n; ++i) {
    h = layers[i]->as<torch::nn::Linear>()->forward(h);
    if (i + 1 < n) h = torch::relu(h);
  }
  return h;  // (B, C)
}

torch::Tensor MlpClassifierImpl::forward_recorded(const torch::Tensor& x, std::vector<torch::Tensor>& inputs,
                                                  std::vector<torch::Tensor>& outputs) {
  auto h = x;
  const size_t n = layers->size();
  for (size_t i = 0; i < n; ++i) {
    inputs.push_back(h.detach());
    h = layers[i]->as<torch::nn::Linear>()->forward(h);
    outputs.push_back(h);
    if (i + 1 < n) h = torch::relu(h);
  }
  return h;
}

torch::Tensor mask_logits(const torch::Tensor& logits, const torch::Tensor& allowed) {
  if (!allowed.defined()) return logits;
  return logits.masked_fill(allowed.logical_not(), -std::numeric_limits<float>::infinity());
}

torch::Tensor classifier_losses(const torch::Tensor& logits, const torch::Tensor& labels,
                                const torch::Tensor& allowed) {
  auto logp = torch::log_softmax(mask_logits(logits, allowed), -1);  // (B, C)
  return -logp.gather(1, labels.view({-1, 1})).squeeze(1);
}

namespace {

// The rows of `allowed` for the examples `i` (a per-class mask is shared by every example).
torch::Tensor allowed_rows(const torch::Tensor& allowed, const torch::Tensor& i) {
  if (!allowed.defined() || allowed.dim() == 1) return allowed;
  return allowed.index_select(0, i);
}

// Labels drawn from the model's predictive distribution: logits (B, C) → (B).
torch::Tensor sample_labels(const torch::Tensor& logits, at::Generator& gen) {
  torch::NoGradGuard no_grad;
  auto probs = torch::softmax(logits.detach().to(torch::kFloat), -1).cpu();
  return torch::multinomial(probs, 1, true, gen).view({-1}).to(logits.device());
}

}  // namespace

TensorMap estimate_mlp_fisher(MlpClassifier& model, const torch::Tensor& x, const torch::Tensor& y,
                              const FisherOptions& options, const torch::Tensor& allowed) {
  const bool was_training = model->is_training();
  model->eval();
  const int64_t count = x.size(0);
  auto losses_of = [&](const torch::Tensor& i, bool sample, at::Generator& gen, std::vector<torch::Tensor>* in,
                       std::vector<torch::Tensor>* out) {
    const auto xb = x.index_select(0, i);
    auto logits = in ? model->forward_recorded(xb, *in, *out) : model->forward(xb);
    const auto mask = allowed_rows(allowed, i);
    auto labels = sample ? sample_labels(mask_logits(logits, mask), gen) : y.index_select(0, i);
    return classifier_losses(logits, labels, mask);
  };
  TensorMap fisher;
  const bool loop = options.path == FisherOptions::Path::kLoop || options.estimator == FisherEstimator::kBatch;
  if (loop) {
    fisher = estimate_fisher_loop(
        *model, count,
        [&](const std::vector<int64_t>& idx, bool sample, at::Generator& gen) {
          return losses_of(torch::tensor(idx, torch::kLong).to(x.device()), sample, gen, nullptr, nullptr);
        },
        options);
  } else {
    for (const auto& p : model->named_parameters()) fisher[p.key()] = torch::zeros_like(p.value(), torch::kFloat);
    auto gen = at::detail::createCPUGenerator(options.seed);
    const auto idx = fisher_sample_indices(count, options.num_samples, options.seed);
    const bool sample = options.estimator == FisherEstimator::kTrue;
    const int64_t repeats = sample ? std::max<int64_t>(1, options.samples_per_example) : 1;
    const int64_t batch = std::max<int64_t>(1, options.batch_size);
    for (size_t s = 0; s < idx.size(); s += batch) {
      if (!fisher_batch_is_mine(options, int64_t(s) / batch)) continue;  // another rank's share
      const auto end = std::min(idx.size(), s + batch);
      const auto i = torch::tensor(std::vector<int64_t>(idx.begin() + s, idx.begin() + end), torch::kLong)
                         .to(x.device());
      for (int64_t r = 0; r < repeats; ++r) {
        std::vector<torch::Tensor> inputs, outputs;
        const auto loss = losses_of(i, sample, gen, &inputs, &outputs).sum();
        const auto grads = torch::autograd::grad({loss}, outputs);  // dL/d(output) per layer: (B, out)
        torch::NoGradGuard no_grad;
        for (size_t l = 0; l < grads.size(); ++l) {
          const auto g2 = grads[l].to(torch::kFloat).pow(2), x2 = inputs[l].to(torch::kFloat).pow(2);
          const auto prefix = "layers." + std::to_string(l);
          // Σ_n (g_n x_nᵀ)² = Σ_n g_n² (x_n²)ᵀ = (g²)ᵀ x²: (out, in)
          fisher.at(prefix + ".weight").addmm_(g2.t(), x2, 1.0, 1.0 / repeats);
          fisher.at(prefix + ".bias").add_(g2.sum(0), 1.0 / repeats);
        }
      }
    }
    finish_fisher_sums(options, fisher, std::max<int64_t>(1, int64_t(idx.size())));
    for (auto& [name, f] : fisher) {
      if (!torch::isfinite(f).all().item<bool>())
        throw TrainingError("Fisher of parameter " + name + " is not finite; check the model and data");
    }
  }
  for (auto& p : model->parameters()) p.mutable_grad() = torch::Tensor();
  model->train(was_training);
  return fisher;
}

void save_mlp_dir(const std::string& dir, const MlpConfig& config, MlpClassifier& model, bool overwrite,
                  const nlohmann::json& card) {
  std::vector<std::pair<std::string, std::string>> files = {{kConfigFile, config.to_json().dump(2) + "\n"}};
  if (!card.is_null()) files.emplace_back("card.json", card.dump(2) + "\n");
  write_model_dir(dir, *model, files, overwrite);
}

LoadedMlp load_mlp_dir(const std::string& dir, uint64_t init_seed) {
  const auto config_path = (fs::path(dir) / kConfigFile).string();
  if (!fs::exists(config_path)) throw CheckpointError(dir + ": not a model directory (no " + kConfigFile + ")");
  const nlohmann::json cj = read_json_file(config_path);
  if (!cj.is_object() || !cj.contains("model_type") || cj["model_type"] != "mlp")
    throw CheckpointError(config_path + ": not an mlp model (model_type must be \"mlp\")");
  LoadedMlp loaded;
  loaded.config = MlpConfig::from_json(cj, config_path);
  torch::manual_seed(init_seed);
  loaded.model = MlpClassifier(loaded.config);
  const auto weights_path = (fs::path(dir) / kWeightsFile).string();
  if (!fs::exists(weights_path)) return loaded;
  load_parameters(*loaded.model, load_safetensors(weights_path).tensors, weights_path);
  loaded.has_weights = true;
  return loaded;
}

}  // namespace retain
