// Stratified batches: every batch holds new and replayed examples in the mix's proportion.
#include <gtest/gtest.h>

#include <set>

#include "retain/batch.h"

namespace retain {
namespace {

std::vector<int> strata(int n_new, int n_replay) {
  std::vector<int> s(n_new, 0);
  s.insert(s.end(), n_replay, 1);
  return s;
}

TEST(StratifiedBatchTest, EveryBatchHoldsTheMixProportion) {
  const auto s = strata(70, 30);  // replay ratio 0.3
  const auto batches = stratified_epoch_batches(s, 10, 7, 0);
  ASSERT_EQ(batches.size(), 10u);
  std::set<int64_t> seen;
  for (const auto& b : batches) {
    ASSERT_EQ(b.size(), 10u);
    int replay = 0;
    for (int64_t i : b) replay += s[i], seen.insert(i);
    EXPECT_EQ(replay, 3);  // exactly 30 % of every batch
  }
  EXPECT_EQ(seen.size(), 100u);  // each example once
}

TEST(StratifiedBatchTest, UnevenSharesStayWithinOneExample) {
  const auto s = strata(50, 13);
  const auto batches = stratified_epoch_batches(s, 8, 1, 3);
  ASSERT_EQ(batches.size(), 8u);  // ceil(63 / 8)
  EXPECT_EQ(batches.back().size(), 7u);
  int cumulative = 0, seen = 0;
  for (const auto& b : batches) {
    for (int64_t i : b) cumulative += s[i], ++seen;
    EXPECT_LE(std::abs(cumulative - seen * 13.0 / 63.0), 1.0);
  }
  EXPECT_EQ(cumulative, 13);
}

TEST(StratifiedBatchTest, DeterministicPerEpochAndShuffledAcrossEpochs) {
  const auto s = strata(40, 20);
  EXPECT_EQ(stratified_epoch_batches(s, 6, 5, 1), stratified_epoch_batches(s, 6, 5, 1));
  EXPECT_NE(stratified_epoch_batches(s, 6, 5, 1), stratified_epoch_batches(s, 6, 5, 2));
  EXPECT_NE(stratified_epoch_batches(s, 6, 5, 1), stratified_epoch_batches(s, 6, 6, 1));
}

TEST(StratifiedBatchTest, OneStratumIsAPlainShuffle) {
  const auto batches = stratified_epoch_batches(strata(9, 0), 4, 2, 0);
  ASSERT_EQ(batches.size(), 3u);
  std::set<int64_t> seen;
  for (const auto& b : batches) seen.insert(b.begin(), b.end());
  EXPECT_EQ(seen.size(), 9u);
}

}  // namespace
}  // namespace retain
