// The continual round end to end through the `retain` executable: the pass path (registered,
// promoted, buffer updated), the fail path (rejected, nothing else changes), a SIGKILL at every
// phase (the workspace stays consistent and the next round works), --resume after a kill during
// training, the workspace lock, bad data, `retain gate`, and the shape of the --json output.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "retain/distributed.h"
#include "retain/errors.h"
#include "retain/model.h"
#include "retain/registry.h"
#include "retain/replay.h"
#include "retain/workspace.h"

namespace retain {
namespace {

namespace fs = std::filesystem;
using cli_test::CliResult;
using cli_test::read_text;
using cli_test::write_text;
using nlohmann::json;

const fs::path kSource = RETAIN_SOURCE_DIR;
const fs::path kData = kSource / "data" / "support";

// What a test checks the workspace against: the production version, the registered ids, and
// the buffer (size, staged rows).
struct Snapshot {
  std::string production;
  std::vector<std::string> versions;
  int64_t buffer_size = 0, staged = 0;
  bool operator==(const Snapshot& o) const {
    return production == o.production && versions == o.versions && buffer_size == o.buffer_size && staged == o.staged;
  }
};

class RoundCliTest : public testing::Test {
 protected:
  void SetUp() override {
    const auto* info = testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("retain_round_test_" + std::string(info->name()) + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    cli_test::write_head(kData / "release1-train.jsonl", dir_ / "old.jsonl", 40);
    cli_test::write_head(kData / "release2-train.jsonl", dir_ / "new.jsonl", 24);
    cli_test::write_head(kData / "release1-test.jsonl", dir_ / "old-test.jsonl", 8);
    cli_test::write_head(kData / "release2-test.jsonl", dir_ / "new-test.jsonl", 8);
    // A base version: gpt-tiny with seeded random weights and its Fisher on the old data.
    auto base = load_model_dir((kSource / "models" / "gpt-tiny").string(), 7);
    save_model_dir(path("base"), base.config, base.model, *base.tokenizer, false);
    expect_ok(run({"fisher", "--model", path("base"), "--data", path("old.jsonl"), "--samples", "16"}, "fisher"));
    expect_ok(run({"init", "--workspace", path("ws")}, "init"));
    expect_ok(run({"import", path("base"), "--name", "support-v1", "--workspace", path("ws"), "--replay-data",
                   path("old.jsonl")},
                  "import"));
    write_config("pass.json", 1e9);  // a gate nothing fails
    write_config("fail.json", 0.0);  // old-set loss must not exceed 0: always rejected
  }
  void TearDown() override {
    ::unsetenv("RETAIN_FAULT_AT");
    if (!HasFailure()) fs::remove_all(dir_);
  }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  CliResult run(const std::vector<std::string>& args, const std::string& tag) const {
    return cli_test::run_cli(args, dir_, tag);
  }
  static void expect_ok(const CliResult& r) { ASSERT_EQ(r.code, kExitOk) << r.describe(); }

  void write_config(const std::string& name, double old_max_loss) const {
    json c = {{"replay", {{"ratio", 0.3}}},
              {"ewc", {{"lambda", 10.0}, {"num_samples", 16}}},
              {"training", {{"max_steps", 4}, {"batch_size", 4}, {"threads", 1}, {"checkpoint_every", 2}, {"lr", 1e-3}}},
              {"gate", {{"test_sets", {{"old", path("old-test.jsonl")}, {"new", path("new-test.jsonl")}}},
                        {"metrics", {{"old", "loss"}, {"new", "loss"}}},
                        {"min_scores", {{"old", old_max_loss}}},
                        {"regression_tolerance", 1e9}}}};
    write_text(dir_ / name, c.dump(2));
  }

  CliResult train(const std::string& config, std::vector<std::string> extra = {}, const std::string& tag = "train") const {
    std::vector<std::string> args = {"train", "--config", path(config), "--data", path("new.jsonl"),
                                     "--workspace", path("ws"), "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run(args, tag);
  }

  Snapshot snapshot() const {
    Workspace ws = Workspace::open(path("ws"));
    Registry registry(ws.db());
    ReplayBuffer buffer(ws.db());
    Snapshot s;
    if (auto p = registry.production()) s.production = p->model_id;
    for (const auto& v : registry.list()) s.versions.push_back(v.model_id + ":" + status_name(v.status));
    s.buffer_size = buffer.size();
    s.staged = buffer.stats(0).staged;
    return s;
  }

  // Folders in versions/ (registered or not).
  std::vector<std::string> version_folders() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_ / "ws" / "versions")) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }

  fs::path dir_;
};

TEST_F(RoundCliTest, PassingRoundIsRegisteredPromotedAndAddsItsExamples) {
  const Snapshot before = snapshot();
  EXPECT_EQ(before.production, "support-v1");
  EXPECT_EQ(before.buffer_size, 40);
  const CliResult r = train("pass.json");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  const json j = json::parse(r.out);
  EXPECT_EQ(j.at("model_id"), "support-v2");
  EXPECT_EQ(j.at("version"), 2);
  EXPECT_EQ(j.at("status"), "production");
  EXPECT_EQ(j.at("base_model_id"), "support-v1");
  EXPECT_EQ(j.at("passed"), true);
  EXPECT_EQ(j.at("mix").at("new_examples"), 24);
  EXPECT_EQ(j.at("mix").at("replay_examples"), 10);  // floor(24 · 0.3 / 0.7)
  EXPECT_EQ(j.at("training").at("steps"), 4);
  EXPECT_GT(j.at("training").at("tokens_per_s").get<double>(), 0);
  ASSERT_EQ(j.at("test_sets").size(), 2u);
  for (const auto& t : j.at("test_sets")) {
    for (const char* key : {"test_set", "metric", "base", "candidate_score", "delta", "production", "passed", "candidate"})
      EXPECT_TRUE(t.contains(key)) << key;
    EXPECT_NEAR(t.at("delta").get<double>(), t.at("candidate_score").get<double>() - t.at("base").get<double>(), 1e-12);
  }

  const Snapshot after = snapshot();
  EXPECT_EQ(after.production, "support-v2");
  EXPECT_EQ(after.versions, (std::vector<std::string>{"support-v1:retired", "support-v2:production"}));
  EXPECT_EQ(after.buffer_size, 64);  // the 24 new examples joined the buffer
  EXPECT_EQ(after.staged, 0);
  const fs::path v2 = dir_ / "ws" / "versions" / "support-v2";
  EXPECT_TRUE(fs::exists(v2 / "model.safetensors"));
  EXPECT_TRUE(fs::exists(v2 / "ewc.safetensors"));

  // The registry holds the scores, gate, settings and data hashes; lineage reaches the base.
  Workspace ws = Workspace::open(path("ws"));
  Registry registry(ws.db());
  const auto rec = registry.get("support-v2");
  EXPECT_EQ(rec.parent_model_id, "support-v1");
  EXPECT_EQ(rec.gate.at("passed"), true);
  EXPECT_EQ(rec.settings.at("replay").at("ratio"), 0.3);
  EXPECT_TRUE(rec.data_hashes.contains("new_data"));
  // Each data file by name beside its hash, in `registry show` too.
  EXPECT_EQ(rec.data_files.at("new_data"), path("new.jsonl"));
  EXPECT_EQ(rec.data_files.at("test_set:old"), path("old-test.jsonl"));
  const CliResult show = run({"registry", "show", "support-v2", "--workspace", path("ws")}, "show");
  EXPECT_NE(show.out.find("test_set:old"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find(path("old-test.jsonl") + "  " + rec.data_hashes.at("test_set:old").get<std::string>()),
            std::string::npos) << show.out;
  EXPECT_GE(rec.scores.size(), 6u);  // loss, perplexity, token_accuracy per test set
  EXPECT_EQ(registry.lineage("support-v2").size(), 2u);
  // The base's scores were measured once and stored.
  EXPECT_TRUE(registry.score("support-v1", "old", "loss", rec.data_hashes.at("test_set:old").get<std::string>()));

  // A second round builds on the first: online EWC, version 3.
  const CliResult r2 = train("pass.json", {}, "train2");
  ASSERT_EQ(r2.code, kExitOk) << r2.describe();
  EXPECT_EQ(json::parse(r2.out).at("model_id"), "support-v3");
  EXPECT_EQ(json::parse(r2.out).at("base_model_id"), "support-v2");
}

TEST_F(RoundCliTest, RejectedRoundChangesNothingButTheRegistryRecord) {
  const Snapshot before = snapshot();
  const CliResult r = train("fail.json");
  ASSERT_EQ(r.code, kExitRejected) << r.describe();
  const json j = json::parse(r.out);
  EXPECT_EQ(j.at("status"), "rejected");
  ASSERT_EQ(j.at("gate").at("failures").size(), 1u);
  EXPECT_EQ(j.at("gate").at("failures").at(0).at("kind"), "below_min");
  EXPECT_EQ(j.at("gate").at("failures").at(0).at("test_set"), "old");

  const Snapshot after = snapshot();
  EXPECT_EQ(after.production, before.production);
  EXPECT_EQ(after.buffer_size, before.buffer_size);
  EXPECT_EQ(after.staged, 0);
  EXPECT_EQ(after.versions, (std::vector<std::string>{"support-v1:production", "support-v2:rejected"}));
  Workspace ws = Workspace::open(path("ws"));
  Registry registry(ws.db());
  EXPECT_EQ(registry.get("support-v2").gate.at("failures").at(0).at("kind"), "below_min");
  EXPECT_EQ(registry.run(registry.get("support-v2").run_id)->at("status"), "rejected");

  // The human summary names the failure.
  const CliResult text = run({"train", "--config", path("fail.json"), "--data", path("new.jsonl"), "--workspace",
                              path("ws")},
                             "train-text");
  EXPECT_EQ(text.code, kExitRejected);
  EXPECT_NE(text.out.find("REJECTED"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("above the maximum"), std::string::npos) << text.out;
}

TEST_F(RoundCliTest, NoPromoteLeavesAPassingCandidate) {
  const CliResult r = train("pass.json", {"--no-promote"});
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  EXPECT_EQ(json::parse(r.out).at("status"), "candidate");
  const Snapshot s = snapshot();
  EXPECT_EQ(s.production, "support-v1");
  EXPECT_EQ(s.buffer_size, 40);
  EXPECT_EQ(s.staged, 0);
}

TEST_F(RoundCliTest, KillAtEveryPhaseLeavesTheWorkspaceAsBefore) {
  const Snapshot before = snapshot();
  for (const char* phase :
       {"staged", "training", "trained", "evaluated", "version_partial", "version_written", "registering"}) {
    ::setenv("RETAIN_FAULT_AT", phase, 1);
    const CliResult r = train("pass.json", {}, std::string("kill-") + phase);
    ::unsetenv("RETAIN_FAULT_AT");
    ASSERT_EQ(r.code, 128 + SIGKILL) << phase << ": " << r.describe();
    Snapshot s = snapshot();
    // Staged rows of the killed run may remain until the next round cleans them; the buffer and
    // the registry are exactly as before.
    s.staged = 0;
    EXPECT_EQ(s, before) << phase;
  }
  // The next round cleans up what the kills left and passes; numbers reserved by killed rounds
  // are never reused.
  const CliResult r = train("pass.json", {}, "after-kills");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  const json j = json::parse(r.out);
  EXPECT_EQ(j.at("status"), "production");
  EXPECT_EQ(j.at("version"), 9);  // 1 import + 7 killed rounds
  const Snapshot after = snapshot();
  EXPECT_EQ(after.production, j.at("model_id").get<std::string>());
  EXPECT_EQ(after.staged, 0);
  EXPECT_EQ(after.buffer_size, 64);
  EXPECT_EQ(version_folders(), (std::vector<std::string>{"support-v1", "support-v9"}));
  Workspace ws = Workspace::open(path("ws"));
  Registry registry(ws.db());
  int interrupted = 0;
  for (const auto& e : fs::directory_iterator(dir_ / "ws" / "runs")) {
    const auto run = registry.run(e.path().filename().string());
    if (run && run->at("status") == "interrupted") ++interrupted;
  }
  EXPECT_EQ(interrupted, 7);
}

TEST_F(RoundCliTest, ResumeAfterAKillDuringTrainingFinishesTheRound) {
  ::setenv("RETAIN_FAULT_AT", "training", 1);
  const CliResult killed = train("pass.json", {}, "killed");
  ::unsetenv("RETAIN_FAULT_AT");
  ASSERT_EQ(killed.code, 128 + SIGKILL) << killed.describe();
  std::string run_id;
  for (const auto& e : fs::directory_iterator(dir_ / "ws" / "runs")) run_id = e.path().filename().string();
  ASSERT_FALSE(run_id.empty());
  EXPECT_TRUE(fs::exists(dir_ / "ws" / "runs" / run_id / "checkpoints" / "step-2" / "COMPLETE"));

  const CliResult resumed = run({"train", "--resume", run_id, "--workspace", path("ws"), "--json"}, "resumed");
  ASSERT_EQ(resumed.code, kExitOk) << resumed.describe();
  const json j = json::parse(resumed.out);
  EXPECT_EQ(j.at("model_id"), "support-v2");
  EXPECT_EQ(j.at("training").at("resumed_from_step"), 2);
  EXPECT_EQ(j.at("status"), "production");
  EXPECT_EQ(snapshot().buffer_size, 64);

  // A finished run cannot be resumed again.
  const CliResult again = run({"train", "--resume", run_id, "--workspace", path("ws")}, "again");
  EXPECT_EQ(again.code, kExitRegistry) << again.describe();
  EXPECT_NE(again.err.find("already finished"), std::string::npos) << again.err;
}

TEST_F(RoundCliTest, ASecondRoundFailsClearlyOnTheWorkspaceLock) {
  WorkspaceLock held = WorkspaceLock::acquire(path("ws"), "test holder", 0);
  const Snapshot before = snapshot();
  const CliResult r = train("pass.json");
  EXPECT_EQ(r.code, kExitRegistry) << r.describe();
  EXPECT_NE(r.err.find("locked by pid"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("test holder"), std::string::npos) << r.err;
  EXPECT_EQ(snapshot(), before);
}

TEST_F(RoundCliTest, BadNewDataStopsBeforeAnyChange) {
  write_text(dir_ / "bad.jsonl", read_text(dir_ / "new.jsonl") + "{\"messages\": [{\"role\": \"robot\"}]}\n");
  const Snapshot before = snapshot();
  const CliResult r = run({"train", "--config", path("pass.json"), "--data", path("bad.jsonl"), "--workspace",
                           path("ws")},
                          "bad");
  EXPECT_EQ(r.code, kExitData) << r.describe();
  EXPECT_NE(r.err.find("bad.jsonl:25"), std::string::npos) << r.err;
  EXPECT_EQ(snapshot(), before);
  EXPECT_TRUE(!fs::exists(dir_ / "ws" / "runs") || fs::is_empty(dir_ / "ws" / "runs"));
}

TEST_F(RoundCliTest, UnknownConfigKeyAndBadOverrideAreUsageErrors) {
  json c = json::parse(read_text(dir_ / "pass.json"));
  c["replay"]["ratoi"] = 0.5;
  write_text(dir_ / "typo.json", c.dump());
  CliResult r = train("typo.json");
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_NE(r.err.find("did you mean \"ratio\""), std::string::npos) << r.err;
  r = train("pass.json", {"--replay-ratio", "1.5"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_NE(r.err.find("replay.ratio must be in [0, 1)"), std::string::npos) << r.err;
}

TEST_F(RoundCliTest, GateCommandRejudgesAVersionAgainstProduction) {
  ASSERT_EQ(train("pass.json", {"--no-promote"}).code, kExitOk);
  CliResult r = run({"gate", "--version", "support-v2", "--config", path("pass.json"), "--workspace", path("ws"),
                     "--json"},
                    "gate-pass");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  json j = json::parse(r.out);
  EXPECT_EQ(j.at("production_model_id"), "support-v1");
  EXPECT_TRUE(j.at("candidate").contains("old"));
  EXPECT_TRUE(j.at("production").contains("new"));
  r = run({"gate", "--version", "support-v2", "--config", path("fail.json"), "--workspace", path("ws"), "--json"},
          "gate-fail");
  EXPECT_EQ(r.code, kExitRejected) << r.describe();
  Workspace ws = Workspace::open(path("ws"));
  EXPECT_EQ(Registry(ws.db()).get("support-v2").gate.at("passed"), false);  // the new result is stored
}

}  // namespace
}  // namespace retain

namespace retain {
namespace {

TEST_F(RoundCliTest, ReplayRatioAutoRegistersEveryAttempt) {
  // The fail config misses a minimum (never a regression): 0.3, then 0.2, then it stops.
  const CliResult r = train("fail.json", {"--replay-ratio", "auto"});
  ASSERT_EQ(r.code, kExitRejected) << r.describe();
  const json j = json::parse(r.out);
  ASSERT_EQ(j.at("attempts").size(), 2u);
  EXPECT_EQ(j.at("attempts").at(0).at("mix").at("replay_examples"), 10);  // 24 new at 0.3
  EXPECT_EQ(j.at("attempts").at(1).at("mix").at("replay_examples"), 6);   // 24 new at 0.2
  EXPECT_EQ(j.at("model_id"), "support-v3");
  const Snapshot s = snapshot();
  EXPECT_EQ(s.versions, (std::vector<std::string>{"support-v1:production", "support-v2:rejected", "support-v3:rejected"}));
  EXPECT_EQ(s.buffer_size, 40);

  // With a gate it passes at once: one attempt, promoted.
  const CliResult pass = train("pass.json", {"--replay-ratio", "auto"}, "auto-pass");
  ASSERT_EQ(pass.code, kExitOk) << pass.describe();
  EXPECT_FALSE(json::parse(pass.out).contains("attempts"));
  EXPECT_EQ(json::parse(pass.out).at("status"), "production");
}

TEST_F(RoundCliTest, SweepRunsTheGridInAScratchCopy) {
  const Snapshot before = snapshot();
  const CliResult r = run({"sweep", "--config", path("pass.json"), "--data", path("new.jsonl"), "--workspace",
                           path("ws"), "--lambda", "0,10", "--replay-ratio", "0,0.3", "--out", path("sweep"),
                           "--plot", path("plot.svg"), "--json"},
                          "sweep");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  const json j = json::parse(r.out);
  ASSERT_EQ(j.at("points").size(), 4u);
  EXPECT_EQ(j.at("points").at(1).at("lambda"), 0.0);
  EXPECT_EQ(j.at("points").at(1).at("replay_ratio"), 0.3);
  EXPECT_EQ(j.at("points").at(3).at("lambda"), 10.0);
  int pareto = 0;
  for (const auto& p : j.at("points")) {
    EXPECT_EQ(p.at("status"), "candidate");
    for (const char* key : {"old_score", "new_score", "model_id", "failures", "seconds"}) EXPECT_TRUE(p.contains(key)) << key;
    pareto += p.at("pareto").get<bool>();
  }
  EXPECT_GE(pareto, 1);
  EXPECT_EQ(j.at("old_metric"), "loss");
  EXPECT_TRUE(j.at("old_set") == "old" || j.at("old_set") == "new");
  EXPECT_NE(j.at("old_set"), j.at("new_set"));
  // Results written, scratch workspace gone, the real workspace untouched.
  EXPECT_EQ(json::parse(read_text(dir_ / "sweep" / "sweep.json")), j);
  const std::string svg = read_text(dir_ / "plot.svg");
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_EQ(std::count(svg.begin(), svg.end(), '<') - std::count(svg.begin(), svg.end(), '>'), 0);
  EXPECT_FALSE(fs::exists(dir_ / "sweep" / "workspace"));
  EXPECT_EQ(snapshot(), before);
  EXPECT_EQ(version_folders(), (std::vector<std::string>{"support-v1"}));
}

TEST_F(RoundCliTest, SweepTakesTheTrainingFlagsOfTrain) {
  CliResult r = run({"sweep", "--config", path("pass.json"), "--data", path("new.jsonl"), "--workspace", path("ws"),
                     "--lambda", "0", "--replay-ratio", "0", "--out", path("sweep"), "--keep-workspace",
                     "--max-steps", "1", "--lr", "0.0005", "--replay-strategy", "uniform", "--json"},
                    "sweep-flags");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  const json point = json::parse(r.out).at("points").at(0);
  {
    Workspace scratch = Workspace::open(path("sweep/workspace"));
    const json settings = Registry(scratch.db()).get(point.at("model_id")).settings;
    EXPECT_EQ(settings.at("training").at("max_steps"), 1) << settings;
    EXPECT_EQ(settings.at("training").at("lr"), 0.0005) << settings;
    EXPECT_EQ(settings.at("replay").at("strategy"), "uniform") << settings;
  }
  // Checked like train's: a bad value names the flag; the sweep's own lists keep their flags.
  r = run({"sweep", "--config", path("pass.json"), "--data", path("new.jsonl"), "--workspace", path("ws"),
           "--lambda", "0", "--replay-ratio", "0", "--max-steps", "-1"},
          "sweep-bad");
  EXPECT_EQ(r.code, kExitUsage) << r.describe();
  EXPECT_NE(r.err.find("error: --max-steps: \"max_steps\" must be"), std::string::npos) << r.err;
  r = run({"sweep", "--config", path("pass.json"), "--data", path("new.jsonl"), "--workspace", path("ws"),
           "--lambda", "0", "--replay-ratio", "0", "--set", "training.lrr=1"},
          "sweep-set");
  EXPECT_EQ(r.code, kExitUsage) << r.describe();
  EXPECT_NE(r.err.find("error: --set training.lrr=1: unknown key \"lrr\" (did you mean \"lr\"?)"), std::string::npos)
      << r.err;
  r = run({"sweep", "--config", path("pass.json"), "--data", path("new.jsonl"), "--workspace", path("ws"),
           "--lambda", "0", "--replay-ratio", "0", "--ewc-lambda", "5"},
          "sweep-lambda");
  EXPECT_EQ(r.code, kExitUsage) << r.describe();
}

// The largest relative difference (to each tensor's largest magnitude) between two safetensors
// files' tensors whose names start with `prefix`.
double max_rel_diff(const fs::path& a, const fs::path& b, const std::string& prefix = "") {
  const TensorMap x = load_safetensors(a.string()).tensors, y = load_safetensors(b.string()).tensors;
  EXPECT_EQ(x.size(), y.size());
  double worst = 0;
  for (const auto& [name, t] : x) {
    if (name.rfind(prefix, 0) != 0) continue;
    if (!y.count(name)) return INFINITY;
    worst = std::max(worst, (t - y.at(name)).abs().max().item<double>() / std::max(1e-30, t.abs().max().item<double>()));
  }
  return worst;
}

TEST_F(RoundCliTest, DataParallelRoundEqualsTheSingleProcessRound) {
  if (!has_gloo_backend()) GTEST_SKIP() << "this build has no Gloo backend";
  fs::copy(dir_ / "ws", dir_ / "ws-dp", fs::copy_options::recursive);
  // Fisher batches of 4 over 16 examples: 4 batches, 2 per rank. adam_eps 1e-4 as in the
  // finetune equivalence test (distributed_test.cpp).
  const std::vector<std::string> common = {"--adam-eps", "1e-4", "--set", "ewc.batch_size=4", "--checkpoint-every", "0"};
  std::vector<std::string> one = common, two = common;
  one.insert(one.end(), {"--batch-size", "8"});
  two.insert(two.end(), {"--batch-size", "4", "--nproc", "2"});
  const CliResult single = train("pass.json", one, "single");
  expect_ok(single);
  std::vector<std::string> args = {"train", "--config", path("pass.json"), "--data", path("new.jsonl"),
                                   "--workspace", path("ws-dp"), "--json"};
  args.insert(args.end(), two.begin(), two.end());
  const CliResult dp = run(args, "dp");
  expect_ok(dp);
  EXPECT_EQ(json::parse(single.out)["status"], "production");
  EXPECT_EQ(json::parse(dp.out)["status"], "production");  // rank 0 alone printed
  EXPECT_EQ(json::parse(dp.out)["training"]["steps"], json::parse(single.out)["training"]["steps"]);

  const fs::path a = dir_ / "ws" / "versions" / "support-v2", b = dir_ / "ws-dp" / "versions" / "support-v2";
  EXPECT_LT(max_rel_diff(a / "model.safetensors", b / "model.safetensors"), 1e-5);
  EXPECT_LT(max_rel_diff(a / "ewc.safetensors", b / "ewc.safetensors", "fisher."), 1e-5);
  Snapshot s1 = snapshot();
  fs::rename(dir_ / "ws", dir_ / "ws-single");
  fs::rename(dir_ / "ws-dp", dir_ / "ws");
  EXPECT_EQ(snapshot(), s1);  // the same registry and buffer

  // A rank killed mid-round fails the job; the workspace stays as it was, and the next round
  // cleans up and passes.
  const Snapshot before = snapshot();
  ::setenv("RETAIN_FAULT_AT", "trained", 1);
  const CliResult killed = train("pass.json", {"--batch-size", "4", "--nproc", "2"}, "killed");
  ::unsetenv("RETAIN_FAULT_AT");
  EXPECT_EQ(killed.code, 128 + SIGKILL) << killed.describe();
  Snapshot s = snapshot();
  EXPECT_EQ(s.staged, 24);  // the killed run's staged rows, until the next round cleans them
  s.staged = 0;
  EXPECT_EQ(s, before);
  expect_ok(train("pass.json", {"--batch-size", "4", "--nproc", "2"}, "after"));
  EXPECT_EQ(snapshot().production, "support-v4");
  EXPECT_EQ(snapshot().staged, 0);
  EXPECT_EQ(version_folders(), (std::vector<std::string>{"support-v1", "support-v2", "support-v4"}));
}

}  // namespace
}  // namespace retain
