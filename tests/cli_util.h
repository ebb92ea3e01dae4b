// Helpers of the end-to-end CLI tests: run the `retain` executable (RETAIN_BIN) as a child process
// in a given folder, with stdout and stderr captured to files, and read what it wrote.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace retain::cli_test {

namespace fs = std::filesystem;

// What a finished command left: its exit code (128 + N when killed by signal N) and its output.
struct CliResult {
  int code = -1;
  std::string out, err;
  // One line for assertion messages: the code and the end of stderr.
  std::string describe() const {
    return "exit " + std::to_string(code) + "; stderr:\n" + err.substr(err.size() > 2000 ? err.size() - 2000 : 0);
  }
};

inline std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

// The first `n` lines of `from`, written to `to`.
inline void write_head(const fs::path& from, const fs::path& to, int n) {
  std::ifstream in(from);
  std::ofstream out(to);
  std::string line;
  for (int i = 0; i < n && std::getline(in, line); ++i) out << line << '\n';
  if (!out) throw std::runtime_error("cannot write " + to.string());
}

// A fresh, empty folder in the temporary directory named after `prefix`, the running test and the
// process (so that runs from several build folders cannot collide).
inline fs::path fresh_test_dir(const std::string& prefix) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const fs::path dir = fs::temp_directory_path() / (prefix + "_" + info->name() + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// The bundled support data, cut small for end-to-end tests: old.jsonl (24 release-1 conversations),
// new.jsonl (16 of release 2), old-test.jsonl and new-test.jsonl (6 each), written into `dir`.
inline void write_support_sample(const fs::path& source_dir, const fs::path& dir) {
  const fs::path data = source_dir / "data" / "support";
  write_head(data / "release1-train.jsonl", dir / "old.jsonl", 24);
  write_head(data / "release2-train.jsonl", dir / "new.jsonl", 16);
  write_head(data / "release1-test.jsonl", dir / "old-test.jsonl", 6);
  write_head(data / "release2-test.jsonl", dir / "new-test.jsonl", 6);
}

// A started `retain` process whose stdout and stderr go to files in its folder.
struct CliProcess {
  pid_t pid = -1;
  fs::path out_file, err_file;
};

// Starts `retain args...` with `cwd` as its working folder, stdin /dev/null and OMP_NUM_THREADS=1. Output goes to
// <cwd>/<tag>.stdout and <tag>.stderr, so no pipe can fill up and block the child.
inline CliProcess spawn_cli(const std::vector<std::string>& args, const fs::path& cwd,
                            const std::string& tag = "cli", const fs::path& stdin_file = "/dev/null") {
  CliProcess p;
  p.out_file = cwd / (tag + ".stdout");
  p.err_file = cwd / (tag + ".stderr");
  // Everything the child needs is prepared before fork: after it only async-signal-safe calls.
  std::vector<std::string> storage = {RETAIN_BIN};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  const std::string dir = cwd.string(), out = p.out_file.string(), err = p.err_file.string(),
                    in = stdin_file.string();
  // One intra-op thread unless a command says otherwise (--threads): on a busy machine OpenMP
  // workers that spin on a shared core make a tiny run many times slower.
  std::vector<std::string> env_storage = {"OMP_NUM_THREADS=1"};
  for (char** e = environ; *e != nullptr; ++e)
    if (std::strncmp(*e, "OMP_NUM_THREADS=", 16) != 0) env_storage.push_back(*e);
  std::vector<char*> envp;
  for (auto& s : env_storage) envp.push_back(s.data());
  envp.push_back(nullptr);

  p.pid = ::fork();
  if (p.pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (p.pid == 0) {
    const int in_fd = ::open(in.c_str(), O_RDONLY);
    const int out_fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err_fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in_fd < 0 || out_fd < 0 || err_fd < 0 || ::chdir(dir.c_str()) != 0) ::_exit(126);
    ::dup2(in_fd, 0);
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  return p;
}

// The result of `p`, ended with wait status `status`.
inline CliResult finished(const CliProcess& p, int status) {
  CliResult r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_text(p.out_file);
  r.err = read_text(p.err_file);
  return r;
}

// Waits for `p` to end and collects its exit code and output.
inline CliResult wait_cli(const CliProcess& p) {
  int status = 0;
  while (::waitpid(p.pid, &status, 0) < 0)
    if (errno != EINTR) throw std::runtime_error(std::string("waitpid: ") + std::strerror(errno));
  return finished(p, status);
}

// The result of `p` when it has ended, without waiting; nullopt while it runs. After a result,
// `p` is reaped: do not wait for it again.
inline std::optional<CliResult> poll_cli(const CliProcess& p) {
  int status = 0;
  if (::waitpid(p.pid, &status, WNOHANG) != p.pid) return std::nullopt;
  return finished(p, status);
}

// Runs `retain args...` in `cwd` to the end.
// Runs the CLI with stdin read from `stdin_file` (default: nothing).
inline CliResult run_cli(const std::vector<std::string>& args, const fs::path& cwd,
                         const std::string& tag = "cli", const fs::path& stdin_file = "/dev/null") {
  return wait_cli(spawn_cli(args, cwd, tag, stdin_file));
}

}  // namespace retain::cli_test
