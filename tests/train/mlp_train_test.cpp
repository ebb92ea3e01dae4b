// The mlp family through the library's trainer (FeatureTask), with checkpoints and resume, and
// through the CLI: finetune (feature JSONL and IDX), eval, fisher, finetune with EWC, import into
// the registry, and bad feature data refused with the file named.
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <random>
#include <string>

#include "cli_util.h"
#include "retain/distributed.h"
#include "retain/errors.h"
#include "retain/hash.h"
#include "retain/mlp.h"
#include "retain/registry.h"
#include "retain/replay.h"
#include "retain/workspace.h"
#include "test_util.h"

namespace retain {
namespace {

namespace fs = std::filesystem;
using cli_test::read_text;
using cli_test::run_cli;
using cli_test::write_text;
using testing_util::TempDir;

// Two Gaussian blobs in 8 dimensions, centred at ±1 on every axis: linearly separable with margin.
FeatureSet blobs(int64_t n, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  FeatureSet s;
  s.y = torch::randint(0, 2, {n}, gen, torch::kLong);
  s.x = torch::randn({n, 8}, gen) * 0.5 + (s.y.to(torch::kFloat) * 2 - 1).unsqueeze(1);
  return s;
}

void write_jsonl(const fs::path& path, const FeatureSet& s) {
  std::string text;
  for (int64_t i = 0; i < s.size(); ++i) {
    const auto row = s.x[i].contiguous();
    nlohmann::json j = {{"features", std::vector<float>(row.data_ptr<float>(), row.data_ptr<float>() + row.numel())},
                        {"label", s.y[i].item<int64_t>()}};
    text += j.dump() + "\n";
  }
  write_text(path, text);
}

MlpConfig small_config() {
  MlpConfig c;
  c.input_size = 8, c.hidden_sizes = {16}, c.num_classes = 2;
  return c;
}

TEST(MlpTrain, TrainerLearnsAndResumesBitIdentically) {
  TempDir tmp;
  const FeatureSet train_set = blobs(256, 1), valid = blobs(128, 2);
  TrainConfig c;
  c.max_steps = 20, c.batch_size = 32, c.lr = 1e-2, c.log_every = 5, c.checkpoint_every = 10, c.eval_every = 10;
  torch::manual_seed(3);
  MlpClassifier a(small_config());
  FeatureTask task(a, train_set, valid);
  const TrainSummary full = train(task, c, tmp / "full", false);
  ASSERT_TRUE(full.last_valid.has_value());
  EXPECT_GT(full.last_valid->token_accuracy, 0.95);  // accuracy for a classifier
  EXPECT_LT(full.last_valid->loss, 0.3);

  // Stop after the checkpoint at step 10, resume, and end where the uninterrupted run ended.
  torch::manual_seed(3);
  MlpClassifier b(small_config());
  FeatureTask task_b(b, train_set, valid);
  TrainConfig half = c;
  half.max_steps = 20;
  TrainHooks stop;
  stop.on_progress = [](int64_t step, int64_t) {
    if (step == 11) throw TrainingError("stop");
  };
  EXPECT_THROW(train(task_b, half, tmp / "resumed", false, stop), TrainingError);
  torch::manual_seed(99);  // the checkpoint restores the generator
  MlpClassifier b2(small_config());
  FeatureTask task_b2(b2, train_set, valid);
  const TrainSummary resumed = train(task_b2, half, tmp / "resumed", true);
  EXPECT_EQ(resumed.resumed_from_step, 10);
  for (const auto& [name, t] : parameter_tensors(*a)) EXPECT_TRUE(torch::equal(t, parameter_tensors(*b2).at(name))) << name;
}

// An IDX file of unsigned bytes with the given dimensions (uncompressed).
void write_idx(const fs::path& path, const std::vector<int32_t>& dims, const std::vector<uint8_t>& data) {
  std::string bytes = {0, 0, 8, static_cast<char>(dims.size())};
  for (const int32_t d : dims)
    for (int shift = 24; shift >= 0; shift -= 8) bytes += static_cast<char>((d >> shift) & 0xFF);
  bytes.append(data.begin(), data.end());
  write_text(path, bytes);
}

TEST(MlpCli, FinetuneEvalFisherEwcAndImport) {
  TempDir tmp;
  fs::create_directories(tmp.path / "preset");
  write_text(tmp.path / "preset" / "config.json", small_config().to_json().dump());
  write_jsonl(tmp.path / "train.jsonl", blobs(256, 1));
  write_jsonl(tmp.path / "valid.jsonl", blobs(128, 2));
  const auto run = [&](const std::vector<std::string>& args, const std::string& tag) {
    return run_cli(args, tmp.path, tag);
  };
  auto r = run({"finetune", "--model", tmp / "preset", "--train", tmp / "train.jsonl", "--valid", tmp / "valid.jsonl",
                "--out", tmp / "v1", "--run-dir", tmp / "run1", "--max-steps", "30", "--batch-size", "32", "--lr",
                "0.01"}, "finetune");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  EXPECT_TRUE(fs::exists(tmp.path / "run1" / "metrics.jsonl"));
  r = run({"eval", "--model", tmp / "v1", "--test", tmp / "valid.jsonl", "--json"}, "eval");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  const auto metrics = nlohmann::json::parse(r.out);
  EXPECT_GT(metrics["accuracy"].get<double>(), 0.95);
  EXPECT_EQ(metrics["examples"], 128);

  r = run({"fisher", "--model", tmp / "v1", "--data", tmp / "train.jsonl", "--samples", "64"}, "fisher");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  const auto ewc = load_safetensors(tmp / "v1/ewc.safetensors");
  EXPECT_GT(ewc.tensors.at("fisher.layers.0.weight").sum().item<double>(), 0);
  EXPECT_EQ(ewc.metadata.at("num_samples"), "64");
  if (has_gloo_backend()) {  // two workers, each on its batches of 16, all-reduced: the same Fisher
    r = run({"fisher", "--model", tmp / "v1", "--data", tmp / "train.jsonl", "--samples", "64", "--batch-size", "16",
             "--nproc", "2", "--out", tmp / "dp.safetensors"}, "fisher-dp");
    ASSERT_EQ(r.code, kExitOk) << r.describe();
    const auto dp = load_safetensors(tmp / "dp.safetensors");
    for (const auto& [name, t] : ewc.tensors)
      EXPECT_TRUE(torch::allclose(dp.tensors.at(name), t, 1e-5, 1e-9)) << name;
  }

  // A second task on flipped labels: without EWC the first task is forgotten; with a strong
  // penalty the model stays near θ*.
  FeatureSet flipped = blobs(256, 5);
  flipped.y = 1 - flipped.y;
  write_jsonl(tmp.path / "task2.jsonl", flipped);
  r = run({"finetune", "--model", tmp / "v1", "--train", tmp / "task2.jsonl", "--out", tmp / "naive", "--run-dir",
           tmp / "run-naive", "--max-steps", "30", "--batch-size", "32", "--lr", "0.01"}, "naive");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  r = run({"eval", "--model", tmp / "naive", "--test", tmp / "valid.jsonl", "--json"}, "eval-naive");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  EXPECT_LT(nlohmann::json::parse(r.out)["accuracy"].get<double>(), 0.5) << "the flipped task did not interfere";
  r = run({"finetune", "--model", tmp / "v1", "--train", tmp / "task2.jsonl", "--out", tmp / "v2", "--run-dir",
           tmp / "run2", "--max-steps", "30", "--batch-size", "32", "--lr", "0.01", "--ewc-lambda", "1e6"}, "ewc");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  r = run({"eval", "--model", tmp / "v2", "--test", tmp / "valid.jsonl", "--json"}, "eval2");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  EXPECT_GT(nlohmann::json::parse(r.out)["accuracy"].get<double>(), 0.9) << "EWC did not hold the first task";

  // IDX images (N, 2, 4) with their labels: 8 features.
  std::vector<uint8_t> pixels, labels;
  const FeatureSet idx_set = blobs(64, 7);
  for (int64_t i = 0; i < 64; ++i) {
    for (int64_t f = 0; f < 8; ++f)
      pixels.push_back(static_cast<uint8_t>(std::clamp(128 + 40 * idx_set.x[i][f].item<float>(), 0.0f, 255.0f)));
    labels.push_back(static_cast<uint8_t>(idx_set.y[i].item<int64_t>()));
  }
  write_idx(tmp.path / "images.idx", {64, 2, 4}, pixels);
  write_idx(tmp.path / "labels.idx", {64}, labels);
  r = run({"eval", "--model", tmp / "v1", "--test", tmp / "images.idx", "--test-labels", tmp / "labels.idx", "--json"},
          "idx");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  EXPECT_EQ(nlohmann::json::parse(r.out)["examples"], 64);
  r = run({"eval", "--model", tmp / "v1", "--test", tmp / "images.idx"}, "idx-nolabels");
  EXPECT_EQ(r.code, kExitData);
  EXPECT_NE(r.err.find("labels file"), std::string::npos) << r.err;

  // Bad data: the wrong feature count, named with its file; nothing written.
  write_text(tmp.path / "bad.jsonl", "{\"features\": [1, 2, 3], \"label\": 0}\n");
  r = run({"finetune", "--model", tmp / "v1", "--train", tmp / "bad.jsonl", "--out", tmp / "v3", "--run-dir",
           tmp / "run3"}, "bad");
  EXPECT_EQ(r.code, kExitData);
  EXPECT_NE(r.err.find("bad.jsonl: examples have 3 features; the model's input_size is 8"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp.path / "v3"));
  EXPECT_FALSE(fs::exists(tmp.path / "run3"));

  // The registry takes mlp model directories.
  ASSERT_EQ(run({"init", "--workspace", tmp / "ws"}, "init").code, kExitOk);
  r = run({"import", tmp / "v1", "--name", "blobs-v1", "--workspace", tmp / "ws"}, "import");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  EXPECT_TRUE(fs::exists(tmp.path / "ws" / "versions" / "blobs-v1" / "ewc.safetensors"));
  for (const auto& [dir, name] : {std::pair<std::string, std::string>{"naive", "blobs-naive"}, {"v2", "blobs-ewc"}}) {
    r = run({"import", tmp / dir, "--name", name, "--no-promote", "--workspace", tmp / "ws"}, "import-" + name);
    ASSERT_EQ(r.code, kExitOk) << r.describe();
  }

  // The gate on a feature test set, judged on accuracy: the version that forgot the first task
  // is rejected (exit 3), the one EWC held passes, and the scores are stored.
  write_text(tmp.path / "gate.json", nlohmann::json({{"gate", {{"test_sets", {{"blobs", tmp / "valid.jsonl"}}},
                                                                {"metrics", {{"blobs", "accuracy"}}},
                                                                {"min_scores", {{"blobs", 0.9}}},
                                                                {"regression_tolerance", 0.05}}}})
                                         .dump());
  r = run({"gate", "--version", "blobs-naive", "--config", tmp / "gate.json", "--workspace", tmp / "ws"}, "gate-naive");
  EXPECT_EQ(r.code, kExitRejected) << r.describe();
  EXPECT_NE(r.out.find("FAILED"), std::string::npos) << r.out;
  r = run({"gate", "--version", "blobs-ewc", "--config", tmp / "gate.json", "--workspace", tmp / "ws"}, "gate-ewc");
  EXPECT_EQ(r.code, kExitOk) << r.describe();
  Workspace ws = Workspace::open(tmp / "ws");
  Registry registry(ws.db());
  EXPECT_EQ(registry.get("blobs-v1").status, VersionStatus::kProduction);
  const auto stored = registry.score("blobs-ewc", "blobs", "accuracy", "sha256:" + sha256_file_hex(tmp / "valid.jsonl"));
  ASSERT_TRUE(stored.has_value());
  EXPECT_GT(*stored, 0.9);
  // A chat metric on a classifier is refused before anything is measured.
  write_text(tmp.path / "bad-gate.json", nlohmann::json({{"gate", {{"test_sets", {{"blobs", tmp / "valid.jsonl"}}},
                                                                    {"metrics", {{"blobs", "exact_match"}}}}}}).dump());
  r = run({"gate", "--version", "blobs-ewc", "--config", tmp / "bad-gate.json", "--workspace", tmp / "ws"}, "gate-bad");
  EXPECT_EQ(r.code, kExitUsage) << r.describe();
}

// Class-incremental data in 8 dimensions, 4 classes: task A holds classes 0 and 1 (blobs at ±1 on
// dimensions 0–3), task B classes 2 and 3 (blobs at ±1 on dimensions 4–7).
FeatureSet task_data(bool task_b, int64_t n, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  FeatureSet s;
  const auto side = torch::randint(0, 2, {n}, gen, torch::kLong);
  s.y = side + (task_b ? 2 : 0);
  s.x = torch::randn({n, 8}, gen) * 0.4;
  const auto centre = (side.to(torch::kFloat) * 2 - 1).unsqueeze(1);  // (n, 1)
  s.x.slice(1, task_b ? 4 : 0, task_b ? 8 : 4) += centre;
  return s;
}

TEST(MlpRound, NaiveRoundRejectedReplayRoundPromoted) {
  TempDir tmp;
  const auto run = [&](const std::vector<std::string>& args, const std::string& tag) {
    return run_cli(args, tmp.path, tag);
  };
  MlpConfig config = small_config();
  config.num_classes = 4;
  fs::create_directories(tmp.path / "preset");
  write_text(tmp.path / "preset" / "config.json", config.to_json().dump());
  write_jsonl(tmp.path / "a-train.jsonl", task_data(false, 256, 1));
  write_jsonl(tmp.path / "a-test.jsonl", task_data(false, 128, 2));
  write_jsonl(tmp.path / "b-train.jsonl", task_data(true, 256, 3));
  write_jsonl(tmp.path / "b-test.jsonl", task_data(true, 128, 4));
  auto r = run({"finetune", "--model", tmp / "preset", "--train", tmp / "a-train.jsonl", "--out", tmp / "base",
                "--run-dir", tmp / "run-base", "--max-steps", "40", "--batch-size", "32", "--lr", "0.01"}, "base");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  ASSERT_EQ(run({"fisher", "--model", tmp / "base", "--data", tmp / "a-train.jsonl"}, "fisher").code, kExitOk);
  ASSERT_EQ(run({"init", "--workspace", tmp / "ws"}, "init").code, kExitOk);
  r = run({"import", tmp / "base", "--name", "cls-v1", "--replay-data", tmp / "a-train.jsonl", "--workspace", tmp / "ws"},
          "import");
  ASSERT_EQ(r.code, kExitOk) << r.describe();

  const auto round_config = [&](double ratio) {
    return nlohmann::json(
        {{"replay", {{"ratio", ratio}}},
         {"ewc", {{"lambda", 0.0}, {"num_samples", 64}}},
         {"training", {{"max_steps", 60}, {"batch_size", 32}, {"lr", 0.01}, {"threads", 1}}},
         {"gate", {{"test_sets", {{"a", tmp / "a-test.jsonl"}, {"b", tmp / "b-test.jsonl"}}},
                   {"metrics", {{"a", "accuracy"}, {"b", "accuracy"}}},
                   {"min_scores", {{"b", 0.9}}},
                   {"regression_tolerance", 0.05}}}});
  };
  write_text(tmp.path / "naive.json", round_config(0).dump());
  write_text(tmp.path / "replay.json", round_config(0.3).dump());
  r = run({"train", "--config", tmp / "naive.json", "--data", tmp / "b-train.jsonl", "--workspace", tmp / "ws",
           "--json"}, "naive");
  ASSERT_EQ(r.code, kExitRejected) << r.describe();
  const auto naive = nlohmann::json::parse(r.out);
  EXPECT_EQ(naive["status"], "rejected");
  r = run({"train", "--config", tmp / "replay.json", "--data", tmp / "b-train.jsonl", "--workspace", tmp / "ws",
           "--json"}, "replay");
  ASSERT_EQ(r.code, kExitOk) << r.describe();
  const auto replay = nlohmann::json::parse(r.out);
  EXPECT_EQ(replay["status"], "production");
  EXPECT_EQ(replay["mix"]["replay_examples"], 109);  // floor(256 · 0.3 / 0.7)

  Workspace ws = Workspace::open(tmp / "ws");
  Registry registry(ws.db());
  EXPECT_EQ(registry.production()->model_id, replay["model_id"].get<std::string>());
  EXPECT_EQ(ReplayBuffer(ws.db()).size(), 512);  // task A's rows, then task B's committed with the version
  const std::string dir = (tmp.path / "ws" / registry.production()->model_dir).string();
  EXPECT_TRUE(is_mlp_dir(dir));
  EXPECT_TRUE(fs::exists(fs::path(dir) / "ewc.safetensors"));
  std::map<std::string, double> old_scores;
  for (const auto& row : naive["test_sets"]) old_scores[row["test_set"]] = row["candidate_score"];
  for (const auto& row : replay["test_sets"]) {
    if (row["test_set"] == "a") {
      EXPECT_GT(row["candidate_score"].get<double>(), old_scores["a"] + 0.2) << "replay kept task A";
    }
  }
}

}  // namespace
}  // namespace retain
