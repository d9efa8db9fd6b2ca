"""Throughput of the Rust core against a pure-Python baseline, on the same events.

Contenders, all in one run on one generated stream (counts-only gateway
events, see ``_common.generate_events``):

- ``tokenlord core``: ``tokenlord._core.Core().process(partitions, offsets,
  values, now_ms)`` batch after batch, with all cores (rayon's default pool) and
  on one core (a child process pinned to one CPU with ``RAYON_NUM_THREADS=1``,
  given the same input through a pickle file; it reports the input's digest);
- ``python baseline``: ``py_baseline.PyCore``, the same job in plain Python
  (orjson + dicts).

Each is run on two encodings of the same events: one event per Kafka message,
and JSON arrays of 100 events per message. Only the ``process`` calls are
timed (summed per call); checking the results is not. The script aborts if the
contenders do not produce the same totals (per week and user: requests, input,
output, total and wasted tokens, team, cost; plus accepted, duplicate and
rejection counts).

    .venv/bin/python benchmarks/core_throughput.py [--events 1000000]

Writes ``benchmarks/results/core_throughput.json``. No assertion on speed.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from _common import (
    NOW_MS,
    Stream,
    build_stream,
    digest,
    fmt_rate,
    generate_events,
    machine_info,
    table,
    write_json,
)
from py_baseline import PyCore
from tokenlord._core import Core
from tokenlord.settings import Settings

Key = tuple[int, str]  # (week_start ms, user)
Cell = tuple[int, int, int, int, int, str, float]  # requests, in, out, total, wasted, team, cost


class Totals:
    """What a contender computed, gathered outside the timed calls."""

    def __init__(self) -> None:
        self.weekly: dict[Key, Cell] = {}
        self.accepted = 0
        self.duplicates = 0
        self.rejected: Counter[str] = Counter()
        self.event_tokens = 0

    def add_core(self, b: Any) -> None:
        self.accepted += b.accepted
        self.duplicates += b.duplicates
        self.rejected.update(b.rejected["reason"])
        self.event_tokens += sum(b.events["total_tokens"])
        w = b.weekly
        for row in zip(
            w["week_start"], w["user"], w["requests"], w["input_tokens"], w["output_tokens"],
            w["total_tokens"], w["wasted_tokens"], w["team"], w["cost_usd"], strict=True,
        ):  # fmt: skip
            self.weekly[(row[0], row[1])] = row[2:]

    def add_py(self, b: Any) -> None:
        self.accepted += b.accepted
        self.duplicates += b.duplicates
        self.rejected.update(r[3] for r in b.rejected)
        self.event_tokens += sum(e[12] for e in b.events)
        for _p, wk, user, team, _tts, req, inp, out, total, wasted, cost, _f, _v in b.weekly:
            self.weekly[(wk, user)] = (req, inp, out, total, wasted, team, cost)

    def summary(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": dict(sorted(self.rejected.items())),
            "weekly_cells": len(self.weekly),
            "weeks": sorted({wk for wk, _ in self.weekly}),
            "total_tokens": sum(c[3] for c in self.weekly.values()),
            "event_total_tokens": self.event_tokens,
        }

    def digest(self) -> str:
        rows = sorted((wk, u, *c[:6], round(c[6], 6)) for (wk, u), c in self.weekly.items())
        return digest([json.dumps([rows, self.summary()]).encode()])


def compare(a: Totals, b: Totals, what: str) -> None:
    """Abort unless both contenders computed the same thing."""
    problems = []
    sa, sb = a.summary(), b.summary()
    for k in sa:
        if sa[k] != sb[k]:
            problems.append(f"{k}: {sa[k]} != {sb[k]}")
    keys = a.weekly.keys() | b.weekly.keys()
    bad = 0
    for k in sorted(keys):
        ca, cb = a.weekly.get(k), b.weekly.get(k)
        if ca is None or cb is None or ca[:6] != cb[:6] or not math.isclose(ca[6], cb[6], rel_tol=1e-9, abs_tol=1e-9):
            bad += 1
            if bad <= 5:
                problems.append(f"week/user {k}: {ca} != {cb}")
    if bad:
        problems.append(f"{bad} of {len(keys)} (week, user) cells differ")
    if problems:
        sys.exit(f"ABORT: {what}: the contenders disagree, the benchmark is void:\n  " + "\n  ".join(problems))


def run(
    make: Callable[[], Any],
    add: Callable[[Totals, Any], None],
    stream: Stream,
    batch: int,
    repeat: int,
) -> tuple[list[float], Totals, list[float]]:
    """Process ``stream`` ``repeat`` times with a fresh contender. Returns per-run
    wall seconds (sum of the timed ``process`` calls), the totals of the first
    run, and per-run CPU seconds of the process (all threads) in those calls."""
    times: list[float] = []
    cpu_times: list[float] = []
    totals = Totals()
    p, o, v = stream.partitions, stream.offsets, stream.values
    slices = [(p[i : i + batch], o[i : i + batch], v[i : i + batch])
              for i in range(0, stream.messages, batch)]  # fmt: skip
    for r in range(repeat):
        contender = make()
        gc.collect()
        elapsed = cpu = 0.0
        out = None
        for parts, offs, vals in slices:
            c0 = time.process_time()
            t0 = time.perf_counter()
            out = contender.process(parts, offs, vals, NOW_MS)
            elapsed += time.perf_counter() - t0
            cpu += time.process_time() - c0
            if r == 0:
                add(totals, out)
        del out, contender
        times.append(elapsed)
        cpu_times.append(cpu)
    return times, totals, cpu_times


def core_factory(prices: dict[str, tuple[float, float, float]]) -> Callable[[], Any]:
    kwargs = {**Settings().core_kwargs(), "prices": prices}  # the worker's configuration
    return lambda: Core(**kwargs)


def bench_core(
    streams: dict[int, Stream],
    batches: dict[int, int],
    repeat: int,
    prices: dict[str, tuple[float, float, float]],
) -> dict[int, Any]:
    out = {}
    for per, stream in streams.items():
        out[per] = run(core_factory(prices), Totals.add_core, stream, batches[per], repeat)
    return out


def child_main(args: argparse.Namespace) -> None:
    """One-core run (RAYON_NUM_THREADS=1, pinned): prints one JSON line."""
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})  # before rayon starts its pool: its thread inherits
    with open(args.child, "rb") as f:
        streams = pickle.load(f)
    gc.collect()
    gc.freeze()
    batches = {per: (args.batch if per == 1 else args.array_batch) for per in streams}
    prices = Settings().prices()
    res = bench_core(streams, batches, args.repeat, prices)
    print(
        json.dumps(
            {
                "cpu": cpu,
                "rayon_num_threads": os.environ.get("RAYON_NUM_THREADS"),
                "runs": {
                    str(per): {
                        "input_digest": digest(streams[per].values),
                        "seconds": times,
                        "cpu_seconds": cpu,
                        "totals_digest": totals.digest(),
                    }
                    for per, (times, totals, cpu) in res.items()
                },
            }
        )
    )


def make_streams(args: argparse.Namespace) -> tuple[dict[int, Stream], dict[int, int]]:
    events = generate_events(args.events, args.seed)
    streams = {per: build_stream(events, per) for per in args.per_message}
    del events
    gc.collect()
    gc.freeze()  # the input is immortal: keep the collector off it
    batches = {per: (args.batch if per == 1 else args.array_batch) for per in args.per_message}
    return streams, batches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000, help="events in the stream")
    ap.add_argument("--seed", type=int, default=20250109)
    ap.add_argument(
        "--batch",
        type=int,
        default=20_000,
        help="messages per process() call, one event per message (worker default)",
    )
    ap.add_argument(
        "--array-batch",
        type=int,
        default=1_000,
        help="messages per call with 100 events per message (100k events per call)",
    )
    ap.add_argument("--per-message", type=int, nargs="+", default=[1, 100])
    ap.add_argument("--repeat", type=int, default=2, help="runs of each core contender (best)")
    ap.add_argument("--baseline-repeat", type=int, default=1, help="runs of the Python baseline")
    ap.add_argument("--no-single-core", action="store_true", help="skip the one-core child run")
    ap.add_argument("--child", metavar="STREAMS_PICKLE", help=argparse.SUPPRESS)
    ap.add_argument("--out", default="core_throughput.json")
    args = ap.parse_args()
    if args.child:
        child_main(args)
        return

    info = machine_info()
    started = time.perf_counter()
    print(f"generating {args.events:,} events (seed {args.seed})...", file=sys.stderr)
    streams, batches = make_streams(args)
    prices = Settings().prices()
    cores = len(os.sched_getaffinity(0))

    results: dict[str, Any] = {}
    rows: list[list[str]] = []
    for per, stream in streams.items():
        print(
            f"[{per}/msg] {stream.messages:,} messages, {stream.bytes / 1e6:.0f} MB",
            file=sys.stderr,
        )
    # 1) the core on all cores, 2) the Python baseline — in this process.
    load = {"before_core": list(os.getloadavg())}
    core = bench_core(streams, batches, args.repeat, prices)
    load["before_baseline"] = list(os.getloadavg())
    base: dict[int, Any] = {}
    for per, stream in streams.items():
        print(f"[{per}/msg] python baseline...", file=sys.stderr)
        base[per] = run(lambda: PyCore(prices), Totals.add_py, stream, batches[per], args.baseline_repeat)
        compare(core[per][1], base[per][1], f"{per} event(s) per message")
    # 3) the core on one core, in a child process on the same input.
    single: dict[str, Any] | None = None
    if not args.no_single_core:
        load["before_single_core"] = list(os.getloadavg())
        print("one-core child run (RAYON_NUM_THREADS=1, pinned)...", file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix="tokenlord-bench-") as tmp:
            path = os.path.join(tmp, "streams.pickle")
            with open(path, "wb") as f:
                pickle.dump(streams, f, protocol=pickle.HIGHEST_PROTOCOL)
            cmd = [
                sys.executable,
                __file__,
                "--child",
                path,
                "--batch",
                str(args.batch),
                "--array-batch",
                str(args.array_batch),
                "--repeat",
                str(args.repeat),
            ]
            env = {**os.environ, "RAYON_NUM_THREADS": "1"}
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            sys.exit(f"ABORT: the one-core child failed:\n{out.stderr}")
        single = json.loads(out.stdout.strip().splitlines()[-1])
        for per, stream in streams.items():
            run_ = single["runs"][str(per)]
            if run_["input_digest"] != digest(stream.values):
                sys.exit("ABORT: the one-core child generated a different input")
            if run_["totals_digest"] != core[per][1].digest():
                sys.exit("ABORT: the one-core run computed different totals")
    load["at_end"] = list(os.getloadavg())

    for per, stream in streams.items():
        n = stream.events
        measured: dict[str, tuple[int, list[float], list[float], str]] = {
            "core_all_cores": (cores, core[per][0], core[per][2], "this process, rayon pool"),
            "python_baseline": (1, base[per][0], base[per][2], "this process"),
        }
        if single:
            r1 = single["runs"][str(per)]
            measured["core_one_core"] = (
                1, r1["seconds"], r1["cpu_seconds"],
                f"child process, RAYON_NUM_THREADS=1, pinned to CPU {single['cpu']}",
            )  # fmt: skip
        best = {name: min(m[1]) for name, m in measured.items()}
        contenders = {}
        for name, (threads, secs, cpu, how) in measured.items():
            contenders[name] = {
                "threads": threads,
                "how": how,
                "seconds": secs,
                "cpu_seconds": cpu,
                "events_per_s": n / best[name],
                "mb_per_s": stream.bytes / best[name] / 1e6,
                "events_per_cpu_s": n / min(cpu),
            }
        ratios = {
            f"{name}_vs_python_baseline": best["python_baseline"] / best[name]
            for name in best
            if name != "python_baseline"
        }
        if "core_one_core" in best:
            scaling = best["core_one_core"] / best["core_all_cores"]
            ratios["core_all_cores_vs_core_one_core"] = scaling
        results[f"{per}_per_message"] = {
            "events": n,
            "messages": stream.messages,
            "bytes": stream.bytes,
            "messages_per_call": batches[per],
            "events_per_call": batches[per] * per,
            "input_digest": digest(stream.values),
            "checked_equal": core[per][1].summary(),
            "contenders": contenders,
            "ratios": ratios,
        }
        label = f"{per} event/msg" if per == 1 else f"{per} events/msg"
        names = {
            "core_all_cores": "tokenlord core",
            "core_one_core": "tokenlord core",
            "python_baseline": "python baseline",
        }
        for name in ("core_all_cores", "core_one_core", "python_baseline"):
            if name not in contenders:
                continue
            c = contenders[name]
            rows.append([
                names[name], f"{label}, {batches[per]:,} msg/call", str(c["threads"]),
                f"{best[name]:.2f} s", fmt_rate(c["events_per_s"]), f"{c['mb_per_s']:.0f}",
                fmt_rate(c["events_per_cpu_s"]).replace("/s", "/CPU-s"),
                f"{best['python_baseline'] / best[name]:.1f}x",
            ])  # fmt: skip

    doc = {
        "benchmark": "core_throughput",
        "machine": info,
        "loadavg": load,
        "parameters": {
            "events": args.events,
            "seed": args.seed,
            "per_message": args.per_message,
            "messages_per_call": {str(k): v for k, v in batches.items()},
            "repeat": args.repeat,
            "baseline_repeat": args.baseline_repeat,
            "now_ms": NOW_MS,
            "statistic": "best of the runs; seconds = sum of the timed process() calls "
            "(wall); cpu_seconds = process CPU time (all threads) in those calls",
        },
        "results": results,
        "wall_seconds": time.perf_counter() - started,
    }
    path = write_json(args.out, doc)
    print()
    print(
        table(
            ["contender", "input", "cores", "time", "events/s", "MB/s", "per CPU-s", "vs baseline"],
            rows,
            left=2,
        )
    )
    print()
    la = load["before_core"]
    print(
        f"{info['cpu_model']}, {cores} cores, load {la[0]:.2f}; python {info['python']}, "
        f"tokenlord {info['tokenlord']}; results: {path}"
    )


if __name__ == "__main__":
    main()
