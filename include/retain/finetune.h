// `retain finetune`: one supervised fine-tuning job from a model directory and chat data to a new
// model directory, with a run folder (job.json, metrics.jsonl, train.log, checkpoints/) for resume.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "retain/eval.h"
#include "retain/lora.h"
#include "retain/trainer.h"

namespace retain {

// The resolved job: where things are, and the training settings. As a job config (JSON) it is
// one object: the path keys below plus every TrainConfig key, all optional; unknown keys are errors.
struct FinetuneJob {
  std::string model;  // preset folder (fresh initialisation) or model directory with weights
  std::string train;  // chat JSONL (gpt family) or feature data (mlp family)
  std::string valid;  // the same, optional
  std::string out;    // model directory to write
  std::string run_dir;  // run folder; "" = <out's parent>/runs/<timestamp>-<out name>
  bool overwrite = false;  // replace an existing `out`
  std::string ewc_state;   // ewc.safetensors for the penalty; "" = <model>/ewc.safetensors
  double ewc_lambda = 0;   // EWC strength λ in λ/2 Σ F (θ − θ*)²; 0 disables the penalty
  // The mlp family reads feature data: train / valid are feature JSONL, or IDX image files whose
  // labels are in these IDX files.
  std::string train_labels, valid_labels;
  LoraConfig lora;  // "lora": train an adapter on the frozen model (rank 0: full fine-tuning)
  TrainConfig training;

  // Reads a job config object; `what` names its source in errors.
  static FinetuneJob from_json(const nlohmann::json& j, const std::string& what);
  nlohmann::json to_json() const;
  static const std::vector<std::string>& keys();
  // The keys that hold paths (resolved against a config file's folder by the CLI).
  static const std::vector<std::string>& path_keys();
};

struct FinetuneHooks {
  TrainHooks train;
  // Called once the run folder exists (after validation), before training starts.
  std::function<void(const std::string& run_dir)> on_run_started;
};

struct FinetuneResult {
  std::string run_dir, out;
  TrainSummary summary;
  std::optional<LossStats> valid;  // final validation, when a valid file was given
};

// Runs the job: validates the data files (DataError with file:line; nothing is written), refuses
// an existing `out` without overwrite (before any work), loads the model, creates the run folder
// with job.json, trains, and writes `out` atomically with a card.json describing the run.
FinetuneResult run_finetune(const FinetuneJob& job, const FinetuneHooks& hooks = {});

// Resumes the run in `run_dir` from its job.json and newest complete checkpoint.
FinetuneResult resume_finetune(const std::string& run_dir, const FinetuneHooks& hooks = {});

}  // namespace retain
