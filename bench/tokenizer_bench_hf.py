"""HF `tokenizers` on the same work as strata_bench_tokenizer (bench/tokenizer_bench.cpp): encode
every line of a text file with a tokenizer.json, without special-token post-processing, and
report tokens per second, one thread and all threads (encode_batch).

    python3 bench/tokenizer_bench_hf.py --tokenizer-model DIR_OR_TOKENIZER_JSON --input FILE [--repeat N]

Prints lines of the same shape as strata's:
    hf tokenizers 1 thread: 1234567 tokens, 8.1 MB in 1.23 s: 1003712 tokens/s, 6.6 MB/s
"""
import argparse
import os
import time

import tokenizers


def report(label, tokens, size, seconds):
    print(f"{label}: {tokens} tokens, {size / 1e6:.1f} MB in {seconds:.2f} s: "
          f"{tokens / seconds:.0f} tokens/s, {size / 1e6 / seconds:.1f} MB/s", flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tokenizer-model", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--repeat", type=int, default=3, help="timed passes; the fastest is reported")
    a = p.parse_args()
    path = a.tokenizer_model
    if os.path.isdir(path):
        path = os.path.join(path, "tokenizer.json")
    t = tokenizers.Tokenizer.from_file(path)
    lines = open(a.input, encoding="utf-8").read().split("\n")
    size = sum(len(line.encode("utf-8")) for line in lines)
    t.encode_batch(lines[:1000], add_special_tokens=False)  # warm up
    best = None
    for _ in range(a.repeat):
        start = time.perf_counter()
        tokens = sum(len(t.encode(line, add_special_tokens=False).ids) for line in lines)
        best = min(best or 1e30, time.perf_counter() - start)
    report(f"hf tokenizers {tokenizers.__version__} 1 thread", tokens, size, best)
    best = None
    for _ in range(a.repeat):
        start = time.perf_counter()
        tokens = sum(len(e.ids) for e in t.encode_batch(lines, add_special_tokens=False))
        best = min(best or 1e30, time.perf_counter() - start)
    report(f"hf tokenizers {tokenizers.__version__} {os.cpu_count()} threads (encode_batch)", tokens, size, best)


if __name__ == "__main__":
    main()
