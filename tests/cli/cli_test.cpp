// End-to-end tests of the `retain` executable: each test runs the CLI as a child process in a fresh
// temporary folder and checks exit codes (errors.h), messages, and the files it writes or must not
// write. Training runs are tiny (models/gpt-tiny, fresh init, tens of steps, one thread each).
//
// The resume test kills a run with SIGKILL once it has a checkpoint, resumes it, and requires the
// final weights to be byte-identical to those of an uninterrupted run with the same settings.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "retain/errors.h"

namespace retain {
namespace {

namespace fs = std::filesystem;
using cli_test::CliResult;
using cli_test::read_text;
using cli_test::write_text;
using nlohmann::json;

const fs::path kSource = RETAIN_SOURCE_DIR;
const std::string kPreset = (kSource / "models" / "gpt-tiny").string();
const std::string kTrainFull = (kSource / "data" / "support" / "release1-train.jsonl").string();
const std::string kTestFull = (kSource / "data" / "support" / "release1-test.jsonl").string();

const std::string kBadRole =
    R"({"messages":[{"role":"robot","content":"hi"},{"role":"assistant","content":"hello"}]})";
const std::string kNotJson = R"({"messages":[{"role":"user","content":"hi"},)";

std::vector<json> read_jsonl(const fs::path& path) {
  std::vector<json> out;
  std::istringstream in(read_text(path));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

// Step of the newest checkpoints/step-N folder with a COMPLETE marker; -1 when none. Tolerates
// folders that the running trainer renames or deletes meanwhile.
int64_t newest_complete_checkpoint(const fs::path& run_dir) {
  int64_t newest = -1;
  std::error_code ec;
  for (fs::directory_iterator it(run_dir / "checkpoints", ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind("step-", 0) != 0 || name.find_first_not_of("0123456789", 5) != std::string::npos ||
        name.size() == 5)
      continue;
    if (fs::exists(it->path() / "COMPLETE", ec)) newest = std::max<int64_t>(newest, std::stoll(name.substr(5)));
  }
  return newest;
}

class CliTest : public testing::Test {
 protected:
  void SetUp() override {
    const auto* info = testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("retain_cli_test_" + std::string(info->name()) + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    cli_test::write_head(kTrainFull, dir_ / "small.jsonl", 64);
    cli_test::write_head(kTestFull, dir_ / "small-test.jsonl", 16);
  }
  // A failed test leaves its folder behind for inspection.
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  CliResult run(const std::vector<std::string>& args, const std::string& tag = "cli") const {
    return cli_test::run_cli(args, dir_, tag);
  }
  // `retain finetune` of gpt-tiny on small.jsonl into `out` / `run_dir`, plus `extra` flags.
  CliResult finetune(const std::string& out, const std::string& run_dir, int steps,
                     std::vector<std::string> extra = {}) const {
    std::vector<std::string> args = {"finetune", "--model", kPreset, "--train", path("small.jsonl"),
                                     "--out", path(out), "--run-dir", path(run_dir),
                                     "--max-steps", std::to_string(steps), "--threads", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run(args, "finetune-" + out);
  }
  // `small.jsonl` with line 3 replaced by `bad`.
  std::string bad_file(const std::string& name, const std::string& bad) const {
    std::istringstream in(read_text(dir_ / "small.jsonl"));
    std::string l1, l2, l3, l4;
    std::getline(in, l1), std::getline(in, l2), std::getline(in, l3), std::getline(in, l4);
    write_text(dir_ / name, l1 + "\n" + l2 + "\n" + bad + "\n" + l4 + "\n");
    return path(name);
  }

  fs::path dir_;
};

TEST_F(CliTest, FinetuneLossFallsAndWritesModelAndRun) {
  const auto r = finetune("out", "run", 40, {"--lr", "3e-3", "--log-every", "5", "--seed", "7"});
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  EXPECT_NE(r.out.find("wrote " + path("out")), std::string::npos) << r.out;

  std::vector<json> train;
  for (const auto& rec : read_jsonl(dir_ / "run" / "metrics.jsonl"))
    if (rec.at("type") == "train") train.push_back(rec);
  ASSERT_EQ(train.size(), 8u);  // steps 5, 10, …, 40
  EXPECT_EQ(train.front().at("step"), 5);
  EXPECT_EQ(train.back().at("step"), 40);
  const double first = train.front().at("loss"), last = train.back().at("loss");
  // Observed 3.89 → 3.03 nats (from ln 260 = 5.56 at step 0); half a nat is a clear margin.
  EXPECT_LT(last, first - 0.5) << "loss did not fall: step 5 " << first << ", step 40 " << last;

  for (const char* file : {"config.json", "model.safetensors", "retain_tokenizer.json", "card.json"})
    EXPECT_TRUE(fs::is_regular_file(dir_ / "out" / file)) << file;
  const json card = json::parse(read_text(dir_ / "out" / "card.json"));
  EXPECT_EQ(card.at("steps"), 40);
  EXPECT_EQ(card.at("run_dir"), path("run"));

  const json job = json::parse(read_text(dir_ / "run" / "job.json"));
  EXPECT_EQ(job.at("max_steps"), 40);
  EXPECT_EQ(job.at("seed"), 7);
  EXPECT_DOUBLE_EQ(job.at("lr").get<double>(), 3e-3);
  EXPECT_EQ(job.at("log_every"), 5);
  EXPECT_EQ(job.at("threads"), 1);
  EXPECT_EQ(job.at("batch_size"), 8);  // a default, resolved into the file
  EXPECT_EQ(job.at("model"), kPreset);
  EXPECT_EQ(job.at("out"), path("out"));
  EXPECT_TRUE(fs::is_regular_file(dir_ / "run" / "train.log"));
}

TEST_F(CliTest, EvalPerplexityIsExpLoss) {
  ASSERT_EQ(finetune("out", "run", 10, {"--lr", "3e-3"}).code, kExitOk);
  const auto r = run({"eval", "--model", path("out"), "--test", path("small-test.jsonl"), "--json",
                      "--max-new-tokens", "24"});
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  const json j = json::parse(r.out);
  const double loss = j.at("loss"), ppl = j.at("perplexity");
  EXPECT_GT(loss, 0);
  EXPECT_NEAR(ppl / std::exp(loss), 1.0, 1e-6);
  EXPECT_GE(j.at("token_accuracy").get<double>(), 0);
  EXPECT_LE(j.at("token_accuracy").get<double>(), 1);
  ASSERT_TRUE(j.contains("exact_match")) << j.dump();
  EXPECT_GE(j.at("exact_match").get<double>(), 0);
  EXPECT_LE(j.at("exact_match").get<double>(), 1);
  EXPECT_EQ(j.at("examples"), 16);
  EXPECT_GT(j.at("trained_tokens").get<int64_t>(), 0);
}

TEST_F(CliTest, KilledRunResumesBitIdentical) {
  // Full training set, one thread: slow enough (about 0.1 s a step) to be killed mid-run;
  // the poll below fails clearly if run B ever ends before the kill.
  auto args = [&](const std::string& tag) {
    return std::vector<std::string>{"finetune", "--model", kPreset, "--train", kTrainFull,
                                    "--out", path("out-" + tag), "--run-dir", path("run-" + tag),
                                    "--max-steps", "30", "--checkpoint-every", "5", "--seed", "3",
                                    "--batch-size", "16", "--threads", "1", "--log-every", "1"};
  };
  // A and B run side by side: one core each.
  const auto a = cli_test::spawn_cli(args("a"), dir_, "a");
  const auto b = cli_test::spawn_cli(args("b"), dir_, "b");

  int64_t killed_after = -1;
  std::optional<CliResult> b_early;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (std::chrono::steady_clock::now() < deadline) {
    killed_after = newest_complete_checkpoint(dir_ / "run-b");
    if (killed_after >= 10) {
      ::kill(b.pid, SIGKILL);
      break;
    }
    if ((b_early = cli_test::poll_cli(b))) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (killed_after < 10 && !b_early) ::kill(b.pid, SIGKILL);  // deadline passed
  const CliResult rb = b_early ? *b_early : cli_test::wait_cli(b);
  const CliResult ra = cli_test::wait_cli(a);
  ASSERT_EQ(ra.code, kExitOk) << "run A: " << ra.describe();
  ASSERT_GE(killed_after, 10) << "run B reached no checkpoint ≥ step 10: " << rb.describe();
  ASSERT_EQ(rb.code, 128 + SIGKILL)
      << "run B ended on its own before the kill (newest checkpoint step-" << killed_after
      << "): the run is too fast to interrupt; raise --max-steps. " << rb.describe();
  EXPECT_FALSE(fs::exists(dir_ / "out-b")) << "a killed run must not leave its output directory";

  const auto resumed = run({"finetune", "--resume", path("run-b")}, "resume");
  ASSERT_EQ(resumed.code, kExitOk) << resumed.describe();
  EXPECT_NE(resumed.err.find("resumed from"), std::string::npos) << resumed.err;

  const std::string weights_a = read_text(dir_ / "out-a" / "model.safetensors");
  ASSERT_FALSE(weights_a.empty());
  EXPECT_TRUE(weights_a == read_text(dir_ / "out-b" / "model.safetensors"))
      << "resumed weights differ from the uninterrupted run's (killed after step-" << killed_after << ")";

  // Every record once, and each train loss exactly the uninterrupted run's.
  std::map<int64_t, double> loss_a;
  for (const auto& rec : read_jsonl(dir_ / "run-a" / "metrics.jsonl"))
    if (rec.at("type") == "train") loss_a[rec.at("step")] = rec.at("loss");
  ASSERT_EQ(loss_a.size(), 30u);
  std::set<std::pair<std::string, int64_t>> seen;
  for (const auto& rec : read_jsonl(dir_ / "run-b" / "metrics.jsonl")) {
    const std::string type = rec.at("type");
    const int64_t step = rec.at("step");
    EXPECT_TRUE(seen.insert({type, step}).second) << "duplicated " << type << " record of step " << step;
    if (type == "train") {
      EXPECT_EQ(rec.at("loss").get<double>(), loss_a[step]) << "step " << step;
    }
  }
  EXPECT_EQ(seen.size(), 30u);
}

TEST_F(CliTest, InvalidTrainingDataExitsWithDataCodeAndWritesNothing) {
  for (const auto& [line, rule] : {std::pair{kBadRole, "unknown_role"}, std::pair{kNotJson, "invalid_json"}}) {
    SCOPED_TRACE(rule);
    const std::string bad = bad_file("bad.jsonl", line);
    const auto r = run({"finetune", "--model", kPreset, "--train", bad, "--out", path("out"),
                        "--run-dir", path("run"), "--max-steps", "5", "--threads", "1"});
    EXPECT_EQ(r.code, kExitData) << r.describe();
    EXPECT_NE(r.err.find("bad.jsonl:3"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(rule), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir_ / "out"));
    EXPECT_FALSE(fs::exists(dir_ / "run"));
  }
}

TEST_F(CliTest, DataValidateReportsCountsAndBadLines) {
  const auto good = run({"data", "validate", path("small.jsonl")});
  ASSERT_EQ(good.code, kExitOk) << good.describe();
  EXPECT_NE(good.out.find("64 valid examples"), std::string::npos) << good.out;
  EXPECT_NE(good.out.find("Result: OK"), std::string::npos) << good.out;

  const auto good_json = run({"data", "validate", path("small.jsonl"), "--json"});
  ASSERT_EQ(good_json.code, kExitOk) << good_json.describe();
  const json g = json::parse(good_json.out);
  EXPECT_EQ(g.at("ok"), true);
  EXPECT_EQ(g.at("examples"), 64);
  EXPECT_EQ(g.at("issue_count"), 0);

  const std::string bad = bad_file("bad.jsonl", kBadRole);
  const auto r = run({"data", "validate", bad});
  EXPECT_EQ(r.code, kExitData) << r.describe();
  EXPECT_NE(r.out.find("bad.jsonl:3: unknown_role"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Result: FAILED"), std::string::npos) << r.out;

  const auto bad_json = run({"data", "validate", bad, "--json"});
  EXPECT_EQ(bad_json.code, kExitData) << bad_json.describe();
  const json j = json::parse(bad_json.out);
  EXPECT_EQ(j.at("ok"), false);
  EXPECT_EQ(j.at("examples"), 3);
  ASSERT_EQ(j.at("issue_count"), 1);
  EXPECT_EQ(j.at("issues").at(0).at("file"), bad);
  EXPECT_EQ(j.at("issues").at(0).at("line"), 3);
  EXPECT_EQ(j.at("issues").at(0).at("rule"), "unknown_role");
}

TEST_F(CliTest, UnknownConfigKeyIsNamedWithNearestKey) {
  write_text(dir_ / "job.json", R"({"max_step": 5, "lr": 0.001})");
  const auto r = finetune("out", "run", 5, {"--config", path("job.json")});
  EXPECT_EQ(r.code, kExitUsage) << r.describe();
  EXPECT_NE(r.err.find(path("job.json")), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("unknown key \"max_step\""), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("did you mean \"max_steps\""), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out"));
  EXPECT_FALSE(fs::exists(dir_ / "run"));
}

TEST_F(CliTest, ConfigSyntaxErrorNamesFileAndLine) {
  write_text(dir_ / "job.json", "{\n  \"max_steps\": 5,\n  \"lr\": 0.001,,\n  \"seed\": 1\n}\n");
  const auto r = finetune("out", "run", 5, {"--config", path("job.json")});
  EXPECT_EQ(r.code, kExitUsage) << r.describe();
  EXPECT_NE(r.err.find(path("job.json") + ":3:"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "run"));
}

TEST_F(CliTest, ANumberThatOverflowsIsAUsageErrorWithItsLine) {
  write_text(dir_ / "job.json", "{\n  \"max_steps\": 5,\n  \"lr\": 1e400\n}\n");
  auto r = finetune("out", "run", 5, {"--config", path("job.json")});
  EXPECT_EQ(r.code, kExitUsage) << r.describe();
  EXPECT_NE(r.err.find(path("job.json") + ":3:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("1e400"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("internal error"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "run"));
}

TEST_F(CliTest, DeeplyNestedDataIsRefusedAtParseTimeNotACrash) {
  // 100,000 levels in a chat line's metadata: refused by the reader, with its line, by every command.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const std::string file = bad_file("deep.jsonl", R"({"messages":[{"role":"user","content":"hi"},)"
                                                  R"({"role":"assistant","content":"ok"}],"meta":)" + deep + "}");
  CliResult r = run({"data", "validate", file}, "validate");
  EXPECT_EQ(r.code, kExitData) << r.describe();
  EXPECT_NE(r.out.find("deep.jsonl:3: too_deep"), std::string::npos) << r.out;
  r = run({"finetune", "--model", kPreset, "--train", file, "--out", path("out"), "--run-dir", path("run")}, "train");
  EXPECT_EQ(r.code, kExitData) << r.describe();
  EXPECT_NE(r.err.find("deep.jsonl:3"), std::string::npos) << r.err;
  // And a config file nested that deep.
  write_text(dir_ / "deep.json", "{\"x\": " + deep + "}");
  r = finetune("out", "run", 1, {"--config", path("deep.json")});
  EXPECT_EQ(r.code, kExitUsage) << r.describe();
  EXPECT_NE(r.err.find("nesting deeper than 256"), std::string::npos) << r.err;
}

TEST_F(CliTest, AnOutputFolderThatCannotBeMadeStopsBeforeTraining) {
  write_text(dir_ / "file", "not a folder");
  auto at = [&](const std::string& out, const std::string& run_dir, const std::string& tag) {
    return run({"finetune", "--model", kPreset, "--train", path("small.jsonl"), "--out", path(out), "--run-dir",
                path(run_dir), "--max-steps", "1", "--threads", "1"},
               tag);
  };
  const auto r = at("file/sub/out", "run", "under-a-file");
  EXPECT_EQ(r.code, kExitUsage) << r.describe();
  EXPECT_NE(r.err.find("--out"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("step 1/"), std::string::npos) << "trained before refusing: " << r.err;
  // A missing parent is made.
  const auto ok = at("new/parent/out", "run2", "new-parent");
  EXPECT_EQ(ok.code, kExitOk) << ok.describe();
  EXPECT_TRUE(fs::exists(dir_ / "new" / "parent" / "out" / "model.safetensors"));
}

TEST_F(CliTest, OutOfRangeFlagsAndAnEmptyTestSetAreRefused) {
  ASSERT_EQ(finetune("out", "run", 1).code, kExitOk);
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"generate", "--model", path("out"), "--prompt", "hi", "--temperature", "nan"},
           {"generate", "--model", path("out"), "--prompt", "hi", "--top-k", "-1"},
           {"generate", "--model", path("out"), "--prompt", "hi", "--max-new-tokens", "-1"},
           {"fisher", "--model", path("out"), "--data", path("small.jsonl"), "--samples", "-1"},
           {"buffer", "resize", "18446744073709551616", "--workspace", path("ws")},
           {"finetune", "--model", kPreset, "--train", path("small.jsonl"), "--out", path("x"), "--lr", "inf"},
           {"finetune", "--model", kPreset, "--train", path("small.jsonl"), "--out", path("x"), "--grad-accum",
            "1000000000"}}) {
    const auto r = run(args, "bounds");
    EXPECT_EQ(r.code, kExitUsage) << args[0] << " " << args.back() << ": " << r.describe();
  }
  write_text(dir_ / "empty.jsonl", "");
  const auto r = run({"eval", "--model", path("out"), "--test", path("empty.jsonl")}, "empty");
  EXPECT_EQ(r.code, kExitData) << r.describe();
  EXPECT_NE(r.err.find("no examples"), std::string::npos) << r.err;
}

TEST_F(CliTest, MistypedCommandsAndFlagsGetADidYouMean) {
  CliResult r = run({"trian", "--config", "x.json"}, "trian");
  EXPECT_EQ(r.code, kExitUsage) << r.describe();
  EXPECT_NE(r.err.find("unknown command \"trian\"; did you mean \"train\"?"), std::string::npos) << r.err;
  r = run({"train", "--replay", "0.3", "--config", "x.json"}, "replay");
  EXPECT_EQ(r.code, kExitUsage) << r.describe();
  EXPECT_NE(r.err.find("retain train: unknown flag --replay; did you mean --replay-ratio?"), std::string::npos) << r.err;
  r = run({"registry", "lisst"}, "lisst");
  EXPECT_NE(r.err.find("did you mean \"list\"?"), std::string::npos) << r.err;
  r = run({"finetune", "--max-step", "3"}, "max-step");
  EXPECT_NE(r.err.find("did you mean --max-steps?"), std::string::npos) << r.err;
}

TEST_F(CliTest, Bf16OnCpuIsAUsageError) {
  const auto r = finetune("out", "run", 5, {"--precision", "bf16"});
  EXPECT_EQ(r.code, kExitUsage) << r.describe();
  EXPECT_NE(r.err.find("CUDA"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "run"));
}

TEST_F(CliTest, ExistingOutWithoutOverwriteIsLeftUntouched) {
  fs::create_directories(dir_ / "out");
  write_text(dir_ / "out" / "mine.txt", "keep me");
  const auto r = finetune("out", "run", 5);
  EXPECT_EQ(r.code, kExitUsage) << r.describe();
  EXPECT_NE(r.err.find("--overwrite"), std::string::npos) << r.err;
  EXPECT_EQ(read_text(dir_ / "out" / "mine.txt"), "keep me");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_ / "out"), fs::directory_iterator()), 1);
  EXPECT_FALSE(fs::exists(dir_ / "run"));
}

TEST_F(CliTest, OverwriteReplacesExistingOut) {
  fs::create_directories(dir_ / "out");
  write_text(dir_ / "out" / "mine.txt", "replace me");
  const auto r = finetune("out", "run", 3, {"--overwrite"});
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  EXPECT_FALSE(fs::exists(dir_ / "out" / "mine.txt"));
  EXPECT_TRUE(fs::is_regular_file(dir_ / "out" / "model.safetensors"));
  EXPECT_EQ(json::parse(read_text(dir_ / "out" / "card.json")).at("steps"), 3);
  // No moved-aside or temporary folder is left beside it.
  for (const auto& e : fs::directory_iterator(dir_))
    EXPECT_NE(e.path().filename().string().rfind("out.", 0), 0u) << e.path();
}

TEST_F(CliTest, GenerateFromFinetunedModel) {
  ASSERT_EQ(finetune("out", "run", 5).code, kExitOk);
  const auto r = run({"generate", "--model", path("out"), "--prompt", "hello", "--max-new-tokens", "5"});
  EXPECT_EQ(r.code, kExitOk) << r.describe();
  // Only the reply: 5 tokens are at most 5 special-token names ("<|assistant|>", 13 bytes) + "\n".
  EXPECT_LE(r.out.size(), 5u * 13 + 1) << "more than 5 tokens: " << r.out;
}

TEST_F(CliTest, FinetuneHelpListsFlagsWithDefaults) {
  const auto r = run({"finetune", "--help"});
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  std::istringstream in(r.out);
  std::string line, max_steps;
  while (std::getline(in, line))
    if (line.find("--max-steps") != std::string::npos) max_steps = line;
  ASSERT_FALSE(max_steps.empty()) << r.out;
  // Its type and default, as TypedHelp (flags.cpp) writes them.
  EXPECT_NE(max_steps.find("--max-steps INT"), std::string::npos) << max_steps;
  EXPECT_NE(max_steps.find("[default: 0]"), std::string::npos) << max_steps;
}

}  // namespace
}  // namespace retain
