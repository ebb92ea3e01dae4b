// The training mix (see replay.h): new examples plus replay_count sampled from the buffer,
// shuffled with the seed, written as JSONL; then the new examples join the buffer.
#include <algorithm>
#include <cmath>

#include "replay_internal.h"
#include "retain/errors.h"
#include "retain/fileio.h"
#include "retain/log.h"

namespace retain {

int64_t replay_count(int64_t n_new, double replay_ratio) {
  if (!std::isfinite(replay_ratio) || replay_ratio < 0.0 || replay_ratio >= 1.0) {
    throw ConfigError("replay ratio must be in [0, 1), got " + std::to_string(replay_ratio) +
                      " (it is the fraction of the mix that is replayed: 0.3 = 30 %)");
  }
  if (n_new < 0) throw ConfigError("number of new examples must be ≥ 0");
  // floor(n·r/(1−r)); the tolerance absorbs binary rounding of decimal ratios (2·0.6/0.4 is
  // 2.9999999999999996 in doubles, and means 3).
  const double exact = static_cast<double>(n_new) * replay_ratio / (1.0 - replay_ratio);
  return static_cast<int64_t>(std::floor(exact + 1e-9 * std::max(1.0, exact)));
}

nlohmann::json MixReport::to_json() const {
  return {{"new_examples", new_examples},
          {"replay_examples", replay_examples},
          {"total", total},
          {"replay_requested", replay_requested},
          {"actual_replay_ratio", actual_replay_ratio},
          {"committed", {{"added", committed.added},
                         {"duplicates", committed.duplicates},
                         {"evicted", committed.evicted},
                         {"buffer_size", committed.size}}}};
}

MixReport make_training_mix(ReplayBuffer& buffer, const std::vector<std::string>& new_files,
                            const std::string& out_path, const MixOptions& options) {
  replay_count(0, options.replay_ratio);  // reject a bad ratio before reading anything
  std::vector<ChatExample> fresh;
  for (const std::string& path : new_files) {
    std::vector<ChatExample> examples = read_chat_file(path);
    fresh.insert(fresh.end(), std::make_move_iterator(examples.begin()),
                 std::make_move_iterator(examples.end()));
  }
  MixReport report;
  report.new_examples = static_cast<int64_t>(fresh.size());
  report.replay_requested = replay_count(report.new_examples, options.replay_ratio);

  SampleOptions sample;
  sample.n = report.replay_requested;
  sample.seed = options.seed;
  sample.strategy = options.strategy;
  sample.per_topic_cap = options.per_topic_cap;
  const std::vector<StoredExample> replay = buffer.sample(sample);
  report.replay_examples = static_cast<int64_t>(replay.size());
  report.total = report.new_examples + report.replay_examples;
  report.actual_replay_ratio =
      report.total > 0 ? static_cast<double>(report.replay_examples) / report.total : 0.0;
  if (report.replay_examples < report.replay_requested) {
    log()->warn("replay buffer gave {} of the {} replay examples asked for (ratio {}): the mix "
                "has replay ratio {:.3f}",
                report.replay_examples, report.replay_requested, options.replay_ratio,
                report.actual_replay_ratio);
  }

  std::vector<const std::string*> lines;
  std::vector<std::string> fresh_lines;
  fresh_lines.reserve(fresh.size());
  for (const ChatExample& e : fresh) fresh_lines.push_back(to_jsonl(e));
  lines.reserve(static_cast<size_t>(report.total));
  for (const std::string& line : fresh_lines) lines.push_back(&line);
  for (const StoredExample& e : replay) lines.push_back(&e.json);
  detail::Rng rng(detail::derive_seed(options.seed, 3));
  detail::shuffle(lines, rng);
  std::string bytes;
  for (const std::string* line : lines) {
    bytes += *line;
    bytes += '\n';
  }
  write_file_atomic(out_path, bytes);

  if (options.commit) {
    AddOptions add;
    add.source = options.source;
    report.committed = buffer.add(fresh, add);
  }
  return report;
}

}  // namespace retain
