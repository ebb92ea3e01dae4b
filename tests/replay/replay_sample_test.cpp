// Tests of replay sampling and the training mix (replay.h): counts, reproducibility by seed, the
// round-robin share of `diverse`, frequencies of `uniform` (also after deletions left holes),
// the quotas of `proportional`, the per-topic cap, and the mix formula and file.
#include <cmath>
#include <cstdlib>
#include <set>

#include "replay_test_util.h"
#include "retain/errors.h"

namespace retain {
namespace {

using namespace replay_test;

fs::path test_dir() { return fresh_dir("retain_replay_sample_test_"); }

std::map<std::string, int64_t> per_topic(const std::vector<StoredExample>& sample) {
  std::map<std::string, int64_t> counts;
  for (const auto& e : sample) ++counts[e.topic];
  return counts;
}

std::vector<int64_t> ids(const std::vector<StoredExample>& sample) {
  std::vector<int64_t> out;
  for (const auto& e : sample) out.push_back(e.id);
  return out;
}

struct Fixture {
  explicit Fixture(const std::map<std::string, int>& sizes)
      : dir(test_dir()), ws(Workspace::init((dir / "ws").string())), buffer(ws.db()) {
    buffer.set_max_size(1000000);
    buffer.add(make_examples(sizes), AddOptions());
  }
  std::vector<StoredExample> sample(int64_t n, uint64_t seed, SampleStrategy strategy,
                                    int64_t cap = 0) {
    SampleOptions o;
    o.n = n;
    o.seed = seed;
    o.strategy = strategy;
    o.per_topic_cap = cap;
    return buffer.sample(o);
  }
  fs::path dir;
  Workspace ws;
  ReplayBuffer buffer;
};

TEST(ReplaySample, CountsDistinctAndReproducibleBySeed) {
  Fixture f({{"a", 40}, {"b", 25}, {"c", 5}});
  for (const auto strategy :
       {SampleStrategy::kDiverse, SampleStrategy::kUniform, SampleStrategy::kProportional}) {
    SCOPED_TRACE(strategy_name(strategy));
    const auto s1 = f.sample(20, 42, strategy);
    ASSERT_EQ(s1.size(), 20u);
    const std::vector<int64_t> first = ids(s1);
    EXPECT_EQ(std::set<int64_t>(first.begin(), first.end()).size(), 20u);  // distinct
    EXPECT_EQ(ids(f.sample(20, 42, strategy)), ids(s1));                      // same seed
    EXPECT_NE(ids(f.sample(20, 43, strategy)), ids(s1));                      // other seed
    EXPECT_EQ(f.sample(500, 1, strategy).size(), 70u);                        // min(n, size)
    EXPECT_TRUE(f.sample(0, 1, strategy).empty());
  }
  EXPECT_THROW(f.sample(-1, 1, SampleStrategy::kDiverse), ConfigError);
  EXPECT_THROW(parse_sample_strategy("random"), ConfigError);
  EXPECT_EQ(parse_sample_strategy("proportional"), SampleStrategy::kProportional);
}

TEST(ReplaySample, DiverseGivesTheRoundRobinShare) {
  Fixture f({{"a", 100}, {"b", 20}, {"c", 5}, {"d", 1}});
  // Level 12: a 12, b 12, c 5, d 1 = 30.
  EXPECT_EQ(per_topic(f.sample(30, 3, SampleStrategy::kDiverse)),
            (std::map<std::string, int64_t>{{"a", 12}, {"b", 12}, {"c", 5}, {"d", 1}}));
  for (uint64_t seed = 0; seed < 10; ++seed) {  // one more: a or b gets 13
    const auto counts = per_topic(f.sample(31, seed, SampleStrategy::kDiverse));
    EXPECT_EQ(counts.at("a") + counts.at("b"), 25);
    EXPECT_EQ(std::abs(counts.at("a") - counts.at("b")), 1);
  }
  const std::map<std::string, int64_t> sizes = {{"a", 100}, {"b", 20}, {"c", 5}, {"d", 1}};
  for (const int64_t n : {1, 3, 4, 9, 50, 125}) {
    EXPECT_EQ(sorted_values(per_topic(f.sample(n, 9, SampleStrategy::kDiverse))),
              sorted_values(round_robin_share(sizes, n))) << "n = " << n;
  }
}

TEST(ReplaySample, DiverseWithMoreTopicsThanNPicksDistinctTopicsEvenly) {
  std::map<std::string, int> sizes;
  for (int t = 0; t < 50; ++t) sizes["t" + std::to_string(t)] = 2;
  Fixture f(sizes);
  std::map<std::string, int> chosen;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    const auto counts = per_topic(f.sample(10, seed, SampleStrategy::kDiverse));
    EXPECT_EQ(counts.size(), 10u);
    for (const auto& [topic, n] : counts) {
      EXPECT_EQ(n, 1);
      ++chosen[topic];
    }
  }
  // Each topic is chosen with probability 10/50 per sample: 40 of 200 expected (σ ≈ 5.7).
  EXPECT_EQ(chosen.size(), 50u);
  for (const auto& [topic, n] : chosen) {
    EXPECT_GT(n, 15) << topic;
    EXPECT_LT(n, 65) << topic;
  }
}

TEST(ReplaySample, PerTopicCap) {
  Fixture f({{"a", 10}, {"b", 10}, {"c", 2}});
  for (const auto strategy :
       {SampleStrategy::kDiverse, SampleStrategy::kUniform, SampleStrategy::kProportional}) {
    SCOPED_TRACE(strategy_name(strategy));
    const auto capped = per_topic(f.sample(7, 5, strategy, 3));
    int64_t total = 0;
    for (const auto& [topic, n] : capped) {
      EXPECT_LE(n, 3) << topic;
      total += n;
    }
    EXPECT_EQ(total, 7);
    // The cap limits what exists: 3 + 3 + 2.
    EXPECT_EQ(f.sample(20, 5, strategy, 3).size(), 8u);
  }
}

TEST(ReplaySample, UniformFrequenciesAlsoAfterDeletions) {
  Fixture f({{"big", 80}, {"small", 20}});
  AddOptions other;
  other.source = "gone";
  f.buffer.add(make_examples({{"big", 30}}, 1000), other);
  f.buffer.remove_source("gone");  // leaves holes in the ids; slots stay dense
  std::map<int64_t, int> hits;
  const int trials = 2000;
  for (int seed = 0; seed < trials; ++seed)
    for (const auto& e : f.sample(10, static_cast<uint64_t>(seed), SampleStrategy::kUniform))
      ++hits[e.id];
  // Every one of the 100 rows has probability 0.1 per sample: 200 ± 13.4 hits.
  EXPECT_EQ(hits.size(), 100u);
  for (const auto& [id, n] : hits) {
    EXPECT_GT(n, 200 - 5 * 14) << "id " << id;
    EXPECT_LT(n, 200 + 5 * 14) << "id " << id;
  }
}

TEST(ReplaySample, ProportionalFollowsTopicSizes) {
  Fixture f({{"a", 60}, {"b", 30}, {"c", 10}});
  EXPECT_EQ(per_topic(f.sample(10, 1, SampleStrategy::kProportional)),
            (std::map<std::string, int64_t>{{"a", 6}, {"b", 3}, {"c", 1}}));
  const auto counts = per_topic(f.sample(15, 1, SampleStrategy::kProportional));  // 9+4+1, +1
  EXPECT_GE(counts.at("a"), 9);
  EXPECT_GE(counts.at("b"), 4);
  EXPECT_GE(counts.at("c"), 1);
}

TEST(ReplayMix, ReplayCountFormula) {
  EXPECT_EQ(replay_count(100, 0.0), 0);
  EXPECT_EQ(replay_count(100, 0.3), 42);      // 42.857
  EXPECT_EQ(replay_count(10000, 0.3), 4285);  // 4285.71
  EXPECT_EQ(replay_count(10, 0.5), 10);
  EXPECT_EQ(replay_count(7, 0.3), 3);         // exactly 3
  EXPECT_EQ(replay_count(2, 0.6), 3);         // 2.9999999999999996 in doubles
  EXPECT_EQ(replay_count(1, 0.95), 19);
  EXPECT_EQ(replay_count(3, 0.1), 0);         // 0.333
  EXPECT_EQ(replay_count(0, 0.9), 0);
  for (const double bad : {-0.1, 1.0, 1.5, std::nan("")}) EXPECT_THROW(replay_count(10, bad), ConfigError);
}

TEST(ReplayMix, WritesNewPlusReplayShuffledAndCommits) {
  Fixture f({{"old-a", 150}, {"old-b", 50}});
  const std::string fresh = write_jsonl(f.dir / "new.jsonl", make_examples({{"new", 100}}));
  const fs::path out = f.dir / "mix.jsonl";
  MixOptions options;
  options.replay_ratio = 0.3;
  options.seed = 11;
  options.commit = false;
  const MixReport r = make_training_mix(f.buffer, {fresh}, out.string(), options);
  EXPECT_EQ(r.new_examples, 100);
  EXPECT_EQ(r.replay_requested, 42);
  EXPECT_EQ(r.replay_examples, 42);
  EXPECT_EQ(r.total, 142);
  EXPECT_NEAR(r.actual_replay_ratio, 42.0 / 142.0, 1e-12);
  EXPECT_EQ(f.buffer.size(), 200);  // --no-commit
  const auto lines = read_lines(out);
  ASSERT_EQ(lines.size(), 142u);
  std::map<std::string, int> topics;
  for (const auto& line : lines) ++topics[nlohmann::json::parse(line).at("topic").get<std::string>()];
  EXPECT_EQ(topics.at("new"), 100);
  EXPECT_EQ(topics.at("old-a"), 21);  // diverse: 21 + 21
  EXPECT_EQ(topics.at("old-b"), 21);
  int replay_in_first_100 = 0;  // shuffled, not new-then-replay
  for (size_t i = 0; i < 100; ++i)
    replay_in_first_100 += nlohmann::json::parse(lines[i]).at("topic") != "new";
  EXPECT_GT(replay_in_first_100, 0);

  make_training_mix(f.buffer, {fresh}, out.string(), options);  // same seed: same bytes
  EXPECT_EQ(read_lines(out), lines);
  options.seed = 12;
  make_training_mix(f.buffer, {fresh}, out.string(), options);
  EXPECT_NE(read_lines(out), lines);

  options.commit = true;
  options.source = "v2";
  const MixReport committed = make_training_mix(f.buffer, {fresh}, out.string(), options);
  EXPECT_EQ(committed.committed.added, 100);
  EXPECT_EQ(f.buffer.size(), 300);
  expect_consistent(f.ws.db());
}

TEST(ReplayMix, SmallBufferGivesAllItHasAndBadRatioWritesNothing) {
  Fixture f({{"old", 10}});
  const std::string fresh = write_jsonl(f.dir / "new.jsonl", make_examples({{"new", 100}}));
  const fs::path out = f.dir / "mix.jsonl";
  MixOptions options;
  options.replay_ratio = 0.5;
  const MixReport r = make_training_mix(f.buffer, {fresh}, out.string(), options);
  EXPECT_EQ(r.replay_requested, 100);
  EXPECT_EQ(r.replay_examples, 10);
  EXPECT_EQ(r.total, 110);
  EXPECT_NEAR(r.actual_replay_ratio, 10.0 / 110.0, 1e-12);
  EXPECT_EQ(read_lines(out).size(), 110u);
  EXPECT_EQ(r.to_json().at("actual_replay_ratio").get<double>(), r.actual_replay_ratio);

  const fs::path out2 = f.dir / "mix2.jsonl";
  options.replay_ratio = 1.0;
  EXPECT_THROW(make_training_mix(f.buffer, {fresh}, out2.string(), options), ConfigError);
  options.replay_ratio = -0.2;
  EXPECT_THROW(make_training_mix(f.buffer, {fresh}, out2.string(), options), ConfigError);
  EXPECT_FALSE(fs::exists(out2));
  EXPECT_EQ(f.buffer.size(), 110);
}

}  // namespace
}  // namespace retain
