// Feature data: IDX files (gzip'd or not) and JSONL feature files.
#include <zlib.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include <nlohmann/json.hpp>

#include "retain/config.h"
#include "retain/errors.h"
#include "retain/features.h"
#include "retain/fileio.h"

namespace retain {

namespace fs = std::filesystem;

int64_t FeatureSet::num_classes() const { return size() == 0 ? 0 : y.max().item<int64_t>() + 1; }

namespace {

// Inflates a gzip stream of at most `max_bytes` inflated bytes (a small file can inflate to any size).
std::string gunzip(const std::string& bytes, const std::string& path, size_t max_bytes) {
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) throw DataError(path + ": cannot initialise zlib");
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  zs.avail_in = static_cast<uInt>(bytes.size());
  std::string out;
  char chunk[1 << 16];
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(chunk);
    zs.avail_out = sizeof chunk;
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(chunk, sizeof chunk - zs.avail_out);
    if (out.size() > max_bytes) {
      inflateEnd(&zs);
      throw DataError(path + ": inflates to more than " + std::to_string(max_bytes) + " bytes (retain's limit for an IDX file)");
    }
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) break;  // input ended before the stream did
  }
  const std::string msg = zs.msg ? zs.msg : "truncated stream";
  inflateEnd(&zs);
  if (rc != Z_STREAM_END) throw DataError(path + ": corrupt gzip data (" + msg + ")");
  return out;
}

uint32_t big_endian_u32(const std::string& b, size_t at) {
  auto u = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(b[at + i])); };
  return (u(0) << 24) | (u(1) << 16) | (u(2) << 8) | u(3);
}

}  // namespace

torch::Tensor read_idx(const std::string& path) {
  std::string bytes;
  try {
    bytes = read_file(path);
  } catch (const Error& e) {
    throw DataError(e.what());
  }
  return decode_idx(bytes, path);
}

torch::Tensor decode_idx(std::string bytes, const std::string& what, size_t max_bytes) {
  if (bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f && static_cast<unsigned char>(bytes[1]) == 0x8b)
    bytes = gunzip(bytes, what, max_bytes);
  if (bytes.size() < 4 || bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 || bytes[3] < 1 || bytes[3] > 4)
    throw DataError(what + ": not an IDX file of unsigned bytes (the magic number must be 00 00 08 0k, k in 1..4)");
  const int k = bytes[3];
  const size_t header = 4 + 4 * size_t(k);
  if (bytes.size() < header) throw DataError(what + ": truncated IDX header");
  std::vector<int64_t> shape;
  uint64_t total = 1;  // ≤ 2^32 · max_bytes before the check below: no overflow
  for (int d = 0; d < k; ++d) {
    shape.push_back(big_endian_u32(bytes, 4 + 4 * d));
    total *= uint64_t(shape.back());
    if (total > max_bytes)
      throw DataError(what + ": the IDX header announces more than " + std::to_string(max_bytes) +
                      " values (retain's limit for an IDX file)");
  }
  if (bytes.size() != header + total)
    throw DataError(what + ": the IDX header announces " + std::to_string(total) + " values, the file holds " +
                    std::to_string(bytes.size() - header) + (bytes.size() < header + total ? " (truncated)" : ""));
  auto out = torch::empty(shape, torch::kUInt8);
  if (total > 0) std::memcpy(out.data_ptr<uint8_t>(), bytes.data() + header, total);
  return out;
}

FeatureSet read_idx_pair(const std::string& images_path, const std::string& labels_path) {
  auto images = read_idx(images_path);
  auto labels = read_idx(labels_path);
  if (labels.dim() != 1) throw DataError(labels_path + ": a label file must be one-dimensional");
  if (images.size(0) != labels.size(0))
    throw DataError(images_path + " holds " + std::to_string(images.size(0)) + " images but " + labels_path +
                    " holds " + std::to_string(labels.size(0)) + " labels");
  FeatureSet out;
  out.x = images.reshape({images.size(0), -1}).to(torch::kFloat).div_(255.0);
  out.y = labels.to(torch::kLong);
  return out;
}

FeatureSet load_mnist_split(const std::string& dir, const std::string& split) {
  if (split != "train" && split != "test") throw ConfigError("split must be \"train\" or \"test\", not \"" + split + "\"");
  const std::string prefix = split == "train" ? "train" : "t10k";
  auto find = [&](const std::string& name) {
    for (const auto& candidate : {name + ".gz", name}) {
      const auto p = fs::path(dir) / candidate;
      if (fs::exists(p)) return p.string();
    }
    throw DataError("no " + name + "[.gz] in " + dir +
                    " (Fashion-MNIST: apt-get install dataset-fashion-mnist, or pass --data-dir)");
  };
  return read_idx_pair(find(prefix + "-images-idx3-ubyte"), find(prefix + "-labels-idx1-ubyte"));
}

FeatureSet read_feature_jsonl(const std::string& path) {
  if (fs::is_directory(path)) throw DataError("cannot open data file " + path + ": it is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError("cannot open data file " + path);
  return read_feature_jsonl(in, path);
}

FeatureSet read_feature_jsonl(std::istream& in, const std::string& path) {
  std::vector<float> values;
  std::vector<int64_t> labels;
  int64_t width = -1, line_number = 0;
  std::string line;
  auto fail = [&](const char* rule, const std::string& message) {
    throw DataError(path + ":" + std::to_string(line_number) + ": " + rule + ": " + message);
  };
  for (LineRead read; (read = read_line_bounded(in, line)) != LineRead::kEnd;) {
    ++line_number;
    if (read == LineRead::kTooLong) fail(kLineTooLongRule, line_too_long_message());
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = parse_json_text(line);
    } catch (const nlohmann::json::exception& e) {
      fail("invalid_json", e.what());
    } catch (const JsonTooDeep& e) {
      fail("too_deep", e.what());
    }
    if (!j.is_object()) fail("not_object", "a line must be a JSON object {\"features\": [...], \"label\": k}");
    for (const auto& [key, v] : j.items())
      if (key != "features" && key != "label") fail("unknown_key", "unexpected key \"" + key + "\"");
    if (!j.contains("features") || !j["features"].is_array() || j["features"].empty())
      fail("missing_features", "\"features\" must be a non-empty array of numbers");
    const auto& f = j["features"];
    if (width >= 0 && int64_t(f.size()) != width)
      fail("feature_count", std::to_string(f.size()) + " features, the first line has " + std::to_string(width));
    width = int64_t(f.size());
    for (const auto& v : f) {
      if (!v.is_number() || !(std::fabs(v.get<double>()) <= std::numeric_limits<float>::max()))
        fail("bad_feature", "every feature must be a finite number within float32's range");
      values.push_back(v.get<float>());
    }
    if (!j.contains("label")) fail("missing_label", "no \"label\"");
    const auto& l = j["label"];
    if (!l.is_number_integer() || l.get<int64_t>() < 0 || l.get<int64_t>() >= kMaxLabels)
      fail("bad_label", "\"label\" must be an integer from 0 to " + std::to_string(kMaxLabels - 1));
    labels.push_back(l.get<int64_t>());
  }
  if (labels.empty()) throw DataError(path + ": no examples");
  FeatureSet out;
  out.x = torch::from_blob(values.data(), {int64_t(labels.size()), width}, torch::kFloat).clone();
  out.y = torch::tensor(labels, torch::kLong);
  return out;
}

}  // namespace retain
