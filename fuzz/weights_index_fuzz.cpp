// model.safetensors.index.json beside one real shard: the index of a sharded Hugging Face model.
#include "fuzz_util.h"
#include "retain/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = [] {
    const std::string d = retain::fuzz::scratch_dir() + "/model";
    std::filesystem::create_directories(d);
    retain::save_safetensors(d + "/model-00001-of-00001.safetensors",
                             {{"a", torch::zeros({2, 3})}, {"b", torch::ones({4})}});
    return d;
  }();
  retain::write_file_atomic(dir + "/" + retain::kIndexFile, retain::fuzz::bytes_of(data, size));
  retain::fuzz::refuse_or_accept([&] { (void)retain::read_weight_files(dir); });
  return 0;
}
