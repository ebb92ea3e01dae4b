// Batches of rendered conversations for next-token training, and their deterministic order.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "retain/tokenizer.h"

namespace retain {

// inputs, targets: (B, T) int64; mask: (B, T) fp32, 1 where the target token is trained.
// Sequences are right-padded with id 0 (mask 0). T = longest sequence − 1, capped at max_len.
struct Batch {
  torch::Tensor inputs, targets, mask;
  int64_t trained_tokens = 0;  // mask.sum(), known on the host without a device sync
  int64_t tokens = 0;          // non-padding input positions
};

// Builds a batch from examples[indices[i]]. A sequence longer than max_len + 1 tokens is cut
// from the right (its tail is not trained). Tensors are on the CPU (pinned when `pin`).
Batch make_batch(const std::vector<RenderedChat>& examples, const std::vector<int64_t>& indices,
                 int64_t max_len, bool pin = false);

// Moves a batch to `device` (non-blocking from pinned memory).
Batch to_device(const Batch& batch, const torch::Device& device);

// The batches of one epoch, as lists of example indices: shuffled with (seed, epoch), then, when
// `group_by_length`, sorted by length inside windows of 64 batches so that a batch holds similar
// lengths (less padding), and the batch order shuffled again. Deterministic in its arguments.
// The last batch may be smaller. Empty `lengths` gives no batches.
std::vector<std::vector<int64_t>> epoch_batches(const std::vector<int64_t>& lengths,
                                                int64_t batch_size, uint64_t seed, int64_t epoch,
                                                bool group_by_length);

// The batches of one epoch when the examples come in strata (for a round: new and replayed): each
// stratum is shuffled with (seed, epoch), then the strata are interleaved so that every prefix of
// the order holds each stratum in its overall proportion (within one example), and the order is cut
// into batches. So every batch holds about batch_size · n_s / n of stratum s, not whole batches of
// one kind. ceil(n / batch_size) batches; the last may be smaller. `strata[i]` is example i's
// stratum (0, 1, …). Deterministic in its arguments.
std::vector<std::vector<int64_t>> stratified_epoch_batches(const std::vector<int>& strata,
                                                           int64_t batch_size, uint64_t seed,
                                                           int64_t epoch);

}  // namespace retain
