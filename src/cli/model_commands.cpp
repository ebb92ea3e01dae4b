// Flags and library calls of `retain export` and `retain logits` (see model_commands.h).
#include "model_commands.h"

#include <cstdio>
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "flags.h"
#include "retain/errors.h"
#include "retain/chat_family.h"
#include "retain/config.h"
#include "retain/family.h"
#include "retain/fileio.h"
#include "retain/lora.h"
#include "retain/registry.h"
#include "retain/trainer.h"
#include "retain/workspace.h"

namespace retain::cli {

ModelCommands::ModelCommands(CLI::App& app) {
  export_ = app.add_subcommand("export", "write a version (or a model directory) as a Hugging Face directory");
  auto* id = export_->add_option("id", model_id_, "the version's id in the workspace's registry");
  auto* model = export_->add_option("--model", model_dir_, "a retain model directory instead of a version");
  id->excludes(model);
  auto* hf = export_->add_option("--hf", hf_dir_, "the Hugging Face directory to write (a LoRA version: merged)");
  auto* peft = export_->add_option("--peft", peft_dir_, "a LoRA version's adapter, as PEFT writes it");
  hf->excludes(peft);
  export_->add_option("--base-name", base_name_,
                      "--peft: adapter_config.json's base_model_name_or_path (default: the base version's id)");
  export_->add_flag("--overwrite", overwrite_, "replace --hf DIR when it exists");
  export_->add_option("--workspace", workspace_, kWorkspaceHelp);

  logits_ = app.add_subcommand(
      "logits", "a model's logits on token ids: one JSON array of ids a stdin line, a safetensors file out");
  logits_->add_option("--model", model_dir_, "model directory, version id, or production")->required();
  logits_->add_option("--workspace", workspace_, kWorkspaceHelp);
  logits_->add_option("--out", out_, "safetensors file: tensor logits.<line> (T, vocab) fp32 for each line")
      ->required();
  logits_->add_option("--device", device_, "cpu | cuda | cuda:N")->capture_default_str();
}

bool ModelCommands::run(int& exit_code) {
  if (export_->parsed()) exit_code = export_model();
  else if (logits_->parsed()) exit_code = logits();
  else return false;
  return true;
}

int ModelCommands::export_model() {
  if (model_id_.empty() == model_dir_.empty()) throw ConfigError("export: give a version id, or --model DIR");
  const std::string dir =
      model_id_.empty() ? resolve_model(model_dir_, workspace_) : resolve_model(model_id_, workspace_, false);
  if (hf_dir_.empty() == peft_dir_.empty()) throw ConfigError("export: give --hf DIR or --peft DIR");
  const std::string name = model_id_.empty() ? dir : model_id_;
  if (!peft_dir_.empty()) {
    if (!is_adapter_dir(dir))
      throw ConfigError("export --peft: " + name + " is a full model, not a LoRA version; use --hf");
    std::string base_name = base_name_;
    if (base_name.empty()) {
      const nlohmann::json base = read_json_file(dir + "/" + kAdapterBaseFile);
      base_name = base.value("base_model_id", std::filesystem::path(adapter_base_dir(dir)).filename().string());
    }
    export_peft(dir, peft_dir_, base_name, overwrite_);
    std::printf("exported %s to %s (PEFT LoRA adapter over %s: adapter_config.json, adapter_model.safetensors)\n",
                name.c_str(), peft_dir_.c_str(), base_name.c_str());
    return kExitOk;
  }
  const ModelFamily& family = family_of(dir);
  if (is_adapter_dir(dir)) {
    // The adapter merged into its base, written as a full model directory, then converted.
    const std::string merged = make_temp_dir_beside(hf_dir_);
    try {
      const std::string model_dir = merged + "/model";
      load_family_model(dir, 0)->save(model_dir, false, nlohmann::json());
      family.export_hf(model_dir, hf_dir_, overwrite_);
    } catch (...) {
      std::filesystem::remove_all(merged);
      throw;
    }
    std::filesystem::remove_all(merged);
  } else {
    family.export_hf(dir, hf_dir_, overwrite_);
  }
  std::printf("exported %s to %s (Hugging Face %s%s: config.json, model.safetensors, tokenizer files)\n",
              name.c_str(), hf_dir_.c_str(), family.name().c_str(), is_adapter_dir(dir) ? ", LoRA merged" : "");
  return kExitOk;
}

int ModelCommands::logits() {
  model_dir_ = resolve_model(model_dir_, workspace_);
  const auto model = load_family_model(model_dir_, 0);
  if (!model->has_weights()) throw CheckpointError(model_dir_ + ": no " + std::string(kWeightsFile));
  CausalLm& lm = as_chat_model(*model, model_dir_).lm();
  const torch::Device device = parse_device(device_);
  model->module().to(device);
  model->module().eval();
  torch::NoGradGuard no_grad;
  TensorMap out;
  std::string line;
  for (int64_t line_no = 1;; ++line_no) {
    const LineRead read = read_line_bounded(std::cin, line);
    if (read == LineRead::kEnd) break;
    const std::string where = "stdin:" + std::to_string(line_no);
    if (read == LineRead::kTooLong) throw DataError(where + ": " + kLineTooLongRule + ": " + line_too_long_message());
    std::vector<int64_t> ids;
    try {
      ids = parse_json<DataError>(line, where).get<std::vector<int64_t>>();
    } catch (const nlohmann::json::exception& e) {
      throw DataError("stdin:" + std::to_string(line_no) + ": expected a JSON array of token ids: " + e.what());
    }
    if (ids.empty() || int64_t(ids.size()) > lm.context_length())
      throw DataError("stdin:" + std::to_string(line_no) + ": expected 1 to the context length (" +
                      std::to_string(lm.context_length()) + ") ids, got " + std::to_string(ids.size()));
    for (const int64_t id : ids) {
      if (id < 0 || id >= lm.vocab_size())
        throw DataError("stdin:" + std::to_string(line_no) + ": id " + std::to_string(id) +
                        " is outside the vocabulary [0, " + std::to_string(lm.vocab_size()) + ")");
    }
    const torch::Tensor idx = torch::tensor(ids, torch::kLong).unsqueeze(0).to(device);  // (1, T)
    out["logits." + std::to_string(line_no - 1)] = lm.logits(idx)[0].to(torch::kCPU, torch::kFloat);
  }
  save_safetensors(out_, out);
  std::printf("wrote logits of %zu sequences to %s\n", out.size(), out_.c_str());
  return kExitOk;
}

}  // namespace retain::cli
