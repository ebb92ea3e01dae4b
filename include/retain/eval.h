// Evaluation of a chat model on a test set: loss, perplexity, token accuracy, exact match.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "retain/data.h"
#include "retain/causal_lm.h"
#include "retain/tokenizer.h"

namespace retain {

// Teacher-forced metrics over the trained tokens of a set.
struct LossStats {
  double loss = 0;            // mean cross-entropy per trained token (nats)
  double perplexity = 0;      // exp(loss)
  double token_accuracy = 0;  // share of trained tokens whose argmax prediction is right
  int64_t trained_tokens = 0;
  int64_t examples = 0;
};

// Runs under NoGradGuard in eval mode (restores the mode after). Batches of `batch_size` on the
// model's device; sequences cut at the model's n_positions + 1 tokens. Logs its progress
// (progress.h) as `label`.
LossStats evaluate_loss(CausalLm& model, const std::vector<RenderedChat>& set, int64_t batch_size,
                        const std::string& label = "eval");

struct EvalOptions {
  int64_t batch_size = 16;
  bool exact_match = true;        // generate replies greedily and compare with the references
  int64_t max_new_tokens = 128;   // per generated reply
  std::string label = "eval";     // progress lines: "<label>" (loss), "<label> exact match" (generation)
};

struct EvalResult {
  LossStats loss;
  double exact_match = 0;         // share of examples whose generated reply equals the reference
  int64_t exact_match_examples = 0;
  nlohmann::json to_json() const;  // {"loss", "perplexity", "token_accuracy", "exact_match", …}
};

// Full evaluation of `examples` (each must have an assistant message; the reply compared is the
// last one, generated greedily from the conversation before it until <|end|>).
EvalResult evaluate(CausalLm& model, const Tokenizer& tokenizer,
                    const std::vector<ChatExample>& examples, const EvalOptions& options);

}  // namespace retain
