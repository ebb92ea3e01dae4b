// bench/replay: the cost of one continual round's replay work as the buffer grows.
//
// For each buffer size S (default 10k, 100k, 1M) the buffer is filled to S (max_size S) in one
// transaction through the bulk path, in its own process; then a fresh process runs rounds, each
// `make_training_mix` of 10,000 new examples at r = 0.3 with commit: read the new file, sample
// 4,285 replay examples, shuffle and write the mix, add the 10,000 (dedup) and evict 10,000 to stay
// at S. It prints milliseconds per round and the round process's peak resident memory (VmHWM), so
// the peak is per size. Goal (issue 3): round at 1M ≤ 3× round at 10k; peak memory flat.
//
//   replay [--sizes 10000,100000,1000000] [--rounds 3] [--dir /tmp/retain_bench_replay]
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "retain/replay.h"
#include "retain/workspace.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr int64_t kNewPerRound = 10000;
constexpr double kReplayRatio = 0.3;
constexpr int kTopics = 1000;

// User + system CPU seconds of this process: steadier than wall time on a shared machine.
double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
         (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Peak resident set of this process, MiB.
double peak_rss_mib() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return -1;
}

uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  return x ^ (x >> 33);
}

// Example `id` of the stream `stream`: streams 100–999 bring eight new topics each (a release);
// the others draw from kTopics skewed topics (a few large, a long tail). About 200 bytes of text.
retain::ChatExample make_example(uint64_t stream, uint64_t id) {
  const uint64_t h = mix64(stream * 0x9e3779b97f4a7c15ULL + id);
  const double u = static_cast<double>(h % 1000003) / 1000003.0;
  const int topic = static_cast<int>(kTopics * u * u * u);  // skewed towards low numbers
  retain::ChatExample e;
  const bool release_topic = stream >= 100 && stream < 1000;
  e.topic = release_topic ? "release-" + std::to_string(stream) + "-" + std::to_string(h % 8)
                          : "topic-" + std::to_string(topic);
  e.messages = {{retain::Role::kUser,
                 "Question " + std::to_string(stream) + "/" + std::to_string(id) + " about " +
                     e.topic + ": how do I change the setting number " + std::to_string(h % 97) +
                     " on my account?", 1},
                {retain::Role::kAssistant,
                 "Open Settings, choose item " + std::to_string(h % 97) + ", then confirm. (" +
                     std::to_string(h) + ")", 1}};
  e.metadata = nlohmann::json::object({{"topic", e.topic}});
  return e;
}

// Round r's new data: half continues existing topics, half brings a release's new topics.
void write_round_file(const std::string& path, int round) {
  std::ofstream out(path);
  for (int64_t i = 0; i < kNewPerRound; ++i) {
    const uint64_t stream = i % 2 == 0 ? 1000 + round : 100 + round;
    out << retain::to_jsonl(make_example(stream, static_cast<uint64_t>(i))) << "\n";
  }
}

int fill(const std::string& ws_dir, int64_t size) {
  retain::Workspace ws = retain::Workspace::init(ws_dir);
  retain::ReplayBuffer buffer(ws.db());
  buffer.set_max_size(size);
  const auto start = Clock::now();
  int64_t next = 0;
  retain::AddOptions options;
  options.source = "fill";
  const auto result = buffer.add_stream(
      [&](retain::ChatExample& out) {
        if (next >= size) return false;
        out = make_example(0, static_cast<uint64_t>(next++));
        return true;
      },
      options);
  std::printf("  fill %8ld examples: %7.1f s (%.0f examples/s, one transaction), peak RSS %.1f MiB\n",
              long(result.size), seconds_since(start), size / seconds_since(start), peak_rss_mib());
  return 0;
}

int rounds(const std::string& ws_dir, const std::vector<std::string>& files, int64_t size) {
  retain::Workspace ws = retain::Workspace::open(ws_dir);
  retain::ReplayBuffer buffer(ws.db());
  std::vector<double> ms, cpu_ms;
  for (size_t r = 0; r < files.size(); ++r) {
    retain::MixOptions options;
    options.replay_ratio = kReplayRatio;
    options.seed = r + 1;
    options.source = "round-" + std::to_string(r);
    const auto start = Clock::now();
    const double cpu_start = cpu_seconds();
    const auto report = retain::make_training_mix(buffer, {files[r]}, ws_dir + "/mix.jsonl", options);
    ms.push_back(1000 * seconds_since(start));
    cpu_ms.push_back(1000 * (cpu_seconds() - cpu_start));
    if (report.replay_examples != retain::replay_count(kNewPerRound, kReplayRatio) ||
        report.committed.size != size) {
      std::fprintf(stderr, "unexpected round result: %s\n", report.to_json().dump().c_str());
      return 1;
    }
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::ostringstream each;
  for (double m : ms) each << " " << static_cast<long>(m);
  std::error_code ec;
  const auto db_bytes = fs::file_size(ws_dir + "/retain.db", ec);
  std::printf("  round at %8ld: median %6.0f ms wall, %6.0f ms CPU (each:%s ms wall), peak RSS "
              "%.1f MiB, retain.db %.0f MiB\n",
              long(size), median(ms), median(cpu_ms), each.str().c_str(), peak_rss_mib(),
              ec ? 0.0 : db_bytes / 1048576.0);
  return 0;
}

// Runs `body` in a child process so that its peak memory is its own.
bool in_child(const std::function<int()>& body) {
  std::fflush(stdout);
  const pid_t pid = ::fork();
  if (pid == 0) {
    int code = 1;
    try {
      code = body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
    }
    std::fflush(stdout);
    ::_exit(code);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> sizes = {10000, 100000, 1000000};
  int round_count = 3;
  std::string dir = (fs::temp_directory_path() / "retain_bench_replay").string();
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--sizes") {
      sizes.clear();
      std::stringstream list(value);
      for (std::string item; std::getline(list, item, ',');) sizes.push_back(std::stoll(item));
    } else if (flag == "--rounds") {
      round_count = std::stoi(value);
    } else if (flag == "--dir") {
      dir = value;
    } else {
      std::fprintf(stderr, "usage: replay [--sizes 10000,100000,1000000] [--rounds 3] [--dir DIR]\n");
      return 2;
    }
  }
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::vector<std::string> files;
  for (int r = 0; r < round_count; ++r) {
    files.push_back(dir + "/new-" + std::to_string(r) + ".jsonl");
    write_round_file(files.back(), r);
  }
  std::printf("replay bench: rounds of %ld new examples, mix at r = %.1f (%ld replayed), commit + "
              "evict; %d rounds per size\n",
              long(kNewPerRound), kReplayRatio, long(retain::replay_count(kNewPerRound, kReplayRatio)),
              round_count);
  bool ok = true;
  for (const int64_t size : sizes) {
    const std::string ws_dir = dir + "/ws-" + std::to_string(size);
    ok = ok && in_child([&] { return fill(ws_dir, size); });
    ok = ok && in_child([&] { return rounds(ws_dir, files, size); });
    fs::remove_all(ws_dir);
  }
  fs::remove_all(dir);
  return ok ? 0 : 1;
}
