// Sampling from the replay buffer (see replay.h). Every strategy reads rows by index lookups on
// the dense slot numbers (replay_examples.slot, .topic_slot, replay_topics.topic_no), so its cost
// is O(n log size) whatever the buffer holds; only the topics that contribute are read.
//
//   diverse       the round-robin share: find the smallest level L with Σ_t min(c_t, cap, L) ≥ n
//                 from the count histogram; every topic gives min(c_t, cap, L − 1) and randomly
//                 chosen topics with room give one more. With n ≤ topics (L = 1), n random topics
//                 give one example each.
//   uniform       a random permutation of all slots, taking rows whose topic is under the cap.
//   proportional  each topic with c_t·n ≥ size gives ⌊n·c_t/size⌋ (capped); the rest is drawn
//                 uniformly, so smaller topics appear in proportion on average.
#include <algorithm>
#include <limits>
#include <unordered_map>
#include <unordered_set>

#include "replay_internal.h"
#include "retain/errors.h"

namespace retain {
namespace {

using detail::LazyPermutation;
using detail::Rng;

constexpr int64_t kNoCap = std::numeric_limits<int64_t>::max();

struct Topic {
  std::string name;
  int64_t count = 0;
  int64_t quota = 0;
};

// Row lookups by the dense numbers.
class Rows {
 public:
  explicit Rows(Database& db)
      : db_(db),
        by_slot_(db, std::string("SELECT ") + detail::kStoredColumns +
                         " FROM replay_examples WHERE slot = ?"),
        by_topic_slot_(db, std::string("SELECT ") + detail::kStoredColumns +
                               " FROM replay_examples WHERE topic = ? AND topic_slot = ?"),
        topic_by_no_(db, "SELECT topic, count FROM replay_topics WHERE topic_no = ?") {}

  StoredExample slot(int64_t slot) { return fetch(by_slot_.bind(1, slot), "slot"); }
  StoredExample topic_slot(const std::string& topic, int64_t slot) {
    return fetch(by_topic_slot_.bind(1, topic).bind(2, slot), "topic slot");
  }
  Topic topic(int64_t topic_no) {
    if (!topic_by_no_.bind(1, topic_no).step()) inconsistent("topic number");
    Topic t{topic_by_no_.column_text(0), topic_by_no_.column_int(1), 0};
    topic_by_no_.reset();
    return t;
  }

 private:
  StoredExample fetch(Statement& s, const char* what) {
    if (!s.step()) inconsistent(what);
    StoredExample e = detail::read_stored(s);
    s.reset();
    return e;
  }
  [[noreturn]] void inconsistent(const char* what) {
    throw RegistryError("replay buffer in " + db_.path() + " is inconsistent: a " + what +
                        " number has no row");
  }
  Database& db_;
  Statement by_slot_, by_topic_slot_, topic_by_no_;
};

// `quota` distinct rows of `topic`, uniformly.
void take_from_topic(Rows& rows, const Topic& topic, Rng& rng, std::vector<StoredExample>& out) {
  LazyPermutation perm(static_cast<uint64_t>(topic.count), rng);
  for (int64_t i = 0; i < topic.quota && !perm.done(); ++i) {
    out.push_back(rows.topic_slot(topic.name, static_cast<int64_t>(perm.draw())));
  }
}

std::vector<Topic> all_topics(Database& db) {
  std::vector<Topic> topics;
  auto s = db.prepare("SELECT topic, count FROM replay_topics ORDER BY topic_no");
  while (s.step()) topics.push_back({s.column_text(0), s.column_int(1), 0});
  return topics;
}

std::vector<StoredExample> sample_diverse(Database& db, int64_t n, int64_t cap, int64_t topics,
                                          Rng& rng) {
  Rows rows(db);
  std::vector<StoredExample> out;
  // The level L. Levels are visited while Σ min(c, L) < n, so at most O(√n) of them.
  int64_t below = 0, above = topics, prev = 0, level = 0;
  {
    auto s = db.prepare("SELECT count, topics FROM replay_topic_sizes ORDER BY count");
    while (s.step()) {
      const int64_t count = s.column_int(0), at_count = s.column_int(1);
      const int64_t high = std::min(count, cap);
      if (high > prev) {
        const int64_t need = n - below;
        const int64_t candidate = std::max(prev + 1, (need + above - 1) / above);
        if (candidate <= high) {
          level = candidate;
          break;
        }
      }
      if (count >= cap) break;  // every remaining topic is capped: fewer than n exist
      below += at_count * count;
      above -= at_count;
      prev = count;
    }
  }
  if (level == 1) {
    // n ≤ topics: n random topics, one example each; only those topics are read.
    LazyPermutation perm(static_cast<uint64_t>(topics), rng);
    for (int64_t i = 0; i < n; ++i) {
      Topic t = rows.topic(static_cast<int64_t>(perm.draw()));
      t.quota = 1;
      take_from_topic(rows, t, rng, out);
    }
    return out;
  }
  // Here every topic contributes, and there are fewer topics than n.
  std::vector<Topic> list = all_topics(db);
  std::vector<size_t> eligible;
  int64_t assigned = 0;
  for (size_t i = 0; i < list.size(); ++i) {
    Topic& t = list[i];
    const int64_t room = std::min(t.count, cap);
    t.quota = level == 0 ? room : std::min(room, level - 1);
    assigned += t.quota;
    if (level > 0 && room >= level) eligible.push_back(i);
  }
  if (level > 0) {
    LazyPermutation perm(eligible.size(), rng);
    for (int64_t extra = n - assigned; extra > 0 && !perm.done(); --extra) {
      ++list[eligible[perm.draw()]].quota;
    }
  }
  for (const Topic& t : list) take_from_topic(rows, t, rng, out);
  return out;
}

// Adds uniformly drawn rows, skipping those already chosen and topics at the cap, until `out`
// holds n or every row has been looked at.
void fill_uniform(Database& db, int64_t n, int64_t cap, int64_t size, Rng& rng,
                  std::unordered_set<int64_t>& chosen,
                  std::unordered_map<std::string, int64_t>& taken,
                  std::vector<StoredExample>& out) {
  Rows rows(db);
  LazyPermutation perm(static_cast<uint64_t>(size), rng);
  while (static_cast<int64_t>(out.size()) < n && !perm.done()) {
    StoredExample e = rows.slot(static_cast<int64_t>(perm.draw()));
    if (chosen.count(e.id) != 0) continue;
    int64_t& from_topic = taken[e.topic];
    if (from_topic >= cap) continue;
    ++from_topic;
    chosen.insert(e.id);
    out.push_back(std::move(e));
  }
}

std::vector<StoredExample> sample_proportional(Database& db, int64_t n, int64_t cap,
                                               int64_t size, Rng& rng) {
  std::vector<StoredExample> out;
  std::unordered_set<int64_t> chosen;
  std::unordered_map<std::string, int64_t> taken;
  // Topics whose share ⌊n·c/size⌋ is at least one: c ≥ ⌈size/n⌉, found by the count index; at
  // most n of them.
  std::vector<Topic> strata;
  {
    auto s = db.prepare("SELECT topic, count FROM replay_topics WHERE count >= ? "
                        "ORDER BY count DESC, topic DESC");
    s.bind(1, (size + n - 1) / n);
    while (s.step()) {
      Topic t{s.column_text(0), s.column_int(1), 0};
      const auto share = static_cast<__int128>(n) * t.count / size;
      t.quota = static_cast<int64_t>(std::min<__int128>(share, std::min(t.count, cap)));
      strata.push_back(std::move(t));
    }
  }
  Rows rows(db);
  for (const Topic& t : strata) {
    const size_t first = out.size();
    take_from_topic(rows, t, rng, out);
    for (size_t i = first; i < out.size(); ++i) chosen.insert(out[i].id);
    taken[t.name] = t.quota;
  }
  fill_uniform(db, n, cap, size, rng, chosen, taken, out);
  return out;
}

}  // namespace

const char* strategy_name(SampleStrategy strategy) {
  switch (strategy) {
    case SampleStrategy::kDiverse: return "diverse";
    case SampleStrategy::kUniform: return "uniform";
    case SampleStrategy::kProportional: return "proportional";
  }
  return "unknown";
}

SampleStrategy parse_sample_strategy(const std::string& name) {
  if (name == "diverse") return SampleStrategy::kDiverse;
  if (name == "uniform") return SampleStrategy::kUniform;
  if (name == "proportional") return SampleStrategy::kProportional;
  throw ConfigError("unknown sampling strategy \"" + name +
                    "\"; expected diverse, uniform or proportional");
}

std::vector<StoredExample> ReplayBuffer::sample(const SampleOptions& options) {
  if (options.n < 0) throw ConfigError("sample size must be ≥ 0, got " + std::to_string(options.n));
  if (options.per_topic_cap < 0) {
    throw ConfigError("per-topic cap must be ≥ 0 (0 = none), got " +
                      std::to_string(options.per_topic_cap));
  }
  const int64_t cap = options.per_topic_cap > 0 ? options.per_topic_cap : kNoCap;
  Transaction txn(db_, Transaction::Mode::kRead);  // one snapshot for every lookup
  int64_t size = 0, topics = 0;
  {
    auto s = db_.prepare("SELECT size, topics FROM replay_state");
    if (s.step()) {
      size = s.column_int(0);
      topics = s.column_int(1);
    }
  }
  std::vector<StoredExample> out;
  if (options.n == 0 || size == 0) return out;
  Rng rng(detail::derive_seed(options.seed, 1));
  const int64_t n = std::min(options.n, size);
  switch (options.strategy) {
    case SampleStrategy::kDiverse:
      out = sample_diverse(db_, n, cap, topics, rng);
      break;
    case SampleStrategy::kUniform: {
      std::unordered_set<int64_t> chosen;
      std::unordered_map<std::string, int64_t> taken;
      fill_uniform(db_, n, cap, size, rng, chosen, taken, out);
      break;
    }
    case SampleStrategy::kProportional:
      out = sample_proportional(db_, n, cap, size, rng);
      break;
  }
  txn.commit();
  Rng order(detail::derive_seed(options.seed, 2));
  detail::shuffle(out, order);
  return out;
}

}  // namespace retain
