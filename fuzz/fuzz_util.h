// What every fuzz target shares. The oracle: a parser of outside input either accepts it or
// refuses it with a retain::Error (a message for the user, a documented exit code). Any other
// exception (std::out_of_range, nlohmann's type_error, c10::Error) is a bug the CLI would report
// as "internal error", so it escapes here and libFuzzer reports it as a crash — as it reports
// AddressSanitizer and UndefinedBehaviorSanitizer findings.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "retain/errors.h"
#include "retain/fileio.h"

namespace retain::fuzz {

inline std::string bytes_of(const uint8_t* data, size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

// Runs `parse`; a retain::Error is the parser refusing the input, which is what it should do.
template <typename Parse>
void refuse_or_accept(Parse&& parse) {
  try {
    parse();
  } catch (const retain::Error&) {
  }
}

// A folder of this process's own for parsers that read files (removed at exit).
inline const std::string& scratch_dir() {
  // Never destroyed: the exit handler that removes the folder runs after static destructors.
  static const std::string* dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    auto* pattern = new std::string(std::string(tmp && *tmp ? tmp : "/tmp") + "/retain-fuzz-XXXXXX");
    if (!::mkdtemp(pattern->data())) std::abort();
    std::atexit([] { std::error_code ec; std::filesystem::remove_all(scratch_dir(), ec); });
    return pattern;
  }();
  return *dir;
}

// Writes `bytes` to scratch_dir()/`name` and returns its path.
inline std::string scratch_file(const std::string& name, const std::string& bytes) {
  const std::string path = scratch_dir() + "/" + name;
  write_file_atomic(path, bytes);
  return path;
}

}  // namespace retain::fuzz
