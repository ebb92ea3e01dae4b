// `retain fisher`: estimate, consolidate and store the EWC state of a model directory (the gpt
// family on chat data, the mlp family on feature data).
#include <chrono>
#include <filesystem>

#include "retain/data.h"
#include "retain/distributed.h"
#include "retain/errors.h"
#include "retain/ewc.h"
#include "retain/fileio.h"
#include "retain/hash.h"
#include "retain/log.h"
#include "retain/mlp.h"
#include "retain/trainer.h"

namespace retain {
namespace fs = std::filesystem;

namespace {

// The model of either family, loaded with its data: the Fisher estimated on demand.
struct FisherSubject {
  std::optional<LoadedModel> gpt;
  std::optional<LoadedMlp> mlp;
  std::vector<RenderedChat> chats;
  FeatureSet features;
  bool has_weights = false;

  torch::nn::Module& module() { return gpt ? static_cast<torch::nn::Module&>(*gpt->model) : *mlp->model; }
  int64_t size() const { return gpt ? int64_t(chats.size()) : features.size(); }
  TensorMap estimate(const FisherOptions& options) {
    if (gpt) return estimate_fisher(gpt->model, chats, options);
    return estimate_mlp_fisher(mlp->model, features.x.to(mlp->model->parameters().front().device()),
                               features.y.to(mlp->model->parameters().front().device()), options);
  }
};

// Reads the data first (nothing is written on bad data), then the model.
FisherSubject load_subject(const FisherJob& job) {
  FisherSubject s;
  if (is_mlp_dir(job.model_dir)) {
    s.mlp = load_mlp_dir(job.model_dir, 0);
    s.features = read_features(job.data, job.labels, s.mlp->config);
    if (s.features.size() == 0) throw DataError(job.data + ": no examples");
    s.has_weights = s.mlp->has_weights;
  } else {
    const auto examples = read_chat_file(job.data);
    s.gpt = load_model_dir(job.model_dir, 0);
    for (const auto& ex : examples) s.chats.push_back(s.gpt->tokenizer->render(ex));
    s.has_weights = s.gpt->has_weights;
  }
  return s;
}

}  // namespace

FisherJobResult run_fisher_job(const FisherJob& job) {
  FisherSubject subject = load_subject(job);
  if (!subject.has_weights)
    throw CheckpointError(job.model_dir + ": has no model.safetensors; the Fisher of a fresh initialisation is meaningless");
  const auto device = DistEnv::from_env().device_for_rank(parse_device(job.device));
  subject.module().to(device);
  std::optional<EwcState> previous;
  if (!job.consolidate_with.empty()) {
    const auto path = fs::is_directory(job.consolidate_with) ? (fs::path(job.consolidate_with) / kEwcFile).string()
                                                             : job.consolidate_with;
    previous = load_ewc(path, subject.module());
  }

  // Data parallel when started as one of several workers (torchrun, Slurm, --nproc): every rank
  // estimates on its share of the examples; rank 0 alone writes.
  const DistEnv env = DistEnv::from_env();
  std::unique_ptr<Collective> collective;
  if (env.distributed()) collective = std::make_unique<Collective>(env, device);
  FisherOptions options = job.options;
  options.collective = collective.get();

  const auto t0 = std::chrono::steady_clock::now();
  auto fisher = subject.estimate(options);
  FisherJobResult result;
  result.state = consolidate(previous ? &*previous : nullptr, fisher, parameter_tensors(subject.module()), job.gamma);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  result.state.estimator = estimator_name(job.options.estimator);
  result.state.num_samples = std::min<int64_t>(job.options.num_samples > 0 ? job.options.num_samples : subject.size(),
                                               subject.size());
  result.state.data_hash = "sha256:" + sha256_file_hex(job.data);
  result.out = job.out.empty() ? (fs::path(job.model_dir) / kEwcFile).string() : job.out;
  if (env.rank == 0) save_ewc(result.out, result.state, job.bf16);
  if (collective) collective->barrier();  // every worker ends after the file exists
  log()->info("Fisher ({}, {} examples) in {:.2f}s → {}", result.state.estimator, result.state.num_samples,
              result.seconds, result.out);
  return result;
}

}  // namespace retain
