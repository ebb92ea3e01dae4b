#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into fuzz/corpus/<target>/ (run once; the files are
committed). Seeds are small valid inputs of each format plus a few near misses, so that the fuzzer
starts inside the format rather than at random bytes. Inputs that once crashed are added to the
same folders by hand, named crash-<what>."""
import gzip, json, os, struct, sys

root = os.path.dirname(os.path.abspath(__file__))
corpus = os.path.join(root, "corpus")


def put(target, name, data):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def safetensors(tensors, metadata=None):
    header, blob = {}, b""
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    if metadata is not None:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob


f32 = lambda *v: struct.pack("<%df" % len(v), *v)
put("safetensors_fuzz", "two-f32", safetensors({"a": ("F32", [2, 2], f32(1, 2, 3, 4)), "b": ("F32", [1], f32(5))}, {"format": "pt"}))
put("safetensors_fuzz", "bf16-i64-empty", safetensors({"w": ("BF16", [2], b"\x80\x3f\x00\x40"),
                                                     "n": ("I64", [1], struct.pack("<q", 7)),
                                                     "e": ("F32", [0, 3], b"")}))
put("safetensors_fuzz", "scalar-u8-bool", safetensors({"s": ("F64", [], struct.pack("<d", 1.5)), "u": ("U8", [3], b"\x01\x02\x03"),
                                                     "t": ("BOOL", [2], b"\x01\x00")}))
put("safetensors_fuzz", "overlap", safetensors({"a": ("F32", [1], f32(1))})[:-4] + b"\x00\x00")
put("safetensors_fuzz", "empty-header", struct.pack("<Q", 8) + b"{}      ")

shard = "model-00001-of-00001.safetensors"
put("weights_index_fuzz", "index", json.dumps({"metadata": {"total_size": 40}, "weight_map": {"a": shard, "b": shard}}))
put("weights_index_fuzz", "missing-shard", json.dumps({"weight_map": {"a": "model-00002-of-00002.safetensors"}}))
put("weights_index_fuzz", "subset", json.dumps({"weight_map": {"a": shard}}))

models = os.path.join(os.path.dirname(root), "models")
for name in sorted(os.listdir(models)):
    with open(os.path.join(models, name, "config.json")) as f:
        put("model_config_fuzz", name, f.read())
put("model_config_fuzz", "llama3-rope", json.dumps({
    "model_type": "llama", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128, "rope_theta": 500000.0,
    "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 64}, "tie_word_embeddings": True, "torch_dtype": "bfloat16"}))
put("model_config_fuzz", "adapter", json.dumps({
    "peft_type": "LORA", "r": 8, "lora_alpha": 16, "lora_dropout": 0.05, "target_modules": ["q_proj", "v_proj"],
    "bias": "none", "task_type": "CAUSAL_LM", "fan_in_fan_out": False, "base_model_name_or_path": "base"}))

support = os.path.join(os.path.dirname(root), "data", "support")
with open(os.path.join(support, "release1-train.jsonl")) as f:
    lines = f.read().splitlines()
put("chat_jsonl_fuzz", "release1", "\n".join(lines[:3]) + "\n")
put("chat_jsonl_fuzz", "weights-system", json.dumps({"messages": [
    {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi <|im_end|>"},
    {"role": "assistant", "content": "draft", "weight": 0}, {"role": "user", "content": "again"},
    {"role": "assistant", "content": "ok"}], "topic": "t", "meta": {"a": [1, 2.5, None, True]}}) + "\r\n\n")
put("chat_jsonl_fuzz", "bad-lines", '{"messages":[]}\n[1,2]\n{"messages":[{"role":"robot","content":"x"}]}\n{"messages"\n')

put("features_fuzz", "jsonl", "\x00" + "\n".join(json.dumps({"features": [0.5, -1, 2e3], "label": k}) for k in range(3)) + "\n")
idx = bytes([0, 0, 8, 3]) + struct.pack(">III", 2, 2, 2) + bytes(range(8))
put("features_fuzz", "idx3", b"\x01" + idx)
put("features_fuzz", "idx1-gzip", b"\x01" + gzip.compress(bytes([0, 0, 8, 1]) + struct.pack(">I", 3) + b"\x01\x02\x03", mtime=0))

def char_vocab(chars, extra=()):
    vocab = {c: i for i, c in enumerate(chars)}
    for t in extra:
        vocab[t] = len(vocab)
    return vocab

bytelevel = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
put("tokenizer_json_fuzz", "bytelevel", json.dumps({
    "version": "1.0", "normalizer": {"type": "NFC"}, "pre_tokenizer": bytelevel, "decoder": bytelevel,
    "added_tokens": [{"id": 9, "content": "<|im_end|>", "special": True, "single_word": False, "lstrip": False,
                      "rstrip": False, "normalized": False}],
    "model": {"type": "BPE", "vocab": char_vocab("Helo", ["He", "ll", "Hell"]), "merges": ["H e", "l l", "He ll"]}}))
put("tokenizer_json_fuzz", "split-digits-fallback", json.dumps({
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "\\s+|\\d"}, "behavior": "Isolated", "invert": False},
        {"type": "Digits", "individual_digits": True}]},
    "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                       {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
    "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                                                 {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
    "added_tokens": [],
    "model": {"type": "BPE", "vocab": char_vocab("ab1", ["<unk>", "<0x41>", "ab"]), "merges": [["a", "b"]],
              "byte_fallback": True, "unk_token": "<unk>", "fuse_unk": True, "ignore_merges": True}}))

b2u = {}
bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
cs, n = bs[:], 0
for b in range(256):
    if b not in bs:
        bs.append(b); cs.append(256 + n); n += 1
vocab = {chr(c): i for i, c in enumerate(cs)}
vocab["He"] = len(vocab); vocab["ll"] = len(vocab); vocab["\u0120w"] = len(vocab)
put("bpe_files_fuzz", "gpt2-bytes", json.dumps(vocab) + "\0#version: 0.2\nH e\nl l\n\u0120 w\n")
put("bpe_files_fuzz", "bad-merge", json.dumps({"a": 0, "b": 1}) + "\0#version: 0.2\na c\n")

configs = os.path.join(os.path.dirname(root), "configs")
for name in sorted(os.listdir(configs)):
    with open(os.path.join(configs, name)) as f:
        put("round_config_fuzz", name, f.read())
put("round_config_fuzz", "lora-auto", json.dumps({
    "name": "support", "replay": {"ratio": "auto", "strategy": "uniform"},
    "ewc": {"lambda": 100, "gamma": 0.9, "estimator": "true", "num_samples": 16},
    "lora": {"rank": 4, "alpha": 8, "dropout": 0.1, "target_modules": ["q_proj"]},
    "training": {"max_steps": 3, "lr": 1e-3, "batch_size": 2}, "eval": {"batch_size": 4},
    "gate": {"test_sets": {"old": "old.jsonl", "new": "new.jsonl"}, "metrics": {"old": "exact_match"},
             "min_scores": {"new": 0.5}, "regression_tolerance": 0.01}}))
print("seeds written under", corpus)
