// Seeded randomness that gives the same numbers with every standard library (std::shuffle and
// std::uniform_int_distribution do not): what the replay sampler, the mix, the batch order and the
// Fisher's example pick draw from. Each keeps the algorithm it had, since resume and stored
// mixes depend on the exact sequence.
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace retain {

// SplitMix64 (Steele et al. 2014): tiny, fast, and well distributed; the replay buffer's sampler.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n), n > 0, without modulo bias (rejects the short last stretch).
  uint64_t below(uint64_t n) {
    const uint64_t threshold = (0 - n) % n;  // 2^64 mod n
    for (;;) {
      const uint64_t x = next();
      if (x >= threshold) return x % n;
    }
  }

 private:
  uint64_t state_;
};

// Independent streams from one user seed: sampling and shuffling must not share draws.
inline uint64_t derive_seed(uint64_t seed, uint64_t stream) {
  Rng rng(seed ^ (stream * 0xd1b54a32d192ed03ULL));
  return rng.next();
}

// Fisher–Yates from the back with Rng (the replay mix).
template <typename T>
void shuffle(std::vector<T>& items, Rng& rng) {
  for (size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[static_cast<size_t>(rng.below(i))]);
}

// Fisher–Yates from the back with mt19937_64 and a modulo draw (the trainer's epoch order).
template <typename T>
void shuffle(std::vector<T>& items, std::mt19937_64& rng) {
  for (size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[rng() % i]);
}

// n of 0..count-1 picked by a partial Fisher–Yates from the front with mt19937_64(seed), sorted;
// all of them when n <= 0 or n >= count (the Fisher's examples).
inline std::vector<int64_t> sample_sorted(int64_t count, int64_t n, uint64_t seed) {
  std::vector<int64_t> idx(count);
  for (int64_t i = 0; i < count; ++i) idx[i] = i;
  if (n <= 0 || n >= count) return idx;
  std::mt19937_64 rng(seed);
  for (int64_t i = 0; i < n; ++i) std::swap(idx[i], idx[i + int64_t(rng() % uint64_t(count - i))]);
  idx.resize(n);
  std::sort(idx.begin(), idx.end());
  return idx;
}

}  // namespace retain
