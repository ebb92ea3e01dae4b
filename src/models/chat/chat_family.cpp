// The chat families' shared side of the family interface (see chat_family.h).
#include "retain/chat_family.h"

#include "retain/chat_task.h"
#include "retain/errors.h"
#include "retain/eval.h"
#include "retain/lora_model.h"

namespace retain {

std::vector<ReplayRow> ChatExamples::replay_rows() const {
  std::vector<ReplayRow> rows;
  rows.reserve(chats_.size());
  for (const auto& chat : chats_) rows.push_back(replay_row(chat));
  return rows;
}

const ChatExamples& as_chats(const Examples& set) {
  const auto* chats = dynamic_cast<const ChatExamples*>(&set);
  if (chats == nullptr) throw ConfigError("a chat model was given examples read by another model family");
  return *chats;
}

ChatModel& as_chat_model(FamilyModel& model, const std::string& what) {
  if (auto* lora = dynamic_cast<LoraModel*>(&model)) return as_chat_model(lora->inner(), what);
  auto* chat = dynamic_cast<ChatModel*>(&model);
  if (chat == nullptr) throw ConfigError(what + ": not a chat model (" + model.describe() + ")");
  return *chat;
}

std::unique_ptr<Examples> ChatFamily::read_examples(const std::string&, const std::string& path,
                                                   const std::string& labels) const {
  if (!labels.empty()) throw ConfigError(labels + ": a labels file is for the mlp family's IDX images");
  return std::make_unique<ChatExamples>(read_chat_file(path));
}

std::unique_ptr<Examples> ChatFamily::no_examples() const {
  return std::make_unique<ChatExamples>(std::vector<ChatExample>{});
}

std::unique_ptr<Examples> ChatFamily::join(const Examples& first, const Examples& second) const {
  std::vector<ChatExample> all = as_chats(first).chats();
  const auto& more = as_chats(second).chats();
  all.insert(all.end(), more.begin(), more.end());
  return std::make_unique<ChatExamples>(std::move(all));
}

std::vector<std::string> ChatFamily::metrics() const {
  return {"exact_match", "token_accuracy", "loss", "perplexity"};
}

std::string ChatModel::describe() const {
  return describe_ + ", " + (has_weights_ ? "weights" : "fresh init");
}

std::vector<RenderedChat> ChatModel::render(const Examples& set) const {
  std::vector<RenderedChat> out;
  const auto& chats = as_chats(set).chats();
  out.reserve(chats.size());
  for (const auto& chat : chats) out.push_back(tokenizer_.render(chat));
  return out;
}

std::unique_ptr<TrainTask> ChatModel::task(const Examples& train, const Examples& valid, int64_t max_seq_len) {
  rendered_.push_back(std::make_unique<std::vector<RenderedChat>>(render(train)));
  const auto& train_set = *rendered_.back();
  rendered_.push_back(std::make_unique<std::vector<RenderedChat>>(render(valid)));
  const auto& valid_set = *rendered_.back();
  return std::make_unique<ChatTask>(lm_, train_set, valid_set, max_seq_len);
}

Metrics ChatModel::evaluate(const Examples& set, const EvalSettings& settings) {
  EvalOptions options;
  options.batch_size = settings.batch_size;
  options.max_new_tokens = settings.max_new_tokens;
  options.exact_match = settings.generate;
  options.label = settings.label;
  const EvalResult r = retain::evaluate(lm_, tokenizer_, as_chats(set).chats(), options);
  Metrics m = {{"loss", r.loss.loss},
               {"perplexity", r.loss.perplexity},
               {"token_accuracy", r.loss.token_accuracy},
               {"examples", double(r.loss.examples)},
               {"trained_tokens", double(r.loss.trained_tokens)}};
  if (r.exact_match_examples > 0) m["exact_match"] = r.exact_match;
  return m;
}

TensorMap ChatModel::fisher(const Examples& set, const FisherOptions& options) {
  return estimate_fisher(lm_, render(set), options);
}

}  // namespace retain
