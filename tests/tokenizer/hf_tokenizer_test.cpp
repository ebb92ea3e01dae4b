// Tests of the tokenizer.json reader (hf_tokenizer.h) on small files written here: each
// pre-tokenizer behaviour against the `tokenizers` documentation's examples, the BPE options,
// added tokens, the errors that name the file and field, and load_tokenizer's choices.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "../../src/tokenizer/hf_internal.h"  // the module's own internals, tested here
#include "bpe_test_util.h"
#include "cli_util.h"
#include "retain/errors.h"
#include "retain/hf_tokenizer.h"
#include "test_util.h"

namespace retain {
namespace {

using bpe_test::spell;
using cli_test::write_text;
using testing_util::TempDir;
using V = std::vector<std::string>;

V pieces(const nlohmann::json& pre, const std::string& text) {
  const auto p = hf::make_pre_tokenizer(pre, "test");
  std::vector<hf::Piece> ps = {{text, 0, false}};
  p->split(ps);
  V out;
  for (const auto& x : ps) out.push_back(x.text);
  return out;
}

nlohmann::json split(const std::string& behavior) {
  return {{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior}, {"invert", false}};
}

TEST(HfPreTokenizer, SplitBehaviorsAsDocumented) {
  // tokenizers' SplitDelimiterBehavior documentation, on "the-final--countdown".
  const std::string t = "the-final--countdown";
  EXPECT_EQ(pieces(split("Removed"), t), (V{"the", "final", "countdown"}));
  EXPECT_EQ(pieces(split("Isolated"), t), (V{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(pieces(split("MergedWithPrevious"), t), (V{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(pieces(split("MergedWithNext"), t), (V{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(pieces(split("Contiguous"), t), (V{"the", "-", "final", "--", "countdown"}));
  nlohmann::json inverted = split("Isolated");
  inverted["invert"] = true;
  inverted["pattern"] = {{"Regex", "[a-z]+"}};
  EXPECT_EQ(pieces(inverted, t), (V{"the", "-", "final", "--", "countdown"}));
  try {
    pieces(split("Sideways"), t);
    FAIL() << "unknown behavior accepted";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("behavior Sideways"), std::string::npos) << e.what();
  }
}

TEST(HfPreTokenizer, RegexWhiteSpaceIsUnicodeWhiteSpaceAndDigits) {
  // \s matches U+0085 (White_Space) and not U+180E, as in tokenizers; (?i:) folds case.
  const nlohmann::json ws = {{"type", "Split"}, {"pattern", {{"Regex", "\\s+|(?i:'s)"}}}, {"behavior", "Isolated"}};
  EXPECT_EQ(pieces(ws, "a\u0085b\u180Ec IT'S"), (V{"a", "\u0085", "b\u180Ec", " ", "IT", "'S"}));
  EXPECT_EQ(pieces({{"type", "Digits"}, {"individual_digits", true}}, "a123b45"),
            (V{"a", "1", "2", "3", "b", "4", "5"}));
  EXPECT_EQ(pieces({{"type", "Digits"}, {"individual_digits", false}}, "a123b45"), (V{"a", "123", "b", "45"}));
  EXPECT_EQ(pieces({{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}}, "hi you"),
            (V{spell(" hi"), spell(" you")}));
  EXPECT_EQ(pieces({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}, "hi you"),
            (V{spell("hi you")}));
}

// A tokenizer.json with a char-level vocabulary over `chars` plus `extra`, and `merges`.
nlohmann::json char_model(const std::string& chars, const V& extra, const V& merges) {
  nlohmann::json vocab = nlohmann::json::object();
  for (const char c : chars) vocab[std::string(1, c)] = vocab.size();
  for (const auto& t : extra) vocab[t] = vocab.size();
  return {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}}, {"added_tokens", nlohmann::json::array()}};
}

std::unique_ptr<HfTokenizer> load(const nlohmann::json& j) { return HfTokenizer::from_json_text(j.dump(), "t.json"); }

V tokens(const HfTokenizer& tok, const std::string& text, bool specials = true) {
  V out;
  for (const int64_t id : specials ? tok.encode_with_specials(text) : tok.encode(text)) out.push_back(tok.decode({id}));
  return out;
}

TEST(HfBpe, IgnoreMergesByteFallbackUnkPrefixSuffix) {
  nlohmann::json j = char_model("abc", {"ab", "abc"}, {"a b"});
  EXPECT_EQ(tokens(*load(j), "abc"), (V{"ab", "c"}));
  j["model"]["ignore_merges"] = true;  // Llama 3: a piece in the vocabulary is one token
  EXPECT_EQ(tokens(*load(j), "abc"), (V{"abc"}));

  j = char_model("a", {"<unk>"}, {});
  j["model"]["unk_token"] = "<unk>";
  const auto unk = load(j);
  EXPECT_EQ(unk->encode("a\u00e9\u00e9"), (std::vector<int64_t>{0, 1, 1}));
  j["model"]["fuse_unk"] = true;
  EXPECT_EQ(load(j)->encode("a\u00e9\u00e9"), (std::vector<int64_t>{0, 1}));

  V bytes;
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    bytes.push_back(name);
  }
  j = char_model("a", bytes, {});
  j["model"]["byte_fallback"] = true;
  j["decoder"] = {{"type", "ByteFallback"}};
  const auto fb = load(j);
  EXPECT_EQ(tokens(*fb, "a\u00e9"), (V{"a", "\xC3", "\xA9"}));
  EXPECT_EQ(fb->decode(fb->encode("a\u00e9a")), "a\u00e9a");

  j = char_model("ab", {"##b", "ab"}, {"a ##b"});
  j["model"]["continuing_subword_prefix"] = "##";
  EXPECT_EQ(load(j)->encode("ab"), (std::vector<int64_t>{3}));  // a + ##b → ab
  j = char_model("ab", {"b</w>", "ab</w>"}, {"a b</w>"});
  j["model"]["end_of_word_suffix"] = "</w>";
  j["decoder"] = {{"type", "BPEDecoder"}, {"suffix", "</w>"}};
  const auto suffixed = load(j);
  EXPECT_EQ(suffixed->encode("ab"), (std::vector<int64_t>{3}));
  EXPECT_EQ(suffixed->decode({3, 3}), "ab ab");
}

TEST(HfAddedTokens, SpecialPlainStripAndSingleWord) {
  nlohmann::json j = char_model("abhi <>xt", {}, {});
  j["added_tokens"] = {
      {{"id", 20}, {"content", "<x>"}, {"special", true}, {"lstrip", true}, {"rstrip", true}, {"normalized", false}},
      {{"id", 21}, {"content", "hi"}, {"special", false}, {"single_word", true}, {"normalized", false}},
      {{"id", 22}, {"content", "<x>x"}, {"special", true}, {"normalized", false}}};
  const auto tok = load(j);
  EXPECT_EQ(tok->vocab_size(), 23);
  EXPECT_EQ(tok->encode_with_specials("a <x> b"), (std::vector<int64_t>{0, 20, 1}));  // spaces stripped
  EXPECT_EQ(tok->encode_with_specials("<x>xa"), (std::vector<int64_t>{22, 0}));       // longest first
  EXPECT_EQ(tokens(*tok, "a <x> b", false), (V{"a", " ", "<", "x", ">", " ", "b"}));  // plain: text
  EXPECT_EQ(tokens(*tok, "hi thi", false), (V{"hi", " ", "t", "h", "i"}));            // not inside a word
  EXPECT_EQ(tok->token_id("<x>"), 20);
  EXPECT_EQ(tok->decode({0, 20, 21}), "a<x>hi");
}

// The CheckpointError message of loading `j`; "" when it loads.
std::string load_error(const nlohmann::json& j) {
  try {
    load(j);
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "";
}

TEST(HfLoad, ErrorsNameTheFileAndField) {
  const nlohmann::json ok = char_model("ab", {"ab"}, {"a b"});
  EXPECT_EQ(load_error(ok), "");
  auto with = [&](const std::string& key, const nlohmann::json& value) {
    nlohmann::json j = ok;
    j[nlohmann::json::json_pointer(key)] = value;
    return load_error(j);
  };
  auto expect = [](const std::string& message, const V& needles) {
    for (const auto& n : needles) EXPECT_NE(message.find(n), std::string::npos) << "\"" << n << "\" not in: " << message;
  };
  expect(with("/normalizer", {{"type", "Lowercase"}}), {"t.json", "normalizer", "Lowercase"});
  expect(with("/pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", {{{"type", "Digits"}}, {{"type", "Metaspace"}}}}}),
         {"t.json", "pre_tokenizer.pretokenizers[1]", "Metaspace"});
  expect(with("/decoder", {{"type", "WordPiece"}}), {"decoder", "WordPiece"});
  expect(with("/model/type", "Unigram"), {"t.json", "model.type", "Unigram"});
  expect(with("/model/merges", nlohmann::json::array({"a b", "ab c"})), {"model.merges[1]", "\"c\" is not in model.vocab"});
  expect(with("/model/merges", nlohmann::json::array({nlohmann::json::array({"a", "b"}), nlohmann::json::array({"b", "a"})})), {"model.merges[1]", "result \"ba\""});
  expect(with("/model/merges", nlohmann::json::array({"a b c"})), {"model.merges[0]", "expected"});
  expect(with("/model/dropout", 0.1), {"model.dropout"});
  expect(with("/added_tokens", {{{"id", 1}, {"content", "<s>"}}}), {"added_tokens[0].id", "model.vocab's token \"b\""});
  expect(with("/added_tokens", {{{"id", 1 << 25}, {"content", "<s>"}}}), {"added_tokens", "too large"});
  expect(with("/added_tokens", {{{"id", 5}, {"content", "<s>"}}, {{"id", 5}, {"content", "</s>"}}}),
         {"added_tokens[1].id", "also added token"});
  expect(with("/added_tokens", {{{"content", "<s>"}}}), {"added_tokens[0]", "expected"});
  expect(with("/pre_tokenizer", {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}}),
         {"pre_tokenizer.pattern", "does not compile"});
  EXPECT_NE(load_error(nlohmann::json::array()).find("expected a JSON object"), std::string::npos);
}

}  // namespace
}  // namespace retain
