// Tests of the replay buffer's storage (replay.h): SHA-256 vectors, topics, dedup, all-or-nothing
// adds (bad line, injected failure, SIGKILL), two processes adding at once, diversity-preserving
// eviction against a slow round-robin reference, staging, removal and export.
// Sampling and the training mix are in replay_sample_test.cpp.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <random>

#include "replay_test_util.h"
#include "retain/errors.h"
#include "retain/hash.h"

namespace retain {
namespace {

using namespace replay_test;

fs::path test_dir() { return fresh_dir("retain_replay_test_"); }

TEST(Sha256, KnownVectors) {
  // FIPS 180-4 / NIST CSRC examples.
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // Exactly one block of padding boundary: 55 and 56 bytes.
  EXPECT_EQ(sha256_hex(std::string(55, 'a')),
            "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
  EXPECT_EQ(sha256_hex(std::string(56, 'a')),
            "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
}

TEST(Sha256, IncrementalEqualsOneShotAndFiles) {
  std::string text;
  for (int i = 0; i < 1000; ++i) text += std::to_string(i * 7919) + ",";
  Sha256 h;
  for (size_t pos = 0, step = 1; pos < text.size(); pos += step, step = step % 97 + 13)
    h.update(text.substr(pos, step));
  EXPECT_EQ(to_hex(h.finish()), sha256_hex(text));
  const fs::path file = test_dir() / "f.bin";
  std::ofstream(file, std::ios::binary) << text;
  EXPECT_EQ(sha256_file_hex(file.string()), sha256_hex(text));
  EXPECT_THROW(sha256_file_hex((test_dir() / "missing").string()), Error);
}

TEST(Replay, TopicIsFieldElseFirstFiveWordsOfLastUserMessage) {
  ChatExample e;
  e.messages = {{Role::kUser, "old question here", 1},
                {Role::kAssistant, "a", 1},
                {Role::kUser, "  How   much is\tQuillnote Pro per month?", 1},
                {Role::kAssistant, "b", 1}};
  EXPECT_EQ(replay_topic(e), "How much is Quillnote Pro");
  e.topic = "plans";
  EXPECT_EQ(replay_topic(e), "plans");
  e.topic.clear();
  e.messages = {{Role::kUser, "two words", 1}, {Role::kAssistant, "b", 1}};
  EXPECT_EQ(replay_topic(e), "two words");
  e.messages = {{Role::kAssistant, "b", 1}};
  EXPECT_EQ(replay_topic(e), "");
}

TEST(Replay, HashCoversMessagesOnly) {
  ChatExample a = make_example("t", 1), b = make_example("other topic", 1);
  b.messages = a.messages;
  EXPECT_EQ(replay_hash(a), replay_hash(b));
  b.messages[1].content += "!";
  EXPECT_NE(replay_hash(a), replay_hash(b));
}

TEST(Replay, AddCountsAndDeduplicates) {
  const fs::path dir = test_dir();
  Workspace ws = Workspace::init((dir / "ws").string());
  ReplayBuffer buffer(ws.db());
  auto examples = make_examples({{"billing", 5}, {"login", 3}});
  examples.push_back(examples[0]);         // the same conversation twice in one file
  examples.push_back(make_example("x", 0));
  examples.back().messages = examples[1].messages;  // same messages, other topic: a duplicate
  const std::string file = write_jsonl(dir / "a.jsonl", examples);
  AddOptions options;
  options.source = "v1";
  AddResult r = buffer.add_files({file}, options);
  EXPECT_EQ(r.read, 10);
  EXPECT_EQ(r.added, 8);
  EXPECT_EQ(r.duplicates, 2);
  EXPECT_EQ(r.evicted, 0);
  EXPECT_EQ(r.size, 8);
  r = buffer.add_files({file}, options);  // again: nothing new
  EXPECT_EQ(r.added, 0);
  EXPECT_EQ(r.duplicates, 10);
  const auto counts = topic_counts(buffer);
  EXPECT_EQ(counts.at("billing"), 5);
  EXPECT_EQ(counts.at("login"), 3);
  const BufferStats st = buffer.stats(0);
  EXPECT_EQ(st.size, 8);
  EXPECT_EQ(st.topics, 2);
  ASSERT_EQ(st.per_source.size(), 1u);
  EXPECT_EQ(st.per_source[0], std::make_pair(std::string("v1"), int64_t{8}));
  EXPECT_GT(st.tokens, 8 * 10);
  EXPECT_GT(st.db_bytes, 0);
  expect_consistent(ws.db());
}

TEST(Replay, InvalidLineRejectsTheWholeAddNamingFileAndLine) {
  const fs::path dir = test_dir();
  Workspace ws = Workspace::init((dir / "ws").string());
  ReplayBuffer buffer(ws.db());
  const std::string good = write_jsonl(dir / "good.jsonl", make_examples({{"a", 4}}));
  const std::string bad = write_jsonl(dir / "bad.jsonl", make_examples({{"b", 2}}));
  std::ofstream(bad, std::ios::app) << "{\"messages\": [{\"role\": \"robot\", \"content\": \"x\"}]}\n";
  try {
    buffer.add_files({good, bad}, AddOptions());
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find(bad + ":3: unknown_role"), std::string::npos) << e.what();
  }
  EXPECT_EQ(buffer.size(), 0);  // not even the good file's rows
  EXPECT_THROW(buffer.add_files({(dir / "none.jsonl").string()}, AddOptions()), DataError);
}

TEST(Replay, AddInterruptedByFailureLeavesNothing) {
  const fs::path dir = test_dir();
  Workspace ws = Workspace::init((dir / "ws").string());
  ReplayBuffer buffer(ws.db());
  buffer.set_max_size(30);
  buffer.add(make_examples({{"a", 20}, {"b", 5}}), AddOptions());
  const auto before = topic_counts(buffer);
  AddOptions failing;
  failing.on_row = [](int64_t n) {
    if (n == 12) throw std::runtime_error("injected failure");
  };
  EXPECT_THROW(buffer.add(make_examples({{"a", 10}, {"c", 10}}, 100), failing), std::runtime_error);
  EXPECT_EQ(topic_counts(buffer), before);
  EXPECT_EQ(buffer.size(), 25);
  expect_consistent(ws.db());
}

TEST(Replay, SigkillInTheMiddleOfAnAddLeavesTheBufferAsItWas) {
  const fs::path dir = test_dir();
  const std::string ws_dir = (dir / "ws").string();
  const std::string file = write_jsonl(dir / "new.jsonl", make_examples({{"k", 400}}, 1000));
  {
    Workspace ws = Workspace::init(ws_dir);
    ReplayBuffer(ws.db()).add(make_examples({{"a", 7}}), AddOptions());
  }
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    Workspace ws = Workspace::open(ws_dir);
    AddOptions options;
    options.on_row = [](int64_t n) {
      if (n == 300) ::raise(SIGKILL);
    };
    ReplayBuffer(ws.db()).add_files({file}, options);
    ::_exit(0);  // not reached
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  Workspace ws = Workspace::open(ws_dir);
  auto check = ws.db().prepare("PRAGMA integrity_check");
  ASSERT_TRUE(check.step());
  EXPECT_EQ(check.column_text(0), "ok");
  ReplayBuffer buffer(ws.db());
  EXPECT_EQ(buffer.size(), 7);
  expect_consistent(ws.db());
}

TEST(Replay, TwoProcessesAddingAtOnceLoseNothing) {
  const fs::path dir = test_dir();
  const std::string ws_dir = (dir / "ws").string();
  Workspace::init(ws_dir);
  std::vector<std::vector<std::string>> files(2);
  for (int child = 0; child < 2; ++child)
    for (int f = 0; f < 6; ++f)
      files[child].push_back(write_jsonl(
          dir / ("c" + std::to_string(child) + "_" + std::to_string(f) + ".jsonl"),
          make_examples({{"t" + std::to_string(f), 50}}, child * 10000 + f * 100)));
  std::vector<pid_t> pids;
  for (int child = 0; child < 2; ++child) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      int code = 0;
      try {
        Workspace ws = Workspace::open(ws_dir);
        ReplayBuffer buffer(ws.db());
        AddOptions options;
        options.source = "child" + std::to_string(child);
        for (const auto& file : files[child]) buffer.add_files({file}, options);
      } catch (...) {
        code = 1;
      }
      ::_exit(code);
    }
    pids.push_back(pid);
  }
  for (const pid_t pid : pids) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  Workspace ws = Workspace::open(ws_dir);
  ReplayBuffer buffer(ws.db());
  EXPECT_EQ(buffer.size(), 600);
  const BufferStats st = buffer.stats(0);
  ASSERT_EQ(st.per_source.size(), 2u);
  EXPECT_EQ(st.per_source[0].second, 300);
  EXPECT_EQ(st.per_source[1].second, 300);
  expect_consistent(ws.db());
}

TEST(Replay, EvictionKeepsTheRoundRobinShare) {
  const fs::path dir = test_dir();
  Workspace ws = Workspace::init((dir / "ws").string());
  ReplayBuffer buffer(ws.db());
  buffer.set_max_size(40);
  const std::map<std::string, int> sizes = {{"big", 50}, {"mid", 30}, {"small", 10}, {"tiny", 3},
                                            {"one", 1},  {"two", 2}};
  const AddResult r = buffer.add(make_examples(sizes), AddOptions());
  EXPECT_EQ(r.added, 96);
  EXPECT_EQ(r.evicted, 56);
  EXPECT_EQ(r.size, 40);
  const auto kept = topic_counts(buffer);
  std::map<std::string, int64_t> original(sizes.begin(), sizes.end());
  const auto share = round_robin_share(original, 40);
  EXPECT_EQ(kept.size(), sizes.size()) << "every topic is represented";
  EXPECT_EQ(sorted_values(kept), sorted_values(share));
  for (const auto& [topic, n] : kept) EXPECT_LE(std::abs(n - share.at(topic)), 1) << topic;
  EXPECT_EQ(kept.at("one"), 1);
  EXPECT_EQ(kept.at("tiny"), 3);
  // The oldest of a topic go first: "big" keeps its newest examples.
  const auto kept_big = kept.at("big");
  auto ids = ws.db().prepare("SELECT count(*) FROM replay_examples WHERE topic = 'big' AND id > ?");
  ids.bind(1, int64_t{50} - kept_big);
  ASSERT_TRUE(ids.step());
  EXPECT_EQ(ids.column_int(0), kept_big);
  expect_consistent(ws.db());
}

TEST(Replay, EvictionMatchesReferenceOnRandomBuffers) {
  const fs::path dir = test_dir();
  Workspace ws = Workspace::init((dir / "ws").string());
  ReplayBuffer buffer(ws.db());
  std::mt19937 gen(7);
  for (int trial = 0; trial < 40; ++trial) {
    std::map<std::string, int> sizes;
    const int topics = 1 + static_cast<int>(gen() % 12);
    int total = 0;
    for (int t = 0; t < topics; ++t) {
      const int n = 1 + static_cast<int>(gen() % (gen() % 2 ? 40 : 4));
      sizes["t" + std::to_string(t)] = n;
      total += n;
    }
    const int64_t max_size = 1 + static_cast<int64_t>(gen() % static_cast<unsigned>(total));
    buffer.set_max_size(max_size);
    AddOptions options;
    options.source = "trial" + std::to_string(trial);
    buffer.add(make_examples(sizes, trial * 1000), options);
    std::map<std::string, int64_t> original(sizes.begin(), sizes.end());
    const auto share = round_robin_share(original, max_size);
    const auto kept = topic_counts(buffer);
    EXPECT_EQ(buffer.size(), std::min<int64_t>(max_size, total)) << "trial " << trial;
    EXPECT_EQ(sorted_values(kept), sorted_values(share)) << "trial " << trial;
    if (max_size >= topics) {
      EXPECT_EQ(kept.size(), sizes.size()) << "trial " << trial;
    }
    expect_consistent(ws.db());
    buffer.remove_source(options.source);  // empty again for the next trial
    EXPECT_EQ(buffer.size(), 0);
    expect_consistent(ws.db());
  }
}

TEST(Replay, RepeatedAddsStayBoundedAndKeepSmallTopics) {
  const fs::path dir = test_dir();
  Workspace ws = Workspace::init((dir / "ws").string());
  ReplayBuffer buffer(ws.db());
  buffer.set_max_size(60);
  buffer.add(make_examples({{"rare", 3}, {"old", 20}}), AddOptions());
  for (int round = 0; round < 5; ++round)
    buffer.add(make_examples({{"hot", 40}, {"new" + std::to_string(round), 2}}, round * 100), AddOptions());
  const auto kept = topic_counts(buffer);
  EXPECT_EQ(buffer.size(), 60);
  EXPECT_EQ(kept.at("rare"), 3);
  for (int round = 0; round < 5; ++round) EXPECT_EQ(kept.at("new" + std::to_string(round)), 2);
  expect_consistent(ws.db());
  EXPECT_EQ(buffer.set_max_size(10), 50);
  EXPECT_EQ(buffer.size(), 10);
  EXPECT_EQ(topic_counts(buffer).size(), 8u);  // still every topic
  expect_consistent(ws.db());
  EXPECT_THROW(buffer.set_max_size(0), ConfigError);
}

TEST(Replay, StageThenCommitOrDiscard) {
  const fs::path dir = test_dir();
  Workspace ws = Workspace::init((dir / "ws").string());
  ReplayBuffer buffer(ws.db());
  buffer.add(make_examples({{"a", 3}}), AddOptions());
  AddOptions options;
  options.source = "run-7";
  const std::string file = write_jsonl(dir / "new.jsonl", make_examples({{"a", 5}, {"b", 4}}));
  EXPECT_EQ(buffer.stage_files("run-7", {file}, options), 9);
  EXPECT_EQ(buffer.stage("run-8", make_examples({{"c", 2}}), options), 2);
  EXPECT_EQ(buffer.size(), 3);
  EXPECT_EQ(buffer.staged_count("run-7"), 9);
  {
    Transaction outer(ws.db());  // a promotion that fails: the commit goes with it
    buffer.commit_stage("run-7");
  }
  EXPECT_EQ(buffer.size(), 3);
  EXPECT_EQ(buffer.staged_count("run-7"), 9);
  const AddResult r = buffer.commit_stage("run-7");
  EXPECT_EQ(r.read, 9);
  EXPECT_EQ(r.added, 6);  // a0..a2 were already there
  EXPECT_EQ(buffer.size(), 9);
  EXPECT_EQ(buffer.staged_count("run-7"), 0);
  EXPECT_EQ(buffer.discard_stage("run-8"), 2);
  EXPECT_EQ(buffer.size(), 9);
  EXPECT_EQ(buffer.stats(0).per_source.back(), std::make_pair(std::string("run-7"), int64_t{6}));
  expect_consistent(ws.db());
}

TEST(Replay, RemoveSourceAndExport) {
  const fs::path dir = test_dir();
  Workspace ws = Workspace::init((dir / "ws").string());
  ReplayBuffer buffer(ws.db());
  AddOptions v1, v2;
  v1.source = "v1";
  v2.source = "v2";
  buffer.add(make_examples({{"a", 6}, {"b", 2}}), v1);
  buffer.add(make_examples({{"a", 3}, {"c", 4}}, 50), v2);
  EXPECT_EQ(buffer.remove_source("v1"), 8);
  EXPECT_EQ(buffer.remove_source("nobody"), 0);
  EXPECT_EQ(buffer.size(), 7);
  expect_consistent(ws.db());
  const fs::path out = dir / "export.jsonl";
  EXPECT_EQ(buffer.export_jsonl(out.string()), 7);
  const auto lines = read_lines(out);
  ASSERT_EQ(lines.size(), 7u);
  EXPECT_EQ(lines[0], to_jsonl(make_example("a", 50)));  // oldest first
  EXPECT_EQ(read_chat_file(out.string()).size(), 7u);   // valid chat JSONL
}

}  // namespace
}  // namespace retain
