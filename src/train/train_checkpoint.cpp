// Writing and restoring training checkpoints; metrics.jsonl.
#include "retain/train_checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <sstream>

#include "retain/checkpoint.h"
#include "retain/errors.h"
#include "retain/fileio.h"
#include "retain/trainer.h"

namespace retain {
namespace fs = std::filesystem;

namespace {

constexpr const char* kComplete = "COMPLETE";

// Step number of a "step-N" folder name, or -1.
int64_t step_of(const std::string& name) {
  if (name.rfind("step-", 0) != 0 || name.size() <= 5) return -1;
  const std::string digits = name.substr(5);
  if (!std::all_of(digits.begin(), digits.end(), ::isdigit)) return -1;
  return std::stoll(digits);
}

std::vector<std::pair<int64_t, fs::path>> complete_checkpoints(const std::string& run_dir) {
  std::vector<std::pair<int64_t, fs::path>> out;
  const fs::path dir = fs::path(run_dir) / "checkpoints";
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const int64_t step = step_of(e.path().filename().string());
    if (step >= 0 && e.is_directory() && fs::exists(e.path() / kComplete)) out.emplace_back(step, e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}


}  // namespace

std::string latest_checkpoint(const std::string& run_dir) {
  auto all = complete_checkpoints(run_dir);
  return all.empty() ? "" : all.back().second.string();
}

void save_train_checkpoint(const std::string& run_dir, const TrainerState& state, torch::nn::Module& model,
                           AdamW& optimizer, int64_t keep) {
  const fs::path root = fs::path(run_dir) / "checkpoints";
  const fs::path final_dir = root / ("step-" + std::to_string(state.step));
  const std::string tmp = make_temp_dir_beside(final_dir.string());
  TensorMap rng;
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    rng["cpu"] = gen.get_state();
  }
  // The trained parameters only: a LoRA run's checkpoint holds its adapters, not the frozen base.
  save_safetensors((fs::path(tmp) / "model.safetensors").string(), parameter_tensors(model, /*trainable_only=*/true));
  save_safetensors((fs::path(tmp) / "optimizer.safetensors").string(), optimizer.state());
  save_safetensors((fs::path(tmp) / "rng.safetensors").string(), rng);
  const nlohmann::json meta = {{"format_version", kTrainCheckpointFormat},
                               {"step", state.step},
                               {"micro_batch", state.micro_batch},
                               {"adam_steps", optimizer.steps()},
                               {"skipped_updates", state.skipped_updates},
                               {"nonfinite_run", state.nonfinite_run},
                               {"world_size", state.world_size},
                               {"threads", state.threads}};
  write_file_atomic((fs::path(tmp) / "trainer_state.json").string(), meta.dump(2) + "\n");
  write_file_atomic((fs::path(tmp) / kComplete).string(), "");
  commit_directory(tmp, final_dir.string(), /*replace=*/true);

  // Retention: the newest `keep` complete checkpoints; stale temporary folders of crashed saves.
  auto all = complete_checkpoints(run_dir);
  for (size_t i = 0; i + keep < all.size(); ++i) fs::remove_all(all[i].second);
  for (const auto& e : fs::directory_iterator(root)) {
    const auto name = e.path().filename().string();
    if (name.find(".tmp-") != std::string::npos || name.find(".old-") != std::string::npos)
      fs::remove_all(e.path());
  }
}

TrainerState load_train_checkpoint(const std::string& dir, torch::nn::Module& model, AdamW& optimizer) {
  if (!fs::exists(fs::path(dir) / kComplete))
    throw CheckpointError(dir + ": incomplete checkpoint (no COMPLETE marker); it is never loaded");
  nlohmann::json meta;
  const std::string meta_path = (fs::path(dir) / "trainer_state.json").string();
  try {
    meta = nlohmann::json::parse(read_file(meta_path));
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(meta_path + ": bad JSON: " + e.what());
  }
  if (meta.value("format_version", 0) != kTrainCheckpointFormat)
    throw CheckpointError(meta_path + ": unsupported format_version " + meta.value("format_version", nlohmann::json()).dump());
  TrainerState state;
  try {
    state.step = meta.at("step").get<int64_t>();
    state.micro_batch = meta.at("micro_batch").get<int64_t>();
    state.skipped_updates = meta.at("skipped_updates").get<int64_t>();
    state.nonfinite_run = meta.at("nonfinite_run").get<int64_t>();
    state.world_size = meta.value("world_size", int64_t{1});  // absent before data-parallel runs
    state.threads = meta.value("threads", int64_t{0});        // absent before the default followed the load
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(meta_path + ": " + e.what());
  }

  const std::string weights_path = (fs::path(dir) / "model.safetensors").string();
  load_parameters(model, load_safetensors(weights_path).tensors, weights_path, /*trainable_only=*/true);
  const std::string opt_path = (fs::path(dir) / "optimizer.safetensors").string();
  optimizer.load_state(load_safetensors(opt_path).tensors, meta.at("adam_steps").get<int64_t>(), opt_path);
  auto rng = load_safetensors((fs::path(dir) / "rng.safetensors").string());
  if (rng.tensors.count("cpu")) {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(rng.tensors.at("cpu"));
  }
  return state;
}

MetricsWriter::MetricsWriter(const std::string& path, int64_t keep_through_step) {
  if (keep_through_step >= 0 && fs::exists(path)) {
    std::istringstream in(read_file(path));
    std::string kept, line;
    while (std::getline(in, line)) {
      try {
        if (nlohmann::json::parse(line).value("step", int64_t(0)) <= keep_through_step) kept += line + "\n";
      } catch (const nlohmann::json::exception&) {
        // A torn last line from the killed run: drop it.
      }
    }
    write_file_atomic(path, kept);
  }
  out_.open(path, std::ios::app);
  if (!out_) throw Error("cannot open " + path + " for writing");
}

void MetricsWriter::write(const nlohmann::json& record) {
  out_ << record.dump() << '\n';
  out_.flush();
}

}  // namespace retain
