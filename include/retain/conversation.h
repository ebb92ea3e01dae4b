// A multi-turn conversation with a chat model (`retain generate --chat`): an optional system
// message, then user turns and the model's replies, the whole conversation rendered with the
// model's chat template at every turn.
#pragma once

#include <string>
#include <vector>

#include "retain/causal_lm.h"
#include "retain/data.h"
#include "retain/tokenizer.h"

namespace retain {

class Conversation {
 public:
  // `system` is the system message ("" for none). `tokenizer` must outlive the conversation and
  // have a chat template (CheckpointError from rendering otherwise).
  explicit Conversation(const Tokenizer& tokenizer, std::string system = "");

  // The prompt for the reply to `user`: every message so far, then `user`, rendered with the
  // template and followed by its generation prompt. Does not record the turn.
  std::vector<int64_t> prompt(const std::string& user) const;
  // Generates the reply to `user` (stopping at the template's end of turn), records both, and
  // returns the reply's text.
  std::string reply(CausalLm& model, const std::string& user, GenerateOptions options);
  // Every message so far, the system message first.
  const std::vector<ChatMessage>& messages() const { return messages_; }

 private:
  const Tokenizer& tokenizer_;
  std::vector<ChatMessage> messages_;
};

}  // namespace retain
