// The reservoir sampler: bounds, determinism, and uniform inclusion (algorithm R).
#include <gtest/gtest.h>

#include "retain/errors.h"
#include "retain/reservoir.h"

namespace retain {
namespace {

TEST(Reservoir, KeepsTheFirstItemsThenStaysBounded) {
  Reservoir<int> r(3, 7);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(r.offer(i));
  EXPECT_EQ(r.items(), (std::vector<int>{0, 1, 2}));
  for (int i = 3; i < 100; ++i) r.offer(i);
  EXPECT_EQ(r.size(), 3);
  EXPECT_EQ(r.seen(), 100);
  EXPECT_THROW(Reservoir<int>(0), ConfigError);
  EXPECT_TRUE(Reservoir<int>(2).draw(5).empty());
}

TEST(Reservoir, SameSeedSameSample) {
  Reservoir<int> a(10, 42), b(10, 42), c(10, 43);
  for (int i = 0; i < 1000; ++i) a.offer(i), b.offer(i), c.offer(i);
  EXPECT_EQ(a.items(), b.items());
  EXPECT_NE(a.items(), c.items());
  EXPECT_EQ(a.draw(20), b.draw(20));
}

// Every item of a stream of 100 should be kept with probability 10/100, whatever its position.
// 20,000 reservoirs: the standard error of a frequency is 0.0021, the tolerance 0.012 (≈ 5.6σ).
TEST(Reservoir, InclusionIsUniformOverTheStream) {
  const int n = 100, capacity = 10, trials = 20000;
  std::vector<int> kept(n, 0);
  for (int t = 0; t < trials; ++t) {
    Reservoir<int> r(capacity, 1000 + t);
    for (int i = 0; i < n; ++i) r.offer(i);
    for (int i : r.items()) ++kept[i];
  }
  for (int i = 0; i < n; ++i) EXPECT_NEAR(double(kept[i]) / trials, 0.1, 0.012) << "item " << i;
  // Early, middle and late thirds of the stream are equally represented.
  auto third = [&](int a, int b) {
    double s = 0;
    for (int i = a; i < b; ++i) s += kept[i];
    return s / (double(trials) * capacity);
  };
  EXPECT_NEAR(third(0, 33), 0.33, 0.01);
  EXPECT_NEAR(third(67, 100), 0.33, 0.01);
}

TEST(Reservoir, DrawsUniformlyFromItsItems) {
  Reservoir<int> r(4, 5);
  for (int i = 0; i < 4; ++i) r.offer(i);
  std::vector<int> count(4, 0);
  for (int i : r.draw(40000)) ++count[i];
  for (int c : count) EXPECT_NEAR(c / 40000.0, 0.25, 0.01);
}

}  // namespace
}  // namespace retain
