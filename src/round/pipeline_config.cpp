// A round's job config: validated once, right after loading (pipeline.h, docs/config.md).
#include <cctype>
#include <cmath>

#include "retain/config.h"
#include "retain/errors.h"
#include "retain/pipeline.h"

namespace retain {

namespace {

const std::vector<std::string> kSections = {"name", "replay", "ewc", "lora", "training", "eval", "gate"};
const std::vector<std::string> kReplayKeys = {"ratio", "strategy", "per_topic_cap"};
const std::vector<std::string> kEwcKeys = {"lambda", "gamma", "estimator", "num_samples", "samples_per_example",
                                           "batch_size", "path", "bf16"};
const std::vector<std::string> kEvalKeys = {"batch_size", "max_new_tokens"};

const nlohmann::json& section(const nlohmann::json& j, const char* key, const std::vector<std::string>& known,
                              const std::string& what) {
  static const nlohmann::json kEmpty = nlohmann::json::object();
  if (!j.contains(key)) return kEmpty;
  const auto& s = j.at(key);
  if (!s.is_object()) throw ConfigError(what + ": \"" + key + "\" must be an object");
  if (!known.empty()) reject_unknown_keys(s, known, what + ": " + key);
  return s;
}

double number(const nlohmann::json& s, const char* key, double fallback, const std::string& where) {
  if (!s.contains(key)) return fallback;
  if (!s.at(key).is_number()) throw ConfigError(where + "." + key + " must be a number");
  const double x = s.at(key).get<double>();
  if (!std::isfinite(x)) throw ConfigError(where + "." + key + " must be finite");
  return x;
}

int64_t integer(const nlohmann::json& s, const char* key, int64_t fallback, int64_t min, const std::string& where) {
  if (!s.contains(key)) return fallback;
  if (!s.at(key).is_number_integer()) throw ConfigError(where + "." + key + " must be an integer");
  const int64_t x = s.at(key).get<int64_t>();
  if (x < min) throw ConfigError(where + "." + key + " must be ≥ " + std::to_string(min));
  return x;
}

std::string text(const nlohmann::json& s, const char* key, const std::string& fallback, const std::string& where) {
  if (!s.contains(key)) return fallback;
  if (!s.at(key).is_string()) throw ConfigError(where + "." + key + " must be a string");
  return s.at(key).get<std::string>();
}

const char* path_name(FisherOptions::Path p) {
  return p == FisherOptions::Path::kLoop ? "loop" : p == FisherOptions::Path::kBatched ? "batched" : "auto";
}

}  // namespace

RoundConfig RoundConfig::from_json(const nlohmann::json& j, const std::string& what) {
  if (!j.is_object()) throw ConfigError(what + ": a round config must be a JSON object");
  reject_unknown_keys(j, kSections, what);
  RoundConfig c;
  c.name = text(j, "name", "", what);
  if (!c.name.empty()) {
    for (char ch : c.name)
      if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' || ch == '-'))
        throw ConfigError(what + ": name \"" + c.name + "\" may only hold A-Z a-z 0-9 . _ -");
  }

  const auto& replay = section(j, "replay", kReplayKeys, what);
  if (replay.contains("ratio") && replay.at("ratio") == "auto") {
    c.replay.auto_ratio = true;
  } else {
    c.replay.ratio = number(replay, "ratio", c.replay.ratio, what + ": replay");
    if (c.replay.ratio < 0 || c.replay.ratio >= 1)
      throw ConfigError(what + ": replay.ratio must be in [0, 1), or \"auto\"");
  }
  c.replay.strategy = parse_sample_strategy(text(replay, "strategy", "diverse", what + ": replay"));
  c.replay.per_topic_cap = integer(replay, "per_topic_cap", 0, 0, what + ": replay");

  const auto& ewc = section(j, "ewc", kEwcKeys, what);
  c.ewc.lambda = number(ewc, "lambda", 0, what + ": ewc");
  c.ewc.gamma = number(ewc, "gamma", 1.0, what + ": ewc");
  if (c.ewc.lambda < 0) throw ConfigError(what + ": ewc.lambda must be ≥ 0");
  if (c.ewc.gamma < 0 || c.ewc.gamma > 1) throw ConfigError(what + ": ewc.gamma must be in [0, 1]");
  c.ewc.fisher.estimator = parse_estimator(text(ewc, "estimator", "empirical", what + ": ewc"));
  c.ewc.fisher.num_samples = integer(ewc, "num_samples", 1000, 1, what + ": ewc");
  c.ewc.fisher.samples_per_example = integer(ewc, "samples_per_example", 1, 1, what + ": ewc");
  c.ewc.fisher.batch_size = integer(ewc, "batch_size", 32, 1, what + ": ewc");
  const std::string path = text(ewc, "path", "auto", what + ": ewc");
  if (path == "auto") c.ewc.fisher.path = FisherOptions::Path::kAuto;
  else if (path == "loop") c.ewc.fisher.path = FisherOptions::Path::kLoop;
  else if (path == "batched") c.ewc.fisher.path = FisherOptions::Path::kBatched;
  else throw ConfigError(what + ": ewc.path must be auto, loop or batched");
  if (ewc.contains("bf16")) {
    if (!ewc.at("bf16").is_boolean()) throw ConfigError(what + ": ewc.bf16 must be true or false");
    c.ewc.bf16 = ewc.at("bf16").get<bool>();
  }

  if (j.contains("lora")) c.lora = LoraConfig::from_json(j.at("lora"), what);

  const auto& training = section(j, "training", {}, what);
  if (training.contains("ewc_lambda"))
    throw ConfigError(what + ": training.ewc_lambda: a round sets λ in ewc.lambda");
  c.training = TrainConfig::from_json(training, what + ": training");
  c.ewc.fisher.seed = c.training.seed;

  const auto& eval = section(j, "eval", kEvalKeys, what);
  c.eval.batch_size = integer(eval, "batch_size", c.eval.batch_size, 1, what + ": eval");
  c.eval.max_new_tokens = integer(eval, "max_new_tokens", c.eval.max_new_tokens, 1, what + ": eval");

  if (!j.contains("gate")) throw ConfigError(what + ": a round needs a \"gate\" with its test sets");
  c.gate = GateConfig::from_json(j.at("gate"), what + ": gate");
  return c;
}

nlohmann::json RoundConfig::to_json() const {
  nlohmann::json training_json = training.to_json();
  nlohmann::json j = {{"name", name},
          {"replay", {{"ratio", replay.auto_ratio ? nlohmann::json("auto") : nlohmann::json(replay.ratio)},
                      {"strategy", strategy_name(replay.strategy)},
                      {"per_topic_cap", replay.per_topic_cap}}},
          {"ewc", {{"lambda", ewc.lambda}, {"gamma", ewc.gamma}, {"estimator", estimator_name(ewc.fisher.estimator)},
                   {"num_samples", ewc.fisher.num_samples}, {"samples_per_example", ewc.fisher.samples_per_example},
                   {"batch_size", ewc.fisher.batch_size}, {"path", path_name(ewc.fisher.path)}, {"bf16", ewc.bf16}}},
          {"training", training_json},
          {"eval", {{"batch_size", eval.batch_size}, {"max_new_tokens", eval.max_new_tokens}}},
          {"gate", gate.to_json()}};
  if (lora.enabled()) j["lora"] = lora.to_json();
  return j;
}

void apply_overrides(nlohmann::json& config, const std::vector<std::string>& overrides) {
  for (const auto& o : overrides) {
    const auto eq = o.find('=');
    if (eq == std::string::npos || eq == 0)
      throw ConfigError("--set " + o + ": expected section.key=value (for example training.lr=1e-4)");
    const std::string path = o.substr(0, eq), raw = o.substr(eq + 1);
    nlohmann::json value;
    try {
      value = parse_json_text(raw);
    } catch (const nlohmann::json::parse_error&) {
      value = raw;  // a bare word is a string
    } catch (const nlohmann::json::exception& e) {  // a number out of range: 1e400
      throw ConfigError("--set " + o + ": " + e.what());
    } catch (const JsonTooDeep& e) {
      throw ConfigError("--set " + o + ": " + e.what());
    }
    nlohmann::json* node = &config;
    size_t start = 0;
    while (true) {
      const auto dot = path.find('.', start);
      const std::string key = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      if (key.empty()) throw ConfigError("--set " + o + ": empty key in \"" + path + "\"");
      if (!node->is_object()) throw ConfigError("--set " + o + ": \"" + key + "\" is inside a value that is not an object");
      if (dot == std::string::npos) {
        (*node)[key] = value;
        break;
      }
      if (!node->contains(key)) (*node)[key] = nlohmann::json::object();
      node = &(*node)[key];
      start = dot + 1;
    }
  }
}

}  // namespace retain
