// `retain fisher`: estimate, consolidate and store the EWC state of a model directory of any
// family on its data.
#include <chrono>
#include <filesystem>

#include "retain/distributed.h"
#include "retain/errors.h"
#include "retain/ewc.h"
#include "retain/fileio.h"
#include "retain/hash.h"
#include "retain/log.h"
#include "retain/lora_model.h"
#include "retain/family.h"
#include "retain/fisher_job.h"

namespace retain {
namespace fs = std::filesystem;

namespace {

// The model of either family with its data, read first (nothing is written on bad data).
struct FisherSubject {
  std::unique_ptr<Examples> data;
  std::unique_ptr<FamilyModel> model;
};

FisherSubject load_subject(const FisherJob& job) {
  const ModelFamily& family = family_of(job.model_dir);
  FisherSubject s;
  s.data = family.read_examples(job.model_dir, job.data, job.labels);
  if (s.data->size() == 0) throw DataError(job.data + ": no examples");
  // A LoRA adapter directory: the Fisher of its adapter parameters (what its rounds anchor).
  LoraConfig lora;
  if (is_adapter_dir(job.model_dir)) lora = read_adapter_config(job.model_dir, lora_layout_of(family, job.model_dir));
  s.model = load_trainable_model(job.model_dir, 0, lora, job.model_dir).model;
  return s;
}

}  // namespace

FisherJobResult run_fisher_job(const FisherJob& job) {
  FisherSubject subject = load_subject(job);
  if (!subject.model->has_weights())
    throw CheckpointError(job.model_dir + ": has no model.safetensors; the Fisher of a fresh initialisation is meaningless");
  const auto device = DistEnv::from_env().device_for_rank(parse_device(job.device));
  subject.model->module().to(device);
  std::optional<EwcState> previous;
  if (!job.consolidate_with.empty()) {
    const auto path = fs::is_directory(job.consolidate_with) ? (fs::path(job.consolidate_with) / kEwcFile).string()
                                                             : job.consolidate_with;
    previous = load_ewc(path, subject.model->module());
  }

  // Data parallel when started as one of several workers (torchrun, Slurm, --nproc): every rank
  // estimates on its share of the examples; rank 0 alone writes.
  const DistEnv env = DistEnv::from_env();
  std::unique_ptr<Collective> collective;
  if (env.distributed()) collective = std::make_unique<Collective>(env, device);
  FisherOptions options = job.options;
  options.collective = collective.get();

  const auto t0 = std::chrono::steady_clock::now();
  auto fisher = subject.model->fisher(*subject.data, options);
  FisherJobResult result;
  result.state = consolidate(previous ? &*previous : nullptr, fisher,
                             parameter_tensors(subject.model->module(), /*trainable_only=*/true), job.gamma);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  result.state.estimator = estimator_name(job.options.estimator);
  result.state.num_samples = std::min<int64_t>(job.options.num_samples > 0 ? job.options.num_samples : subject.data->size(),
                                               subject.data->size());
  result.state.data_hash = "sha256:" + sha256_file_hex(job.data);
  result.out = job.out.empty() ? (fs::path(job.model_dir) / kEwcFile).string() : job.out;
  if (env.rank == 0) save_ewc(result.out, result.state, job.bf16);
  if (collective) collective->barrier();  // every worker ends after the file exists
  log()->info("Fisher ({}, {} examples) in {:.2f}s → {}", result.state.estimator, result.state.num_samples,
              result.seconds, result.out);
  return result;
}

}  // namespace retain
