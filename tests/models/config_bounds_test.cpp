// A config.json that asks for more than its weights hold, or for sizes no checkpoint has, is refused
// by key before anything is allocated (a gpt and a llama directory).
#include <filesystem>

#include <gtest/gtest.h>

#include "retain/checkpoint.h"
#include "retain/errors.h"
#include "retain/family.h"
#include "retain/fileio.h"
#include "test_util.h"

namespace retain {
namespace {

namespace fs = std::filesystem;
using testing_util::TempDir;

const fs::path kSource = RETAIN_SOURCE_DIR;

// The error of loading `dir` with its config.json `original` but `key` set to `value` ("" when it
// loads).
std::string load_error(const std::string& dir, nlohmann::json config, const std::string& key,
                       const nlohmann::json& value) {
  const std::string path = dir + "/config.json";
  config[key] = value;
  write_file_atomic(path, config.dump());
  try {
    load_family_model(dir, 0);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ConfigBounds, SizesPastTheWeightsOrAnyCheckpointAreRefusedByKey) {
  for (const std::string preset : {"gpt-tiny", "qwen3-tiny"}) {
    TempDir tmp;
    const std::string dir = tmp / "model";
    load_family_model((kSource / "models" / preset).string(), 1)->save(dir, false, nlohmann::json());
    const nlohmann::json original = nlohmann::json::parse(read_file(dir + "/config.json"));
    const bool gpt = preset == "gpt-tiny";
    const std::string layers = gpt ? "n_layer" : "num_hidden_layers";
    // Beyond any checkpoint: refused by the bound, naming the key.
    EXPECT_NE(load_error(dir, original, layers, 1000000).find("\"" + layers + "\""), std::string::npos) << preset;
    EXPECT_NE(load_error(dir, original, "vocab_size", int64_t(1000000000000)).find("\"vocab_size\""), std::string::npos) << preset;
    // Within the bound but beyond the weights: refused by the weights' shapes, which are read
    // before the model (of 4,000 blocks) is built.
    const std::string more = load_error(dir, original, layers, 4000);
    EXPECT_NE(more.find(gpt ? "h.3999.ln_1.weight" : "model.layers.2."), std::string::npos) << preset << ": " << more;
    EXPECT_EQ(load_error(dir, original, layers, original.at(layers)), "") << preset;
  }
}

}  // namespace
}  // namespace retain
