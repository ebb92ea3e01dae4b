// GPT-2 byte-level BPE (see bpe.h): the vocabulary's index, merges by rank with a piece cache,
// special tokens and decoding. Loading files is in bpe_load.cpp, the regex in bpe_pre_tokenize.cpp.
#include "retain/bpe.h"

#include <algorithm>
#include <cstdio>
#include <queue>

#include "retain/errors.h"

namespace retain {
namespace {

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

// The bytes a vocabulary entry spells in GPT-2's alphabet. A character outside the alphabet (only
// in unusual files) stands for its own UTF-8 bytes.
std::string spelled_bytes(const std::string& token) {
  static const std::unordered_map<std::string, char> kByteOf = [] {
    std::unordered_map<std::string, char> m;
    for (int b = 0; b < 256; ++b) m[gpt2_byte_to_unicode()[b]] = static_cast<char>(b);
    return m;
  }();
  std::string bytes;
  size_t at = 0;
  while (at < token.size()) {
    const auto lead = static_cast<unsigned char>(token[at]);
    const size_t n = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
    const std::string ch = token.substr(at, n);
    const auto it = kByteOf.find(ch);
    if (it != kByteOf.end()) bytes.push_back(it->second);
    else bytes += ch;
    at += n;
  }
  return bytes;
}

}  // namespace

Gpt2BpeTokenizer::Gpt2BpeTokenizer(Files files)
    : vocab_(std::move(files.vocab)), merges_(std::move(files.merges)),
      specials_(std::move(files.specials)) {
  const std::string& where = files.where;
  int64_t max_id = -1;
  for (const auto& [token, id] : vocab_) max_id = std::max(max_id, id);
  for (const auto& [text, id] : specials_) max_id = std::max(max_id, id);
  // Every id up to the largest gets a slot, so a stray huge id must not allocate gigabytes.
  if (max_id >= kMaxVocabSize - 4)
    throw CheckpointError(where + ": token id " + std::to_string(max_id) + " is too large (at most " +
                          std::to_string(kMaxVocabSize - 5) + ")");

  // Chat tokens keep an id the files give them; the others are appended.
  int64_t next_id = max_id + 1;
  for (size_t i = 0; i < kChatTokens.size(); ++i) {
    const std::string name = kChatTokens[i];
    if (specials_.count(name) == 0) {
      const auto it = vocab_.find(name);
      specials_[name] = it != vocab_.end() ? it->second : next_id++;
    }
    chat_ids_[i] = specials_.at(name);
  }
  vocab_size_ = next_id;

  id_bytes_.assign(vocab_size_, std::string());
  id_known_.assign(vocab_size_, 0);
  std::vector<const std::string*> token_of(vocab_size_, nullptr);
  for (const auto& [token, id] : vocab_) {
    if (id < 0) throw CheckpointError(where + ": token \"" + token + "\" has a negative id");
    if (token_of[id] != nullptr)
      throw CheckpointError(where + ": tokens \"" + *token_of[id] + "\" and \"" + token +
                            "\" share id " + std::to_string(id));
    token_of[id] = &token;
    id_bytes_[id] = spelled_bytes(token);
    id_known_[id] = 1;
  }
  for (const auto& [text, id] : specials_) {
    if (id < 0) throw CheckpointError(where + ": special token \"" + text + "\" has a negative id");
    if (token_of[id] != nullptr && *token_of[id] != text)
      throw CheckpointError(where + ": special token \"" + text + "\" has id " + std::to_string(id) +
                            ", which the vocabulary gives to \"" + *token_of[id] + "\"");
    id_bytes_[id] = text;
    id_known_[id] = 1;
  }
  for (int b = 0; b < 256; ++b) {
    const auto it = vocab_.find(gpt2_byte_to_unicode()[b]);
    if (it == vocab_.end()) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", b);
      throw CheckpointError(where + ": no token for byte " + hex + " (\"" + gpt2_byte_to_unicode()[b] +
                            "\"); a byte-level BPE vocabulary has all 256");
    }
    byte_ids_[b] = static_cast<int32_t>(it->second);
  }
  // A repeated merge takes its last rank, as in GPT-2's dict(zip(merges, range(len(merges)))).
  for (size_t rank = 0; rank < merges_.size(); ++rank) {
    const auto& [left, right] = merges_[rank];
    const std::string& at = rank < files.merge_where.size() ? files.merge_where[rank] : where;
    for (const auto& [what, token] : {std::pair<const char*, std::string>{"part", left},
                                      {"part", right}, {"result", left + right}}) {
      if (vocab_.count(token) == 0)
        throw CheckpointError(at + ": merge " + what + " \"" + token + "\" is not in the vocabulary " +
                              where);
    }
    rules_[pair_key(vocab_.at(left), vocab_.at(right))] = {static_cast<int32_t>(rank),
                                                           static_cast<int32_t>(vocab_.at(left + right))};
  }
}

// BPE on one piece, with the semantics of GPT-2's bpe(): take the lowest-ranked pair present, merge
// every occurrence of it left to right, repeat. A heap of (rank, position) keeps this O(n log n)
// for long pieces (runs of spaces, long words); all occurrences of one rank are merged before the
// pairs they create are considered, so even a merges file whose ranks are out of order is applied
// as the reference does.
std::vector<int32_t> Gpt2BpeTokenizer::merge_piece(std::string_view piece) const {
  const int32_t n = static_cast<int32_t>(piece.size());
  std::vector<int32_t> id(n), next(n), prev(n);  // symbols, keyed by their first byte's position
  for (int32_t i = 0; i < n; ++i) {
    id[i] = byte_ids_[static_cast<unsigned char>(piece[i])];
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  struct Candidate {
    int32_t rank, left, right, left_id, right_id, merged_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  auto push = [&](int32_t left) {
    if (left < 0 || next[left] < 0) return;
    const int32_t right = next[left];
    const auto it = rules_.find(pair_key(id[left], id[right]));
    if (it != rules_.end())
      heap.push({it->second.rank, left, right, id[left], id[right], it->second.id});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  std::vector<Candidate> batch;
  std::vector<int32_t> merged;
  while (!heap.empty()) {
    const int32_t rank = heap.top().rank;
    batch.clear();
    while (!heap.empty() && heap.top().rank == rank) {
      batch.push_back(heap.top());
      heap.pop();
    }
    merged.clear();
    for (const Candidate& c : batch) {  // in position order
      // Stale when either symbol has changed (a symbol only grows, so its id tells) or moved.
      if (id[c.left] != c.left_id || next[c.left] != c.right || id[c.right] != c.right_id) continue;
      id[c.left] = c.merged_id;
      id[c.right] = -1;
      next[c.left] = next[c.right];
      if (next[c.left] >= 0) prev[next[c.left]] = c.left;
      merged.push_back(c.left);
    }
    for (const int32_t left : merged) {
      if (id[left] < 0) continue;
      push(prev[left]);
      push(left);
    }
  }
  std::vector<int32_t> out;
  for (int32_t i = n > 0 ? 0 : -1; i >= 0; i = next[i]) out.push_back(id[i]);
  return out;
}

void Gpt2BpeTokenizer::encode_plain(std::string_view text, std::vector<int64_t>& out) const {
  for (const std::string_view piece : gpt2_pre_tokenize(text)) {
    if (piece.size() == 1) {
      out.push_back(byte_ids_[static_cast<unsigned char>(piece[0])]);
      continue;
    }
    const bool cacheable = piece.size() <= kCacheMaxPieceBytes;
    if (cacheable) {
      std::lock_guard<std::mutex> lock(cache_mutex_);
      const auto it = cache_.find(std::string(piece));
      if (it != cache_.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        continue;
      }
    }
    std::vector<int32_t> ids = merge_piece(piece);
    out.insert(out.end(), ids.begin(), ids.end());
    if (cacheable) {
      std::lock_guard<std::mutex> lock(cache_mutex_);
      if (cache_.size() >= kCacheCapacity) cache_.clear();
      cache_.emplace(std::string(piece), std::move(ids));
    }
  }
}

std::vector<int64_t> Gpt2BpeTokenizer::encode(const std::string& text) const {
  std::vector<int64_t> out;
  out.reserve(text.size() / 3 + 1);
  encode_plain(text, out);
  return out;
}

std::vector<int64_t> Gpt2BpeTokenizer::encode_with_specials(const std::string& text) const {
  std::vector<int64_t> out;
  size_t plain_begin = 0, at = 0;
  while (at < text.size()) {
    // Longest special token starting here (specials_ is small: a scan is cheaper than a trie).
    const std::pair<const std::string, int64_t>* found = nullptr;
    for (const auto& special : specials_) {
      if (!special.first.empty() && text.compare(at, special.first.size(), special.first) == 0 &&
          (found == nullptr || special.first.size() > found->first.size()))
        found = &special;
    }
    if (found == nullptr) {
      ++at;
      continue;
    }
    encode_plain(std::string_view(text).substr(plain_begin, at - plain_begin), out);
    out.push_back(found->second);
    at += found->first.size();
    plain_begin = at;
  }
  encode_plain(std::string_view(text).substr(plain_begin), out);
  return out;
}

std::string Gpt2BpeTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string text;
  for (const int64_t id : ids) {
    if (id < 0 || id >= vocab_size_ || !id_known_[id])
      throw Error("token id " + std::to_string(id) + " is not in the GPT-2 BPE vocabulary (" +
                  std::to_string(vocab_size_) + " ids)");
    text += id_bytes_[id];
  }
  return text;
}

int64_t Gpt2BpeTokenizer::role_token(Role role) const {
  switch (role) {
    case Role::kSystem: return chat_ids_[0];
    case Role::kUser: return chat_ids_[1];
    case Role::kAssistant: return chat_ids_[2];
  }
  throw Error("unknown role " + std::to_string(static_cast<int>(role)));
}

std::optional<int64_t> Gpt2BpeTokenizer::special_token(const std::string& text) const {
  const auto it = specials_.find(text);
  if (it == specials_.end()) return std::nullopt;
  return it->second;
}

std::optional<int64_t> Gpt2BpeTokenizer::token_id(const std::string& token) const {
  if (const auto special = special_token(token)) return special;
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

size_t Gpt2BpeTokenizer::cache_size() const {
  std::lock_guard<std::mutex> lock(cache_mutex_);
  return cache_.size();
}

nlohmann::json Gpt2BpeTokenizer::to_json() const {
  nlohmann::json merges = nlohmann::json::array();
  for (const auto& [left, right] : merges_) merges.push_back(left + " " + right);
  return {{"type", type()},
          {"format_version", 1},
          {"vocab", vocab_},
          {"merges", std::move(merges)},
          {"special_tokens", specials_}};
}

}  // namespace retain
