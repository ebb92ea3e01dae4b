// safetensors read and write, and model directories.
//
// safetensors (https://github.com/huggingface/safetensors): 8-byte little-endian header length N,
// N bytes of JSON header {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__":
// {string: string}}, padded with spaces to a multiple of 8, then the tensor bytes (little-endian,
// row-major), offsets relative to the start of the byte buffer. Documented in docs/formats.md.
#pragma once

#include <map>
#include <string>

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

}  // namespace retain
