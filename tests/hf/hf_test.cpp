// Tests of Hugging Face GPT-2 import and export (hf.h): directories written here in Hugging Face's
// layout (Conv1D weights [in, out], "transformer." prefix or none, attention buffers, a tied
// lm_head, fp16), conversion, the chat-token rows, round trips, every refusal, and the CLI.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "bpe_test_util.h"
#include "cli_util.h"
#include "retain/errors.h"
#include "retain/gpt_hf.h"
#include "retain/registry.h"
#include "retain/workspace.h"
#include "test_util.h"

namespace retain {
namespace {

namespace fs = std::filesystem;
using bpe_test::MiniBpe;
using cli_test::read_text;
using cli_test::run_cli;
using cli_test::write_text;
using testing_util::TempDir;

struct HfLayout {
  bool prefix = true;            // GPT2LMHeadModel's "transformer." names
  bool buffers = true;           // attn.bias / attn.masked_bias, as older transformers saved them
  bool lm_head = false;          // a tied lm_head.weight stored too
  torch::ScalarType dtype = torch::kFloat;
};

MiniBpe mini_bpe() {
  MiniBpe bpe;
  bpe.merge("a", "b");
  bpe.merge("Ġ", "ab");
  bpe.merge("h", "e");
  return bpe;
}

// GPT-2 config.json as transformers writes it, for a tiny model over `vocab` ids.
nlohmann::json hf_config(int64_t vocab) {
  return {{"model_type", "gpt2"},   {"architectures", {"GPT2LMHeadModel"}},
          {"vocab_size", vocab},    {"n_positions", 32},
          {"n_ctx", 32},            {"n_embd", 16},
          {"n_layer", 2},           {"n_head", 2},
          {"n_inner", nullptr},     {"activation_function", "gelu_new"},
          {"resid_pdrop", 0.0},     {"embd_pdrop", 0.0},
          {"attn_pdrop", 0.0},      {"layer_norm_epsilon", 1e-5},
          {"initializer_range", 0.02}, {"scale_attn_weights", true},
          {"bos_token_id", vocab - 1}, {"eos_token_id", vocab - 1},
          {"summary_type", "cls_index"}, {"transformers_version", "4.44.0"}};
}

bool is_conv1d(const std::string& name) {
  for (const std::string layer : {"attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight"})
    if (name.size() > layer.size() && name.compare(name.size() - layer.size(), layer.size(), layer) == 0) return true;
  return false;
}

// The tensors of `model` as Hugging Face stores them, written here from the layout's definition.
TensorMap hf_tensors(Gpt& model, const HfLayout& layout) {
  TensorMap out;
  const std::string prefix = layout.prefix ? "transformer." : "";
  for (const auto& p : model->named_parameters()) {
    torch::Tensor t = p.value().detach().clone();
    if (is_conv1d(p.key())) t = t.t().contiguous();  // Conv1D: [in, out]
    out[prefix + p.key()] = t.to(layout.dtype);
  }
  const int64_t n = model->config().n_positions;
  for (int64_t l = 0; l < model->config().n_layer; ++l) {
    if (!layout.buffers) break;
    const std::string block = prefix + "h." + std::to_string(l) + ".attn.";
    out[block + "bias"] = torch::ones({n, n}, torch::kUInt8).tril().view({1, 1, n, n});
    out[block + "masked_bias"] = torch::tensor(-1e4f);
  }
  if (layout.lm_head) out["lm_head.weight"] = model->wte->weight.detach().clone().to(layout.dtype);
  return out;
}

// A Hugging Face GPT-2 directory of a random tiny model, with the mini BPE's vocab.json/merges.txt.
struct HfDir {
  GptConfig config;
  Gpt model{nullptr};
  MiniBpe bpe = mini_bpe();
  int64_t vocab = 0;

  HfDir(const fs::path& dir, const HfLayout& layout) {
    fs::create_directories(dir);
    bpe.write(dir);
    vocab = int64_t(bpe.vocab.size()) + 1;  // + <|endoftext|>
    config = GptConfig::from_json(hf_config(vocab), "test");
    torch::manual_seed(7);
    model = Gpt(config);
    write_text(dir / "config.json", hf_config(vocab).dump(2));
    save_safetensors((dir / "model.safetensors").string(), hf_tensors(model, layout));
  }
};

std::string checkpoint_error(const std::string& dir) {
  try {
    read_hf_gpt2(dir);
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "";
}

TEST(HfImport, ConvertsLayoutsIgnoresBuffersAndAddsChatTokenRows) {
  TempDir tmp;
  const fs::path dir = tmp.path / "hf";
  HfDir hf(dir, HfLayout{});
  const HfGpt2Model m = read_hf_gpt2(dir.string());
  EXPECT_EQ(m.source_vocab_size, hf.vocab);
  EXPECT_EQ(m.added_rows, 4);  // <|system|> <|user|> <|assistant|> <|end|>
  EXPECT_EQ(m.config.vocab_size, hf.vocab + 4);
  EXPECT_EQ(m.tokenizer->vocab_size(), hf.vocab + 4);
  EXPECT_EQ(m.source_dtype, "F32");
  EXPECT_EQ(m.ignored.size(), 4u);  // 2 layers × (attn.bias, attn.masked_bias)

  // The Conv1D semantics, computed from the file's layout: y = x W + b with W [in, out].
  const TensorMap file = load_safetensors((dir / "model.safetensors").string()).tensors;
  const torch::Tensor x = torch::randn({3, 16});
  const torch::Tensor hf_y = torch::addmm(file.at("transformer.h.1.attn.c_attn.bias"), x,
                                          file.at("transformer.h.1.attn.c_attn.weight"));
  const torch::Tensor w = m.tensors.at("h.1.attn.c_attn.weight");  // retain: [out, in]
  ASSERT_EQ(w.sizes(), (c10::IntArrayRef{48, 16}));
  EXPECT_TRUE(torch::allclose(torch::nn::functional::linear(x, w, m.tensors.at("h.1.attn.c_attn.bias")), hf_y,
                              1e-6, 1e-6));

  // New rows are the mean embedding; old rows are the file's.
  const torch::Tensor& wte = m.tensors.at("wte.weight");
  EXPECT_TRUE(torch::equal(wte.slice(0, 0, hf.vocab), hf.model->wte->weight.detach()));
  EXPECT_TRUE(torch::allclose(wte[hf.vocab + 3], hf.model->wte->weight.detach().mean(0), 1e-6, 1e-7));

  // The written retain directory computes the source model's logits on the source's ids.
  const fs::path out = tmp.path / "retain";
  write_hf_import(m, dir.string(), out.string());
  LoadedModel loaded = load_model_dir(out.string(), 0);
  ASSERT_TRUE(loaded.has_weights);
  EXPECT_EQ(loaded.tokenizer->type(), "gpt2-bpe");
  const torch::Tensor ids = torch::randint(hf.vocab, {2, 20}, torch::kLong);
  torch::NoGradGuard no_grad;
  loaded.model->eval();
  hf.model->eval();
  const torch::Tensor mine = loaded.model->forward(ids).slice(2, 0, hf.vocab);
  EXPECT_TRUE(torch::allclose(mine, hf.model->forward(ids), 1e-5, 1e-5));
  const auto card = nlohmann::json::parse(read_text(out / "card.json"));
  EXPECT_EQ(card["imported_from_hf"]["added_rows"], 4);
}

TEST(HfImport, AcceptsNoPrefixTiedLmHeadFp16AndShards) {
  TempDir tmp;
  HfDir plain(tmp.path / "plain", HfLayout{false, false, true, torch::kHalf});
  const HfGpt2Model m = read_hf_gpt2((tmp.path / "plain").string());
  EXPECT_EQ(m.source_dtype, "F16");
  EXPECT_EQ(m.ignored, std::vector<std::string>{"lm_head.weight"});
  EXPECT_TRUE(torch::equal(m.tensors.at("ln_f.weight"),
                           plain.model->ln_f->weight.detach().to(torch::kHalf).to(torch::kFloat)));

  // Two shards and an index, as save_pretrained writes a large model.
  const fs::path sharded = tmp.path / "sharded";
  HfDir whole(sharded, HfLayout{});
  TensorMap all = load_safetensors((sharded / "model.safetensors").string()).tensors;
  fs::remove(sharded / "model.safetensors");
  TensorMap first, second;
  nlohmann::json map = nlohmann::json::object();
  for (const auto& [name, t] : all) {
    const bool one = name.find(".h.1.") == std::string::npos;
    (one ? first : second)[name] = t;
    map[name] = one ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  save_safetensors((sharded / "model-00001-of-00002.safetensors").string(), first);
  save_safetensors((sharded / "model-00002-of-00002.safetensors").string(), second);
  write_text(sharded / "model.safetensors.index.json", nlohmann::json({{"weight_map", map}}).dump());
  const HfGpt2Model s = read_hf_gpt2(sharded.string());
  EXPECT_TRUE(torch::equal(s.tensors.at("h.1.mlp.c_fc.weight"), whole.model->h[1]->as<Block>()->mlp->c_fc->weight.detach()));
}

TEST(HfImport, RefusalsNameTheFileAndTheRule) {
  TempDir tmp;
  const fs::path dir = tmp.path / "hf";
  HfDir hf(dir, HfLayout{true, true, false, torch::kFloat});
  const auto with_config = [&](const char* key, const nlohmann::json& value) {
    nlohmann::json c = hf_config(hf.vocab);
    c[key] = value;
    write_text(dir / "config.json", c.dump());
    return checkpoint_error(dir.string());
  };
  const auto expect_has = [](const std::string& message, const std::string& part) {
    EXPECT_NE(message.find(part), std::string::npos) << "\"" << message << "\" lacks \"" << part << "\"";
  };
  expect_has(with_config("model_type", "llama"), "config.json: \"model_type\" is \"llama\"");
  expect_has(with_config("activation_function", "relu"), "\"activation_function\" is \"relu\"");
  expect_has(with_config("n_inner", 24), "\"n_inner\" is 24");
  expect_has(with_config("tie_word_embeddings", false), "\"tie_word_embeddings\" is false");
  expect_has(with_config("scale_attn_by_inverse_layer_idx", true), "scale_attn_by_inverse_layer_idx");
  expect_has(with_config("n_layer", 3), "missing tensor h.2.");
  expect_has(with_config("n_embd", 32), "transformer.h.0.attn.c_attn.bias has shape [48]; config.json implies [96]");
  expect_has(with_config("n_head", 3), "n_embd (16) must be divisible by n_head (3)");
  write_text(dir / "config.json", hf_config(hf.vocab).dump());
  ASSERT_EQ(checkpoint_error(dir.string()), "");

  const TensorMap good = load_safetensors((dir / "model.safetensors").string()).tensors;
  const auto with_tensors = [&](const TensorMap& tensors) {
    save_safetensors((dir / "model.safetensors").string(), tensors);
    return checkpoint_error(dir.string());
  };
  TensorMap t = good;
  t["lm_head.weight"] = good.at("transformer.wte.weight") + 1;
  expect_has(with_tensors(t), "model.safetensors: lm_head.weight differs from wte.weight");
  t = good;
  t["score.weight"] = torch::zeros({2, 16});
  expect_has(with_tensors(t), "model.safetensors: unexpected tensor score.weight");
  t = good;
  t.erase("transformer.h.1.ln_2.bias");
  expect_has(with_tensors(t), "missing tensor h.1.ln_2.bias");
  t = good;
  t["transformer.ln_f.weight"] = torch::ones({16}, torch::kLong);
  expect_has(with_tensors(t), "tensor transformer.ln_f.weight is not a float tensor");
  t = good;
  t["h.0.ln_1.weight"] = good.at("transformer.h.0.ln_1.weight");
  expect_has(with_tensors(t), "appears with and without the prefix");
  with_tensors(good);

  fs::rename(dir / "merges.txt", dir / "merges.bak");
  expect_has(checkpoint_error(dir.string()), "no tokenizer files");
  fs::rename(dir / "merges.bak", dir / "merges.txt");
  fs::rename(dir / "model.safetensors", dir / "pytorch_model.bin");
  expect_has(checkpoint_error(dir.string()), "only pytorch_model.bin");
}

// The tensors of a Hugging Face directory's model.safetensors.
TensorMap hf_file(const fs::path& dir) { return load_safetensors((dir / "model.safetensors").string()).tensors; }

TEST(HfExport, ImportExportRoundTripKeepsEveryTensor) {
  TempDir tmp;
  HfDir hf(tmp.path / "hf", HfLayout{});
  const HfGpt2Model m = read_hf_gpt2((tmp.path / "hf").string());
  write_hf_import(m, (tmp.path / "hf").string(), (tmp.path / "v1").string());
  export_hf_gpt2((tmp.path / "v1").string(), (tmp.path / "out1").string(), false);

  // Every tensor of the source comes back with its name, layout and values; wte has the 4 rows more.
  const TensorMap source = hf_file(tmp.path / "hf"), exported = hf_file(tmp.path / "out1");
  EXPECT_EQ(exported.count("lm_head.weight"), 0u);
  size_t compared = 0;
  for (const auto& [name, t] : source) {
    if (name.find(".attn.bias") != std::string::npos || name.find("masked_bias") != std::string::npos) continue;
    ASSERT_TRUE(exported.count(name)) << name;
    const torch::Tensor e = name == "transformer.wte.weight" ? exported.at(name).slice(0, 0, hf.vocab) : exported.at(name);
    EXPECT_TRUE(torch::equal(e, t)) << name;
    ++compared;
  }
  EXPECT_EQ(compared, exported.size());
  EXPECT_EQ(exported.at("transformer.wte.weight").size(0), hf.vocab + 4);
  const SafetensorsFile raw = load_safetensors((tmp.path / "out1" / "model.safetensors").string());
  EXPECT_EQ(raw.metadata.at("format"), "pt");

  const auto config = nlohmann::json::parse(read_text(tmp.path / "out1" / "config.json"));
  EXPECT_EQ(config["model_type"], "gpt2");
  EXPECT_EQ(config["architectures"][0], "GPT2LMHeadModel");
  EXPECT_EQ(config["vocab_size"], hf.vocab + 4);
  EXPECT_EQ(config["eos_token_id"], hf.vocab - 1);
  EXPECT_EQ(config["activation_function"], "gelu_new");
  const auto tok_config = nlohmann::json::parse(read_text(tmp.path / "out1" / "tokenizer_config.json"));
  EXPECT_EQ(tok_config["added_tokens_decoder"][std::to_string(hf.vocab + 3)]["content"], "<|end|>");
  EXPECT_EQ(tok_config["eos_token"], "<|endoftext|>");
  const auto added = nlohmann::json::parse(read_text(tmp.path / "out1" / "added_tokens.json"));
  EXPECT_EQ(added, (nlohmann::json{{"<|system|>", hf.vocab}, {"<|user|>", hf.vocab + 1},
                                   {"<|assistant|>", hf.vocab + 2}, {"<|end|>", hf.vocab + 3}}));

  // The exported tokenizer files (tokenizer.json; and vocab.json + merges.txt) tokenize as the
  // imported tokenizer does, chat tokens at the same ids.
  const auto fast = Gpt2BpeTokenizer::from_tokenizer_json((tmp.path / "out1" / "tokenizer.json").string());
  const auto slow = Gpt2BpeTokenizer::from_files((tmp.path / "out1" / "vocab.json").string(),
                                                 (tmp.path / "out1" / "merges.txt").string());
  const std::string text = "he ab abab<|user|>hello <|endoftext|>";
  EXPECT_EQ(fast->encode_with_specials(text), m.tokenizer->encode_with_specials(text));
  EXPECT_EQ(slow->encode(text), m.tokenizer->encode(text));
  EXPECT_EQ(fast->end_of_turn_token(), hf.vocab + 3);

  // A second round trip (its tokenizer now holds the chat tokens) is exact, byte for byte.
  const HfGpt2Model again = read_hf_gpt2((tmp.path / "out1").string());
  EXPECT_EQ(again.added_rows, 0);
  write_hf_import(again, (tmp.path / "out1").string(), (tmp.path / "v2").string());
  export_hf_gpt2((tmp.path / "v2").string(), (tmp.path / "out2").string(), false);
  for (const char* file : {"model.safetensors", "config.json", "tokenizer.json", "vocab.json", "merges.txt",
                           "tokenizer_config.json"})
    EXPECT_EQ(read_text(tmp.path / "out2" / file), read_text(tmp.path / "out1" / file)) << file;

  // Refusals: an existing folder, a byte-tokenizer model.
  EXPECT_THROW(export_hf_gpt2((tmp.path / "v1").string(), (tmp.path / "out1").string(), false), CheckpointError);
  fs::remove(tmp.path / "v1" / kTokenizerFile);
  EXPECT_THROW(export_hf_gpt2((tmp.path / "v1").string(), (tmp.path / "out3").string(), false), CheckpointError);
  EXPECT_FALSE(fs::exists(tmp.path / "out3"));
}

TEST(HfCli, ImportFromHfExportAndLogits) {
  TempDir tmp;
  HfDir hf(tmp.path / "hf", HfLayout{});
  const fs::path ws = tmp.path / "ws";
  ASSERT_EQ(run_cli({"-q", "init", "--workspace", ws.string()}, tmp.path).code, 0);

  // A bad directory: exit 4, nothing registered, nothing in versions/.
  fs::create_directories(tmp.path / "bad");
  write_text(tmp.path / "bad" / "config.json", R"({"model_type": "bert"})");
  const auto bad = run_cli({"import", "--from-hf", (tmp.path / "bad").string(), "--name", "base",
                            "--workspace", ws.string()}, tmp.path, "bad");
  EXPECT_EQ(bad.code, kExitCheckpoint) << bad.describe();
  EXPECT_NE(bad.err.find("\"model_type\" is \"bert\""), std::string::npos) << bad.err;
  EXPECT_TRUE(fs::is_empty(ws / "versions"));

  const auto imported = run_cli({"import", "--from-hf", (tmp.path / "hf").string(), "--name", "base",
                                 "--workspace", ws.string()}, tmp.path, "import");
  ASSERT_EQ(imported.code, 0) << imported.describe();
  EXPECT_NE(imported.out.find("wte grew by 4 rows"), std::string::npos) << imported.out;
  {
    Workspace w = Workspace::open(ws.string());
    const VersionRecord r = Registry(w.db()).get("base");
    EXPECT_EQ(r.status, VersionStatus::kProduction);
    EXPECT_EQ(r.settings["source_format"], "huggingface-gpt2");
  }

  const auto exported = run_cli({"export", "base", "--hf", (tmp.path / "out").string(),
                                 "--workspace", ws.string()}, tmp.path, "export");
  ASSERT_EQ(exported.code, 0) << exported.describe();
  EXPECT_TRUE(torch::equal(hf_file(tmp.path / "out").at("transformer.h.0.mlp.c_proj.weight"),
                           hf_file(tmp.path / "hf").at("transformer.h.0.mlp.c_proj.weight")));

  // `retain logits` on the imported version equals the source model's logits.
  write_text(tmp.path / "ids.txt", "[1, 2, 3, 256]\n[5]\n");
  const std::string cmd = std::string(RETAIN_BIN) + " -q logits --model " + (ws / "versions" / "base").string() +
                          " --out " + (tmp.path / "logits.safetensors").string() + " < " +
                          (tmp.path / "ids.txt").string() + " > " + (tmp.path / "out.txt").string() + " 2> " +
                          (tmp.path / "err.txt").string();
  ASSERT_EQ(WEXITSTATUS(std::system(cmd.c_str())), 0) << read_text(tmp.path / "err.txt");
  const TensorMap logits = load_safetensors((tmp.path / "logits.safetensors").string()).tensors;
  ASSERT_EQ(logits.size(), 2u);
  torch::NoGradGuard no_grad;
  hf.model->eval();
  const torch::Tensor want = hf.model->forward(torch::tensor({1, 2, 3, 256}, torch::kLong).unsqueeze(0))[0];
  EXPECT_TRUE(torch::allclose(logits.at("logits.0").slice(1, 0, hf.vocab), want, 1e-5, 1e-5));
  EXPECT_EQ(logits.at("logits.1").sizes(), (c10::IntArrayRef{1, hf.vocab + 4}));
}

}  // namespace
}  // namespace retain
