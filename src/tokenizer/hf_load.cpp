// Reading a tokenizer.json into HfTokenizer's parts (hf_tokenizer.h): each component by its type,
// every error naming the file and the JSON field.
#include <algorithm>

#include "hf_internal.h"
#include "retain/config.h"
#include "retain/errors.h"
#include "retain/fileio.h"
#include "retain/hf_tokenizer.h"

namespace retain {
namespace {

constexpr int64_t kMaxId = int64_t{1} << 24;

// "a b" → {"a", "b"}; nullopt unless exactly two non-empty parts separated by one space.
std::optional<std::pair<std::string, std::string>> split_merge(const std::string& line) {
  const size_t space = line.find(' ');
  if (space == std::string::npos || space == 0 || space + 1 == line.size() ||
      line.find(' ', space + 1) != std::string::npos)
    return std::nullopt;
  return std::make_pair(line.substr(0, space), line.substr(space + 1));
}

std::optional<std::string> optional_string(const nlohmann::json& model, const char* key) {
  const auto it = model.find(key);
  if (it == model.end() || it->is_null()) return std::nullopt;
  return it->get<std::string>();
}

}  // namespace

nlohmann::json hf::read_json(const std::string& path) {
  std::string text;
  try {
    text = read_file(path);
  } catch (const Error& e) {
    throw CheckpointError(std::string("cannot read ") + e.what());
  }
  return parse_json<CheckpointError>(text, path);
}

std::unique_ptr<HfTokenizer> HfTokenizer::from_file(const std::string& path) {
  std::string text;
  try {
    text = read_file(path);
  } catch (const Error& e) {
    throw CheckpointError(std::string("cannot read tokenizer file: ") + e.what());
  }
  return from_json_text(std::move(text), path);
}

std::unique_ptr<HfTokenizer> HfTokenizer::from_json_text(std::string text, const std::string& where) {
  const nlohmann::json j = parse_json<CheckpointError>(text, where);
  if (!j.is_object()) throw CheckpointError(where + ": expected a JSON object");
  std::unique_ptr<HfTokenizer> tok(new HfTokenizer());
  tok->json_text_ = std::move(text);
  std::string field = "normalizer";  // the field being read, for errors
  try {
    const nlohmann::json null;
    tok->normalizer_ = hf::make_normalizer(j.value("normalizer", null), where + ": normalizer");
    field = "pre_tokenizer";
    tok->pre_tokenizer_ = hf::make_pre_tokenizer(j.value("pre_tokenizer", null), where + ": pre_tokenizer");
    field = "decoder";
    tok->decoder_ = hf::make_decoder(j.value("decoder", null), where + ": decoder");

    field = "model";
    if (!j.contains("model") || !j["model"].is_object()) throw CheckpointError(where + ": model is missing");
    const nlohmann::json& model = j["model"];
    const std::string type = model.value("type", "BPE");
    if (type != "BPE")
      throw CheckpointError(where + ": model.type is " + nlohmann::json(type).dump() +
                            "; retain reads BPE models (SentencePiece Unigram, WordPiece and WordLevel are not supported)");
    const auto dropout = model.value("dropout", nlohmann::json());
    if (!dropout.is_null() && dropout.get<double>() != 0.0)
      throw CheckpointError(where + ": model.dropout is " + dropout.dump() + "; retain reads BPE without dropout");
    field = "model.vocab";
    if (!model.contains("vocab") || !model["vocab"].is_object())
      throw CheckpointError(where + ": model.vocab: expected an object {\"token\": id, ...}");
    std::unordered_map<std::string, int64_t> vocab;
    vocab.reserve(model["vocab"].size());
    for (const auto& [token, id] : model["vocab"].items()) {
      if (!id.is_number_integer())
        throw CheckpointError(where + ": model.vocab: token " + nlohmann::json(token).dump() + " has id " +
                              id.dump() + ", expected a non-negative integer");
      vocab.emplace(token, id.get<int64_t>());
    }
    field = "model.merges";
    std::vector<std::pair<std::string, std::string>> merges;
    std::vector<std::string> merge_where;
    const auto& list = model.value("merges", nlohmann::json::array());
    if (!list.is_array()) throw CheckpointError(where + ": model.merges: expected an array");
    merges.reserve(list.size());
    merge_where.reserve(list.size());
    for (size_t i = 0; i < list.size(); ++i) {
      const auto& m = list[i];
      std::optional<std::pair<std::string, std::string>> merge;
      if (m.is_string()) merge = split_merge(m.get<std::string>());
      else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string())
        merge = std::make_pair(m[0].get<std::string>(), m[1].get<std::string>());
      merge_where.push_back("model.merges[" + std::to_string(i) + "]");
      if (!merge)
        throw CheckpointError(where + ": " + merge_where.back() +
                              ": expected \"left right\" or [\"left\", \"right\"], got " + m.dump());
      merges.push_back(std::move(*merge));
    }
    field = "model";
    hf::BpeModel::Options options;
    options.unk_token = optional_string(model, "unk_token");
    options.fuse_unk = model.value("fuse_unk", false);
    options.byte_fallback = model.value("byte_fallback", false);
    options.ignore_merges = model.value("ignore_merges", false);
    options.continuing_subword_prefix = optional_string(model, "continuing_subword_prefix").value_or("");
    options.end_of_word_suffix = optional_string(model, "end_of_word_suffix").value_or("");
    tok->model_ = std::make_unique<hf::BpeModel>(std::move(vocab), merges, merge_where, options, where);

    field = "added_tokens";
    const auto& added = j.value("added_tokens", nlohmann::json::array());
    if (!added.is_array()) throw CheckpointError(where + ": added_tokens: expected an array");
    int64_t max_id = tok->model_->max_id();
    for (const auto& t : added) max_id = std::max(max_id, t.value("id", int64_t{-1}));
    if (max_id >= kMaxId)
      throw CheckpointError(where + ": added_tokens: id " + std::to_string(max_id) + " is too large (at most " +
                            std::to_string(kMaxId - 1) + ")");
    tok->vocab_size_ = max_id + 1;
    tok->added_index_of_id_.assign(tok->vocab_size_, -1);
    for (size_t i = 0; i < added.size(); ++i) {
      const auto& t = added[i];
      const std::string at = where + ": added_tokens[" + std::to_string(i) + "]";
      field = "added_tokens[" + std::to_string(i) + "]";
      if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || t["id"].get<int64_t>() < 0 ||
          !t.contains("content") || !t["content"].is_string() || t["content"].get<std::string>().empty())
        throw CheckpointError(at + ": expected {\"id\": non-negative integer, \"content\": non-empty string, ...}, got " +
                              t.dump());
      AddedToken a;
      a.content = t["content"].get<std::string>();
      a.id = t["id"].get<int64_t>();
      a.special = t.value("special", false);
      a.single_word = t.value("single_word", false);
      a.lstrip = t.value("lstrip", false);
      a.rstrip = t.value("rstrip", false);
      a.normalized = t.value("normalized", !a.special);
      if (const std::string* token = tok->model_->token(a.id); token != nullptr && *token != a.content)
        throw CheckpointError(at + ".id: id " + std::to_string(a.id) + " of " + nlohmann::json(a.content).dump() +
                              " is model.vocab's token " + nlohmann::json(*token).dump());
      if (tok->added_index_of_id_[a.id] >= 0)
        throw CheckpointError(at + ".id: id " + std::to_string(a.id) + " is also added token " +
                              nlohmann::json(tok->added_[tok->added_index_of_id_[a.id]].content).dump());
      tok->added_index_of_id_[a.id] = static_cast<int64_t>(tok->added_.size());
      tok->added_.push_back(std::move(a));
    }
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(where + ": " + field + ": unexpected value: " + e.what());
  }
  // Longest first, so that the first candidate matching at a position is the longest there.
  std::vector<size_t> order(tok->added_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return tok->added_[a].content.size() > tok->added_[b].content.size();
  });
  for (const size_t i : order)
    tok->added_by_first_byte_[static_cast<unsigned char>(tok->added_[i].content[0])].push_back(i);
  return tok;
}

}  // namespace retain
