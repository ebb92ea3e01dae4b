// The BPE model of tokenizer.json (hf_internal.h), with the semantics of the `tokenizers`
// library's models::bpe: a word starts as one symbol per character (with the continuing-subword
// prefix on all but the first and the end-of-word suffix on the last; an unknown character
// becomes its <0xXX> byte tokens under byte_fallback, else the unk token, else nothing), then the
// lowest-ranked merge present is applied, leftmost first, until none applies.
#include <cstdio>
#include <queue>

#include "hf_internal.h"
#include "retain/errors.h"

namespace retain::hf {
namespace {

uint64_t pair_key(int64_t left, int64_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

constexpr int64_t kMaxId = int64_t{1} << 24;

}  // namespace

BpeModel::BpeModel(std::unordered_map<std::string, int64_t> vocab,
                   const std::vector<std::pair<std::string, std::string>>& merges,
                   const std::vector<std::string>& where, Options options, const std::string& file)
    : vocab_(std::move(vocab)), options_(std::move(options)) {
  int64_t max_id = -1;
  for (const auto& [token, id] : vocab_) {
    if (id < 0 || id >= kMaxId)
      throw CheckpointError(file + ": model.vocab: token " + nlohmann::json(token).dump() + " has id " +
                            std::to_string(id) + " (expected 0.." + std::to_string(kMaxId - 1) + ")");
    max_id = std::max(max_id, id);
  }
  id_to_token_.assign(max_id + 1, nullptr);
  for (const auto& entry : vocab_) {
    if (id_to_token_[entry.second] != nullptr)
      throw CheckpointError(file + ": model.vocab: tokens " + nlohmann::json(*id_to_token_[entry.second]).dump() +
                            " and " + nlohmann::json(entry.first).dump() + " share id " +
                            std::to_string(entry.second));
    id_to_token_[entry.second] = &entry.first;
  }
  const size_t prefix = options_.continuing_subword_prefix.size();
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    const std::string merged =
        left + (prefix > 0 && right.compare(0, prefix, options_.continuing_subword_prefix) == 0 ? right.substr(prefix)
                                                                                               : right);
    for (const auto& [what, token] : {std::pair<const char*, const std::string*>{"part", &left},
                                      {"part", &right}, {"result", &merged}}) {
      if (vocab_.count(*token) == 0)
        throw CheckpointError(file + ": " + where[rank] + ": merge " + what + " " + nlohmann::json(*token).dump() +
                              " is not in model.vocab");
    }
    // A repeated merge takes its last rank, as in tokenizers (a map collected in order).
    rules_[pair_key(vocab_.at(left), vocab_.at(right))] =
        Rule{static_cast<int32_t>(rank), static_cast<int32_t>(vocab_.at(merged))};
  }
  byte_ids_.fill(-1);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    if (const auto it = vocab_.find(name); it != vocab_.end()) byte_ids_[b] = static_cast<int32_t>(it->second);
  }
  if (options_.unk_token) {
    const auto it = vocab_.find(*options_.unk_token);
    if (it == vocab_.end())
      throw CheckpointError(file + ": model.unk_token " + nlohmann::json(*options_.unk_token).dump() +
                            " is not in model.vocab");
    unk_id_ = it->second;
  }
}

std::optional<int64_t> BpeModel::id(const std::string& token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::token(int64_t id) const {
  return id >= 0 && id < static_cast<int64_t>(id_to_token_.size()) ? id_to_token_[id] : nullptr;
}

std::vector<int64_t> BpeModel::merge_word(std::string_view piece) const {
  // Initial symbols.
  std::vector<int64_t> id;
  const auto* bytes = reinterpret_cast<const unsigned char*>(piece.data());
  bool last_unk = false;
  for (size_t at = 0; at < piece.size();) {
    const size_t n = std::max<size_t>(1, utf8_length(bytes + at, piece.size() - at));
    std::string symbol(piece.substr(at, n));
    if (at > 0) symbol = options_.continuing_subword_prefix + symbol;
    if (at + n == piece.size()) symbol += options_.end_of_word_suffix;
    at += n;
    if (const auto it = vocab_.find(symbol); it != vocab_.end()) {
      id.push_back(it->second);
      last_unk = false;
      continue;
    }
    if (options_.byte_fallback) {
      bool all = true;
      for (size_t i = at - n; i < at; ++i) all = all && byte_ids_[bytes[i]] >= 0;
      if (all) {
        for (size_t i = at - n; i < at; ++i) id.push_back(byte_ids_[bytes[i]]);
        last_unk = false;
        continue;
      }
    }
    if (unk_id_) {
      if (!(options_.fuse_unk && last_unk)) id.push_back(*unk_id_);
      last_unk = true;
    }
  }
  // Merges: a heap of (rank, position); a candidate is stale when its symbols changed.
  const int32_t n = static_cast<int32_t>(id.size());
  std::vector<int32_t> next(n), prev(n);
  for (int32_t i = 0; i < n; ++i) next[i] = i + 1 < n ? i + 1 : -1, prev[i] = i - 1;
  struct Candidate {
    int32_t rank, left, right;
    int64_t left_id, right_id, merged_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  auto push = [&](int32_t left) {
    if (left < 0 || next[left] < 0) return;
    const int32_t right = next[left];
    const auto it = rules_.find(pair_key(id[left], id[right]));
    if (it != rules_.end()) heap.push({it->second.rank, left, right, id[left], id[right], it->second.id});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    if (id[c.left] != c.left_id || next[c.left] != c.right || id[c.right] != c.right_id) continue;
    id[c.left] = c.merged_id;
    id[c.right] = -1;
    next[c.left] = next[c.right];
    if (next[c.left] >= 0) prev[next[c.left]] = c.left;
    push(prev[c.left]);
    push(c.left);
  }
  std::vector<int64_t> out;
  for (int32_t i = n > 0 ? 0 : -1; i >= 0; i = next[i]) out.push_back(id[i]);
  return out;
}

void BpeModel::encode(std::string_view piece, std::vector<int64_t>& out) const {
  if (piece.empty()) return;
  if (options_.ignore_merges) {
    if (const auto it = vocab_.find(std::string(piece)); it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  const bool cacheable = piece.size() <= kCacheMaxPieceBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    const auto it = cache_.find(std::string(piece));
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int64_t> ids = merge_word(piece);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() >= kCacheCapacity) cache_.clear();
    cache_.emplace(std::string(piece), std::move(ids));
  }
}

}  // namespace retain::hf
