#!/usr/bin/env python3
"""The forgetting trade-off of LoRA rounds against full rounds, on the demo's data.

A base (configs/demo-finetune.json: gpt-tiny on release 1) with its Fisher is imported; then eight
rounds on release 2 start from it, each with the demo round's steps and gate
(configs/demo-round.json): full and LoRA, each naive (no replay, no EWC), with replay (30 %), with
EWC (the config's λ), and with both. A LoRA round with EWC from a full base is anchored by the base's
full Fisher through the adapter's factors (W + s·B·A). The table gives each round's old-set
(release1-unchanged) and new-set (release2) token accuracy, the gate's verdict, its training time
and the size of the version folder.

  bench/lora_forgetting.py [--retain build/retain] [--rank 8] [--lora-lr LR] [--threads N]
                           [--out DIR] [--quick] [--json]

--quick (for ctest): a few examples and steps, so that the script cannot rot; its figures mean
nothing.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "data", "support")


def run(cmd, ok=(0,)):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    if p.returncode not in ok:
        sys.stderr.write(" ".join(cmd) + "\n" + p.stderr[-3000:])
        sys.exit(f"lora_forgetting: command failed with exit {p.returncode}")
    return p.stdout


def head(src, dst, n):
    with open(src) as f, open(dst, "w") as g:
        for i, line in enumerate(f):
            if i >= n:
                break
            g.write(line)
    return dst


def folder_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--retain", default=os.path.join(ROOT, "build", "retain"))
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--lora-lr", type=float, default=None, help="LoRA rounds' lr (default: the round config's)")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("RETAIN_THREADS", "2")))
    ap.add_argument("--out", default=None, help="keep the workspace here (default: a temporary folder)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    out = a.out or tempfile.mkdtemp(prefix="retain-lora-forgetting-")
    os.makedirs(out, exist_ok=True)
    ws = os.path.join(out, "workspace")
    shutil.rmtree(ws, ignore_errors=True)
    shutil.rmtree(os.path.join(out, "base"), ignore_errors=True)
    retain = a.retain
    threads = str(a.threads)
    env_files = {
        "train1": os.path.join(DATA, "release1-train.jsonl"),
        "train2": os.path.join(DATA, "release2-train.jsonl"),
        "old": os.path.join(DATA, "release1-unchanged-test.jsonl"),
        "new": os.path.join(DATA, "release2-test.jsonl"),
    }
    if a.quick:
        env_files = {k: head(v, os.path.join(out, k + ".jsonl"), 24 if k.startswith("train") else 6)
                     for k, v in env_files.items()}

    base = os.path.join(out, "base")
    finetune = [retain, "finetune", "--config", os.path.join(ROOT, "configs", "demo-finetune.json"), "--out", base,
                "--run-dir", os.path.join(out, "run-base"), "--train", env_files["train1"], "--threads", threads,
                "--model", os.path.join(ROOT, "models", "gpt-tiny")]
    finetune += ["--valid", env_files["old"] if a.quick else os.path.join(DATA, "release1-test.jsonl")]
    if a.quick:
        finetune += ["--max-steps", "2"]
    run(finetune)
    run([retain, "fisher", "--model", base, "--data", env_files["train1"], "--samples", "16" if a.quick else "1000"])
    run([retain, "init", "--workspace", ws])
    run([retain, "import", base, "--name", "support-v1", "--replay-data", env_files["train1"], "--workspace", ws])

    config = json.load(open(os.path.join(ROOT, "configs", "demo-round.json")))
    config["gate"]["test_sets"] = {"release1-unchanged": env_files["old"], "release2": env_files["new"]}
    config["ewc"]["num_samples"] = 16 if a.quick else config["ewc"].get("num_samples", 1000)
    if a.quick:
        config["training"].update({"max_steps": 2, "batch_size": 4, "checkpoint_every": 0})
    config_path = os.path.join(out, "round.json")
    json.dump(config, open(config_path, "w"), indent=2)
    lam = config["ewc"]["lambda"]

    rows = []
    for mode in ("full", "lora"):
        for name, ratio, ewc in (("naive", 0.0, 0), ("replay", 0.3, 0), ("ewc", 0.0, lam), ("replay+ewc", 0.3, lam)):
            cmd = [retain, "train", "--config", config_path, "--data", env_files["train2"], "--workspace", ws,
                   "--base", "support-v1", "--no-promote", "--json", "--threads", threads,
                   "--name", f"{mode}-{name.replace('+', '-')}", "--replay-ratio", str(ratio), "--ewc-lambda", str(ewc)]
            if mode == "lora":
                cmd += ["--lora-rank", str(a.rank)]
                if a.lora_lr:
                    cmd += ["--lr", str(a.lora_lr)]
            r = json.loads(run(cmd, ok=(0, 3)))
            scores = {t["test_set"]: t["candidate"]["token_accuracy"] for t in r["test_sets"]}
            base_scores = {t["test_set"]: t["base"] for t in r["test_sets"] if t["metric"] == "token_accuracy"}
            rows.append({"mode": mode, "setting": name, "replay": ratio, "lambda": ewc,
                         "old_token_accuracy": scores["release1-unchanged"], "new_token_accuracy": scores["release2"],
                         "base_old": base_scores.get("release1-unchanged"), "base_new": base_scores.get("release2"),
                         "status": r["status"], "train_seconds": r["training"]["seconds"],
                         "steps": r["training"]["steps"],
                         "version_bytes": folder_bytes(os.path.join(ws, "versions", r["model_id"]))})
    if a.json:
        print(json.dumps({"rank": a.rank, "threads": a.threads, "quick": a.quick, "rows": rows}, indent=2))
    else:
        b = rows[0]
        print(f"base support-v1: old {b['base_old']:.4f}  new {b['base_new']:.4f}  (token accuracy; "
              f"LoRA rank {a.rank}, {a.threads} threads{', QUICK: figures mean nothing' if a.quick else ''})")
        print(f"{'mode':<6} {'setting':<11} {'old acc':>8} {'new acc':>8} {'gate':>10} {'steps':>6} {'train s':>8} "
              f"{'version':>10}")
        for r in rows:
            print(f"{r['mode']:<6} {r['setting']:<11} {r['old_token_accuracy']:>8.4f} {r['new_token_accuracy']:>8.4f} "
                  f"{r['status']:>10} {r['steps']:>6} {r['train_seconds']:>8.1f} {r['version_bytes'] / 1024:>8.0f} KiB")
    if not a.out:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
