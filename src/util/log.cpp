// The library's named logger (see log.h).
#include "retain/log.h"

#include <mutex>

namespace retain {

std::shared_ptr<spdlog::logger> log() {
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  if (auto existing = spdlog::get(kLoggerName)) return existing;
  auto silent = std::make_shared<spdlog::logger>(kLoggerName);
  spdlog::register_logger(silent);
  return silent;
}

}  // namespace retain
