// Tests for safetensors encode/decode (checkpoint.h) and durable writes (fileio.h).
//
// Malformed files are built by hand from a JSON header string and data bytes, one test per
// rejection rule in checkpoint.h, and each asserts that the message names the source and the rule.
// The golden test pins the exact bytes of a tiny file, computed by hand from the format
// description.
#include <dirent.h>
#include <stdlib.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "retain/checkpoint.h"
#include "retain/errors.h"
#include "retain/fileio.h"

namespace retain {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const char* const kWhat = "bad.safetensors";

std::string le64(uint64_t v) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  return out;
}

// A safetensors file from a header written by hand: the header is padded with spaces to a multiple
// of 8, as a conforming writer would do, so only the rule under test is broken.
std::string make_file(std::string header, const std::string& data) {
  header.append((8 - header.size() % 8) % 8, ' ');
  return le64(header.size()) + header + data;
}

std::string f32_bytes(std::vector<float> values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
}

// Asserts decode throws CheckpointError whose message starts with the source name and contains
// every one of `needles`.
void expect_rejected(const std::string& bytes, const std::vector<std::string>& needles) {
  try {
    decode_safetensors(bytes, kWhat);
    ADD_FAILURE() << "accepted, expected a CheckpointError mentioning " << needles.front();
  } catch (const CheckpointError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(std::string(kWhat) + ": ", 0), 0u) << msg;
    for (const std::string& needle : needles) EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  }
}

std::string tensor_bytes(const torch::Tensor& t) {
  torch::Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
}

// Fills a tensor with random bit patterns (NaN payloads, subnormals, every integer), so a round
// trip that converted values instead of copying bytes would show.
torch::Tensor random_tensor(torch::IntArrayRef shape, torch::ScalarType type, std::mt19937& rng) {
  torch::Tensor t = torch::empty(shape, torch::TensorOptions().dtype(type));
  auto* p = static_cast<unsigned char*>(t.data_ptr());
  const size_t n = t.numel() * t.element_size();
  for (size_t i = 0; i < n; ++i)
    p[i] = static_cast<unsigned char>(rng() & (type == torch::kBool ? 1 : 0xff));
  return t;
}

void expect_identical(const torch::Tensor& got, const torch::Tensor& want,
                      const std::string& name) {
  EXPECT_EQ(got.scalar_type(), want.scalar_type()) << name;
  EXPECT_EQ(got.sizes().vec(), want.sizes().vec()) << name;
  EXPECT_TRUE(got.device().is_cpu()) << name;
  EXPECT_EQ(tensor_bytes(got), tensor_bytes(want)) << name;
}

TEST(Safetensors, RoundTripsEveryDtypeBitExactly) {
  std::mt19937 rng(1234);
  const std::vector<torch::ScalarType> types = {
      torch::kFloat64, torch::kFloat32, torch::kFloat16, torch::kBFloat16, torch::kInt64,
      torch::kInt32,   torch::kInt16,   torch::kInt8,    torch::kUInt8,    torch::kBool};
  TensorMap tensors;
  for (torch::ScalarType type : types) {
    const std::string name = std::string("t.") + c10::toString(type);
    tensors[name] = random_tensor({3, 5}, type, rng);
    tensors[name + ".scalar"] = random_tensor({}, type, rng);
    tensors[name + ".empty"] = random_tensor({0, 4}, type, rng);
  }
  tensors["z.3d"] = random_tensor({2, 3, 4}, torch::kInt64, rng);
  const StringMap metadata = {{"step", "42"}, {"note", "ünïcode ✓"}};

  const SafetensorsFile got = decode_safetensors(encode_safetensors(tensors, metadata), "mem");
  ASSERT_EQ(got.tensors.size(), tensors.size());
  for (const auto& [name, want] : tensors) {
    ASSERT_EQ(got.tensors.count(name), 1u) << name;
    expect_identical(got.tensors.at(name), want, name);
  }
  EXPECT_EQ(got.tensors.at("t.Float.scalar").dim(), 0);
  EXPECT_EQ(got.tensors.at("t.Float.empty").numel(), 0);
  const StringMap want_meta = {{"step", "42"}, {"note", "ünïcode ✓"}, {"format", "pt"}};
  EXPECT_EQ(got.metadata, want_meta);
}

TEST(Safetensors, RoundTripsSpecialFloatsAndOrdinaryValues) {
  const float inf = std::numeric_limits<float>::infinity();
  const torch::Tensor specials = torch::tensor({0.0f, -0.0f, inf, -inf, 1e-45f, 3.4e38f, 1.5f});
  const torch::Tensor ints = torch::tensor({std::numeric_limits<int64_t>::min(), int64_t{-1},
                                            int64_t{0}, std::numeric_limits<int64_t>::max()});
  const SafetensorsFile got =
      decode_safetensors(encode_safetensors({{"f", specials}, {"i", ints}}), "mem");
  EXPECT_TRUE(torch::equal(got.tensors.at("f"), specials));
  EXPECT_TRUE(std::signbit(got.tensors.at("f")[1].item<float>()));
  EXPECT_TRUE(torch::equal(got.tensors.at("i"), ints));
}

TEST(Safetensors, EncodesNonContiguousAndGradTensorsByValue) {
  const torch::Tensor base = torch::arange(12, torch::kFloat32).reshape({3, 4});
  const torch::Tensor transposed = base.t();  // (4, 3), not contiguous
  const torch::Tensor sliced =
      base.index({torch::indexing::Slice(), 1});  // storage offset 1, stride 4
  const torch::Tensor grad = torch::ones({2}, torch::requires_grad());
  const SafetensorsFile got = decode_safetensors(
      encode_safetensors({{"t", transposed}, {"s", sliced}, {"g", grad}}), "mem");
  EXPECT_TRUE(torch::equal(got.tensors.at("t"), transposed));
  EXPECT_TRUE(torch::equal(got.tensors.at("s"), torch::tensor({1.0f, 5.0f, 9.0f})));
  EXPECT_TRUE(torch::equal(got.tensors.at("g"), torch::ones({2})));
  EXPECT_FALSE(got.tensors.at("g").requires_grad());
}

TEST(Safetensors, DecodedTensorsOwnTheirMemory) {
  std::string bytes = encode_safetensors({{"x", torch::tensor({1.0f, 2.0f})}});
  const SafetensorsFile got = decode_safetensors(bytes, "mem");
  std::fill(bytes.begin(), bytes.end(), '\xff');
  bytes.clear();
  bytes.shrink_to_fit();
  EXPECT_TRUE(torch::equal(got.tensors.at("x"), torch::tensor({1.0f, 2.0f})));
}

TEST(Safetensors, ByteLayoutFollowsTheFormat) {
  const TensorMap tensors = {{"b", torch::zeros({3}, torch::kInt8)},
                             {"a", torch::ones({2, 2}, torch::kFloat64)},
                             {"c", torch::zeros({5}, torch::kFloat16)}};
  const std::string bytes = encode_safetensors(tensors, {{"k", "v"}});
  ASSERT_GE(bytes.size(), 8u);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(static_cast<unsigned char>(bytes[i])) << (8 * i);
  EXPECT_EQ((8 + n) % 8, 0u);
  ASSERT_LE(8 + n, bytes.size());
  const std::string header = bytes.substr(8, n);
  const size_t json_end = header.find_last_not_of(' ') + 1;
  EXPECT_LT(n - json_end, 8u) << "padding is at most 7 spaces";
  EXPECT_EQ(header[0], '{');

  const json h = json::parse(header);
  EXPECT_EQ(h["__metadata__"], json({{"format", "pt"}, {"k", "v"}}));
  // Name order, the first at offset 0, each following directly after the previous.
  EXPECT_EQ(h["a"]["data_offsets"], json({0, 32}));
  EXPECT_EQ(h["a"]["dtype"], "F64");
  EXPECT_EQ(h["a"]["shape"], json({2, 2}));
  EXPECT_EQ(h["b"]["data_offsets"], json({32, 35}));
  EXPECT_EQ(h["c"]["data_offsets"], json({35, 45}));
  EXPECT_EQ(bytes.size(), 8 + n + 45);
  // Entry keys appear in the reference writer's order.
  EXPECT_NE(header.find(R"("a":{"dtype":"F64","shape":[2,2],"data_offsets":[0,32]})"),
            std::string::npos)
      << header;
}

TEST(Safetensors, GoldenBytesForATinyFile) {
  // Header: 85 bytes of JSON + 3 spaces = 88 = 0x58, so 8 + 88 is a multiple of 8.
  // Data: 1.0f = 00 00 80 3f, 2.0f = 00 00 00 40 (little-endian IEEE 754).
  const std::string json_text =
      R"({"__metadata__":{"format":"pt"},"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  ASSERT_EQ(json_text.size(), 85u);
  const std::string golden = std::string("\x58\0\0\0\0\0\0\0", 8) + json_text + "   " +
                             std::string("\x00\x00\x80\x3f\x00\x00\x00\x40", 8);
  ASSERT_EQ(golden.size(), 104u);
  EXPECT_EQ(encode_safetensors({{"x", torch::tensor({1.0f, 2.0f})}}), golden);
  EXPECT_EQ(encode_safetensors({{"x", torch::tensor({1.0f, 2.0f})}}, {{"format", "other"}}),
            golden);
}

TEST(Safetensors, EncodeRejectsUnsupportedTensors) {
  EXPECT_THROW(encode_safetensors({{"c", torch::zeros({2}, torch::kComplexFloat)}}),
               CheckpointError);
  EXPECT_THROW(encode_safetensors({{"u", torch::Tensor()}}), CheckpointError);
  EXPECT_THROW(encode_safetensors({{"__metadata__", torch::zeros({1})}}), CheckpointError);
}

// --- Files the decoder must accept ---------------------------------------------------------------

TEST(SafetensorsDecode, AcceptsHandWrittenEdgeCases) {
  // No __metadata__, zero-size tensors sharing an offset with a real one, a scalar, extra spaces.
  const std::string header = R"(  {"e1":{"dtype":"I8","shape":[0],"data_offsets":[0,0]},)"
                             R"("e2":{"dtype":"F32","shape":[4,0,3],"data_offsets":[0,0]},)"
                             R"("x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("s":{"dtype":"I16","shape":[],"data_offsets":[8,10]}})";
  const SafetensorsFile got =
      decode_safetensors(make_file(header, f32_bytes({1, 2}) + std::string("\x07\x00", 2)), kWhat);
  EXPECT_TRUE(got.metadata.empty());
  ASSERT_EQ(got.tensors.size(), 4u);
  EXPECT_EQ(got.tensors.at("e2").sizes().vec(), std::vector<int64_t>({4, 0, 3}));
  EXPECT_TRUE(torch::equal(got.tensors.at("x"), torch::tensor({1.0f, 2.0f})));
  EXPECT_EQ(got.tensors.at("s").dim(), 0);
  EXPECT_EQ(got.tensors.at("s").item<int16_t>(), 7);
}

TEST(SafetensorsDecode, AcceptsAnEmptyFile) {
  const SafetensorsFile got = decode_safetensors(make_file("{}", ""), kWhat);
  EXPECT_TRUE(got.tensors.empty());
  EXPECT_TRUE(got.metadata.empty());
}

// --- One test per rejection rule in checkpoint.h
// --------------------------------------------------

const std::string kData8 = f32_bytes({1, 2});

std::string one_tensor(const std::string& entry, const std::string& data = kData8) {
  return make_file(R"({"x":)" + entry + "}", data);
}

TEST(SafetensorsDecode, RejectsBufferShorterThan8Bytes) {
  expect_rejected("", {"shorter than the 8-byte header length"});
  expect_rejected(std::string("\x08\0\0\0\0\0\0", 7),
                  {"7 bytes", "shorter than the 8-byte header length"});
}

TEST(SafetensorsDecode, RejectsHeaderLengthPastTheEnd) {
  expect_rejected(le64(16) + "{}      ", {"header length 16", "runs past the end"});
  expect_rejected(le64(~uint64_t{0}) + "{}", {"header length"});  // no wrap-around in n + 8
}

TEST(SafetensorsDecode, RejectsHeaderLengthOverTheLimit) {
  expect_rejected(le64(kMaxSafetensorsHeader + 8) + "{}      ", {"over the limit"});
}

TEST(SafetensorsDecode, RejectsBadJson) {
  expect_rejected(make_file(R"({"x":{"dtype":"F32",)", ""), {"bad JSON in header"});
  expect_rejected(make_file(std::string("{\"\xff\":1}"), ""), {"bad JSON in header"});  // not UTF-8
  expect_rejected(le64(8) + std::string(8, '\0'), {"bad JSON in header"});
}

TEST(SafetensorsDecode, RejectsATensorNamedTwiceAndDeepHeaders) {
  const std::string entry = R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  expect_rejected(make_file(R"({"x":)" + entry + R"(,"x":)" + entry + "}", kData8), {"\"x\" is named twice"});
  expect_rejected(make_file(R"({"x":)" + std::string(50, '[') + std::string(50, ']') + "}", ""), {"nested deeper"});
}

TEST(LoadParameters, RefusesAnIntegerTensorForAFloatParameter) {
  torch::nn::Linear layer(2, 2);
  TensorMap tensors = parameter_tensors(*layer);
  for (auto& [name, t] : tensors) t = t.clone();
  tensors.at("weight") = torch::ones({2, 2}, torch::kInt);
  try {
    load_parameters(*layer, tensors, "model.safetensors");
    ADD_FAILURE() << "an I32 weight was converted silently";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("parameter weight is stored as Int"), std::string::npos) << e.what();
  }
}

TEST(SafetensorsDecode, RejectsHeaderThatIsNotAnObject) {
  expect_rejected(make_file("[1,2]", ""), {"header is not a JSON object"});
  expect_rejected(make_file("\"x\"", ""), {"header is not a JSON object"});
}

TEST(SafetensorsDecode, RejectsEntryThatIsNotAnObject) {
  expect_rejected(one_tensor("[0,8]"), {"tensor 'x'", "not a JSON object"});
}

TEST(SafetensorsDecode, RejectsEntryWithoutDtype) {
  expect_rejected(one_tensor(R"({"shape":[2],"data_offsets":[0,8]})"),
                  {"tensor 'x'", "no \"dtype\""});
}

TEST(SafetensorsDecode, RejectsEntryWithoutShape) {
  expect_rejected(one_tensor(R"({"dtype":"F32","data_offsets":[0,8]})"),
                  {"tensor 'x'", "no \"shape\""});
}

TEST(SafetensorsDecode, RejectsEntryWithoutDataOffsets) {
  expect_rejected(one_tensor(R"({"dtype":"F32","shape":[2]})"),
                  {"tensor 'x'", "no \"data_offsets\""});
}

TEST(SafetensorsDecode, RejectsEntryWithOtherKeys) {
  expect_rejected(one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8],"stride":[1]})"),
                  {"tensor 'x'", "unexpected key \"stride\""});
}

TEST(SafetensorsDecode, RejectsUnknownDtype) {
  expect_rejected(one_tensor(R"({"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]})"),
                  {"tensor 'x'", "unknown dtype \"F8_E4M3\""});
  expect_rejected(one_tensor(R"({"dtype":"f32","shape":[2],"data_offsets":[0,8]})"),
                  {"unknown dtype"});
  expect_rejected(one_tensor(R"({"dtype":4,"shape":[2],"data_offsets":[0,8]})"),
                  {"unknown dtype 4"});
}

TEST(SafetensorsDecode, RejectsNegativeDimension) {
  expect_rejected(one_tensor(R"({"dtype":"F32","shape":[-2],"data_offsets":[0,8]})"),
                  {"tensor 'x'", "negative dimension -2"});
}

TEST(SafetensorsDecode, RejectsNonIntegerDimension) {
  expect_rejected(one_tensor(R"({"dtype":"F32","shape":[2.0],"data_offsets":[0,8]})"),
                  {"tensor 'x'", "non-integer dimension"});
  expect_rejected(one_tensor(R"({"dtype":"F32","shape":["2"],"data_offsets":[0,8]})"),
                  {"non-integer dimension \"2\""});
  expect_rejected(one_tensor(R"({"dtype":"F32","shape":2,"data_offsets":[0,8]})"),
                  {"shape is not an array"});
}

TEST(SafetensorsDecode, RejectsShapeWhoseSizeOverflows) {
  // 2^32 * 2^32 wraps a u64 to 0, which would otherwise "match" an empty byte range.
  expect_rejected(
      one_tensor(R"({"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]})", ""),
      {"tensor 'x'", "overflow"});
  // 2^62 elements fit a u64, but 2^62 * 4 bytes do not.
  expect_rejected(
      one_tensor(R"({"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]})", ""),
      {"tensor 'x'", "overflow"});
  // A dimension over int64 cannot become a LibTorch size, even next to a zero.
  expect_rejected(
      one_tensor(R"({"dtype":"F32","shape":[0,18446744073709551615],"data_offsets":[0,0]})", ""),
      {"tensor 'x'", "overflow"});
}

TEST(SafetensorsDecode, RejectsMalformedDataOffsets) {
  expect_rejected(one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[0]})"),
                  {"tensor 'x'", "[begin, end]"});
  expect_rejected(one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8,8]})"),
                  {"[begin, end]"});
  expect_rejected(one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[-1,7]})"),
                  {"[begin, end]"});
  expect_rejected(one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8.0]})"),
                  {"[begin, end]"});
  expect_rejected(one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":{"begin":0}})"),
                  {"[begin, end]"});
}

TEST(SafetensorsDecode, RejectsOffsetsPastTheEnd) {
  expect_rejected(one_tensor(R"({"dtype":"F32","shape":[4],"data_offsets":[0,16]})"),
                  {"tensor 'x'", "run past the end of the data (8 bytes)"});
  expect_rejected(
      one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551615]})"),
      {"tensor 'x'", "run past the end"});
}

TEST(SafetensorsDecode, RejectsEndBeforeBegin) {
  expect_rejected(one_tensor(R"({"dtype":"F32","shape":[0],"data_offsets":[8,4]})"),
                  {"tensor 'x'", "end is before begin"});
}

TEST(SafetensorsDecode, RejectsOverlappingTensors) {
  const std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  expect_rejected(make_file(header, kData8), {"tensor 'b'", "overlaps tensor 'a'"});
  // Two tensors over the very same bytes.
  const std::string same = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})";
  expect_rejected(make_file(same, kData8), {"overlaps"});
  // A zero-size tensor placed inside another one.
  const std::string inside = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})";
  expect_rejected(make_file(inside, kData8), {"tensor 'b'", "overlaps"});
}

TEST(SafetensorsDecode, RejectsHoleBetweenTensors) {
  const std::string header = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                             R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";
  expect_rejected(make_file(header, kData8 + "abcd"), {"tensor 'b'", "hole in the data", "4..8"});
}

TEST(SafetensorsDecode, RejectsHoleAtTheStart) {
  expect_rejected(one_tensor(R"({"dtype":"F32","shape":[1],"data_offsets":[4,8]})"),
                  {"tensor 'x'", "hole in the data", "0..4"});
}

TEST(SafetensorsDecode, RejectsTrailingBytesAfterTheLastTensor) {
  expect_rejected(one_tensor(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4]})"),
                  {"hole in the data", "4..8", "after the last tensor"});
  expect_rejected(make_file("{}", "x"), {"hole in the data", "0..1"});
}

TEST(SafetensorsDecode, RejectsShapeThatDoesNotMatchTheByteLength) {
  expect_rejected(one_tensor(R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})"),
                  {"tensor 'x'", "needs 12 bytes", "give 8"});
  expect_rejected(one_tensor(R"({"dtype":"F64","shape":[],"data_offsets":[0,4]})", "abcd"),
                  {"tensor 'x'", "needs 8 bytes", "give 4"});
}

TEST(SafetensorsDecode, RejectsMetadataThatIsNotAnObject) {
  expect_rejected(make_file(R"({"__metadata__":["format","pt"]})", ""),
                  {"__metadata__", "string-to-string"});
  expect_rejected(make_file(R"({"__metadata__":null})", ""), {"__metadata__"});
}

TEST(SafetensorsDecode, RejectsMetadataWithNonStringValue) {
  expect_rejected(make_file(R"({"__metadata__":{"format":"pt","step":42}})", ""),
                  {"__metadata__", "'step'", "not a string"});
}

TEST(SafetensorsDecode, RejectsBoolBytesOtherThanZeroOrOne) {
  expect_rejected(one_tensor(R"({"dtype":"BOOL","shape":[2],"data_offsets":[0,2]})",
                             std::string("\x01\x02", 2)),
                  {"tensor 'x'", "BOOL element 1", "expected 0 or 1"});
}

// --- Damaged files: always a CheckpointError, never a crash -----------------------------------

std::string small_valid_file() {
  return encode_safetensors({{"a", torch::arange(3, torch::kInt16)},
                             {"b", torch::zeros({0}, torch::kFloat32)},
                             {"c", torch::tensor({true, false})}},
                            {{"k", "v"}});
}

TEST(SafetensorsDecode, RejectsEveryTruncation) {
  const std::string full = small_valid_file();
  ASSERT_NO_THROW(decode_safetensors(full, kWhat));
  for (size_t len = 0; len < full.size(); ++len) {
    // A fresh heap copy of exactly `len` bytes, so a sanitizer would catch a read past it.
    const std::string prefix(full.data(), len);
    EXPECT_THROW(decode_safetensors(prefix, kWhat), CheckpointError)
        << "prefix of " << len << " bytes";
  }
}

TEST(SafetensorsDecode, SurvivesRandomByteCorruption) {
  const std::string full = small_valid_file();
  std::mt19937 rng(7);
  int accepted = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string bytes = full;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int i = 0; i < flips; ++i) bytes[rng() % bytes.size()] = static_cast<char>(rng() & 0xff);
    try {
      decode_safetensors(bytes, kWhat);
      ++accepted;  // e.g. a changed data byte or metadata character: still a valid file
    } catch (const CheckpointError&) {
    } catch (const std::exception& e) {
      ADD_FAILURE() << "trial " << trial << ": not a CheckpointError: " << e.what();
    }
  }
  EXPECT_GT(accepted, 0);
}

// --- Files on disk
// --------------------------------------------------------------------------------

class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "retain_ckpt_test_XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  std::set<std::string> entries(const fs::path& dir) const {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
    return out;
  }

  static void write_plain(const std::string& p, const std::string& text) {
    std::ofstream(p) << text;
  }

  fs::path dir_;
};

TEST_F(TempDirTest, WriteFileAtomicReplacesContentAndLeavesNoTempFile) {
  const std::string p = path("f.bin");
  write_file_atomic(p, "first version");
  EXPECT_EQ(read_file(p), "first version");
  write_file_atomic(p, std::string("x\0y", 3));
  EXPECT_EQ(read_file(p), std::string("x\0y", 3));
  write_file_atomic(p, "");
  EXPECT_EQ(read_file(p), "");
  EXPECT_EQ(entries(dir_), std::set<std::string>({"f.bin"}));
}

TEST_F(TempDirTest, FileErrorsNameThePath) {
  const std::string missing = path("no/such/folder/f.bin");
  try {
    write_file_atomic(missing, "x");
    ADD_FAILURE() << "write into a missing folder succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("No such file"), std::string::npos) << e.what();
  }
  try {
    read_file(path("absent"));
    ADD_FAILURE() << "read of a missing file succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path("absent")), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_file(dir_.string()), Error);
  EXPECT_THROW(fsync_path(path("absent")), Error);
  EXPECT_NO_THROW(fsync_path(dir_.string()));
}

TEST_F(TempDirTest, CopyFileCheckedCopiesAndSaysWhenTheDiskIsFull) {
  const std::string from = path("from.bin");
  write_file_atomic(from, std::string(3 << 20, 'z') + "end");  // more than one 1 MiB chunk
  copy_file_checked(from, path("to.bin"));
  EXPECT_EQ(read_file(path("to.bin")), read_file(from));
  // /dev/full: every write fails with ENOSPC, as on a full disk.
  try {
    copy_file_checked(from, "/dev/full");
    ADD_FAILURE() << "a copy onto a full device succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/dev/full: cannot write: No space left on device"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(copy_file_checked(path("absent"), path("x")), Error);
}

TEST_F(TempDirTest, SaveAndLoadSafetensors) {
  const std::string p = path("w.safetensors");
  const TensorMap tensors = {{"w", torch::arange(6, torch::kFloat32).reshape({2, 3})}};
  save_safetensors(p, tensors, {{"k", "v"}});
  const SafetensorsFile got = load_safetensors(p);
  EXPECT_TRUE(torch::equal(got.tensors.at("w"), tensors.at("w")));
  EXPECT_EQ(got.metadata.at("k"), "v");
  EXPECT_THROW(load_safetensors(path("absent.safetensors")), CheckpointError);
  write_plain(path("junk"), "not a safetensors file");
  try {
    load_safetensors(path("junk"));
    ADD_FAILURE() << "junk accepted";
  } catch (const CheckpointError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(path("junk"), 0), 0u) << e.what();
  }
}

TEST_F(TempDirTest, MakeTempDirBesideCreatesFreshEmptyFolders) {
  const std::string final_dir = path("v1");
  const std::string a = make_temp_dir_beside(final_dir);
  const std::string b = make_temp_dir_beside(final_dir);
  EXPECT_NE(a, b);
  for (const std::string& t : {a, b}) {
    EXPECT_TRUE(fs::is_directory(t));
    EXPECT_TRUE(fs::is_empty(t));
    EXPECT_EQ(fs::path(t).parent_path(), dir_);
    EXPECT_EQ(t.rfind(final_dir + ".tmp-", 0), 0u) << t;
  }
}

TEST_F(TempDirTest, CommitDirectoryMovesAFreshFolderIntoPlace) {
  const std::string final_dir = path("v1");
  const std::string tmp = make_temp_dir_beside(final_dir);
  write_plain(tmp + "/a.txt", "A");
  fs::create_directory(tmp + "/sub");
  write_plain(tmp + "/sub/b.txt", "B");
  commit_directory(tmp, final_dir, false);
  EXPECT_FALSE(fs::exists(tmp));
  EXPECT_EQ(read_file(final_dir + "/a.txt"), "A");
  EXPECT_EQ(read_file(final_dir + "/sub/b.txt"), "B");
  EXPECT_EQ(entries(dir_), std::set<std::string>({"v1"}));
}

TEST_F(TempDirTest, CommitDirectoryWithoutReplaceKeepsBothFolders) {
  const std::string final_dir = path("v1");
  fs::create_directory(final_dir);
  write_plain(final_dir + "/a.txt", "old");
  const std::string tmp = make_temp_dir_beside(final_dir);
  write_plain(tmp + "/a.txt", "new");
  try {
    commit_directory(tmp, final_dir, false);
    ADD_FAILURE() << "an existing folder was replaced without replace=true";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(final_dir), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("exists"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_file(final_dir + "/a.txt"), "old");
  EXPECT_EQ(read_file(tmp + "/a.txt"), "new");
}

TEST_F(TempDirTest, CommitDirectoryWithReplaceSwapsAndCleansUp) {
  const std::string final_dir = path("v1");
  fs::create_directory(final_dir);
  write_plain(final_dir + "/a.txt", "old");
  write_plain(final_dir + "/only_old.txt", "gone after the swap");
  const std::string tmp = make_temp_dir_beside(final_dir);
  write_plain(tmp + "/a.txt", "new");
  commit_directory(tmp + "/", final_dir + "/", true);  // trailing slashes name the same folders
  EXPECT_EQ(read_file(final_dir + "/a.txt"), "new");
  EXPECT_FALSE(fs::exists(final_dir + "/only_old.txt"));
  EXPECT_EQ(entries(dir_), std::set<std::string>({"v1"})) << "no .tmp- or .old- folder left behind";
}

TEST_F(TempDirTest, CommitDirectoryOfAMissingFolderThrows) {
  EXPECT_THROW(commit_directory(path("absent"), path("v1"), true), Error);
  EXPECT_FALSE(fs::exists(path("v1")));
}

}  // namespace
}  // namespace retain
