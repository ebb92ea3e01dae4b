#!/usr/bin/env python3
"""Checks retain's Hugging Face GPT-2 import and export against a reference implementation.

  scripts/check-hf-parity.py [--retain build/retain] [--reference auto|transformers|builtin]
                             [--layers 4] [--width 256] [--heads 4] [--tolerance 1e-4] [--keep DIR]

1. Builds a randomly initialised GPT-2 (GPT2LMHeadModel from transformers, or with
   --reference builtin a GPT-2 written here from Hugging Face's layout: Conv1D weights [in, out])
   and a small byte-level BPE tokenizer (vocab.json + merges.txt, merges learned here), and saves
   them as a Hugging Face directory (model.safetensors).
2. `retain tokenize` must give the reference tokenizer's ids (transformers only).
3. `retain import --from-hf DIR`, then `retain logits` on a batch of texts: the largest absolute
   difference from the reference's fp32 logits must be at most --tolerance.
4. `retain export ID --hf OUT`, then the reference loads OUT (GPT2LMHeadModel.from_pretrained and
   AutoTokenizer.from_pretrained with transformers): same logits, chat tokens at retain's ids.

Needs PyTorch; transformers for the full check (--reference auto uses it when installed).
Exit status 0 when every check passes, 1 when one fails, 2 when it cannot run.
"""
import argparse
import collections
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

try:
    import torch
except ImportError:
    print("check-hf-parity: PyTorch is not installed", file=sys.stderr)
    sys.exit(2)

TEXTS = [
    "Hello there! How do I reset my password?",
    "The quick brown fox jumps over the lazy dog.",
    "Order #12345 was shipped on 2024-03-01; it'll arrive soon.",
    "  spaces,\tand tabs\nand newlines  ",
    "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u2014 \u65e5\u672c\u8a9e \U0001F600",
    "def f(x):\n    return x ** 2  # squares",
]
CHAT_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
EOT = "<|endoftext|>"


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
    """A byte-level BPE vocabulary: 256 byte tokens, `num_merges` merges learned on `texts` (split
    on spaces only; any merges make a valid tokenizer), then <|endoftext|>."""
    alphabet = bytes_to_unicode()
    vocab = {alphabet[b]: b for b in range(256)}
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
            for a, b in zip(word, word[1:]):
                pairs[(a, b)] += count
        if not pairs:
            break
        (a, b), _ = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        merges.append((a, b))
        vocab.setdefault(a + b, len(vocab))
        merged = collections.Counter()
        for word, count in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += count
        words = merged
    vocab[EOT] = len(vocab)
    return vocab, merges


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    dtypes = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
              "I64": torch.int64, "U8": torch.uint8}
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        buf = bytearray(data[8 + n + begin:8 + n + end])
        t = torch.frombuffer(buf, dtype=dtypes[entry["dtype"]]) if buf else torch.empty(0, dtype=dtypes[entry["dtype"]])
        out[name] = t.reshape(entry["shape"]).clone()
    return out, header.get("__metadata__", {})


def write_safetensors(path, tensors):
    names = sorted(tensors)
    header, chunks, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name in names:
        t = tensors[name].detach().contiguous().to(torch.float32)
        raw = t.numpy().tobytes() if hasattr(t, "numpy") else bytes(t.untyped_storage())
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


class BuiltinGpt2:
    """GPT-2 from a Hugging Face state dict (GPT2LMHeadModel names), as modeling_gpt2 computes it."""

    def __init__(self, state, n_head, eps=1e-5):
        self.s = {k[len("transformer."):] if k.startswith("transformer.") else k: v.float() for k, v in state.items()}
        self.n_head, self.eps = n_head, eps
        self.n_layer = 1 + max(int(k.split(".")[1]) for k in self.s if k.startswith("h."))

    def conv1d(self, x, name):  # Hugging Face's Conv1D: x @ W + b, W [in, out]
        return x @ self.s[name + ".weight"] + self.s[name + ".bias"]

    def ln(self, x, name):
        return torch.nn.functional.layer_norm(x, x.shape[-1:], self.s[name + ".weight"], self.s[name + ".bias"], self.eps)

    @torch.no_grad()
    def logits(self, ids):  # ids (B, T) → (B, T, V)
        b, t = ids.shape
        x = self.s["wte.weight"][ids] + self.s["wpe.weight"][torch.arange(t)]
        c = x.shape[-1]
        mask = torch.ones(t, t, dtype=torch.bool).tril()
        for l in range(self.n_layer):
            p = f"h.{l}."
            q, k, v = self.conv1d(self.ln(x, p + "ln_1"), p + "attn.c_attn").split(c, dim=2)
            q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
            att = (q @ k.transpose(-1, -2)) / (c // self.n_head) ** 0.5
            att = att.masked_fill(~mask, torch.finfo(att.dtype).min).softmax(-1)
            y = (att @ v).transpose(1, 2).reshape(b, t, c)
            x = x + self.conv1d(y, p + "attn.c_proj")
            h = torch.nn.functional.gelu(self.conv1d(self.ln(x, p + "ln_2"), p + "mlp.c_fc"), approximate="tanh")
            x = x + self.conv1d(h, p + "mlp.c_proj")
        return self.ln(x, "ln_f") @ self.s["wte.weight"].T


def run(cmd, stdin=None):
    r = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stderr}")
    return r.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--retain", default="build/retain")
    ap.add_argument("--reference", choices=["auto", "transformers", "builtin"], default="auto")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--positions", type=int, default=128)
    ap.add_argument("--merges", type=int, default=300)
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--keep", help="work in this folder and keep it (default: a temporary folder)")
    args = ap.parse_args()

    reference = args.reference
    if reference in ("auto", "transformers"):
        try:
            import transformers  # noqa: F401
            reference = "transformers"
        except ImportError:
            if reference == "transformers":
                print("check-hf-parity: transformers is not installed", file=sys.stderr)
                return 2
            reference = "builtin"
    if not os.access(args.retain, os.X_OK):
        print(f"check-hf-parity: {args.retain} is not an executable (build first, or pass --retain)", file=sys.stderr)
        return 2
    work = args.keep or tempfile.mkdtemp(prefix="retain-hf-parity-")
    if args.keep:
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
    src, ws, out = (os.path.join(work, d) for d in ("hf-source", "workspace", "hf-export"))
    os.makedirs(src)
    failures = []

    def check(ok, what):
        print(("ok    " if ok else "FAIL  ") + what)
        if not ok:
            failures.append(what)

    torch.manual_seed(0)
    vocab, merges = learn_bpe(TEXTS * 3, args.merges)
    with open(os.path.join(src, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(src, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    config = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": len(vocab),
              "n_positions": args.positions, "n_ctx": args.positions, "n_embd": args.width,
              "n_layer": args.layers, "n_head": args.heads, "activation_function": "gelu_new",
              "layer_norm_epsilon": 1e-5, "bos_token_id": vocab[EOT], "eos_token_id": vocab[EOT]}
    print(f"reference: {reference}; GPT-2 {args.layers} layers × {args.width} wide, vocabulary {len(vocab)}; in {work}")

    if reference == "transformers":
        from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast
        model = GPT2LMHeadModel(GPT2Config(**{k: v for k, v in config.items() if k not in ("model_type", "architectures")})).eval()
        model.save_pretrained(src, safe_serialization=True)
        tokenizer = GPT2TokenizerFast(vocab_file=os.path.join(src, "vocab.json"),
                                      merges_file=os.path.join(src, "merges.txt"))
        tokenizer.save_pretrained(src)
        ids = [tokenizer.encode(t) for t in TEXTS]
        retain_ids = [json.loads(line) for line in run([args.retain, "-q", "tokenize", "--tokenizer", src],
                                                       "\n".join(TEXTS) + "\n").splitlines()]
        check(retain_ids == ids, f"retain tokenize == GPT2TokenizerFast on {len(TEXTS)} texts")

        def reference_logits(ids_tensor):
            with torch.no_grad():
                return model(ids_tensor).logits.float()
    else:
        state = {}
        std = 0.02
        c = args.width
        state["transformer.wte.weight"] = torch.randn(len(vocab), c) * std
        state["transformer.wpe.weight"] = torch.randn(args.positions, c) * 0.01
        for l in range(args.layers):
            p = f"transformer.h.{l}."
            for ln in ("ln_1", "ln_2"):
                state[p + ln + ".weight"] = 1 + 0.1 * torch.randn(c)
                state[p + ln + ".bias"] = 0.1 * torch.randn(c)
            for name, shape in (("attn.c_attn", (c, 3 * c)), ("attn.c_proj", (c, c)),
                                ("mlp.c_fc", (c, 4 * c)), ("mlp.c_proj", (4 * c, c))):
                state[p + name + ".weight"] = torch.randn(*shape) * std
                state[p + name + ".bias"] = torch.randn(shape[1]) * std
        state["transformer.ln_f.weight"] = 1 + 0.1 * torch.randn(c)
        state["transformer.ln_f.bias"] = 0.1 * torch.randn(c)
        write_safetensors(os.path.join(src, "model.safetensors"), state)
        with open(os.path.join(src, "config.json"), "w") as f:
            json.dump(config, f, indent=2)
        hf = BuiltinGpt2(state, args.heads)
        ids = [json.loads(line) for line in run([args.retain, "-q", "tokenize", "--tokenizer", src],
                                                "\n".join(TEXTS) + "\n").splitlines()]
        print("(tokenizer parity needs transformers: skipped with the builtin reference)")

        def reference_logits(ids_tensor):
            return hf.logits(ids_tensor)

    run([args.retain, "-q", "init", "--workspace", ws])
    print(run([args.retain, "-q", "import", "--from-hf", src, "--name", "hf-base", "--workspace", ws]).strip())
    ids_text = "".join(json.dumps(x) + "\n" for x in ids)
    logits_file = os.path.join(work, "logits.safetensors")
    run([args.retain, "-q", "logits", "--model", os.path.join(ws, "versions", "hf-base"), "--out", logits_file], ids_text)
    mine, _ = read_safetensors(logits_file)
    worst = 0.0
    for i, x in enumerate(ids):
        ref = reference_logits(torch.tensor([x]))[0]
        worst = max(worst, (mine[f"logits.{i}"][:, :ref.shape[-1]] - ref).abs().max().item())
    check(worst <= args.tolerance, f"imported logits: max |retain − reference| = {worst:.3g} (≤ {args.tolerance:g})")

    run([args.retain, "-q", "export", "hf-base", "--hf", out, "--workspace", ws])
    exported, metadata = read_safetensors(os.path.join(out, "model.safetensors"))
    check(metadata.get("format") == "pt", '__metadata__ {"format": "pt"}')
    if reference == "transformers":
        back = GPT2LMHeadModel.from_pretrained(out).eval()
        tok = AutoTokenizer.from_pretrained(out)
        chat = "<|user|>Hello there!<|end|><|assistant|>"
        want = run([args.retain, "-q", "tokenize", "--specials", "--tokenizer", out], chat + "\n").strip()
        check(json.dumps(tok.encode(chat)) == want, f"exported tokenizer: chat tokens at retain's ids {want}")
        rendered = tok.apply_chat_template([{"role": "user", "content": "Hello there!"}], tokenize=False,
                                           add_generation_prompt=True)
        check(rendered == chat, "exported chat_template renders retain's template")

        def exported_logits(ids_tensor):
            with torch.no_grad():
                return back(ids_tensor).logits.float()
    else:
        back = BuiltinGpt2(exported, args.heads)
        exported_logits = back.logits
    worst = 0.0
    for x in ids:
        ref = reference_logits(torch.tensor([x]))[0]
        worst = max(worst, (exported_logits(torch.tensor([x]))[0][:, :ref.shape[-1]] - ref).abs().max().item())
    check(worst <= args.tolerance, f"exported model reloaded: max |exported − source| = {worst:.3g}")

    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print("all checks passed" if not failures else f"{len(failures)} check(s) failed")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
