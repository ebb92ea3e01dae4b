// LoRA against full fine-tuning on one model shape, in one run: ms per training step, tokens/s,
// peak memory, trainable parameters, optimizer state, and the size of the version folder each
// writes. Default shape: SmolLM2-135M (models/smollm2-135m, randomly initialised: no weights can
// be downloaded here), rank 8 on every attention and MLP projection.
//
// Each mode runs in a child process of its own (forked before LibTorch starts any thread), so that
// its peak resident memory is its own (wait4's ru_maxrss) and neither inherits the other's
// allocator caches. The step is the trainer's: the family's forward → masked_lm_loss_sum / trained
// tokens → backward → clip_grad_norm → AdamW over the trainable parameters → zero_grad, on the same
// random batch (every position trained) in both modes; `--warmup` untimed steps first.
//
//   build/lora [--model models/smollm2-135m] [--rank 8] [--alpha 16] [--batch 4] [--seq 128]
//              [--steps 3] [--warmup 1] [--threads 2] [--device cpu|cuda] [--json]
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "retain/chat_family.h"
#include "retain/checkpoint.h"
#include "retain/fileio.h"
#include "retain/lora_model.h"
#include "retain/optimizer.h"
#include "retain/trainer.h"

namespace {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string model_dir = std::string(RETAIN_SOURCE_DIR) + "/models/smollm2-135m";
  int64_t rank = 8, batch = 4, seq = 128, steps = 3, warmup = 1, threads = 2;
  double alpha = 16;
  std::string device = "cpu";
  bool json = false;
};

[[noreturn]] void usage(const std::string& problem) {
  std::cerr << "lora: " << problem << "\n"
            << "usage: lora [--model DIR] [--rank R] [--alpha A] [--batch B] [--seq T] [--steps N] [--warmup N]\n"
            << "            [--threads N] [--device cpu|cuda] [--json]\n";
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(a + " needs a value");
      return argv[++i];
    };
    auto integer = [&](int64_t min) {
      const std::string v = value();
      try {
        size_t used = 0;
        const long long x = std::stoll(v, &used);
        if (used == v.size() && x >= min) return int64_t(x);
      } catch (const std::logic_error&) {
      }
      usage(a + ": expected an integer ≥ " + std::to_string(min) + ", got " + v);
    };
    if (a == "--model") o.model_dir = value();
    else if (a == "--rank") o.rank = integer(1);
    else if (a == "--alpha") o.alpha = std::stod(value());
    else if (a == "--batch") o.batch = integer(1);
    else if (a == "--seq") o.seq = integer(2);
    else if (a == "--steps") o.steps = integer(1);
    else if (a == "--warmup") o.warmup = integer(0);
    else if (a == "--threads") o.threads = integer(1);
    else if (a == "--device") o.device = value();
    else if (a == "--json") o.json = true;
    else usage("unknown argument " + a);
  }
  return o;
}

// One mode, in the child: its figures.
nlohmann::json run_mode(const Options& o, bool lora, const std::string& scratch) {
  torch::set_num_threads(int(o.threads));
  retain::reuse_host_memory();
  const retain::ModelFamily& family = retain::family_of(o.model_dir);
  std::unique_ptr<retain::FamilyModel> model = family.load(o.model_dir, 1234);
  retain::LoraConfig config;
  if (lora) {
    config.rank = o.rank;
    config.alpha = o.alpha;
    retain::attach_lora(model->module(), config, retain::lora_layout_of(family, "lora"), 1234, "lora");
  }
  const torch::Device device(o.device);
  model->module().to(device);
  model->module().train();
  retain::CausalLm& lm = retain::as_chat_model(*model, o.model_dir).lm();
  const int64_t T = std::min(o.seq, lm.context_length());
  torch::manual_seed(7);
  const auto ids = torch::randint(lm.vocab_size(), {o.batch, T + 1}, torch::kLong);
  const auto input = ids.narrow(1, 0, T).to(device), target = ids.narrow(1, 1, T).to(device);
  const auto mask = torch::ones({o.batch, T}, torch::kFloat).to(device);

  std::vector<std::pair<std::string, torch::Tensor>> named;
  std::vector<torch::Tensor> params;
  int64_t trainable = 0, total = 0;
  for (const auto& p : model->module().named_parameters()) {
    total += p.value().numel();
    if (!p.value().requires_grad()) continue;
    named.emplace_back(p.key(), p.value());
    params.push_back(p.value());
    trainable += p.value().numel();
  }
  retain::AdamW optimizer(named, {});
  auto step = [&] {
    auto loss = retain::masked_lm_loss_sum(lm.logits(input), target, mask) / double(o.batch * T);
    loss.backward();
    const auto norm = retain::clip_grad_norm(params, 1.0);
    const double value = loss.item<double>();  // the loss and the norm on the host, as the trainer reads them
    (void)norm.item<double>();
    optimizer.step(1e-4);
    optimizer.zero_grad();
    return value;
  };
  for (int64_t i = 0; i < o.warmup; ++i) step();
  const auto t0 = Clock::now();
  double last = 0;
  for (int64_t i = 0; i < o.steps; ++i) last = step();
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  int64_t state_bytes = 0;
  for (const auto& [name, t] : optimizer.state()) state_bytes += t.numel() * int64_t(t.element_size());

  // The version folder each mode writes: the full model, or the adapter over it.
  model->module().to(torch::kCPU);
  const std::string dir = scratch + (lora ? "/lora-version" : "/full-version");
  int64_t folder_bytes = 0;
  if (lora) {
    retain::LoraModel adapter(std::move(model), config, retain::lora_layout_of(family, "lora"));
    adapter.set_base("../base", "base");
    adapter.save(dir, true, nlohmann::json());
  } else {
    model->save(dir, true, nlohmann::json());
  }
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) folder_bytes += int64_t(e.file_size());
  fs::remove_all(dir);
  return {{"mode", lora ? "lora" : "full"},
          {"ms_per_step", 1000 * seconds / double(o.steps)},
          {"tokens_per_s", double(o.steps * o.batch * T) / seconds},
          {"trainable_parameters", trainable},
          {"parameters", total},
          {"optimizer_state_bytes", state_bytes},
          {"version_folder_bytes", folder_bytes},
          {"last_loss", last},
          {"seq", T}};
}

// Forks a child for one mode; returns its figures plus its peak resident memory.
nlohmann::json in_child(const Options& o, bool lora, const std::string& scratch) {
  const std::string out_path = scratch + (lora ? "/lora.json" : "/full.json");
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    try {
      retain::write_file_atomic(out_path, run_mode(o, lora, scratch).dump());
      std::_Exit(0);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "lora: %s mode failed: %s\n", lora ? "lora" : "full", e.what());
      std::_Exit(1);
    }
  }
  int status = 0;
  struct rusage usage {};
  if (wait4(pid, &status, 0, &usage) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error(std::string(lora ? "lora" : "full") + " mode did not finish");
  nlohmann::json j = nlohmann::json::parse(retain::read_file(out_path));
  j["peak_rss_bytes"] = int64_t(usage.ru_maxrss) * 1024;
  return j;
}

std::string mib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", bytes / (1024.0 * 1024.0));
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  const std::string scratch = retain::make_temp_dir_beside((fs::temp_directory_path() / "retain-lora-bench").string());
  nlohmann::json full, lora;
  try {
    full = in_child(o, false, scratch);
    lora = in_child(o, true, scratch);
  } catch (const std::exception& e) {
    fs::remove_all(scratch);
    std::cerr << "lora: " << e.what() << "\n";
    return 1;
  }
  fs::remove_all(scratch);
  auto ratio = [&](const char* key) { return lora.at(key).get<double>() / std::max(1e-12, full.at(key).get<double>()); };
  if (o.json) {
    std::cout << nlohmann::json({{"model", o.model_dir}, {"rank", o.rank}, {"alpha", o.alpha}, {"batch", o.batch},
                                 {"seq", full.at("seq")}, {"threads", o.threads}, {"device", o.device}, {"full", full},
                                 {"lora", lora},
                                 {"ratio", {{"ms_per_step", ratio("ms_per_step")},
                                            {"peak_rss_bytes", ratio("peak_rss_bytes")},
                                            {"version_folder_bytes", ratio("version_folder_bytes")},
                                            {"optimizer_state_bytes", ratio("optimizer_state_bytes")}}}})
                     .dump(2)
              << "\n";
    return 0;
  }
  std::printf("LoRA r=%ld alpha=%g vs full fine-tuning: %s, batch %ld × %ld tokens, %ld threads, %s, %ld timed steps\n",
              long(o.rank), o.alpha, o.model_dir.c_str(), long(o.batch), long(full.at("seq").get<int64_t>()),
              long(o.threads), o.device.c_str(), long(o.steps));
  std::printf("%-24s %16s %16s %10s\n", "", "full", "lora", "lora/full");
  auto row = [&](const char* label, const char* key, bool bytes) {
    const double f = full.at(key).get<double>(), l = lora.at(key).get<double>();
    char fb[32], lb[32];
    if (bytes) {
      std::snprintf(fb, sizeof fb, "%s", mib(f).c_str());
      std::snprintf(lb, sizeof lb, "%s", mib(l).c_str());
    } else {
      std::snprintf(fb, sizeof fb, "%.1f", f);
      std::snprintf(lb, sizeof lb, "%.1f", l);
    }
    std::printf("%-24s %16s %16s %10.3f\n", label, fb, lb, l / std::max(1e-12, f));
  };
  row("ms per step", "ms_per_step", false);
  row("tokens/s", "tokens_per_s", false);
  row("trainable parameters", "trainable_parameters", false);
  row("optimizer state", "optimizer_state_bytes", true);
  row("peak resident memory", "peak_rss_bytes", true);
  row("version folder", "version_folder_bytes", true);
  return 0;
}
