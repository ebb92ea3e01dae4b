// The training set-up every rank of a round shares, and the part of a data-parallel round that
// ranks other than 0 play (see pipeline_internal.h). Rank 0 runs the round itself (pipeline.cpp)
// and alone reads and writes the workspace; the others learn the run from it through the job's
// store and read only the run folder and the base's model directory.
#include <filesystem>

#include "retain/batch.h"
#include "retain/config.h"
#include "retain/data.h"
#include "retain/errors.h"
#include "retain/log.h"
#include "pipeline_internal.h"

namespace retain::detail {

namespace fs = std::filesystem;

RoundTraining::RoundTraining(RoundModel& model, const RoundConfig& config, const std::optional<EwcState>& base_ewc,
                             const std::string& base_model_id, const TrainHooks& user_hooks, Collective* collective) {
  hooks = user_hooks;
  hooks.collective = collective;
  // The trainer walks global batches (every rank the same), each rank training on its slice.
  const int64_t global_batch = config.training.batch_size * (collective ? collective->world_size() : 1);
  const uint64_t seed = config.training.seed;
  const std::vector<int>& strata = model.strata;
  hooks.epoch_plan = [&strata, global_batch, seed](int64_t epoch) {
    return stratified_epoch_batches(strata, global_batch, seed, epoch);
  };
  if (config.ewc.lambda > 0) {
    if (!base_ewc) throw ConfigError("ewc.lambda > 0 but base " + base_model_id + " has no " + kEwcFile);
    penalty.emplace(model.module(), *base_ewc, config.ewc.lambda);
    hooks.gradient_regularizer = [this] { return penalty->add_gradient(); };
  }
}

RoundResult follow_round(const DistEnv& env, const std::string& config_device) {
  const torch::Device device = env.device_for_rank(parse_device(config_device));
  Collective collective(env, device, kRoundGroupTimeout);
  const nlohmann::json round = nlohmann::json::parse(collective.fetch(kRoundKey));
  const std::string run_dir = round.at("run_dir").get<std::string>();
  const std::string base_dir = round.at("base_dir").get<std::string>();
  const std::string round_path = (fs::path(run_dir) / kRoundFile).string();
  const nlohmann::json state = load_json_file(round_path);
  const RoundConfig config = RoundConfig::from_json(state.at("config"), round_path);

  // The same model and mix as rank 0: the base, the new data, the replayed examples.
  const auto fresh = family_of(base_dir).read_examples(base_dir, state.at("data").get<std::string>());
  RoundInputs in = load_round_inputs(base_dir, run_dir, config, *fresh, device);
  RoundModel* model = in.model.get();
  RoundTraining training(*model, config, in.base_ewc, state.at("base_model_id").get<std::string>(), TrainHooks{},
                         &collective);

  RoundResult result;
  result.run_id = state.at("run_id").get<std::string>();
  result.model_id = state.at("model_id").get<std::string>();
  result.training = train(*model->task, config.training, run_dir, round.at("from_checkpoint").get<bool>(),
                          training.hooks);
  // Rank 0 evaluates and judges alone; on a pass every rank estimates the Fisher on its share.
  if (collective.agree(false, device)) {
    FisherOptions fo = config.ewc.fisher;
    fo.collective = &collective;
    model->fisher(fo);
  }
  collective.barrier();
  result.status = "follower";
  return result;
}

}  // namespace retain::detail
