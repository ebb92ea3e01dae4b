// Padding conversations into batches, and the length-grouped, seeded epoch order.
#include "retain/batch.h"

#include <algorithm>
#include <random>

#include "retain/random.h"

namespace retain {


Batch make_batch(const std::vector<RenderedChat>& examples, const std::vector<int64_t>& indices,
                 int64_t max_len, bool pin) {
  int64_t T = 1;
  for (int64_t i : indices)
    T = std::max<int64_t>(T, std::min<int64_t>(examples[i].ids.size() - 1, max_len));
  const int64_t B = indices.size();
  auto opts = torch::TensorOptions().pinned_memory(pin);
  Batch b;
  b.inputs = torch::zeros({B, T}, opts.dtype(torch::kLong));
  b.targets = torch::zeros({B, T}, opts.dtype(torch::kLong));
  b.mask = torch::zeros({B, T}, opts.dtype(torch::kFloat));
  auto in = b.inputs.accessor<int64_t, 2>();
  auto tg = b.targets.accessor<int64_t, 2>();
  auto mk = b.mask.accessor<float, 2>();
  for (int64_t r = 0; r < B; ++r) {
    const auto& ex = examples[indices[r]];
    const int64_t n = std::min<int64_t>(ex.ids.size() - 1, T);
    for (int64_t t = 0; t < n; ++t) {
      in[r][t] = ex.ids[t];
      tg[r][t] = ex.ids[t + 1];
      mk[r][t] = ex.mask[t + 1];
      b.trained_tokens += ex.mask[t + 1];
    }
    b.tokens += n;
  }
  return b;
}

Batch to_device(const Batch& batch, const torch::Device& device) {
  if (device.is_cpu()) return batch;
  Batch out = batch;
  out.inputs = batch.inputs.to(device, /*non_blocking=*/true);
  out.targets = batch.targets.to(device, true);
  out.mask = batch.mask.to(device, true);
  return out;
}

std::vector<std::vector<int64_t>> epoch_batches(const std::vector<int64_t>& lengths,
                                                int64_t batch_size, uint64_t seed, int64_t epoch,
                                                bool group_by_length) {
  std::vector<int64_t> order(lengths.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::mt19937_64 rng(seed * 1000003ull + static_cast<uint64_t>(epoch));
  shuffle(order, rng);
  if (group_by_length) {
    const size_t window = static_cast<size_t>(batch_size) * 64;
    for (size_t start = 0; start < order.size(); start += window) {
      auto end = order.begin() + std::min(order.size(), start + window);
      std::stable_sort(order.begin() + start, end,
                       [&](int64_t a, int64_t b) { return lengths[a] < lengths[b]; });
    }
  }
  std::vector<std::vector<int64_t>> batches;
  for (size_t start = 0; start < order.size(); start += batch_size)
    batches.emplace_back(order.begin() + start,
                         order.begin() + std::min(order.size(), start + batch_size));
  if (group_by_length) shuffle(batches, rng);
  return batches;
}

std::vector<std::vector<int64_t>> stratified_epoch_batches(const std::vector<int>& strata,
                                                           int64_t batch_size, uint64_t seed,
                                                           int64_t epoch) {
  int num_strata = 0;
  for (int s : strata) num_strata = std::max(num_strata, s + 1);
  std::vector<std::vector<int64_t>> members(num_strata);
  for (size_t i = 0; i < strata.size(); ++i) members[strata[i]].push_back(int64_t(i));
  std::mt19937_64 rng(seed * 1000003ull + static_cast<uint64_t>(epoch));
  for (auto& m : members) shuffle(m, rng);

  // Position p goes to the stratum furthest behind its share: the one with the largest
  // (p + 1) · n_s / n − taken_s (ties to the lower stratum), as in largest-remainder apportionment.
  const double n = double(strata.size());
  std::vector<size_t> taken(num_strata, 0);
  std::vector<int64_t> order;
  order.reserve(strata.size());
  for (size_t p = 0; p < strata.size(); ++p) {
    int best = -1;
    double best_deficit = -1e300;
    for (int s = 0; s < num_strata; ++s) {
      if (taken[s] == members[s].size()) continue;
      const double deficit = double(p + 1) * double(members[s].size()) / n - double(taken[s]);
      if (deficit > best_deficit) best = s, best_deficit = deficit;
    }
    order.push_back(members[best][taken[best]++]);
  }
  std::vector<std::vector<int64_t>> batches;
  for (size_t start = 0; start < order.size(); start += batch_size)
    batches.emplace_back(order.begin() + start, order.begin() + std::min(order.size(), start + batch_size));
  return batches;
}

}  // namespace retain
