// Shared inside src/report/: the status colours and the charts of one round, which the page
// (report_html.cpp) places and report_charts.cpp draws.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "retain/report.h"

namespace retain::report_detail {

// The fill and border colours of a version status ("production", "rolled back", …).
struct StatusColors {
  const char *fill, *border;
};
StatusColors status_colors(const std::string& status);

// The training curves of a run's metrics: loss (total, task, validation), learning rate, grad
// norm, tokens/s and, when the records carry loss_ewc, the EWC share of the loss. Empty when the
// run has no train records.
std::vector<std::string> round_curves(const ReportRun& run);

// New against replayed examples as one stacked bar with the counts and the replayed share.
std::string mix_svg(const ReportRun& run);

// "YYYY-MM-DD HH:MM UTC".
std::string utc_time(int64_t unix_seconds);

}  // namespace retain::report_detail
