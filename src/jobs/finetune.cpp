// One fine-tuning job, wired from the data, model, trainer and checkpoint modules.
#include "retain/finetune.h"

#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>

#include "retain/config.h"
#include "retain/data.h"
#include "retain/distributed.h"
#include "retain/errors.h"
#include "retain/ewc.h"
#include "retain/family.h"
#include "retain/fileio.h"
#include "retain/log.h"
#include "retain/lora_model.h"

namespace retain {
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kPathKeys = {"model", "train", "valid", "out", "run_dir", "overwrite", "ewc_state",
                                            "train_labels", "valid_labels"};

// The model of either family with its data: read before anything is written.
struct FamilyJob {
  std::unique_ptr<FamilyModel> model;
  std::unique_ptr<Examples> train, valid;
  std::unique_ptr<TrainTask> task;

  explicit FamilyJob(const FinetuneJob& job) {
    const ModelFamily& family = family_of(job.model);
    if (job.lora.enabled()) lora_layout_of(family, "lora");
    train = family.read_examples(job.model, job.train, job.train_labels);
    if (train->size() == 0) throw DataError(job.train + ": no examples");
    valid = job.valid.empty() ? family.no_examples() : family.read_examples(job.model, job.valid, job.valid_labels);
    TrainableModel loaded = load_trainable_model(job.model, job.training.seed, job.lora, "lora");
    model = std::move(loaded.model);
    if (auto* lora = dynamic_cast<LoraModel*>(model.get())) {
      // The adapter written to `out` finds its base by a path relative to itself.
      const auto base = fs::absolute(loaded.adapter_base).lexically_normal();
      lora->set_base(fs::relative(base, fs::absolute(job.out).lexically_normal()).string(), base.filename().string());
    }
    task = model->task(*train, *valid, job.training.max_seq_len);
  }
  // "model DIR (gpt, N parameters, weights | fresh init) | n train / m valid examples"
  std::string describe(const std::string& dir) const {
    return "model " + dir + " (" + model->describe() + ") | " + std::to_string(train->size()) + " train / " +
           std::to_string(valid->size()) + " valid examples";
  }
};

// The folder `path` will be written in must exist (or be creatable) and take a file, checked
// before any training so that a long job does not fail at its last step (ConfigError naming `flag`).
void check_writable_beside(const std::string& path, const std::string& flag) {
  const fs::path parent = fs::absolute(path).lexically_normal().parent_path();
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) throw ConfigError(flag + " " + path + ": cannot create " + parent.string() + ": " + ec.message());
  try {
    fs::remove_all(make_temp_dir_beside(path));
  } catch (const Error& e) {
    throw ConfigError(flag + " " + path + ": cannot write in " + parent.string() + ": " + e.what());
  }
}

FinetuneResult execute(const FinetuneJob& job, bool resume, const FinetuneHooks& hooks) {
  // 1. Validate everything before writing anything.
  if (job.model.empty() || job.train.empty() || job.out.empty())
    throw ConfigError("finetune needs model, train and out (flags --model, --train, --out or config keys)");
  auto family = std::make_unique<FamilyJob>(job);
  if (!resume && DistEnv::from_env().rank == 0 && fs::exists(job.out) && !job.overwrite)
    throw ConfigError(job.out + ": output directory already exists; pass --overwrite to replace it");
  if (DistEnv::from_env().rank == 0) check_writable_beside(job.out, "--out");
  const torch::Device device = DistEnv::from_env().device_for_rank(job.training.resolved_device());
  family->model->module().to(device);
  // The EWC state (anchor θ*, Fisher F) comes from the base model directory or --ewc-state.
  std::optional<EwcState> ewc;
  if (job.ewc_lambda > 0) {
    const std::string path = !job.ewc_state.empty() ? job.ewc_state : (fs::path(job.model) / kEwcFile).string();
    if (!fs::exists(path))
      throw ConfigError("ewc_lambda " + std::to_string(job.ewc_lambda) + " needs an EWC state, but " + path +
                        " does not exist; run `retain fisher --model " + job.model + " --data FILE` or pass --ewc-state");
    ewc = load_ewc(path, family->model->module());
  }

  // Data parallel when started as one of several workers (torchrun, Slurm, --nproc): rank 0
  // alone writes the run folder and the output.
  const DistEnv env = DistEnv::from_env();
  std::unique_ptr<Collective> collective;
  if (env.distributed()) collective = std::make_unique<Collective>(env, device);
  const bool writer = env.rank == 0;

  // 2. The run folder and its resolved settings.
  if (!resume && writer) {
    fs::create_directories(job.run_dir);
    write_file_atomic((fs::path(job.run_dir) / "job.json").string(), job.to_json().dump(2) + "\n");
  }
  if (hooks.on_run_started && writer) hooks.on_run_started(job.run_dir);
  log()->info("{} {} → {} | {} | run {}", resume ? "resuming" : "fine-tuning", job.train, job.out,
              family->describe(job.model), job.run_dir);

  // 3. Train.
  FinetuneResult result;
  TrainHooks train_hooks = hooks.train;
  train_hooks.collective = collective.get();
  std::optional<EwcPenalty> penalty;
  if (ewc) {
    penalty.emplace(family->model->module(), *ewc, job.ewc_lambda);
    train_hooks.gradient_regularizer = [&penalty] { return penalty->add_gradient(); };
  }
  result.summary = train(*family->task, job.training, job.run_dir, resume, train_hooks);
  if (result.summary.last_valid) {
    const auto& v = *result.summary.last_valid;
    result.valid = LossStats{v.loss, v.perplexity, v.token_accuracy, 0, family->valid->size()};
  }

  // 4. The new model directory, written atomically.
  const nlohmann::json card = {{"created_by", "retain finetune"},
                               {"base_model", job.model},
                               {"run_dir", job.run_dir},
                               {"steps", result.summary.steps},
                               {"skipped_updates", result.summary.skipped_updates},
                               {"train", job.train},
                               {"valid", job.valid},
                               {"training", job.training.to_json()}};
  if (writer) family->model->save(job.out, job.overwrite || resume, card);
  if (collective) collective->barrier();  // every worker ends after the output exists
  result.run_dir = job.run_dir;
  result.out = job.out;
  return result;
}

// "out/" names the folder "out": without the trailing separators, whose parent is the folder
// that holds it (and whose name names the run).
std::string without_trailing_separators(const std::string& path) {
  fs::path p(path);
  while (p.filename().empty() && p.has_relative_path()) p = p.parent_path();
  return p.string();
}

// Beside the output, not in whatever folder the job was started from: <out's parent>/runs/<UTC
// time>-<out's name>.
std::string default_run_dir(const std::string& out) {
  const fs::path o(out);
  return (o.parent_path() / "runs" / (utc_timestamp() + "-" + o.filename().string())).string();
}

}  // namespace

const std::vector<std::string>& FinetuneJob::path_keys() {
  static const std::vector<std::string> k = {"model", "train", "valid", "out", "run_dir", "ewc_state", "train_labels",
                                             "valid_labels"};
  return k;
}

const std::vector<std::string>& FinetuneJob::keys() {
  static const std::vector<std::string> k = [] {
    std::vector<std::string> out = kPathKeys;
    out.push_back("lora");
    out.push_back("ewc_lambda");
    out.insert(out.end(), TrainConfig::keys().begin(), TrainConfig::keys().end());
    return out;
  }();
  return k;
}

FinetuneJob FinetuneJob::from_json(const nlohmann::json& j, const std::string& what) {
  if (!j.is_object()) throw ConfigError(what + ": a job config must be a JSON object");
  reject_unknown_keys(j, keys(), what);
  FinetuneJob job;
  nlohmann::json training = nlohmann::json::object();
  for (const auto& [key, value] : j.items()) {
    if (key == "lora") {
      job.lora = LoraConfig::from_json(value, what);
    } else if (key == "ewc_lambda") {
      if (!value.is_number() || !std::isfinite(value.get<double>()) || value.get<double>() < 0 ||
          value.get<double>() > 1e30)
        throw ConfigError(what + ": \"ewc_lambda\" must be a finite number ≥ 0 (at most 1e30), got " + value.dump());
      job.ewc_lambda = value.get<double>();
    } else if (key == "overwrite") {
      if (!value.is_boolean()) throw ConfigError(what + ": \"overwrite\" must be true or false");
      job.overwrite = value.get<bool>();
    } else if (std::find(kPathKeys.begin(), kPathKeys.end(), key) != kPathKeys.end()) {
      if (!value.is_string()) throw ConfigError(what + ": \"" + key + "\" must be a string (a path)");
      const auto s = value.get<std::string>();
      if (key == "model") job.model = s;
      else if (key == "train") job.train = s;
      else if (key == "valid") job.valid = s;
      else if (key == "out") job.out = s;
      else if (key == "ewc_state") job.ewc_state = s;
      else if (key == "train_labels") job.train_labels = s;
      else if (key == "valid_labels") job.valid_labels = s;
      else job.run_dir = s;
    } else {
      training[key] = value;
    }
  }
  job.training = TrainConfig::from_json(training, what);
  job.out = without_trailing_separators(job.out);
  if (job.run_dir.empty() && !job.out.empty()) job.run_dir = default_run_dir(job.out);
  return job;
}

nlohmann::json FinetuneJob::to_json() const {
  nlohmann::json j = training.to_json();
  j["model"] = model;
  j["train"] = train;
  j["valid"] = valid;
  j["out"] = out;
  j["run_dir"] = run_dir;
  j["overwrite"] = overwrite;
  j["ewc_state"] = ewc_state;
  j["train_labels"] = train_labels;
  j["valid_labels"] = valid_labels;
  j["ewc_lambda"] = ewc_lambda;
  if (lora.enabled()) j["lora"] = lora.to_json();
  return j;
}

FinetuneResult run_finetune(const FinetuneJob& job, const FinetuneHooks& hooks) {
  if (DistEnv::from_env().rank == 0 && fs::exists(fs::path(job.run_dir) / "job.json"))
    throw ConfigError(job.run_dir + ": a run already lives here; resume it with --resume " + job.run_dir +
                      " or choose another --run-dir");
  return execute(job, false, hooks);
}

FinetuneResult resume_finetune(const std::string& run_dir, const FinetuneHooks& hooks) {
  const std::string path = (fs::path(run_dir) / "job.json").string();
  if (!fs::exists(path)) throw CheckpointError(run_dir + ": not a run folder (no job.json)");
  FinetuneJob job = FinetuneJob::from_json(load_json_file(path), path);
  job.run_dir = run_dir;
  return execute(job, true, hooks);
}

}  // namespace retain
