// Generated strings for the tokenizer parity tests (bpe_parity_test.cpp, hf_parity_test.cpp,
// chat_parity_test.cpp): prose, contractions, accented and non-Latin scripts, CJK, emoji, digits,
// code, whitespace runs and random code points, from a fixed seed.
#pragma once

#include <cctype>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "bpe_test_util.h"

namespace retain::parity {

using bpe_test::utf8;

// splitmix64: strings that do not depend on the standard library's distributions.
struct Rng {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return static_cast<size_t>(next() % n); }
  template <typename T>
  const T& pick(const std::vector<T>& v) { return v[below(v.size())]; }
};

using Strings = std::vector<std::string>;

const Strings kWords = {"the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "model",
                        "training", "forgetting", "replay", "buffer", "gradient", "A", "I", "Pro",
                        "plan", "costs", "per", "month", "support", "Hello", "world", "QUILLNOTE",
                        "x", "supercalifragilisticexpialidocious", "re-run", "e-mail", "U.S.A."};
const Strings kContractions = {"don't", "it's", "we're", "they've", "I'm", "you'll", "he'd",
                               "IT'S", "o'clock", "rock 'n' roll", "'tis", "y'all", "can't've",
                               "Bob's", "BOB'S", "'s'll'd're've'm't", "it\u2019s", "''", "'", "dogs'"};
const Strings kAccented = {"caf\u00e9", "na\u00efve", "Z\u00fcrich", "se\u00f1or", "fa\u00e7ade",
                           "\u00c5ngstr\u00f6m", "\u00d8resund", "stra\u00dfe", "d\u00e9j\u00e0 vu",
                           "cr\u00e8me br\u00fbl\u00e9e", "\u0141\u00f3d\u017a", "Dvo\u0159\u00e1k",
                           "\u0130stanbul", "\u0391\u0398\u0397\u039d\u0391", "e\u0301", "Ma\u00f1ana",
                           "\u041c\u043e\u0441\u043a\u0432\u0430", "\u05e9\u05dc\u05d5\u05dd",
                           "\u0627\u0644\u0639\u0631\u0628\u064a\u0629",
                           "\u0939\u093f\u0928\u094d\u0926\u0940",
                           "\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22", "\u1ef3\u1ebd\u1ea1"};
const Strings kEmoji = {"\U0001F600", "\U0001F44D\U0001F3FD",
                        "\U0001F468\u200D\U0001F469\u200D\U0001F467",
                        "\U0001F1EB\U0001F1F7", "1\uFE0F\u20E3", "\u2764\uFE0F", "\U0001F680", "\u2615",
                        "\U0001F937\u200D\u2640\uFE0F", "\u2728", "\U0001F4A9", "\u263A"};
const Strings kNumbers = {"0", "42", "3.14159", "1,000,000", "2024-01-31", "+1 (555) 010-9999",
                          "0xDEADBEEF", "6.02e23", "99.9%", "$1,000.50", "\u20ac12", "\u0663\u0664\u0665",
                          "\uff11\uff12\uff13", "x\u00b2", "\u00bd", "\u2162", "007", "1st", "v1.2.3"};
const Strings kCode = {
    "for (int i = 0; i < n; ++i) {\n    sum += a[i];\n}\n",
    "def f(x):\n\treturn x ** 2  # square\n",
    "const s = `${a}-${b}`;\nconsole.log(s?.length ?? 0);",
    "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"weight\": 1}",
    "if [[ -f \"$1\" ]]; then echo ok; fi 2>&1 | tee log",
    "<div class=\"x\">&nbsp;&lt;tag&gt;</div>",
    "SELECT id, name FROM users WHERE age >= 18;",
    "^\\s+(?!\\S)|[a-z]{2,}$",
    "    if x:\n        pass\n\n\n",
    "std::vector<int64_t> ids = tok.encode(\"a\");",
    "a[\"b\",\"c\"],{\"d\":\"e\"}"};
const Strings kSpaces = {" ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", " \n ", "\u00a0", "\u3000",
                         "\u2003", "\u2028", "\t\t", "\n \n", "        "};

// A random code point from blocks assigned long ago (every version of Unicode in play agrees on
// them), controls included; never U+0085 or U+FEFF.
inline std::string random_code_point(Rng& rng) {
  static const std::vector<std::pair<uint32_t, uint32_t>> kRanges = {
      {0x20, 0x7E},     {0x01, 0x08},     {0x0E, 0x1F},     {0x86, 0x9F},     {0xA1, 0x17F},
      {0x300, 0x36F},   {0x3B1, 0x3C9},   {0x410, 0x44F},   {0x5D0, 0x5EA},   {0x621, 0x63A},
      {0x660, 0x669},   {0x915, 0x939},   {0x93E, 0x94C},   {0x966, 0x96F},   {0xE01, 0xE2E},
      {0x2010, 0x2027}, {0x20A0, 0x20B5}, {0x2160, 0x2182}, {0x2190, 0x21FF}, {0x2500, 0x257F},
      {0x2600, 0x26FF}, {0x3041, 0x3094}, {0x30A1, 0x30F6}, {0x4E00, 0x9FA5}, {0xAC00, 0xD7A3},
      {0xFF10, 0xFF19}, {0xFF21, 0xFF3A}, {0x1D400, 0x1D454}, {0x1F300, 0x1F320}, {0x1F600, 0x1F64F}};
  const auto& [lo, hi] = kRanges[rng.below(kRanges.size())];
  return utf8(lo + static_cast<uint32_t>(rng.below(hi - lo + 1)));
}

inline std::string prose(Rng& rng) {
  static const Strings kPunct = {"", "", "", ",", ".", "!", "?", ";", ":", " -", "\"", "...", ")"};
  std::string s;
  for (size_t n = 1 + rng.below(16); n > 0; --n) {
    std::string w = rng.below(4) == 0 ? rng.pick(kContractions) : rng.pick(kWords);
    if (rng.below(5) == 0) w[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(w[0])));
    s += (s.empty() ? "" : " ") + w + rng.pick(kPunct);
  }
  return s;
}

inline std::string run_of(Rng& rng, size_t max_length) {
  std::string s;
  for (size_t n = 1 + rng.below(max_length); n > 0; --n) s += random_code_point(rng);
  return s;
}

// The kind-th kind of string (0..8); `mixed` joins fragments of the others.
inline std::string generate(Rng& rng, size_t kind) {
  switch (kind) {
    case 0: return prose(rng);
    case 1:
      return rng.pick(kAccented) + " " + prose(rng) + " " + rng.pick(kAccented) + rng.pick(kAccented);
    case 2: {  // CJK, kana, hangul with their punctuation
      std::string s;
      for (size_t n = 1 + rng.below(20); n > 0; --n) {
        const uint32_t base[] = {0x4E00, 0x3041, 0x30A1, 0xAC00, 0x3001};
        const uint32_t span[] = {0x51A5, 0x53, 0x55, 0x2BA3, 2};
        const size_t b = rng.below(5);
        s += utf8(base[b] + static_cast<uint32_t>(rng.below(span[b] + 1)));
      }
      return s;
    }
    case 3: {
      std::string s;
      for (size_t n = 1 + rng.below(6); n > 0; --n)
        s += rng.pick(kEmoji) + (rng.below(2) ? " " : "") + (rng.below(3) ? "" : rng.pick(kWords));
      return s;
    }
    case 4: {  // whitespace runs between words, at the ends too
      std::string s;
      for (size_t n = 1 + rng.below(6); n > 0; --n) {
        for (size_t k = rng.below(8); k > 0; --k) s += rng.pick(kSpaces);
        if (rng.below(4)) s += rng.pick(kWords);
      }
      return s;
    }
    case 5: return rng.pick(kNumbers) + rng.pick(Strings{" ", "", "-", "/", " + "}) + rng.pick(kNumbers) +
                   " " + std::to_string(rng.next() % 100000000);
    case 6: return rng.pick(kCode);
    case 7: return run_of(rng, 30);
    default: {
      std::string s;
      for (size_t n = 2 + rng.below(3); n > 0; --n) s += generate(rng, rng.below(8)) + rng.pick(kSpaces);
      return s;
    }
  }
}

inline Strings parity_strings() {
  Strings out = {"", " ", "a", "Hello world", "<|endoftext|>", "'s", " 's", "'S", "\n\n\n",
                 "   leading", "trailing   ", "a  b   c    d", "1 2  3   4", "!!!???", "\u00e9\u00e9"};
  for (const auto& list : {kWords, kContractions, kAccented, kEmoji, kNumbers, kCode, kSpaces})
    out.insert(out.end(), list.begin(), list.end());
  Rng rng{20240531};
  for (size_t i = 0; i < 2700; ++i) out.push_back(generate(rng, i % 9));
  return out;
}

}  // namespace retain::parity
