// Progress of a long phase (training steps, Fisher examples, evaluated or generated examples): a
// log line with done/total, rate and ETA every few seconds and at the end, and a bar on each
// update for whoever draws one (the CLI, when stderr is a terminal). Training, the Fisher and
// evaluation share it, so that a round is never silent for long in a log.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace retain {

// Where a phase stands.
struct ProgressState {
  std::string label;   // what runs: "fisher", "eval old-faq", "exact match old-faq", "train"
  std::string unit;    // what is counted: "examples", "steps"
  int64_t done = 0;
  int64_t total = 0;
  double elapsed_s = 0;  // since the phase started
  double rate = 0;       // units per second since the start; 0 before the first unit
  double eta_s = 0;      // (total − done) / rate; 0 when done or before the first unit
};

// "0m07s", "12m05s", "1h02m": a duration for a person.
std::string format_duration(double seconds);

// "eval old-faq: 120/500 examples (24%) | 40.0 examples/s | eta 0m09s" (the final line: "… done in 0m12s").
std::string format_progress(const ProgressState& s);

// Draws a bar for a state; called on every update (cheap), so it must be too.
using ProgressBar = std::function<void(const ProgressState&)>;

// The bar every Progress draws on (none by default: the library draws nothing). Set it before any
// work starts; it is not synchronised with running phases.
void set_progress_bar(ProgressBar bar);

class Progress {
 public:
  // Seconds on a monotonic clock; tests inject their own.
  using Clock = std::function<double()>;
  static constexpr double kLogEverySeconds = 5.0;

  // A phase of `total` units (≥ 0). `clock` defaults to std::chrono::steady_clock; lines go to the
  // library's logger (log.h) at info level every `log_every_s` seconds.
  Progress(std::string label, int64_t total, std::string unit = "examples", Clock clock = {},
           double log_every_s = kLogEverySeconds);

  // `done` units finished (clamped to [0, total]): draws the bar, and logs a line when log_every_s
  // has passed since the last line (or the start), and once when done reaches total.
  void update(int64_t done);
  void add(int64_t n) { update(done_ + n); }
  // Another line that tells the progress was just logged (the trainer's step line): the next line
  // of this phase waits a full interval from now.
  void logged();
  ProgressState state() const;

 private:
  std::string label_, unit_;
  int64_t total_, done_ = 0;
  Clock clock_;
  double log_every_s_, start_s_, last_line_s_;
  bool finished_ = false;
};

}  // namespace retain
