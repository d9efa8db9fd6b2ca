"""End-to-end throughput of one worker: a real local Kafka → ``tokenlord worker`` → chDB.

For each encoding (one event per message, and JSON arrays of 100 events per
message) of the same generated counts-only events (``_common.generate_events``):

1. produce them with confluent-kafka to a fresh uuid topic with 3 partitions;
2. ``raw consume``: read the whole topic and do nothing with it — with
   confluent-kafka (the ceiling of a Kafka client in Python) and with aiokafka
   (the client Faust consumes through);
3. ``tokenlord worker --stop-at-end`` as a subprocess (fresh consumer group, fresh
   chDB directory): wall time from spawn to exit;
4. check the stored result: ``tokenlord.events`` count and token sum, the
   ``rejected`` count, and the token sums of ``usage_hourly`` and
   ``leaderboard_weekly`` must equal what the core computes for the same
   input; abort otherwise.

The worker's fixed cost (interpreter, imports, chDB and schema setup, Faust
start, group join, shutdown) is measured by one more run on an empty topic and
reported separately; "excluding startup" subtracts it.

    .venv/bin/python benchmarks/e2e_worker.py [--events 300000] [--per-message 1 100]

The broker runs from ``var/kafka-bench`` on 127.0.0.1:29092 (controller 29093)
and is stopped at the end unless ``--keep-kafka``. Writes
``benchmarks/results/e2e_worker.json``. No assertion on speed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    REPO,
    Stream,
    build_stream,
    fmt_rate,
    generate_events,
    machine_info,
    table,
    write_json,
)
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from tokenlord._core import Core
from tokenlord.kafka import local
from tokenlord.kafka.admin import delete_topics, end_offsets, ensure_topics
from tokenlord.settings import Settings

KAFKA_HOME = REPO / "var" / "kafka-bench"
TOKENLORD = REPO / ".venv" / "bin" / "tokenlord"
PARTITIONS = 3
#: INFO, not WARNING: the phases of a run are read from the worker's log lines
#: (a few dozen lines per run, none per message or batch).
LOG_LEVEL = "info"

# Counts and sums the worker's result must match; one query per line.
VERIFY_SQL = {
    "events": "SELECT count() AS n, sum(total_tokens) AS t FROM tokenlord.events",
    "rejected": "SELECT count() AS n FROM tokenlord.rejected",
    "hourly": "SELECT sum(requests) AS n, sum(total_tokens) AS t FROM tokenlord.usage_hourly",
    "weekly": "SELECT sum(requests) AS n, sum(total_tokens) AS t FROM tokenlord.leaderboard_weekly",
}
VERIFY_CODE = """
import json, sys
from tokenlord.store import Store
store = Store.connect(sys.argv[1], "tokenlord")
sql = json.loads(sys.argv[2])
print(json.dumps({k: store.query_rows(q)[0] for k, q in sql.items()}, default=int))
store.close()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def new_topic(brokers: str, prefix: str) -> str:
    name = f"bench-{prefix}-{uuid.uuid4().hex[:12]}"
    ensure_topics(brokers, {name: PARTITIONS})
    return name


# ---- producing ------------------------------------------------------------------


def produce(brokers: str, topic: str, stream: Stream) -> dict[str, Any]:
    """Send the stream (each message to its stream partition); wait for every ack."""
    producer = Producer(
        {
            "bootstrap.servers": brokers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
            "compression.type": "lz4",  # what `tokenlord produce` uses
            "message.max.bytes": 2_000_000,
        }
    )
    errors: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    t0 = time.perf_counter()
    for p, value, key in zip(stream.partitions, stream.values, stream.keys, strict=True):
        while True:
            try:
                producer.produce(topic, value, key, partition=p, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    left = producer.flush(120)
    seconds = time.perf_counter() - t0
    if left or errors:
        sys.exit(f"ABORT: producing failed: {left} messages unsent, errors {errors[:3]}")
    ends = end_offsets(brokers, topic)
    if sum(ends.values()) != stream.messages:
        sys.exit(f"ABORT: topic {topic} holds {sum(ends.values())} messages, not {stream.messages}")
    return {
        "seconds": seconds,
        "messages_per_s": stream.messages / seconds,
        "events_per_s": stream.events / seconds,
        "end_offsets": {str(k): v for k, v in sorted(ends.items())},
    }


# ---- raw consume (the ceiling) ------------------------------------------------------


def raw_consume_confluent(brokers: str, topic: str, stream: Stream) -> dict[str, Any]:
    """Read the whole topic from the beginning and do nothing with the messages."""
    ends = end_offsets(brokers, topic)
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": f"bench-raw-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
        }
    )
    remaining, nbytes = sum(ends.values()), 0
    t0 = time.perf_counter()
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
    deadline = time.monotonic() + 300
    while remaining > 0:
        if time.monotonic() > deadline:
            sys.exit(f"ABORT: raw consume (confluent) timed out, {remaining} messages left")
        # Ask for no more than what is left: consume() waits for a full batch.
        for m in consumer.consume(num_messages=min(10_000, remaining), timeout=1.0):
            err = m.error()
            if err is not None and err.code() != KafkaError._PARTITION_EOF:
                sys.exit(f"ABORT: raw consume (confluent): {err}")
            if err is None:
                remaining -= 1
                nbytes += len(m.value() or b"")
    seconds = time.perf_counter() - t0
    consumer.close()
    return _rates(seconds, stream, nbytes)


def raw_consume_aiokafka(brokers: str, topic: str, stream: Stream) -> dict[str, Any]:
    """The same with aiokafka, the client Faust's consumer is built on (same fetch
    size and max records per poll as the worker's Faust app)."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition as AioTP

    ends = end_offsets(brokers, topic)
    batch = Settings().batch_size

    async def go() -> tuple[float, int]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=brokers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=16 * 1024 * 1024,
            fetch_max_bytes=16 * 1024 * 1024,
        )
        await consumer.start()
        try:
            remaining, nbytes = sum(ends.values()), 0
            t0 = time.perf_counter()
            consumer.assign([AioTP(topic, p) for p in ends])
            await consumer.seek_to_beginning()
            deadline = time.monotonic() + 300
            while remaining > 0:
                if time.monotonic() > deadline:
                    sys.exit(f"ABORT: raw consume (aiokafka) timed out, {remaining} left")
                got = await consumer.getmany(timeout_ms=1000, max_records=max(500, batch))
                for msgs in got.values():
                    remaining -= len(msgs)
                    nbytes += sum(len(m.value or b"") for m in msgs)
            return time.perf_counter() - t0, nbytes
        finally:
            await consumer.stop()

    seconds, nbytes = asyncio.run(go())
    return _rates(seconds, stream, nbytes)


def _rates(seconds: float, stream: Stream, nbytes: int) -> dict[str, Any]:
    return {
        "seconds": seconds,
        "messages_per_s": stream.messages / seconds,
        "events_per_s": stream.events / seconds,
        "mb_per_s": nbytes / seconds / 1e6,
    }


# ---- the worker ------------------------------------------------------------------


class ThreadCpu:
    """Samples the CPU time of every thread of a process from /proc (Linux), so a
    run can say which thread was busy: the main thread (Faust's event loop), the
    others (the pipeline thread with the core and the store, aiokafka's thread,
    chDB's threads, grouped by their OS thread name)."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid = pid
        self.interval = interval
        self.ticks: dict[int, tuple[str, int]] = {}  # tid -> (name, utime + stime)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._hz = os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> ThreadCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        try:
            tids = os.listdir(f"/proc/{self.pid}/task")
        except OSError:
            return
        for tid in tids:
            try:
                with open(f"/proc/{self.pid}/task/{tid}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            self.ticks[int(tid)] = (name, int(fields[11]) + int(fields[12]))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def summary(self) -> dict[str, Any]:
        main = self.ticks.get(self.pid, ("", 0))[1] / self._hz
        by_name: dict[str, float] = {}
        for tid, (name, ticks) in self.ticks.items():
            if tid != self.pid:
                by_name[name] = by_name.get(name, 0.0) + ticks / self._hz
        top = dict(sorted(by_name.items(), key=lambda kv: -kv[1])[:8])
        return {
            "main_thread_cpu_s": main,
            "other_threads_cpu_s": sum(by_name.values()),
            "other_threads_by_name_cpu_s": top,
            "threads_seen": len(self.ticks),
        }


_LOG_TS = r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\] \[\d+\] \[INFO\] "
READY_RE = re.compile(_LOG_TS + r"\[\^Worker\]: Ready", re.M)
FIRST_BATCH_RE = re.compile(_LOG_TS + r"partition \d+ restored", re.M)
CAUGHT_UP_RE = re.compile(_LOG_TS + r"caught up with the end offsets", re.M)


def _log_time(m: re.Match[str] | None) -> float | None:
    if m is None:
        return None
    # The worker logs local time with milliseconds.
    return dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def run_worker(
    brokers: str,
    topic: str,
    workdir: Path,
    timeout: float,
    *,
    noop: bool = False,
    noop_max_messages: int = 0,
) -> dict[str, Any]:
    """``tokenlord worker --stop-at-end`` on ``topic`` (``noop``: ``_faust_noop.py``,
    the same Faust app without the pipeline). Wall time spawn → exit, and the
    phases, from the INFO log lines: spawn → ready (Faust's "Worker: Ready", logged
    once the partitions are assigned and the fetcher runs), ready → caught up
    (the "caught up" line: everything before the end offsets is written and
    committed), caught up → exit. Also the first batch (a partition's state is
    restored right before its first batch is processed)."""
    # The Faust app's datadir is ``var/faust`` relative to the working directory
    # and Faust creates only its last component.
    (workdir / "var").mkdir(parents=True, exist_ok=True)
    suffix = uuid.uuid4().hex[:12]
    url = f"chdb://{workdir / 'chdb'}"
    env = {
        **os.environ,
        "TOKENLORD_KAFKA_BROKERS": brokers,
        "TOKENLORD_EVENTS_TOPIC": topic,
        "TOKENLORD_DLQ_TOPIC": f"{topic}.dlq",
        "TOKENLORD_OUTCOMES_TOPIC": f"bench-outcomes-{suffix}",
        "TOKENLORD_GROUP_ID": f"bench-{suffix}",
        "TOKENLORD_CLICKHOUSE_URL": url,
        "TOKENLORD_WEB_PORT": str(free_port()),
        "TOKENLORD_LOG_LEVEL": LOG_LEVEL,
    }
    cmd = [str(TOKENLORD), "worker", "--stop-at-end"]
    if noop:
        cmd = [sys.executable, str(Path(__file__).resolve().parent / "_faust_noop.py")]
        env["BENCH_NOOP_MAX_MESSAGES"] = str(noop_max_messages)
    log_path = workdir / "worker.log"
    with open(log_path, "wb") as log:
        spawned = time.time()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
        try:
            with ThreadCpu(proc.pid) as cpu:
                rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(20)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            rc = None
        seconds = time.perf_counter() - t0
    text = log_path.read_text(errors="replace")
    if rc != 0:
        sys.exit(f"ABORT: {cmd[-1]} exited with {rc} after {seconds:.1f}s; log tail:\n"
                 f"{text[-4000:]}")  # fmt: skip
    if noop:
        # Faust redirects stdout into its log: find the JSON object in a log line.
        found = re.search(r'\{"first_batch".*?\}', text)
        if found is None:
            sys.exit(f"ABORT: _faust_noop.py printed no result; log tail:\n{text[-4000:]}")
        marks = json.loads(found.group(0))
        first, caught_up = marks["first_batch"], marks["caught_up"]
        messages = marks["messages"]
    else:
        messages = None
        first = _log_time(FIRST_BATCH_RE.search(text))
        caught_up = _log_time(CAUGHT_UP_RE.search(text))
    ready = _log_time(READY_RE.search(text))
    phases = None
    if ready is not None and caught_up is not None:
        phases = {
            "spawn_to_ready": ready - spawned,
            "ready_to_caught_up": caught_up - ready,
            "caught_up_to_exit": spawned + seconds - caught_up,
            "ready_to_first_batch": None if first is None else first - ready,
        }
    return {
        "seconds": seconds,
        "phases": phases,
        "messages_taken": messages,
        "cpu": cpu.summary(),
        "url": url,
        "topics": [topic, env["TOKENLORD_DLQ_TOPIC"], env["TOKENLORD_OUTCOMES_TOPIC"]],
        "log": str(log_path),
    }


def stored(url: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", VERIFY_CODE, url, json.dumps(VERIFY_SQL)],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    if out.returncode != 0:
        sys.exit(f"ABORT: reading the result failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def expected(stream: Stream) -> dict[str, Any]:
    """What the worker must store: the core on the same messages, per-partition order."""
    core = Core(**Settings().core_kwargs())
    now_ms = int(time.time() * 1000)
    n = tokens = rejected = 0
    step = 20_000
    for i in range(0, stream.messages, step):
        b = core.process(
            stream.partitions[i : i + step],
            stream.offsets[i : i + step],
            stream.values[i : i + step],
            now_ms,
        )
        n += b.accepted
        tokens += sum(b.events["total_tokens"])
        rejected += len(b.rejected["reason"])
    return {
        "events": {"n": n, "t": tokens},
        "rejected": {"n": rejected},
        "hourly": {"n": n, "t": tokens},
        "weekly": {"n": n, "t": tokens},
    }


# ---- main ------------------------------------------------------------------------


def rate_row(name: str, label: str, secs: float, stream: Stream, messages: int | None,
             ceiling: float | None) -> list[str]:  # fmt: skip
    m = stream.messages if messages is None else messages
    n = m * stream.events / stream.messages
    mb = stream.bytes / 1e6 * m / stream.messages
    vs = f"{n / secs / ceiling:.2f}" if ceiling else ""
    return [name, label, f"{secs:.1f} s", fmt_rate(m / secs), fmt_rate(n / secs),
            f"{mb / secs:.0f}", vs]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=300_000, help="events per run")
    ap.add_argument("--per-message", type=int, nargs="+", default=[1, 100])
    ap.add_argument("--seed", type=int, default=20250109)
    ap.add_argument("--port", type=int, default=29092)
    ap.add_argument("--controller-port", type=int, default=29093)
    ap.add_argument("--keep-kafka", action="store_true", help="leave the broker running")
    ap.add_argument("--keep-data", action="store_true", help="keep topics and chDB dirs")
    ap.add_argument("--no-aiokafka", action="store_true", help="skip the aiokafka raw consume")
    ap.add_argument("--no-faust-noop", action="store_true", help="skip the no-op Faust agent")
    ap.add_argument(
        "--noop-messages",
        type=int,
        default=100_000,
        help="messages the no-op Faust agent reads (0: the whole topic)",
    )
    ap.add_argument("--timeout", type=float, default=600, help="max seconds per worker run")
    ap.add_argument("--out", default="e2e_worker.json")
    args = ap.parse_args()

    info = machine_info()
    started = time.perf_counter()
    load: dict[str, list[float]] = {"at_start": list(os.getloadavg())}
    t0 = time.perf_counter()
    msg = local.start(KAFKA_HOME, port=args.port, controller_port=args.controller_port, timeout=180)
    kafka_start = time.perf_counter() - t0
    print(msg, file=sys.stderr)
    brokers = f"{local.HOST}:{args.port}"
    topics: list[str] = []
    tmp = tempfile.mkdtemp(prefix="tokenlord-e2e-")
    results: dict[str, Any] = {}
    rows: list[list[str]] = []
    notes: list[str] = []
    try:
        print(f"generating {args.events:,} events (seed {args.seed})...", file=sys.stderr)
        events = generate_events(args.events, args.seed)

        # The fixed cost of a worker run: an empty topic.
        empty = new_topic(brokers, "empty")
        topics.append(empty)
        print("worker on an empty topic (startup + shutdown)...", file=sys.stderr)
        load["before_startup_run"] = list(os.getloadavg())
        startup = run_worker(brokers, empty, Path(tmp) / "empty", args.timeout)
        topics += startup["topics"][1:]
        startup_s = startup["seconds"]
        results["startup_only"] = {"seconds": startup_s, "topic": empty, "cpu": startup["cpu"]}

        for per in args.per_message:
            stream = build_stream(events, per)
            label = "1 event/msg" if per == 1 else f"{per} events/msg"
            key = f"{per}_per_message"
            topic = new_topic(brokers, f"events{per}")
            topics.append(topic)
            print(f"[{label}] producing {stream.messages:,} messages...", file=sys.stderr)
            prod = produce(brokers, topic, stream)
            want = expected(stream)
            n, m = stream.events, stream.messages

            load[f"before_raw_{per}"] = list(os.getloadavg())
            print(f"[{label}] raw consume...", file=sys.stderr)
            raw = {"confluent_kafka": raw_consume_confluent(brokers, topic, stream)}
            if not args.no_aiokafka:
                raw["aiokafka"] = raw_consume_aiokafka(brokers, topic, stream)
            ceiling = raw["confluent_kafka"]["events_per_s"]
            for name, r in raw.items():
                rows.append(rate_row(f"raw consume, {name.replace('_', '-')}", label,
                                     r["seconds"], stream, None, None))  # fmt: skip

            noop = None
            if not args.no_faust_noop:
                load[f"before_noop_{per}"] = list(os.getloadavg())
                print(f"[{label}] no-op Faust agent...", file=sys.stderr)
                nw = run_worker(brokers, topic, Path(tmp) / f"noop{per}", args.timeout,
                                noop=True, noop_max_messages=args.noop_messages)  # fmt: skip
                topics += nw["topics"][1:]
                busy = nw["phases"]["ready_to_caught_up"]
                taken = nw["messages_taken"]
                noop = {
                    "seconds": nw["seconds"],
                    "phases": nw["phases"],
                    "messages_taken": taken,
                    "messages_per_s_ready_to_caught_up": taken / busy,
                    "events_per_s_ready_to_caught_up": taken * n / m / busy,
                    "cpu": nw["cpu"],
                }
                rows.append(rate_row("faust no-op agent, ready → caught up", label,
                                     busy, stream, taken, ceiling))  # fmt: skip

            load[f"before_worker_{per}"] = list(os.getloadavg())
            print(f"[{label}] tokenlord worker --stop-at-end...", file=sys.stderr)
            w = run_worker(brokers, topic, Path(tmp) / f"run{per}", args.timeout)
            topics += w["topics"][1:]
            got = stored(w["url"])
            if got != want:
                sys.exit(f"ABORT: [{label}] wrong stored result:\n  got  {got}\n  want {want}")
            secs = w["seconds"]
            net = secs - startup_s
            busy = w["phases"]["ready_to_caught_up"] if w["phases"] else None
            results[key] = {
                "events": n,
                "messages": m,
                "bytes": stream.bytes,
                "topic": topic,
                "produce": prod,
                "raw_consume": raw,
                "faust_noop": noop,
                "worker": {
                    "seconds": secs,
                    "events_per_s": n / secs,
                    "messages_per_s": m / secs,
                    "seconds_minus_startup_run": net,
                    "events_per_s_minus_startup_run": n / net if net > 0 else None,
                    "phases": w["phases"],
                    "events_per_s_ready_to_caught_up": n / busy if busy else None,
                    "cpu": w["cpu"],
                },
                "verified": got,
                "ratios": {
                    **{f"worker_vs_raw_{k}": n / secs / v["events_per_s"] for k, v in raw.items()},
                    **({"worker_processing_vs_faust_noop": (n / busy) / noop[
                        "events_per_s_ready_to_caught_up"]} if noop and busy else {}),
                },
            }  # fmt: skip
            rows.append(rate_row("tokenlord worker, total wall", label, secs, stream, None,
                                 ceiling))  # fmt: skip
            if net > 0:
                rows.append(rate_row("tokenlord worker, minus empty-topic run", label, net,
                                     stream, None, ceiling))  # fmt: skip
            if busy:
                rows.append(rate_row("tokenlord worker, ready → caught up", label, busy,
                                     stream, None, ceiling))  # fmt: skip
        load["at_end"] = list(os.getloadavg())
    finally:
        if not args.keep_data:
            with contextlib.suppress(Exception):
                delete_topics(brokers, sorted(set(topics)))  # a repeated name crashes librdkafka
            subprocess.run(["rm", "-rf", tmp], check=False)
        if not args.keep_kafka:
            print(local.stop(KAFKA_HOME), file=sys.stderr)

    notes.append(f"worker startup + shutdown on an empty topic: {startup_s:.1f} s")
    for per in args.per_message:
        r = results[f"{per}_per_message"]
        p, w = r["produce"], r["worker"]
        notes.append(f"produce, {per}/msg: {fmt_rate(p['events_per_s'])} events "
                     f"({fmt_rate(p['messages_per_s'])} messages)")  # fmt: skip
        if w["phases"]:
            ph = w["phases"]
            notes.append(f"worker phases, {per}/msg: spawn → ready "
                         f"{ph['spawn_to_ready']:.1f} s, ready → caught up "
                         f"{ph['ready_to_caught_up']:.1f} s, caught up → exit "
                         f"{ph['caught_up_to_exit']:.1f} s")  # fmt: skip
        cpu = w["cpu"]
        others = ", ".join(f"{k} {v:.1f}" for k, v in cpu["other_threads_by_name_cpu_s"].items()
                           if v >= 0.05)  # fmt: skip
        main_s = cpu["main_thread_cpu_s"]
        notes.append(f"worker CPU, {per}/msg: main thread (Faust event loop) {main_s:.1f} s "
                     f"= {main_s / w['seconds']:.0%} of the wall time; other threads "
                     f"{cpu['other_threads_cpu_s']:.1f} s ({others})")  # fmt: skip

    doc = {
        "benchmark": "e2e_worker",
        "machine": info,
        "loadavg": load,
        "parameters": {
            "events": args.events,
            "per_message": args.per_message,
            "seed": args.seed,
            "partitions": PARTITIONS,
            "kafka": f"local KRaft broker {local.KAFKA_VERSION} on {brokers}",
            "kafka_start_seconds": kafka_start,
            "worker_settings": {
                "batch_size": Settings().batch_size,
                "flush_interval_ms": Settings().flush_interval,
                "log_level": LOG_LEVEL,
                "store": "chdb:// (embedded), fresh directory per run",
            },
            "producer": "confluent-kafka, acks=all, idempotent, linger 50 ms, lz4",
            "faust_noop_messages": args.noop_messages,
        },
        "results": results,
        "notes": notes,
        "wall_seconds": time.perf_counter() - started,
    }
    path = write_json(args.out, doc)
    print()
    print(table(["contender", "input", "time", "messages/s", "events/s", "MB/s", "vs raw"],
                rows, left=2))  # fmt: skip
    print()
    for note in notes:
        print(note)
    la = load["at_start"]
    print(f"{info['cpu_model']}, {info['cpus_usable']} cores, load {la[0]:.2f}; "
          f"tokenlord {info['tokenlord']}; results: {path}")  # fmt: skip


if __name__ == "__main__":
    main()
