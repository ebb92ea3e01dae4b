// safetensors read and write, and model directories.
//
// safetensors (https://github.com/huggingface/safetensors): 8-byte little-endian header length N,
// N bytes of JSON header {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__":
// {string: string}}, padded with spaces to a multiple of 8, then the tensor bytes (little-endian,
// row-major), offsets relative to the start of the byte buffer. Documented in docs/formats.md.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace retain {

using TensorMap = std::map<std::string, torch::Tensor>;
using StringMap = std::map<std::string, std::string>;

struct SafetensorsFile {
  TensorMap tensors;   // CPU tensors, owning their memory
  StringMap metadata;  // __metadata__ ({} when absent)
};

// Largest accepted header (100 MB), as the reference implementation.
inline constexpr uint64_t kMaxSafetensorsHeader = 100ull * 1000 * 1000;

// Serialises tensors (moved to CPU, made contiguous) to safetensors bytes. Supported dtypes:
// F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL. Tensors are laid out in name order;
// metadata always contains "format":"pt". Throws CheckpointError on an unsupported dtype.
std::string encode_safetensors(const TensorMap& tensors, const StringMap& metadata = {});

// Parses safetensors bytes. `what` names the source in errors (usually the file path).
// Throws CheckpointError, never reads out of bounds, for: a buffer shorter than 8 bytes, a header
// length past the end or over kMaxSafetensorsHeader, bad JSON, a header that is not an object,
// an entry without dtype/shape/data_offsets or with other keys, an unknown dtype, a negative or
// non-integer dimension, offsets out of range or with end < begin, tensors overlapping or leaving
// holes (the data must be covered exactly, from 0 to its end), shape × dtype size ≠ byte length,
// and __metadata__ that is not a string→string object.
SafetensorsFile decode_safetensors(const std::string& bytes, const std::string& what);

// File versions: save writes atomically (write_file_atomic); load reads and decodes.
void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const StringMap& metadata = {});
SafetensorsFile load_safetensors(const std::string& path);

// Reads and parses a JSON file of a model directory (config, tokenizer, index). Throws
// CheckpointError "cannot read …" or "<path>: malformed JSON: …" (with line and column).
nlohmann::json read_json_file(const std::string& path);

// Detached views of a module's parameters by name (no copy); only those that require grad when
// `trainable_only` (a LoRA model's adapters).
TensorMap parameter_tensors(torch::nn::Module& module, bool trainable_only = false);

// Copies `tensors` into the module's parameters of the same names (only those that require grad
// when `trainable_only`). Every such parameter must be present with its shape: CheckpointError
// "<what>: missing parameter P" / "… parameter P has shape …".
void load_parameters(torch::nn::Module& module, const TensorMap& tensors, const std::string& what,
                     bool trainable_only = false);

// The weights of a (Hugging Face) model directory: model.safetensors, or the shards that
// model.safetensors.index.json names. name → (tensor, the file it came from). CheckpointError
// naming the file: a malformed index, a shard that is missing or lies in its header, a tensor in
// two shards, no weights at all (pytorch_model.bin alone is refused with a hint).
inline constexpr const char* kIndexFile = "model.safetensors.index.json";
std::map<std::string, std::pair<torch::Tensor, std::string>> read_weight_files(const std::string& dir);

// A model directory: config.json (+ model.safetensors) (+ retain_tokenizer.json).
inline constexpr const char* kConfigFile = "config.json";
inline constexpr const char* kWeightsFile = "model.safetensors";

// Writes a model directory atomically (temp folder, fsync, rename): model.safetensors with the
// parameters of `module` (fp32, CPU) and each {file name, text} of `files`. Refuses an existing
// DIR unless `overwrite` (CheckpointError); a failure leaves no temp folder behind.
void write_model_dir(const std::string& dir, torch::nn::Module& module,
                     const std::vector<std::pair<std::string, std::string>>& files, bool overwrite);

}  // namespace retain
