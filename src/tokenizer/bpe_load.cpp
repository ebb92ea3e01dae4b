// Loading a GPT-2 BPE tokenizer (see bpe.h): vocab.json + merges.txt, a Hugging Face
// tokenizer.json, or retain's retain_tokenizer.json. Each loader only reads and checks its file's
// shape; the Gpt2BpeTokenizer constructor checks that the pieces fit together.
#include <filesystem>

#include "hf_internal.h"
#include "retain/bpe.h"
#include "retain/errors.h"
#include "retain/fileio.h"

namespace retain {
namespace {

namespace fs = std::filesystem;

// {"token": id, ...} → map; `where` names the object in errors.
std::unordered_map<std::string, int64_t> read_id_map(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) throw CheckpointError(where + ": expected an object {\"token\": id, ...}");
  std::unordered_map<std::string, int64_t> out;
  for (const auto& [token, id] : j.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0)
      throw CheckpointError(where + ": token \"" + token + "\" has id " + id.dump() +
                            ", expected a non-negative integer");
    out[token] = id.get<int64_t>();
  }
  return out;
}

// "a b" → {"a", "b"}; nullopt unless exactly two non-empty parts separated by one space.
std::optional<std::pair<std::string, std::string>> split_merge(std::string_view line) {
  const size_t space = line.find(' ');
  if (space == std::string_view::npos || space == 0 || space + 1 == line.size() ||
      line.find(' ', space + 1) != std::string_view::npos)
    return std::nullopt;
  return std::make_pair(std::string(line.substr(0, space)), std::string(line.substr(space + 1)));
}

// The merges of an array of "a b" strings (or, in newer tokenizer.json files, ["a", "b"] pairs).
void read_merge_array(const nlohmann::json& j, const std::string& where,
                      Gpt2BpeTokenizer::Files& files) {
  if (!j.is_array()) throw CheckpointError(where + ": expected an array of merges");
  for (size_t i = 0; i < j.size(); ++i) {
    const nlohmann::json& m = j[i];
    const std::string at = where + "[" + std::to_string(i) + "]";
    std::optional<std::pair<std::string, std::string>> merge;
    if (m.is_string()) {
      merge = split_merge(m.get<std::string>());
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      merge = std::make_pair(m[0].get<std::string>(), m[1].get<std::string>());
    }
    if (!merge)
      throw CheckpointError(at + ": expected \"left right\" or [\"left\", \"right\"], got " + m.dump());
    files.merges.push_back(std::move(*merge));
    files.merge_where.push_back(at);
  }
}

// Runs `read`, turning a JSON type error (a key of the wrong type) into a CheckpointError.
template <typename F>
auto checked(const std::string& where, F&& read) {
  try {
    return read();
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(where + ": unexpected value: " + e.what());
  }
}

// The tokenizer.json `j` read from `path`, checked to be GPT-2 byte-level BPE.
Gpt2BpeTokenizer::Files read_tokenizer_json(const nlohmann::json& j, const std::string& path) {
  if (!j.is_object()) throw CheckpointError(path + ": expected a JSON object");
  const auto require = [&](bool ok, const std::string& key, const std::string& expected) {
    if (!ok) {
      const nlohmann::json::json_pointer pointer("/" + key);
      throw CheckpointError(path + ": " + key + " is " +
                            (j.contains(pointer) ? j.at(pointer).dump() : std::string("missing")) +
                            "; retain reads GPT-2 byte-level BPE only (" + expected + ")");
    }
  };
  const auto& normalizer = j.value("normalizer", nlohmann::json());
  require(normalizer.is_null(), "normalizer", "no normalizer");
  const auto& pre = j.value("pre_tokenizer", nlohmann::json());
  require(pre.is_object() && pre.value("type", "") == "ByteLevel", "pre_tokenizer",
          "type ByteLevel");
  require(!pre.value("add_prefix_space", true), "pre_tokenizer/add_prefix_space", "false");
  require(pre.value("use_regex", true), "pre_tokenizer/use_regex", "true");
  const auto& model = j.value("model", nlohmann::json());
  require(model.is_object() && model.value("type", "BPE") == "BPE", "model", "type BPE");
  require(model.value("dropout", nlohmann::json()).is_null(), "model/dropout", "null");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const auto& value = model.value(key, nlohmann::json());
    require(value.is_null() || value == "", std::string("model/") + key, "null or \"\"");
  }
  Gpt2BpeTokenizer::Files files;
  files.where = path;
  files.vocab = read_id_map(model.value("vocab", nlohmann::json()), path + ": model.vocab");
  read_merge_array(model.value("merges", nlohmann::json::array()), path + ": model.merges", files);
  const auto& added = j.value("added_tokens", nlohmann::json::array());
  require(added.is_array(), "added_tokens", "an array");
  for (size_t i = 0; i < added.size(); ++i) {
    const auto& t = added[i];
    const bool ok = t.is_object() && t.contains("id") && t["id"].is_number_integer() &&
                    t["id"].get<int64_t>() >= 0 && t.contains("content") && t["content"].is_string();
    require(ok, "added_tokens/" + std::to_string(i),
            "{\"id\": non-negative integer, \"content\": string}");
    files.specials[t["content"].get<std::string>()] = t["id"].get<int64_t>();
  }
  return files;
}

bool file_exists(const fs::path& path) {
  std::error_code ec;
  return fs::exists(path, ec);
}

}  // namespace

std::unique_ptr<Gpt2BpeTokenizer> Gpt2BpeTokenizer::from_files(const std::string& vocab_json,
                                                               const std::string& merges_txt) {
  Files files;
  files.where = vocab_json;
  files.vocab = read_id_map(hf::read_json(vocab_json), vocab_json);
  std::string text;
  try {
    text = read_file(merges_txt);
  } catch (const Error& e) {
    throw CheckpointError(std::string("cannot read merges file: ") + e.what());
  }
  size_t begin = 0;
  for (int64_t line_no = 1; begin < text.size(); ++line_no) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + begin, end - begin);
    begin = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    const std::string at = merges_txt + ":" + std::to_string(line_no);
    auto merge = split_merge(line);
    if (!merge)
      throw CheckpointError(at + ": expected two tokens separated by one space, got \"" +
                            std::string(line) + "\"");
    files.merges.push_back(std::move(*merge));
    files.merge_where.push_back(at);
  }
  if (const auto it = files.vocab.find(kEndOfText); it != files.vocab.end())
    files.specials[kEndOfText] = it->second;
  return std::make_unique<Gpt2BpeTokenizer>(std::move(files));
}

std::unique_ptr<Gpt2BpeTokenizer> Gpt2BpeTokenizer::from_tokenizer_json(const std::string& path) {
  const nlohmann::json j = hf::read_json(path);
  return std::make_unique<Gpt2BpeTokenizer>(checked(path, [&] { return read_tokenizer_json(j, path); }));
}


std::unique_ptr<Gpt2BpeTokenizer> Gpt2BpeTokenizer::from_json(const nlohmann::json& config,
                                                              const std::string& where) {
  for (const char* key : {"vocab", "merges", "special_tokens"})
    if (!config.contains(key)) throw CheckpointError(where + ": missing \"" + key + "\"");
  Files files;
  files.where = where;
  files.vocab = read_id_map(config.at("vocab"), where + ": vocab");
  read_merge_array(config.at("merges"), where + ": merges", files);
  const auto specials = read_id_map(config.at("special_tokens"), where + ": special_tokens");
  files.specials.insert(specials.begin(), specials.end());
  return std::make_unique<Gpt2BpeTokenizer>(std::move(files));
}

std::unique_ptr<Gpt2BpeTokenizer> Gpt2BpeTokenizer::from_dir(const std::string& dir) {
  const fs::path root(dir);
  if (file_exists(root / "tokenizer.json"))
    return from_tokenizer_json((root / "tokenizer.json").string());
  if (file_exists(root / "vocab.json") && file_exists(root / "merges.txt"))
    return from_files((root / "vocab.json").string(), (root / "merges.txt").string());
  return nullptr;
}

}  // namespace retain
