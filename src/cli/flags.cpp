// Helpers shared by the subcommands' flag handling (see flags.h).
#include "flags.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>

#include <spdlog/sinks/basic_file_sink.h>

#include "retain/config.h"
#include "retain/errors.h"
#include "retain/registry.h"
#include "retain/workspace.h"
#include "retain/log.h"
#include "retain/progress.h"

namespace retain::cli {

std::string dashed(std::string key) {
  for (auto& c : key)
    if (c == '_') c = '-';
  return key;
}

// A flag value typed on the command line, converted to the JSON type of the key's default.
nlohmann::json flag_value(const std::string& key, const std::string& text, const nlohmann::json& def) {
  const std::string flag = "--" + dashed(key);
  try {
    size_t used = 0;
    if (def.is_boolean()) {
      if (text == "true" || text == "1") return true;
      if (text == "false" || text == "0") return false;
      throw std::invalid_argument("bool");
    }
    if (def.is_number_integer() || def.is_number_unsigned()) {
      const long long v = std::stoll(text, &used);
      if (used != text.size()) throw std::invalid_argument("int");
      return v;
    }
    if (def.is_number()) {
      const double v = std::stod(text, &used);
      if (used != text.size()) throw std::invalid_argument("float");
      return v;
    }
    return text;
  } catch (const std::logic_error&) {
    const char* expected = def.is_boolean() ? "true or false"
                           : def.is_number_integer() || def.is_number_unsigned() ? "an integer" : "a number";
    throw ConfigError(flag + ": expected " + std::string(expected) + ", got \"" + text + "\"");
  }
}

namespace {

// One bar on stderr, redrawn in place: "eval old-faq [########......]  42% 210/500 examples eta 0m07s".
void draw_bar(const ProgressState& s) {
  const int width = 30;
  const int filled = s.total > 0 ? int(width * s.done / s.total) : width;
  std::fprintf(stderr, "\r\033[K%s [%s%s] %3d%% %ld/%ld %s eta %s", s.label.c_str(),
               std::string(filled, '#').c_str(), std::string(width - filled, '.').c_str(),
               s.total > 0 ? int(100 * s.done / s.total) : 100, long(s.done), long(s.total), s.unit.c_str(),
               s.done > 0 ? format_duration(s.eta_s).c_str() : "?");
  if (s.done >= s.total) std::fputc('\n', stderr);
  std::fflush(stderr);
}

}  // namespace

void log_to_run_folder(const std::string& path) {
  auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path);
  sink->set_pattern("%Y-%m-%dT%H:%M:%S %L %v");
  log()->sinks().push_back(sink);
}

bool progress_bar_on_tty() {
  if (!isatty(STDERR_FILENO)) return false;
  for (auto& sink : log()->sinks()) sink->set_pattern("\r\033[K%^%L%$ %H:%M:%S %v");
  set_progress_bar(draw_bar);
  return true;
}

std::vector<std::string> worker_argv() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::vector<std::string> args;
  std::string arg;
  while (std::getline(in, arg, '\0')) args.push_back(arg);
  std::vector<std::string> out = {std::filesystem::read_symlink("/proc/self/exe").string()};
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--nproc") {
      ++i;  // and its value
      continue;
    }
    if (args[i].rfind("--nproc=", 0) == 0) continue;
    out.push_back(args[i]);
  }
  return out;
}

namespace {

const std::vector<std::pair<std::string, std::string>> kLoraFlags = {
    {"rank", "LoRA: train a rank-R adapter on the frozen model (no flag and no lora section: full fine-tuning)"},
    {"alpha", "LoRA: the adapter's update is scaled by alpha / rank (default 16)"},
    {"dropout", "LoRA: dropout on the adapter's input while training (default 0)"},
    {"targets", "LoRA: comma-separated module names to adapt (default: every attention and MLP projection)"}};

}  // namespace

void LoraFlags::add_to(CLI::App& app) {
  const std::map<std::string, std::string> types = {{"rank", "INT"}, {"alpha", "FLOAT"}, {"dropout", "FLOAT"},
                                                    {"targets", "LIST"}};
  for (const auto& [key, help] : kLoraFlags)
    app.add_option("--lora-" + key, values["lora." + key], help)->type_name(types.at(key));
}

bool LoraFlags::any() const { return !first_given().empty(); }

std::string LoraFlags::first_given() const {
  for (const auto& [key, value] : values)
    if (!value.empty()) return "--lora-" + key.substr(5);
  return "";
}

void LoraFlags::apply(nlohmann::json& j) const {
  for (const auto& [key, value] : values) {
    if (value.empty()) continue;
    const std::string name = key.substr(5);
    if (!j.contains("lora") || !j["lora"].is_object()) j["lora"] = nlohmann::json::object();
    if (name == "targets") {
      nlohmann::json list = nlohmann::json::array();
      size_t start = 0;
      while (start <= value.size()) {
        const size_t comma = std::min(value.find(',', start), value.size());
        list.push_back(value.substr(start, comma - start));
        start = comma + 1;
      }
      j["lora"]["target_modules"] = list;
    } else {
      j["lora"][name] = flag_value("lora-" + name, value, name == "rank" ? nlohmann::json(1) : nlohmann::json(0.0));
    }
  }
}

CLI::Validator bounded(double lo, double hi) {
  char range[64];
  std::snprintf(range, sizeof range, "[%.15g, %.15g]", lo, hi);
  const std::string text = range;
  return CLI::Validator(
      [lo, hi, text](std::string& value) -> std::string {
        double x = 0;
        size_t used = 0;
        try {
          x = std::stod(value, &used);
        } catch (const std::logic_error&) {
          used = 0;
        }
        if (used != value.size() || !std::isfinite(x) || x < lo || x > hi)
          return "expected a finite number in " + text + ", got " + value;
        return "";
      },
      text);
}

std::string resolve_model(const std::string& model, const std::string& workspace_flag, bool directories) {
  if (model.empty() || (directories && std::filesystem::is_directory(model))) return model;
  const std::string dir = Workspace::resolve(workspace_flag);
  if (!std::filesystem::exists(std::filesystem::path(dir) / kWorkspaceDbFile))
    throw ConfigError("--model " + model + ": not a model directory, and there is no workspace at " + dir +
                      " to look it up as a version (pass --workspace DIR)");
  Workspace ws = Workspace::open(dir, Workspace::reading());
  Registry registry(ws.db());
  std::optional<VersionRecord> version;
  if (model == "production") {
    version = registry.production();
    if (!version) throw RegistryError("--model production: the workspace " + dir + " has no production version");
  } else {
    version = registry.find(model);
    if (!version)
      throw ConfigError("--model " + model + ": not a model directory, nor a version in the workspace " + dir +
                        " (retain registry list shows them)");
  }
  return (std::filesystem::path(ws.dir()) / version->model_dir).string();
}

namespace {

// Help that reads "--lr FLOAT  peak learning rate [default: 0.0003]". A flag stored as text (the
// training keys, kept as typed until the config is merged) but whose default was written from the
// config's JSON shows that JSON value's kind, so the kinds come from TrainConfig itself.
class TypedHelp : public CLI::Formatter {
 public:
  std::string make_option_opts(const CLI::Option* opt) const override {
    if (!opt->get_option_text().empty()) return " " + opt->get_option_text();
    if (opt->get_type_size() == 0) return "";
    std::string out = " " + type_of(opt);
    if (opt->get_expected_max() == CLI::detail::expected_max_vector_size) out += " ...";
    if (opt->get_required()) out += " REQUIRED";
    return out;
  }
  std::string make_option_desc(const CLI::Option* opt) const override {
    const std::string& def = opt->get_default_str();
    if (opt->get_type_size() == 0 || def.empty()) return opt->get_description();
    return opt->get_description() + " [default: " + def + "]";
  }

 private:
  static std::string type_of(const CLI::Option* opt) {
    const std::string name = opt->get_type_name();
    if (name != "TEXT" || opt->get_default_str().empty()) return name;
    const auto def = nlohmann::json::parse(opt->get_default_str(), nullptr, /*allow_exceptions=*/false);
    if (def.is_boolean()) return "BOOL";
    if (def.is_number_integer() || def.is_number_unsigned()) return "INT";
    if (def.is_number_float()) return "FLOAT";
    return name;
  }
};

}  // namespace

void use_typed_help(CLI::App& app) { app.formatter(std::make_shared<TypedHelp>()); }

std::string usage_hint(CLI::App& app, int argc, char** argv) {
  CLI::App* command = &app;
  std::string path = "retain";
  for (int i = 1; i < argc; ++i) {
    const std::string word = argv[i];
    if (word.rfind("-", 0) == 0) {
      if (word.rfind("--", 0) != 0) continue;
      const std::string flag = word.substr(0, word.find('='));
      bool known = false;
      std::vector<std::string> names;
      for (const CLI::Option* o : command->get_options()) {
        for (const auto& n : o->get_lnames()) {
          names.push_back("--" + n);
          known = known || "--" + n == flag;
        }
      }
      if (known) continue;
      std::string near = nearest_key(flag, names);
      for (const auto& n : names)  // a prefix of a flag ("--replay" for "--replay-ratio") is as close
        if (near.empty() && n.rfind(flag, 0) == 0) near = n;
      return path + ": unknown flag " + flag + (near.empty() ? "" : "; did you mean " + near + "?") +
             " (" + path + " --help lists them)";
    }
    std::vector<std::string> names;
    CLI::App* next = nullptr;
    for (CLI::App* sub : command->get_subcommands({})) {
      names.push_back(sub->get_name());
      if (sub->get_name() == word) next = sub;
    }
    if (next != nullptr) {
      command = next;
      path += " " + word;
      continue;
    }
    if (names.empty()) continue;  // a positional argument of a leaf command
    const std::string near = nearest_key(word, names);
    if (!near.empty()) return path + ": unknown command \"" + word + "\"; did you mean \"" + near + "\"?";
  }
  return "";
}

}  // namespace retain::cli
