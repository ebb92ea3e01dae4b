// The mlp family's data: a feature JSONL file, or IDX bytes (gzip'd or not). The first byte picks.
#include <sstream>

#include "fuzz_util.h"
#include "retain/features.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string text = retain::fuzz::bytes_of(data + 1, size - 1);
  retain::fuzz::refuse_or_accept([&] {
    if (data[0] & 1) {
      // A small limit, so that a header announcing 2 GiB is refused rather than allocated here.
      const torch::Tensor t = retain::decode_idx(text, "fuzz.idx", size_t{1} << 24);
      if (t.numel() > int64_t{1} << 24) std::abort();
    } else {
      std::istringstream in(text);
      const retain::FeatureSet set = retain::read_feature_jsonl(in, "fuzz.jsonl");
      if (set.size() < 1 || set.num_classes() > retain::kMaxLabels) std::abort();
    }
  });
  return 0;
}
