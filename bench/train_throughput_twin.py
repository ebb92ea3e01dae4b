#!/usr/bin/env python3
"""PyTorch (Python) twin of retain's training step, for bench/train_throughput.cpp.

The same model as src/model.cpp (GPT-2: pre-LN blocks, c_attn Linear(C, 3C), the manual causal
attention of retain's LibTorch 1.13 path, GELU tanh, output tied to wte) and the same step as
src/trainer.cpp (masked LM loss summed / trained tokens, backward, clip to global norm 1.0,
AdamW lr 3e-4 with weight decay 0.01 on tensors of dimension >= 2, zero_grad to None), timed over
--steps steps after --warmup steps. Prints one JSON line:
{"tokens_per_s", "ms_per_step", "median_ms_per_step", "threads", "torch", "losses", "grad_norms"}.

With --state FILE (a safetensors file the C++ bench writes: every parameter by its retain name,
and batch.inputs / batch.targets / batch.mask) it starts from those weights and that batch, so
its per-step losses can be compared with retain's. Without it, it initialises as GPT-2 does and
draws a random batch.
"""
import argparse
import contextlib
import json
import math
import os
import statistics
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class CausalSelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n_head = c["n_head"]
        self.c_attn = nn.Linear(c["n_embd"], 3 * c["n_embd"])
        self.c_proj = nn.Linear(c["n_embd"], c["n_embd"])
        self.attn_pdrop = c.get("attn_pdrop", 0.0)
        self.resid_dropout = nn.Dropout(c.get("resid_pdrop", 0.0))

    def forward(self, x):
        B, T, C = x.shape
        D = C // self.n_head
        q, k, v = self.c_attn(x).split(C, 2)
        q = q.view(B, T, self.n_head, D).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, self.n_head, D).transpose(1, 2)
        v = v.view(B, T, self.n_head, D).transpose(1, 2)
        if hasattr(F, "scaled_dot_product_attention"):  # as retain on LibTorch 2.x
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_pdrop if self.training else 0.0,
                                               is_causal=True)
            return self.resid_dropout(self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C)))
        # As retain's causal_attention without scaled_dot_product_attention (LibTorch 1.13).
        att = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(D))
        mask = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        att = att.masked_fill(mask, float("-inf"))
        att = torch.softmax(att, -1)
        if self.training and self.attn_pdrop > 0:
            att = F.dropout(att, self.attn_pdrop, True)
        y = torch.matmul(att, v).transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class Mlp(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_fc = nn.Linear(c["n_embd"], 4 * c["n_embd"])
        self.c_proj = nn.Linear(4 * c["n_embd"], c["n_embd"])
        self.dropout = nn.Dropout(c.get("resid_pdrop", 0.0))

    def forward(self, x):
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        eps = c.get("layer_norm_epsilon", 1e-5)
        self.ln_1 = nn.LayerNorm(c["n_embd"], eps=eps)
        self.attn = CausalSelfAttention(c)
        self.ln_2 = nn.LayerNorm(c["n_embd"], eps=eps)
        self.mlp = Mlp(c)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Gpt(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.wte = nn.Embedding(c["vocab_size"], c["n_embd"])
        self.wpe = nn.Embedding(c["n_positions"], c["n_embd"])
        self.drop = nn.Dropout(c.get("embd_pdrop", 0.0))
        self.h = nn.ModuleList([Block(c) for _ in range(c["n_layer"])])
        self.ln_f = nn.LayerNorm(c["n_embd"], eps=c.get("layer_norm_epsilon", 1e-5))
        std_proj = 0.02 / math.sqrt(2.0 * c["n_layer"])
        with torch.no_grad():
            for name, p in self.named_parameters():
                if "ln_" in name:
                    p.fill_(1.0) if name.endswith(".weight") else p.zero_()
                elif name.endswith(".bias"):
                    p.zero_()
                elif "c_proj.weight" in name:
                    p.normal_(0.0, std_proj)
                else:
                    p.normal_(0.0, 0.02)

    def forward(self, idx):
        T = idx.size(1)
        pos = torch.arange(0, T, dtype=torch.long, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))  # (B, T, C)
        for block in self.h:
            x = block(x)
        return F.linear(self.ln_f(x), self.wte.weight)  # tied output, (B, T, V)


_DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "I32": torch.int32,
           "U8": torch.uint8, "BOOL": torch.bool}


def load_safetensors(path):
    """A minimal safetensors reader (the dtypes the C++ bench writes)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = bytearray(data[8 + n:])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES[e["dtype"]]
        begin, end = e["data_offsets"]
        count = (end - begin) // torch.tensor([], dtype=dtype).element_size()
        t = torch.frombuffer(body, dtype=dtype, count=count, offset=begin) if count else \
            torch.empty(0, dtype=dtype)
        out[name] = t.reshape(e["shape"]).clone()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--model", default=os.path.join(os.path.dirname(__file__), "..", "models",
                                                    "gpt-small"))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="bf16: autocast (CUDA)")
    ap.add_argument("--tf32", action="store_true", help="CUDA: TF32 matrix products")
    ap.add_argument("--state", help="safetensors file with the starting weights and batch")
    ap.add_argument("--json", action="store_true", help="print only the JSON line")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.allow_tf32 = args.tf32
    torch.manual_seed(1234)
    with open(os.path.join(args.model, "config.json")) as f:
        config = json.load(f)
    device = torch.device(args.device)
    model = Gpt(config)
    if args.state:
        state = load_safetensors(args.state)
        inputs, targets, mask = state.pop("batch.inputs"), state.pop("batch.targets"), \
            state.pop("batch.mask")
        model.load_state_dict(state, strict=True)
    else:
        ids = torch.randint(0, config["vocab_size"], (args.batch, args.seq + 1))
        inputs, targets = ids[:, :-1].contiguous(), ids[:, 1:].contiguous()
        mask = torch.ones(args.batch, args.seq)
    model.to(device).train()
    inputs, targets, mask = inputs.to(device), targets.to(device), mask.to(device)
    B, T = inputs.shape

    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.01},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=3e-4, betas=(0.9, 0.999), eps=1e-8, foreach=False)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    losses, grad_norms, step_ms = [], [], []
    t0 = t_step = None
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            sync()
            t0 = t_step = time.perf_counter()
        # CPU-only torch (Debian's 1.13) refuses to build a CUDA autocast context even disabled.
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if args.precision == "bf16"
                    else contextlib.nullcontext())
        with autocast:
            logits = model(inputs)  # (B, T, V)
        per_token = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T),
                                    reduction="none").view(B, T)
        loss = (per_token * mask).sum() / mask.sum()
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        losses.append(loss.item())
        grad_norms.append(norm.item())
        if math.isfinite(losses[-1]) and math.isfinite(grad_norms[-1]):
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step >= args.warmup:
            now = time.perf_counter()  # the .item() reads above have synchronised the step
            step_ms.append(1e3 * (now - t_step))
            t_step = now
    sync()
    seconds = time.perf_counter() - t0
    result = {"tokens_per_s": args.steps * B * T / seconds, "ms_per_step": 1e3 * seconds / args.steps,
              "median_ms_per_step": statistics.median(step_ms),
              "threads": torch.get_num_threads(), "torch": torch.__version__,
              "losses": losses, "grad_norms": grad_norms}
    if not args.json:
        print(f"twin: {result['tokens_per_s']:.0f} tokens/s, {result['ms_per_step']:.1f} ms/step, "
              f"{result['threads']} threads, torch {result['torch']}, last loss {losses[-1]:.4f}",
              file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
