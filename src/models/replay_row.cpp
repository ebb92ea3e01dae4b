// Replay-buffer rows of chats and feature examples (see replay_row.h).
#include "retain/replay_row.h"

#include <sstream>

#include <nlohmann/json.hpp>

#include "retain/tokenizer.h"

namespace retain {

std::string replay_topic(const ChatExample& example) {
  if (!example.topic.empty()) return example.topic;
  for (auto it = example.messages.rbegin(); it != example.messages.rend(); ++it) {
    if (it->role != Role::kUser) continue;
    std::istringstream words(it->content);
    std::string word, topic;
    for (int i = 0; i < 5 && words >> word; ++i) topic += (i == 0 ? "" : " ") + word;
    return topic;
  }
  return "";
}

Sha256Digest replay_hash(const ChatExample& example) {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  for (const ChatMessage& m : example.messages) {
    nlohmann::ordered_json j;
    j["role"] = role_name(m.role);
    j["content"] = m.content;
    if (m.role == Role::kAssistant && m.weight != 1) j["weight"] = m.weight;
    messages.push_back(std::move(j));
  }
  return sha256(messages.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

ReplayRow replay_row(const ChatExample& example) {
  static const ByteTokenizer kTokenizer;
  ReplayRow row;
  row.hash = replay_hash(example);
  row.topic = replay_topic(example);
  row.tokens = static_cast<int64_t>(kTokenizer.render(example).ids.size());
  row.json = to_jsonl(example);
  return row;
}


}  // namespace retain
