// `retain fisher` as a library call: the Fisher of a model directory of any family on a data file.
#pragma once

#include <string>

#include "retain/ewc.h"

namespace retain {

// `retain fisher`: estimate the Fisher of the model in `model_dir` on `data` (the family's data file), optionally
// consolidate with the state in `consolidate_with` (a model directory or an ewc.safetensors file),
// and write `out` (default <model_dir>/ewc.safetensors) atomically. θ* is the model's weights.
struct FisherJob {
  std::string model_dir, data, consolidate_with, out;
  std::string labels;  // mlp with IDX images: the labels of `data`
  FisherOptions options;
  double gamma = 1.0;
  bool bf16 = false;
  std::string device = "cpu";
};
struct FisherJobResult {
  EwcState state;
  std::string out;
  double seconds = 0;
};
FisherJobResult run_fisher_job(const FisherJob& job);

}  // namespace retain
