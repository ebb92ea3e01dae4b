// SentencePiece (sentencepiece_tokenizer.h): a small model trained here with Debian's spm_train
// (BPE and unigram, byte fallback on), then ids compared with python3-sentencepiece's on the
// parity strings; loading through load_tokenizer and retain_tokenizer.json. Skips only when
// spm_train or python3's sentencepiece is not installed.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cli_util.h"
#include "npm_package.h"
#include "parity_strings.h"
#include "retain/errors.h"
#include "retain/sentencepiece_tokenizer.h"
#include "test_util.h"

namespace retain {
namespace {

namespace fs = std::filesystem;
using npm_test::shell_quote;

bool python_has_sentencepiece() {
  return std::system("/usr/bin/python3 -c 'import sentencepiece' > /dev/null 2>&1") == 0;
}

TEST(SentencePiece, MatchesPythonSentencePieceOnTrainedModels) {
  if (!npm_test::has_command("spm_train") || !python_has_sentencepiece()) {
    GTEST_SKIP() << "spm_train or python3-sentencepiece missing: install sentencepiece python3-sentencepiece";
  }
  testing_util::TempDir dir;
  const parity::Strings strings = parity::parity_strings();
  // Trained on prose, accented words and code; CJK and random code points in the strings then go
  // through byte fallback.
  std::string corpus;
  parity::Rng rng{11};
  for (int i = 0; i < 4000; ++i) {
    std::string line = parity::generate(rng, std::vector<size_t>{0, 1, 5, 6}[i % 4]);
    for (char& c : line)
      if (c == '\n' || c == '\r') c = ' ';
    corpus += line + "\n";
  }
  cli_test::write_text(dir / "corpus.txt", corpus);
  cli_test::write_text(dir / "strings.json", nlohmann::json(strings).dump());
  for (const char* type : {"bpe", "unigram"}) {
    SCOPED_TRACE(type);
    const fs::path model = dir.path / type;
    fs::create_directories(model);
    const std::string train = std::string("spm_train --input=") + shell_quote(dir / "corpus.txt") +
                              " --model_prefix=" + shell_quote(model / "tokenizer") + " --model_type=" + type +
                              " --vocab_size=1000 --byte_fallback=true --character_coverage=0.9995"
                              " --num_threads=1 --minloglevel=2 > " + shell_quote(model / "train.log") + " 2>&1";
    ASSERT_EQ(std::system(train.c_str()), 0) << train << "\n" << cli_test::read_text(model / "train.log");
    const std::string ref = "/usr/bin/python3 " +
                            shell_quote(fs::path(RETAIN_SOURCE_DIR) / "tests" / "tokenizer" / "sp_encode.py") + " " +
                            shell_quote(model / "tokenizer.model") + " " + shell_quote(dir / "strings.json") + " " +
                            shell_quote(model / "ids.json");
    ASSERT_EQ(std::system(ref.c_str()), 0) << ref;
    const nlohmann::json theirs = nlohmann::json::parse(cli_test::read_text(model / "ids.json"));

    const auto tok = load_tokenizer(model.string());
    ASSERT_EQ(tok->type(), "sentencepiece");
    EXPECT_EQ(tok->vocab_size(), 1000);
    EXPECT_EQ(tok->token_id("<s>"), 1);
    EXPECT_EQ(tok->token_id("<0x41>"), 3 + 0x41);  // byte pieces follow <unk> <s> </s>
    EXPECT_EQ(tok->token_id("no such piece"), std::nullopt);
    size_t mismatches = 0;
    for (size_t i = 0; i < strings.size(); ++i) {
      const auto ours = tok->encode(strings[i]);
      if (nlohmann::json(ours) != theirs[i] && ++mismatches <= 5)
        ADD_FAILURE() << "string " << i << " " << nlohmann::json(strings[i]).dump() << "\n  retain:    "
                      << nlohmann::json(ours).dump() << "\n  reference: " << theirs[i].dump();
    }
    EXPECT_EQ(mismatches, 0u) << "of " << strings.size();
    EXPECT_EQ(tok->decode({1, tok->encode("hello")[0]}).substr(0, 3), "<s>");

    // retain_tokenizer.json keeps the model.
    const fs::path saved = model / "saved";
    fs::create_directories(saved);
    cli_test::write_text(saved / kTokenizerFile, tok->to_json().dump());
    const auto again = load_tokenizer(saved.string());
    EXPECT_EQ(again->encode(strings[100]), tok->encode(strings[100]));
  }
  fs::create_directories(dir.path / "broken");
  cli_test::write_text(dir.path / "broken" / "tokenizer.model", "not a model");
  EXPECT_THROW(load_tokenizer((dir.path / "broken").string()), CheckpointError);
}

TEST(SentencePiece, Base64RoundTrips) {
  for (const std::string& s : {std::string(""), std::string("a"), std::string("ab"), std::string("abc"),
                              std::string("\0\xff\x10\x80", 4)})
    EXPECT_EQ(base64_decode(base64_encode(s)), s);
  EXPECT_EQ(base64_encode("Man"), "TWFu");
  EXPECT_EQ(base64_encode("Ma"), "TWE=");
  EXPECT_THROW(base64_decode("TW=u"), Error);
  EXPECT_THROW(base64_decode("TWF"), Error);
}

}  // namespace
}  // namespace retain
