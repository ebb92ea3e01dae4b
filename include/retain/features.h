// Feature data for the `mlp` family: labelled feature vectors from IDX files (the MNIST /
// Fashion-MNIST format, gzip'd or not) or from JSONL.
//
// IDX (http://yann.lecun.com/exdb/mnist/): a big-endian header — two zero bytes, a type byte
// (only 0x08, unsigned byte, is read here), the number of dimensions k — then k big-endian uint32
// sizes, then the values, row-major. A file that starts with the gzip magic (1f 8b) is inflated.
// JSONL: one object per line, {"features": [numbers…], "label": k}; blank lines are skipped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace retain {

struct FeatureSet {
  torch::Tensor x;  // (N, D) float32
  torch::Tensor y;  // (N) int64, labels ≥ 0
  int64_t size() const { return x.defined() ? x.size(0) : 0; }
  int64_t num_features() const { return x.defined() ? x.size(1) : 0; }
  int64_t num_classes() const;  // max label + 1 (0 when empty)
};

// The raw contents of an IDX file of unsigned bytes: a uint8 tensor of the stored shape.
// Throws DataError naming the file and what is wrong: unreadable, corrupt gzip, bad magic
// (not 0 0 0x08 k with 1 ≤ k ≤ 4), a truncated header or body, or bytes after the body.
torch::Tensor read_idx(const std::string& path);
// The same for the bytes of one (`what` names them in errors). An IDX file may hold at most
// `max_bytes` values, and a gzip'd one inflate to at most that: a few bytes can announce or
// inflate to any size. 2 GiB is 40 times Fashion-MNIST's training images.
inline constexpr size_t kMaxIdxBytes = size_t{2} << 30;
torch::Tensor decode_idx(std::string bytes, const std::string& what, size_t max_bytes = kMaxIdxBytes);

// Images (N, rows, cols) and labels (N) from two IDX files; pixels scaled to [0, 1] and flattened
// to (N, rows·cols). DataError when the counts differ or the label file is not one-dimensional.
FeatureSet read_idx_pair(const std::string& images_path, const std::string& labels_path);

// Fashion-MNIST (or MNIST) from a folder as Debian's dataset-fashion-mnist installs it
// (/usr/share/datasets/fashion-mnist): train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
// t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz (each also accepted without .gz).
// `split` is "train" or "test". DataError names the missing file and the package to install.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
FeatureSet load_mnist_split(const std::string& dir, const std::string& split);

// Reads a JSONL feature file. Errors are DataError "file:line: rule: message" for the first bad
// line, rules: invalid_json, not_object, unknown_key, missing_features (absent or not a non-empty
// array), bad_feature (not a finite number), feature_count (differs from the first line),
// missing_label, bad_label (not an integer ≥ 0); an empty file is also a DataError.
// Labels are below kMaxLabels (a class count the mlp family can hold).
inline constexpr int64_t kMaxLabels = int64_t{1} << 20;
FeatureSet read_feature_jsonl(const std::string& path);
// The same from a stream; `path` names it in errors.
FeatureSet read_feature_jsonl(std::istream& in, const std::string& path);

}  // namespace retain
