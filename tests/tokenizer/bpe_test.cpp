// Tests of GPT-2 byte-level BPE (bpe.h) on small vocabularies written here: the byte alphabet, the
// pre-tokenizer, merges by rank against a slow port of GPT-2's bpe(), the cache, special tokens,
// the chat template, round trips, loading and its errors, and `retain tokenize`.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bpe_test_util.h"
#include "cli_util.h"
#include "retain/bpe.h"
#include "retain/errors.h"
#include "test_util.h"

namespace retain {
namespace {

namespace fs = std::filesystem;
using bpe_test::MiniBpe;
using bpe_test::spell;
using bpe_test::utf8;
using cli_test::read_text;
using cli_test::write_text;
using testing_util::TempDir;

// GPT-2's bpe() (openai/gpt-2 encoder.py), transcribed without cleverness: the reference.
std::vector<std::string> reference_bpe(const std::string& piece,
                                       const std::vector<std::pair<std::string, std::string>>& merges) {
  std::map<std::pair<std::string, std::string>, size_t> ranks;
  for (size_t i = 0; i < merges.size(); ++i) ranks[merges[i]] = i;  // last rank wins, like dict()
  std::vector<std::string> word;
  for (const char c : piece) word.push_back(gpt2_byte_to_unicode()[static_cast<unsigned char>(c)]);
  while (word.size() > 1) {
    const std::pair<std::string, std::string>* best = nullptr;
    size_t best_rank = SIZE_MAX;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      const auto it = ranks.find({word[i], word[i + 1]});
      if (it != ranks.end() && it->second < best_rank) best = &it->first, best_rank = it->second;
    }
    if (best == nullptr) break;
    std::vector<std::string> merged;
    for (size_t i = 0; i < word.size();) {
      if (i + 1 < word.size() && word[i] == best->first && word[i + 1] == best->second) {
        merged.push_back(word[i] + word[i + 1]);
        i += 2;
      } else {
        merged.push_back(word[i++]);
      }
    }
    word = std::move(merged);
  }
  return word;
}

std::vector<std::string> pieces(const std::string& text) {
  std::vector<std::string> out;
  for (const auto piece : gpt2_pre_tokenize(text)) out.emplace_back(piece);
  return out;
}

TEST(BpeAlphabet, IsGpt2BytesToUnicode) {
  const auto& t = gpt2_byte_to_unicode();
  EXPECT_EQ(t['!'], "!");
  EXPECT_EQ(t['a'], "a");
  EXPECT_EQ(t[0xE9], "\xC3\xA9");  // é stands for itself
  EXPECT_EQ(t[0], "\xC4\x80");     // U+0100
  EXPECT_EQ(t[' '], "\xC4\xA0");   // Ġ U+0120
  EXPECT_EQ(t['\n'], "\xC4\x8A");  // Ċ U+010A
  EXPECT_EQ(t[0xAD], "\xC5\x83");  // the soft hyphen is the last unprintable byte: U+0143
  EXPECT_EQ(std::set<std::string>(t.begin(), t.end()).size(), 256u);
}

TEST(BpePreTokenize, SplitsLikeGpt2) {
  // Expected pieces from GPT-2's regex under Python's `regex` module.
  using V = std::vector<std::string>;
  EXPECT_EQ(pieces("Hello world's  end\n\n  x"),
            (V{"Hello", " world", "'s", " ", " end", "\n\n ", " x"}));
  EXPECT_EQ(pieces("I'm he'LL we've 3.14 abc123  456!!"),
            (V{"I", "'m", " he", "'", "LL", " we", "'ve", " 3", ".", "14", " abc", "123", " ", " 456",
               "!!"}));
  EXPECT_EQ(pieces("na\u00efve caf\u00e9 \u65e5\u672c\u8a9e \U0001F600\U0001F44D\U0001F3FD"),
            (V{"na\u00efve", " caf\u00e9", " \u65e5\u672c\u8a9e", " \U0001F600\U0001F44D\U0001F3FD"}));
  EXPECT_EQ(pieces("a \u00a0b\u3000 c"), (V{"a", " ", "\u00a0", "b", "\u3000", " c"}));
  EXPECT_EQ(pieces("  \t\n"), (V{"  \t\n"}));
  EXPECT_TRUE(pieces("").empty());
  // \s is Unicode White_Space: U+0085 is whitespace, U+FEFF is not (JavaScript's \s differs on both).
  EXPECT_EQ(pieces("x\u0085\u0085y"), (V{"x", "\u0085", "\u0085", "y"}));
  EXPECT_EQ(pieces("\ufeff!"), (V{"\ufeff!"}));
}

TEST(BpePreTokenize, InvalidUtf8RunsArePiecesOfTheirOwn) {
  using V = std::vector<std::string>;
  EXPECT_EQ(pieces("ab\xff\xfe" "cd \x80"), (V{"ab", "\xff\xfe", "cd", " ", "\x80"}));
  // An overlong "/", a UTF-16 surrogate, a code point past U+10FFFF, a truncated "€".
  EXPECT_EQ(pieces("a\xc0\xaf b\xed\xa0\x80 c\xf4\x90\x80\x80 d\xe2\x82"),
            (V{"a", "\xc0\xaf", " b", "\xed\xa0\x80", " c", "\xf4\x90\x80\x80", " d", "\xe2\x82"}));
}

TEST(BpeMerges, LowestRankFirstEveryOccurrence) {
  TempDir dir;
  MiniBpe bc_first;
  bc_first.merge("b", "c");
  bc_first.merge("a", "b");
  auto tok = bc_first.load(dir);
  EXPECT_EQ(tok->encode("abc"), (std::vector<int64_t>{'a', bc_first.id("bc")}));

  MiniBpe ab_first;
  ab_first.merge("a", "b");
  ab_first.merge("b", "c");
  ab_first.merge("a", "a");
  ab_first.merge("aa", "aa");
  tok = ab_first.load(dir);
  EXPECT_EQ(tok->encode("abc"), (std::vector<int64_t>{ab_first.id("ab"), 'c'}));
  // Non-overlapping, left to right: "aaa" → aa a; then aa+aa merges on the next round.
  EXPECT_EQ(tok->encode("aaa"), (std::vector<int64_t>{ab_first.id("aa"), 'a'}));
  EXPECT_EQ(tok->encode("aaaaa"), (std::vector<int64_t>{ab_first.id("aaaa"), 'a'}));

  // Ranks out of creation order: every "a b" is merged before (ab, a), which ranks lower, is
  // considered, as in the reference ("abab" → ab ab, not aba b).
  MiniBpe odd;
  odd.merge("a", "b");
  odd.merge("ab", "a");
  std::swap(odd.merges[0], odd.merges[1]);
  tok = odd.load(dir);
  EXPECT_EQ(reference_bpe("abab", odd.merges), (std::vector<std::string>{"ab", "ab"}));
  EXPECT_EQ(tok->encode("abab"), (std::vector<int64_t>{odd.id("ab"), odd.id("ab")}));
}

TEST(BpeMerges, MatchesReferenceOnRandomMergesAndWords) {
  TempDir dir;
  std::mt19937 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    MiniBpe bpe;
    std::vector<std::string> tokens = {"a", "b", "c"};
    for (int i = 0; i < 40; ++i) {
      const std::string l = tokens[rng() % tokens.size()], r = tokens[rng() % tokens.size()];
      bpe.merge(l, r);
      tokens.push_back(l + r);
    }
    std::shuffle(bpe.merges.begin(), bpe.merges.end(), rng);  // ranks in any order, repeats too
    const auto tok = bpe.load(dir);
    for (int w = 0; w < 100; ++w) {
      std::string word(1 + rng() % 40, 'a');
      for (char& ch : word) ch = static_cast<char>('a' + rng() % 3);
      std::vector<int64_t> expected;
      for (const auto& t : reference_bpe(word, bpe.merges))
        expected.push_back(bpe.vocab.at(t).get<int64_t>());
      ASSERT_EQ(tok->encode(word), expected) << "trial " << trial << " word " << word;
    }
  }
}

TEST(BpeCache, CachedAndFreshEncodingsAgreeAcrossEvictionAndThreads) {
  TempDir dir;
  MiniBpe bpe;
  for (const auto& [l, r] : {std::pair<const char*, const char*>{"a", "b"}, {"b", "c"}, {"c", "a"},
                             {"Ġ", "a"}, {"Ġ", "b"}})
    bpe.merge(l, r);
  const auto tok = bpe.load(dir);
  EXPECT_EQ(tok->cache_size(), 0u);
  const auto first = tok->encode("abc abca");
  const size_t cached = tok->cache_size();
  EXPECT_EQ(cached, 2u);  // "abc" and " abca"
  EXPECT_EQ(tok->encode("abc abca"), first);
  EXPECT_EQ(tok->cache_size(), cached);

  // More distinct pieces than the cache holds: it starts over, and results do not change.
  std::string text;
  for (size_t i = 0; i < Gpt2BpeTokenizer::kCacheCapacity + 5000; ++i) {
    text += ' ';
    for (size_t v = i + 27; v > 0; v /= 3) text += static_cast<char>('a' + v % 3);
  }
  const auto once = tok->encode(text);
  EXPECT_LE(tok->cache_size(), Gpt2BpeTokenizer::kCacheCapacity);
  EXPECT_EQ(tok->encode(text), once);
  EXPECT_EQ(bpe.load(dir)->encode(text), once);
  std::vector<std::vector<int64_t>> results(4);
  std::vector<std::thread> threads;
  for (auto& r : results) threads.emplace_back([&] { r = tok->encode(text); });
  for (auto& t : threads) t.join();
  for (const auto& r : results) EXPECT_EQ(r, once);
}

TEST(BpeSpecials, PlainTextNeverYieldsThemEncodeWithSpecialsDoes) {
  TempDir dir;
  MiniBpe bpe;
  const auto tok = bpe.load(dir);
  const int64_t eot = *tok->special_token("<|endoftext|>");
  EXPECT_EQ(eot, 256);
  // Chat tokens come after the largest id: 257..260.
  EXPECT_EQ(tok->role_token(Role::kSystem), 257);
  EXPECT_EQ(tok->role_token(Role::kUser), 258);
  EXPECT_EQ(tok->role_token(Role::kAssistant), 259);
  EXPECT_EQ(tok->end_of_turn_token(), 260);
  EXPECT_EQ(tok->vocab_size(), 261);
  const std::string text = "a<|endoftext|>b<|user|><|end|>";
  for (const int64_t id : tok->encode(text)) EXPECT_LT(id, 256);
  EXPECT_EQ(tok->decode(tok->encode(text)), text);
  EXPECT_EQ(tok->encode_with_specials(text), (std::vector<int64_t>{'a', eot, 'b', 258, 260}));
  EXPECT_EQ(tok->decode({259, 'h', 'i', 260}), "<|assistant|>hi<|end|>");
  EXPECT_THROW(tok->decode({261}), Error);
  EXPECT_THROW(tok->decode({-1}), Error);

  ChatExample chat;
  chat.messages = {{Role::kUser, "ab", 1}, {Role::kAssistant, "c", 1}};
  const RenderedChat r = tok->render(chat);
  EXPECT_EQ(r.ids, (std::vector<int64_t>{258, 'a', 'b', 260, 259, 'c', 260}));
  EXPECT_EQ(r.mask, (std::vector<uint8_t>{0, 0, 0, 0, 0, 1, 1}));
  EXPECT_EQ(tok->render_prompt(chat), (std::vector<int64_t>{258, 'a', 'b', 260, 259}));
}

TEST(BpeRoundTrip, DecodeInvertsEncodeOnArbitraryUtf8AndBytes) {
  TempDir dir;
  MiniBpe bpe;
  for (const char* m : {"e", "t", "h", "Ġ"}) bpe.merge(m, m);
  bpe.merge("Ġ", "t");
  const auto tok = bpe.load(dir);
  std::mt19937 rng(1234);
  const std::vector<std::pair<uint32_t, uint32_t>> ranges = {
      {0, 0x7F}, {0x80, 0x7FF}, {0x800, 0xD7FF}, {0xE000, 0xFFFF}, {0x10000, 0x10FFFF}, {' ', ' '}};
  for (int trial = 0; trial < 300; ++trial) {
    std::string text;
    for (int n = rng() % 60; n > 0; --n) {
      const auto& [lo, hi] = ranges[rng() % ranges.size()];
      text += utf8(lo + rng() % (hi - lo + 1));
    }
    ASSERT_EQ(tok->decode(tok->encode(text)), text) << "trial " << trial;
    std::string bytes(rng() % 60, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    ASSERT_EQ(tok->decode(tok->encode(bytes)), bytes) << "trial " << trial;
  }
}

TEST(BpeLoad, FormatsAndModelDirectories) {
  TempDir dir;
  MiniBpe bpe;
  bpe.merge("a", "b");
  bpe.merge("Ġ", "ab");
  const auto from_files = bpe.load(dir);
  // tokenizer.json with merges as pairs and an added token that overlaps another.
  nlohmann::json hf = nlohmann::json::parse(R"({
      "normalizer": null,
      "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
      "model": {"type": "BPE", "merges": [["a", "b"], ["Ġ", "ab"]]},
      "added_tokens": [{"id": 300, "content": "<|x|>"}, {"id": 301, "content": "<|x|>y"}]})");
  hf["model"]["vocab"] = bpe.vocab;
  write_text(dir / "tokenizer.json", hf.dump());
  const auto from_hf = load_tokenizer(dir.path.string());
  ASSERT_EQ(from_hf->type(), "gpt2-bpe");
  const auto& hf_tok = dynamic_cast<const Gpt2BpeTokenizer&>(*from_hf);
  EXPECT_EQ(hf_tok.encode(" ab ab"), from_files->encode(" ab ab"));
  EXPECT_EQ(hf_tok.encode_with_specials("<|x|>y<|x|>"), (std::vector<int64_t>{301, 300}));
  EXPECT_EQ(hf_tok.end_of_turn_token(), 305);  // after the added tokens

  // retain_tokenizer.json (to_json) is self-contained and takes precedence.
  const fs::path model = dir.path / "model";
  fs::create_directories(model);
  write_text(model / kTokenizerFile, hf_tok.to_json().dump());
  const auto reloaded = load_tokenizer(model.string());
  EXPECT_EQ(reloaded->to_json(), hf_tok.to_json());
  EXPECT_EQ(reloaded->encode(" ab <|x|>"), hf_tok.encode(" ab <|x|>"));

  fs::remove(dir / "tokenizer.json");
  EXPECT_EQ(load_tokenizer(dir.path.string())->vocab_size(), from_files->vocab_size());
  fs::remove(dir / "merges.txt");
  EXPECT_EQ(load_tokenizer(dir.path.string())->type(), "byte");  // vocab.json alone is not BPE

  hf["pre_tokenizer"]["add_prefix_space"] = true;
  write_text(dir / "tokenizer.json", hf.dump());
  try {
    Gpt2BpeTokenizer::from_tokenizer_json(dir / "tokenizer.json");
    FAIL() << "add_prefix_space accepted";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("pre_tokenizer/add_prefix_space"), std::string::npos)
        << e.what();
  }
}

// The message of the CheckpointError that loading dir's vocab.json + merges.txt throws.
std::string load_error(const TempDir& dir) {
  try {
    Gpt2BpeTokenizer::from_files(dir / "vocab.json", dir / "merges.txt");
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "";
}

TEST(BpeLoad, MalformedFilesNameTheFileAndLine) {
  TempDir dir;
  MiniBpe bpe;
  bpe.merge("a", "b");
  bpe.load(dir);
  const std::string vocab = read_text(dir / "vocab.json");
  const auto expect_error = [&](const std::string& merges, const std::string& needle) {
    write_text(dir / "merges.txt", merges);
    const std::string message = load_error(dir);
    EXPECT_NE(message.find(needle), std::string::npos) << "got: " << message;
  };
  expect_error("#version: 0.2\na b\na b c\n", "merges.txt:3: expected two tokens");
  expect_error("#version: 0.2\r\na b\r\n\r\nb  c\r\n", "merges.txt:4: expected two tokens");
  expect_error("#version: 0.2\nq\xC3\xA9 b\n",
               "merges.txt:2: merge part \"q\xC3\xA9\" is not in the vocabulary");
  expect_error("#version: 0.2\nb a\n", "merges.txt:2: merge result \"ba\"");
  write_text(dir / "merges.txt", "#version: 0.2\na b\n");
  EXPECT_EQ(load_error(dir), "");

  write_text(dir / "vocab.json", "{\n\"a\": 1,\n\"b\" 2\n}");
  EXPECT_NE(load_error(dir).find("line 3"), std::string::npos) << load_error(dir);
  EXPECT_NE(load_error(dir).find("vocab.json"), std::string::npos);
  write_text(dir / "vocab.json", "{\"a\": 0, \"b\": 0}");
  EXPECT_NE(load_error(dir).find("share id 0"), std::string::npos) << load_error(dir);
  write_text(dir / "vocab.json", "{\"a\": \"x\"}");
  EXPECT_NE(load_error(dir).find("token \"a\" has id \"x\""), std::string::npos) << load_error(dir);
  nlohmann::json no_space = nlohmann::json::parse(vocab);
  no_space.erase("Ġ");
  write_text(dir / "vocab.json", no_space.dump());
  EXPECT_NE(load_error(dir).find("no token for byte 0x20"), std::string::npos) << load_error(dir);
  fs::remove(dir / "vocab.json");
  EXPECT_NE(load_error(dir).find("vocab.json"), std::string::npos) << load_error(dir);
}

TEST(BpeCli, TokenizeAndDecodeStdinLines) {
  TempDir dir;
  MiniBpe bpe;
  bpe.merge("Ġ", "w");
  const auto tok = bpe.load(dir);
  // The exit code of `retain tokenize --tokenizer DIR flags < in > out 2> err.txt` (files in DIR).
  const auto tokenize = [&](const std::string& flags, const std::string& in, const std::string& out) {
    const std::string cmd = std::string(RETAIN_BIN) + " -q tokenize --tokenizer " + dir.path.string() +
                            flags + " < " + (dir / in) + " > " + (dir / out) + " 2> " + (dir / "err.txt");
    return WEXITSTATUS(std::system(cmd.c_str()));
  };
  write_text(dir / "in.txt", "a w\n\nsnow \xE2\x98\x83<|endoftext|>\n");
  ASSERT_EQ(tokenize("", "in.txt", "ids.txt"), 0) << read_text(dir / "err.txt");
  EXPECT_EQ(read_text(dir / "ids.txt"),
            nlohmann::json(tok->encode("a w")).dump() + "\n[]\n" +
                nlohmann::json(tok->encode("snow \xE2\x98\x83<|endoftext|>")).dump() + "\n");
  ASSERT_EQ(tokenize(" --decode", "ids.txt", "text.txt"), 0) << read_text(dir / "err.txt");
  EXPECT_EQ(read_text(dir / "text.txt"), read_text(dir / "in.txt"));
  ASSERT_EQ(tokenize(" --specials", "in.txt", "ids.txt"), 0) << read_text(dir / "err.txt");
  EXPECT_NE(read_text(dir / "ids.txt").find(",256]"), std::string::npos) << read_text(dir / "ids.txt");

  write_text(dir / "bad.txt", "[1,2]\n[1,99999]\n");
  EXPECT_EQ(tokenize(" --decode", "bad.txt", "text.txt"), kExitData);
  EXPECT_NE(read_text(dir / "err.txt").find("stdin:2"), std::string::npos) << read_text(dir / "err.txt");
}

}  // namespace
}  // namespace retain
