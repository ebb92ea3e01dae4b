// The `mlp` family (a classifier on feature vectors) behind the family interface: feature JSONL
// or IDX images with labels, accuracy as its metric, its batched per-example Fisher.
#include <filesystem>

#include "retain/errors.h"
#include "retain/family.h"
#include "retain/mlp.h"
#include "../families.h"

namespace retain {
namespace {

namespace fs = std::filesystem;

class FeatureExamples : public Examples {
 public:
  explicit FeatureExamples(FeatureSet set) : set_(std::move(set)) {}
  int64_t size() const override { return set_.size(); }
  std::vector<ReplayRow> replay_rows() const override { return set_.size() > 0 ? feature_replay_rows(set_) : std::vector<ReplayRow>{}; }
  const FeatureSet& set() const { return set_; }

 private:
  FeatureSet set_;
};

const FeatureSet& as_features(const Examples& set) {
  const auto* f = dynamic_cast<const FeatureExamples*>(&set);
  if (f == nullptr) throw ConfigError("an mlp model was given examples read by another model family");
  return f->set();
}

MlpConfig config_of(const std::string& dir) {
  const auto config = read_mlp_config(dir);
  if (!config) throw CheckpointError(dir + ": not an mlp model directory");
  return *config;
}

class MlpModel : public FamilyModel {
 public:
  explicit MlpModel(LoadedMlp loaded) : loaded_(std::move(loaded)) {}
  torch::nn::Module& module() override { return *loaded_.model; }
  bool has_weights() const override { return loaded_.has_weights; }
  std::string describe() const override {
    return "mlp, " + std::to_string(loaded_.config.num_parameters()) + " parameters, " +
           (loaded_.has_weights ? "weights" : "fresh init");
  }
  std::unique_ptr<TrainTask> task(const Examples& train, const Examples& valid, int64_t) override {
    return std::make_unique<FeatureTask>(loaded_.model, as_features(train), as_features(valid));
  }
  Metrics evaluate(const Examples& set, const EvalSettings& settings) override {
    const LossStats s = evaluate_classifier(loaded_.model, as_features(set), settings.batch_size);
    return {{"accuracy", s.token_accuracy}, {"loss", s.loss}, {"perplexity", s.perplexity},
            {"examples", double(s.examples)}};
  }
  TensorMap fisher(const Examples& examples, const FisherOptions& options) override {
    const FeatureSet& set = as_features(examples);
    const auto device = loaded_.model->parameters().front().device();
    return estimate_mlp_fisher(loaded_.model, set.x.to(device), set.y.to(device), options);
  }
  void save(const std::string& dir, bool overwrite, const nlohmann::json& card) override {
    save_mlp_dir(dir, loaded_.config, loaded_.model, overwrite, card);
  }

 private:
  LoadedMlp loaded_;
};

class MlpFamily : public ModelFamily {
 public:
  std::string name() const override { return "mlp"; }
  std::vector<std::string> model_types() const override { return {"mlp"}; }
  std::vector<std::string> metrics() const override { return {"accuracy", "loss", "perplexity"}; }
  std::unique_ptr<Examples> read_examples(const std::string& model_dir, const std::string& path,
                                          const std::string& labels) const override {
    if (labels.empty() && fs::is_regular_file(path) && fs::file_size(path) == 0)
      return std::make_unique<FeatureExamples>(FeatureSet{});
    return std::make_unique<FeatureExamples>(read_features(path, labels, config_of(model_dir)));
  }
  std::unique_ptr<Examples> no_examples() const override { return std::make_unique<FeatureExamples>(FeatureSet{}); }
  std::unique_ptr<Examples> join(const Examples& first, const Examples& second) const override {
    const FeatureSet& a = as_features(first);
    const FeatureSet& b = as_features(second);
    if (b.size() == 0) return std::make_unique<FeatureExamples>(a);
    if (a.size() == 0) return std::make_unique<FeatureExamples>(b);
    return std::make_unique<FeatureExamples>(FeatureSet{torch::cat({a.x, b.x}), torch::cat({a.y, b.y})});
  }
  std::unique_ptr<FamilyModel> load(const std::string& dir, uint64_t init_seed) const override {
    return std::make_unique<MlpModel>(load_mlp_dir(dir, init_seed));
  }
};

}  // namespace

std::vector<ReplayRow> feature_replay_rows(const FeatureSet& set) {
  std::vector<ReplayRow> rows;
  rows.reserve(set.size());
  const torch::Tensor x = set.x.contiguous().to(torch::kFloat);
  for (int64_t i = 0; i < set.size(); ++i) {
    const float* f = x[i].data_ptr<float>();
    const int64_t label = set.y[i].item<int64_t>();
    ReplayRow row;
    row.json = nlohmann::json({{"features", std::vector<float>(f, f + x.size(1))}, {"label", label}}).dump();
    row.hash = sha256(row.json);
    row.topic = "class " + std::to_string(label);
    row.tokens = x.size(1);
    rows.push_back(std::move(row));
  }
  return rows;
}

const ModelFamily& mlp_family() {
  static const MlpFamily family;
  return family;
}

}  // namespace retain
