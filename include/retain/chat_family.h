// What the chat families (gpt, llama) share behind the family interface (family.h): chat JSONL
// examples, and a FamilyModel for any CausalLm with its tokenizer and chat template. A chat family
// supplies the module, its directory format and its Hugging Face conversion; training, evaluation
// and the Fisher come from here.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "retain/causal_lm.h"
#include "retain/data.h"
#include "retain/family.h"
#include "retain/tokenizer.h"

namespace retain {

class ChatModel;

// Conversations read from chat JSONL (data.h).
class ChatExamples : public Examples {
 public:
  explicit ChatExamples(std::vector<ChatExample> chats) : chats_(std::move(chats)) {}
  int64_t size() const override { return int64_t(chats_.size()); }
  std::vector<ReplayRow> replay_rows() const override;
  const std::vector<ChatExample>& chats() const { return chats_; }

 private:
  std::vector<ChatExample> chats_;
};

// What every chat family shares: chat JSONL data and chat metrics. A family derives from it and
// implements name(), model_types() and load() (and the Hugging Face conversion).
class ChatFamily : public ModelFamily {
 public:
  std::vector<std::string> metrics() const override;
  // Chat JSONL (a labels file is refused: it belongs to the mlp family's IDX images).
  std::unique_ptr<Examples> read_examples(const std::string& model_dir, const std::string& path,
                                          const std::string& labels) const override;
  std::unique_ptr<Examples> no_examples() const override;
  std::unique_ptr<Examples> join(const Examples& first, const Examples& second) const override;
};

// The chat model of `model` (ConfigError naming `what` when its family is not a chat family).
ChatModel& as_chat_model(FamilyModel& model, const std::string& what);
// The chat examples of `set` (ConfigError when it was read by another family).
const ChatExamples& as_chats(const Examples& set);

// A chat LM loaded from a directory: the family's module as a CausalLm plus its tokenizer.
// Renders every set with the tokenizer's chat template; evaluation measures loss, perplexity and
// token accuracy, and exact_match when settings.generate (greedy replies until the template's
// end of turn).
class ChatModel : public FamilyModel {
 public:
  // `describe` is the family and size part of describe(): "gpt, 1234 parameters".
  ChatModel(CausalLm& lm, const Tokenizer& tokenizer, bool has_weights, std::string describe)
      : lm_(lm), tokenizer_(tokenizer), has_weights_(has_weights), describe_(std::move(describe)) {}
  torch::nn::Module& module() override { return lm_.lm_module(); }
  bool has_weights() const override { return has_weights_; }
  std::string describe() const override;
  std::unique_ptr<TrainTask> task(const Examples& train, const Examples& valid, int64_t max_seq_len) override;
  Metrics evaluate(const Examples& set, const EvalSettings& settings) override;
  TensorMap fisher(const Examples& set, const FisherOptions& options) override;

  // The LM and its tokenizer (generation, logits, data reports).
  CausalLm& lm() { return lm_; }
  const Tokenizer& tokenizer() const { return tokenizer_; }

 private:
  std::vector<RenderedChat> render(const Examples& set) const;

  CausalLm& lm_;
  const Tokenizer& tokenizer_;
  bool has_weights_;
  std::string describe_;
  // Rendered sets of the tasks made here (the tasks hold references into them).
  std::vector<std::unique_ptr<std::vector<RenderedChat>>> rendered_;
};

}  // namespace retain
