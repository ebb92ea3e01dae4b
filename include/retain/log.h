// The library's logger. The library logs through the spdlog logger named "retain" and never sets
// up sinks itself: the CLI (or a test) registers that logger with the sinks it wants. When nobody
// has, log() returns a registered logger without sinks, so library messages go nowhere.
#pragma once

#include <memory>

#include <spdlog/spdlog.h>

namespace retain {

inline constexpr const char* kLoggerName = "retain";

// The "retain" logger; never null.
std::shared_ptr<spdlog::logger> log();

}  // namespace retain
