"""Reliability figures: the fault scenarios of tests/chaos.py as a table.

Each scenario sends the generated stream (~2,900 messages: honest traffic,
producer retries and replays, hostile and malformed input, late events, a
backfill older than the dedupe horizon) through ``tokenlord worker`` processes
on a real local Kafka with embedded ClickHouse while something goes wrong —
``kill -9`` at random moments, a self-kill after each write step, a second
consumer-group member joining and leaving, store writes failing, the stream
produced twice and then re-read by a new consumer group, the broker stopping
mid-stream — and compares every public view with the plain-Python reference.

Columns: messages sent, events the reference accepts, events counted, lost
and double-counted (events and leaderboard tokens), rejections, dead letters
missing / redelivered (the DLQ is at-least-once), recovery time (a clean
restart after the faults until it caught up with the end offsets and exited).
Goal: 0 lost, 0 double-counted, views exactly equal, in every scenario.

    .venv/bin/python benchmarks/reliability.py [--seed 1] [--long] [--only kill9 ...]

Then a memory soak of the core (in process, no Kafka): 12 weeks of
counts-only events from 20,000 users (``--long``: 26 weeks, 50,000 users), one
batch per hour of event time; after each week the process RSS and the core's
state size. Closed weeks are dropped and the dedupe memory is bounded by the
horizon, so both must plateau instead of growing with the events.

``--long``: 60 kills instead of 20 and 8 rebalance cycles. The broker runs
from ``var/kafka-reliability`` on 127.0.0.1:29192 and is stopped at the end.
Writes ``benchmarks/results/reliability.json``.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
import chaos  # noqa: E402
import orjson  # noqa: E402
from _common import machine_info, table, write_json  # noqa: E402
from tokenlord import _core  # noqa: E402
from tokenlord.kafka import local  # noqa: E402
from tokenlord.kafka.admin import delete_topics, ensure_topics  # noqa: E402
from tokenlord.time_utils import HOUR_MS, WEEK_MS  # noqa: E402

KAFKA_HOME = REPO / "var" / "kafka-reliability"

SOAK_START_MS = 1_735_516_800_000  # Monday 2024-12-30


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def soak(weeks: int, users: int, per_hour: int, seed: int) -> list[dict[str, Any]]:
    """RSS and core state after each simulated week."""
    rng = random.Random(seed)
    names = [f"user-{i:05d}" for i in range(users)]
    weights = [1 / (i + 1) ** 0.8 for i in range(users)]
    core = _core.Core()
    out = []
    offset = 0
    for week in range(weeks):
        t0 = time.perf_counter()
        events = 0
        for hour in range(7 * 24):
            base = SOAK_START_MS + week * WEEK_MS + hour * HOUR_MS
            who = rng.choices(names, weights, k=per_hour)
            values = [
                orjson.dumps(
                    {
                        "event_id": f"{week}-{hour}-{i}",
                        "ts": base + i * (HOUR_MS // per_hour),
                        "user": u,
                        "model": "gpt-4o",
                        "input_tokens": 500 + i % 700,
                        "output_tokens": 90,
                    }
                )
                for i, u in enumerate(who)
            ]
            parts = [hash(u) % 3 for u in who]
            core.process(parts, list(range(offset, offset + len(values))), values, base + HOUR_MS)
            offset += len(values)
            events += len(values)
        size = core.state_size()
        out.append({"week": week + 1, "events": events, "rss_mb": round(rss_mb(), 1),
                    "seconds": round(time.perf_counter() - t0, 2), **size})  # fmt: skip
        print(f"soak week {week + 1}: rss {out[-1]['rss_mb']} MB, state {size}", file=sys.stderr)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--long", action="store_true", help="60 kills, 8 rebalance cycles")
    ap.add_argument("--only", nargs="+", choices=sorted(chaos.SCENARIOS), help="run these scenarios only")
    ap.add_argument("--port", type=int, default=29192)
    args = ap.parse_args()
    local.start(KAFKA_HOME, port=args.port, controller_port=args.port + 1, timeout=180)
    brokers = f"{local.HOST}:{args.port}"
    created: list[str] = []

    def make_topic(prefix: str, partitions: int = 3) -> str:
        name = f"rel-{prefix}-{uuid.uuid4().hex[:10]}"
        ensure_topics(brokers, {name: partitions})
        created.extend([name, f"{name}.dlq", f"{name}.outcomes"])
        return name

    kwargs: dict[str, dict[str, Any]] = {
        "kill9": {"kills": 60 if args.long else 20},
        "rebalance": {"cycles": 8 if args.long else 3},
    }
    reports = []
    soak_rows = soak(26 if args.long else 12, 50_000 if args.long else 20_000, 1200, args.seed)
    try:
        with tempfile.TemporaryDirectory(prefix="tokenlord-reliability-") as tmp:
            ctx = chaos.Ctx(brokers, KAFKA_HOME, (args.port, args.port + 1), Path(tmp), make_topic, args.seed)
            for name in args.only or list(chaos.SCENARIOS):
                t0 = time.perf_counter()
                report = chaos.SCENARIOS[name](ctx, **kwargs.get(name, {}))
                print(f"{name}: {'ok' if report.ok else 'FAILED'} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
                reports.append((name, report))
    finally:
        try:
            delete_topics(brokers, created)
        finally:
            local.stop(KAFKA_HOME)
    head = ["scenario", "messages", "events (ref)", "counted", "lost", "double-counted", "rejected",
            "DLQ missing / redelivered", "recovery", "views = reference"]  # fmt: skip
    rows = [
        [
            r.scenario,
            f"{r.messages:,}",
            f"{r.events_expected:,}",
            f"{r.events_counted:,}",
            f"{r.lost_events} ev / {r.lost_tokens:,} tok",
            f"{r.extra_events} ev / {r.double_counted_tokens:,} tok",
            f"{sum(r.rejected.values())} ({len(r.rejected)} reasons)",
            f"{r.dlq_missing} / {r.dlq_redelivered}",
            f"{r.recovery_s:.1f} s",
            "yes" if r.views_exact else "NO",
        ]
        for _, r in reports
    ]
    print(table(head, rows, left=1))
    keys = ["week", "events", "rss_mb", "open_weeks", "weekly_cells", "hourly_cells", "dedupe_ids", "waste_users"]
    print(table(keys, [[f"{r[k]:,}" if isinstance(r[k], int) else str(r[k]) for k in keys] for r in soak_rows], left=0))
    path = write_json(
        "reliability.json",
        {
            "benchmark": "reliability",
            "machine": machine_info(),
            "parameters": {"seed": args.seed, "long": args.long, **{k: v for k, v in kwargs.items()}},
            "results": {name: r.as_dict() for name, r in reports},
            "soak": soak_rows,
        },
    )
    print(f"wrote {path}")
    if not all(r.ok for _, r in reports):
        sys.exit(1)


if __name__ == "__main__":
    main()
