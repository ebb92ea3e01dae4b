"""A Llama-family decoder (llama, qwen2, qwen3, mistral) in plain PyTorch, written from Hugging Face
transformers' modeling code, for scripts/check-llama-parity.py.

What it follows (transformers' modeling_llama.py, modeling_qwen2.py, modeling_qwen3.py,
modeling_mistral.py and modeling_rope_utils.py, v4.45 to v5):
- RMSNorm: x in fp32, x * rsqrt(mean(x^2) + eps), cast back to the activation dtype, then * weight.
- RoPE in the rotate-half layout; inv_freq = 1 / theta^(2i/d) in fp32 over d = head_dim; `linear`
  divides inv_freq by factor; `llama3` is _compute_llama3_parameters (below). cos/sin of
  position * inv_freq in fp32.
- `rope_theta` / `rope_scaling` (v4) and `rope_parameters` (v5) spellings, `type` as the old
  name of `rope_type`, theta 10000 when no key gives one.
- Attention: q/k/v projections (biases: qwen2 always on q/k/v and never on o; llama and qwen3
  `attention_bias` on all four; mistral none), qwen3's q_norm / k_norm (RMSNorm over head_dim,
  each head, before RoPE), GQA by repeating each kv head heads/kv times (query head h reads kv
  head h // (heads/kv)), scores * head_dim^-0.5, causal mask, softmax in fp32, o_proj.
- MLP down(silu(gate(x)) * up(x)) (`mlp_bias` for llama only); pre-norm residual blocks; final
  norm; lm_head, or embed_tokens when tie_word_embeddings.

Also: a KV cache (forward on a chunk after the cached positions), the tensor names and shapes a
Hugging Face directory holds, a safetensors reader/writer (F32, BF16, F16; the `safetensors`
package is not needed) and a byte-level BPE tokenizer writer in SmolLM2's layout.
"""
import collections
import json
import math
import os
import struct

import torch

ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM",
                 "mistral": "MistralForCausalLM"}

# ---------------------------------------------------------------------------------------------
# config.json → the numbers the forward needs


def rope_parameters(config):
    """One dict {rope_type, rope_theta, factor, ...} from either spelling, as transformers v5's
    standardize_rope_params reads them: `rope_parameters` (v5) or `rope_scaling` (v4), `type` as an
    alias of `rope_type`, `rope_theta` inside the dict or at the top level, else 10000."""
    params = dict(config.get("rope_parameters") or config.get("rope_scaling") or {})
    params.setdefault("rope_type", params.get("type", "default"))
    params.pop("type", None)
    if params.get("rope_theta") is None:
        params["rope_theta"] = config.get("rope_theta", 10000.0)
    if params["rope_type"] == "llama3":
        params.setdefault("original_max_position_embeddings", config.get("max_position_embeddings"))
    return params


class Arch:
    """The architecture options of one config.json, with the defaults of transformers' config
    classes for keys a file leaves out."""

    def __init__(self, config):
        mt = config["model_type"]
        if mt not in ARCHITECTURES:
            raise ValueError(f"model_type {mt!r} is not one of {sorted(ARCHITECTURES)}")
        self.model_type = mt
        self.hidden = config["hidden_size"]
        self.intermediate = config["intermediate_size"]
        self.layers = config["num_hidden_layers"]
        self.heads = config["num_attention_heads"]
        self.kv_heads = config.get("num_key_value_heads") or self.heads
        # Qwen3Config's head_dim defaults to 128, not hidden / heads; the others derive it.
        self.head_dim = config.get("head_dim") or (128 if mt == "qwen3" else self.hidden // self.heads)
        self.eps = config.get("rms_norm_eps", 1e-6)
        self.vocab = config["vocab_size"]
        self.tied = bool(config.get("tie_word_embeddings", False))
        if config.get("hidden_act", "silu") != "silu":
            raise ValueError(f"hidden_act {config.get('hidden_act')!r}: only silu")
        attention_bias = bool(config.get("attention_bias", False))
        self.qkv_bias = True if mt == "qwen2" else (attention_bias if mt in ("llama", "qwen3") else False)
        self.o_bias = attention_bias if mt in ("llama", "qwen3") else False
        self.mlp_bias = bool(config.get("mlp_bias", False)) if mt == "llama" else False
        self.qk_norm = mt == "qwen3"
        window = config.get("sliding_window")
        uses_window = (mt == "mistral" and window is not None) or \
            (mt in ("qwen2", "qwen3") and config.get("use_sliding_window", False))
        self.sliding_window = window if uses_window else None
        self.rope = rope_parameters(config)
        if self.heads % self.kv_heads:
            raise ValueError(f"num_attention_heads {self.heads} is not a multiple of num_key_value_heads {self.kv_heads}")

    def tensor_shapes(self):
        """Hugging Face's tensor names → shapes (Linear weights [out, in])."""
        h, d, out = self.hidden, self.head_dim, collections.OrderedDict()
        out["model.embed_tokens.weight"] = [self.vocab, h]
        for l in range(self.layers):
            p = f"model.layers.{l}."
            out[p + "input_layernorm.weight"] = [h]
            for name, rows in (("q_proj", self.heads * d), ("k_proj", self.kv_heads * d), ("v_proj", self.kv_heads * d)):
                out[p + f"self_attn.{name}.weight"] = [rows, h]
                if self.qkv_bias:
                    out[p + f"self_attn.{name}.bias"] = [rows]
            out[p + "self_attn.o_proj.weight"] = [h, self.heads * d]
            if self.o_bias:
                out[p + "self_attn.o_proj.bias"] = [h]
            if self.qk_norm:
                out[p + "self_attn.q_norm.weight"] = [d]
                out[p + "self_attn.k_norm.weight"] = [d]
            out[p + "post_attention_layernorm.weight"] = [h]
            for name, shape in (("gate_proj", [self.intermediate, h]), ("up_proj", [self.intermediate, h]),
                                ("down_proj", [h, self.intermediate])):
                out[p + f"mlp.{name}.weight"] = shape
                if self.mlp_bias:
                    out[p + f"mlp.{name}.bias"] = [shape[0]]
        out["model.norm.weight"] = [h]
        if not self.tied:
            out["lm_head.weight"] = [self.vocab, h]
        return out


# ---------------------------------------------------------------------------------------------
# RoPE


def default_inv_freq(theta, dim):
    # fp32, as transformers: the exponent is an fp32 tensor, theta a Python float
    return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


def llama3_inv_freq(inv_freq, factor, low_freq_factor, high_freq_factor, original_max):
    """_compute_llama3_parameters: wavelengths above original/low are divided by factor, below
    original/high kept, and in between (both ends included) blended with
    s = (original / wavelength - low) / (high - low): (1 - s) * inv/factor + s * inv."""
    low_freq_wavelen = original_max / low_freq_factor
    high_freq_wavelen = original_max / high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (original_max / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    blended = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen)
    return torch.where(medium, blended, scaled)


def inv_freq_for(arch):
    rope = arch.rope
    inv = default_inv_freq(float(rope["rope_theta"]), arch.head_dim)
    kind = rope["rope_type"]
    if kind == "default":
        return inv
    if kind == "linear":
        return inv / rope["factor"]
    if kind == "llama3":
        return llama3_inv_freq(inv, rope["factor"], rope["low_freq_factor"], rope["high_freq_factor"],
                               rope["original_max_position_embeddings"])
    raise ValueError(f"rope_type {kind!r} is not covered by this reference")


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


# ---------------------------------------------------------------------------------------------
# The model

# Deliberate mistakes, to show that the check's tolerance catches each (check-llama-parity.py's
# sensitivity checks). None is the real model.
MUTATIONS = ("rope_unscaled", "llama3_no_blend", "rope_interleaved", "rope_off", "gqa_interleaved", "no_qk_norm",
             "no_qkv_bias", "no_o_bias", "no_mlp_bias", "norm_weight_ignored", "theta_10000", "eps_1e-2")


class LlamaReference:
    def __init__(self, config, tensors, dtype=torch.float32, mutation=None):
        self.arch = a = Arch(config)
        self.dtype, self.mutation = dtype, mutation
        self.w = {k: v.to(dtype) for k, v in tensors.items()}
        if mutation == "theta_10000":
            a.rope = dict(a.rope, rope_theta=10000.0)
        if mutation == "rope_unscaled":
            a.rope = {"rope_type": "default", "rope_theta": a.rope["rope_theta"]}
        self.inv_freq = inv_freq_for(a)  # fp32 always, as transformers
        if mutation == "llama3_no_blend":  # the band between the thresholds left unscaled
            r = a.rope
            base = default_inv_freq(float(r["rope_theta"]), a.head_dim)
            wavelen = 2 * math.pi / base
            self.inv_freq = torch.where(wavelen > r["original_max_position_embeddings"] / r["low_freq_factor"],
                                        base / r["factor"], base)
        self.lm_head = self.w.get("model.embed_tokens.weight") if a.tied else self.w.get("lm_head.weight")

    def rms(self, x, name):
        eps = 1e-2 if self.mutation == "eps_1e-2" else self.arch.eps
        xf = x.to(torch.float32) if self.dtype != torch.float64 else x
        y = (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)
        return y if self.mutation == "norm_weight_ignored" else self.w[name] * y

    def linear(self, x, name):
        y = x @ self.w[name + ".weight"].T
        b = self.w.get(name + ".bias")
        dropped = {"no_qkv_bias": ("q_proj", "k_proj", "v_proj"), "no_o_bias": ("o_proj",),
                   "no_mlp_bias": ("gate_proj", "up_proj", "down_proj")}.get(self.mutation, ())
        if b is not None and name.split(".")[-1] not in dropped:
            y = y + b
        return y

    def rope(self, x, positions):
        """x (heads, T, d), positions (T,) absolute."""
        if self.mutation == "rope_off":
            return x
        freqs = positions.to(torch.float32)[:, None] * self.inv_freq[None, :]  # fp32
        if self.mutation == "rope_interleaved":  # Meta's layout applied to HF-permuted weights
            cos, sin = freqs.cos().to(x.dtype), freqs.sin().to(x.dtype)
            x1, x2 = x[..., 0::2], x[..., 1::2]
            return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
        return x * cos + rotate_half(x) * sin

    @torch.no_grad()
    def forward(self, ids, cache=None):
        """ids: a list or 1-D tensor of T token ids following the cache's positions. Returns
        (logits (T, vocab), cache); cache is a list of (k, v) per layer, (kv_heads, S, d) after RoPE."""
        a = self.arch
        ids = torch.as_tensor(ids, dtype=torch.long).view(-1)
        t = ids.numel()
        start = 0 if not cache else cache[0][0].shape[1]
        positions = torch.arange(start, start + t)
        new_cache = []
        x = self.w["model.embed_tokens.weight"][ids]
        n_rep = a.heads // a.kv_heads
        for l in range(a.layers):
            p = f"model.layers.{l}."
            h = self.rms(x, p + "input_layernorm.weight")
            q = self.linear(h, p + "self_attn.q_proj").view(t, a.heads, a.head_dim)
            k = self.linear(h, p + "self_attn.k_proj").view(t, a.kv_heads, a.head_dim)
            v = self.linear(h, p + "self_attn.v_proj").view(t, a.kv_heads, a.head_dim)
            if a.qk_norm and self.mutation != "no_qk_norm":
                q = self.rms(q, p + "self_attn.q_norm.weight")
                k = self.rms(k, p + "self_attn.k_norm.weight")
            q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
            q, k = self.rope(q, positions), self.rope(k, positions)
            if cache:
                k = torch.cat((cache[l][0], k), dim=1)
                v = torch.cat((cache[l][1], v), dim=1)
            new_cache.append((k, v))
            if self.mutation == "gqa_interleaved":
                kv_of = torch.arange(a.heads) % a.kv_heads
            else:
                kv_of = torch.arange(a.heads) // n_rep
            kk, vv = k[kv_of], v[kv_of]
            scores = (q @ kk.transpose(-1, -2)) * a.head_dim ** -0.5  # (heads, T, S)
            key_pos = torch.arange(kk.shape[1])
            allowed = key_pos[None, :] <= positions[:, None]
            if a.sliding_window is not None:
                allowed &= key_pos[None, :] > positions[:, None] - a.sliding_window
            scores = scores.masked_fill(~allowed, float("-inf"))
            att = torch.softmax(scores.to(torch.float32) if self.dtype != torch.float64 else scores, dim=-1).to(q.dtype)
            y = (att @ vv).transpose(0, 1).reshape(t, a.heads * a.head_dim)
            x = x + self.linear(y, p + "self_attn.o_proj")
            h = self.rms(x, p + "post_attention_layernorm.weight")
            g = torch.nn.functional.silu(self.linear(h, p + "mlp.gate_proj")) * self.linear(h, p + "mlp.up_proj")
            x = x + self.linear(g, p + "mlp.down_proj")
        x = self.rms(x, "model.norm.weight")
        return (x @ self.lm_head.T).to(torch.float32), new_cache

    def logits(self, ids):
        return self.forward(ids)[0]


# ---------------------------------------------------------------------------------------------
# safetensors

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "U8": torch.uint8}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
SAME_SIZE_INT = {torch.bfloat16: torch.int16, torch.float16: torch.int16, torch.float32: torch.int32,
                 torch.float64: torch.int64}


def read_safetensors(path):
    """→ ({name: tensor}, {name: dtype string}, __metadata__)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    tensors, dtypes = {}, {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        dt = DTYPES[entry["dtype"]]
        buf = bytearray(data[8 + n + begin:8 + n + end])
        if not buf:
            t = torch.empty(0, dtype=dt)
        elif dt in SAME_SIZE_INT:  # frombuffer on the integer of the same width, then reinterpret
            t = torch.frombuffer(buf, dtype=SAME_SIZE_INT[dt]).view(dt)
        else:
            t = torch.frombuffer(buf, dtype=dt)
        tensors[name] = t.reshape(entry["shape"]).clone()
        dtypes[name] = entry["dtype"]
    return tensors, dtypes, header.get("__metadata__", {})


def tensor_bytes(t):
    t = t.detach().contiguous().cpu()
    if t.dtype in SAME_SIZE_INT:
        t = t.view(SAME_SIZE_INT[t.dtype])
    return t.numpy().tobytes()


def write_safetensors(path, tensors):
    """Tensors in their own dtypes, names sorted, header padded to 8 bytes, {"format": "pt"}."""
    header, chunks, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        raw = tensor_bytes(t)
        header[name] = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))
    return offset


def write_sharded(directory, tensors, shards):
    """model-0000i-of-0000n.safetensors and model.safetensors.index.json (names split in order)."""
    names = sorted(tensors)
    per = -(-len(names) // shards)
    weight_map, total = {}, 0
    for i in range(shards):
        file = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: tensors[n] for n in names[i * per:(i + 1) * per]}
        total += write_safetensors(os.path.join(directory, file), part)
        weight_map.update({n: file for n in part})
    with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


def read_hf_tensors(directory):
    """All tensors of a Hugging Face directory (one file or an index of shards) → (tensors, dtypes,
    files read)."""
    index = os.path.join(directory, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    tensors, dtypes = {}, {}
    for file in files:
        t, d, _ = read_safetensors(os.path.join(directory, file))
        tensors.update(t)
        dtypes.update(d)
    return tensors, dtypes, files


# ---------------------------------------------------------------------------------------------
# A byte-level BPE tokenizer in SmolLM2's layout (GPT-2's byte alphabet, specials at ids 0-2)

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# SmolLM2-135M-Instruct's chat template (ChatML with a default system message)
CHAT_TEMPLATE = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
                 "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
                 "<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
                 "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
                 "{% endif %}")


def bytes_to_unicode():
    """GPT-2's byte alphabet (openai/gpt-2 encoder.py)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + \
        list(range(ord("\u00ae"), ord("\u00ff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def learn_bpe(texts, num_merges):
    """Specials at 0-2, the 256 byte tokens, then `num_merges` merges learned on `texts` (words split
    on spaces with the space kept in front, as GPT-2 spells them; any merges make a valid BPE)."""
    alphabet = bytes_to_unicode()
    vocab = {s: i for i, s in enumerate(SPECIALS)}
    for b in range(256):
        vocab[alphabet[b]] = len(vocab)
    words = collections.Counter()
    for text in texts:
        for i, word in enumerate(text.split(" ")):
            spelled = "".join(alphabet[b] for b in ((" " if i else "") + word).encode("utf-8"))
            if spelled:
                words[tuple(spelled)] += 1
    merges = []
    for _ in range(num_merges):
        pairs = collections.Counter()
        for word, count in words.items():
            for x, y in zip(word, word[1:]):
                pairs[(x, y)] += count
        if not pairs:
            break
        (x, y), _ = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        merges.append((x, y))
        vocab.setdefault(x + y, len(vocab))
        merged = collections.Counter()
        for word, count in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == x and word[i + 1] == y:
                    out.append(x + y)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += count
        words = merged
    return vocab, merges


def write_tokenizer(directory, vocab, merges, max_length):
    """tokenizer.json, vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json."""
    byte_level = {"add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    added = [{"id": vocab[s], "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for s in SPECIALS]
    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": dict(type="ByteLevel", **byte_level),
        "post_processor": dict(type="ByteLevel", **byte_level),
        "decoder": dict(type="ByteLevel", **byte_level),
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [f"{x} {y}" for x, y in merges]},
    }
    with open(os.path.join(directory, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer, f, ensure_ascii=False, indent=2)
    with open(os.path.join(directory, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(directory, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{x} {y}\n" for x, y in merges))
    config = {
        "add_prefix_space": False,
        "added_tokens_decoder": {str(t["id"]): {k: v for k, v in t.items() if k != "id"} for t in added},
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|im_end|>",
        "unk_token": "<|endoftext|>", "chat_template": CHAT_TEMPLATE, "clean_up_tokenization_spaces": False,
        "model_max_length": max_length, "tokenizer_class": "GPT2Tokenizer", "vocab_size": len(vocab),
    }
    with open(os.path.join(directory, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False, indent=2)
    with open(os.path.join(directory, "special_tokens_map.json"), "w", encoding="utf-8") as f:
        json.dump({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"], "bos_token": "<|im_start|>",
                   "eos_token": "<|im_end|>", "pad_token": "<|im_end|>", "unk_token": "<|endoftext|>"}, f, indent=2)
