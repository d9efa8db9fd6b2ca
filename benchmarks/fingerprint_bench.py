"""Fingerprinting against tokenizing, same corpus, one run: is a gateway's
``tokenlord.fingerprint`` cheap enough for its request path? (goal: >= 10x
faster than counting the same text's tokens, one thread each).

Contenders (the corpus of tokenize_bench.py: code, multilingual prose, chat):
- ``tokenlord.fingerprint``, 1 thread: one call per document (prompt = the
  document), as a gateway does per request;
- ``tokenlord.fingerprints``, batch: all documents in one call (parallel);
- ``count_tokens`` o200k_base, 1 thread / batch: the core's tokenizer on the
  same documents (what the worker does for a text event without counts);
- tiktoken ``encode_ordinary`` o200k_base, 1 thread: the usual tokenizer;
- plain Python (tests/reference.py): the same fingerprint written the obvious
  way, on a slice of the corpus (it is slow).

The prints of the native contenders must equal the plain-Python reference's
on that slice (the run aborts otherwise).

usage: .venv/bin/python benchmarks/fingerprint_bench.py [--mb 8] [--repeat 3] [--ref-mb 0.3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from _common import REPO, machine_info, table, write_json
from tokenize_bench import corpus

sys.path.insert(0, str(REPO / "tests"))
from tiktoken_offline import reference as tiktoken_encoding
from tiktoken_offline import use_offline_cache

SECRET = b"benchmark-organisation-secret"


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """(best, first) of ``repeat`` runs. count_tokens remembers the counts of words
    per thread: its first run over a corpus is the cold figure a gateway sees."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), times[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=8.0, help="corpus size in MB (default 8)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--ref-mb", type=float, default=0.3, help="MB of the corpus for the plain-Python contender")
    args = ap.parse_args()
    use_offline_cache(REPO / "var" / "tiktoken-cache")
    import reference
    import tokenlord
    from tokenlord import _core

    threads = len(os.sched_getaffinity(0))
    docs = corpus(args.mb, args.seed)
    nbytes = sum(len(d.encode()) for d in docs)
    ref_docs: list[str] = []
    while sum(len(d.encode()) for d in ref_docs) < args.ref_mb * 1e6 and len(ref_docs) < len(docs):
        ref_docs.append(docs[len(ref_docs)])
    ref_bytes = sum(len(d.encode()) for d in ref_docs)

    # The native prints equal the plain-Python reference's (same spec, two implementations).
    key = reference.fingerprint_key(SECRET)
    want = [reference.fingerprint_wire(key, reference.fingerprint(key, d, None)) for d in ref_docs]
    if tokenlord.fingerprints([(d, None) for d in ref_docs], secret=SECRET) != want:
        raise SystemExit("native fingerprints differ from tests/reference.py — benchmark void")

    enc = tiktoken_encoding("o200k_base")
    _core.count_tokens(["warm up"], "o200k_base")
    contenders: dict[str, tuple[Callable[[], Any], int]] = {
        "tokenlord.fingerprint, 1 thread": (lambda: [tokenlord.fingerprint(d, None, secret=SECRET) for d in docs],
                                            nbytes),
        f"tokenlord.fingerprints, batch x{threads}": (
            lambda: tokenlord.fingerprints([(d, None) for d in docs], secret=SECRET), nbytes),
        "count_tokens o200k_base, 1 thread": (lambda: [_core.count_tokens([d], "o200k_base") for d in docs], nbytes),
        f"count_tokens o200k_base, batch x{threads}": (lambda: _core.count_tokens(docs, "o200k_base"), nbytes),
        "tiktoken o200k_base, 1 thread": (lambda: [enc.encode_ordinary(d) for d in docs], nbytes),
        "plain Python fingerprint (reference), 1 thread": (
            lambda: [reference.fingerprint(key, d, None) for d in ref_docs], ref_bytes),
    }  # fmt: skip
    results: dict[str, Any] = {}
    for label, (fn, size) in contenders.items():
        repeat = 1 if "plain Python" in label else args.repeat
        secs, first = timed(fn, repeat)
        results[label] = {"seconds": secs, "first_run_seconds": first, "bytes": size, "mb_per_s": size / secs / 1e6,
                          "first_run_mb_per_s": size / first / 1e6}  # fmt: skip
        print(f"{label}: {size / secs / 1e6:.1f} MB/s", file=sys.stderr)
    fp1 = results["tokenlord.fingerprint, 1 thread"]["mb_per_s"]
    ratios = {
        "fingerprint_vs_count_tokens_1_thread": fp1 / results["count_tokens o200k_base, 1 thread"]["mb_per_s"],
        "fingerprint_vs_count_tokens_1_thread_cold": fp1
        / results["count_tokens o200k_base, 1 thread"]["first_run_mb_per_s"],
        "fingerprint_vs_tiktoken_1_thread": fp1 / results["tiktoken o200k_base, 1 thread"]["mb_per_s"],
        "fingerprint_vs_plain_python": fp1 / results["plain Python fingerprint (reference), 1 thread"]["mb_per_s"],
        f"batch_x{threads}_vs_count_tokens_batch": results[f"tokenlord.fingerprints, batch x{threads}"]["mb_per_s"]
        / results[f"count_tokens o200k_base, batch x{threads}"]["mb_per_s"],
    }
    rows = [
        [
            label,
            f"{r['bytes'] / 1e6:.1f} MB",
            f"{r['seconds']:.3f} s",
            f"{r['mb_per_s']:.1f}",
            f"{r['first_run_mb_per_s']:.1f}",
            f"{fp1 / r['mb_per_s']:.1f}x",
        ]
        for label, r in results.items()
    ]
    print(f"{len(docs)} documents, {nbytes / 1e6:.1f} MB, best of {args.repeat}")
    print(table(["contender", "text", "time (best)", "MB/s (best)", "MB/s (first run)", "fingerprint (1 thread) is"],
                rows))  # fmt: skip
    path = write_json(
        "fingerprint.json",
        {
            "benchmark": "fingerprint",
            "machine": machine_info(),
            "parameters": {
                "mb": args.mb,
                "documents": len(docs),
                "bytes": nbytes,
                "repeat": args.repeat,
                "seed": args.seed,
                "threads": threads,
                "reference_bytes": ref_bytes,
            },
            "results": results,
            "ratios": ratios,
            "goal": {
                "fingerprint_vs_count_tokens_1_thread": 10.0,
                "met": ratios["fingerprint_vs_count_tokens_1_thread"] >= 10.0,
            },
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
