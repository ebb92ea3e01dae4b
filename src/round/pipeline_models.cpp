// A round's model (see RoundModel in pipeline_internal.h): the base of any family with the mix.
#include <filesystem>

#include "retain/errors.h"
#include "retain/lora_model.h"
#include "pipeline_internal.h"

namespace retain::detail {

namespace fs = std::filesystem;

void RoundModel::set_mix(const Examples& fresh, const Examples& replayed, int64_t max_seq_len) {
  mix = family->join(fresh, replayed);
  strata.assign(fresh.size(), 0);
  strata.insert(strata.end(), replayed.size(), 1);
  no_valid = family->no_examples();
  task = model->task(*mix, *no_valid, max_seq_len);
}

std::unique_ptr<RoundModel> load_round_model(const std::string& dir, uint64_t seed, const LoraConfig& lora) {
  TrainableModel loaded = load_trainable_model(dir, seed, lora, "the round's lora section");
  auto round = std::make_unique<RoundModel>();
  round->family = loaded.family;
  round->model = std::move(loaded.model);
  return round;
}

RoundInputs load_round_inputs(const std::string& base_dir, const std::string& run_dir, const RoundConfig& config,
                              const Examples& fresh, torch::Device device) {
  RoundInputs in;
  in.base_dir = base_dir;
  in.run_dir = run_dir;
  in.device = device;
  in.model = load_round_model(base_dir, config.training.seed, config.lora);
  const auto replayed = in.model->family->read_examples(base_dir, (fs::path(run_dir) / kReplayFile).string());
  in.model->set_mix(fresh, *replayed, config.training.max_seq_len);
  in.model->module().to(device);
  const fs::path ewc = fs::path(base_dir) / kEwcFile;
  if (fs::exists(ewc)) in.base_ewc = load_ewc(ewc.string(), in.model->module());
  return in;
}

}  // namespace retain::detail
