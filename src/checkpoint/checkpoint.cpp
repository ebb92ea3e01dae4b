// safetensors encode and decode (see checkpoint.h), written from the format description at
// https://github.com/huggingface/safetensors.
//
// The decoder treats its input as hostile: every size is checked with overflow-safe arithmetic
// before any byte is copied, and every rejection is a CheckpointError naming the source, the
// tensor and the broken rule. The encoder writes the same layout as the reference writer (entry
// keys in the order dtype, shape, data_offsets; header padded with spaces to a multiple of 8), but
// with tensors in name order so that the bytes depend only on the contents.
#include "retain/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <cstring>
#include <limits>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

#include "retain/config.h"
#include "retain/errors.h"
#include "retain/fileio.h"

namespace retain {
namespace fs = std::filesystem;
namespace {

using nlohmann::json;

// Tensor bytes are copied as they are, so the host must share the format's byte order.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors I/O assumes a little-endian host");

struct Dtype {
  const char* name;
  torch::ScalarType type;
  uint64_t size;
};

constexpr Dtype kDtypes[] = {
    {"F64", torch::kFloat64, 8},   {"F32", torch::kFloat32, 4}, {"F16", torch::kFloat16, 2},
    {"BF16", torch::kBFloat16, 2}, {"I64", torch::kInt64, 8},   {"I32", torch::kInt32, 4},
    {"I16", torch::kInt16, 2},     {"I8", torch::kInt8, 1},     {"U8", torch::kUInt8, 1},
    {"BOOL", torch::kBool, 1},
};

const Dtype* dtype_by_name(const std::string& name) {
  for (const Dtype& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

const Dtype* dtype_by_type(torch::ScalarType type) {
  for (const Dtype& d : kDtypes)
    if (type == d.type) return &d;
  return nullptr;
}

std::string dtype_names() {
  std::string out;
  for (const Dtype& d : kDtypes) out += (out.empty() ? "" : ", ") + std::string(d.name);
  return out;
}

// One validated header entry; begin/end are relative to the start of the byte buffer.
struct Entry {
  std::string name;
  const Dtype* dtype;
  std::vector<int64_t> shape;
  uint64_t begin;
  uint64_t end;
};

// True (leaving *out alone) where a * b would wrap around.
bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) {
  if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) return true;
  *out = a * b;
  return false;
}

// A JSON number as a non-negative integer; false for floats, negatives and non-numbers.
bool as_index(const json& v, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
    return true;
  }
  // nlohmann stores "-0" as a signed integer, so a non-negative signed value is still accepted.
  if (v.is_number_integer() && v.get<int64_t>() >= 0) {
    *out = static_cast<uint64_t>(v.get<int64_t>());
    return true;
  }
  return false;
}

class Decoder {
 public:
  explicit Decoder(const std::string& what) : what_(what) {}

  CheckpointError fail(const std::string& rule) const {
    return CheckpointError(what_ + ": " + rule);
  }
  CheckpointError fail(const std::string& tensor, const std::string& rule) const {
    return CheckpointError(what_ + ": tensor '" + tensor + "': " + rule);
  }

  Entry parse_entry(const std::string& name, const json& v, uint64_t data_size) const {
    if (!v.is_object()) throw fail(name, "entry is not a JSON object");
    for (const char* key : {"dtype", "shape", "data_offsets"})
      if (!v.contains(key)) throw fail(name, std::string("entry has no \"") + key + "\"");
    for (const auto& item : v.items())
      if (item.key() != "dtype" && item.key() != "shape" && item.key() != "data_offsets")
        throw fail(name, "entry has an unexpected key \"" + item.key() +
                             "\" (allowed: dtype, shape, data_offsets)");

    Entry e{name, nullptr, {}, 0, 0};
    const json& dtype = v["dtype"];
    if (dtype.is_string()) e.dtype = dtype_by_name(dtype.get<std::string>());
    if (e.dtype == nullptr)
      throw fail(name,
                 "unknown dtype " + dtype.dump() + " (expected one of " + dtype_names() + ")");

    const json& shape = v["shape"];
    if (!shape.is_array()) throw fail(name, "shape is not an array: " + shape.dump());
    // Element count as LibTorch will compute it, and the strides of a tensor with a zero dimension,
    // both multiply every dimension: reject shapes where that overflows int64, even if numel is 0.
    uint64_t extent = 1;
    bool has_zero = false;
    for (const json& dim : shape) {
      uint64_t d = 0;
      if (!as_index(dim, &d)) {
        const bool negative = dim.is_number_integer();
        throw fail(name, std::string(negative ? "negative" : "non-integer") + " dimension " +
                             dim.dump() + " in shape " + shape.dump());
      }
      if (mul_overflows(extent, std::max<uint64_t>(d, 1), &extent) ||
          extent > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        throw fail(name, "shape " + shape.dump() + " has too many elements (overflow)");
      has_zero = has_zero || d == 0;
      e.shape.push_back(static_cast<int64_t>(d));
    }
    const uint64_t numel = has_zero ? 0 : extent;

    const json& offsets = v["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !as_index(offsets[0], &e.begin) ||
        !as_index(offsets[1], &e.end))
      throw fail(name, "data_offsets must be [begin, end] with non-negative integers, got " +
                           offsets.dump());
    if (e.end < e.begin)
      throw fail(name, "data_offsets " + offsets.dump() + ": end is before begin");
    if (e.end > data_size)
      throw fail(name, "data_offsets " + offsets.dump() + " run past the end of the data (" +
                           std::to_string(data_size) + " bytes)");

    uint64_t nbytes = 0;
    if (mul_overflows(numel, e.dtype->size, &nbytes))
      throw fail(name, "shape " + shape.dump() + " has too many bytes (overflow)");
    if (nbytes != e.end - e.begin)
      throw fail(name, "shape " + shape.dump() + " of " + e.dtype->name + " needs " +
                           std::to_string(nbytes) + " bytes but data_offsets " + offsets.dump() +
                           " give " + std::to_string(e.end - e.begin));
    return e;
  }

  StringMap parse_metadata(const json& v) const {
    if (!v.is_object()) throw fail("__metadata__ is not a string-to-string object: " + v.dump());
    StringMap out;
    for (const auto& item : v.items()) {
      if (!item.value().is_string())
        throw fail("__metadata__ value for key '" + item.key() +
                   "' is not a string: " + item.value().dump());
      out[item.key()] = item.value().get<std::string>();
    }
    return out;
  }

  // The buffer must be tiled exactly: no byte read twice, none left unaccounted for.
  void check_coverage(std::vector<Entry> entries, uint64_t data_size) const {
    // Ties on begin put zero-size entries first: [0,0] then [0,8] tiles; [0,8] then [4,4] not.
    std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
      return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    uint64_t pos = 0;
    std::string previous;
    for (const Entry& e : entries) {
      if (e.begin < pos)
        throw fail(e.name, "data overlaps tensor '" + previous + "' (begins at " +
                               std::to_string(e.begin) + ", '" + previous + "' ends at " +
                               std::to_string(pos) + ")");
      if (e.begin > pos)
        throw fail(e.name, "hole in the data: bytes " + std::to_string(pos) + ".." +
                               std::to_string(e.begin) + " before it belong to no tensor");
      pos = e.end;
      previous = e.name;
    }
    if (pos != data_size)
      throw fail("hole in the data: bytes " + std::to_string(pos) + ".." +
                 std::to_string(data_size) + " after the last tensor belong to no tensor");
  }

 private:
  const std::string& what_;
};

}  // namespace

std::string encode_safetensors(const TensorMap& tensors, const StringMap& metadata) {
  struct Prepared {
    torch::Tensor tensor;
    uint64_t nbytes;
  };
  std::vector<Prepared> prepared;
  prepared.reserve(tensors.size());

  StringMap meta = metadata;
  meta["format"] = "pt";  // what torch-side readers expect; a caller's other value is overridden
  std::string header;
  try {
    header = "{\"__metadata__\":" + json(meta).dump();
    uint64_t offset = 0;
    for (const auto& [name, tensor] : tensors) {  // std::map: already in name order
      if (name == "__metadata__")
        throw CheckpointError("safetensors: a tensor cannot be named __metadata__");
      if (!tensor.defined())
        throw CheckpointError("safetensors: tensor '" + name + "' is undefined");
      const Dtype* dtype = dtype_by_type(tensor.scalar_type());
      if (dtype == nullptr)
        throw CheckpointError("safetensors: tensor '" + name + "' has unsupported dtype " +
                              std::string(c10::toString(tensor.scalar_type())) +
                              " (supported: " + dtype_names() + ")");
      torch::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
      const uint64_t nbytes = static_cast<uint64_t>(t.numel()) * dtype->size;
      header += "," + json(name).dump() + ":{\"dtype\":\"" + dtype->name +
                "\",\"shape\":" + json(t.sizes().vec()).dump() + ",\"data_offsets\":[" +
                std::to_string(offset) + "," + std::to_string(offset + nbytes) + "]}";
      offset += nbytes;
      prepared.push_back({std::move(t), nbytes});
    }
    header += "}";
  } catch (const json::exception& e) {  // e.g. a name or metadata value that is not UTF-8
    throw CheckpointError(std::string("safetensors: cannot encode header: ") + e.what());
  }
  // Padding the header keeps the data buffer 8-byte aligned within the file, so readers can map it.
  header.append((8 - header.size() % 8) % 8, ' ');

  uint64_t total = 8 + header.size();
  for (const Prepared& p : prepared) total += p.nbytes;
  std::string out;
  out.reserve(total);
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<char>((uint64_t(header.size()) >> (8 * i)) & 0xff));
  out += header;
  for (const Prepared& p : prepared)
    if (p.nbytes > 0) out.append(static_cast<const char*>(p.tensor.data_ptr()), p.nbytes);
  return out;
}

SafetensorsFile decode_safetensors(const std::string& bytes, const std::string& what) {
  Decoder d(what);
  if (bytes.size() < 8)
    throw d.fail("file is " + std::to_string(bytes.size()) +
                 " bytes, shorter than the 8-byte header length");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(static_cast<unsigned char>(bytes[i])) << (8 * i);
  if (n > kMaxSafetensorsHeader)
    throw d.fail("header length " + std::to_string(n) + " is over the limit of " +
                 std::to_string(kMaxSafetensorsHeader) + " bytes");
  const uint64_t after = bytes.size() - 8;
  if (n > after)
    throw d.fail("header length " + std::to_string(n) + " runs past the end of the file (" +
                 std::to_string(after) + " bytes follow it)");
  const char* header_begin = bytes.data() + 8;
  const char* data = header_begin + n;
  const uint64_t data_size = after - n;

  json header;
  // A name twice in the header would silently keep the last entry: refused. The callback sees the
  // top-level keys as they are read (depth 1), and the header's nesting is bounded.
  std::set<std::string> names;
  std::string duplicate;
  const json::parser_callback_t check = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth > 8) throw d.fail("bad JSON in header: nested deeper than a safetensors header is");
    if (event == json::parse_event_t::key && depth == 1 && !names.insert(parsed.get<std::string>()).second &&
        duplicate.empty())
      duplicate = parsed.get<std::string>();
    return true;
  };
  try {
    header = json::parse(header_begin, data, check);
    if (!duplicate.empty()) throw d.fail("tensor \"" + duplicate + "\" is named twice in the header");
  } catch (const json::exception& e) {
    throw d.fail(std::string("bad JSON in header: ") + e.what());
  }
  if (!header.is_object()) throw d.fail("header is not a JSON object");

  SafetensorsFile out;
  std::vector<Entry> entries;
  for (const auto& item : header.items()) {
    if (item.key() == "__metadata__")
      out.metadata = d.parse_metadata(item.value());
    else
      entries.push_back(d.parse_entry(item.key(), item.value(), data_size));
  }
  d.check_coverage(entries, data_size);

  for (const Entry& e : entries) {
    const uint64_t nbytes = e.end - e.begin;
    const char* src = data + e.begin;
    if (e.dtype->type == torch::kBool) {
      // Any byte other than 0/1 is an invalid bool in LibTorch (undefined behaviour on use).
      for (uint64_t i = 0; i < nbytes; ++i)
        if (static_cast<unsigned char>(src[i]) > 1)
          throw d.fail(e.name, "BOOL element " + std::to_string(i) + " is byte " +
                                   std::to_string(static_cast<unsigned char>(src[i])) +
                                   ", expected 0 or 1");
    }
    torch::Tensor t = torch::empty(e.shape, torch::TensorOptions().dtype(e.dtype->type));
    if (nbytes > 0) std::memcpy(t.data_ptr(), src, nbytes);
    out.tensors.emplace(e.name, std::move(t));
  }
  return out;
}

void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const StringMap& metadata) {
  write_file_atomic(path, encode_safetensors(tensors, metadata));
}

SafetensorsFile load_safetensors(const std::string& path) {
  std::string bytes;
  try {
    bytes = read_file(path);
  } catch (const Error& e) {
    // A missing or unreadable weights file is a bad model directory, not an internal failure.
    throw CheckpointError(e.what());
  }
  return decode_safetensors(bytes, path);
}

nlohmann::json read_json_file(const std::string& path) {
  std::string text;
  try {
    text = read_file(path);
  } catch (const Error& e) {
    throw CheckpointError(std::string("cannot read ") + e.what());
  }
  return parse_json<CheckpointError>(text, path);
}

TensorMap parameter_tensors(torch::nn::Module& module, bool trainable_only) {
  TensorMap out;
  for (const auto& p : module.named_parameters())
    if (!trainable_only || p.value().requires_grad()) out[p.key()] = p.value().detach();
  return out;
}

void load_parameters(torch::nn::Module& module, const TensorMap& tensors, const std::string& what,
                     bool trainable_only) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.named_parameters()) {
    if (trainable_only && !p.value().requires_grad()) continue;
    auto it = tensors.find(p.key());
    if (it == tensors.end()) throw CheckpointError(what + ": missing parameter " + p.key());
    if (it->second.sizes() != p.value().sizes())
      throw CheckpointError(what + ": parameter " + p.key() + " has shape " + c10::str(it->second.sizes()) +
                            ", the model needs " + c10::str(p.value().sizes()));
    if (p.value().is_floating_point() && !it->second.is_floating_point())
      throw CheckpointError(what + ": parameter " + p.key() + " is stored as " +
                            std::string(c10::toString(it->second.scalar_type())) +
                            ", not a floating-point type (it would be converted silently)");
    p.value().copy_(it->second);
  }
}

void write_model_dir(const std::string& dir, torch::nn::Module& module,
                     const std::vector<std::pair<std::string, std::string>>& files, bool overwrite) {
  if (fs::exists(dir) && !overwrite)
    throw CheckpointError(dir + ": already exists; pass --overwrite to replace it");
  build_directory(dir, overwrite, [&](const std::string& tmp) {
    TensorMap tensors;
    for (const auto& p : module.named_parameters())
      tensors[p.key()] = p.value().detach().to(torch::kCPU, torch::kFloat);
    save_safetensors((fs::path(tmp) / kWeightsFile).string(), tensors);
    for (const auto& [name, text] : files) write_file_atomic((fs::path(tmp) / name).string(), text);
  });
}

std::map<std::string, std::pair<torch::Tensor, std::string>> read_weight_files(const std::string& dir) {
  const fs::path root(dir);
  std::vector<std::string> files;
  if (fs::is_regular_file(root / "model.safetensors")) {
    files.push_back((root / "model.safetensors").string());
  } else if (fs::is_regular_file(root / kIndexFile)) {
    const std::string index_path = (root / kIndexFile).string();
    const nlohmann::json index = read_json_file(index_path);
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
      throw CheckpointError(index_path + ": expected {\"weight_map\": {tensor: file}}");
    std::set<std::string> shards;
    for (const auto& [name, file] : index["weight_map"].items()) {
      if (!file.is_string() || file.get<std::string>().find('/') != std::string::npos)
        throw CheckpointError(index_path + ": weight_map[\"" + name + "\"] must be a file name in " + dir);
      shards.insert(file.get<std::string>());
    }
    for (const std::string& shard : shards) files.push_back((root / shard).string());
  } else if (fs::exists(root / "pytorch_model.bin")) {
    throw CheckpointError(dir + ": only pytorch_model.bin (a pickle), which retain does not read; "
                          "save the model with safetensors first (save_pretrained(DIR, safe_serialization=True))");
  } else {
    throw CheckpointError(dir + ": no model.safetensors or " + kIndexFile);
  }
  std::map<std::string, std::pair<torch::Tensor, std::string>> out;
  for (const std::string& file : files) {
    for (auto& [name, tensor] : load_safetensors(file).tensors) {
      if (out.count(name)) throw CheckpointError(file + ": tensor " + name + " is also in " + out[name].second);
      out[name] = {tensor, file};
    }
  }
  return out;
}

}  // namespace retain
