// A round's model (see RoundModel in pipeline_internal.h): the base of any family with the mix,
// and its Fisher (ewc.safetensors), which a round with EWC requires.
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <sstream>

#include "retain/errors.h"
#include "retain/ewc.h"
#include "retain/lora_model.h"
#include "pipeline_internal.h"

namespace retain::detail {

namespace fs = std::filesystem;

namespace {

// `s` as one word of a POSIX shell command line.
std::string shell_word(const std::string& s) {
  const bool plain = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::string("_./:=@%+-").find(c) != std::string::npos;
  });
  if (plain) return s;
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The data a version was trained on, when the registry names a file that is still there: a round's
// new data, or a file an import registered as replay data. "" when none.
std::string training_data_of(const VersionRecord& v) {
  std::vector<std::string> candidates;
  if (v.data_files.is_object() && v.data_files.contains("new_data") && v.data_files["new_data"].is_string())
    candidates.push_back(v.data_files["new_data"].get<std::string>());
  if (v.data_hashes.is_object())
    for (const auto& [file, hash] : v.data_hashes.items())
      if (fs::path(file).extension() == ".jsonl") candidates.push_back(file);
  std::error_code ec;
  for (const auto& file : candidates)
    if (fs::is_regular_file(file, ec)) return fs::absolute(file, ec).string();
  return "";
}

}  // namespace

void require_base_fisher(const std::string& workspace_dir, const VersionRecord& base, double lambda) {
  if (lambda <= 0 || fs::exists(fs::path(workspace_dir) / base.model_dir / kEwcFile)) return;
  const std::string data = training_data_of(base);
  std::ostringstream l;
  l << lambda;
  throw RegistryError("ewc.lambda is " + l.str() + " but version " + base.model_id + " has no Fisher (" +
                      (fs::path(base.model_dir) / kEwcFile).string() + "); write it with `retain fisher --model " +
                      shell_word(base.model_id) + " --workspace " + shell_word(fs::absolute(workspace_dir).string()) + " --data " +
                      (data.empty() ? "FILE" : shell_word(data)) + "`" +
                      (data.empty() ? " (FILE: the data " + base.model_id + " was trained on)" : "") +
                      ", or set ewc.lambda to 0");
}

void RoundModel::set_mix(const Examples& fresh, const Examples& replayed, int64_t max_seq_len) {
  mix = family->join(fresh, replayed);
  strata.assign(fresh.size(), 0);
  strata.insert(strata.end(), replayed.size(), 1);
  no_valid = family->no_examples();
  task = model->task(*mix, *no_valid, max_seq_len);
}

std::unique_ptr<RoundModel> load_round_model(const std::string& dir, uint64_t seed, const LoraConfig& lora) {
  TrainableModel loaded = load_trainable_model(dir, seed, lora, "the round's lora section");
  auto round = std::make_unique<RoundModel>();
  round->family = loaded.family;
  round->model = std::move(loaded.model);
  return round;
}

RoundInputs load_round_inputs(const std::string& base_dir, const std::string& run_dir, const RoundConfig& config,
                              const Examples& fresh, torch::Device device) {
  RoundInputs in;
  in.base_dir = base_dir;
  in.run_dir = run_dir;
  in.device = device;
  in.model = load_round_model(base_dir, config.training.seed, config.lora);
  const auto replayed = in.model->family->read_examples(base_dir, (fs::path(run_dir) / kReplayFile).string());
  in.model->set_mix(fresh, *replayed, config.training.max_seq_len);
  in.model->module().to(device);
  const fs::path ewc = fs::path(base_dir) / kEwcFile;
  if (fs::exists(ewc)) in.base_ewc = load_ewc(ewc.string(), in.model->module());
  return in;
}

}  // namespace retain::detail
