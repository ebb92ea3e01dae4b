// Test-set metrics: teacher-forced loss / perplexity / token accuracy, greedy exact match.
#include "retain/eval.h"

#include <cmath>

#include "retain/batch.h"
#include "retain/progress.h"

namespace retain {

namespace {

// Restores a module's training mode on scope exit.
class EvalModeGuard {
 public:
  explicit EvalModeGuard(torch::nn::Module& m) : m_(m), was_training_(m.is_training()) { m_.eval(); }
  ~EvalModeGuard() { m_.train(was_training_); }

 private:
  torch::nn::Module& m_;
  bool was_training_;
};

}  // namespace

LossStats evaluate_loss(CausalLm& model, const std::vector<RenderedChat>& set, int64_t batch_size,
                        const std::string& label) {
  torch::NoGradGuard no_grad;
  EvalModeGuard mode(model.lm_module());
  const auto device = model.device();
  const int64_t max_len = model.context_length();
  torch::Tensor loss_sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(device));
  torch::Tensor correct = torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(device));
  LossStats stats;
  Progress progress(label, int64_t(set.size()));
  for (size_t start = 0; start < set.size(); start += batch_size) {
    std::vector<int64_t> idx;
    for (size_t i = start; i < std::min(set.size(), start + batch_size); ++i) idx.push_back(i);
    Batch b = to_device(make_batch(set, idx, max_len), device);
    auto logits = model.logits(b.inputs);  // (B, T, V)
    loss_sum += masked_lm_loss_sum(logits, b.targets, b.mask).to(torch::kDouble);
    correct += ((logits.argmax(-1) == b.targets).to(torch::kFloat) * b.mask).sum().to(torch::kDouble);
    stats.trained_tokens += b.trained_tokens;
    progress.update(int64_t(start + idx.size()));
  }
  stats.examples = set.size();
  if (stats.trained_tokens > 0) {
    stats.loss = loss_sum.item<double>() / stats.trained_tokens;
    stats.token_accuracy = correct.item<double>() / stats.trained_tokens;
  }
  stats.perplexity = std::exp(stats.loss);
  return stats;
}

EvalResult evaluate(CausalLm& model, const Tokenizer& tokenizer, const std::vector<ChatExample>& examples,
                    const EvalOptions& options) {
  EvalResult result;
  std::vector<RenderedChat> rendered;
  rendered.reserve(examples.size());
  for (const auto& ex : examples) rendered.push_back(tokenizer.render(ex));
  result.loss = evaluate_loss(model, rendered, options.batch_size, options.label);
  if (!options.exact_match) return result;
  GenerateOptions gen;
  gen.max_new_tokens = options.max_new_tokens;
  gen.stop_tokens = tokenizer.stop_tokens();  // the template's end of turn and generation_config's eos
  int64_t matches = 0;
  Progress progress(options.label + " exact match", int64_t(examples.size()));
  for (const auto& ex : examples) {
    const auto reply = tokenizer.decode(generate(model, tokenizer.render_prompt(ex), gen));
    matches += reply == Tokenizer::reference_reply(ex);
    progress.add(1);
  }
  result.exact_match_examples = examples.size();
  result.exact_match = examples.empty() ? 0.0 : double(matches) / examples.size();
  return result;
}

nlohmann::json EvalResult::to_json() const {
  nlohmann::json j = {{"loss", loss.loss},
                      {"perplexity", loss.perplexity},
                      {"token_accuracy", loss.token_accuracy},
                      {"trained_tokens", loss.trained_tokens},
                      {"examples", loss.examples}};
  if (exact_match_examples > 0) j["exact_match"] = exact_match;
  return j;
}

}  // namespace retain
