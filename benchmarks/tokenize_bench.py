"""Token counting: tokenlord's Rust core against tiktoken, same corpus, one run.

Contenders per encoding (o200k_base, cl100k_base built in; llama3, llama4 loaded
from the ``llama-models`` package's tokenizer.model files):
- tiktoken, 1 thread: ``encode_ordinary`` per document;
- tiktoken, N threads: ``encode_ordinary_batch(docs, num_threads=N)``;
- tokenlord, 1 thread: ``_core.count_tokens([doc], enc)`` per document (a
  one-text call never goes parallel);
- tokenlord, batch: ``_core.count_tokens(docs, enc)`` (rayon over N cores).
Counts must match tiktoken's for every document (the run aborts otherwise).
tiktoken's vocabularies are read offline (tests/tiktoken_offline.py).

(Not named tokenize.py: that would shadow the stdlib module of that name.)

usage: .venv/bin/python benchmarks/tokenize_bench.py [--mb 8] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import REPO, fmt_rate, machine_info, table, write_json

sys.path.insert(0, str(REPO / "tests"))
from tiktoken_offline import ENCODINGS, reference, tokenizer_dir, use_offline_cache


def corpus(megabytes: float, seed: int) -> list[str]:
    """Documents of ~1-20 KB: Python sources (code), synthetic multilingual prose, chat-like text."""
    rng = random.Random(seed)
    docs: list[str] = []
    target = int(megabytes * 1_000_000)
    size = 0
    sources = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
    words = (
        "the model returned a long answer about tokens and costs while the user asked again "
        "naïve Straße façade 東京 日本語のテキスト 中文文本 한국어 😀 👩‍💻 عربى ελληνικά русский 1234 3.14"
    ).split()
    i = 0
    while size < target:
        kind = i % 3
        if kind == 0 and sources:
            text = sources[i // 3 % len(sources)].read_text(errors="replace")[: rng.randrange(1_000, 20_000)]
        elif kind == 1:
            text = " ".join(rng.choice(words) for _ in range(rng.randrange(200, 3000)))
        else:
            turns = [
                f"user: {' '.join(rng.choice(words) for _ in range(40))}\nassistant: " + "ok " * rng.randrange(1, 50)
                for _ in range(rng.randrange(2, 20))
            ]
            text = "\n\n".join(turns)
        docs.append(text)
        size += len(text.encode())
        i += 1
    return docs


def timed(fn: Callable[[], list[int]], repeat: int) -> tuple[float, float, list[int]]:
    """(best, first, result) over ``repeat`` runs. tokenlord remembers the counts of
    multi-token words per thread, so its first run is the cold-cache figure."""
    times: list[float] = []
    out: list[int] = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), times[0], out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=8.0, help="corpus size in MB (default 8)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    use_offline_cache(REPO / "var" / "tiktoken-cache")
    import tiktoken
    from tokenlord import _core

    threads = len(os.sched_getaffinity(0))
    docs = corpus(args.mb, args.seed)
    nbytes = sum(len(d.encode()) for d in docs)
    results: dict[str, Any] = {}
    rows: list[list[str]] = []
    for name in ENCODINGS:
        enc = reference(name)
        tdir = tokenizer_dir(name)
        _core.count_tokens(["warm up"], name, tdir)  # loads a file-backed vocabulary once
        contenders: dict[str, Callable[[], list[int]]] = {
            "tiktoken, 1 thread": lambda enc=enc: [len(enc.encode_ordinary(d)) for d in docs],
            f"tiktoken, encode_ordinary_batch x{threads}": lambda enc=enc: [
                len(t) for t in enc.encode_ordinary_batch(docs, num_threads=threads)
            ],
            "tokenlord, 1 thread": lambda name=name, tdir=tdir: [_core.count_tokens([d], name, tdir)[0] for d in docs],
            f"tokenlord, batch x{threads}": lambda name=name, tdir=tdir: _core.count_tokens(docs, name, tdir),
        }
        res: dict[str, Any] = {}
        expected: list[int] | None = None
        for label, fn in contenders.items():
            secs, first, counts = timed(fn, args.repeat)
            if expected is None:
                expected = counts
            mismatches = sum(a != b for a, b in zip(counts, expected, strict=True))
            if mismatches:
                raise SystemExit(f"{name} / {label}: {mismatches} documents differ from tiktoken — benchmark void")
            res[label] = {
                "seconds": secs,
                "first_run_seconds": first,
                "mb_per_s": nbytes / secs / 1e6,
                "tokens_per_s": sum(counts) / secs,
                "tokens": sum(counts),
                "mismatches": 0,
            }
        base1 = res["tiktoken, 1 thread"]["seconds"]
        baseN = res[f"tiktoken, encode_ordinary_batch x{threads}"]["seconds"]
        res["ratios"] = {
            "tokenlord_1_thread_vs_tiktoken_1_thread": base1 / res["tokenlord, 1 thread"]["seconds"],
            f"tokenlord_batch_vs_tiktoken_batch_x{threads}": baseN / res[f"tokenlord, batch x{threads}"]["seconds"],
            "cold_first_run_1_thread": res["tiktoken, 1 thread"]["first_run_seconds"]
            / res["tokenlord, 1 thread"]["first_run_seconds"],
            f"cold_first_run_batch_x{threads}": res[f"tiktoken, encode_ordinary_batch x{threads}"]["first_run_seconds"]
            / res[f"tokenlord, batch x{threads}"]["first_run_seconds"],
        }
        results[name] = res
        for label in contenders:
            r = res[label]
            same = (
                res["tiktoken, 1 thread"] if "1 thread" in label else res[f"tiktoken, encode_ordinary_batch x{threads}"]
            )
            rows.append(
                [
                    name,
                    label,
                    f"{r['seconds']:.2f} s",
                    f"{r['mb_per_s']:.1f}",
                    fmt_rate(r["tokens_per_s"]),
                    f"{same['seconds'] / r['seconds']:.2f}x",
                    f"{same['first_run_seconds'] / r['first_run_seconds']:.2f}x",
                ]
            )
    print(f"{len(docs)} documents, {nbytes / 1e6:.1f} MB, best of {args.repeat} (cold: first run)")
    head = ["encoding", "contender", "time", "MB/s", "tokens/s", "vs tiktoken (same threads)", "cold"]
    print(table(head, rows, left=2))
    path = write_json(
        "tokenize.json",
        {
            "benchmark": "tokenize",
            "machine": machine_info(),
            "parameters": {
                "mb": args.mb,
                "documents": len(docs),
                "bytes": nbytes,
                "repeat": args.repeat,
                "seed": args.seed,
                "threads": threads,
                "tiktoken": tiktoken.__version__,
            },
            "results": results,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
