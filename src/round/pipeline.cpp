// One continual round (see pipeline.h): start or resume, then train → evaluate → gate → register.
#include "retain/pipeline.h"

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <functional>
#include <optional>

#include "retain/batch.h"
#include "retain/config.h"
#include "retain/data.h"
#include "retain/errors.h"
#include "retain/fileio.h"
#include "retain/hash.h"
#include "retain/log.h"
#include "retain/lora_model.h"
#include "retain/registry.h"
#include "retain/text_table.h"
#include "retain/workspace.h"
#include "pipeline_internal.h"

namespace retain {
namespace fs = std::filesystem;

void fault_point(const char* phase) {
  const char* at = std::getenv("RETAIN_FAULT_AT");
  if (at != nullptr && std::string(at) == phase) {
    log()->warn("RETAIN_FAULT_AT={}: killing the process", phase);
    ::raise(SIGKILL);
  }
}

namespace {

using Clock = std::chrono::steady_clock;

using detail::kReplayFile;
using detail::kRoundFile;

// What a round needs to start or resume, as stored in runs/<run_id>/round.json.
struct RoundState {
  RoundConfig config;
  nlohmann::json config_json;
  std::string run_id, model_id, base_model_id, data, data_hash;
  std::string production_at_start;  // production when the round started ("" when none)
  int64_t version = 0;
  bool promote = true;
  bool promote_stale = false;  // this invocation's --promote-stale (not stored: a resume decides anew)
};

nlohmann::json state_json(const RoundState& s) {
  return {{"format_version", 1}, {"run_id", s.run_id},     {"model_id", s.model_id},
          {"version", s.version}, {"base_model_id", s.base_model_id}, {"data", s.data},
          {"data_hash", s.data_hash}, {"promote", s.promote}, {"production_at_start", s.production_at_start},
          {"config", s.config_json}};
}

// The version name stem: the config's name, else the base's id without a trailing -v<digits>.
std::string name_stem(const RoundConfig& config, const std::string& base_id) {
  if (!config.name.empty()) return config.name;
  const auto dash = base_id.rfind("-v");
  if (dash != std::string::npos && dash + 2 < base_id.size() &&
      base_id.find_first_not_of("0123456789", dash + 2) == std::string::npos)
    return base_id.substr(0, dash);
  return base_id;
}

// Leftovers of killed rounds, found under the lock: runs still marked running, staged examples of
// other runs, and version folders the registry does not reference (never complete versions).
void clean_workspace(Workspace& ws, Registry& registry, ReplayBuffer& buffer, const std::string& keep_run) {
  if (const int64_t n = registry.mark_interrupted_runs(keep_run); n > 0)
    log()->warn("{} earlier round(s) did not finish; marked interrupted (resume one with --resume RUN)", n);
  for (const auto& stage : buffer.stages()) {
    if (stage == keep_run) continue;
    const int64_t n = buffer.discard_stage(stage);
    log()->warn("discarded {} staged example(s) of unfinished run {}", n, stage);
  }
  if (!fs::is_directory(ws.versions_dir())) return;
  for (const auto& entry : fs::directory_iterator(ws.versions_dir())) {
    const std::string name = entry.path().filename().string();
    if (registry.find(name)) continue;
    log()->warn("removing {}: no registered version refers to it (left by an interrupted job)", entry.path().string());
    fs::remove_all(entry.path());
  }
}

// The round's new data, read and validated (DataError when there is none).
std::unique_ptr<Examples> read_new_data(const ModelFamily& family, const std::string& base_dir, const std::string& path) {
  auto d = family.read_examples(base_dir, path);
  if (d->size() == 0) throw DataError(path + ": no examples");
  return d;
}

// Stages the new data under the run until its version is promoted (or dropped).
void stage_new_data(ReplayBuffer& buffer, const std::string& run_id, const Examples& data, const AddOptions& options) {
  buffer.stage_rows(run_id, data.replay_rows(), options);
}

VersionRecord base_version(Registry& registry, const std::string& base) {
  if (!base.empty()) return registry.get(base);
  auto production = registry.production();
  if (!production)
    throw RegistryError("the workspace has no production version; import a base with `retain import DIR --name NAME` "
                        "or pass --base ID");
  return *production;
}

}  // namespace

namespace detail {

std::vector<LoadedTestSet> load_test_sets(const GateConfig& gate, const ModelFamily& family, const std::string& model_dir) {
  const auto metrics = family.metrics();
  for (const auto& t : gate.test_sets) {
    if (std::find(metrics.begin(), metrics.end(), t.metric) == metrics.end()) {
      std::string known;
      for (const auto& m : metrics) known += (known.empty() ? "" : ", ") + m;
      throw ConfigError("gate.metrics." + t.name + ": " + t.metric + " is not a metric of the " + family.name() +
                        " family; its test sets are judged on " + known);
    }
  }
  std::vector<LoadedTestSet> out;
  for (const auto& t : gate.test_sets) {
    LoadedTestSet s{&t, family.read_examples(model_dir, t.file), "sha256:" + sha256_file_hex(t.file), metrics};
    if (s.examples->size() == 0) throw DataError(t.file + ": test set \"" + t.name + "\" has no examples");
    out.push_back(std::move(s));
  }
  return out;
}

double metric_value(const Metrics& metrics, const std::string& metric) {
  const auto it = metrics.find(metric);
  if (it == metrics.end()) throw ConfigError("metric " + metric + " is not measured on this test set");
  return it->second;
}

std::vector<Score> to_scores(const LoadedTestSet& t, const Metrics& metrics) {
  std::vector<Score> out;
  for (const auto& [name, value] : metrics)
    if (std::find(t.metrics.begin(), t.metrics.end(), name) != t.metrics.end())
      out.push_back({t.config->name, name, value, t.hash});
  return out;
}

EvalSettings eval_settings(const LoadedTestSet& t, const RoundConfig::Eval& eval) {
  EvalSettings s;
  s.batch_size = eval.batch_size;
  s.max_new_tokens = eval.max_new_tokens;
  s.generate = t.config->metric == "exact_match";  // generation is the slow part: only when judged on it
  s.label = "eval " + t.config->name;
  return s;
}

std::map<std::string, double> stored_or_measured(Registry& registry, const std::string& workspace,
                                                 const std::string& model_id, const std::vector<LoadedTestSet>& sets,
                                                 const RoundConfig::Eval& eval, const std::string& device,
                                                 RoundModel* loaded) {
  std::map<std::string, double> out;
  std::unique_ptr<RoundModel> own;
  for (const auto& t : sets) {
    if (auto s = registry.score(model_id, t.config->name, t.config->metric, t.hash)) {
      out[t.config->name] = *s;
      continue;
    }
    if (loaded == nullptr) {
      own = load_round_model((fs::path(workspace) / registry.get(model_id).model_dir).string(), 0);
      own->module().to(parse_device(device));
      loaded = own.get();
    }
    log()->info("measuring {} on test set {} (no stored score for this data)", model_id, t.config->name);
    const Metrics r = loaded->evaluate(t, eval);
    registry.set_scores(model_id, to_scores(t, r));
    out[t.config->name] = metric_value(r, t.config->metric);
  }
  return out;
}

}  // namespace detail

namespace {

// Runs the round's body; when it throws (a training failure, no space, a bad checkpoint, a bug)
// the run is marked failed with the error, its staged examples are dropped and its checkpoints
// and staged version removed, and the error goes on. A killed round never gets here: the next
// round marks it interrupted, and it can be resumed.
RoundResult marking_failures(Workspace& ws, Registry& registry, ReplayBuffer& buffer, const std::string& run_id,
                             const std::function<RoundResult()>& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    try {
      Transaction txn(ws.db());
      buffer.discard_stage(run_id);
      registry.fail_run(run_id, e.what());
      txn.commit();
      const fs::path run_dir = fs::path(ws.runs_dir()) / run_id;
      std::error_code ec;
      fs::remove_all(run_dir / "checkpoints", ec);
      fs::remove_all(run_dir / "version", ec);
      log()->warn("run {} failed and is marked so; its staged examples and checkpoints are removed", run_id);
    } catch (const std::exception& cleanup) {
      log()->warn("run {} failed, and recording that failed too: {}", run_id, cleanup.what());
    }
    throw;
  }
}

// A LoRA round that saves its adapter (not merged) makes an adapter version.
bool is_adapter_version(const RoundConfig& c) { return c.lora.enabled() && !c.lora.merge; }

// The full version the adapters of `base`'s lineage apply to: its own when it is a LoRA version.
std::string adapter_base_of(const VersionRecord& base) {
  return base.adapter_base_model_id.empty() ? base.model_id : base.adapter_base_model_id;
}

// The scores a candidate is compared with: the base's (for the table) and production's (for the
// gate), measured before training while the model still holds the base's weights.
struct Baselines {
  std::map<std::string, double> base, production;
  std::string production_model_id;  // "" when there is none
};

Baselines measure_baselines(Registry& registry, Workspace& ws, const RoundState& s,
                            const std::vector<detail::LoadedTestSet>& sets, detail::RoundModel& model) {
  const RoundConfig& c = s.config;
  Baselines b;
  b.base = detail::stored_or_measured(registry, ws.dir(), s.base_model_id, sets, c.eval, c.training.device, &model);
  const auto production = registry.production();
  b.production_model_id = production ? production->model_id : "";
  if (production && production->model_id == s.base_model_id) b.production = b.base;
  else if (production)
    b.production = detail::stored_or_measured(registry, ws.dir(), production->model_id, sets, c.eval,
                                              c.training.device, nullptr);
  return b;
}

// Trains the candidate on the mix (stratified batches keep new and replayed examples in
// proportion), from the run's last checkpoint when resuming one that has it.
TrainSummary train_candidate(detail::RoundInputs& in, const RoundState& s, const TrainHooks& user_hooks, bool resume,
                             Collective* collective) {
  const TrainConfig& tc = s.config.training;
  detail::RoundTraining training(*in.model, s.config, in.base_ewc, s.base_model_id, user_hooks, collective);
  const int64_t kill_step = tc.checkpoint_every > 0 ? tc.checkpoint_every + 1 : 1;
  training.hooks.on_progress = [&user_hooks, kill_step](int64_t step, int64_t total) {
    if (step == kill_step) fault_point("training");
    if (user_hooks.on_progress) user_hooks.on_progress(step, total);
  };
  const bool from_checkpoint = resume && !latest_checkpoint(in.run_dir).empty();
  if (collective) {
    collective->publish(detail::kRoundKey, nlohmann::json({{"run_dir", in.run_dir}, {"base_dir", in.base_dir},
                                                           {"from_checkpoint", from_checkpoint}}).dump());
  }
  TrainSummary summary = train(*in.model->task, tc, in.run_dir, from_checkpoint, training.hooks);
  fault_point("trained");
  return summary;
}

// Evaluates the candidate on every test set into result.scores and runs the gate into result.gate;
// returns the scores to store. The other ranks of a data-parallel round learn the verdict.
std::vector<Score> judge(detail::RoundInputs& in, const RoundState& s, const std::vector<detail::LoadedTestSet>& sets,
                         const Baselines& baselines, RoundResult& result, Collective* collective) {
  std::map<std::string, double> candidate;
  std::vector<Score> scores;
  for (const auto& t : sets) {
    TestSetScores row;
    row.name = t.config->name;
    row.metric = t.config->metric;
    row.data_hash = t.hash;
    row.candidate = in.model->evaluate(t, s.config.eval);
    row.base[t.config->metric] = baselines.base.at(t.config->name);
    candidate[t.config->name] = detail::metric_value(row.candidate, t.config->metric);
    for (auto& sc : detail::to_scores(t, row.candidate)) scores.push_back(sc);
    result.scores.push_back(row);
  }
  fault_point("evaluated");
  result.gate = run_gate(s.config.gate, candidate, baselines.production);
  if (collective) collective->agree(result.gate.passed, in.device);  // the others join the Fisher on a pass
  return scores;
}

// Writes the version folder completely before anything refers to it: the model (or its adapter)
// and, for a passing candidate, the consolidated EWC state — the Fisher on the round's mix, online
// with the base's (γ) where both cover the same parameters.
void write_version(Workspace& ws, const RoundState& s, const VersionRecord& base, detail::RoundInputs& in,
                   RoundResult& result, Collective* collective) {
  const RoundConfig& c = s.config;
  const std::string staging = (fs::path(in.run_dir) / "version").string();
  fs::remove_all(staging);
  const nlohmann::json card = {{"created_by", "retain train"}, {"model_id", s.model_id},
                               {"parent_model_id", s.base_model_id}, {"run_id", s.run_id},
                               {"settings", s.config_json}};
  // A LoRA version holds its adapter alone, over the full version the lineage's adapters apply to.
  if (auto* lora = dynamic_cast<LoraModel*>(in.model->model.get()))
    lora->set_base((fs::path("..") / adapter_base_of(base)).string(), adapter_base_of(base));
  in.model->model->save(staging, false, card);
  if (result.gate.passed) {
    fault_point("version_partial");
    const auto tf = Clock::now();
    FisherOptions fo = c.ewc.fisher;
    fo.collective = collective;  // each rank estimates on its share of the mix
    const TensorMap fisher = in.model->fisher(fo);
    // θ* is the version as stored (a bf16 version's rounded weights): save_ewc then need not
    // store it a second time, and the next round starts exactly at its anchor. An adapter
    // version's θ* is its adapter (fp32, stored in the ewc file itself).
    const bool adapter = is_adapter_version(c);
    TensorMap stored = adapter ? lora_parameters(in.model->module())
                               : load_safetensors((fs::path(staging) / kWeightsFile).string()).tensors;
    for (auto& [name, t] : stored) t = t.to(torch::kCPU, torch::kFloat);
    const auto& prev = in.base_ewc;
    const bool same_parameters = prev && prev->fisher.size() == fisher.size() &&
        std::all_of(fisher.begin(), fisher.end(), [&](const auto& f) { return prev->fisher.count(f.first) > 0; });
    if (prev && !same_parameters)
      log()->info("the base's Fisher covers other parameters than {}'s; its Fisher starts afresh", s.model_id);
    EwcState state = consolidate(same_parameters ? &*prev : nullptr, fisher, stored, c.ewc.gamma);
    state.estimator = estimator_name(fo.estimator);
    state.num_samples = std::min<int64_t>(fo.num_samples, in.model->strata.size());
    state.data_hash = s.data_hash;
    save_ewc((fs::path(staging) / kEwcFile).string(), state, c.ewc.bf16, adapter ? nullptr : &stored);
    result.fisher_seconds = std::chrono::duration<double>(Clock::now() - tf).count();
  }
  fs::create_directories(ws.versions_dir());
  commit_directory(staging, (fs::path(ws.versions_dir()) / s.model_id).string(), false);
  fault_point("version_written");
}

// One transaction: register the version (promoted when it passed, promotion was asked for and
// production did not change meanwhile), and move the new examples into the buffer or drop them.
VersionStatus register_version(Workspace& ws, Registry& registry, ReplayBuffer& buffer, const RoundState& s,
                               const VersionRecord& base, const std::vector<detail::LoadedTestSet>& sets,
                               RoundResult& result, std::vector<Score> scores, const std::string& run_dir) {
  VersionRecord record;
  record.model_id = s.model_id;
  record.parent_model_id = s.base_model_id;
  record.version = s.version;
  record.created_at = std::time(nullptr);
  record.run_id = s.run_id;
  record.model_dir = (fs::path("versions") / s.model_id).string();
  if (is_adapter_version(s.config)) record.adapter_base_model_id = adapter_base_of(base);
  record.settings = s.config_json;
  record.data_hashes = {{"new_data", s.data_hash}, {"replay", "sha256:" + sha256_file_hex((fs::path(run_dir) / kReplayFile).string())}};
  record.data_files = {{"new_data", s.data}, {"replay", (fs::path(run_dir) / kReplayFile).string()}};
  for (const auto& t : sets) {
    record.data_hashes["test_set:" + t.config->name] = t.hash;
    record.data_files["test_set:" + t.config->name] = t.config->file;
  }
  record.gate = result.gate.to_json();
  record.scores = std::move(scores);
  Transaction txn(ws.db());
  const auto production_now = registry.production();
  // Promoted only over the production the round started from: a round resumed after other versions
  // were promoted (or one that ran beside them) stays a candidate.
  const std::string now = production_now ? production_now->model_id : "";
  const bool same_production = now == s.production_at_start;
  if (!result.gate.passed) record.status = VersionStatus::kRejected;
  else if (s.promote && (same_production || s.promote_stale)) record.status = VersionStatus::kProduction;
  else record.status = VersionStatus::kCandidate;
  if (result.gate.passed && s.promote && !same_production) {
    const std::string was = s.production_at_start.empty() ? "none" : s.production_at_start;
    result.note = "production changed while the round ran (it started from production " + was + "; now " +
                  (now.empty() ? "none" : now) + ")";
    result.note += s.promote_stale ? ": promoted over it, as --promote-stale asked"
                                   : ": registered as a candidate; `retain registry promote " + s.model_id +
                                         "` or a resume with --promote-stale promotes it";
    log()->warn("{}", result.note);
  }
  registry.add(record);
  if (record.status == VersionStatus::kProduction) buffer.commit_stage(s.run_id);
  else buffer.discard_stage(s.run_id);
  registry.finish_run(s.run_id, record.status == VersionStatus::kProduction ? "promoted" : status_name(record.status),
                      s.model_id);
  fault_point("registering");
  txn.commit();
  return record.status;
}

// Steps 4–7 of a round, shared by run_round and resume_round: load the inputs, measure the
// baselines, train, judge, write the version, register it. With a collective (a data-parallel
// round) this is rank 0: it alone touches the workspace; the other ranks (follow_round) train
// their share, join the sharded Fisher, and wait.
RoundResult finish(Workspace& ws, Registry& registry, ReplayBuffer& buffer, const RoundState& s,
                   const std::vector<detail::LoadedTestSet>& sets, const Examples& fresh, bool resume,
                   const TrainHooks& user_hooks, Clock::time_point t0, Collective* collective) {
  const VersionRecord base = registry.get(s.base_model_id);
  const std::string run_dir = (fs::path(ws.runs_dir()) / s.run_id).string();
  detail::RoundInputs in = detail::load_round_inputs((fs::path(ws.dir()) / base.model_dir).string(), run_dir, s.config,
                                                     fresh, DistEnv::from_env().device_for_rank(s.config.training.resolved_device()));
  RoundResult result;
  result.run_id = s.run_id;
  result.model_id = s.model_id;
  result.version = s.version;
  result.base_model_id = s.base_model_id;
  const auto& strata = in.model->strata;
  result.replay_examples = std::count(strata.begin(), strata.end(), 1);
  result.new_examples = int64_t(strata.size()) - result.replay_examples;

  const Baselines baselines = measure_baselines(registry, ws, s, sets, *in.model);
  result.production_model_id = baselines.production_model_id;
  result.training = train_candidate(in, s, user_hooks, resume, collective);
  std::vector<Score> scores = judge(in, s, sets, baselines, result, collective);
  write_version(ws, s, base, in, result, collective);
  const VersionStatus status = register_version(ws, registry, buffer, s, base, sets, result, std::move(scores), run_dir);
  log()->info("registered {} as version {} ({})", s.model_id, s.version, status_name(status));
  if (collective) collective->barrier();  // the other ranks end once the version is registered
  result.status = status_name(status);
  result.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return result;
}

}  // namespace

RoundResult run_round(const RoundConfig& config, const RoundOptions& options) {
  if (config.replay.auto_ratio)
    throw ConfigError("replay.ratio \"auto\" runs several rounds: use run_round_auto (retain train does)");
  const DistEnv env = DistEnv::from_env();
  if (env.distributed() && env.rank != 0) return detail::follow_round(env, config.training.device);
  const auto t0 = Clock::now();
  const torch::Device device = env.device_for_rank(config.training.resolved_device());
  Workspace ws = Workspace::open(options.workspace);
  WorkspaceLock lock = WorkspaceLock::acquire(ws.dir(), "retain train", options.lock_wait_s);
  Registry registry(ws.db());
  ReplayBuffer buffer(ws.db());
  // 1. The base, whose family says what the data are; everything that can be wrong with the input
  // is checked before anything changes.
  const VersionRecord base = base_version(registry, options.base);
  const std::string base_dir = (fs::path(ws.dir()) / base.model_dir).string();
  if (!fs::is_directory(base_dir))
    throw RegistryError("version " + base.model_id + " is registered but its folder " + base_dir +
                        " is missing; restore it from a backup, or roll back to another version");
  const ModelFamily& family = family_of(base_dir);
  const auto new_data = read_new_data(family, base_dir, options.data);
  const auto sets = detail::load_test_sets(config.gate, family, base_dir);
  std::unique_ptr<Collective> collective;
  if (env.distributed()) collective = std::make_unique<Collective>(env, device, detail::kRoundGroupTimeout);
  detail::require_base_fisher(ws.dir(), base, config.ewc.lambda);
  if (config.ewc.lambda > 0 && !base.adapter_base_model_id.empty() && !config.lora.enabled())
    throw ConfigError("base " + base.model_id + " is a LoRA version whose Fisher covers its adapter only; a full "
                      "round from it needs a full Fisher: add a \"lora\" section to continue the adapter, or set "
                      "ewc.lambda to 0");
  if (config.lora.enabled()) lora_layout_of(family, "the round's lora section");
  clean_workspace(ws, registry, buffer, "");

  RoundState s;
  s.config = config;
  s.config_json = config.to_json();
  s.base_model_id = base.model_id;
  s.data = fs::absolute(options.data).lexically_normal().string();
  s.data_hash = "sha256:" + sha256_file_hex(options.data);
  s.promote = options.promote;
  s.promote_stale = options.promote_stale;
  if (const auto production = registry.production()) s.production_at_start = production->model_id;
  const std::string stem = name_stem(config, base.model_id);
  do {  // a number whose id is taken (say, imported by hand) is skipped, never reused
    s.version = registry.reserve_version();
    s.model_id = stem + "-v" + std::to_string(s.version);
  } while (registry.find(s.model_id));
  s.run_id = utc_timestamp() + "-" + s.model_id;
  const fs::path run_dir = fs::path(ws.runs_dir()) / s.run_id;
  fs::create_directories(run_dir);
  nlohmann::json settings = s.config_json;
  settings["data"] = s.data;
  registry.start_run(s.run_id, s.base_model_id, settings);
  return marking_failures(ws, registry, buffer, s.run_id, [&] {
  // 3. The mix: replayed examples drawn before the new ones are staged (never replaying themselves).
  SampleOptions so;
  so.n = replay_count(new_data->size(), config.replay.ratio);
  so.seed = config.training.seed;
  so.strategy = config.replay.strategy;
  so.per_topic_cap = config.replay.per_topic_cap;
  std::string replay_jsonl;
  const auto replayed = buffer.sample(so);
  for (const auto& row : replayed) replay_jsonl += row.json + "\n";
  write_file_atomic((run_dir / kReplayFile).string(), replay_jsonl);
  if (int64_t(replayed.size()) < so.n)
    log()->warn("the replay buffer holds {} of the {} examples the ratio {} asks for; replaying all of them",
                replayed.size(), so.n, config.replay.ratio);
  AddOptions ao;
  ao.source = s.model_id;
  stage_new_data(buffer, s.run_id, *new_data, ao);
  write_file_atomic((run_dir / kRoundFile).string(), state_json(s).dump(2) + "\n");
  fault_point("staged");
  log()->info("round {} → {} | {} new + {} replayed examples | run {}", s.base_model_id, s.model_id,
              new_data->size(), replayed.size(), run_dir.string());
  return finish(ws, registry, buffer, s, sets, *new_data, false, options.hooks, t0, collective.get());
  });
}

RoundResult resume_round(const std::string& run_id, const RoundOptions& options) {
  const auto t0 = Clock::now();
  const DistEnv env = DistEnv::from_env();
  std::unique_ptr<Collective> collective;
  if (env.distributed()) {
    // Every rank reads the device from the run's round.json; rank 0 validates the rest below.
    const auto round_path = fs::path(options.workspace) / "runs" / run_id / kRoundFile;
    const std::string device = fs::exists(round_path)
        ? load_json_file(round_path.string()).at("config").value("training", nlohmann::json::object()).value("device", "cpu")
        : "cpu";
    if (env.rank != 0) return detail::follow_round(env, device);
    collective = std::make_unique<Collective>(env, env.device_for_rank(parse_device(device)), detail::kRoundGroupTimeout);
  }
  Workspace ws = Workspace::open(options.workspace);
  WorkspaceLock lock = WorkspaceLock::acquire(ws.dir(), "retain train --resume", options.lock_wait_s);
  Registry registry(ws.db());
  ReplayBuffer buffer(ws.db());
  const auto run = registry.run(run_id);
  if (!run) throw RegistryError("no run " + run_id + " in the workspace");
  const std::string status = run->at("status").get<std::string>();
  if (status != "running" && status != "interrupted")
    throw RegistryError("run " + run_id + " already finished (" + status + "); nothing to resume");
  const fs::path run_dir = fs::path(ws.runs_dir()) / run_id;
  const std::string round_path = (run_dir / kRoundFile).string();
  if (!fs::exists(round_path))
    throw RegistryError("run " + run_id + " stopped before its mix was saved; start a new round instead");
  const auto j = load_json_file(round_path);
  RoundState s;
  s.config_json = j.at("config");
  s.config = RoundConfig::from_json(s.config_json, round_path);
  s.run_id = run_id;
  s.model_id = j.at("model_id").get<std::string>();
  s.version = j.at("version").get<int64_t>();
  s.base_model_id = j.at("base_model_id").get<std::string>();
  s.data = j.at("data").get<std::string>();
  s.data_hash = j.at("data_hash").get<std::string>();
  s.promote = j.at("promote").get<bool>();
  s.promote_stale = options.promote_stale;
  // Rounds started before this key existed: their base stood for production.
  s.production_at_start = j.value("production_at_start", s.base_model_id);
  if (!fs::is_regular_file(s.data))
    throw DataError(s.data + ": the new data of run " + run_id + " is gone; a resumed round trains on the same file, "
                    "so put it back (its hash is " + s.data_hash + ") or start a new round");
  if ("sha256:" + sha256_file_hex(s.data) != s.data_hash)
    throw DataError(s.data + ": changed since run " + run_id + " started; a resumed round must train on the same data");
  const std::string base_dir = (fs::path(ws.dir()) / registry.get(s.base_model_id).model_dir).string();
  const ModelFamily& family = family_of(base_dir);
  const auto new_data = read_new_data(family, base_dir, s.data);
  const auto sets = detail::load_test_sets(s.config.gate, family, base_dir);
  clean_workspace(ws, registry, buffer, run_id);
  buffer.discard_stage(run_id);
  AddOptions ao;
  ao.source = s.model_id;
  stage_new_data(buffer, run_id, *new_data, ao);
  log()->info("resuming round {} → {} (run {})", s.base_model_id, s.model_id, run_id);
  return marking_failures(ws, registry, buffer, run_id, [&] {
    return finish(ws, registry, buffer, s, sets, *new_data, true, options.hooks, t0, collective.get());
  });
}

std::vector<RoundResult> run_round_auto(const RoundConfig& config, const RoundOptions& options) {
  if (!config.replay.auto_ratio) return {run_round(config, options)};
  if (DistEnv::from_env().distributed())
    throw ConfigError("replay.ratio \"auto\" is not available in a data-parallel round (--nproc); give a ratio");
  std::vector<RoundResult> attempts;
  std::vector<double> tried;
  double ratio = 0.3;
  while (true) {
    RoundConfig attempt = config;
    attempt.replay.auto_ratio = false;
    attempt.replay.ratio = ratio;
    log()->info("replay ratio auto: attempt {} at {}", attempts.size() + 1, ratio);
    attempts.push_back(run_round(attempt, options));
    tried.push_back(ratio);
    const auto next = next_replay_ratio(attempts.back().gate, tried);
    if (!next) break;
    ratio = *next;
  }
  return attempts;
}

std::optional<double> next_replay_ratio(const GateResult& gate, const std::vector<double>& tried) {
  if (gate.passed) return std::nullopt;
  // A regression means the old tasks need more replay; a missed minimum alone, more new data.
  const bool regressed = std::any_of(gate.failures.begin(), gate.failures.end(),
                                     [](const GateFailure& f) { return f.kind == "regression"; });
  const double next = regressed ? 0.5 : 0.2;
  if (std::find(tried.begin(), tried.end(), next) != tried.end()) return std::nullopt;
  return next;
}

std::string attempts_summary(const std::vector<RoundResult>& attempts) {
  std::string out;
  if (attempts.size() > 1) {
    out += "replay ratio auto: " + std::to_string(attempts.size()) + " attempts\n";
    std::vector<std::vector<std::string>> rows;
    for (const auto& a : attempts) {
      char ratio[32];
      std::snprintf(ratio, sizeof ratio, "replay %.2f",
                    a.new_examples + a.replay_examples > 0
                        ? double(a.replay_examples) / double(a.new_examples + a.replay_examples) : 0.0);
      std::string reasons;
      for (const auto& f : a.gate.failures) reasons += (reasons.empty() ? "(" : "; ") + f.brief();
      rows.push_back({"", a.model_id, ratio, a.status, reasons.empty() ? "" : reasons + ")"});
    }
    out += format_table(rows);
    out += "\n";
  }
  if (!attempts.empty()) out += attempts.back().summary();
  return out;
}

}  // namespace retain
