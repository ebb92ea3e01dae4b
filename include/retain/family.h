// Model families: one interface for everything retain does with a model, and one registry from
// config.json's `model_type` to the family that reads it.
//
// A family owns its model directories (what config.json means, which module and tokenizer or
// feature spec it loads), its data (chat JSONL or feature rows), its training task, its metrics,
// its Fisher, its saving, and its Hugging Face directories. The trainer, the Fisher job,
// finetune, eval, import, the gate, the round and the CLI call this interface and never ask which
// family they hold. Adding a family is a folder src/models/<family>/ implementing ModelFamily and
// FamilyModel, plus one line in src/models/family.cpp (docs/design.md, "Adding a family").
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "retain/checkpoint.h"
#include "retain/ewc.h"
#include "retain/lora.h"
#include "retain/replay_row.h"
#include "retain/trainer.h"

namespace retain {

// The examples of one data file, in the form the family reads them (conversations, feature rows).
class Examples {
 public:
  virtual ~Examples() = default;
  virtual int64_t size() const = 0;
  // The examples as replay-buffer rows (topic, size, one JSON line each), in order.
  virtual std::vector<ReplayRow> replay_rows() const = 0;
};

// One test set's metrics by name: "loss", "perplexity", "token_accuracy", "exact_match" (chat
// families; exact_match only when replies were generated) or "accuracy", "loss", "perplexity"
// (classifiers); beside them the counts "examples" and, for chat families, "trained_tokens".
using Metrics = std::map<std::string, double>;

struct EvalSettings {
  int64_t batch_size = 16;
  int64_t max_new_tokens = 128;  // per generated reply
  bool generate = true;          // generate replies to measure exact_match (the slow part)
  std::string label = "eval";    // what its progress lines are called ("eval <test set>")
};

// A model directory loaded on the CPU: its module and everything that depends on its family.
class FamilyModel {
 public:
  virtual ~FamilyModel() = default;
  virtual torch::nn::Module& module() = 0;
  // False for a preset (config.json without weights), freshly initialised from the seed.
  virtual bool has_weights() const = 0;
  // "gpt, 123456 parameters, weights" (or "fresh init").
  virtual std::string describe() const = 0;
  // The training task on `train` and `valid` (which may be empty); sequences cut at max_seq_len
  // tokens (0: the model's context). The sets and this model must outlive the task.
  virtual std::unique_ptr<TrainTask> task(const Examples& train, const Examples& valid, int64_t max_seq_len) = 0;
  // Every metric of the family on `set`, in eval mode under NoGradGuard on the module's device.
  virtual Metrics evaluate(const Examples& set, const EvalSettings& settings) = 0;
  // The diagonal Fisher of the parameters on `set` (fp32, per parameter name).
  virtual TensorMap fisher(const Examples& set, const FisherOptions& options) = 0;
  // Writes the model directory `dir` atomically (see write_model_dir); refuses an existing one
  // unless `overwrite`.
  virtual void save(const std::string& dir, bool overwrite, const nlohmann::json& card) = 0;
};

class ModelFamily {
 public:
  virtual ~ModelFamily() = default;
  // "gpt", "llama", "mlp".
  virtual std::string name() const = 0;
  // The config.json `model_type` values this family reads.
  virtual std::vector<std::string> model_types() const = 0;
  // The metrics a test set of this family may be judged on.
  virtual std::vector<std::string> metrics() const = 0;
  // Reads a data file for the model directory `model_dir` (whose config.json only is read):
  // chat JSONL, or feature JSONL / IDX images with `labels`. Throws DataError naming file:line;
  // an empty file gives an empty set.
  virtual std::unique_ptr<Examples> read_examples(const std::string& model_dir, const std::string& path,
                                                  const std::string& labels = "") const = 0;
  // An empty set of this family's examples.
  virtual std::unique_ptr<Examples> no_examples() const = 0;
  // `first` then `second` as one set (both read by this family).
  virtual std::unique_ptr<Examples> join(const Examples& first, const Examples& second) const = 0;
  // Loads `dir` on the CPU (a preset is initialised from `init_seed`). CheckpointError / ConfigError
  // naming the file and key.
  virtual std::unique_ptr<FamilyModel> load(const std::string& dir, uint64_t init_seed) const = 0;

  // Hugging Face directories, for families that have one (the default refuses).
  struct HfImport {
    std::string source_dtype;            // "F32", "BF16", …
    int64_t added_embedding_rows = 0;    // rows appended to the embedding (chat tokens)
    std::vector<std::string> notes;      // one line each, for the user
  };
  // Converts the Hugging Face directory `hf_dir` into a retain model directory at `out_dir`
  // (atomically; nothing is written on a refusal). CheckpointError naming the file and the key.
  virtual HfImport import_hf(const std::string& hf_dir, const std::string& out_dir) const;
  // Writes the model directory `model_dir` as a Hugging Face directory at `out_dir`, atomically.
  virtual void export_hf(const std::string& model_dir, const std::string& out_dir, bool overwrite) const;

  // LoRA (lora.h): where adapters go by default and how module names map to Hugging Face's, for
  // families whose linear projections run through captured_linear; nullopt (the default): none.
  virtual std::optional<LoraLayout> lora_layout() const { return std::nullopt; }
};

// Every registered family, in registration order.
const std::vector<const ModelFamily*>& model_families();
// The family whose model_types() contains `model_type`; CheckpointError naming `where` and the
// supported types otherwise.
const ModelFamily& family_for_type(const std::string& model_type, const std::string& where);
// The family of a model directory, from its config.json's model_type (a config.json without one
// is a `gpt` preset; a LoRA adapter directory is of its base's family). CheckpointError when
// config.json is missing, unreadable or of no family.
const ModelFamily& family_of(const std::string& model_dir);
// The model of `dir` for evaluation, generation and export: family_of(dir).load(dir, init_seed),
// or for a LoRA adapter directory its base with the adapter merged in (lora_model.h).
std::unique_ptr<FamilyModel> load_family_model(const std::string& dir, uint64_t init_seed);

}  // namespace retain
