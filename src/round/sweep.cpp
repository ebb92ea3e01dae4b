// `retain sweep` (see sweep.h): a grid of rounds in a scratch copy of the workspace.
#include "retain/sweep.h"

#include <chrono>
#include <algorithm>
#include <cmath>
#include <ctime>
#include <filesystem>

#include "pipeline_internal.h"
#include "retain/data.h"
#include "retain/errors.h"
#include "retain/fileio.h"
#include "retain/log.h"
#include "retain/registry.h"
#include "retain/workspace.h"

namespace retain {
namespace fs = std::filesystem;

namespace {

// A folder's files as hard links (falling back to copies across file systems).
void link_or_copy_dir(const fs::path& from, const fs::path& to) {
  fs::create_directories(to);
  for (const auto& entry : fs::directory_iterator(from)) {
    if (!entry.is_regular_file()) continue;
    std::error_code ec;
    fs::create_hard_link(entry.path(), to / entry.path().filename(), ec);
    if (ec) copy_file_checked(entry.path().string(), (to / entry.path().filename()).string());
  }
}

// SQL string literal.
std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

// The scratch workspace: a consistent snapshot of the database and the folders of the versions a
// round reads (the base, and production for the gate).
std::string make_scratch(Workspace& ws, Registry& registry, const std::string& base_id, const fs::path& dir) {
  const fs::path scratch = dir / "workspace";
  if (fs::exists(scratch)) throw ConfigError(scratch.string() + " already exists; choose another --out");
  fs::create_directories(scratch);
  ws.db().exec("VACUUM INTO " + quoted((scratch / kWorkspaceDbFile).string()));
  Workspace::init(scratch.string());  // WAL and folders, as in any workspace
  std::vector<std::string> ids = {base_id};
  if (auto p = registry.production(); p && p->model_id != base_id) ids.push_back(p->model_id);
  // A LoRA version's adapter needs the full version it applies to beside it.
  for (size_t i = 0, n = ids.size(); i < n; ++i) {
    const std::string adapter_base = registry.get(ids[i]).adapter_base_model_id;
    if (!adapter_base.empty() && std::find(ids.begin(), ids.end(), adapter_base) == ids.end())
      ids.push_back(adapter_base);
  }
  for (const auto& id : ids) {
    const auto rec = registry.get(id);
    link_or_copy_dir(fs::path(ws.dir()) / rec.model_dir, scratch / rec.model_dir);
  }
  return scratch.string();
}

}  // namespace

void mark_pareto(std::vector<SweepPoint>& points, bool old_higher, bool new_higher) {
  auto better_or_equal = [](double a, double b, bool higher) { return higher ? a >= b : a <= b; };
  auto strictly_better = [](double a, double b, bool higher) { return higher ? a > b : a < b; };
  for (auto& p : points) {
    p.pareto = true;
    for (const auto& q : points) {
      if (&p == &q) continue;
      const bool dominates = better_or_equal(q.old_score, p.old_score, old_higher) &&
                             better_or_equal(q.new_score, p.new_score, new_higher) &&
                             (strictly_better(q.old_score, p.old_score, old_higher) ||
                              strictly_better(q.new_score, p.new_score, new_higher));
      if (dominates) {
        p.pareto = false;
        break;
      }
    }
  }
}

SweepResult run_sweep(const RoundConfig& config, const SweepOptions& options) {
  // Everything that can be wrong is found before the first round.
  if (options.lambdas.empty() || options.ratios.empty()) throw ConfigError("sweep: give at least one λ and one replay ratio");
  for (double l : options.lambdas)
    if (!(l >= 0) || !std::isfinite(l)) throw ConfigError("sweep: λ must be ≥ 0, got " + std::to_string(l));
  for (double r : options.ratios)
    if (!(r >= 0 && r < 1)) throw ConfigError("sweep: a replay ratio must be in [0, 1), got " + std::to_string(r));
  for (const auto* name : {&options.old_set, &options.new_set})
    if (!name->empty() && !config.gate.find(*name))
      throw ConfigError("sweep: \"" + *name + "\" is not a test set of the gate");
  if (config.gate.test_sets.size() < 2) throw ConfigError("sweep: the gate needs an old and a new test set");
  if (config.gate.test_sets.size() > 2 && (options.old_set.empty() || options.new_set.empty()))
    throw ConfigError("sweep: the gate has more than two test sets; say which to plot with --old and --new");

  Workspace ws = Workspace::open(options.workspace);
  Registry registry(ws.db());
  const VersionRecord base = options.base.empty() ? [&] {
    auto p = registry.production();
    if (!p) throw RegistryError("the workspace has no production version; pass --base ID");
    return *p;
  }() : registry.get(options.base);
  // The base's family reads the data and the test sets, checked before any round runs.
  const std::string base_dir = (fs::path(ws.dir()) / base.model_dir).string();
  const ModelFamily& family = family_of(base_dir);
  if (family.read_examples(base_dir, options.data)->size() == 0) throw DataError(options.data + ": no examples");
  detail::load_test_sets(config.gate, family, base_dir);
  detail::require_base_fisher(ws.dir(), base, *std::max_element(options.lambdas.begin(), options.lambdas.end()));

  SweepResult result;
  result.base_model_id = base.model_id;
  result.out_dir = options.out_dir.empty() ? (fs::path(ws.dir()) / "sweeps" / utc_timestamp()).string() : options.out_dir;
  const std::string scratch = make_scratch(ws, registry, base.model_id, result.out_dir);
  log()->info("sweep: {} λ × {} ratios = {} rounds in scratch workspace {}", options.lambdas.size(),
              options.ratios.size(), options.lambdas.size() * options.ratios.size(), scratch);

  for (double lambda : options.lambdas) {
    for (double ratio : options.ratios) {
      RoundConfig c = config;
      c.ewc.lambda = lambda;
      c.replay.ratio = ratio;
      c.replay.auto_ratio = false;
      RoundOptions ro;
      ro.workspace = scratch;
      ro.data = options.data;
      ro.base = base.model_id;
      ro.promote = false;
      ro.hooks = options.hooks;
      log()->info("sweep: λ = {}, replay ratio = {}", lambda, ratio);
      const RoundResult r = run_round(c, ro);
      if (result.old_set.empty()) {  // the first round tells which set the base already knows
        const auto& a = r.scores.at(0);
        const auto& b = r.scores.at(1);
        const bool a_better = higher_is_better(a.metric) ? a.base.at(a.metric) >= b.base.at(b.metric)
                                                          : a.base.at(a.metric) <= b.base.at(b.metric);
        result.old_set = !options.old_set.empty() ? options.old_set : (a_better ? a.name : b.name);
        result.new_set = !options.new_set.empty() ? options.new_set : (a_better ? b.name : a.name);
      }
      SweepPoint p;
      p.lambda = lambda;
      p.ratio = ratio;
      p.model_id = r.model_id;
      p.status = r.status;
      p.seconds = r.seconds;
      for (const auto& row : r.scores) {
        const double score = detail::metric_value(row.candidate, row.metric);
        if (row.name == result.old_set) p.old_score = score, result.old_metric = row.metric, result.base_old = row.base.at(row.metric);
        if (row.name == result.new_set) p.new_score = score, result.new_metric = row.metric, result.base_new = row.base.at(row.metric);
      }
      for (const auto& check : r.gate.checks) {  // production is the same for every round
        if (check.test_set == result.old_set) result.production_old = check.production;
        if (check.test_set == result.new_set) result.production_new = check.production;
      }
      result.production_model_id = r.production_model_id;
      for (const auto& f : r.gate.failures) {
        p.failures.push_back(f.message);
        p.reason += (p.reason.empty() ? "" : "; ") + f.brief();
      }
      result.points.push_back(p);
      if (!options.keep_workspace) {  // bound the disk: a sweep keeps scores, not weights
        fs::remove_all(fs::path(scratch) / "versions" / r.model_id);
        fs::remove_all(fs::path(scratch) / "runs" / r.run_id / "checkpoints");
      }
    }
  }
  mark_pareto(result.points, higher_is_better(result.old_metric), higher_is_better(result.new_metric));
  write_file_atomic((fs::path(result.out_dir) / "sweep.json").string(), result.to_json().dump(2) + "\n");
  write_file_atomic((fs::path(result.out_dir) / "sweep.svg").string(), result.svg());
  if (!options.keep_workspace) fs::remove_all(scratch);
  return result;
}

}  // namespace retain
