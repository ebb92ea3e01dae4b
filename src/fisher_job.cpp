// `retain fisher`: estimate, consolidate and store the EWC state of a model directory.
#include <chrono>
#include <filesystem>

#include "retain/data.h"
#include "retain/distributed.h"
#include "retain/errors.h"
#include "retain/ewc.h"
#include "retain/fileio.h"
#include "retain/hash.h"
#include "retain/log.h"
#include "retain/trainer.h"

namespace retain {
namespace fs = std::filesystem;

FisherJobResult run_fisher_job(const FisherJob& job) {
  const auto examples = read_chat_file(job.data);  // validates first: nothing is written on bad data
  const auto device = DistEnv::from_env().device_for_rank(parse_device(job.device));
  auto loaded = load_model_dir(job.model_dir, 0);
  if (!loaded.has_weights)
    throw CheckpointError(job.model_dir + ": has no model.safetensors; the Fisher of a fresh initialisation is meaningless");
  loaded.model->to(device);
  std::optional<EwcState> previous;
  if (!job.consolidate_with.empty()) {
    const auto path = fs::is_directory(job.consolidate_with) ? (fs::path(job.consolidate_with) / kEwcFile).string()
                                                             : job.consolidate_with;
    previous = load_ewc(path, *loaded.model);
  }
  std::vector<RenderedChat> rendered;
  for (const auto& ex : examples) rendered.push_back(loaded.tokenizer->render(ex));

  // Data parallel when started as one of several workers (torchrun, Slurm, --nproc): every rank
  // estimates on its share of the examples; rank 0 alone writes.
  const DistEnv env = DistEnv::from_env();
  std::unique_ptr<Collective> collective;
  if (env.distributed()) collective = std::make_unique<Collective>(env, device);
  FisherOptions options = job.options;
  options.collective = collective.get();

  const auto t0 = std::chrono::steady_clock::now();
  auto fisher = estimate_fisher(loaded.model, rendered, options);
  FisherJobResult result;
  result.state = consolidate(previous ? &*previous : nullptr, fisher, parameter_tensors(*loaded.model), job.gamma);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  result.state.estimator = estimator_name(job.options.estimator);
  result.state.num_samples = std::min<int64_t>(job.options.num_samples > 0 ? job.options.num_samples : rendered.size(),
                                               rendered.size());
  result.state.data_hash = "sha256:" + to_hex(sha256(read_file(job.data)));
  result.out = job.out.empty() ? (fs::path(job.model_dir) / kEwcFile).string() : job.out;
  if (env.rank == 0) save_ewc(result.out, result.state, job.bf16);
  if (collective) collective->barrier();  // every worker ends after the file exists
  log()->info("Fisher ({}, {} examples) in {:.2f}s → {}", result.state.estimator, result.state.num_samples,
              result.seconds, result.out);
  return result;
}

}  // namespace retain
