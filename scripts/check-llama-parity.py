#!/usr/bin/env python3
"""Checks retain's Llama-family import, logits and export against a reference no one here wrote.

  scripts/check-llama-parity.py [--retain build/retain] [--reference auto|transformers|builtin]
                                [--configs NAME,...] [--quick] [--layers N] [--hidden N]
                                [--tolerance 1e-4] [--merges 100] [--float64] [--seed 0]
                                [--keep DIR] [--list]

For each config (--configs; `--list` names them): llama3-tied (rope_scaling llama3 acting within
200 tokens, tied), llama-linear-bias (untied, attention_bias, mlp_bias, rope_scaling
{"type": "linear"}), qwen2 (q/k/v biases, tied, config vocab_size > tokenizer, saved in BF16),
qwen3 (head_dim 32 ≠ 64/4, q_norm/k_norm, two shards with an index), smollm2 (GQA 3/1, hidden 48,
theta 1e5), mistral (sliding_window null, untied), llama-v5-rope (transformers v5's
`rope_parameters` spelling):

1. Random weights saved as a Hugging Face directory (config.json, model.safetensors or shards,
   tokenizer.json + vocab.json + merges.txt + tokenizer_config.json with ChatML, a
   generation_config.json), and the reference (scripts/llama_reference.py, written from
   transformers' modeling code; with transformers installed AutoModelForCausalLM as well).
2. Self-checks of the reference: KV-cache forward == full forward; GQA == multi-head attention
   on kv weights repeated; llama3 scaling that leaves inv_freq alone == default RoPE, that scales
   everything == linear; rotate-half == complex rotation of (x_i, x_{i+d/2}); qwen3's q/k norm ==
   an L2 normalisation; fp32 within tolerance/10 of float64; and each of a set of deliberate
   mistakes (RoPE unscaled / interleaved / off, GQA mapping, no q/k norm, no bias, ...) moves
   the logits by more than 10 × tolerance, so that the tolerance can see them.
3. `retain -q init`, `retain -q import --from-hf SRC --name NAME`, `retain -q logits --model
   WS/versions/NAME --out F` (stdin: one JSON array of ids a line; F: tensors logits.<line>, fp32,
   (T, vocab_size)) on sequences of 1, 7, 64 and 200 random ids: max |retain − reference| ≤
   --tolerance. A BF16 source keeps BF16 in the version's model.safetensors.
4. `retain -q export NAME --hf OUT`: OUT's config.json has the source's value for every
   architecture key, OUT's tensors equal the source's (names, shapes, dtypes, values), the
   tokenizer files are there; import OUT again and export it: model.safetensors (or its shards
   and index) and config.json byte-identical. With transformers: AutoModelForCausalLM on OUT ==
   reference.

Needs PyTorch (Debian's python3-torch 1.13 will do); transformers optional (--reference auto uses it
when importable). Exit status 0 when every check passes, 1 when one fails, 2 when it cannot run
(no PyTorch, or --retain is not an executable: then after the reference's own checks, with the
directories written — keep them with --keep DIR).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

try:
    import torch
except ImportError:
    print("check-llama-parity: PyTorch is not installed", file=sys.stderr)
    sys.exit(2)

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_reference as ref  # noqa: E402

TEXTS = [
    "Hello there! How do I reset my password?",
    "The quick brown fox jumps over the lazy dog.",
    "Order #12345 was shipped on 2024-03-01; it'll arrive soon.",
    "  spaces,\tand tabs\nand newlines  ",
    "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u2014 \u65e5\u672c\u8a9e \U0001F600",
    "def f(x):\n    return x ** 2  # squares",
    "<|im_start|>user\nWhere is my order?<|im_end|>\n<|im_start|>assistant\nIt ships tomorrow.<|im_end|>\n",
]
LENGTHS = [1, 7, 64, 200]
MAX_POSITIONS = 256
# The config.json keys whose values an export must give back unchanged.
ARCH_KEYS = ["architectures", "model_type", "hidden_size", "intermediate_size", "num_hidden_layers",
             "num_attention_heads", "num_key_value_heads", "head_dim", "rms_norm_eps", "rope_theta", "rope_scaling",
             "rope_parameters", "max_position_embeddings", "tie_word_embeddings", "vocab_size", "hidden_act",
             "attention_bias", "mlp_bias", "sliding_window", "use_sliding_window", "bos_token_id", "eos_token_id",
             "torch_dtype", "dtype"]


def make_configs(layers, hidden, tok_vocab):
    """name → (config.json dict, how it is saved). hidden is the width of all but smollm2 (3/4 of it)."""
    common = {"hidden_act": "silu", "max_position_embeddings": MAX_POSITIONS, "rms_norm_eps": 1e-5,
              "bos_token_id": 1, "eos_token_id": 2, "vocab_size": tok_vocab, "num_hidden_layers": layers,
              "initializer_range": 0.02, "use_cache": True, "transformers_version": "4.46.0",
              "torch_dtype": "float32"}

    def cfg(model_type, **kw):
        c = {"architectures": [ref.ARCHITECTURES[model_type]], "model_type": model_type}
        c.update(common)
        c.update(kw)
        return c

    h = hidden
    smol = max(12, (3 * hidden // 4) // 12 * 12)  # 48 for 64: 3 heads of 16
    configs = {
        "llama3-tied": (cfg("llama", hidden_size=h, intermediate_size=2 * h, num_attention_heads=4,
                            num_key_value_heads=2, head_dim=h // 4, rope_theta=10000.0,
                            rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                          "high_freq_factor": 4.0, "original_max_position_embeddings": 32},
                            tie_word_embeddings=True, attention_bias=False, mlp_bias=False, pretraining_tp=1),
                        {}),
        "llama-linear-bias": (cfg("llama", hidden_size=h, intermediate_size=2 * h, num_attention_heads=4,
                                  num_key_value_heads=4, rope_theta=10000.0, rope_scaling={"type": "linear", "factor": 2.0},
                                  tie_word_embeddings=False, attention_bias=True, mlp_bias=True, pretraining_tp=1),
                              {}),
        "qwen2": (cfg("qwen2", hidden_size=h, intermediate_size=2 * h + 32, num_attention_heads=4, num_key_value_heads=2,
                      rope_theta=1000000.0, rope_scaling=None, tie_word_embeddings=True, vocab_size=tok_vocab + 5,
                      use_sliding_window=False, sliding_window=None, max_window_layers=layers,
                      attention_dropout=0.0, torch_dtype="bfloat16", rms_norm_eps=1e-6),
                  {"bf16": True}),
        "qwen3": (cfg("qwen3", hidden_size=h, intermediate_size=2 * h, num_attention_heads=4, num_key_value_heads=2,
                      head_dim=h // 2, rope_theta=1000000.0, rope_scaling=None, tie_word_embeddings=True,
                      attention_bias=False, use_sliding_window=False, sliding_window=None, max_window_layers=layers,
                      attention_dropout=0.0, rms_norm_eps=1e-6),
                  {"shards": 2}),
        "smollm2": (cfg("llama", hidden_size=smol, intermediate_size=2 * smol + 32, num_attention_heads=3,
                        num_key_value_heads=1, head_dim=smol // 3, rope_theta=100000.0, rope_scaling=None,
                        tie_word_embeddings=True, attention_bias=False, mlp_bias=False, pretraining_tp=1),
                    {}),
        "mistral": (cfg("mistral", hidden_size=h, intermediate_size=2 * h, num_attention_heads=8, num_key_value_heads=2,
                        head_dim=h // 8, rope_theta=10000.0, sliding_window=None, tie_word_embeddings=False,
                        attention_dropout=0.0),
                    {}),
        "llama-v5-rope": (cfg("llama", hidden_size=h, intermediate_size=2 * h, num_attention_heads=4,
                              num_key_value_heads=1, head_dim=h // 4,
                              rope_parameters={"rope_type": "llama3", "rope_theta": 50000.0, "factor": 4.0,
                                               "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                               "original_max_position_embeddings": 64},
                              tie_word_embeddings=False, attention_bias=False, mlp_bias=False),
                          {"v5": True}),
    }
    v5 = configs["llama-v5-rope"][0]
    v5.pop("torch_dtype")
    v5["dtype"] = "float32"
    v5["transformers_version"] = "5.0.0"
    return configs


def random_weights(arch, gen):
    """Weights large enough that attention is sharp (so RoPE, GQA and the norms show in the
    logits); RMSNorm weights 1 + noise so that a missing norm shows."""
    std = {"embed_tokens": 0.02, "lm_head": 0.05, "q_proj": 0.15, "k_proj": 0.15, "v_proj": 0.05, "o_proj": 0.05,
           "gate_proj": 0.05, "up_proj": 0.05, "down_proj": 0.05}
    out = {}
    for name, shape in arch.tensor_shapes().items():
        kind = name.split(".")[-2]
        if kind.endswith("norm"):
            t = 1 + 0.1 * torch.randn(shape, generator=gen)
        elif name.endswith(".bias"):
            t = 0.05 * torch.randn(shape, generator=gen)
        else:
            t = std[kind] * torch.randn(shape, generator=gen)
        out[name] = t
    return out


def save_source(directory, config, how, tensors, vocab, merges):
    os.makedirs(directory)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    if how.get("bf16"):
        tensors = {k: v.to(torch.bfloat16) for k, v in tensors.items()}
    if how.get("shards"):
        ref.write_sharded(directory, tensors, how["shards"])
    else:
        ref.write_safetensors(os.path.join(directory, "model.safetensors"), tensors)
    ref.write_tokenizer(directory, vocab, merges, config["max_position_embeddings"])
    with open(os.path.join(directory, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": config["bos_token_id"], "eos_token_id": config["eos_token_id"], "pad_token_id": 2,
                   "transformers_version": config.get("transformers_version", "4.46.0")}, f, indent=2)
    # what the reference computes from: the stored values (bf16-rounded when stored so) in fp32
    return {k: v.to(torch.float32) for k, v in tensors.items()}


class Runner:
    def __init__(self, retain):
        self.retain, self.seconds, self.calls = retain, 0.0, 0

    def __call__(self, *args, stdin=None):
        cmd = [self.retain, "-q", *args]
        t0 = time.time()
        r = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
        self.seconds += time.time() - t0
        self.calls += 1
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stderr.strip()}")
        return r.stdout


def maxdiff(a, b):
    return (a.to(torch.float64) - b.to(torch.float64)).abs().max().item()


def self_checks(name, config, weights, seqs, tol, check):
    """The reference against itself and against independent formulations."""
    model = ref.LlamaReference(config, weights)
    a = model.arch
    long = seqs[-1]
    full = model.logits(long)

    # KV cache: one token at a time after a prompt of 5, and chunks of 7
    logits, cache = model.forward(long[:5])
    rows = [logits]
    for i in range(5, len(long)):
        step, cache = model.forward(long[i:i + 1], cache)
        rows.append(step)
    d1 = maxdiff(torch.cat(rows), full)
    rows, cache = [], None
    for i in range(0, len(long), 7):
        step, cache = model.forward(long[i:i + 7], cache)
        rows.append(step)
    d2 = maxdiff(torch.cat(rows), full)
    check(max(d1, d2) <= 1e-5, f"{name}: reference KV-cache forward == full forward over {len(long)} tokens "
          f"(token by token {d1:.2g}, chunks of 7 {d2:.2g})")

    # fp32 against float64
    d = maxdiff(full, ref.LlamaReference(config, weights, dtype=torch.float64).logits(long))
    check(d <= tol / 10, f"{name}: reference fp32 vs float64: {d:.2g} (≤ tolerance/10)")

    # GQA == multi-head attention with each kv head's weights repeated heads/kv times
    if a.kv_heads < a.heads:
        n_rep = a.heads // a.kv_heads
        mha_w = dict(weights)
        for key in list(weights):
            if ".k_proj." in key or ".v_proj." in key:
                t = weights[key].view(a.kv_heads, a.head_dim, *weights[key].shape[1:])
                mha_w[key] = t.repeat_interleave(n_rep, dim=0).reshape(a.heads * a.head_dim, *weights[key].shape[1:])
        mha_cfg = dict(config, num_key_value_heads=a.heads)
        d = maxdiff(full, ref.LlamaReference(mha_cfg, mha_w).logits(long))
        check(d <= 1e-5, f"{name}: GQA {a.heads}/{a.kv_heads} == multi-head attention on repeated kv weights ({d:.2g})")

    # Each deliberate mistake must move the logits well past the tolerance.
    mutations = ["rope_off", "rope_interleaved", "norm_weight_ignored", "eps_1e-2"]
    if a.kv_heads < a.heads and a.kv_heads > 1:
        mutations.append("gqa_interleaved")
    if a.rope["rope_type"] != "default":
        mutations.append("rope_unscaled")
    if a.rope["rope_type"] == "llama3":
        mutations.append("llama3_no_blend")
    if a.o_bias:
        mutations.append("no_o_bias")
    if a.mlp_bias:
        mutations.append("no_mlp_bias")
    if a.qk_norm:
        mutations.append("no_qk_norm")
    if a.qkv_bias:
        mutations.append("no_qkv_bias")
    if float(a.rope["rope_theta"]) != 10000.0:
        mutations.append("theta_10000")
    seen = []
    for m in mutations:
        wrong = ref.LlamaReference(config, weights, mutation=m)
        if m in ("rope_unscaled", "llama3_no_blend") and torch.equal(wrong.inv_freq, model.inv_freq):
            seen.append(f"{m} n/a (no frequency in that band at this head_dim)")
            continue
        d = maxdiff(full, wrong.logits(long))
        seen.append(f"{m} {d:.2g}")
        if d <= 10 * tol:
            check(False, f"{name}: the mistake {m} moves the logits by only {d:.2g} (≤ 10 × tolerance)")
    check(True, f"{name}: every deliberate mistake moves the logits by > 10 × tolerance ({', '.join(seen)})")


def general_self_checks(check):
    """Checks of the reference's pieces that do not depend on a config's weights."""
    gen = torch.Generator().manual_seed(7)
    # rotate-half == complex rotation of the pairs (x_i, x_{i+d/2}) by position * inv_freq_i
    d, t = 16, 50
    inv = ref.default_inv_freq(10000.0, d)
    x = torch.randn(3, t, d, generator=gen)
    cfg = {"model_type": "llama", "hidden_size": 48, "intermediate_size": 8, "num_hidden_layers": 1,
           "num_attention_heads": 3, "vocab_size": 4, "rope_theta": 10000.0}
    dummy = ref.LlamaReference(cfg, {})
    pos = torch.arange(t)
    mine = dummy.rope(x, pos)
    z = torch.complex(x[..., :d // 2].double(), x[..., d // 2:].double()) * \
        torch.polar(torch.ones(t, d // 2, dtype=torch.float64), pos[:, None].double() * inv[None, :].double())
    want = torch.cat((z.real, z.imag), dim=-1)
    check(maxdiff(mine, want) <= 1e-4, f"RoPE rotate-half == complex rotation of (x_i, x_(i+d/2)) ({maxdiff(mine, want):.2g})")

    # llama3 scaling: factor 1 → default; original so long that every wavelength is short → default;
    # original so short that every wavelength is long → linear(factor); a band of each kind otherwise
    base = ref.default_inv_freq(10000.0, 16)
    d1 = maxdiff(ref.llama3_inv_freq(base, 1.0, 1.0, 4.0, 32), base)
    d2 = maxdiff(ref.llama3_inv_freq(base, 8.0, 1.0, 4.0, 10 ** 9), base)
    d3 = maxdiff(ref.llama3_inv_freq(base, 8.0, 1.0, 4.0, 1), base / 8)
    check(max(d1, d2) <= 1e-6 * base.max().item() and d3 <= 1e-12,
          f"llama3 scaling: factor 1 == default ({d1:.2g}), original 1e9 == default ({d2:.2g}), original 1 == linear ({d3:.2g})")
    scaled = ref.llama3_inv_freq(base, 8.0, 1.0, 4.0, 32)
    wavelen = 2 * torch.pi / base
    kept, divided = (scaled == base), torch.isclose(scaled, base / 8, rtol=1e-6, atol=0)
    blended = ~kept & ~divided
    ok = bool(kept[wavelen < 8].all() and divided[wavelen > 32].all() and blended.any()
              and ((scaled[blended] < base[blended]) & (scaled[blended] > base[blended] / 8)).all())
    check(ok, f"llama3 scaling (factor 8, original 32, head_dim 16): {int(kept.sum())} kept, {int(blended.sum())} "
              f"blended, {int(divided.sum())} divided")
    # boundary: a wavelength exactly at original/high is kept (s = 1), exactly at original/low divided (s = 0)
    inv_b = torch.tensor([2 * torch.pi / 8.0, 2 * torch.pi / 32.0], dtype=torch.float64)
    out = ref.llama3_inv_freq(inv_b, 8.0, 1.0, 4.0, 32)
    check(maxdiff(out, torch.stack((inv_b[0], inv_b[1] / 8))) <= 1e-15,
          "llama3 scaling continuous at the blend's ends (wavelength original/high kept, original/low divided)")

    # rope_parameters spellings
    spellings = [
        ({"rope_theta": 5.0, "rope_scaling": {"type": "linear", "factor": 2.0}}, {"rope_type": "linear", "rope_theta": 5.0, "factor": 2.0}),
        ({"rope_theta": 5.0, "rope_scaling": {"rope_type": "linear", "factor": 2.0}}, {"rope_type": "linear", "rope_theta": 5.0, "factor": 2.0}),
        ({"rope_parameters": {"rope_type": "default", "rope_theta": 7.0}}, {"rope_type": "default", "rope_theta": 7.0}),
        ({"rope_theta": 3.0, "rope_scaling": None}, {"rope_type": "default", "rope_theta": 3.0}),
        ({}, {"rope_type": "default", "rope_theta": 10000.0}),
    ]
    bad = [s for s, want in spellings if ref.rope_parameters(s) != want]
    check(not bad, f"rope_theta/rope_scaling ('type' or 'rope_type') and rope_parameters read alike{'' if not bad else f': {bad}'}")

    # qwen3's q_norm/k_norm with weights 1 and eps 0 == L2-normalising each head's q and k times sqrt(head_dim)
    cfg = {"model_type": "qwen3", "hidden_size": 32, "intermediate_size": 16, "num_hidden_layers": 1,
           "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 40,
           "rms_norm_eps": 0.0, "rope_theta": 10000.0, "tie_word_embeddings": True}
    arch = ref.Arch(cfg)
    w = {}
    for k, shape in arch.tensor_shapes().items():
        w[k] = torch.ones(shape) if k.endswith("norm.weight") else 0.3 * torch.randn(shape, generator=gen)
    model = ref.LlamaReference(cfg, w)
    ids = torch.randint(0, 40, (20,), generator=gen)
    got = model.logits(ids)
    # the same model computed here without RMSNorm for q/k: F.normalize(x) * sqrt(d)
    x = w["model.embed_tokens.weight"][ids]
    h = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True))
    p = "model.layers.0.self_attn."
    q = (h @ w[p + "q_proj.weight"].T).view(20, 4, 16)
    k = (h @ w[p + "k_proj.weight"].T).view(20, 2, 16)
    v = (h @ w[p + "v_proj.weight"].T).view(20, 2, 16)
    q = torch.nn.functional.normalize(q, dim=-1) * 4.0
    k = torch.nn.functional.normalize(k, dim=-1) * 4.0
    pos = torch.arange(20)
    q, k = dummy.rope(q.transpose(0, 1), pos), dummy.rope(k.transpose(0, 1), pos)
    heads = []
    for hh in range(4):
        s = (q[hh] @ k[hh // 2].T) / 4.0
        s = s.masked_fill(torch.ones(20, 20, dtype=torch.bool).triu(1), float("-inf"))
        heads.append(torch.softmax(s, -1) @ v[:, hh // 2])
    x = x + torch.cat(heads, dim=-1) @ w[p + "o_proj.weight"].T
    hn = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True))
    m = "model.layers.0.mlp."
    x = x + (torch.nn.functional.silu(hn @ w[m + "gate_proj.weight"].T) * (hn @ w[m + "up_proj.weight"].T)) @ w[m + "down_proj.weight"].T
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True))
    want = x @ w["model.embed_tokens.weight"].T
    check(maxdiff(got, want) <= 1e-5, f"qwen3 with identity q/k norms == per-head L2 normalisation × sqrt(head_dim), "
                                      f"written out separately ({maxdiff(got, want):.2g})")


def compare_config(src_cfg, out_cfg):
    diffs = []
    for key in ARCH_KEYS:
        if key in src_cfg and (key not in out_cfg or out_cfg[key] != src_cfg[key]):
            diffs.append(f"{key}: {src_cfg[key]!r} → {out_cfg.get(key, '(absent)')!r}")
    return diffs


def compare_tensors(src_t, src_d, out_t, out_d):
    diffs = []
    if set(src_t) != set(out_t):
        diffs.append(f"names: missing {sorted(set(src_t) - set(out_t))[:4]}, extra {sorted(set(out_t) - set(src_t))[:4]}")
    for n in sorted(set(src_t) & set(out_t)):
        if src_d[n] != out_d[n]:
            diffs.append(f"{n}: dtype {src_d[n]} → {out_d[n]}")
        elif list(src_t[n].shape) != list(out_t[n].shape):
            diffs.append(f"{n}: shape {list(src_t[n].shape)} → {list(out_t[n].shape)}")
        elif not torch.equal(src_t[n], out_t[n]):
            diffs.append(f"{n}: values differ by up to {maxdiff(src_t[n], out_t[n]):.3g}")
    return diffs


def weight_files(directory):
    names = [f for f in sorted(os.listdir(directory)) if f.endswith(".safetensors") or f == "model.safetensors.index.json"]
    return names + ["config.json"]


def transformers_model(path):
    from transformers import AutoModelForCausalLM
    try:
        model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager")
    except TypeError:
        model = AutoModelForCausalLM.from_pretrained(path)
    return model.float().eval()  # bf16 → fp32 is exact: the stored values, computed in fp32


def transformers_logits(model, ids):
    with torch.no_grad():
        return model(torch.as_tensor(ids).view(1, -1)).logits[0].float()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--retain", default="build/retain")
    ap.add_argument("--reference", choices=["auto", "transformers", "builtin"], default="auto")
    ap.add_argument("--configs", help="comma-separated config names (default: all)")
    ap.add_argument("--list", action="store_true", help="list the configs and exit")
    ap.add_argument("--quick", action="store_true", help="every config at 1 layer (for ctest)")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=64, help="hidden size (a multiple of 16; smollm2 takes 3/4 of it)")
    ap.add_argument("--merges", type=int, default=100, help="BPE merges (the tokenizer has 259 + merges ids)")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--float64", action="store_true", help="the builtin reference computes in float64")
    ap.add_argument("--keep", help="work in this folder and keep it (default: a temporary folder)")
    args = ap.parse_args()
    t_start = time.time()
    if args.quick:
        args.layers = 1
    if args.hidden % 16:
        print("check-llama-parity: --hidden must be a multiple of 16", file=sys.stderr)
        return 2

    vocab, merges = ref.learn_bpe(TEXTS * 3, args.merges)
    configs = make_configs(args.layers, args.hidden, len(vocab))
    if args.list:
        for name, (c, how) in configs.items():
            print(name, json.dumps(how), c["model_type"])
        return 0
    names = list(configs) if not args.configs else [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in configs]
    if unknown:
        print(f"check-llama-parity: unknown config(s) {unknown}; known: {', '.join(configs)}", file=sys.stderr)
        return 2

    reference = args.reference
    transformers_version = None
    if reference in ("auto", "transformers"):
        try:
            import transformers
            transformers_version = transformers.__version__
            reference = "transformers"
        except ImportError:
            if reference == "transformers":
                print("check-llama-parity: transformers is not installed", file=sys.stderr)
                return 2
            reference = "builtin"
    have_retain = os.path.isfile(args.retain) and os.access(args.retain, os.X_OK)

    def hf_can_load(how, config):
        """False for a config this transformers predates (qwen3 before 4.51, rope_parameters before 5)."""
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING
        if config["model_type"] not in CONFIG_MAPPING:
            return False
        return not how.get("v5") or int(transformers_version.split(".")[0]) >= 5

    work = args.keep or tempfile.mkdtemp(prefix="retain-llama-parity-")
    marker = os.path.join(work, ".check-llama-parity")
    if args.keep:  # emptied first, but only when empty or written by this script before
        if os.path.isdir(work) and os.listdir(work) and not os.path.exists(marker):
            print(f"check-llama-parity: --keep {work} is a folder this script did not write; not emptying it", file=sys.stderr)
            return 2
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
    open(marker, "w").close()
    ws = os.path.join(work, "workspace")
    failures, timings = [], []

    def check(ok, what):
        print(("ok    " if ok else "FAIL  ") + what, flush=True)
        if not ok:
            failures.append(what)

    print(f"reference: {reference}{f' (transformers {transformers_version})' if transformers_version else ''}; "
          f"{len(names)} config(s), {args.layers} layer(s), hidden {args.hidden}, tokenizer {len(vocab)} ids; "
          f"tolerance {args.tolerance:g}; in {work}", flush=True)
    t0 = time.time()
    general_self_checks(check)
    timings.append(("reference pieces", time.time() - t0, 0.0))

    gen = torch.Generator().manual_seed(args.seed)
    seqs = [torch.randint(0, len(vocab), (n,), generator=gen) for n in LENGTHS]
    ids_text = "".join(json.dumps(s.tolist()) + "\n" for s in seqs)
    prepared = {}
    for name in names:
        t0 = time.time()
        config, how = configs[name]
        arch = ref.Arch(config)
        torch.manual_seed(args.seed)
        weights = random_weights(arch, torch.Generator().manual_seed(args.seed + 1 + list(configs).index(name)))
        src = os.path.join(work, name, "hf-source")
        weights = save_source(src, config, how, weights, vocab, merges)
        stored = ", ".join(k for k in ("bf16", "shards", "v5") if how.get(k)) or "f32, one file"
        beyond = ""
        if arch.rope["rope_type"] == "llama3":
            omax = arch.rope["original_max_position_embeddings"]
            beyond = f"; positions {omax}..{max(LENGTHS) - 1} lie beyond original_max_position_embeddings {omax}"
        print(f"-- {name}: {config['model_type']}, hidden {arch.hidden}, heads {arch.heads}/{arch.kv_heads}, "
              f"head_dim {arch.head_dim}, rope {arch.rope['rope_type']}, {'tied' if arch.tied else 'untied'}, "
              f"vocab_size {arch.vocab}, {stored}{beyond}", flush=True)
        self_checks(name, config, weights, seqs, args.tolerance, check)
        model = ref.LlamaReference(config, weights, dtype=torch.float64 if args.float64 else torch.float32)
        want = [model.logits(s) for s in seqs]
        if reference == "transformers" and not hf_can_load(how, config):
            print(f"skip  {name}: transformers {transformers_version} does not know this config (model_type "
                  f"{config['model_type']}, or the v5 rope_parameters spelling); the builtin reference stands in")
        elif reference == "transformers":
            try:
                hf = transformers_model(src)
                got = [transformers_logits(hf, s) for s in seqs]
                d = max(maxdiff(g, w) for g, w in zip(got, want))
                check(d <= args.tolerance, f"{name}: AutoModelForCausalLM == builtin reference ({d:.2g})")
                want = got
            except Exception as e:
                check(False, f"{name}: AutoModelForCausalLM.from_pretrained(source): {type(e).__name__}: {e}")
        if reference == "transformers" and name == names[0]:
            try:
                from transformers import AutoTokenizer
                tok = AutoTokenizer.from_pretrained(src)
                round_trip = all(tok.decode(tok.encode(t, add_special_tokens=False)) == t for t in TEXTS)
                check(round_trip, "the source tokenizer loads in AutoTokenizer and decodes what it encodes")
                chat = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
                check(chat == "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
                              "<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
                      "the source chat template renders SmolLM2's ChatML")
            except Exception as e:
                check(False, f"AutoTokenizer on the source: {type(e).__name__}: {e}")
        prepared[name] = (config, how, weights, src, want)
        timings.append((name, time.time() - t0, 0.0))

    if not have_retain:
        print(f"check-llama-parity: {args.retain} is not an executable (build first, or pass --retain): "
              f"the checks against retain did not run; the reference's {'failed' if failures else 'passed'}", file=sys.stderr)
        print(f"reference checks: {len(failures)} failed; {time.time() - t_start:.1f} s; "
              + (f"directories in {work}" if args.keep else "pass --keep DIR to keep the directories"))
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        return 1 if failures else 2

    retain = Runner(args.retain)
    try:
        retain("init", "--workspace", ws)
    except RuntimeError as e:
        check(False, f"retain init: {e}")
        return 1
    for name in names:
        t0, r0 = time.time(), retain.seconds
        config, how, weights, src, want = prepared[name]
        out, out2 = os.path.join(work, name, "hf-export"), os.path.join(work, name, "hf-export-again")
        try:
            print(retain("import", "--from-hf", src, "--name", name, "--workspace", ws).strip())
            logits_file = os.path.join(work, name, "logits.safetensors")
            retain("logits", "--model", os.path.join(ws, "versions", name), "--out", logits_file, stdin=ids_text)
            mine, _, _ = ref.read_safetensors(logits_file)
            worst, shapes_ok = 0.0, True
            per_len = []
            for i, (s, w) in enumerate(zip(seqs, want)):
                got = mine.get(f"logits.{i}")
                if got is None or list(got.shape) != [len(s), config["vocab_size"]]:
                    shapes_ok = False
                    per_len.append(f"{len(s)}: shape {None if got is None else list(got.shape)}")
                    continue
                d = maxdiff(got, w)
                worst = max(worst, d)
                per_len.append(f"{len(s)}: {d:.2g}")
            check(shapes_ok, f"{name}: retain logits has logits.0..{len(seqs) - 1}, each (T, vocab_size {config['vocab_size']})")
            check(shapes_ok and worst <= args.tolerance,
                  f"{name}: imported logits: max |retain − reference| = {worst:.3g} (≤ {args.tolerance:g}; by length {', '.join(per_len)})")
            if how.get("bf16"):
                vt, vd, _ = ref.read_hf_tensors(os.path.join(ws, "versions", name))
                floats = {n: d for n, d in vd.items() if d in ("F32", "F16", "BF16", "F64")}
                check(floats and all(d == "BF16" for d in floats.values()),
                      f"{name}: the version's model.safetensors keeps BF16 ({sorted(set(floats.values()))})")

            retain("export", name, "--hf", out, "--workspace", ws)
            with open(os.path.join(src, "config.json")) as f:
                src_cfg = json.load(f)
            with open(os.path.join(out, "config.json")) as f:
                out_cfg = json.load(f)
            diffs = compare_config(src_cfg, out_cfg)
            check(not diffs, f"{name}: exported config.json keeps every architecture key{'' if not diffs else ': ' + '; '.join(diffs)}")
            st, sd, _ = ref.read_hf_tensors(src)
            ot, od, files = ref.read_hf_tensors(out)
            diffs = compare_tensors(st, sd, ot, od)
            check(not diffs, f"{name}: exported tensors == source ({len(st)} tensors, {sorted(set(sd.values()))}; "
                             f"{', '.join(files)}){'' if not diffs else ': ' + '; '.join(diffs[:5])}")
            _, _, meta = ref.read_safetensors(os.path.join(out, files[0]))
            check(meta.get("format") == "pt", f'{name}: exported safetensors __metadata__ {{"format": "pt"}}')
            missing = [f for f in ("tokenizer.json", "tokenizer_config.json") if not os.path.exists(os.path.join(out, f))]
            same_tok = not missing
            if same_tok:
                with open(os.path.join(src, "tokenizer.json"), encoding="utf-8") as f:
                    a = json.load(f)
                with open(os.path.join(out, "tokenizer.json"), encoding="utf-8") as f:
                    b = json.load(f)
                same_tok = a["model"]["vocab"] == b["model"]["vocab"] and \
                    [m if isinstance(m, str) else " ".join(m) for m in b["model"]["merges"]] == a["model"]["merges"] and \
                    sorted((t["id"], t["content"]) for t in a["added_tokens"]) == \
                    sorted((t["id"], t["content"]) for t in b["added_tokens"])
            check(same_tok, f"{name}: exported tokenizer.json (same vocabulary, merges, added tokens) and tokenizer_config.json"
                            f"{': missing ' + ', '.join(missing) if missing else '' if same_tok else ': tokenizer.json differs'}")
            if reference == "transformers" and hf_can_load(how, config):
                try:
                    hf = transformers_model(out)
                    d = max(maxdiff(transformers_logits(hf, s), w) for s, w in zip(seqs, want))
                    check(d <= args.tolerance, f"{name}: AutoModelForCausalLM.from_pretrained(export) == reference ({d:.2g})")
                except Exception as e:
                    check(False, f"{name}: AutoModelForCausalLM.from_pretrained(export): {type(e).__name__}: {e}")
            else:
                back = ref.LlamaReference(out_cfg, {k: v.float() for k, v in ot.items()})
                d = max(maxdiff(back.logits(s), w) for s, w in zip(seqs, want))
                check(d <= args.tolerance, f"{name}: the builtin reference on the export == on the source ({d:.2g})")

            retain("import", "--from-hf", out, "--name", name + "-again", "--workspace", ws)
            retain("export", name + "-again", "--hf", out2, "--workspace", ws)
            files1, files2 = weight_files(out), weight_files(out2)
            same = files1 == files2
            differing = []
            for f in files1 if same else []:
                with open(os.path.join(out, f), "rb") as x, open(os.path.join(out2, f), "rb") as y:
                    if x.read() != y.read():
                        differing.append(f)
            check(same and not differing, f"{name}: import → export again: {', '.join(files1)} byte-identical"
                  f"{'' if same else f' (files {files1} vs {files2})'}{'' if not differing else ': differ ' + ', '.join(differing)}")
        except RuntimeError as e:  # a retain command failed
            check(False, f"{name}: {e}")
        except Exception as e:  # a file retain should have written is missing or unreadable
            check(False, f"{name}: {type(e).__name__}: {e}")
        timings.append((name + " (retain)", time.time() - t0, retain.seconds - r0))

    total = time.time() - t_start
    print("timings: " + "; ".join(f"{n} {t:.1f} s" + (f" (retain {r:.1f} s)" if r else "") for n, t, r in timings))
    print(f"total {total:.1f} s, of which retain {retain.seconds:.1f} s in {retain.calls} calls")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print("all checks passed" if not failures else f"{len(failures)} check(s) failed")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
