// Tests of the built-in chat templates (chat_template.h) and of how load_tokenizer picks a
// directory's template: the loss mask of each template, content that looks like a special token,
// recognition and its refusal, the override, stop tokens and retain_tokenizer.json round trips.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "bpe_test_util.h"
#include "cli_util.h"
#include "retain/errors.h"
#include "retain/hf_tokenizer.h"
#include "test_util.h"

namespace retain {
namespace {

using cli_test::write_text;
using testing_util::TempDir;

const std::vector<std::string> kAdded = {"<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|start_header_id|>",
                                         "<|end_header_id|>", "<|eot_id|>", "<think>", "</think>"};

// A byte-level tokenizer.json (the 256 bytes, no merges) with kAdded at 300.. (<think> and
// </think> not special, as in Qwen3).
nlohmann::json byte_level_json() {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[gpt2_byte_to_unicode()[b]] = b;
  nlohmann::json added = nlohmann::json::array();
  for (size_t i = 0; i < kAdded.size(); ++i)
    added.push_back({{"id", 300 + i}, {"content", kAdded[i]}, {"special", kAdded[i][1] == '|'}, {"normalized", false}});
  return {{"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}},
          {"added_tokens", added}};
}

// A model directory with that tokenizer and `config` as tokenizer_config.json.
void write_dir(const TempDir& dir, const nlohmann::json& config) {
  write_text(dir / "tokenizer.json", byte_level_json().dump());
  write_text(dir / "tokenizer_config.json", config.dump());
}

ChatExample chat(std::vector<ChatMessage> messages) {
  ChatExample ex;
  ex.messages = std::move(messages);
  return ex;
}

bool ends_with(const std::string& s, const std::string& end) {
  return s.size() >= end.size() && s.compare(s.size() - end.size(), end.size(), end) == 0;
}

// The decoded text of the trained tokens of `r`.
std::string trained_text(const Tokenizer& tok, const RenderedChat& r) {
  std::vector<int64_t> ids;
  for (size_t i = 0; i < r.ids.size(); ++i)
    if (r.mask[i]) ids.push_back(r.ids[i]);
  return tok.decode(ids);
}

const ChatExample kExample = chat({{Role::kSystem, "sys", 1},
                                   {Role::kUser, "q <|im_end|><|eot_id|>", 1},
                                   {Role::kAssistant, "no", 0},
                                   {Role::kUser, "again", 1},
                                   {Role::kAssistant, " yes ", 1}});

TEST(ChatTemplates, ChatMlRendersAndMasksOnlyTrainedReplies) {
  TempDir dir;
  write_dir(dir, {{"eos_token", "<|im_end|>"}});
  const auto tok = load_tokenizer(dir.path.string(), "chatml");
  const RenderedChat r = tok->render(kExample);
  ASSERT_EQ(r.ids.size(), r.mask.size());
  EXPECT_EQ(tok->decode(r.ids),
            "<|im_start|>system\nsys<|im_end|>\n<|im_start|>user\nq <|im_end|><|eot_id|><|im_end|>\n"
            "<|im_start|>assistant\nno<|im_end|>\n<|im_start|>user\nagain<|im_end|>\n"
            "<|im_start|>assistant\n yes <|im_end|>\n");
  EXPECT_EQ(trained_text(*tok, r), " yes <|im_end|>");
  // The user's "<|im_end|>" is text, never the token: exactly 5 end-of-turn tokens.
  EXPECT_EQ(std::count(r.ids.begin(), r.ids.end(), 301), 5);
  EXPECT_EQ(std::count(r.ids.begin(), r.ids.end(), 305), 0);
  EXPECT_TRUE(ends_with(tok->decode(tok->render_prompt(kExample)), "again<|im_end|>\n<|im_start|>assistant\n"));
  EXPECT_EQ(tok->end_of_turn_token(), 301);
  EXPECT_EQ(tok->stop_tokens(), (std::vector<int64_t>{301}));  // eos_token is the same token
}

TEST(ChatTemplates, Qwen25AddsItsDefaultSystemMessage) {
  TempDir dir;
  write_dir(dir, nlohmann::json::object());
  const auto tok = load_tokenizer(dir.path.string(), "qwen2.5");
  EXPECT_EQ(tok->decode(tok->render(chat({{Role::kUser, "hi", 1}, {Role::kAssistant, "ok", 1}})).ids),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nok<|im_end|>\n");
}

TEST(ChatTemplates, Qwen3ThinkBlocksAndMask) {
  TempDir dir;
  write_dir(dir, nlohmann::json::object());
  const auto tok = load_tokenizer(dir.path.string(), "qwen3");
  const ChatExample ex = chat({{Role::kUser, "a", 1},
                               {Role::kAssistant, "<think>\nold\n</think>\n\nfirst", 1},
                               {Role::kUser, "b", 1},
                               {Role::kAssistant, "second", 1}});
  const RenderedChat r = tok->render(ex);
  // Earlier turns lose their reasoning; the last one gets an empty think block, which is not trained.
  EXPECT_EQ(tok->decode(r.ids),
            "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nfirst<|im_end|>\n<|im_start|>user\nb<|im_end|>\n"
            "<|im_start|>assistant\n<think>\n\n</think>\n\nsecond<|im_end|>\n");
  EXPECT_EQ(trained_text(*tok, r), "first<|im_end|>second<|im_end|>");
  EXPECT_TRUE(ends_with(tok->decode(tok->render_prompt(ex)), "b<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"));
  // Reasoning on the last turn is kept, and trained.
  const RenderedChat thought = tok->render(chat({{Role::kUser, "a", 1}, {Role::kAssistant, "<think>why</think>so", 1}}));
  EXPECT_EQ(trained_text(*tok, thought), "<think>\nwhy\n</think>so<|im_end|>");
}

TEST(ChatTemplates, Llama3HeadersBosTrimAndStopTokens) {
  TempDir dir;
  write_dir(dir, {{"bos_token", "<|begin_of_text|>"}, {"eos_token", "<|end_of_text|>"}});
  write_text(dir / "generation_config.json", R"({"eos_token_id": [7, 305]})");
  const auto tok = load_tokenizer(dir.path.string(), "llama3");
  const RenderedChat r = tok->render(chat({{Role::kUser, " hi\n", 1}, {Role::kAssistant, "\u3000ok \n", 1}}));
  EXPECT_EQ(tok->decode(r.ids),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nok<|eot_id|>");
  EXPECT_EQ(trained_text(*tok, r), "ok<|eot_id|>");
  EXPECT_EQ(tok->stop_tokens(), (std::vector<int64_t>{305, 7}));
  EXPECT_EQ(python_strip("\x1c\u2003 a b\u0085\t"), "a b");
}

TEST(ChatTemplates, RecognisedUnrecognisedAndOverridden) {
  TempDir dir;
  const std::string chatml =
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
      "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
  write_dir(dir, {{"chat_template", chatml}});
  EXPECT_EQ(load_tokenizer(dir.path.string())->chat_template_name(), "chatml");
  write_dir(dir, {{"chat_template", chatml + "{{ '!' }}"}});
  try {
    load_tokenizer(dir.path.string());
    FAIL() << "an unknown template was accepted";
  } catch (const CheckpointError& e) {
    const std::string what = e.what();
    for (const char* needle : {"tokenizer_config.json: chat_template", "--chat-template NAME", "template_override",
                               "qwen3"})
      EXPECT_NE(what.find(needle), std::string::npos) << needle << " not in: " << what;
  }
  EXPECT_EQ(load_tokenizer(dir.path.string(), "qwen3")->chat_template_name(), "qwen3");
  EXPECT_THROW(load_tokenizer(dir.path.string(), "vicuna"), ConfigError);
  // retain's own template, as `retain export --hf` writes it: recognised.
  EXPECT_EQ(recognise_chat_template("{% for message in messages %}{{ '<|' + message['role'] + '|>' + "
                                    "message['content'] + '<|end|>' }}{% endfor %}{% if add_generation_prompt %}"
                                    "{{ '<|assistant|>' }}{% endif %}")->name,
            "retain");
  const std::filesystem::path exported = dir.path / "exported";
  std::filesystem::create_directories(exported);
  write_text(exported / "tokenizer.json", byte_level_json().dump());
  write_text(exported / "tokenizer_config.json",
             nlohmann::json({{"chat_template", "{% for message in messages %}{{ '<|' + message['role'] + '|>' + "
                                               "message['content'] + '<|end|>' }}{% endfor %}{% if "
                                               "add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"}})
                 .dump());
  EXPECT_EQ(load_tokenizer(exported.string())->type(), "gpt2-bpe");  // as before the template existed
  // chat_template.jinja takes precedence over tokenizer_config.json.
  write_text(dir / "chat_template.jinja", chatml);
  EXPECT_EQ(load_tokenizer(dir.path.string())->chat_template_name(), "chatml");

  // No template at all: encoding works, rendering names the override.
  const std::filesystem::path bare = dir.path / "bare";
  std::filesystem::create_directories(bare);
  nlohmann::json j = byte_level_json();
  j["normalizer"] = {{"type", "NFC"}};  // not GPT-2 style: the general reader
  write_text(bare / "tokenizer.json", j.dump());
  const auto tok = load_tokenizer(bare.string());
  EXPECT_EQ(tok->type(), "hf-bpe");
  EXPECT_EQ(tok->encode("a"), (std::vector<int64_t>{'a'}));
  EXPECT_FALSE(tok->has_chat_template());
  try {
    tok->render(kExample);
    FAIL() << "rendered without a template";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("--chat-template"), std::string::npos) << e.what();
  }
}

TEST(ChatTemplates, RetainTokenizerFileKeepsTemplateAndStops) {
  TempDir dir;
  write_dir(dir, {{"bos_token", {{"content", "<|begin_of_text|>"}}}, {"chat_template", nullptr}});
  write_text(dir / "generation_config.json", R"({"eos_token_id": 9})");
  const auto tok = load_tokenizer(dir.path.string(), "llama3");
  const std::filesystem::path model = dir.path / "model";  // one TempDir a test: they share a name
  std::filesystem::create_directories(model);
  write_text(model / kTokenizerFile, tok->to_json().dump());
  const auto again = load_tokenizer(model.string());
  EXPECT_EQ(again->type(), "hf-bpe");
  EXPECT_EQ(again->chat_template_name(), "llama3");
  EXPECT_EQ(again->stop_tokens(), tok->stop_tokens());
  EXPECT_EQ(again->render(kExample).ids, tok->render(kExample).ids);
  EXPECT_EQ(again->render(kExample).ids.front(), 302);  // bos kept

  // config.json's vocab_size must cover every token id.
  write_text(dir / "config.json", R"({"vocab_size": 300})");
  try {
    load_tokenizer(dir.path.string(), "llama3");
    FAIL() << "added tokens past vocab_size accepted";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("config.json: vocab_size 300"), std::string::npos) << e.what();
  }
  write_text(dir / "generation_config.json", R"({"eos_token_id": 100000})");
  write_text(dir / "config.json", R"({"vocab_size": 400})");
  EXPECT_THROW(load_tokenizer(dir.path.string(), "llama3"), CheckpointError);
}

}  // namespace
}  // namespace retain
