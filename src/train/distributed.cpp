// c10d process groups and the local launcher (see distributed.h).
#include "retain/distributed.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#if __has_include(<gloo/config.h>)
#define USE_C10D_GLOO 1
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "retain/errors.h"
#include "retain/log.h"

extern char** environ;

namespace retain {

namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (*end != '\0' || x < 0 || x > 1 << 20)
    throw ConfigError(std::string("environment variable ") + name + "=\"" + v + "\" is not a non-negative integer");
  return int(x);
}

}  // namespace

DistEnv DistEnv::from_env() {
  DistEnv env;
  const bool torchrun = std::getenv("WORLD_SIZE") != nullptr;
  const bool slurm = !torchrun && std::getenv("SLURM_NTASKS") != nullptr;
  if (!torchrun && !slurm) return env;
  env.world_size = env_int(torchrun ? "WORLD_SIZE" : "SLURM_NTASKS", 1);
  env.rank = env_int(torchrun ? "RANK" : "SLURM_PROCID", 0);
  env.local_rank = env_int(torchrun ? "LOCAL_RANK" : "SLURM_LOCALID", 0);
  if (const char* a = std::getenv("MASTER_ADDR"); a != nullptr && *a != '\0') env.master_addr = a;
  env.master_port = env_int("MASTER_PORT", env.master_port);
  if (env.world_size < 1) throw ConfigError("WORLD_SIZE must be ≥ 1");
  if (env.rank >= env.world_size)
    throw ConfigError("RANK " + std::to_string(env.rank) + " is not below WORLD_SIZE " + std::to_string(env.world_size));
  if (env.master_port < 1 || env.master_port > 65535) throw ConfigError("MASTER_PORT must be in 1..65535");
  return env;
}

torch::Device DistEnv::device_for_rank(const torch::Device& device) const {
  if (device.is_cuda() && !device.has_index() && distributed()) return torch::Device(torch::kCUDA, local_rank);
  return device;
}

struct Collective::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> group;
};

Collective::Collective(const DistEnv& env, const torch::Device& device, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()), rank_(env.rank), world_size_(env.world_size) {
  c10d::TCPStoreOptions opts;
  opts.port = static_cast<uint16_t>(env.master_port);
  opts.isServer = env.rank == 0;
  opts.numWorkers = env.world_size;
  opts.timeout = timeout;
  try {
    impl_->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, opts);
    if (device.is_cuda()) {
#ifdef USE_C10D_NCCL
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = timeout;
      impl_->group = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl_->store, env.rank, env.world_size, o);
#else
      throw TrainingError("this build of retain has no NCCL backend (LibTorch without USE_C10D_NCCL)");
#endif
    } else {
#ifdef USE_C10D_GLOO
      auto o = c10d::ProcessGroupGloo::Options::create(timeout);
      o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(env.master_addr));
      impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, env.rank, env.world_size, o);
#else
      throw TrainingError("this build of retain has no Gloo backend (gloo headers were missing at build time)");
#endif
    }
  } catch (const c10::Error& e) {
    throw TrainingError("rank " + std::to_string(env.rank) + " of " + std::to_string(env.world_size) +
                        ": cannot join the process group at " + env.master_addr + ":" +
                        std::to_string(env.master_port) + ": " + e.what_without_backtrace());
  }
  log()->info("rank {}/{} joined the process group ({})", env.rank, env.world_size, device.is_cuda() ? "NCCL" : "Gloo");
}

Collective::~Collective() = default;

bool has_gloo_backend() {
#ifdef USE_C10D_GLOO
  return true;
#else
  return false;
#endif
}

void Collective::allreduce_sum(std::vector<torch::Tensor>& tensors) {
  if (world_size_ == 1 || tensors.empty()) return;
  // One flat buffer: one collective instead of one per parameter.
  std::vector<torch::Tensor> flat_parts;
  for (auto& t : tensors) flat_parts.push_back(t.reshape({-1}).to(tensors.front().options()));
  std::vector<torch::Tensor> buffer = {torch::cat(flat_parts)};
  impl_->group->allreduce(buffer)->wait();
  int64_t offset = 0;
  for (auto& t : tensors) {
    const int64_t n = t.numel();
    t.copy_(buffer[0].narrow(0, offset, n).view_as(t));
    offset += n;
  }
}

void Collective::publish(const std::string& key, const std::string& value) {
  impl_->store->set(key, std::vector<uint8_t>(value.begin(), value.end()));
}

std::string Collective::fetch(const std::string& key) {
  try {
    const std::vector<uint8_t> bytes = impl_->store->get(key);
    return std::string(bytes.begin(), bytes.end());
  } catch (const c10::Error& e) {
    throw TrainingError("rank " + std::to_string(rank_) + ": no value for \"" + key +
                        "\" from rank 0 (did it fail?): " + e.what_without_backtrace());
  }
}

bool Collective::agree(bool value, const torch::Device& device) {
  std::vector<torch::Tensor> flag = {
      torch::full({1}, rank_ == 0 && value ? 1.0f : 0.0f, torch::TensorOptions().device(device))};
  allreduce_sum(flag);
  return flag[0].item<float>() > 0.5f;
}

void Collective::barrier() {
  if (world_size_ == 1) return;
  impl_->group->barrier()->wait();
}

namespace {

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw Error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw Error(std::string("cannot find a free port: ") + std::strerror(errno));
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace

int launch_local_workers(int nproc, const std::vector<std::string>& argv) {
  if (nproc < 1) throw ConfigError("--nproc must be ≥ 1");
  const int port = free_port();
  std::vector<pid_t> pids;
  for (int rank = 0; rank < nproc; ++rank) {
    std::vector<std::string> env_storage = {"RANK=" + std::to_string(rank), "LOCAL_RANK=" + std::to_string(rank),
                                             "WORLD_SIZE=" + std::to_string(nproc),
                                             "LOCAL_WORLD_SIZE=" + std::to_string(nproc), "MASTER_ADDR=127.0.0.1",
                                             "MASTER_PORT=" + std::to_string(port)};
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string kv = *e;
      const std::string key = kv.substr(0, kv.find('='));
      if (key != "RANK" && key != "LOCAL_RANK" && key != "WORLD_SIZE" && key != "LOCAL_WORLD_SIZE" &&
          key != "MASTER_ADDR" && key != "MASTER_PORT")
        env_storage.push_back(kv);
    }
    std::vector<std::string> args = argv;
    std::vector<char*> cargv, cenv;
    for (auto& a : args) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    for (auto& e : env_storage) cenv.push_back(e.data());
    cenv.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) throw Error(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
      ::execve(cargv[0], cargv.data(), cenv.data());
      ::_exit(127);
    }
    pids.push_back(pid);
  }
  log()->info("started {} local workers (MASTER_PORT {})", nproc, port);
  int result = 0;
  size_t alive = pids.size();
  while (alive > 0) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    const auto it = std::find(pids.begin(), pids.end(), pid);
    if (it == pids.end()) continue;
    *it = -1;
    --alive;
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (code != 0 && result == 0) {
      result = code;
      log()->warn("worker rank {} exited with status {}; stopping the others", it - pids.begin(), code);
      for (pid_t other : pids)
        if (other > 0) ::kill(other, SIGTERM);
    }
  }
  return result;
}

}  // namespace retain
