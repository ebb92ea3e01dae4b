// `retain import` (see import_version in registry.h): an existing model directory becomes a
// registered version. Everything that can be refused is checked before a byte is copied; the copy
// is published with one rename and the registration is one transaction, and a failure after the
// copy removes it, so an import either happens completely or leaves nothing behind.
#include <filesystem>
#include <optional>
#include <system_error>

#include "retain/config.h"
#include "retain/errors.h"
#include "retain/fileio.h"
#include "retain/hash.h"
#include "retain/family.h"
#include "retain/log.h"
#include "retain/lora_model.h"
#include "retain/registry.h"
#include "retain/replay.h"
#include "retain/workspace.h"

namespace retain {
namespace {

namespace fs = std::filesystem;

// A model directory that can serve as a version: config.json, trained weights, and a model that
// loads (every parameter present with its shape, tokenizer within the vocabulary).
void check_source(const std::string& dir) {
  if (!fs::is_directory(dir))
    throw CheckpointError(dir + ": not a folder; expected a model directory (config.json, model.safetensors)");
  if (!fs::is_regular_file(fs::path(dir) / kConfigFile))
    throw CheckpointError(dir + ": not a model directory (no " + kConfigFile + ")");
  if (!fs::is_regular_file(fs::path(dir) / kWeightsFile)) {
    throw CheckpointError(dir + ": no " + kWeightsFile + "; a preset without weights cannot be "
                          "registered: fine-tune it first (`retain finetune --out DIR`) and import DIR");
  }
  // Every parameter present with its shape, and finite: a NaN base would fail every later round.
  const auto model = load_family_model(dir, 0);
  for (const auto& p : model->module().named_parameters())
    if (!torch::isfinite(p.value()).all().item<bool>())
      throw CheckpointError(dir + ": parameter " + p.key() + " holds non-finite values (NaN or inf); a version "
                            "must start from finite weights");
}

// Copies every regular file of `source` (following links, as in a Hugging Face cache) into a
// temporary folder beside `final_dir`, then commits it there (fsync of every file, rename).
void copy_model_dir(const fs::path& source, const std::string& final_dir) {
  build_directory(final_dir, false, [&](const std::string& tmp) {
    for (const auto& entry : fs::recursive_directory_iterator(source)) {
      const fs::path target = fs::path(tmp) / entry.path().lexically_relative(source);
      if (fs::is_directory(entry.symlink_status())) fs::create_directories(target);
      else if (fs::is_regular_file(entry.path())) copy_file_checked(entry.path().string(), target.string());
    }
  });
}

// A PEFT adapter directory over the registered full version `base` (its folder `base_dir`):
// adapter_config.json and adapter_model.safetensors that attach to the base's modules with their
// shapes, and an ewc.safetensors, when there is one, that covers the adapter.
void check_adapter_source(const std::string& dir, const VersionRecord& base, const std::string& base_dir) {
  if (!fs::is_directory(dir)) throw CheckpointError(dir + ": not a folder; expected a PEFT adapter directory");
  if (!fs::is_regular_file(fs::path(dir) / kAdapterConfigFile))
    throw CheckpointError(dir + ": not a PEFT adapter directory (no " + kAdapterConfigFile + ")");
  if (fs::exists(fs::path(dir) / kConfigFile))
    throw CheckpointError(dir + ": holds a " + kConfigFile + " beside its adapter; import the adapter folder alone");
  if (!base.adapter_base_model_id.empty())
    throw RegistryError("--base " + base.model_id + " is itself a LoRA version; give the full version it applies to (" +
                        base.adapter_base_model_id + ")");
  const ModelFamily& family = family_of(base_dir);
  const LoraLayout layout = lora_layout_of(family, dir);
  const AdapterFiles files = read_adapter_files(dir, layout);
  auto model = family.load(base_dir, 0);
  attach_lora(model->module(), files.config, layout, 0,
              (fs::path(dir) / kAdapterConfigFile).string());
  load_adapter(model->module(), files, dir);
  if (fs::exists(fs::path(dir) / kEwcFile)) load_ewc((fs::path(dir) / kEwcFile).string(), model->module());
}

// The adapter's files, and retain_adapter.json naming the base by its folder in versions/.
void copy_adapter_dir(const fs::path& source, const std::string& final_dir, const VersionRecord& base) {
  build_directory(final_dir, false, [&](const std::string& tmp) {
    for (const char* file : {kAdapterConfigFile, kAdapterWeightsFile, kEwcFile})
      if (fs::is_regular_file(source / file)) copy_file_checked((source / file).string(), (fs::path(tmp) / file).string());
    write_file_atomic((fs::path(tmp) / kAdapterBaseFile).string(),
                      adapter_base_json((fs::path("..") / fs::path(base.model_dir).filename()).string(),
                                        {{"base_model_id", base.model_id}}));
  });
}

}  // namespace

ImportResult import_version(Workspace& workspace, const ImportOptions& options) {
  const std::string& id = options.model_id;
  check_model_id(id);
  const bool adapter = !options.adapter_base.empty();
  std::optional<VersionRecord> base;
  if (adapter) {
    if (options.from_hf) throw ConfigError("import: --peft and --from-hf exclude each other");
    base = Registry(workspace.db()).get(options.adapter_base);
    check_adapter_source(options.source_dir, *base, workspace.dir() + "/" + base->model_dir);
  } else if (!options.from_hf) {
    check_source(options.source_dir);
  } else if (!fs::is_directory(options.source_dir)) {
    throw CheckpointError(options.source_dir + ": not a folder");
  }
  const ModelFamily& family = family_of(adapter ? workspace.dir() + "/" + base->model_dir : options.source_dir);
  // Replay data as the family reads it (chat JSONL; feature JSONL checked against an mlp's input
  // and classes), all read before anything is written.
  std::vector<ReplayRow> replay_rows;
  for (const std::string& file : options.replay_files)
    for (auto& row : family.read_examples(options.source_dir, file)->replay_rows()) replay_rows.push_back(std::move(row));

  // A round cleans up version folders that no row refers to: the copy below is such a folder
  // until the transaction commits, so no round may run meanwhile.
  WorkspaceLock lock = WorkspaceLock::acquire(workspace.dir(), "retain import " + id, options.lock_wait_s);
  Registry registry(workspace.db());
  if (registry.find(id)) throw RegistryError("version " + id + " is already in the registry; choose another --name");
  const std::string model_dir = "versions/" + id;
  const std::string final_dir = workspace.dir() + "/" + model_dir;
  std::error_code ec;
  if (fs::exists(fs::symlink_status(final_dir, ec))) {
    throw RegistryError(final_dir + " already exists but " + id + " is not in the registry (left by "
                        "an interrupted import?); remove that folder, then import again");
  }
  fs::create_directories(workspace.versions_dir(), ec);
  std::optional<ModelFamily::HfImport> hf;
  if (options.from_hf) hf = family.import_hf(options.source_dir, final_dir);
  else if (adapter) copy_adapter_dir(options.source_dir, final_dir, *base);
  else copy_model_dir(options.source_dir, final_dir);

  try {
    if (hf) load_family_model(final_dir, 0);  // the converted folder loads as a retain model
    ImportResult result;
    Transaction txn(workspace.db(), Transaction::Mode::kWrite);
    VersionRecord record;
    record.model_id = id;
    record.version = registry.reserve_version();
    record.model_dir = model_dir;
    record.settings = {{"imported_from", fs::absolute(options.source_dir).lexically_normal().string()}};
    if (hf) {
      const auto source_config = load_json_file((fs::path(options.source_dir) / kConfigFile).string());
      record.settings["source_format"] = "huggingface-" + source_config.value("model_type", family.name());
      record.settings["source_dtype"] = hf->source_dtype;
      record.settings["added_embedding_rows"] = hf->added_embedding_rows;
    }
    if (adapter) {
      record.parent_model_id = base->model_id;
      record.adapter_base_model_id = base->model_id;
      record.settings["source_format"] = "peft-lora";
      record.data_hashes[kAdapterWeightsFile] = "sha256:" + sha256_file_hex(final_dir + "/" + kAdapterWeightsFile);
    } else {
      record.data_hashes[kWeightsFile] = "sha256:" + sha256_file_hex(final_dir + "/" + kWeightsFile);
    }
    for (const std::string& file : options.replay_files)
      record.data_hashes[file] = "sha256:" + sha256_file_hex(file);
    const auto production = registry.production();
    if (options.promote.value_or(!production.has_value())) {
      record.status = VersionStatus::kProduction;
      if (production) result.previous_production = production->model_id;
    }
    registry.add(record);
    if (!options.replay_files.empty()) {
      AddOptions add_options;
      add_options.source = id;
      ReplayBuffer buffer(workspace.db());
      const AddResult added = buffer.add_rows(replay_rows, add_options);
      result.replay_added = added.added;
      result.replay_duplicates = added.duplicates;
    }
    result.version = registry.get(id);
    txn.commit();
    return result;
  } catch (...) {
    // The transaction has rolled back (its destructor ran); the copy is ours alone to remove.
    fs::remove_all(final_dir, ec);
    throw;
  }
}

VersionRecord merge_lora_version(Workspace& workspace, const std::string& model_id, const std::string& new_id,
                                 double lock_wait_s) {
  check_model_id(new_id);
  WorkspaceLock lock = WorkspaceLock::acquire(workspace.dir(), "retain registry merge " + model_id, lock_wait_s);
  Registry registry(workspace.db());
  const VersionRecord source = registry.get(model_id);
  if (source.adapter_base_model_id.empty())
    throw RegistryError(model_id + " is a full version, not a LoRA version: there is no adapter to merge");
  if (registry.find(new_id)) throw RegistryError("version " + new_id + " is already in the registry; choose another --name");
  const std::string model_dir = "versions/" + new_id;
  const std::string final_dir = workspace.dir() + "/" + model_dir;
  std::error_code ec;
  if (fs::exists(fs::symlink_status(final_dir, ec)))
    throw RegistryError(final_dir + " already exists but " + new_id + " is not in the registry; remove that folder first");
  const nlohmann::json card = {{"created_by", "retain registry merge"}, {"merged_from", model_id},
                               {"adapter_base_model_id", source.adapter_base_model_id}};
  load_family_model(workspace.dir() + "/" + source.model_dir, 0)->save(final_dir, false, card);
  try {
    Transaction txn(workspace.db(), Transaction::Mode::kWrite);
    VersionRecord record;
    record.model_id = new_id;
    record.parent_model_id = model_id;
    record.version = registry.reserve_version();
    record.model_dir = model_dir;
    record.settings = {{"merged_from", model_id}, {"adapter_base_model_id", source.adapter_base_model_id}};
    record.data_hashes[kWeightsFile] = "sha256:" + sha256_file_hex(final_dir + "/" + kWeightsFile);
    registry.add(record);
    const VersionRecord added = registry.get(new_id);
    txn.commit();
    return added;
  } catch (...) {
    fs::remove_all(final_dir, ec);
    throw;
  }
}

}  // namespace retain
