// Helpers shared by the GPT-2 BPE tests (bpe_test.cpp, bpe_parity_test.cpp, hf_test.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "retain/bpe.h"
#include "test_util.h"

namespace retain::bpe_test {

// The UTF-8 encoding of code point `cp` (a scalar value: not a surrogate, at most U+10FFFF).
inline std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (cp >> 18));
    s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// `bytes` in GPT-2's byte alphabet ("a b" → "aĠb").
inline std::string spell(const std::string& bytes) {
  std::string out;
  for (const char c : bytes) out += gpt2_byte_to_unicode()[static_cast<unsigned char>(c)];
  return out;
}

// A vocabulary of the 256 bytes (ids 0–255 in byte order) plus merges added one by one.
struct MiniBpe {
  nlohmann::json vocab = nlohmann::json::object();
  std::vector<std::pair<std::string, std::string>> merges;  // spelled
  MiniBpe() {
    for (int b = 0; b < 256; ++b) vocab[gpt2_byte_to_unicode()[b]] = b;
  }
  // Adds the merge of two spelled tokens, and its result to the vocabulary.
  void merge(const std::string& left, const std::string& right) {
    merges.emplace_back(left, right);
    if (!vocab.contains(left + right)) vocab[left + right] = vocab.size();
  }
  int64_t id(const std::string& bytes) const { return vocab.at(spell(bytes)).get<int64_t>(); }
  // Writes vocab.json (with <|endoftext|> last) and merges.txt into `dir`.
  void write(const std::filesystem::path& dir) const {
    nlohmann::json v = vocab;
    v[Gpt2BpeTokenizer::kEndOfText] = v.size();
    std::string text = "#version: 0.2\n";
    for (const auto& [l, r] : merges) text += l + " " + r + "\n";
    cli_test::write_text(dir / "vocab.json", v.dump());
    cli_test::write_text(dir / "merges.txt", text);
  }
  // Writes them into `dir` and loads them.
  std::unique_ptr<Gpt2BpeTokenizer> load(const testing_util::TempDir& dir) const {
    write(dir.path);
    return Gpt2BpeTokenizer::from_files(dir / "vocab.json", dir / "merges.txt");
  }
};

}  // namespace retain::bpe_test
