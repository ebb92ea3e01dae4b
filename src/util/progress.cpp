// Progress lines and bars of long phases (see progress.h). Torch-free, so it sits in util/, below
// every layer that reports progress (evaluation, the Fisher, the trainer).
#include "retain/progress.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "retain/log.h"

namespace retain {
namespace {

ProgressBar& bar() {
  static ProgressBar instance;
  return instance;
}

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

std::string format_duration(double s) {
  char buf[32];
  const int64_t t = std::llround(std::max(0.0, s));
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", long(t / 3600), long(t / 60 % 60));
  else std::snprintf(buf, sizeof buf, "%ldm%02lds", long(t / 60), long(t % 60));
  return buf;
}

std::string format_progress(const ProgressState& s) {
  char buf[160];
  const int percent = s.total > 0 ? int(100 * s.done / s.total) : 100;
  if (s.done >= s.total) {
    std::snprintf(buf, sizeof buf, ": %ld/%ld %s | %.1f %s/s | done in %s", long(s.done), long(s.total),
                  s.unit.c_str(), s.rate, s.unit.c_str(), format_duration(s.elapsed_s).c_str());
  } else {
    std::snprintf(buf, sizeof buf, ": %ld/%ld %s (%d%%) | %.1f %s/s | eta %s", long(s.done), long(s.total),
                  s.unit.c_str(), percent, s.rate, s.unit.c_str(),
                  s.done > 0 ? format_duration(s.eta_s).c_str() : "?");
  }
  return s.label + buf;
}

void set_progress_bar(ProgressBar b) { bar() = std::move(b); }

Progress::Progress(std::string label, int64_t total, std::string unit, Clock clock, double log_every_s)
    : label_(std::move(label)), unit_(std::move(unit)), total_(std::max<int64_t>(0, total)),
      clock_(clock ? std::move(clock) : Clock(steady_seconds)), log_every_s_(log_every_s) {
  start_s_ = last_line_s_ = clock_();
}

ProgressState Progress::state() const {
  ProgressState s;
  s.label = label_;
  s.unit = unit_;
  s.done = done_;
  s.total = total_;
  s.elapsed_s = clock_() - start_s_;
  s.rate = s.elapsed_s > 0 ? double(done_) / s.elapsed_s : 0.0;
  s.eta_s = s.rate > 0 ? double(total_ - done_) / s.rate : 0.0;
  return s;
}

void Progress::update(int64_t done) {
  done_ = std::clamp<int64_t>(done, 0, total_);
  const ProgressState s = state();
  if (bar()) bar()(s);
  const bool last = done_ == total_ && !finished_;
  if (!last && s.elapsed_s + start_s_ - last_line_s_ < log_every_s_) return;
  finished_ = finished_ || last;
  last_line_s_ = start_s_ + s.elapsed_s;
  log()->info("{}", format_progress(s));
}

void Progress::logged() { last_line_s_ = clock_(); }

}  // namespace retain
