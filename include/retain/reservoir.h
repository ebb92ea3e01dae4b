// A bounded in-memory uniform sample of a stream: reservoir sampling (Vitter 1985, algorithm R).
//
// After n offers, every item offered so far is in the reservoir with probability
// min(1, capacity / n), independently of the order of the stream. Seeded, so the same stream and
// seed give the same reservoir. Used by `retain bench continual` for the replay method; the
// persistent, topic-aware buffer of chat examples is ReplayBuffer (replay.h).
#pragma once

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include "retain/errors.h"

namespace retain {

template <typename T>
class Reservoir {
 public:
  // capacity > 0, else ConfigError.
  explicit Reservoir(int64_t capacity, uint64_t seed = 1234) : capacity_(capacity), rng_(seed) {
    if (capacity <= 0) throw ConfigError("reservoir capacity must be > 0");
    items_.reserve(static_cast<size_t>(capacity));
  }

  // Offers one item of the stream. Returns true when it was kept.
  bool offer(T item) {
    ++seen_;
    if (static_cast<int64_t>(items_.size()) < capacity_) {
      items_.push_back(std::move(item));
      return true;
    }
    // Algorithm R: keep the n-th item with probability capacity/n, in a uniformly chosen slot.
    const auto j = static_cast<int64_t>(rng_() % static_cast<uint64_t>(seen_));
    if (j >= capacity_) return false;
    items_[static_cast<size_t>(j)] = std::move(item);
    return true;
  }

  // k items drawn uniformly with replacement (empty when the reservoir is empty).
  std::vector<T> draw(int64_t k) {
    std::vector<T> out;
    if (items_.empty()) return out;
    out.reserve(static_cast<size_t>(k));
    for (int64_t i = 0; i < k; ++i) out.push_back(items_[rng_() % items_.size()]);
    return out;
  }

  const std::vector<T>& items() const { return items_; }
  int64_t size() const { return static_cast<int64_t>(items_.size()); }
  int64_t capacity() const { return capacity_; }
  int64_t seen() const { return seen_; }  // items offered so far

 private:
  int64_t capacity_;
  int64_t seen_ = 0;
  std::mt19937_64 rng_;
  std::vector<T> items_;
};

}  // namespace retain
