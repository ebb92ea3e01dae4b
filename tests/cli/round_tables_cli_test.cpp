// What `retain train` and `retain sweep` print, end to end: the round's and the sweep's tables
// keep their columns for a 40-character test-set name and give a failing setting's reason, and
// a round with EWC from a version without a Fisher names the `retain fisher` command that fixes
// it — which, run as printed, lets the next round start.
#include <gtest/gtest.h>

#include <sstream>

#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "retain/errors.h"
#include "retain/model.h"
#include "table_test_util.h"

namespace retain {
namespace {

namespace fs = std::filesystem;
using cli_test::CliResult;
using nlohmann::json;
using table_test::cell_offsets;
using table_test::expect_columns;
using table_test::table_lines;

const fs::path kSource = RETAIN_SOURCE_DIR;
// 40 code points, with characters of more than one byte.
const std::string kLongSet = "support-release-one-regressions→v2-✗-old";

class RoundTablesCliTest : public testing::Test {
 protected:
  // A workspace whose production support-v1 (gpt-tiny, seeded weights) has no Fisher.
  void SetUp() override {
    dir_ = cli_test::fresh_test_dir("retain_round_tables");
    cli_test::write_support_sample(kSource, dir_);
    auto base = load_model_dir((kSource / "models" / "gpt-tiny").string(), 7);
    save_model_dir(path("base"), base.config, base.model, *base.tokenizer, false);
    expect_ok(run({"init", "--workspace", path("ws")}, "init"));
    expect_ok(run({"import", path("base"), "--name", "support-v1", "--workspace", path("ws"), "--replay-data",
                   path("old.jsonl")},
                  "import"));
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  CliResult run(const std::vector<std::string>& args, const std::string& tag) const {
    return cli_test::run_cli(args, dir_, tag);
  }
  static void expect_ok(const CliResult& r) { ASSERT_EQ(r.code, kExitOk) << r.describe(); }
  CliResult train(const std::string& config, const std::string& tag) const {
    return run({"train", "--config", path(config), "--data", path("new.jsonl"), "--workspace", path("ws")}, tag);
  }

  // A round config judging kLongSet (the old data) and "new" on loss; `old_max_loss` 0 rejects every candidate.
  void write_config(const std::string& name, double lambda, double old_max_loss) const {
    json c = {{"replay", {{"ratio", 0.3}}},
              {"ewc", {{"lambda", lambda}, {"num_samples", 8}}},
              {"training", {{"max_steps", 2}, {"batch_size", 4}, {"threads", 1}, {"lr", 1e-3}}},
              {"gate", {{"test_sets", {{kLongSet, path("old-test.jsonl")}, {"new", path("new-test.jsonl")}}},
                        {"metrics", {{kLongSet, "loss"}, {"new", "loss"}}},
                        {"min_scores", {{kLongSet, old_max_loss}}},
                        {"regression_tolerance", 1e9}}}};
    cli_test::write_text(dir_ / name, c.dump(2));
  }

  fs::path dir_;
};

TEST_F(RoundTablesCliTest, RoundAndSweepTablesKeepTheirColumnsAndSayWhy) {
  write_config("fail.json", 0, 0.0);
  const CliResult round = train("fail.json", "train");
  ASSERT_EQ(round.code, kExitRejected) << round.describe();
  const auto summary = table_lines(round.out, "test set");
  ASSERT_GE(summary.size(), 3u) << round.out;
  expect_columns({summary[0], summary[1], summary[2]}, 7, {1, 2});
  EXPECT_NE(round.out.find("✗ " + kLongSet + ": loss"), std::string::npos) << round.out;

  const CliResult sweep = run({"sweep", "--config", path("fail.json"), "--data", path("new.jsonl"), "--workspace",
                               path("ws"), "--lambda", "0", "--replay-ratio", "0,0.3", "--old", kLongSet, "--new", "new",
                               "--out", path("sweep")},
                              "sweep");
  ASSERT_EQ(sweep.code, kExitOk) << sweep.describe();
  const auto table = table_lines(sweep.out, "lambda");
  ASSERT_EQ(table.size(), 4u) << sweep.out;  // header, base, two settings
  expect_columns(table, 10, {});
  for (size_t i : {2, 3}) {
    EXPECT_NE(table[i].find("FAIL"), std::string::npos) << table[i];
    const size_t reason = table[i].find(kLongSet + " loss ");
    ASSERT_NE(reason, std::string::npos) << table[i];
    EXPECT_NE(table[i].find(" > max 0", reason), std::string::npos) << table[i];
    EXPECT_EQ(cell_offsets(table[i]).back(), cell_offsets(table[0]).back()) << table[i];  // in the reason column
  }
  EXPECT_NE(sweep.out.find("compares each candidate with production support-v1"), std::string::npos) << sweep.out;
  EXPECT_NE(table[1].find("+0.0000"), std::string::npos) << table[1];  // the base is production
  const json j = json::parse(cli_test::read_text(dir_ / "sweep" / "sweep.json"));
  EXPECT_EQ(j.at("production_model_id"), "support-v1");
  EXPECT_NE(j.at("points").at(0).at("reason").get<std::string>().find(kLongSet + " loss"), std::string::npos);
}

TEST_F(RoundTablesCliTest, EwcWithoutAFisherNamesTheFisherCommandThatFixesIt) {
  write_config("ewc.json", 10, 1e9);
  const CliResult refused = train("ewc.json", "refused");
  ASSERT_EQ(refused.code, kExitRegistry) << refused.describe();
  const std::string expected = "`retain fisher --model support-v1 --workspace " + fs::absolute(path("ws")).string() +
                               " --data " + path("old.jsonl") + "`";
  const size_t at = refused.err.find(expected);
  ASSERT_NE(at, std::string::npos) << refused.err;
  EXPECT_FALSE(fs::exists(dir_ / "ws" / "versions" / "support-v1" / "ewc.safetensors"));

  // The command as printed (its words have no spaces here), without "retain".
  std::istringstream words(expected.substr(8, expected.size() - 9));
  std::vector<std::string> args;
  for (std::string w; words >> w;) args.push_back(w);
  args.insert(args.end(), {"--samples", "8"});
  expect_ok(run(args, "fisher"));
  EXPECT_TRUE(fs::exists(dir_ / "ws" / "versions" / "support-v1" / "ewc.safetensors"));

  const CliResult round = train("ewc.json", "round");
  EXPECT_TRUE(round.code == kExitOk || round.code == kExitRejected) << round.describe();
}

}  // namespace
}  // namespace retain
