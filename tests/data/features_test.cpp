// Feature data: IDX files written here (plain and gzip'd), their rejections, and JSONL features.
#include <zlib.h>

#include <fstream>

#include <gtest/gtest.h>

#include "retain/errors.h"
#include "retain/features.h"
#include "retain/fileio.h"
#include "test_util.h"

namespace retain {
namespace {

std::string idx_bytes(const std::vector<uint32_t>& shape, const std::vector<uint8_t>& values) {
  std::string b = {0, 0, 8, char(shape.size())};
  for (uint32_t d : shape)
    for (int s = 24; s >= 0; s -= 8) b.push_back(char((d >> s) & 0xff));
  b.append(values.begin(), values.end());
  return b;
}

void write(const std::string& path, const std::string& bytes, bool gzip) {
  if (gzip) {
    gzFile f = gzopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(gzwrite(f, bytes.data(), unsigned(bytes.size())), int(bytes.size()));
    gzclose(f);
  } else {
    std::ofstream(path, std::ios::binary) << bytes;
  }
}

// The DataError message `f` throws ("" when none).
template <typename F>
std::string data_error(F&& f) {
  try {
    f();
  } catch (const DataError& e) {
    return e.what();
  }
  return "";
}

TEST(FeaturesIdx, ReadsPlainAndGzipAndScalesPixels) {
  testing_util::TempDir tmp;
  const auto images = idx_bytes({3, 2, 2}, {0, 255, 51, 102, 1, 2, 3, 4, 5, 6, 7, 8});
  const auto labels = idx_bytes({3}, {9, 0, 4});
  for (bool gz : {false, true}) {
    const auto ip = tmp / (gz ? "img.gz" : "img"), lp = tmp / (gz ? "lab.gz" : "lab");
    write(ip, images, gz);
    write(lp, labels, gz);
    const auto raw = read_idx(ip);
    EXPECT_EQ(raw.sizes(), (std::vector<int64_t>{3, 2, 2}));
    EXPECT_EQ(raw[0][0][1].item<int>(), 255);
    const auto set = read_idx_pair(ip, lp);
    EXPECT_EQ(set.x.sizes(), (std::vector<int64_t>{3, 4}));
    EXPECT_FLOAT_EQ(set.x[0][1].item<float>(), 1.0f);
    EXPECT_FLOAT_EQ(set.x[0][2].item<float>(), 0.2f);
    EXPECT_EQ(set.y[0].item<int64_t>(), 9);
    EXPECT_EQ(set.num_classes(), 10);
  }
}

TEST(FeaturesIdx, RejectsBadMagicTruncationAndMismatch) {
  testing_util::TempDir tmp;
  std::string bad = idx_bytes({2}, {1, 2});
  bad[2] = 0x0D;  // float data: not supported
  write(tmp / "bad", bad, false);
  EXPECT_NE(data_error([&] { read_idx(tmp / "bad"); }).find("magic number"), std::string::npos);
  write(tmp / "text.gz", "hello, not idx", true);
  EXPECT_NE(data_error([&] { read_idx(tmp / "text.gz"); }).find("magic number"), std::string::npos);
  write(tmp / "short", idx_bytes({3}, {1, 2}), false);
  EXPECT_NE(data_error([&] { read_idx(tmp / "short"); }).find("truncated"), std::string::npos);
  const std::string gz_cut = [&] {
    write(tmp / "full.gz", idx_bytes({400}, std::vector<uint8_t>(400, 7)), true);
    std::ifstream in(tmp / "full.gz", std::ios::binary);
    std::string s((std::istreambuf_iterator<char>(in)), {});
    return s.substr(0, s.size() - 10);
  }();
  write(tmp / "cut.gz", gz_cut, false);
  EXPECT_NE(data_error([&] { read_idx(tmp / "cut.gz"); }).find("corrupt gzip"), std::string::npos);
  write(tmp / "img", idx_bytes({2, 1, 1}, {1, 2}), false);
  write(tmp / "lab", idx_bytes({3}, {1, 2, 3}), false);
  EXPECT_NE(data_error([&] { read_idx_pair(tmp / "img", tmp / "lab"); }).find("3 labels"), std::string::npos);
  EXPECT_NE(data_error([&] { read_idx(tmp / "missing"); }), "");
  EXPECT_NE(data_error([&] { load_mnist_split(tmp.path.string(), "train"); }).find("dataset-fashion-mnist"),
            std::string::npos);
}

TEST(FeaturesJsonl, ReadsFeaturesAndLabels) {
  testing_util::TempDir tmp;
  std::ofstream(tmp / "ok.jsonl") << "{\"features\": [0.5, 1, -2], \"label\": 3}\n\n"
                                  << "{\"label\": 0, \"features\": [1e-3, 0, 4.25]}\n";
  const auto set = read_feature_jsonl(tmp / "ok.jsonl");
  EXPECT_EQ(set.size(), 2);
  EXPECT_EQ(set.num_features(), 3);
  EXPECT_FLOAT_EQ(set.x[1][2].item<float>(), 4.25f);
  EXPECT_EQ(set.y[0].item<int64_t>(), 3);
}

TEST(FeaturesJsonl, ErrorsNameFileLineAndRule) {
  testing_util::TempDir tmp;
  const std::string good = "{\"features\": [1, 2], \"label\": 1}\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{oops", "invalid_json"},
      {"[1, 2]", "not_object"},
      {"{\"features\": [1, 2], \"label\": 1, \"x\": 0}", "unknown_key"},
      {"{\"features\": [], \"label\": 1}", "missing_features"},
      {"{\"features\": [1, \"a\"], \"label\": 1}", "bad_feature"},
      {"{\"features\": [1, 2, 3], \"label\": 1}", "feature_count"},
      {"{\"features\": [1, 2]}", "missing_label"},
      {"{\"features\": [1, 2], \"label\": -1}", "bad_label"},
      {"{\"features\": [1, 2], \"label\": 1.5}", "bad_label"},
      {"{\"features\": [1, 2], \"label\": 1048576}", "bad_label"},  // kMaxLabels: not a class count
      {"{\"features\": [1, 1e39], \"label\": 1}", "bad_feature"},   // finite in double, not in float32
  };
  for (const auto& [line, rule] : cases) {
    const auto path = tmp / (rule + ".jsonl");
    std::ofstream(path) << good << line << "\n";
    EXPECT_EQ(data_error([&] { read_feature_jsonl(path); }).rfind(path + ":2: " + rule + ":", 0), 0u)
        << line << " → " << data_error([&] { read_feature_jsonl(path); });
  }
  std::ofstream(tmp / "empty.jsonl") << "\n";
  EXPECT_NE(data_error([&] { read_feature_jsonl(tmp / "empty.jsonl"); }), "");
}

TEST(FeaturesIdx, SizesAreBoundedBeforeAnythingIsAllocated) {
  // Four dimensions of 2^32 − 1: their product overflows 64 bits, and must not wrap to a small size.
  const std::string huge = idx_bytes({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {});
  EXPECT_NE(data_error([&] { decode_idx(huge, "huge.idx"); }).find("huge.idx: the IDX header announces more than"),
            std::string::npos);
  // A gzip'd file that inflates past the limit is refused while it inflates.
  testing_util::TempDir tmp;
  const std::string bomb = idx_bytes({1 << 12, 1 << 10}, std::vector<uint8_t>(size_t{1} << 22, 0));
  write(tmp / "bomb.idx.gz", bomb, true);
  const std::string gz = read_file(tmp / "bomb.idx.gz");
  EXPECT_LT(gz.size(), size_t{1} << 16);
  EXPECT_NE(data_error([&] { decode_idx(gz, "bomb.idx.gz", size_t{1} << 20); }).find("bomb.idx.gz: inflates to more than 1048576 bytes"),
            std::string::npos);
  EXPECT_EQ(decode_idx(gz, "bomb.idx.gz").numel(), int64_t{1} << 22);  // under the default limit it reads
  EXPECT_NE(data_error([&] { decode_idx(bomb, "plain.idx", size_t{1} << 20); }).find("announces more than 1048576"),
            std::string::npos);
}

TEST(FeaturesJsonl, ALineOverTheLimitIsRefusedByRule) {
  testing_util::TempDir tmp;
  const auto path = tmp / "long.jsonl";
  {
    std::ofstream out(path, std::ios::binary);
    out << "{\"features\": [1, 2], \"label\": 1}\n{\"features\": [" << std::string(kMaxLineBytes, '1') << "], \"label\": 0}\n";
  }
  EXPECT_EQ(data_error([&] { read_feature_jsonl(path); }).rfind(path + ":2: line_too_long:", 0), 0u)
      << data_error([&] { read_feature_jsonl(path); });
}

}  // namespace
}  // namespace retain
