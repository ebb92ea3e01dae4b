// Training checkpoints (runs/<run>/checkpoints/step-N/) and the run's metrics.jsonl.
//
// A checkpoint folder holds model.safetensors (fp32 parameters), optimizer.safetensors (AdamW
// moments by parameter name), rng.safetensors (LibTorch generator states), trainer_state.json
// (step, data position, counters, format_version) and COMPLETE, written last. The folder is
// written under a temporary name and renamed into place, so a crash leaves either no folder or a
// complete one; a folder without COMPLETE is never loaded. Documented in docs/formats.md.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "retain/model.h"
#include "retain/optimizer.h"

namespace retain {

inline constexpr int kTrainCheckpointFormat = 1;

// What, besides weights and moments, a resumed run needs to continue exactly.
struct TrainerState {
  int64_t step = 0;             // optimizer steps done
  int64_t micro_batch = 0;      // next micro-batch of the deterministic stream (data position)
  int64_t skipped_updates = 0;  // non-finite updates skipped so far
  int64_t nonfinite_run = 0;    // current run of consecutive skipped updates
  int64_t world_size = 1;       // data-parallel ranks: the data position counts global batches
  int64_t threads = 0;          // CPU threads the run trained with (a resume keeps them: CPU
                                // reductions sum in another order with another count); 0: unknown
};

// Writes checkpoints/step-<state.step>/ atomically, then deletes all but the newest `keep`
// complete checkpoints and any stale temporary folders.
void save_train_checkpoint(const std::string& run_dir, const TrainerState& state, torch::nn::Module& model,
                           AdamW& optimizer, int64_t keep);

// Restores model, optimizer and RNG from a complete checkpoint folder; returns the state.
// Throws CheckpointError naming the folder and the problem.
TrainerState load_train_checkpoint(const std::string& checkpoint_dir, torch::nn::Module& model, AdamW& optimizer);

// Appends one JSON object per line to metrics.jsonl, flushed at once. Opened with
// `keep_through_step` ≥ 0 (a resume), it first drops records of later steps — written after the
// checkpoint the run resumes from — so the file reads as one uninterrupted run.
class MetricsWriter {
 public:
  MetricsWriter(const std::string& path, int64_t keep_through_step);
  void write(const nlohmann::json& record);

 private:
  std::ofstream out_;
};

}  // namespace retain
