// LoRA adapters on a module's Linear layers, and PEFT adapter directories (see lora.h).
#include "retain/lora.h"

#include <cmath>
#include <filesystem>
#include <set>

#include <ATen/CPUGeneratorImpl.h>

#include "retain/capture.h"
#include "retain/config.h"
#include "retain/errors.h"
#include "retain/fileio.h"

namespace retain {
namespace fs = std::filesystem;

namespace {

constexpr const char* kA = "lora_A";
constexpr const char* kB = "lora_B";
constexpr int64_t kMaxRank = 4096;

// PEFT's key of a module: "base_model.model." + Hugging Face's module name.
constexpr const char* kPeftPrefix = "base_model.model.";

struct Adapter {
  LoraFactorImpl* a = nullptr;
  LoraFactorImpl* b = nullptr;
};

Adapter adapter_of(const torch::nn::Module& layer) {
  Adapter out;
  for (const auto& child : layer.named_children()) {
    if (child.key() == kA) out.a = dynamic_cast<LoraFactorImpl*>(child.value().get());
    else if (child.key() == kB) out.b = dynamic_cast<LoraFactorImpl*>(child.value().get());
  }
  return out;
}

bool matches(const std::string& module_name, const std::string& target) {
  if (module_name == target) return true;
  return module_name.size() > target.size() &&
         module_name.compare(module_name.size() - target.size(), target.size(), target) == 0 &&
         module_name[module_name.size() - target.size() - 1] == '.';
}

bool is_name(const std::string& s) {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.')) return false;
  return true;
}

}  // namespace

// ---- config ---------------------------------------------------------------------------------

const std::vector<std::string>& LoraConfig::keys() {
  static const std::vector<std::string> k = {"rank", "alpha", "dropout", "target_modules", "merge"};
  return k;
}

LoraConfig LoraConfig::from_json(const nlohmann::json& j, const std::string& what) {
  if (!j.is_object()) throw ConfigError(what + ": \"lora\" must be an object, e.g. {\"rank\": 8}");
  reject_unknown_keys(j, keys(), what + ": lora");
  LoraConfig c;
  if (!j.contains("rank")) throw ConfigError(what + ": lora needs \"rank\" (for example 8)");
  const auto& rank = j.at("rank");
  if (!rank.is_number_integer() || rank.get<int64_t>() < 1 || rank.get<int64_t>() > kMaxRank)
    throw ConfigError(what + ": lora.rank must be an integer from 1 to " + std::to_string(kMaxRank) + ", got " +
                      rank.dump());
  c.rank = rank.get<int64_t>();
  if (j.contains("alpha")) {
    const auto& v = j.at("alpha");
    if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() <= 0 || v.get<double>() > 1e6)
      throw ConfigError(what + ": lora.alpha must be a positive number (at most 1e6), got " + v.dump());
    c.alpha = v.get<double>();
  }
  if (j.contains("dropout")) {
    const auto& v = j.at("dropout");
    if (!v.is_number() || !(v.get<double>() >= 0 && v.get<double>() < 1))
      throw ConfigError(what + ": lora.dropout must be a number in [0, 1), got " + v.dump());
    c.dropout = v.get<double>();
  }
  if (j.contains("target_modules")) {
    const auto& v = j.at("target_modules");
    if (!v.is_array() || v.empty())
      throw ConfigError(what + ": lora.target_modules must be a non-empty list of module names, e.g. "
                        "[\"q_proj\", \"v_proj\"]");
    std::set<std::string> seen;
    for (const auto& t : v) {
      if (!t.is_string() || !is_name(t.get<std::string>()))
        throw ConfigError(what + ": lora.target_modules: " + t.dump() +
                          " is not a module name (letters, digits, '_' and '.')");
      if (seen.insert(t.get<std::string>()).second) c.target_modules.push_back(t.get<std::string>());
    }
  }
  if (j.contains("merge")) {
    if (!j.at("merge").is_boolean()) throw ConfigError(what + ": lora.merge must be true or false");
    c.merge = j.at("merge").get<bool>();
  }
  return c;
}

nlohmann::json LoraConfig::to_json() const {
  if (!enabled()) return nlohmann::json::object();
  nlohmann::json j = {{"rank", rank}, {"alpha", alpha}, {"dropout", dropout}, {"merge", merge}};
  if (!target_modules.empty()) j["target_modules"] = target_modules;  // none: the family's default
  return j;
}

// ---- adapters -------------------------------------------------------------------------------

LoraFactorImpl::LoraFactorImpl(int64_t out_features, int64_t in_features, double scale_, double dropout_)
    : scale(scale_), dropout(dropout_) {
  weight = register_parameter("weight", torch::zeros({out_features, in_features}));
}

torch::Tensor lora_branch(const torch::nn::Module& layer, const torch::Tensor& x) {
  const Adapter ad = adapter_of(layer);
  if (ad.a == nullptr || ad.b == nullptr) return {};
  torch::Tensor in = x;
  if (ad.a->dropout > 0 && ad.a->is_training()) in = torch::dropout(x, ad.a->dropout, /*train=*/true);
  auto h = torch::nn::functional::linear(in, ad.a->weight);
  if (capturing()) capture({LayerCapture::Kind::kLinear, ad.a, in, h, 0, "", ""});
  auto z = torch::nn::functional::linear(h, ad.b->weight);
  if (capturing()) capture({LayerCapture::Kind::kLinear, ad.b, h, z, 0, "", ""});
  return z * ad.b->scale;
}

std::vector<std::string> attach_lora(torch::nn::Module& root, const LoraConfig& config, const LoraLayout& layout,
                                     uint64_t seed, const std::string& what) {
  if (!config.enabled()) throw ConfigError(what + ": lora.rank must be at least 1");
  if (has_lora(root)) throw ConfigError(what + ": the model already carries LoRA adapters");
  const auto& targets = config.target_modules.empty() ? layout.default_targets : config.target_modules;
  std::vector<std::pair<std::string, torch::nn::LinearImpl*>> chosen;
  std::set<std::string> used;
  for (const auto& m : root.named_modules("", /*include_self=*/false)) {
    auto* linear = dynamic_cast<torch::nn::LinearImpl*>(m.value().get());
    if (linear == nullptr) continue;
    // Targets name modules as Hugging Face does: retain's name with the family's prefix.
    const std::string hf_name = layout.hf_prefix + m.key();
    for (const auto& t : targets)
      if (matches(hf_name, t) || matches(m.key(), t)) {
        used.insert(t);
        chosen.emplace_back(m.key(), linear);
        break;
      }
  }
  for (const auto& t : targets)
    if (!used.count(t))
      throw ConfigError(what + ": lora.target_modules: \"" + t + "\" matches no linear layer of the model");
  {
    torch::NoGradGuard no_grad;
    for (auto& p : root.parameters()) p.set_requires_grad(false);
  }
  // A: kaiming_uniform(a = √5) as torch.nn.Linear and PEFT initialise it, bound 1/√in; B: zero.
  auto gen = at::detail::createCPUGenerator(seed);
  std::vector<std::string> names;
  for (auto& [name, linear] : chosen) {
    const int64_t out = linear->weight.size(0), in = linear->weight.size(1);
    const auto options = linear->weight.options();
    auto a = std::make_shared<LoraFactorImpl>(config.rank, in, config.scale(), config.dropout);
    auto b = std::make_shared<LoraFactorImpl>(out, config.rank, config.scale(), config.dropout);
    {
      torch::NoGradGuard no_grad;
      const double bound = 1.0 / std::sqrt(double(in));
      a->weight.copy_(torch::empty({config.rank, in}).uniform_(-bound, bound, gen));
      a->to(options.device(), options.dtype().toScalarType());
      b->to(options.device(), options.dtype().toScalarType());
    }
    linear->register_module(kA, a);
    linear->register_module(kB, b);
    names.push_back(name);
  }
  return names;
}

bool has_lora(torch::nn::Module& root) {
  for (const auto& p : root.named_parameters())
    if (is_lora_parameter(p.key())) return true;
  return false;
}

bool is_lora_parameter(const std::string& name) {
  auto ends = [&](const std::string& s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  return ends(".lora_A.weight") || ends(".lora_B.weight") || name == "lora_A.weight" || name == "lora_B.weight";
}

std::vector<LoraSite> lora_sites(torch::nn::Module& root) {
  std::vector<LoraSite> out;
  for (const auto& m : root.named_modules("", /*include_self=*/false)) {
    auto* linear = dynamic_cast<torch::nn::LinearImpl*>(m.value().get());
    if (linear == nullptr) continue;
    const Adapter ad = adapter_of(*linear);
    if (ad.a != nullptr && ad.b != nullptr) out.push_back({m.key(), linear, ad.a, ad.b});
  }
  return out;
}

void merge_lora(torch::nn::Module& root) {
  torch::NoGradGuard no_grad;
  for (const LoraSite& site : lora_sites(root)) {
    const auto delta = torch::matmul(site.b->weight.to(torch::kFloat), site.a->weight.to(torch::kFloat)) * site.b->scale;
    site.layer->weight.copy_(site.layer->weight.to(torch::kFloat) + delta);
    site.layer->unregister_module(kA);
    site.layer->unregister_module(kB);
  }
  for (auto& p : root.parameters()) p.set_requires_grad(true);
}

TensorMap lora_parameters(torch::nn::Module& root) {
  TensorMap out;
  for (const auto& p : root.named_parameters())
    if (is_lora_parameter(p.key())) out[p.key()] = p.value().detach();
  return out;
}

// ---- directories ------------------------------------------------------------------------------

bool is_adapter_dir(const std::string& dir) {
  return fs::is_regular_file(fs::path(dir) / kAdapterConfigFile) && !fs::exists(fs::path(dir) / kConfigFile);
}

std::string adapter_base_dir(const std::string& dir) {
  const std::string path = (fs::path(dir) / kAdapterBaseFile).string();
  if (!fs::is_regular_file(path))
    throw CheckpointError(dir + ": a LoRA adapter without " + kAdapterBaseFile +
                          " (which names its base model); register it with `retain import --peft " + dir +
                          " --base ID`");
  const nlohmann::json j = read_json_file(path);
  if (!j.is_object() || !j.contains("base") || !j["base"].is_string() || j["base"].get<std::string>().empty())
    throw CheckpointError(path + ": expected {\"base\": \"<base model directory, relative to this one>\"}");
  const fs::path base = fs::path(dir) / j["base"].get<std::string>();
  if (!fs::is_directory(base))
    throw CheckpointError(path + ": the base model " + base.lexically_normal().string() + " does not exist");
  if (is_adapter_dir(base.string()))
    throw CheckpointError(path + ": the base " + base.lexically_normal().string() + " is itself an adapter");
  return base.lexically_normal().string();
}

std::string config_dir(const std::string& dir) { return is_adapter_dir(dir) ? adapter_base_dir(dir) : dir; }

LoraConfig read_adapter_config(const std::string& dir, const LoraLayout& layout) {
  const std::string cpath = (fs::path(dir) / kAdapterConfigFile).string();
  const nlohmann::json c = read_json_file(cpath);
  if (!c.is_object()) throw CheckpointError(cpath + ": must be a JSON object");
  auto str = [&](const char* key, const std::string& fallback) {
    if (!c.contains(key) || c[key].is_null()) return fallback;
    if (!c[key].is_string()) throw CheckpointError(cpath + ": \"" + key + "\" must be a string");
    return c[key].get<std::string>();
  };
  if (str("peft_type", "") != "LORA")
    throw CheckpointError(cpath + ": \"peft_type\" is \"" + str("peft_type", "") + "\"; retain reads LORA adapters");
  if (str("bias", "none") != "none")
    throw CheckpointError(cpath + ": \"bias\" is \"" + str("bias", "") + "\"; retain reads adapters with bias \"none\"");
  for (const char* key : {"use_dora", "use_rslora"})
    if (c.contains(key) && c[key].is_boolean() && c[key].get<bool>())
      throw CheckpointError(cpath + ": \"" + key + "\" is true; retain reads plain LoRA only");
  for (const char* key : {"rank_pattern", "alpha_pattern"})
    if (c.contains(key) && !c[key].is_null() && !(c[key].is_object() && c[key].empty()))
      throw CheckpointError(cpath + ": \"" + key + "\" (per-module ranks) is not supported");
  if (c.contains("modules_to_save") && !c["modules_to_save"].is_null() &&
      !(c["modules_to_save"].is_array() && c["modules_to_save"].empty()))
    throw CheckpointError(cpath + ": \"modules_to_save\" (fully trained modules beside the adapter) is not supported");
  if (c.contains("fan_in_fan_out") && c["fan_in_fan_out"].is_boolean() &&
      c["fan_in_fan_out"].get<bool>() != layout.fan_in_fan_out)
    throw CheckpointError(cpath + ": \"fan_in_fan_out\" is " + c["fan_in_fan_out"].dump() + "; this family's is " +
                          (layout.fan_in_fan_out ? "true" : "false"));
  nlohmann::json section = {{"rank", c.value("r", nlohmann::json())}};
  if (c.contains("lora_alpha")) section["alpha"] = c["lora_alpha"];
  if (c.contains("lora_dropout")) section["dropout"] = c["lora_dropout"];
  if (c.contains("target_modules") && c["target_modules"].is_array()) section["target_modules"] = c["target_modules"];
  else if (c.contains("target_modules") && !c["target_modules"].is_null())
    throw CheckpointError(cpath + ": \"target_modules\" must be a list of module names");
  try {
    return LoraConfig::from_json(section, cpath);
  } catch (const ConfigError& e) {
    throw CheckpointError(e.what());
  }
}

AdapterFiles read_adapter_files(const std::string& dir, const LoraLayout& layout) {
  AdapterFiles files;
  files.config = read_adapter_config(dir, layout);
  const std::string wpath = (fs::path(dir) / kAdapterWeightsFile).string();
  if (!fs::is_regular_file(wpath)) throw CheckpointError(dir + ": no " + kAdapterWeightsFile);
  const std::string prefix = std::string(kPeftPrefix) + layout.hf_prefix;
  for (auto& [name, t] : load_safetensors(wpath).tensors) {
    if (name.compare(0, prefix.size(), prefix) != 0 || !is_lora_parameter(name))
      throw CheckpointError(wpath + ": tensor " + name + " is not a LoRA weight of this family (" + prefix +
                            "<module>.lora_A.weight / .lora_B.weight)");
    if (!t.is_floating_point()) throw CheckpointError(wpath + ": tensor " + name + " is not a float tensor");
    if (!torch::isfinite(t).all().item<bool>()) throw CheckpointError(wpath + ": tensor " + name + " is not finite");
    files.tensors[name.substr(prefix.size())] = t.to(torch::kFloat);
  }
  return files;
}

void load_adapter(torch::nn::Module& root, const AdapterFiles& files, const std::string& what) {
  const TensorMap params = lora_parameters(root);
  for (const auto& [name, t] : files.tensors)
    if (!params.count(name)) throw CheckpointError(what + ": adapter tensor " + name + " has no module in the base");
  torch::NoGradGuard no_grad;
  for (const auto& [name, p] : params) {
    const auto it = files.tensors.find(name);
    if (it == files.tensors.end()) throw CheckpointError(what + ": missing adapter tensor " + name);
    if (it->second.sizes() != p.sizes())
      throw CheckpointError(what + ": adapter tensor " + name + " has shape " + c10::str(it->second.sizes()) +
                            ", the base's module needs " + c10::str(p.sizes()));
    p.copy_(it->second);
  }
}

void write_adapter_dir(const std::string& dir, torch::nn::Module& root, const LoraConfig& config,
                       const LoraLayout& layout, const std::string& base_model_name_or_path,
                       const std::vector<std::pair<std::string, std::string>>& files, bool overwrite) {
  if (fs::exists(dir) && !overwrite) throw CheckpointError(dir + ": already exists; pass --overwrite to replace it");
  // target_modules as PEFT records them: the last part of every adapted module's name.
  std::set<std::string> targets;
  TensorMap tensors;
  for (const auto& [name, t] : lora_parameters(root)) {
    tensors[std::string(kPeftPrefix) + layout.hf_prefix + name] = t.to(torch::kCPU, torch::kFloat);
    const std::string module = name.substr(0, name.rfind(".lora_"));
    targets.insert(module.substr(module.rfind('.') + 1));
  }
  if (tensors.empty()) throw CheckpointError(dir + ": the model carries no adapter to write");
  const nlohmann::json adapter_config = {
      {"peft_type", "LORA"},
      {"task_type", "CAUSAL_LM"},
      {"r", config.rank},
      {"lora_alpha", config.alpha},
      {"lora_dropout", config.dropout},
      {"target_modules", std::vector<std::string>(targets.begin(), targets.end())},
      {"bias", "none"},
      {"fan_in_fan_out", layout.fan_in_fan_out},
      {"base_model_name_or_path", base_model_name_or_path},
      {"inference_mode", true},
      {"init_lora_weights", true},
      {"use_rslora", false},
      {"use_dora", false},
      {"modules_to_save", nullptr},
      {"rank_pattern", nlohmann::json::object()},
      {"alpha_pattern", nlohmann::json::object()}};
  build_directory(dir, overwrite, [&](const std::string& tmp) {
    save_safetensors((fs::path(tmp) / kAdapterWeightsFile).string(), tensors);
    write_file_atomic((fs::path(tmp) / kAdapterConfigFile).string(), adapter_config.dump(2) + "\n");
    for (const auto& [name, text] : files) write_file_atomic((fs::path(tmp) / name).string(), text);
  });
}

void export_peft(const std::string& adapter_dir, const std::string& out_dir, const std::string& base_model_name_or_path,
                 bool overwrite) {
  if (!is_adapter_dir(adapter_dir)) throw CheckpointError(adapter_dir + ": not a LoRA adapter directory");
  if (fs::exists(out_dir) && !overwrite) throw CheckpointError(out_dir + ": already exists; pass --overwrite to replace it");
  nlohmann::json config = read_json_file((fs::path(adapter_dir) / kAdapterConfigFile).string());
  config["base_model_name_or_path"] = base_model_name_or_path;
  const std::string weights = (fs::path(adapter_dir) / kAdapterWeightsFile).string();
  load_safetensors(weights);  // a damaged file is refused here, not by PEFT later
  build_directory(out_dir, overwrite, [&](const std::string& tmp) {
    copy_file_checked(weights, (fs::path(tmp) / kAdapterWeightsFile).string());
    write_file_atomic((fs::path(tmp) / kAdapterConfigFile).string(), config.dump(2) + "\n");
  });
}

std::string adapter_base_json(const std::string& base_ref, const nlohmann::json& extra) {
  nlohmann::json j = extra;
  j["format_version"] = 1;
  j["base"] = base_ref;
  return j.dump(2) + "\n";
}

}  // namespace retain
