// Tests of a multi-turn conversation (conversation.h): each turn's prompt is the whole
// conversation so far rendered with the template, the system message first.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "retain/conversation.h"
#include "retain/model.h"

namespace retain {
namespace {

TEST(Conversation, TheSecondPromptHoldsTheFirstTurnAndItsReply) {
  GptConfig c;
  c.vocab_size = 260;
  c.n_positions = 64;
  c.n_embd = 16;
  c.n_layer = 1;
  c.n_head = 2;
  torch::manual_seed(3);
  Gpt model(c);
  ByteTokenizer tok;
  Conversation conversation(tok, "be brief");
  GenerateOptions greedy;
  greedy.max_new_tokens = 3;
  const std::vector<int64_t> first = conversation.prompt("hello");
  const std::string reply = conversation.reply(*model, "hello", greedy);
  ASSERT_EQ(conversation.messages().size(), 3u);
  EXPECT_EQ(conversation.messages()[2].content, reply);

  ChatExample expected;
  expected.messages = {{Role::kSystem, "be brief", 1}, {Role::kUser, "hello", 1}, {Role::kAssistant, reply, 1},
                       {Role::kUser, "and then?", 1}, {Role::kAssistant, "", 1}};
  const std::vector<int64_t> second = conversation.prompt("and then?");
  EXPECT_EQ(second, tok.render_prompt(expected));
  ASSERT_GT(second.size(), first.size());
  // The first prompt, without its generation header, starts the second.
  ChatExample system_and_user;
  system_and_user.messages = {{Role::kSystem, "be brief", 1}, {Role::kUser, "hello", 1}};
  const auto head = tok.render(system_and_user).ids;
  EXPECT_TRUE(std::equal(head.begin(), head.end(), second.begin()));
}

}  // namespace
}  // namespace retain
