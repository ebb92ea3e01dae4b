"""Reference ids for the SentencePiece parity test: python3-sentencepiece's encode.

Usage: python3 sp_encode.py tokenizer.model strings.json out.json
"""
import json
import sys

import sentencepiece


def main():
    sp = sentencepiece.SentencePieceProcessor(model_file=sys.argv[1])
    with open(sys.argv[2], encoding="utf-8") as f:
        strings = json.load(f)
    with open(sys.argv[3], "w", encoding="utf-8") as f:
        json.dump([sp.encode(s) for s in strings], f)


if __name__ == "__main__":
    main()
