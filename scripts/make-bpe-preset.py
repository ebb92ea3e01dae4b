#!/usr/bin/env python3
"""Writes models/gpt-tiny-bpe/: the gpt-tiny architecture with a small byte-level BPE tokenizer
(GPT-2's format: vocab.json + merges.txt) learned on the bundled support data, so that a tutorial
model can be exported as a Hugging Face GPT-2 directory (`retain export --hf`), which the byte
tokenizer of the other presets cannot be. Deterministic: the same data gives the same files.

    scripts/make-bpe-preset.py [--merges 480] [--out models/gpt-tiny-bpe]

The merges are learned the plain way (count adjacent pairs within words, merge the most frequent,
ties by the pair's text), on words split at spaces with GPT-2's Ġ for a leading space; retain's
tokenizer applies GPT-2's own pre-tokenizer and these merges by rank."""
import argparse, collections, glob, json, os, re

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def byte_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def texts():
    for path in sorted(glob.glob(os.path.join(root, "data", "support", "*-train.jsonl"))):
        with open(path, encoding="utf-8") as f:
            for line in f:
                for m in json.loads(line)["messages"]:
                    yield m["content"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--merges", type=int, default=480)
    ap.add_argument("--out", default=os.path.join(root, "models", "gpt-tiny-bpe"))
    a = ap.parse_args()
    b2u = byte_to_unicode()
    words = collections.Counter()
    for text in texts():
        for w in re.findall(r" ?[^\s]+", text):
            words[tuple(b2u[b] for b in w.encode("utf-8"))] += 1
    vocab = {b2u[b]: i for i, b in enumerate(sorted(b2u))}
    merges = []
    for _ in range(a.merges):
        pairs = collections.Counter()
        for w, n in words.items():
            for p in zip(w, w[1:]):
                pairs[p] += n
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        vocab[best[0] + best[1]] = len(vocab)
        merged = collections.Counter()
        for w, n in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            merged[tuple(out)] += n
        words = merged
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(root, "models", "gpt-tiny", "config.json")) as f:
        config = json.load(f)
    # The tokenizer appends its four chat tokens after the largest id: room for them, rounded up.
    config["vocab_size"] = (len(vocab) + 4 + 63) // 64 * 64
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    with open(os.path.join(a.out, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(a.out, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for x, y in merges:
            f.write(f"{x} {y}\n")
    print(f"{a.out}: {len(vocab)} tokens ({len(merges)} merges), vocab_size {config['vocab_size']}")


if __name__ == "__main__":
    main()
