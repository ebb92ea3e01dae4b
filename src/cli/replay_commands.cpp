// Flags and library calls of the workspace and replay-buffer subcommands (see replay_commands.h).
#include "replay_commands.h"
#include "flags.h"

#include <cstdio>
#include <iostream>

#include "retain/errors.h"
#include "retain/fileio.h"
#include "retain/replay.h"
#include "retain/workspace.h"

namespace retain::cli {

namespace {

std::string human_bytes(int64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, unit == 0 ? "%.0f %s" : "%.1f %s", value, units[unit]);
  return text;
}

void print_add(const char* verb, const AddResult& r, int64_t max_size) {
  std::printf("%s %ld of %ld examples (%ld duplicates, %ld evicted); buffer holds %ld of %ld\n",
              verb, long(r.added), long(r.read), long(r.duplicates), long(r.evicted), long(r.size),
              long(max_size));
}

}  // namespace

ReplayCommands::ReplayCommands(CLI::App& app) {
  init_ = app.add_subcommand("init", "create a workspace (retain.db, versions/, runs/), or update one");
  init_->add_option("--workspace", workspace_, kWorkspaceHelp);
  init_->add_option("--buffer-max-size", max_size_,
                    "replay buffer bound for a new workspace (default 10000; later: buffer resize)")
      ->check(bounded(1, 1e12));
  add_buffer(app);
  add_mix(app);
}

void ReplayCommands::add_buffer(CLI::App& app) {
  auto* buffer = app.add_subcommand("buffer", "the replay buffer of earlier training examples");
  buffer->require_subcommand(1);

  add_ = buffer->add_subcommand("add", "add chat JSONL files (all or nothing; duplicates skipped)");
  add_->add_option("files", files_, "chat JSONL files")->required();
  add_->add_option("--source", source_, "the version or run these examples come from")
      ->default_str("manual");

  sample_ = buffer->add_subcommand("sample", "draw N examples as JSONL");
  sample_->add_option("n", n_, "how many examples")->required();
  sample_->add_option("--strategy", strategy_, "diverse (round-robin across topics) | uniform | proportional")
      ->capture_default_str();
  sample_->add_option("--seed", seed_, "sampling seed (same seed, same buffer: same examples)")
      ->capture_default_str();
  sample_->add_option("--per-topic-cap", per_topic_cap_, "at most this many per topic; 0 = no cap")
      ->capture_default_str();
  sample_->add_option("-o,--out", out_, "write to FILE instead of stdout");

  stats_ = buffer->add_subcommand("stats", "size, topics, sources and bytes on disk");
  stats_->add_flag("--json", json_, "print the statistics as JSON");
  stats_->add_option("--top", top_, "list the K largest topics; 0 = all")->capture_default_str();

  export_ = buffer->add_subcommand("export", "write every example as JSONL, oldest first");
  export_->add_option("-o,--out", out_, "output file")->required();

  remove_ = buffer->add_subcommand("remove", "delete the examples that one source added");
  remove_->add_option("--source", source_, "the source to remove")->required();

  resize_ = buffer->add_subcommand("resize", "change max_size (stored in the workspace), evicting if needed");
  resize_->add_option("max_size", max_size_, "new bound, > 0")->check(bounded(1, 1e12))->required();

  for (auto* sub : {add_, sample_, stats_, export_, remove_, resize_})
    sub->add_option("--workspace", workspace_, kWorkspaceHelp);
}

void ReplayCommands::add_mix(CLI::App& app) {
  mix_ = app.add_subcommand("mix", "write a training mix: new examples + replay from the buffer");
  mix_->add_option("files", files_, "new examples (chat JSONL)")->required();
  mix_->add_option("--replay-ratio", replay_ratio_,
                   "fraction of the mix that is replay, in [0, 1): replay = floor(n·r/(1−r))")
      ->capture_default_str();
  mix_->add_option("-o,--out", out_, "mix file to write (JSONL)")->required();
  mix_->add_option("--seed", seed_, "sampling and shuffling seed")->capture_default_str();
  mix_->add_option("--strategy", strategy_, "diverse | uniform | proportional")->capture_default_str();
  mix_->add_option("--per-topic-cap", per_topic_cap_, "at most this many replayed per topic; 0 = no cap")
      ->capture_default_str();
  mix_->add_flag("--no-commit", no_commit_, "do not add the new examples to the buffer");
  mix_->add_option("--source", source_, "source recorded for the new examples")->default_str("mix");
  mix_->add_flag("--json", json_, "print the report as JSON");
  mix_->add_option("--workspace", workspace_, kWorkspaceHelp);
}

bool ReplayCommands::run(int& exit_code) {
  if (init_->parsed()) exit_code = init();
  else if (add_->parsed()) exit_code = buffer_add();
  else if (sample_->parsed()) exit_code = buffer_sample();
  else if (stats_->parsed()) exit_code = buffer_stats();
  else if (export_->parsed()) exit_code = buffer_export();
  else if (remove_->parsed()) exit_code = buffer_remove();
  else if (resize_->parsed()) exit_code = buffer_resize();
  else if (mix_->parsed()) exit_code = mix();
  else return false;
  return true;
}

int ReplayCommands::init() {
  const std::string dir = Workspace::resolve(workspace_);
  if (max_size_ < 0) throw ConfigError("--buffer-max-size must be > 0");
  Workspace ws = Workspace::init(dir);
  ReplayBuffer buffer(ws.db());
  if (max_size_ > 0) buffer.set_max_size(max_size_);
  std::printf("workspace %s ready (schema version %ld, replay buffer %ld of %ld)\n", dir.c_str(),
              long(ws.schema_version()), long(buffer.size()), long(buffer.max_size()));
  return kExitOk;
}

int ReplayCommands::buffer_add() {
  Workspace ws = Workspace::open(Workspace::resolve(workspace_));
  ReplayBuffer buffer(ws.db());
  AddOptions options;
  if (!source_.empty()) options.source = source_;
  const AddResult r = buffer.add_files(files_, options);
  print_add("added", r, buffer.max_size());
  return kExitOk;
}

int ReplayCommands::buffer_sample() {
  Workspace ws = Workspace::open(Workspace::resolve(workspace_), Workspace::reading());
  ReplayBuffer buffer(ws.db());
  SampleOptions options;
  options.n = n_;
  options.seed = seed_;
  options.strategy = parse_sample_strategy(strategy_);
  options.per_topic_cap = per_topic_cap_;
  std::string bytes;
  const auto sample = buffer.sample(options);
  for (const auto& e : sample) bytes += e.json + "\n";
  if (out_.empty()) {
    std::cout << bytes;
  } else {
    write_file_atomic(out_, bytes);
    std::fprintf(stderr, "wrote %zu examples to %s\n", sample.size(), out_.c_str());
  }
  return kExitOk;
}

int ReplayCommands::buffer_stats() {
  if (top_ < 0) throw ConfigError("--top must be ≥ 0");
  const std::string dir = Workspace::resolve(workspace_);
  Workspace ws = Workspace::open(dir, Workspace::reading());
  const BufferStats st = ReplayBuffer(ws.db()).stats(top_);
  if (json_) {
    nlohmann::json j = st.to_json();
    j["workspace"] = dir;
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  std::printf("replay buffer in %s: %ld of %ld examples, %ld topics, %ld tokens\n", dir.c_str(),
              long(st.size), long(st.max_size), long(st.topics), long(st.tokens));
  std::printf("stored JSON %s; database on disk %s; staged %ld\n", human_bytes(st.json_bytes).c_str(),
              human_bytes(st.db_bytes).c_str(), long(st.staged));
  if (!st.per_topic.empty()) {
    std::printf("topics%s:\n", int64_t(st.per_topic.size()) < st.topics ? " (largest)" : "");
    for (const auto& [topic, n] : st.per_topic) std::printf("  %8ld  %s\n", long(n), topic.c_str());
    if (int64_t(st.per_topic.size()) < st.topics)
      std::printf("  … and %ld more (--top 0 lists all)\n", long(st.topics - st.per_topic.size()));
  }
  if (!st.per_source.empty()) {
    std::printf("sources:\n");
    for (const auto& [source, n] : st.per_source) std::printf("  %8ld  %s\n", long(n), source.c_str());
  }
  return kExitOk;
}

int ReplayCommands::buffer_export() {
  Workspace ws = Workspace::open(Workspace::resolve(workspace_), Workspace::reading());
  const int64_t n = ReplayBuffer(ws.db()).export_jsonl(out_);
  std::printf("exported %ld examples to %s\n", long(n), out_.c_str());
  return kExitOk;
}

int ReplayCommands::buffer_remove() {
  Workspace ws = Workspace::open(Workspace::resolve(workspace_));
  const int64_t n = ReplayBuffer(ws.db()).remove_source(source_);
  std::printf("removed %ld examples from source %s\n", long(n), source_.c_str());
  return kExitOk;
}

int ReplayCommands::buffer_resize() {
  Workspace ws = Workspace::open(Workspace::resolve(workspace_));
  ReplayBuffer buffer(ws.db());
  const int64_t evicted = buffer.set_max_size(max_size_);
  std::printf("replay buffer max_size %ld (%ld evicted; holds %ld)\n", long(max_size_),
              long(evicted), long(buffer.size()));
  return kExitOk;
}

int ReplayCommands::mix() {
  MixOptions options;
  options.replay_ratio = replay_ratio_;
  options.seed = seed_;
  options.strategy = parse_sample_strategy(strategy_);
  options.per_topic_cap = per_topic_cap_;
  options.commit = !no_commit_;
  if (!source_.empty()) options.source = source_;
  replay_count(0, replay_ratio_);  // a bad ratio is a usage error before anything is opened
  Workspace ws = Workspace::open(Workspace::resolve(workspace_));
  ReplayBuffer buffer(ws.db());
  const MixReport r = make_training_mix(buffer, files_, out_, options);
  if (json_) {
    nlohmann::json j = r.to_json();
    j["out"] = out_;
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  std::printf("wrote %s: %ld new + %ld replay = %ld examples (replay ratio %.3f, asked %.3f)\n",
              out_.c_str(), long(r.new_examples), long(r.replay_examples), long(r.total),
              r.actual_replay_ratio, replay_ratio_);
  if (options.commit) print_add("buffer: added", r.committed, buffer.max_size());
  else std::printf("buffer unchanged (--no-commit)\n");
  return kExitOk;
}

}  // namespace retain::cli
