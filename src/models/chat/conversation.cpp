// A multi-turn conversation rendered with the model's chat template at each turn (conversation.h).
#include "retain/conversation.h"

namespace retain {

Conversation::Conversation(const Tokenizer& tokenizer, std::string system) : tokenizer_(tokenizer) {
  if (!system.empty()) messages_.push_back({Role::kSystem, std::move(system), 1});
}

std::vector<int64_t> Conversation::prompt(const std::string& user) const {
  ChatExample turn;
  turn.messages = messages_;
  turn.messages.push_back({Role::kUser, user, 1});
  turn.messages.push_back({Role::kAssistant, "", 1});  // the reply to generate
  return tokenizer_.render_prompt(turn);
}

std::string Conversation::reply(CausalLm& model, const std::string& user, GenerateOptions options) {
  options.stop_tokens = tokenizer_.stop_tokens();
  const std::string text = tokenizer_.decode(generate(model, prompt(user), options));
  messages_.push_back({Role::kUser, user, 1});
  messages_.push_back({Role::kAssistant, text, 1});
  return text;
}

}  // namespace retain
