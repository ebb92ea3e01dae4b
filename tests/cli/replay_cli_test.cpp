// End-to-end tests of the workspace and buffer subcommands: the `retain` executable (RETAIN_BIN)
// run as a child process, checking exit codes (errors.h) and what it prints and writes.
#include <sys/wait.h>

#include <cstdlib>

#include "replay_test_util.h"
#include "retain/errors.h"

#ifdef RETAIN_BIN

namespace retain {
namespace {

using namespace replay_test;

// Runs `retain ARGS` in `dir` with stdout to dir/out.txt and stderr to dir/err.txt; the exit code.
int run_retain(const fs::path& dir, const std::string& args) {
  const std::string command = "cd '" + dir.string() + "' && env -u RETAIN_WORKSPACE '" +
                              std::string(RETAIN_BIN) + "' " + args + " > out.txt 2> err.txt";
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

std::string text(const fs::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(ReplayCli, InitAddStatsSampleMix) {
  const fs::path dir = fresh_dir("retain_replay_cli_test_");
  write_jsonl(dir / "old.jsonl", make_examples({{"a", 30}, {"b", 10}}));
  write_jsonl(dir / "new.jsonl", make_examples({{"c", 70}}));

  EXPECT_EQ(run_retain(dir, "buffer stats"), 5) << text(dir / "err.txt");  // no workspace yet
  EXPECT_NE(text(dir / "err.txt").find("retain init"), std::string::npos);
  ASSERT_EQ(run_retain(dir, "init"), 0) << text(dir / "err.txt");
  EXPECT_TRUE(fs::exists(dir / "retain-workspace" / "retain.db"));
  ASSERT_EQ(run_retain(dir, "buffer add old.jsonl --source v1"), 0) << text(dir / "err.txt");
  ASSERT_EQ(run_retain(dir, "buffer stats --json"), 0) << text(dir / "err.txt");
  const auto stats = nlohmann::json::parse(text(dir / "out.txt"));
  EXPECT_EQ(stats.at("size"), 40);
  EXPECT_EQ(stats.at("topics"), 2);
  EXPECT_EQ(stats.at("per_source").at(0).at("source"), "v1");

  ASSERT_EQ(run_retain(dir, "buffer sample 6 --seed 3 -o s.jsonl"), 0) << text(dir / "err.txt");
  EXPECT_EQ(read_lines(dir / "s.jsonl").size(), 6u);

  ASSERT_EQ(run_retain(dir, "mix new.jsonl --replay-ratio 0.3 -o mix.jsonl --no-commit --json"), 0)
      << text(dir / "err.txt");
  const auto report = nlohmann::json::parse(text(dir / "out.txt"));
  EXPECT_EQ(report.at("new_examples"), 70);
  EXPECT_EQ(report.at("replay_examples"), 30);
  EXPECT_EQ(read_lines(dir / "mix.jsonl").size(), 100u);
  ASSERT_EQ(run_retain(dir, "mix new.jsonl -o mix.jsonl"), 0) << text(dir / "err.txt");
  ASSERT_EQ(run_retain(dir, "buffer stats --json"), 0);
  EXPECT_EQ(nlohmann::json::parse(text(dir / "out.txt")).at("size"), 110);

  EXPECT_EQ(run_retain(dir, "mix new.jsonl --replay-ratio 1 -o m2.jsonl"), 2);
  std::ofstream(dir / "bad.jsonl") << "not json\n";
  EXPECT_EQ(run_retain(dir, "buffer add bad.jsonl"), kExitData);
  EXPECT_NE(text(dir / "err.txt").find("bad.jsonl:1"), std::string::npos);
  ASSERT_EQ(run_retain(dir, "buffer remove --source mix"), 0);
  ASSERT_EQ(run_retain(dir, "buffer export -o all.jsonl"), 0);
  EXPECT_EQ(read_lines(dir / "all.jsonl").size(), 40u);
}

}  // namespace
}  // namespace retain

#endif  // RETAIN_BIN
