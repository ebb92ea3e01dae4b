// TrainConfig: the training keys of a job config, validated once on load.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <variant>

#include "retain/config.h"
#include "retain/errors.h"
#include "retain/trainer.h"

namespace retain {

namespace {

using FieldPtr = std::variant<int64_t TrainConfig::*, uint64_t TrainConfig::*, double TrainConfig::*,
                              std::string TrainConfig::*, bool TrainConfig::*>;
struct Field {
  const char* key;
  FieldPtr ptr;
  double min;  // smallest allowed value for numbers
  double max;  // largest allowed value (0: no bound): what a machine or a sane schedule can have
};

const std::vector<Field>& fields() {
  static const std::vector<Field> f = {
      {"max_steps", &TrainConfig::max_steps, 0, 1e9},
      {"epochs", &TrainConfig::epochs, 1, 1e6},
      {"batch_size", &TrainConfig::batch_size, 1, 1 << 20},
      {"grad_accum", &TrainConfig::grad_accum, 1, 1 << 16},
      {"lr", &TrainConfig::lr, 0, 10},
      {"min_lr_ratio", &TrainConfig::min_lr_ratio, 0, 1},
      {"warmup_steps", &TrainConfig::warmup_steps, 0, 1e9},
      {"weight_decay", &TrainConfig::weight_decay, 0, 10},
      {"adam_beta1", &TrainConfig::adam_beta1, 0, 1},
      {"adam_beta2", &TrainConfig::adam_beta2, 0, 1},
      {"adam_eps", &TrainConfig::adam_eps, 0, 1},
      {"grad_clip", &TrainConfig::grad_clip, 0, 1e9},
      {"seed", &TrainConfig::seed, 0, 0},
      {"device", &TrainConfig::device, 0, 0},
      {"precision", &TrainConfig::precision, 0, 0},
      {"tf32", &TrainConfig::tf32, 0, 0},
      {"eval_every", &TrainConfig::eval_every, 0, 1e9},
      {"log_every", &TrainConfig::log_every, 1, 1e9},
      {"checkpoint_every", &TrainConfig::checkpoint_every, 0, 1e9},
      {"keep_checkpoints", &TrainConfig::keep_checkpoints, 1, 1e6},
      {"max_seq_len", &TrainConfig::max_seq_len, 0, 1 << 24},
      {"max_nonfinite", &TrainConfig::max_nonfinite, 1, 1e9},
      {"threads", &TrainConfig::threads, 0, 1024},
      {"group_by_length", &TrainConfig::group_by_length, 0, 0},
      {"eval_batch_size", &TrainConfig::eval_batch_size, 1, 1 << 20},
  };
  return f;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
      diag = up;
    }
  }
  return row[b.size()];
}

// 1e9 as "1000000000", 0.5 as "0.5".
std::string number_text(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.15g", x);
  return buf;
}

}  // namespace

std::string nearest_key(const std::string& key, const std::vector<std::string>& known) {
  std::string best;
  size_t best_d = 4;  // farther than this is no useful hint
  for (const auto& k : known) {
    const size_t d = edit_distance(key, k);
    if (d < best_d) best_d = d, best = k;
  }
  return best;
}

const std::vector<std::string>& TrainConfig::keys() {
  static const std::vector<std::string> k = [] {
    std::vector<std::string> out;
    for (const auto& f : fields()) out.push_back(f.key);
    return out;
  }();
  return k;
}

TrainConfig TrainConfig::from_json(const nlohmann::json& j, const std::string& what) {
  if (!j.is_object()) throw ConfigError(what + ": the training settings must be a JSON object");
  reject_unknown_keys(j, keys(), what);
  TrainConfig c;
  for (const auto& item : j.items()) {
    const std::string& key = item.key();  // not a structured binding: lambdas capture these
    const nlohmann::json& value = item.value();
    auto f = std::find_if(fields().begin(), fields().end(), [&](const Field& f) { return key == f.key; });
    auto bad = [&](const char* expected) {
      return ConfigError(what + ": \"" + key + "\" must be " + expected + ", got " + value.dump());
    };
    std::visit(
        [&](auto member) {
          using T = std::decay_t<decltype(c.*member)>;
          if constexpr (std::is_same_v<T, std::string>) {
            if (!value.is_string()) throw bad("a string");
            c.*member = value.get<std::string>();
          } else if constexpr (std::is_same_v<T, bool>) {
            if (!value.is_boolean()) throw bad("true or false");
            c.*member = value.get<bool>();
          } else if constexpr (std::is_same_v<T, double>) {
            if (!value.is_number() || !std::isfinite(value.get<double>()) || value.get<double>() < f->min ||
                (f->max > 0 && value.get<double>() > f->max))
              throw bad(("a number, finite, ≥ " + number_text(f->min) + " and ≤ " + number_text(f->max)).c_str());
            c.*member = value.get<double>();
          } else if constexpr (std::is_same_v<T, uint64_t>) {
            if (!value.is_number_unsigned() && !(value.is_number_integer() && value.get<int64_t>() >= 0))
              throw bad("an integer ≥ 0");
            c.*member = value.get<uint64_t>();
          } else {
            if (!value.is_number_integer() || value.get<int64_t>() < f->min ||
                (f->max > 0 && double(value.get<int64_t>()) > f->max))
              throw bad(f->max > 0 ? ("an integer ≥ " + number_text(f->min) + " and ≤ " + number_text(f->max)).c_str()
                                   : f->min == 0 ? "an integer ≥ 0" : "an integer ≥ 1");
            c.*member = static_cast<T>(value.get<int64_t>());
          }
        },
        f->ptr);
  }
  if (c.precision != "fp32" && c.precision != "bf16")
    throw ConfigError(what + ": \"precision\" must be fp32 or bf16, got \"" + c.precision + "\"");
  if (c.adam_beta1 >= 1 || c.adam_beta2 >= 1)
    throw ConfigError(what + ": adam_beta1 and adam_beta2 must be below 1");
  if (c.min_lr_ratio > 1) throw ConfigError(what + ": \"min_lr_ratio\" must be at most 1");
  c.resolved_device();  // validates the device string and precision/device pairing
  return c;
}

nlohmann::json TrainConfig::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& f : fields())
    std::visit([&](auto member) { j[f.key] = this->*member; }, f.ptr);
  return j;
}

torch::Device parse_device(const std::string& device) {
  const bool cuda = device == "cuda" || device.rfind("cuda:", 0) == 0;
  if (device == "cpu" || cuda) {
    std::optional<torch::Device> d;
    try {
      d = torch::Device(device);
    } catch (const c10::Error&) {
    }
    // Checked here, before a job stages or trains anything, not when the first tensor moves.
    if (d && d->is_cuda()) {
      if (!torch::cuda::is_available())
        throw ConfigError("device " + device + ": no CUDA device is usable here (no GPU, or a CPU-only build of "
                          "LibTorch); use --device cpu");
      if (d->has_index() && d->index() >= int64_t(torch::cuda::device_count()))
        throw ConfigError("device " + device + ": this machine has " + std::to_string(torch::cuda::device_count()) +
                          " CUDA device(s)");
    }
    if (d) return *d;
  }
  throw ConfigError("device must be cpu, cuda or cuda:N, got \"" + device + "\"");
}

torch::Device TrainConfig::resolved_device() const {
  const torch::Device d = parse_device(device);
  if (precision == "bf16" && !d.is_cuda())
    throw ConfigError("precision bf16 (autocast) needs a CUDA device; on CPU train in fp32 "
                      "(drop --precision bf16 or pass --device cuda)");
  return d;
}

}  // namespace retain
