"""Naive Faust contender: what a plain Faust user writes for tokenlord's job.

One agent iterates ``async for value in stream`` — one Kafka message at a
time, no ``take()`` batching — and hands each message to
``py_baseline.PyCore.process`` (the core's job in plain Python: orjson, the
validation rules, per-partition dedupe, hourly/weekly/waste cells with week
closing; ``prompt``/``output`` text counted with tiktoken). The resulting rows —
the same shapes the tokenlord worker writes — are kept in memory (the latest
restatement of each cell) and written with ``tokenlord.store.Store.write_batch``
into a chDB directory every ``--flush-events`` events and every
``--flush-seconds``. Faust acks each message as the agent moves past it (before
the write: a plain agent is not crash-safe, which only flatters it), and the
rejected input goes to the ``rejected`` table but not to a dead-letter topic.

    python benchmarks/_naive_faust.py --brokers H:P --topic T --group G \\
        --chdb DIR --result FILE [--stop-at-end] [--progress FILE]

With ``--stop-at-end`` it stops once it has consumed the end offsets seen at
start and the last flush is written, and writes one JSON object of stats to
``--result``; without it, it runs until SIGTERM (the latency phase), logging
each flush to ``--progress``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

import faust
from _contender import Progress, Rows, Tokenizer, new_stats, start_targets, write_result
from py_baseline import PyCore
from tokenlord.settings import Settings
from tokenlord.store import Store


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True, help="Faust app id = consumer group")
    ap.add_argument("--chdb", required=True, help="chDB data directory (fresh)")
    ap.add_argument("--result", required=True, help="JSON stats written here at the end")
    ap.add_argument("--stop-at-end", action="store_true")
    ap.add_argument("--progress", help="append one JSON line per flush")
    ap.add_argument("--flush-events", type=int, default=20_000)
    ap.add_argument("--flush-seconds", type=float, default=1.0)
    ap.add_argument("--web-port", type=int, default=0)
    args = ap.parse_args()

    settings = Settings.from_env()
    kw = settings.core_kwargs()
    core = PyCore(
        kw["prices"],
        grace_ms=kw["grace_ms"],
        dedupe_horizon_ms=kw["dedupe_horizon_ms"],
        future_tolerance_ms=kw["future_tolerance_ms"],
        max_message_bytes=kw["max_message_bytes"],
        tokenize=Tokenizer(),
    )
    store = Store.connect(f"chdb://{args.chdb}")
    store.init_db()
    targets = start_targets(args.brokers, args.topic) if args.stop_at_end else {}
    progress = Progress(args.progress)

    Path("var").mkdir(exist_ok=True)
    app = faust.App(
        args.group,
        broker=f"kafka://{args.brokers}",
        value_serializer="raw",
        key_serializer="raw",
        consumer_auto_offset_reset="earliest",
        store="memory://",
        web_port=args.web_port,
        datadir="var/faust-naive",
        # The Kafka client settings of the worker's app (streams/app.py), so that
        # the two Faust contenders differ in what they do per message only.
        stream_buffer_maxsize=max(4096, args.flush_events * 2),
        broker_max_poll_records=max(500, args.flush_events),
        broker_commit_every=max(1000, args.flush_events),
        broker_commit_interval=1.0,
        consumer_max_fetch_size=16 * 1024 * 1024,
    )
    topic = app.topic(args.topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    rows = Rows()
    done_up_to: dict[int, int] = {}
    stats = new_stats("naive_faust")
    state = {"stopping": False}

    def flush() -> None:
        if rows.empty():
            return
        t0 = time.perf_counter()
        written = rows.write(store, args.topic)
        stats["write_seconds"] += time.perf_counter() - t0
        stats["last_write_at"] = time.time()
        stats["flushes"] += 1
        for k, n in written.items():
            stats["rows_written"][k] = stats["rows_written"].get(k, 0) + n
        progress.flushed(done_up_to)

    @app.agent(topic, name="naive-events")
    async def events(stream: faust.StreamT[bytes]) -> None:
        async for value in stream:
            msg = stream.current_event.message  # type: ignore[union-attr]
            if stats["first_message_at"] is None:
                stats["first_message_at"] = time.time()
            p, off = msg.partition, msg.offset
            b = core.process([p], [off], [value or b""], int(time.time() * 1000))
            rows.add_py_batch(b)
            stats["messages"] += 1
            stats["events"] += b.accepted + b.duplicates + len(b.rejected)
            stats["rejected"] += len(b.rejected)
            stats["duplicates"] += b.duplicates
            done_up_to[p] = off + 1
            if len(rows) >= args.flush_events:
                flush()

    @app.timer(args.flush_seconds)
    async def flush_every() -> None:
        flush()

    if args.stop_at_end:

        @app.timer(0.1)
        async def stop_when_caught_up() -> None:
            if state["stopping"] or any(done_up_to.get(p, 0) < end for p, end in targets.items()):
                return
            state["stopping"] = True
            flush()
            stats["caught_up_at"] = time.time()
            stats["targets"] = {str(p): o for p, o in targets.items()}
            write_result(args.result, stats)
            os.kill(os.getpid(), signal.SIGTERM)

    else:

        @app.timer(1.0)
        async def write_stats() -> None:
            write_result(args.result, stats)

    worker = faust.Worker(app, loglevel="INFO", quiet=True)
    code = 0
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
    finally:
        if not args.stop_at_end:
            write_result(args.result, stats)
    return code


if __name__ == "__main__":
    sys.exit(main())
