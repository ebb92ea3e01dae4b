// Writing a retain model directory as a Hugging Face GPT-2 directory (see hf.h): the inverse of
// hf_import.cpp's names and layouts, plus the tokenizer files transformers' tokenizers read.
#include <algorithm>
#include <filesystem>

#include "retain/errors.h"
#include "retain/fileio.h"
#include "retain/gpt_hf.h"

namespace retain {
namespace {

namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;

// The chat template of tokenizer.h in Jinja, for transformers' apply_chat_template.
constexpr const char* kChatTemplate =
    "{% for message in messages %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}";

// Special tokens by id.
std::vector<std::pair<int64_t, std::string>> specials_by_id(const Gpt2BpeTokenizer& tokenizer) {
  std::vector<std::pair<int64_t, std::string>> out;
  for (const auto& [text, id] : tokenizer.special_tokens()) out.emplace_back(id, text);
  std::sort(out.begin(), out.end());
  return out;
}

// <|endoftext|> keeps GPT-2's own flags (normalized, as in GPT-2's files); the chat tokens are
// matched verbatim.
ordered_json added_token(int64_t id, const std::string& text, bool with_id) {
  ordered_json t;
  if (with_id) t["id"] = id;
  t["content"] = text;
  t["single_word"] = false;
  t["lstrip"] = false;
  t["rstrip"] = false;
  t["normalized"] = text == Gpt2BpeTokenizer::kEndOfText;
  t["special"] = true;
  return t;
}

}  // namespace

TensorMap to_hf_gpt2_tensors(const TensorMap& tensors) {
  TensorMap out;
  for (const auto& [name, tensor] : tensors) {
    const bool conv1d = is_conv1d_weight(name);
    torch::Tensor t = tensor.detach().to(torch::kCPU, torch::kFloat);
    out["transformer." + name] = conv1d ? t.t().contiguous() : t.contiguous();
  }
  return out;
}

nlohmann::json hf_gpt2_config(const GptConfig& c, const Gpt2BpeTokenizer& tokenizer) {
  nlohmann::json j = c.to_json();
  j["n_ctx"] = c.n_positions;
  j["initializer_range"] = 0.02;
  j["scale_attn_weights"] = true;
  j["scale_attn_by_inverse_layer_idx"] = false;
  j["reorder_and_upcast_attn"] = false;
  j["use_cache"] = true;
  j["torch_dtype"] = "float32";
  if (const auto eot = tokenizer.special_token(Gpt2BpeTokenizer::kEndOfText)) {
    j["bos_token_id"] = *eot;
    j["eos_token_id"] = *eot;
  }
  return j;
}

std::vector<std::pair<std::string, std::string>> hf_tokenizer_files(const Gpt2BpeTokenizer& tokenizer,
                                                                    int64_t model_max_length) {
  std::vector<std::pair<int64_t, std::string>> vocab_by_id;
  for (const auto& [token, id] : tokenizer.vocab()) vocab_by_id.emplace_back(id, token);
  std::sort(vocab_by_id.begin(), vocab_by_id.end());
  ordered_json vocab = ordered_json::object();
  for (const auto& [id, token] : vocab_by_id) vocab[token] = id;
  std::string merges_txt = "#version: 0.2\n";
  ordered_json merges = ordered_json::array();
  for (const auto& [a, b] : tokenizer.merges()) {
    merges_txt += a + " " + b + "\n";
    merges.push_back(a + " " + b);
  }

  const auto specials = specials_by_id(tokenizer);
  ordered_json added_tokens = ordered_json::array();
  ordered_json added_decoder = ordered_json::object();
  ordered_json added_json = ordered_json::object();  // added_tokens.json: ids beyond vocab.json
  ordered_json additional = ordered_json::array();
  for (const auto& [id, text] : specials) {
    added_tokens.push_back(added_token(id, text, true));
    added_decoder[std::to_string(id)] = added_token(id, text, false);
    if (!tokenizer.vocab().count(text)) added_json[text] = id;
    if (text != Gpt2BpeTokenizer::kEndOfText) additional.push_back(text);
  }
  const ordered_json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false},
                                   {"trim_offsets", true}, {"use_regex", true}};
  ordered_json tokenizer_json = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added_tokens},
      {"normalizer", nullptr},
      {"pre_tokenizer", byte_level},
      {"post_processor", byte_level},
      {"decoder", byte_level},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", ""},
        {"end_of_word_suffix", ""}, {"fuse_unk", false}, {"byte_fallback", false},
        {"vocab", vocab}, {"merges", merges}}}};

  ordered_json config = {{"tokenizer_class", "GPT2Tokenizer"},
                         {"model_max_length", model_max_length},
                         {"add_prefix_space", false},
                         {"add_bos_token", false},
                         {"clean_up_tokenization_spaces", false},
                         {"added_tokens_decoder", added_decoder},
                         {"additional_special_tokens", additional},
                         {"chat_template", kChatTemplate}};
  ordered_json special_map = {{"additional_special_tokens", additional}};
  if (tokenizer.special_token(Gpt2BpeTokenizer::kEndOfText)) {
    for (const char* key : {"bos_token", "eos_token", "unk_token"}) {
      config[key] = Gpt2BpeTokenizer::kEndOfText;
      special_map[key] = Gpt2BpeTokenizer::kEndOfText;
    }
  }
  return {{"vocab.json", vocab.dump() + "\n"},
          {"merges.txt", merges_txt},
          {"tokenizer.json", tokenizer_json.dump(2) + "\n"},
          {"tokenizer_config.json", config.dump(2) + "\n"},
          {"special_tokens_map.json", special_map.dump(2) + "\n"},
          {"added_tokens.json", added_json.dump(2) + "\n"}};
}

void export_hf_gpt2(const std::string& model_dir, const std::string& out_dir, bool overwrite) {
  if (fs::exists(out_dir) && !overwrite)
    throw CheckpointError(out_dir + ": already exists; pass --overwrite to replace it");
  LoadedModel loaded = load_model_dir(model_dir, 0);
  if (!loaded.has_weights) throw CheckpointError(model_dir + ": no " + std::string(kWeightsFile) + " to export");
  const auto* bpe = dynamic_cast<const Gpt2BpeTokenizer*>(loaded.tokenizer.get());
  if (bpe == nullptr) {
    throw CheckpointError(model_dir + ": its tokenizer is " + loaded.tokenizer->type() +
                          "; a Hugging Face GPT-2 directory needs a GPT-2 BPE tokenizer");
  }
  const TensorMap tensors = to_hf_gpt2_tensors(parameter_tensors(*loaded.model));

  std::vector<std::pair<std::string, std::string>> files = hf_tokenizer_files(*bpe, loaded.config.n_positions);
  files.emplace_back(kConfigFile, hf_gpt2_config(loaded.config, *bpe).dump(2) + "\n");
  nlohmann::json generation = nlohmann::json::object();
  if (const auto eot = bpe->special_token(Gpt2BpeTokenizer::kEndOfText)) generation["bos_token_id"] = *eot;
  // A reply ends at <|end|>; <|endoftext|> ends a plain text.
  nlohmann::json eos = {bpe->end_of_turn_token()};
  if (const auto eot = bpe->special_token(Gpt2BpeTokenizer::kEndOfText)) eos.push_back(*eot);
  generation["eos_token_id"] = eos;
  files.emplace_back("generation_config.json", generation.dump(2) + "\n");

  build_directory(out_dir, overwrite, [&](const std::string& tmp) {
    save_safetensors((fs::path(tmp) / kWeightsFile).string(), tensors, {{"format", "pt"}});
    for (const auto& [name, text] : files) write_file_atomic((fs::path(tmp) / name).string(), text);
  });
}

}  // namespace retain
