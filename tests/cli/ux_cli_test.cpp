// End-to-end tests of what a user meets first (issue 18): `generate --system` and `--chat`, help
// that shows types and defaults, quiet `init`, and where `finetune` puts its run folder.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "retain/bpe.h"
#include "retain/errors.h"

namespace retain {
namespace {

namespace fs = std::filesystem;
using cli_test::CliResult;
using cli_test::read_text;
using cli_test::write_text;

const fs::path kSource = RETAIN_SOURCE_DIR;
const std::string kPreset = (kSource / "models" / "gpt-tiny").string();

class UxCli : public testing::Test {
 protected:
  void SetUp() override { dir_ = cli_test::fresh_test_dir("retain_ux_cli"); }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  CliResult run(const std::vector<std::string>& args, const std::string& tag = "cli",
                const fs::path& stdin_file = "/dev/null") const {
    return cli_test::run_cli(args, dir_, tag, stdin_file);
  }
  fs::path dir_;
};

TEST_F(UxCli, ChatReadsTurnsFromAPipeAndAnswersEach) {
  const std::vector<std::string> model = {"generate", "--model", kPreset, "--max-new-tokens", "4"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = model;
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  const CliResult single = run(with({"--prompt", "hello"}), "single");
  ASSERT_EQ(single.code, kExitOk) << single.describe();
  ASSERT_FALSE(single.out.empty());

  write_text(dir_ / "turns.txt", "hello\n\nhow are you\n");  // an empty line is skipped
  const CliResult chat = run(with({"--chat"}), "chat", dir_ / "turns.txt");
  ASSERT_EQ(chat.code, kExitOk) << chat.describe();
  // The first reply is the single-turn one (greedy); a second follows, then the input ends.
  ASSERT_EQ(chat.out.rfind(single.out, 0), 0u) << chat.out;
  EXPECT_GT(chat.out.size(), single.out.size() + 1) << chat.out;
  EXPECT_EQ(chat.out.back(), '\n');

  const CliResult system = run(with({"--system", "You answer briefly.", "--prompt", "hello"}), "system");
  ASSERT_EQ(system.code, kExitOk) << system.describe();
  EXPECT_FALSE(system.out.empty());
}

TEST_F(UxCli, SystemOnAModelWithoutAChatTemplateIsAConfigErrorNamingIt) {
  // gpt-tiny's architecture with a tokenizer.json that has no chat template (the general reader).
  fs::create_directories(dir_ / "bare");
  fs::copy_file(fs::path(kPreset) / "config.json", dir_ / "bare" / "config.json");
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[gpt2_byte_to_unicode()[b]] = b;
  const nlohmann::json tokenizer = {
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}}};
  write_text(dir_ / "bare" / "tokenizer.json", tokenizer.dump());
  const CliResult r = run({"generate", "--model", path("bare"), "--system", "be brief", "--prompt", "hi"});
  EXPECT_EQ(r.code, kExitUsage) << r.describe();
  EXPECT_NE(r.err.find("--system: the model " + path("bare") + " has no chat template"), std::string::npos)
      << r.err;
  const CliResult raw = run({"generate", "--model", path("bare"), "--raw", "--prompt", "hi", "--max-new-tokens", "2"});
  EXPECT_EQ(raw.code, kExitOk) << raw.describe();
}

TEST_F(UxCli, HelpShowsTypesAndDefaults) {
  for (const std::string command : {"train", "finetune"}) {
    const CliResult r = run({command, "--help"}, command);
    ASSERT_EQ(r.code, kExitOk) << r.describe();
    EXPECT_NE(r.out.find("--lr FLOAT"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("--max-steps INT"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("--lora-rank INT"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("[default: 0.0003]"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("TEXT=0.0003"), std::string::npos) << r.out;
  }
  const CliResult finetune = run({"finetune", "--help"}, "finetune");
  EXPECT_NE(finetune.out.find("--out PATH"), std::string::npos) << finetune.out;
  EXPECT_NE(finetune.out.find("--group-by-length BOOL"), std::string::npos) << finetune.out;
  const CliResult generate = run({"generate", "--help"}, "generate");
  EXPECT_NE(generate.out.find("--temperature FLOAT"), std::string::npos) << generate.out;
  EXPECT_NE(generate.out.find("[default: 0]"), std::string::npos) << generate.out;
}

}  // namespace
}  // namespace retain
