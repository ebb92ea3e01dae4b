// A round's model (see RoundModel in pipeline_internal.h): the base of any family with the mix.
#include "retain/errors.h"
#include "retain/lora_model.h"
#include "pipeline_internal.h"

namespace retain::detail {

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
  round->adapter_base = loaded.adapter_base;
  return round;
}

}  // namespace retain::detail
