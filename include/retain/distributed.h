// Data-parallel training on PyTorch's own distributed engine (c10d): one process per device,
// gradients all-reduced through ProcessGroupGloo (CPU) or ProcessGroupNCCL (CUDA). Workers start
// the way torchrun and Slurm start them (environment variables), or `--nproc N` starts N local
// workers itself (launch_local_workers).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace retain {

// Where this process sits in the job.
struct DistEnv {
  int rank = 0, world_size = 1, local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;

  // torchrun's RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT, else Slurm's SLURM_PROCID,
  // SLURM_NTASKS, SLURM_LOCALID (with MASTER_ADDR/MASTER_PORT); world_size 1 when neither is set.
  // ConfigError naming the variable for a malformed or inconsistent value.
  static DistEnv from_env();
  bool distributed() const { return world_size > 1; }
  // The device of this rank: "cuda" without an index becomes cuda:<local_rank> when distributed
  // (one GPU per local worker, as torchrun lays them out); anything else is kept.
  torch::Device device_for_rank(const torch::Device& device) const;
};

// One process group. Collectives are in place and block until done.
class Collective {
 public:
  // Joins the group: a TCPStore at master_addr:master_port (rank 0 hosts it), then Gloo for a CPU
  // device or NCCL for CUDA. TrainingError when the others do not arrive within `timeout`, or when
  // this build has no such backend.
  Collective(const DistEnv& env, const torch::Device& device,
             std::chrono::milliseconds timeout = std::chrono::minutes(5));
  ~Collective();
  Collective(const Collective&) = delete;
  Collective& operator=(const Collective&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  // Sums `tensors` over the ranks, in place (one flattened buffer per dtype and device).
  void allreduce_sum(std::vector<torch::Tensor>& tensors);
  void barrier();
  // Small values through the job's TCPStore: `publish` sets key (any rank), `fetch` waits until
  // the key exists (up to the group's timeout) and returns its value.
  void publish(const std::string& key, const std::string& value);
  std::string fetch(const std::string& key);
  // rank 0's `value` on every rank (an all-reduce of one flag on `device`).
  bool agree(bool value, const torch::Device& device);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int rank_ = 0, world_size_ = 1;
};

// Whether this build has the Gloo backend (CPU collectives): LibTorch's c10d needs Gloo's headers
// at build time (Debian's libgloo-dev; PyTorch's own LibTorch does not ship them).
bool has_gloo_backend();

// Runs `argv` (argv[0] the executable) as `nproc` local workers with RANK / WORLD_SIZE /
// LOCAL_RANK / MASTER_ADDR=127.0.0.1 / MASTER_PORT (a free port) set, and waits. When one fails,
// the others are killed. Returns 0 when all succeed, else the first failing worker's exit code
// (128 + signal when killed).
int launch_local_workers(int nproc, const std::vector<std::string>& argv);

}  // namespace retain
