// The gpt family's Hugging Face GPT-2 directories: import into retain's layout, export back.
//
// A Hugging Face GPT-2 directory holds config.json (model_type "gpt2"), model.safetensors (or
// shards listed in model.safetensors.index.json) and the tokenizer's files (tokenizer.json, or
// vocab.json + merges.txt). Its tensors are GPT2Model's, with or without the "transformer." prefix
// of GPT2LMHeadModel; the four Conv1D layers of a block (attn.c_attn, attn.c_proj, mlp.c_fc,
// mlp.c_proj) store their weight [in, out], where retain's Linear stores [out, in]. The layouts and
// every rule are in docs/formats.md, "Hugging Face GPT-2 directories".
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "retain/bpe.h"
#include "retain/checkpoint.h"
#include "retain/model.h"

namespace retain {

// A Hugging Face GPT-2 model, converted to retain's names and layouts (fp32, CPU).
struct HfGpt2Model {
  GptConfig config;                              // vocab_size grown to the tokenizer's when needed
  TensorMap tensors;                             // retain's parameter names
  std::unique_ptr<Gpt2BpeTokenizer> tokenizer;   // chat tokens appended when the files lack them
  int64_t source_vocab_size = 0;                 // rows of wte in the files
  int64_t added_rows = 0;                        // rows appended to wte (the mean of the others)
  std::vector<std::string> ignored;              // tensors skipped: attn.bias / attn.masked_bias
                                                 // buffers, and lm_head.weight when tied
  std::string source_dtype;                      // "F32", "F16", "BF16" or "F64"
};

// Reads DIR. Throws CheckpointError naming the file and the rule when: config.json is missing, has
// a model_type other than gpt2 or a setting retain's GPT-2 does not implement
// (activation_function other than gelu_new / gelu_pytorch_tanh, n_inner ≠ 4·n_embd,
// tie_word_embeddings false, scale_attn_weights false, scale_attn_by_inverse_layer_idx true,
// add_cross_attention true); there are no safetensors weights (pytorch_model.bin alone is refused
// with a hint); a tensor is missing, unknown, of the wrong shape or of a non-float dtype; an
// lm_head.weight differs from wte (an untied head); there are no GPT-2 BPE tokenizer files.
// When the tokenizer (with its chat tokens) has more ids than wte has rows, wte grows to the
// tokenizer's size and each new row is the mean of the existing rows.
HfGpt2Model read_hf_gpt2(const std::string& dir);

// Writes `model` as a retain model directory at out_dir (config.json, model.safetensors,
// retain_tokenizer.json, card.json with the provenance), atomically. Refuses an existing out_dir.
void write_hf_import(const HfGpt2Model& model, const std::string& source_dir,
                     const std::string& out_dir);

// The tokenizer files of a Hugging Face GPT-2 directory for `tokenizer`, as {file name, text}:
// vocab.json, merges.txt, tokenizer.json, tokenizer_config.json (with a chat_template that renders
// retain's chat template), special_tokens_map.json, added_tokens.json. `model_max_length` is
// written into tokenizer_config.json.
std::vector<std::pair<std::string, std::string>> hf_tokenizer_files(const Gpt2BpeTokenizer& tokenizer,
                                                                    int64_t model_max_length);

// Hugging Face GPT-2's config.json for `config` (GPT2LMHeadModel, gelu_new, tied head), with
// bos/eos_token_id set to <|endoftext|> when the tokenizer has it.
nlohmann::json hf_gpt2_config(const GptConfig& config, const Gpt2BpeTokenizer& tokenizer);

// Whether `name` (with or without the "transformer." prefix) is the weight of one of the four
// Conv1D layers of a block: attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj.
bool is_conv1d_weight(const std::string& name);

// Converts retain's tensors to GPT2LMHeadModel's state (prefix "transformer.", Conv1D weights
// transposed to [in, out], no lm_head.weight: it is tied). The inverse of read_hf_gpt2's mapping.
TensorMap to_hf_gpt2_tensors(const TensorMap& tensors);

// `retain export --hf`: writes the model directory model_dir (which must have weights and a GPT-2
// BPE tokenizer) as a Hugging Face directory at out_dir, atomically: config.json, model.safetensors
// (__metadata__ {"format": "pt"}), the tokenizer files, generation_config.json. Refuses an
// existing out_dir unless `overwrite`. Throws CheckpointError (no weights, a byte tokenizer).
void export_hf_gpt2(const std::string& model_dir, const std::string& out_dir, bool overwrite);

}  // namespace retain
