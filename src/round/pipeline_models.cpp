// The two model families' side of a round (see RoundModel in pipeline_internal.h): the gpt family
// on chat data and the mlp family on feature data.
#include <filesystem>

#include "retain/data.h"
#include "retain/errors.h"
#include "pipeline_internal.h"

namespace retain::detail {
namespace {

namespace fs = std::filesystem;

class ChatRoundModel : public RoundModel {
 public:
  ChatRoundModel(const std::string& dir, uint64_t seed) : loaded_(load_model_dir(dir, seed)) {}
  torch::nn::Module& module() override { return *loaded_.model; }
  EvalResult evaluate(const LoadedTestSet& t, const RoundConfig::Eval& eval) override {
    EvalOptions o;
    o.batch_size = eval.batch_size;
    o.max_new_tokens = eval.max_new_tokens;
    o.exact_match = t.config->metric == "exact_match";  // generation is the slow part: only when judged on it
    return retain::evaluate(loaded_.model, *loaded_.tokenizer, t.examples, o);
  }
  void set_mix(const RoundData& fresh, const RoundData& replayed, int64_t max_seq_len) override {
    for (const auto& ex : fresh.chats) mix_.push_back(loaded_.tokenizer->render(ex)), strata_.push_back(0);
    for (const auto& ex : replayed.chats) mix_.push_back(loaded_.tokenizer->render(ex)), strata_.push_back(1);
    task_.emplace(loaded_.model, mix_, no_valid_, max_seq_len);
  }
  TrainTask& task() override { return *task_; }
  const std::vector<int>& strata() const override { return strata_; }
  TensorMap fisher(const FisherOptions& options) override { return estimate_fisher(loaded_.model, mix_, options); }
  void save(const std::string& dir, const nlohmann::json& card) override {
    save_model_dir(dir, loaded_.config, loaded_.model, *loaded_.tokenizer, false, card);
  }

 private:
  LoadedModel loaded_;
  std::vector<RenderedChat> mix_, no_valid_;
  std::vector<int> strata_;
  std::optional<ChatTask> task_;
};

class MlpRoundModel : public RoundModel {
 public:
  MlpRoundModel(const std::string& dir, uint64_t seed) : loaded_(load_mlp_dir(dir, seed)) {}
  torch::nn::Module& module() override { return *loaded_.model; }
  const MlpConfig* classifier() const override { return &loaded_.config; }
  EvalResult evaluate(const LoadedTestSet& t, const RoundConfig::Eval& eval) override {
    EvalResult r;
    r.loss = evaluate_classifier(loaded_.model, t.features, eval.batch_size);
    return r;
  }
  void set_mix(const RoundData& fresh_data, const RoundData& replayed_data, int64_t) override {
    const FeatureSet& fresh = fresh_data.features;
    const FeatureSet& replayed = replayed_data.features;
    mix_.x = replayed.size() > 0 ? torch::cat({fresh.x, replayed.x}) : fresh.x;
    mix_.y = replayed.size() > 0 ? torch::cat({fresh.y, replayed.y}) : fresh.y;
    strata_.assign(fresh.size(), 0);
    strata_.insert(strata_.end(), replayed.size(), 1);
    task_.emplace(loaded_.model, mix_, no_valid_);
  }
  TrainTask& task() override { return *task_; }
  const std::vector<int>& strata() const override { return strata_; }
  TensorMap fisher(const FisherOptions& options) override {
    const auto device = loaded_.model->parameters().front().device();
    return estimate_mlp_fisher(loaded_.model, mix_.x.to(device), mix_.y.to(device), options);
  }
  void save(const std::string& dir, const nlohmann::json& card) override {
    save_mlp_dir(dir, loaded_.config, loaded_.model, false, card);
  }

 private:
  LoadedMlp loaded_;
  FeatureSet mix_, no_valid_;
  std::vector<int> strata_;
  std::optional<FeatureTask> task_;
};

}  // namespace

RoundData read_round_data(const std::string& path, const MlpConfig* classifier) {
  RoundData d;
  if (!classifier) d.chats = read_chat_file(path);
  else if (fs::file_size(path) > 0) d.features = read_features(path, "", *classifier);
  return d;
}

std::unique_ptr<RoundModel> load_round_model(const std::string& dir, uint64_t seed) {
  if (is_mlp_dir(dir)) return std::make_unique<MlpRoundModel>(dir, seed);
  return std::make_unique<ChatRoundModel>(dir, seed);
}

}  // namespace retain::detail
