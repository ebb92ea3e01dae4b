// `retain sweep`: the round for every (λ, replay ratio) of a grid, in a scratch copy of the
// workspace, so that a person can choose the EWC strength and the replay ratio before launching a
// real job. Production and the buffer of the real workspace are never touched.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "retain/pipeline.h"

namespace retain {

struct SweepOptions {
  std::string workspace;  // the real workspace (read only: a snapshot is copied)
  std::string data;       // new chat JSONL
  std::string base;       // base version; "" = production
  std::vector<double> lambdas, ratios;
  // The test sets plotted as the old task (x) and the new task (y). "" = with two test sets, the
  // one the base scores better on is old; with more, ConfigError asks for them.
  std::string old_set, new_set;
  std::string out_dir;        // results (sweep.json, sweep.svg) and the scratch workspace; "" = <workspace>/sweeps/<UTC time>
  bool keep_workspace = false;  // keep the scratch workspace (with every candidate) afterwards
  TrainHooks hooks;
};

struct SweepPoint {
  double lambda = 0, ratio = 0;
  std::string model_id;
  std::string status;  // "candidate" (passed) | "rejected"
  double old_score = 0, new_score = 0;
  std::vector<std::string> failures;  // the gate's messages
  std::string reason;                 // the same failures in a few words each (GateFailure::brief), "; "-joined
  double seconds = 0;
  bool pareto = false;  // no other point is at least as good on both tasks and better on one
};

struct SweepResult {
  std::string base_model_id, old_set, new_set, old_metric, new_metric;
  double base_old = 0, base_new = 0;
  // What the gate compares every candidate with: production's scores on the two sets (none
  // without a production version, when the gate checks minimums only).
  std::string production_model_id;
  std::optional<double> production_old, production_new;
  std::vector<SweepPoint> points;  // λ-major, in the order given
  std::string out_dir;
  nlohmann::json to_json() const;
  // One row per setting (λ, ratio, both scores, each one's difference from production, the
  // verdict, the Pareto mark, the time, and a failing setting's reason), below rows for the base
  // and production; columns sized to their cells.
  std::string table() const;
  // Old-task score (x) against new-task score (y), one point per setting (filled when it passed
  // the gate), the Pareto front drawn through its points, the base marked. A standalone SVG.
  std::string svg() const;
};

// Marks the points on the Pareto front: maximise both scores, where `*_higher` says whether a
// higher score is better for each axis.
void mark_pareto(std::vector<SweepPoint>& points, bool old_higher, bool new_higher);

// Copies the workspace's database (a consistent snapshot, VACUUM INTO) and the base's and
// production's version folders (hard links where possible) into out_dir/workspace, runs every
// round there with promote = false, and writes out_dir/sweep.json and out_dir/sweep.svg. Bad
// data or settings fail before the first round; a rejected setting is a result, not an error.
SweepResult run_sweep(const RoundConfig& config, const SweepOptions& options);

}  // namespace retain
