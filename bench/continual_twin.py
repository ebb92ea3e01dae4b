#!/usr/bin/env python3
"""The Python twin of `retain bench continual` (docs/continual-bench.md), in PyTorch.

Same protocols, methods, settings and metrics as src/continual_bench*.cpp, written as a
PyTorch user would: an nn.Sequential MLP, torch.optim.Adam, the EWC penalty as an autograd term,
and the empirical Fisher with one backward pass per example (as the usual reference
implementations do; --fisher batched uses the exact batched formula retain uses instead).
Prints the same summary table as retain, or JSON with --json. Run with Debian's python3-torch:

  /usr/bin/python3 bench/continual_twin.py --protocol permuted --tasks 5 --iters-per-task 200 --seeds 1
"""
import argparse
import gzip
import json
import os
import random
import struct
import sys
import time

import torch
import torch.nn.functional as F

NUM_CLASSES = 10
SUBSET_SEED = 20190415
DEFAULT_LAMBDA = {"permuted": 100.0, "split-task": 10000.0, "split-class": 10000.0}
METHODS = ["naive", "replay", "ewc", "online-ewc", "joint"]


def read_idx(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if data[0] != 0 or data[1] != 0 or data[2] != 8:
        sys.exit(f"{path}: not an IDX file of unsigned bytes")
    k = data[3]
    shape = struct.unpack(">" + "I" * k, data[4:4 + 4 * k])
    t = torch.frombuffer(bytearray(data[4 + 4 * k:]), dtype=torch.uint8)
    return t.reshape(shape)


def load_split(data_dir, split):
    prefix = "train" if split == "train" else "t10k"

    def find(name):
        for candidate in (name + ".gz", name):
            p = os.path.join(data_dir, candidate)
            if os.path.exists(p):
                return p
        sys.exit(f"no {name}[.gz] in {data_dir}")

    x = read_idx(find(prefix + "-images-idx3-ubyte"))
    y = read_idx(find(prefix + "-labels-idx1-ubyte"))
    return x.reshape(x.shape[0], -1).float().div_(255.0), y.long()


def subset(rows, n, seed):
    if n <= 0 or n >= len(rows):
        return rows
    rows = list(rows)
    random.Random(seed).shuffle(rows)
    return sorted(rows[:n])


class Tasks:
    """Rows of each task, pixel permutations (permuted) and allowed outputs (split-task)."""

    def __init__(self, a, train, test, seed):
        self.train, self.test = train, test
        self.perms = self.allowed = None
        self.train_rows, self.test_rows = [], []
        if a.protocol == "permuted":
            rng = random.Random(seed * 7919 + 17)
            d = train[0].shape[1]
            perms = []
            for k in range(a.tasks):
                p = list(range(d))
                if k > 0:
                    rng.shuffle(p)
                perms.append(p)
                self.train_rows.append(subset(range(train[0].shape[0]), a.train_per_task, SUBSET_SEED + k))
                self.test_rows.append(subset(range(test[0].shape[0]), a.test_per_task, SUBSET_SEED + 100 + k))
            self.perms = torch.tensor(perms, dtype=torch.long)
            return
        if a.protocol == "split-task":
            self.allowed = torch.zeros(a.tasks, NUM_CLASSES, dtype=torch.bool)
        for k in range(a.tasks):
            classes = (2 * k, 2 * k + 1)
            for rows, (x, y), off in ((self.train_rows, train, 0), (self.test_rows, test, 100)):
                idx = ((y == classes[0]) | (y == classes[1])).nonzero().view(-1).tolist()
                n = a.train_per_task if off == 0 else a.test_per_task
                rows.append(subset(idx, n, SUBSET_SEED + off + k))
            if self.allowed is not None:
                self.allowed[k, 2 * k:2 * k + 2] = True

    def batch(self, data, refs):
        rows = torch.tensor([r for r, _ in refs], dtype=torch.long)
        task = torch.tensor([t for _, t in refs], dtype=torch.long)
        x = data[0].index_select(0, rows)
        if self.perms is not None:
            x = x.gather(1, self.perms.index_select(0, task))
        allowed = self.allowed.index_select(0, task) if self.allowed is not None else None
        return x, data[1].index_select(0, rows), allowed


def refs_of(rows, first, last):
    return [(r, k) for k in range(first, last + 1) for r in rows[k]]


class Stream:
    def __init__(self, pool, seed):
        self.pool, self.rng, self.pos = list(pool), random.Random(seed), len(pool)

    def next(self, n):
        out = []
        for _ in range(n):
            if self.pos == len(self.pool):
                self.rng.shuffle(self.pool)
                self.pos = 0
            out.append(self.pool[self.pos])
            self.pos += 1
        return out


class Reservoir:
    """Algorithm R (Vitter 1985)."""

    def __init__(self, capacity, seed):
        self.capacity, self.items, self.seen, self.rng = capacity, [], 0, random.Random(seed)

    def offer(self, item):
        self.seen += 1
        if len(self.items) < self.capacity:
            self.items.append(item)
        else:
            j = self.rng.randrange(self.seen)
            if j < self.capacity:
                self.items[j] = item

    def draw(self, k):
        return [self.items[self.rng.randrange(len(self.items))] for _ in range(k)] if self.items else []


def masked(logits, allowed):
    return logits if allowed is None else logits.masked_fill(~allowed, float("-inf"))


def make_model(d, hidden):
    layers, n = [], d
    for h in hidden:
        layers += [torch.nn.Linear(n, h), torch.nn.ReLU()]
        n = h
    layers.append(torch.nn.Linear(n, NUM_CLASSES))
    return torch.nn.Sequential(*layers)


def fisher_loop(model, x, y, allowed):
    """Empirical Fisher, one backward pass per example."""
    params = [p for p in model.parameters()]
    fisher = [torch.zeros_like(p) for p in params]
    for i in range(x.shape[0]):
        model.zero_grad(set_to_none=True)
        a = None if allowed is None else allowed[i:i + 1]
        F.cross_entropy(masked(model(x[i:i + 1]), a), y[i:i + 1]).backward()
        for f, p in zip(fisher, params):
            f.add_(p.grad.pow(2))
    model.zero_grad(set_to_none=True)
    return [f / x.shape[0] for f in fisher]


def fisher_batched(model, x, y, allowed):
    """Empirical Fisher from one pass per batch: Σ_n (g_n x_nᵀ)² = (g²)ᵀ x² per Linear."""
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    fisher = []
    for s in range(0, x.shape[0], 256):
        h, inputs, outputs = x[s:s + 256], [], []
        for m in model:
            if isinstance(m, torch.nn.Linear):
                inputs.append(h.detach())
                h = m(h)
                outputs.append(h)
            else:
                h = m(h)
        a = None if allowed is None else allowed[s:s + 256]
        loss = F.cross_entropy(masked(h, a), y[s:s + 256], reduction="sum")
        grads = torch.autograd.grad(loss, outputs)
        part = []
        for g, inp in zip(grads, inputs):
            part += [g.pow(2).t() @ inp.pow(2), g.pow(2).sum(0)]
        fisher = part if not fisher else [f + p for f, p in zip(fisher, part)]
    assert len(fisher) == 2 * len(linears)
    return [f / x.shape[0] for f in fisher]


def accuracy(model, tasks, k):
    refs = refs_of(tasks.test_rows, k, k)
    correct = 0
    with torch.no_grad():
        for s in range(0, len(refs), 1000):
            x, y, allowed = tasks.batch(tasks.test, refs[s:s + 1000])
            correct += masked(model(x), allowed).argmax(1).eq(y).sum().item()
    return correct / max(1, len(refs))


def run_method(a, method, train, test, seed):
    start = time.perf_counter()
    tasks = Tasks(a, train, test, seed)
    torch.manual_seed(seed)
    model = make_model(train[0].shape[1], a.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    reservoir = Reservoir(a.buffer_size, seed * 104729 + 3)
    anchors = []  # (fisher, theta) per penalty
    lam = a.lam if a.lam is not None and a.lam >= 0 else DEFAULT_LAMBDA[a.protocol]
    acc = []
    for k in range(a.tasks):
        stream = Stream(refs_of(tasks.train_rows, 0 if method == "joint" else k, k), seed * 1000003 + k)
        model.train()
        for _ in range(a.iters_per_task):
            replaying = method == "replay" and reservoir.items
            refs = stream.next(a.batch_size - a.batch_size // 2 if replaying else a.batch_size)
            if method == "replay":
                fresh = list(refs)
                if replaying:
                    refs += reservoir.draw(a.batch_size // 2)
                for r in fresh:
                    reservoir.offer(r)
            x, y, allowed = tasks.batch(train, refs)
            loss = F.cross_entropy(masked(model(x), allowed), y)
            for fisher, theta in anchors:  # EWC: λ/2 Σ F (θ − θ*)²
                loss = loss + lam / 2 * sum((f * (p - t).pow(2)).sum()
                                            for f, p, t in zip(fisher, model.parameters(), theta))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if method in ("ewc", "online-ewc"):
            refs = refs_of(tasks.train_rows, k, k)
            random.Random(seed + 31 * k).shuffle(refs)
            x, y, allowed = tasks.batch(train, refs[:a.fisher_samples])
            model.eval()
            fisher = (fisher_batched if a.fisher == "batched" else fisher_loop)(model, x, y, allowed)
            theta = [p.detach().clone() for p in model.parameters()]
            if method == "online-ewc" and anchors:  # F ← γ F_prev + F_new
                fisher = [a.gamma * fp + f for fp, f in zip(anchors[0][0], fisher)]
                anchors = []
            anchors.append((fisher, theta))
        model.eval()
        acc.append([accuracy(model, tasks, j) for j in range(a.tasks)])
    return {"seed": seed, "accuracy": acc, "seconds": time.perf_counter() - start, **metrics(acc)}


def metrics(acc):
    t = len(acc)
    after = [sum(acc[i][:i + 1]) / (i + 1) for i in range(t)]
    out = {"average_after": after, "final_accuracy": after[-1], "forgetting_max": 0.0,
           "forgetting_last": 0.0, "backward_transfer": 0.0}
    if t > 1:
        out["forgetting_max"] = sum(max(acc[l][j] for l in range(j, t - 1)) - acc[-1][j] for j in range(t - 1)) / (t - 1)
        out["forgetting_last"] = sum(acc[j][j] - acc[-1][j] for j in range(t - 1)) / (t - 1)
        out["backward_transfer"] = -out["forgetting_last"]
    return out


def mean_std(v):
    m = sum(v) / len(v)
    s = (sum((x - m) ** 2 for x in v) / (len(v) - 1)) ** 0.5 if len(v) > 1 else 0.0
    return m, s


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--protocol", default="permuted", choices=list(DEFAULT_LAMBDA))
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--tasks", type=int, default=5)
    p.add_argument("--iters-per-task", type=int, default=1000)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--lambda", dest="lam", type=float, default=None)
    p.add_argument("--gamma", type=float, default=1.0)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--buffer-size", type=int, default=1000)
    p.add_argument("--fisher-samples", type=int, default=1000)
    p.add_argument("--fisher", default="loop", choices=["loop", "batched"])
    p.add_argument("--hidden", default="400,400")
    p.add_argument("--train-per-task", type=int, default=0)
    p.add_argument("--test-per-task", type=int, default=0)
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    a.hidden = [int(h) for h in a.hidden.split(",")]
    methods = a.methods.split(",")
    if any(m not in METHODS for m in methods):
        sys.exit(f"unknown method in {a.methods}")
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    start = time.perf_counter()
    train, test = load_split(a.data_dir, "train"), load_split(a.data_dir, "test")
    results = []
    for m in methods:
        runs = [run_method(a, m, train, test, a.seed + s) for s in range(a.seeds)]
        for r in runs:
            print(f"{m} seed {r['seed']}: final average accuracy {r['final_accuracy']:.4g} ({r['seconds']:.4g} s)",
                  file=sys.stderr)
        results.append((m, runs))
    total = time.perf_counter() - start
    lam = a.lam if a.lam is not None and a.lam >= 0 else DEFAULT_LAMBDA[a.protocol]
    if a.json:
        out = {"protocol": a.protocol, "tasks": a.tasks, "iters_per_task": a.iters_per_task, "seeds": a.seeds,
               "ewc_lambda": lam, "ewc_gamma": a.gamma, "fisher": a.fisher, "seconds": total, "methods": []}
        for m, runs in results:
            entry = {"method": m, "runs": runs}
            for key in ("final_accuracy", "forgetting_max", "forgetting_last", "backward_transfer", "seconds"):
                mean, std = mean_std([r[key] for r in runs])
                entry[key] = {"mean": mean, "std": std}
            out["methods"].append(entry)
        print(json.dumps(out, indent=2))
        return
    print(f"continual benchmark (PyTorch twin): {a.protocol}, {a.tasks} tasks × {a.iters_per_task} iterations, "
          f"batch {a.batch_size}, {a.seeds} seed(s), λ = {lam:g}, γ = {a.gamma:g}, Fisher {a.fisher}")
    print(f"{'method':<11}  {'final avg acc':<15}  {'forgetting max':<15}  {'forgetting last':<15}  "
          f"{'BWT':<16}  time (s)")
    for m, runs in results:
        cells = [mean_std([r[k] for r in runs]) for k in
                 ("final_accuracy", "forgetting_max", "forgetting_last", "backward_transfer")]
        t = mean_std([r["seconds"] for r in runs])
        print(f"{m:<11}  " + "  ".join(f"{c[0]:.3f} ± {c[1]:.3f}".ljust(15 if i < 3 else 16)
                                       for i, c in enumerate(cells)) + f"  {t[0]:.1f} ± {t[1]:.1f}")
    print(f"\ntotal {total:.1f} s")


if __name__ == "__main__":
    main()
