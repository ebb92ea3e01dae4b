// Flag definitions and library calls of each `retain` subcommand.
#include "commands.h"
#include "flags.h"

#include <unistd.h>

#include <filesystem>
#include <iostream>

#include "retain/config.h"
#include "retain/conversation.h"
#include "retain/data.h"
#include "retain/data_report.h"
#include "retain/distributed.h"
#include "retain/errors.h"
#include "retain/eval.h"
#include "retain/ewc.h"
#include "retain/chat_family.h"
#include "retain/family.h"
#include "retain/fisher_job.h"
#include "retain/finetune.h"
#include "retain/log.h"
#include "retain/mlp.h"
#include "retain/model.h"

namespace retain::cli {

Commands::Commands(CLI::App& app) {
  use_typed_help(app);  // first: every subcommand, also those added after these, inherits it
  add_finetune(app);
  add_eval(app);
  add_generate(app);
  add_data(app);
  add_fisher(app);
}

void Commands::add_finetune(CLI::App& app) {
  finetune_ = app.add_subcommand("finetune", "fine-tune a model directory (gpt on chat data, mlp on feature data)");
  auto* f = finetune_;
  f->add_option("--config", config_path_, "job config (JSON); flags override its keys");
  f->add_option("--resume", resume_, "continue the run in RUN_DIR from its newest complete checkpoint");
  f->add_flag("--overwrite", overwrite_, "replace an existing --out directory");
  f->add_option("--nproc", nproc_, "data-parallel: start N local workers (c10d Gloo on CPU, NCCL on CUDA); "
                "--batch-size is per worker")->capture_default_str();
  const std::vector<std::pair<std::string, std::string>> paths = {
      {"model", "preset folder (fresh init) or model directory with weights"},
      {"train", "training data: chat JSONL (gpt); feature JSONL or IDX images (mlp)"},
      {"valid", "validation data, evaluated every --eval-every steps"},
      {"train_labels", "mlp with IDX images: the IDX labels of --train"},
      {"valid_labels", "mlp with IDX images: the IDX labels of --valid"},
      {"out", "model directory to write"},
      {"run_dir", "run folder (job.json, metrics.jsonl, train.log, checkpoints/); default runs/<time>-<out name> "
                  "in the folder that holds --out"},
      {"ewc_state", "ewc.safetensors for the EWC penalty (default: <model>/ewc.safetensors when --ewc-lambda > 0)"}};
  for (const auto& [key, help] : paths)
    f->add_option("--" + dashed(key), job_flags_[key], help)->type_name("PATH");
  // Defaults and types come from the job itself (FinetuneJob / TrainConfig), never from here.
  const nlohmann::json defaults = FinetuneJob{}.to_json();
  std::vector<std::string> keys = TrainConfig::keys();
  keys.push_back("ewc_lambda");
  for (const auto& key : keys)
    f->add_option("--" + dashed(key), job_flags_[key], key == "ewc_lambda" ? "EWC strength λ in λ/2 Σ F (θ − θ*)²"
                                                                         : "training: " + key)
        ->default_str(defaults.at(key).is_string() ? defaults.at(key).get<std::string>() : defaults.at(key).dump());
  lora_flags_.add_to(*f);
}

void Commands::add_eval(CLI::App& app) {
  eval_ = app.add_subcommand("eval", "evaluate a model on a test set (chat; features for an mlp)");
  eval_->add_option("--model", model_, "model directory (or preset, freshly initialised with --seed), version id, "
                    "or production")->required();
  eval_->add_option("--workspace", workspace_, kWorkspaceHelp);
  eval_->add_option("--test", test_, "test data: chat JSONL; feature JSONL or IDX images for an mlp")->required();
  eval_->add_option("--test-labels", labels_, "mlp with IDX images: the IDX labels of --test");
  eval_->add_flag("--json", json_, "print the metrics as JSON");
  eval_->add_option("--batch-size", batch_size_, "examples per batch")->check(CLI::PositiveNumber)->capture_default_str();
  eval_->add_option("--max-new-tokens", max_new_tokens_, "longest generated reply")
      ->check(bounded(1, 1 << 20))->capture_default_str();
  eval_->add_flag("--no-exact-match", no_exact_match_, "skip generation (loss, perplexity, token accuracy only)");
  eval_->add_option("--device", device_, "cpu | cuda | cuda:N")->capture_default_str();
  eval_->add_option("--seed", seed_, "initialisation seed for a preset without weights")->capture_default_str();
}

void Commands::add_generate(CLI::App& app) {
  generate_ = app.add_subcommand("generate", "generate a reply (greedy, or sampled with temperature/top-k)");
  generate_->add_option("--model", model_, "model directory, version id, or production")->required();
  generate_->add_option("--workspace", workspace_, kWorkspaceHelp);
  generate_->add_option("--prompt", prompt_, "the user's message (required without --chat)");
  generate_->add_option("--system", system_, "a system message, rendered with the model's chat template");
  generate_->add_flag("--chat", chat_, "a conversation: read user turns from stdin, one a line, and print each "
                      "reply (the conversation so far is the prompt of each turn; --prompt is the first turn)");
  generate_->add_flag("--raw", raw_, "continue the prompt as plain text instead of answering it as a chat")
      ->excludes("--system")
      ->excludes("--chat");
  generate_->add_option("--max-new-tokens", max_new_tokens_, "tokens to generate at most")
      ->check(bounded(1, 1 << 20))->capture_default_str();
  generate_->add_option("--temperature", temperature_, "0 = greedy")->check(bounded(0, 100))->capture_default_str();
  generate_->add_option("--top-k", top_k_, "sample among the k likeliest tokens; 0 = all")
      ->check(bounded(0, 1 << 24))->capture_default_str();
  generate_->add_option("--seed", seed_, "sampling seed")->capture_default_str();
  generate_->add_option("--device", device_, "cpu | cuda | cuda:N")->capture_default_str();
}

void Commands::add_data(CLI::App& app) {
  auto* data = app.add_subcommand("data", "inspect training data");
  data->require_subcommand(1);
  data_validate_ = data->add_subcommand("validate", "check chat JSONL files and report statistics");
  data_validate_->add_option("files", files_, "chat JSONL files")->required();
  data_validate_->add_option("--model", model_, "model directory (or version id, or production) whose tokenizer and "
                             "context to use (default: byte tokenizer)");
  data_validate_->add_option("--workspace", workspace_, kWorkspaceHelp);
  data_validate_->add_option("--context", context_, "context length for the too-long count; 0 = the model's or 256")->capture_default_str();
  data_validate_->add_flag("--json", json_, "print the report as JSON");
}

void Commands::add_fisher(CLI::App& app) {
  fisher_ = app.add_subcommand("fisher", "estimate the diagonal Fisher of a model directory and write its ewc.safetensors");
  auto* f = fisher_;
  f->add_option("--model", model_, "model directory with weights (θ* is its weights), version id, or production; "
                "a version's Fisher goes into its folder, where its next round reads it")
      ->required();
  f->add_option("--workspace", workspace_, kWorkspaceHelp);
  f->add_option("--data", test_, "data the Fisher is estimated on: chat JSONL; feature JSONL or IDX images (mlp)")
      ->required();
  f->add_option("--labels", labels_, "mlp with IDX images: the IDX labels of --data");
  f->add_option("--estimator", estimator_, "empirical | true | batch")->capture_default_str();
  f->add_option("--samples", fisher_samples_, "examples used (picked with --seed); 0 or more than the data = all")
      ->check(bounded(0, 1e12))->capture_default_str();
  f->add_option("--samples-per-example", samples_per_example_, "sampled targets per example (true Fisher)")->capture_default_str();
  f->add_option("--batch-size", fisher_batch_, "examples per backward pass")->check(CLI::PositiveNumber)->capture_default_str();
  f->add_option("--seed", seed_, "picks the examples and the sampled targets")->capture_default_str();
  f->add_option("--consolidate-with", consolidate_with_, "model directory or ewc.safetensors to consolidate with (online EWC)");
  f->add_option("--gamma", gamma_, "online EWC decay: F = γ·F_prev + F_new")->check(bounded(0, 1))->capture_default_str();
  f->add_option("--out", ewc_out_, "file to write (default <model>/ewc.safetensors)");
  f->add_flag("--bf16", bf16_, "store F and θ* in bf16 (half the size)");
  f->add_option("--path", fisher_path_, "per-example gradients: loop (one backward each), batched (one per batch), "
                 "auto (batched on CUDA, loop on CPU)")
      ->check(CLI::IsMember({"auto", "batched", "loop"}))
      ->capture_default_str();
  f->add_option("--device", device_, "cpu | cuda | cuda:N")->capture_default_str();
  f->add_option("--nproc", nproc_, "data-parallel: N local workers each estimate on their share of the "
                "examples, the sums are all-reduced (c10d); rank 0 writes")
      ->capture_default_str();
}

int Commands::run() {
  // --model takes a directory, a version id, or `production` (of --workspace).
  if (!finetune_->parsed()) model_ = resolve_model(model_, workspace_);
  if (eval_->parsed() || fisher_->parsed()) progress_bar_on_tty();
  if (finetune_->parsed()) return finetune();
  if (eval_->parsed()) return eval();
  if (generate_->parsed()) return generate();
  if (data_validate_->parsed()) return data_validate();
  if (fisher_->parsed()) return fisher();
  return kExitUsage;
}

int Commands::finetune() {
  if (nproc_ > 1 && !DistEnv::from_env().distributed()) return launch_local_workers(nproc_, worker_argv());
  if (DistEnv::from_env().rank != 0) log()->set_level(spdlog::level::warn);  // rank 0 reports
  FinetuneHooks hooks;
  hooks.on_run_started = [](const std::string& run_dir) { log_to_run_folder(run_dir + "/train.log"); };
  progress_bar_on_tty();
  FinetuneResult result;
  if (!resume_.empty()) {
    for (const auto& [key, value] : job_flags_)
      if (!value.empty()) throw ConfigError("--resume takes its settings from the run's job.json; drop --" + dashed(key));
    if (lora_flags_.any())
      throw ConfigError("--resume takes its settings from the run's job.json; drop " + lora_flags_.first_given());
    result = resume_finetune(resume_, hooks);
  } else {
    nlohmann::json j = config_path_.empty() ? nlohmann::json::object() : load_json_file(config_path_);
    if (!j.is_object()) throw ConfigError(config_path_ + ": a job config must be a JSON object");
    if (!config_path_.empty()) resolve_config_paths(j, config_path_, FinetuneJob::path_keys());
    const nlohmann::json defaults = FinetuneJob{}.to_json();
    for (const auto& [key, value] : job_flags_) {
      if (value.empty()) continue;
      j[key] = defaults.contains(key) && !defaults.at(key).is_string() ? flag_value(key, value, defaults.at(key))
                                                                     : nlohmann::json(value);
    }
    if (overwrite_) j["overwrite"] = true;
    lora_flags_.apply(j);
    if (!j.contains("threads") || j["threads"] == 0) {  // the CPUs free now, recorded in job.json
      j["threads"] = default_threads();
      log()->info("{} CPU thread(s) (the CPUs free now; --threads N to choose)", j["threads"].get<int>());
    }
    result = run_finetune(FinetuneJob::from_json(j, config_path_.empty() ? "flags" : config_path_), hooks);
  }
  std::cout << "wrote " << result.out << " (" << result.summary.steps << " steps, run " << result.run_dir << ")";
  if (result.valid) std::cout << " | valid loss " << result.valid->loss << " ppl " << result.valid->perplexity;
  std::cout << "\n";
  return kExitOk;
}

int Commands::eval() {
  const ModelFamily& family = family_of(model_);
  const auto examples = family.read_examples(model_, test_, labels_);
  if (examples->size() == 0) throw DataError(test_ + ": no examples to evaluate on");
  auto model = load_family_model(model_, seed_);  // a LoRA adapter: merged into its base
  model->module().to(parse_device(device_));
  EvalSettings settings;
  settings.batch_size = batch_size_;
  settings.generate = !no_exact_match_;
  settings.max_new_tokens = max_new_tokens_;
  settings.label = "eval " + std::filesystem::path(test_).filename().string();
  const Metrics m = model->evaluate(*examples, settings);
  if (json_) {
    nlohmann::json j = {{"model", model_}, {"test", test_}};
    for (const auto& [name, value] : m) {
      if (name == "examples" || name == "trained_tokens") j[name] = int64_t(value);
      else j[name] = value;
    }
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  std::printf("model %s (%s) | test %s | %ld examples", model_.c_str(), family.name().c_str(), test_.c_str(),
              long(m.at("examples")));
  if (m.count("trained_tokens")) std::printf(", %ld trained tokens", long(m.at("trained_tokens")));
  std::printf("\n");
  const char* sep = "";
  for (const auto& name : family.metrics()) {
    if (!m.count(name)) continue;
    std::printf("%s%s %.4f", sep, name.c_str(), m.at(name));
    sep = " | ";
  }
  std::printf("\n");
  return kExitOk;
}

int Commands::generate() {
  if (prompt_.empty() && !chat_) throw ConfigError("--prompt: required (or --chat to read turns from stdin)");
  const auto model = load_family_model(model_, seed_);
  ChatModel& chat_model = as_chat_model(*model, model_);
  const Tokenizer& tokenizer = chat_model.tokenizer();
  if (!raw_ && !tokenizer.has_chat_template())
    throw ConfigError(std::string(!system_.empty() ? "--system" : chat_ ? "--chat" : "--prompt") + ": the model " +
                      model_ + " has no chat template (its tokenizer is " + tokenizer.type() +
                      "); use --raw to continue plain text");
  model->module().to(parse_device(device_));
  GenerateOptions options;
  options.max_new_tokens = max_new_tokens_;
  options.temperature = temperature_;
  options.top_k = top_k_;
  options.seed = seed_;
  if (raw_) {
    const auto prompt = tokenizer.encode(prompt_);
    if (prompt.empty()) throw ConfigError("--prompt: empty prompt");
    std::cout << tokenizer.decode(retain::generate(chat_model.lm(), prompt, options)) << "\n";
    return kExitOk;
  }
  Conversation conversation(tokenizer, system_);
  if (!prompt_.empty()) std::cout << conversation.reply(chat_model.lm(), prompt_, options) << std::endl;
  if (!chat_) return kExitOk;
  // One user turn a line; an empty line is skipped, end of input (Ctrl-D) ends the conversation.
  const bool tty = isatty(STDIN_FILENO);
  for (std::string line;;) {
    if (tty) std::cerr << "> " << std::flush;
    if (!std::getline(std::cin, line)) break;
    if (line.empty()) continue;
    std::cout << conversation.reply(chat_model.lm(), line, options) << std::endl;
  }
  return kExitOk;
}

int Commands::data_validate() {
  int64_t context = context_;
  const ByteTokenizer byte_tokenizer;
  const Tokenizer* tokenizer = &byte_tokenizer;
  std::unique_ptr<FamilyModel> model;
  if (!model_.empty()) {
    model = load_family_model(model_, 0);
    ChatModel& chat_model = as_chat_model(*model, model_);
    tokenizer = &chat_model.tokenizer();
    if (context == 0) context = chat_model.lm().context_length();
  }
  if (context == 0) context = 256;
  const auto report = make_data_report(files_, *tokenizer, context);
  if (json_) std::cout << to_json(report).dump(2) << "\n";
  else std::cout << format_report(report);
  return report.ok() ? kExitOk : kExitData;
}

}  // namespace retain::cli

namespace retain::cli {

int Commands::fisher() {
  if (nproc_ > 1 && !DistEnv::from_env().distributed()) return launch_local_workers(nproc_, worker_argv());
  if (DistEnv::from_env().rank != 0) log()->set_level(spdlog::level::warn);  // rank 0 reports
  FisherJob job;
  job.model_dir = model_;
  job.data = test_;
  job.labels = labels_;
  job.consolidate_with = consolidate_with_;
  job.out = ewc_out_;
  job.options.estimator = parse_estimator(estimator_);
  job.options.num_samples = fisher_samples_;
  job.options.samples_per_example = samples_per_example_;
  job.options.batch_size = fisher_batch_;
  job.options.seed = seed_;
  job.options.path = fisher_path_ == "loop"      ? FisherOptions::Path::kLoop
                     : fisher_path_ == "batched" ? FisherOptions::Path::kBatched
                                                 : FisherOptions::Path::kAuto;
  job.gamma = gamma_;
  job.bf16 = bf16_;
  job.device = device_;
  const auto result = run_fisher_job(job);
  if (DistEnv::from_env().rank != 0) return kExitOk;
  std::cout << "wrote " << result.out << " (" << result.state.estimator << ", " << result.state.num_samples
            << " examples, rounds " << result.state.rounds << ", " << result.seconds << " s)\n"
            << fisher_report(result.state.fisher);
  return kExitOk;
}

}  // namespace retain::cli
