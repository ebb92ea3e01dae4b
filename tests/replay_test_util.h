// Helpers of the replay buffer tests: fresh workspaces, generated conversations, JSONL files, a
// slow reference for the round-robin share, and a check of every invariant the triggers maintain.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "retain/data.h"
#include "retain/replay.h"
#include "retain/workspace.h"

namespace retain::replay_test {

namespace fs = std::filesystem;

// A fresh, empty folder per test.
inline fs::path fresh_dir(const std::string& prefix) {
  const auto* info = testing::UnitTest::GetInstance()->current_test_info();
  fs::path dir = fs::temp_directory_path() / (prefix + std::string(info->test_suite_name()) + "_" +
                                              info->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// A distinct conversation: (topic, i) → its own content.
inline ChatExample make_example(const std::string& topic, int i) {
  ChatExample e;
  e.messages = {{Role::kUser, "question " + std::to_string(i) + " about " + topic, 1},
                {Role::kAssistant, "answer " + std::to_string(i) + " for " + topic, 1}};
  e.topic = topic;
  e.metadata = nlohmann::json::object({{"topic", topic}});
  return e;
}

// `counts[t]` examples of topic t, numbered from `first`.
inline std::vector<ChatExample> make_examples(const std::map<std::string, int>& counts,
                                              int first = 0) {
  std::vector<ChatExample> out;
  for (const auto& [topic, n] : counts)
    for (int i = 0; i < n; ++i) out.push_back(make_example(topic, first + i));
  return out;
}

inline std::string write_jsonl(const fs::path& path, const std::vector<ChatExample>& examples) {
  std::ofstream out(path, std::ios::binary);
  for (const auto& e : examples) out << to_jsonl(e) << "\n";
  return path.string();
}

inline std::vector<std::string> read_lines(const fs::path& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

inline std::map<std::string, int64_t> topic_counts(ReplayBuffer& buffer) {
  std::map<std::string, int64_t> counts;
  for (const auto& [topic, n] : buffer.stats(0).per_topic) counts[topic] = n;
  return counts;
}

// The reference semantics, slowly: draw `keep` examples round-robin across the topics (in name
// order), one per topic per round. Returns how many each topic keeps.
inline std::map<std::string, int64_t> round_robin_share(std::map<std::string, int64_t> counts,
                                                         int64_t keep) {
  std::map<std::string, int64_t> share;
  while (keep > 0) {
    bool any = false;
    for (auto& [topic, left] : counts) {
      if (keep == 0 || left == 0) continue;
      --left;
      ++share[topic];
      --keep;
      any = true;
    }
    if (!any) break;
  }
  return share;
}

inline std::vector<int64_t> sorted_values(const std::map<std::string, int64_t>& m) {
  std::vector<int64_t> v;
  for (const auto& kv : m) v.push_back(kv.second);
  std::sort(v.begin(), v.end());
  return v;
}

// Every invariant the schema's triggers keep, checked by full scans (fine in a test).
inline void expect_consistent(Database& db) {
  const int64_t rows = db.query_int("SELECT count(*) FROM replay_examples");
  EXPECT_EQ(db.query_int("SELECT size FROM replay_state"), rows);
  EXPECT_EQ(db.query_int("SELECT count(DISTINCT slot) FROM replay_examples WHERE slot BETWEEN 0 AND "
                         "(SELECT size - 1 FROM replay_state)"), rows) << "slots not dense";
  EXPECT_EQ(db.query_int("SELECT count(*) FROM (SELECT topic, count(*) AS c, min(topic_slot) AS lo, "
                         "max(topic_slot) AS hi FROM replay_examples GROUP BY topic) "
                         "WHERE lo != 0 OR hi != c - 1"), 0) << "topic slots not dense";
  EXPECT_EQ(db.query_int("SELECT count(*) FROM (SELECT topic, count(*) AS c FROM replay_examples "
                         "GROUP BY topic) g LEFT JOIN replay_topics t USING (topic) "
                         "WHERE t.count IS NOT g.c"), 0) << "topic counts wrong";
  const int64_t topics = db.query_int("SELECT count(*) FROM replay_topics");
  EXPECT_EQ(db.query_int("SELECT count(DISTINCT topic) FROM replay_examples"), topics);
  EXPECT_EQ(db.query_int("SELECT topics FROM replay_state"), topics);
  EXPECT_EQ(db.query_int("SELECT count(DISTINCT topic_no) FROM replay_topics WHERE topic_no "
                         "BETWEEN 0 AND " + std::to_string(topics - 1)), topics) << "topic_no not dense";
  EXPECT_EQ(db.query_int("SELECT count(*) FROM (SELECT count, count(*) AS m FROM replay_topics "
                         "GROUP BY count) g FULL JOIN replay_topic_sizes h USING (count) "
                         "WHERE g.m IS NOT h.topics"), 0) << "histogram wrong";
  EXPECT_EQ(db.query_int("SELECT tokens = (SELECT coalesce(sum(tokens), 0) FROM replay_examples) "
                         "FROM replay_state"), 1);
  EXPECT_EQ(db.query_int("SELECT json_bytes = (SELECT coalesce(sum(length(CAST(json AS BLOB))), 0) "
                         "FROM replay_examples) FROM replay_state"), 1);
}

}  // namespace retain::replay_test
