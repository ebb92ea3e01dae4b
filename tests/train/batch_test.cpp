// Tests of batching (batch.h): padding, the one-token shift of targets and mask, cutting at
// max_len, and the seeded epoch order with and without length grouping.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include <torch/torch.h>

#include "retain/batch.h"

namespace retain {
namespace {

// Two conversations of 4 and 6 tokens.
std::vector<RenderedChat> two_examples() {
  return {{{10, 11, 12, 13}, {0, 0, 1, 1}}, {{20, 21, 22, 23, 24, 25}, {0, 1, 0, 1, 1, 1}}};
}

torch::Tensor longs(std::vector<std::vector<int64_t>> rows) {
  std::vector<torch::Tensor> out;
  for (auto& r : rows) out.push_back(torch::tensor(r, torch::kLong));
  return torch::stack(out);
}

torch::Tensor floats(std::vector<std::vector<float>> rows) {
  std::vector<torch::Tensor> out;
  for (auto& r : rows) out.push_back(torch::tensor(r, torch::kFloat));
  return torch::stack(out);
}

TEST(MakeBatch, PadsAndShiftsTargetsAndMaskByOne) {
  const auto examples = two_examples();
  const Batch b = make_batch(examples, {0, 1}, /*max_len=*/100);
  // T = longest sequence − 1 = 5; position t predicts token t + 1, trained when mask[t + 1] is 1.
  EXPECT_TRUE(torch::equal(b.inputs, longs({{10, 11, 12, 0, 0}, {20, 21, 22, 23, 24}})));
  EXPECT_TRUE(torch::equal(b.targets, longs({{11, 12, 13, 0, 0}, {21, 22, 23, 24, 25}})));
  EXPECT_TRUE(torch::equal(b.mask, floats({{0, 1, 1, 0, 0}, {1, 0, 1, 1, 1}})));
  EXPECT_EQ(b.trained_tokens, 6);
  EXPECT_EQ(b.tokens, 3 + 5);
  EXPECT_EQ(b.inputs.scalar_type(), torch::kLong);
  EXPECT_EQ(b.mask.scalar_type(), torch::kFloat);

  // Rows follow the order of `indices`.
  const Batch swapped = make_batch(examples, {1, 0}, 100);
  EXPECT_TRUE(torch::equal(swapped.inputs, b.inputs.flip(0)));
  EXPECT_TRUE(torch::equal(swapped.mask, b.mask.flip(0)));
}

TEST(MakeBatch, CutsAtMaxLen) {
  const Batch b = make_batch(two_examples(), {0, 1}, /*max_len=*/3);
  EXPECT_TRUE(torch::equal(b.inputs, longs({{10, 11, 12}, {20, 21, 22}})));
  EXPECT_TRUE(torch::equal(b.targets, longs({{11, 12, 13}, {21, 22, 23}})));
  EXPECT_TRUE(torch::equal(b.mask, floats({{0, 1, 1}, {1, 0, 1}})));
  EXPECT_EQ(b.trained_tokens, 4);  // the cut tail (24, 25) is not trained
  EXPECT_EQ(b.tokens, 6);
}

TEST(MakeBatch, TrainedTokensEqualMaskSumOnRandomExamples) {
  std::mt19937 rng(3);
  std::vector<RenderedChat> examples(20);
  for (auto& ex : examples) {
    const size_t n = 1 + rng() % 30;  // one-token examples give an all-padding row
    for (size_t i = 0; i < n; ++i) ex.ids.push_back(rng() % 260), ex.mask.push_back(rng() % 2);
  }
  std::vector<int64_t> all(20);
  for (int64_t i = 0; i < 20; ++i) all[i] = i;
  for (const int64_t max_len : {5, 16, 100}) {
    const Batch b = make_batch(examples, all, max_len);
    EXPECT_EQ(b.trained_tokens, b.mask.sum().item<int64_t>()) << max_len;
    EXPECT_EQ(b.tokens, b.inputs.size(0) * b.inputs.size(1) -
                            [&] {  // padding positions: past each row's own length
                              int64_t pad = 0;
                              for (const auto& ex : examples)
                                pad += b.inputs.size(1) -
                                       std::min<int64_t>(ex.ids.size() - 1, b.inputs.size(1));
                              return pad;
                            }())
        << max_len;
    EXPECT_LE(b.inputs.size(1), max_len);
  }
}

// ---------------------------------------------------------------------------------------------
// epoch_batches

std::vector<int64_t> random_lengths(size_t n, uint64_t seed) {
  std::mt19937 rng(seed);
  std::vector<int64_t> lengths(n);
  for (auto& l : lengths) l = 1 + rng() % 200;
  return lengths;
}

TEST(EpochBatches, CoverEveryIndexExactlyOncePerEpoch) {
  const auto lengths = random_lengths(100, 1);
  for (const bool group : {false, true}) {
    for (int64_t epoch = 0; epoch < 3; ++epoch) {
      const auto batches = epoch_batches(lengths, 8, 42, epoch, group);
      ASSERT_EQ(batches.size(), 13u);  // 12 of 8 and one of 4
      std::vector<int64_t> seen;
      int full = 0;
      for (const auto& b : batches) {
        seen.insert(seen.end(), b.begin(), b.end());
        full += b.size() == 8;
        EXPECT_TRUE(b.size() == 8 || b.size() == 4);
      }
      EXPECT_EQ(full, 12);
      std::sort(seen.begin(), seen.end());
      std::vector<int64_t> expected(100);
      for (int64_t i = 0; i < 100; ++i) expected[i] = i;
      EXPECT_EQ(seen, expected) << "group " << group << " epoch " << epoch;
    }
  }
  EXPECT_TRUE(epoch_batches({}, 8, 42, 0, true).empty());
}

TEST(EpochBatches, DeterministicInSeedAndEpoch) {
  const auto lengths = random_lengths(100, 2);
  for (const bool group : {false, true}) {
    const auto a = epoch_batches(lengths, 8, 42, 1, group);
    EXPECT_EQ(epoch_batches(lengths, 8, 42, 1, group), a);
    EXPECT_NE(epoch_batches(lengths, 8, 42, 2, group), a);
    EXPECT_NE(epoch_batches(lengths, 8, 43, 1, group), a);
  }
  // The ungrouped order is a real shuffle, not the identity.
  const auto first = epoch_batches(lengths, 100, 42, 0, false).at(0);
  std::vector<int64_t> identity(100);
  for (int64_t i = 0; i < 100; ++i) identity[i] = i;
  EXPECT_NE(first, identity);
}

TEST(EpochBatches, UngroupedBatchesAreConsecutiveSlicesOfOnePermutation) {
  // The trainer's accumulation test relies on this: without grouping, batches of 2 are the halves
  // of the batches of 4 for the same (seed, epoch).
  const auto lengths = random_lengths(24, 3);
  const auto fours = epoch_batches(lengths, 4, 9, 0, false);
  const auto twos = epoch_batches(lengths, 2, 9, 0, false);
  ASSERT_EQ(twos.size(), 2 * fours.size());
  for (size_t i = 0; i < fours.size(); ++i) {
    std::vector<int64_t> joined = twos[2 * i];
    joined.insert(joined.end(), twos[2 * i + 1].begin(), twos[2 * i + 1].end());
    EXPECT_EQ(joined, fours[i]) << i;
  }
}

// Padded positions of a batch: Σ (longest − own length).
int64_t padding(const std::vector<std::vector<int64_t>>& batches,
                const std::vector<int64_t>& lengths) {
  int64_t pad = 0;
  for (const auto& b : batches) {
    int64_t longest = 0;
    for (int64_t i : b) longest = std::max(longest, lengths[i]);
    for (int64_t i : b) pad += longest - lengths[i];
  }
  return pad;
}

TEST(EpochBatches, LengthGroupingReducesPadding) {
  const auto lengths = random_lengths(1000, 4);
  const int64_t grouped = padding(epoch_batches(lengths, 8, 42, 0, true), lengths);
  const int64_t ungrouped = padding(epoch_batches(lengths, 8, 42, 0, false), lengths);
  // Uniform lengths in [1, 200]: about 78 padded positions per example without grouping (the max
  // of 8 draws is ~178 against a mean of ~100); sorted windows of 512 leave a few.
  EXPECT_GT(ungrouped, 50 * 1000);
  EXPECT_LT(grouped, ungrouped / 10);
  // Grouped batches are sorted-length runs, but their order is shuffled: not monotone overall.
  const auto batches = epoch_batches(lengths, 8, 42, 0, true);
  bool ascending = true;
  for (size_t i = 1; i < batches.size(); ++i)
    ascending = ascending && lengths[batches[i].front()] >= lengths[batches[i - 1].back()];
  EXPECT_FALSE(ascending);
}

}  // namespace
}  // namespace retain
