#!/usr/bin/env python3
"""Training throughput under a competing CPU load, by thread count and OpenMP wait policy.

Runs the same fine-tuning job (`retain finetune` on a model preset, fixed steps) at 1 thread, 2
threads and retain's default (no --threads), alone and beside a competing load (one busy process
per `--load` core, as another job on a laptop would be), and prints tokens/s for each with its
ratio to one thread under the same load. `--policies` also runs the job with OMP_WAIT_POLICY set
by hand (PASSIVE, ACTIVE), which overrides retain's own choice.

  bench/threads.py [--retain build/retain] [--model models/gpt-small] [--steps 30] [--load 1]
                   [--policies] [--quick] [--json]

--quick (ctest): a few steps of gpt-tiny, so the script cannot rot; its figures mean nothing.
"""
import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def busy():
    x = 0
    while True:
        x += 1


def run_job(a, threads, policy, out):
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    else:
        env.pop("OMP_WAIT_POLICY", None)
    run_dir = os.path.join(out, f"run-{threads}-{policy}-{len(os.listdir(out))}")
    cmd = [a.retain, "finetune", "--model", a.model, "--train", a.data, "--out", os.path.join(run_dir, "model"),
           "--run-dir", run_dir, "--max-steps", str(a.steps), "--batch-size", "8", "--log-every", "1000000",
           "--overwrite"]
    if threads:
        cmd += ["--threads", str(threads)]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    if p.returncode != 0:
        sys.exit(f"threads: {' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    records = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl")) if l.strip()]
    train = [r for r in records if r.get("type") == "train"]
    return train[-1]["tokens_per_s"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--retain", default=os.path.join(ROOT, "build", "retain"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "gpt-small"))
    ap.add_argument("--data", default=os.path.join(ROOT, "data", "support", "release1-train.jsonl"))
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--load", type=int, default=1, help="busy processes beside the job")
    ap.add_argument("--policies", action="store_true")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.model, a.steps = os.path.join(ROOT, "models", "gpt-tiny"), 2
    out = tempfile.mkdtemp(prefix="retain-threads-")
    settings = [(1, ""), (2, ""), (0, "")]
    if a.policies:
        settings += [(2, "PASSIVE"), (2, "ACTIVE"), (0, "ACTIVE")]
    rows = []
    for loaded in (False, True):
        procs = []
        if loaded:
            procs = [multiprocessing.Process(target=busy, daemon=True) for _ in range(a.load)]
            for p in procs:
                p.start()
        try:
            for threads, policy in settings:
                rows.append({"load": a.load if loaded else 0, "threads": threads or "default",
                             "policy": policy or "retain's", "tokens_per_s": run_job(a, threads, policy, out)})
        finally:
            for p in procs:
                p.terminate()
    for r in rows:
        one = next(x for x in rows if x["load"] == r["load"] and x["threads"] == 1 and x["policy"] == "retain's")
        r["vs_one_thread"] = r["tokens_per_s"] / one["tokens_per_s"]
    if a.json:
        print(json.dumps({"model": a.model, "steps": a.steps, "cores": os.cpu_count(), "rows": rows}, indent=2))
    else:
        print(f"{os.path.basename(a.model)}, {a.steps} steps, {os.cpu_count()} cores"
              f"{' (QUICK: figures mean nothing)' if a.quick else ''}")
        print(f"{'busy procs':>10} {'threads':>8} {'wait policy':>12} {'tokens/s':>10} {'vs 1 thread':>12}")
        for r in rows:
            print(f"{r['load']:>10} {str(r['threads']):>8} {r['policy']:>12} {r['tokens_per_s']:>10.0f} "
                  f"{r['vs_one_thread']:>12.2f}")
    subprocess.run(["rm", "-rf", out])


if __name__ == "__main__":
    main()
