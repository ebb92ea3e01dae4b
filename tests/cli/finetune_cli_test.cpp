// `retain finetune` without --run-dir: the run folder lands beside --out (<its folder>/runs/<UTC
// time>-<its name>), never in the directory the command was started from.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "retain/errors.h"

namespace retain {
namespace {

namespace fs = std::filesystem;
using cli_test::read_text;

const fs::path kSource = RETAIN_SOURCE_DIR;

// The folders in `runs`.
std::vector<fs::path> run_folders(const fs::path& runs) {
  std::vector<fs::path> out;
  if (fs::is_directory(runs))
    for (const auto& e : fs::directory_iterator(runs)) out.push_back(e.path());
  return out;
}

// What is in `dir` besides the harness's <tag>.stdout and <tag>.stderr.
std::vector<std::string> other_entries(const fs::path& dir, const std::set<std::string>& tags) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const fs::path name = e.path().filename();
    const bool harness = (name.extension() == ".stdout" || name.extension() == ".stderr") && tags.count(name.stem().string());
    if (!harness) out.push_back(name.string());
  }
  return out;
}

TEST(FinetuneCli, WithoutRunDirTheRunFolderLandsBesideOut) {
  const fs::path dir = cli_test::fresh_test_dir("retain_finetune_cli");
  const fs::path cwd = dir / "cwd", models = dir / "models";
  fs::create_directories(cwd);
  fs::create_directories(models);
  cli_test::write_head(kSource / "data" / "support" / "release1-train.jsonl", dir / "small.jsonl", 8);
  auto finetune = [&](const std::string& out, const std::string& tag) {
    return cli_test::run_cli({"finetune", "--model", (kSource / "models" / "gpt-tiny").string(), "--train",
                              (dir / "small.jsonl").string(), "--out", out, "--max-steps", "1", "--batch-size", "2",
                              "--threads", "1"},
                             cwd, tag);
  };

  // An absolute --out in another folder: nothing appears in the working directory.
  const auto r = finetune((models / "m").string(), "absolute");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  EXPECT_EQ(other_entries(cwd, {"absolute"}), std::vector<std::string>{});
  const auto runs = run_folders(models / "runs");
  ASSERT_EQ(runs.size(), 1u);
  const std::string name = runs[0].filename().string();
  EXPECT_EQ(name.substr(name.size() - 2), "-m");
  EXPECT_TRUE(fs::exists(runs[0] / "metrics.jsonl"));
  EXPECT_EQ(nlohmann::json::parse(read_text(runs[0] / "job.json")).at("run_dir"), runs[0].string());
  EXPECT_NE(r.out.find("run " + runs[0].string()), std::string::npos) << r.out;

  // A relative --out with a trailing slash: beside it too, named after it.
  const auto rel = finetune("sub/m2/", "relative");
  ASSERT_EQ(rel.code, kExitOk) << rel.describe();
  EXPECT_EQ(other_entries(cwd, {"absolute", "relative"}), std::vector<std::string>{"sub"});
  const auto rel_runs = run_folders(cwd / "sub" / "runs");
  ASSERT_EQ(rel_runs.size(), 1u);
  const std::string rel_name = rel_runs[0].filename().string();
  EXPECT_EQ(rel_name.substr(rel_name.size() - 3), "-m2");
  EXPECT_TRUE(fs::exists(cwd / "sub" / "m2" / "model.safetensors"));
  if (!::testing::Test::HasFailure()) fs::remove_all(dir);
}

}  // namespace
}  // namespace retain
