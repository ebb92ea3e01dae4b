// Tests of the byte tokenizer, the chat template and its loss mask, and load_tokenizer
// (tokenizer.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "retain/errors.h"
#include "retain/tokenizer.h"

namespace retain {
namespace {

namespace fs = std::filesystem;

// One-letter names, not kName, so expected id sequences read like the text they encode.
constexpr int64_t S = ByteTokenizer::kSystem, U = ByteTokenizer::kUser,
                  A = ByteTokenizer::kAssistant, E = ByteTokenizer::kEnd;

fs::path fresh_dir() {
  const auto* info = testing::UnitTest::GetInstance()->current_test_info();
  fs::path dir = fs::temp_directory_path() / ("retain_tokenizer_test_" +
                                              std::string(info->test_suite_name()) + "_" +
                                              info->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

ChatExample conversation(std::vector<ChatMessage> messages) {
  ChatExample example;
  example.messages = std::move(messages);
  example.source_file = "conv.jsonl";
  example.source_line = 12;
  return example;
}

TEST(ByteTokenizer, EncodesRawBytes) {
  ByteTokenizer tok;
  EXPECT_EQ(tok.type(), "byte");
  EXPECT_EQ(tok.vocab_size(), 260);
  EXPECT_EQ(tok.encode(std::string("A\0\xff\x80", 4)), (std::vector<int64_t>{65, 0, 255, 128}));
  EXPECT_TRUE(tok.encode("").empty());
}

TEST(ByteTokenizer, DecodeInvertsEncodeOnRandomBytes) {
  ByteTokenizer tok;
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int> byte(0, 255), length(0, 300);
  for (int trial = 0; trial < 200; ++trial) {
    std::string text(length(rng), '\0');
    for (char& c : text) c = static_cast<char>(byte(rng));
    ASSERT_EQ(tok.decode(tok.encode(text)), text) << "trial " << trial;
  }
  // NUL, a lone continuation byte, an overlong encoding and a truncated sequence.
  const std::string awkward("a\0b\x80\xc0\xaf\xe2\x82", 8);
  EXPECT_EQ(tok.decode(tok.encode(awkward)), awkward);
}

TEST(ByteTokenizer, DecodesSpecialTokensAndRejectsOutOfRange) {
  ByteTokenizer tok;
  EXPECT_EQ(tok.decode({S, 'h', 'i', E, U, A}), "<|system|>hi<|end|><|user|><|assistant|>");
  EXPECT_THROW(tok.decode({260}), Error);
  EXPECT_THROW(tok.decode({-1}), Error);
  EXPECT_EQ(tok.role_token(Role::kSystem), S);
  EXPECT_EQ(tok.role_token(Role::kUser), U);
  EXPECT_EQ(tok.role_token(Role::kAssistant), A);
  EXPECT_EQ(tok.end_of_turn_token(), E);
}

TEST(ChatTemplate, RenderMaskMarksOnlyAssistantContentAndEnd) {
  ByteTokenizer tok;
  const ChatExample example = conversation(
      {{Role::kSystem, "S", 1}, {Role::kUser, "hi", 1}, {Role::kAssistant, "ok!", 1}});
  const RenderedChat rendered = tok.render(example);
  EXPECT_EQ(rendered.ids, (std::vector<int64_t>{S, 'S', E, U, 'h', 'i', E, A, 'o', 'k', '!', E}));
  EXPECT_EQ(rendered.mask, (std::vector<uint8_t>{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1}));
}

TEST(ChatTemplate, WeightZeroAssistantIsNotTrained) {
  ByteTokenizer tok;
  const ChatExample example = conversation({{Role::kUser, "q", 1},
                                            {Role::kAssistant, "bad", 0},
                                            {Role::kUser, "again", 1},
                                            {Role::kAssistant, "good", 1}});
  const RenderedChat rendered = tok.render(example);
  ASSERT_EQ(rendered.ids.size(), rendered.mask.size());
  ASSERT_EQ(rendered.ids.size(), 3u + 5u + 7u + 6u);
  std::vector<size_t> trained;
  for (size_t i = 0; i < rendered.mask.size(); ++i) {
    if (rendered.mask[i]) trained.push_back(i);
  }
  // Only "good" (positions 16..19) and its <|end|> (20).
  EXPECT_EQ(trained, (std::vector<size_t>{16, 17, 18, 19, 20}));
  EXPECT_EQ(tok.decode(std::vector<int64_t>(rendered.ids.begin() + 16, rendered.ids.end())),
            "good<|end|>");
}

TEST(ChatTemplate, PromptEndsWithAssistantTokenAndExcludesTheLastReply) {
  ByteTokenizer tok;
  const ChatExample example = conversation({{Role::kUser, "q1", 1},
                                            {Role::kAssistant, "a1", 1},
                                            {Role::kUser, "q2", 1},
                                            {Role::kAssistant, "REPLY", 1}});
  const std::vector<int64_t> prompt = tok.render_prompt(example);
  EXPECT_EQ(tok.decode(prompt), "<|user|>q1<|end|><|assistant|>a1<|end|><|user|>q2<|end|><|assistant|>");
  ASSERT_FALSE(prompt.empty());
  EXPECT_EQ(prompt.back(), A);
  // The prompt is exactly the start of the rendered training sequence.
  const RenderedChat rendered = tok.render(example);
  ASSERT_LT(prompt.size(), rendered.ids.size());
  EXPECT_TRUE(std::equal(prompt.begin(), prompt.end(), rendered.ids.begin()));
  EXPECT_EQ(Tokenizer::reference_reply(example), "REPLY");
}

TEST(ChatTemplate, PromptStopsBeforeTheLastAssistantEvenWithTrailingMessages) {
  ByteTokenizer tok;
  const ChatExample example = conversation(
      {{Role::kUser, "q", 1}, {Role::kAssistant, "a", 1}, {Role::kUser, "thanks", 1}});
  EXPECT_EQ(tok.decode(tok.render_prompt(example)), "<|user|>q<|end|><|assistant|>");
  EXPECT_EQ(Tokenizer::reference_reply(example), "a");
}

TEST(ChatTemplate, PromptWithoutAssistantThrowsDataError) {
  ByteTokenizer tok;
  const ChatExample example = conversation({{Role::kUser, "q", 1}});
  try {
    tok.render_prompt(example);
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("conv.jsonl:12"), std::string::npos) << e.what();
  }
  EXPECT_EQ(Tokenizer::reference_reply(example), "");
}

TEST(LoadTokenizer, AbsentFileMeansByteTokenizer) {
  const auto tok = load_tokenizer(fresh_dir().string());
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->type(), "byte");
  EXPECT_EQ(tok->vocab_size(), 260);
}

TEST(LoadTokenizer, ReadsWhatToJsonWrites) {
  const fs::path dir = fresh_dir();
  write_file(dir / kTokenizerFile, ByteTokenizer().to_json().dump());
  EXPECT_EQ(ByteTokenizer().to_json(), (nlohmann::json{{"type", "byte"}, {"format_version", 1}}));
  const auto tok = load_tokenizer(dir.string());
  EXPECT_EQ(tok->type(), "byte");
  EXPECT_EQ(tok->encode("hi"), (std::vector<int64_t>{'h', 'i'}));
}

// Loading must fail with CheckpointError naming the file, with `expected` in the message.
void expect_load_error(const std::string& contents, const std::string& expected) {
  SCOPED_TRACE(contents);
  const fs::path dir = fresh_dir();
  write_file(dir / kTokenizerFile, contents);
  try {
    load_tokenizer(dir.string());
    FAIL() << "expected CheckpointError";
  } catch (const CheckpointError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find((dir / kTokenizerFile).string()), std::string::npos) << what;
    EXPECT_NE(what.find(expected), std::string::npos) << what;
  }
}

TEST(LoadTokenizer, RejectsBadFiles) {
  expect_load_error(R"({"type":"gpt9","format_version":1})", "unknown type \"gpt9\"");
  expect_load_error("{not json", "malformed");
  expect_load_error("[]", "malformed");
  expect_load_error(R"({"format_version":1})", "malformed");
  expect_load_error(R"({"type":"byte","format_version":2})", "format_version 2");
  expect_load_error(R"({"type":"byte"})", "format_version (missing)");
}

}  // namespace
}  // namespace retain
