// Replay-buffer rows: what the buffer stores of one example (its hash for deduplication, its topic
// for diverse sampling, its size, the example as one JSON line), made by the model families from
// their data (see Examples::replay_rows in family.h) and stored by the buffer (replay.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "retain/data.h"
#include "retain/hash.h"

namespace retain {

// The topic of an example: example.topic when non-empty, else the first five whitespace-separated
// words of the last user message joined by single spaces ("" when there is no user message).
std::string replay_topic(const ChatExample& example);
// SHA-256 of the canonical messages JSON ([{"role","content","weight" when 0}…]); metadata such
// as topic does not count, so the same conversation is stored once.
Sha256Digest replay_hash(const ChatExample& example);

// A buffer row before it is stored: what dedup, topic-diverse sampling and the size accounting
// need, and the example as one JSON line. replay_row makes one for a chat; the mlp family's
// feature_replay_rows (mlp.h) one for a feature example.
struct ReplayRow {
  Sha256Digest hash;
  std::string topic;
  int64_t tokens = 0;
  std::string json;
};
ReplayRow replay_row(const ChatExample& example);

}  // namespace retain
