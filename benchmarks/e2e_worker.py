"""End to end, Kafka → chDB: the tokenlord worker against the stream processors a
Python team would otherwise use, on the same events in the same local Kafka topic.

Throughput phase. For each encoding of the same generated events
(``_common.generate_events``): one event per message (``--events-1msg``, small:
per-message Python is the limit there), JSON arrays of 100 events per message
(``--events``), and a text mix (``--events-text``, 100k: ``--text-share`` of the
events carry ``prompt``/``output`` text instead of counts and must be
tokenized; 100 per message):

1. produce them to a fresh 3-partition topic (confluent-kafka, acks=all);
2. run every contender on that topic, one after the other, each as its own
   process with a fresh consumer group and a fresh chDB directory:
   ``raw`` (``_raw_consume.py``: confluent-kafka reading to the end, doing
   nothing — the ceiling), ``naive-faust`` (``_naive_faust.py``: a plain Faust
   agent per message, py_baseline's plain-Python logic, Store.write_batch),
   ``quix`` (``_quix.py``: Quix Streams with its event-time tumbling windows,
   in ``.venv-quix``), ``tokenlord`` (``tokenlord worker --stop-at-end``), and
   for context ``aiokafka`` (in this process) and ``faust-noop``
   (``_faust_noop.py``: the worker's Faust app and take loop, no pipeline);
3. after each contender, read its chDB directory and compare with what the Rust
   core computes for the same messages: event count and token sum, rejections,
   and for ``usage_hourly`` and ``leaderboard_weekly`` the number of cells, the
   request and token sums and a time-weighted token sum (catches cells in the
   wrong hour or week). Any difference aborts the run.

Per contender: wall time spawn → exit; the processing window (first message
consumed → last row written; for the worker, Faust's "Ready" line → its
"caught up" line, see README) and events/s over it; CPU seconds per million
events, over the whole process (``wait4`` rusage) and over the processing
window (sampled from ``/proc``); peak RSS (``ru_maxrss``).

Latency phase. A fresh 1-partition topic, a long-running consumer (the worker
without ``--stop-at-end``, and the naive contenders), a warm-up event, then
one event per message at a fixed rate (``--latency-rate``, default 50 % of the
worker's 1-event/message rate measured above) for ``--latency-seconds``, each
event's ``ts`` its produce wall time. An event is visible when the rows of its
message are written: the worker's ``/metrics`` (``tokenlord_messages_total``,
polled every 50 ms) for the worker, the contenders' own flush log for the
others. p50/p90/p99/max of visible - produced.

    .venv/bin/python benchmarks/e2e_worker.py [--events 300000] [--events-1msg 20000]

The broker runs from ``var/kafka-bench`` on 127.0.0.1:29092 (controller 29093)
and is stopped at the end unless ``--keep-kafka``. Writes
``benchmarks/results/e2e_worker.json``. No assertion on speed.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import datetime as dt
import http.client
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from _common import (
    REPO,
    Stream,
    build_stream,
    fmt_rate,
    generate_events,
    machine_info,
    max_lateness_ms,
    table,
    with_prose,
    with_text,
    write_json,
)
from confluent_kafka import Producer
from py_baseline import Reject, validate
from tokenlord._core import Core
from tokenlord.kafka import local
from tokenlord.kafka.admin import delete_topics, end_offsets, ensure_topics
from tokenlord.settings import Settings

HERE = Path(__file__).resolve().parent
KAFKA_HOME = REPO / "var" / "kafka-bench"
TOKENLORD = REPO / ".venv" / "bin" / "tokenlord"
PARTITIONS = 3
#: INFO, not WARNING: the phases of a run are read from the worker's log lines
#: (a few dozen lines per run, none per message or batch).
LOG_LEVEL = "info"
#: The Quix contender's own virtualenv: quixstreams 3.28 pins confluent-kafka<2.13
#: and would downgrade the worker's confluent-kafka in .venv.
QUIX_VENV = REPO / ".venv-quix"
QUIX_REQUIREMENTS = ("quixstreams==3.28.1", "xxhash>=3.4,<5", "tiktoken>=0.8,<1", "bpe-openai>=0.1.4,<0.2")
CONTENDERS = ("raw", "aiokafka", "faust-noop", "tokenlord", "naive-faust", "quix")
LATENCY_CONTENDERS = ("tokenlord", "naive-faust", "quix")
NAMES = {
    "raw": "raw consume, confluent-kafka",
    "aiokafka": "raw consume, aiokafka",
    "faust-noop": "faust no-op agent (worker's app)",
    "tokenlord": "tokenlord worker",
    "naive-faust": "naive Faust agent",
    "quix": "Quix Streams",
}
#: /metrics is served by Faust's event loop, the worker's bottleneck at one event
#: per message: poll it often enough for the resolution, rarely enough not to slow it.
METRICS_POLL_S = 0.05

# What every contender's store must hold; one query per key.
VERIFY_SQL = {
    "events": "SELECT count() AS n, sum(total_tokens) AS t FROM tokenlord.events",
    "rejected": "SELECT count() AS n FROM tokenlord.rejected",
    "hourly": "SELECT count() AS cells, sum(requests) AS n, sum(total_tokens) AS t, "
    "sum(total_tokens * intDiv(toUInt32(hour), 3600)) AS th FROM tokenlord.usage_hourly",
    "weekly": "SELECT count() AS cells, sum(requests) AS n, sum(total_tokens) AS t, "
    "sum(total_tokens * toUInt32(week_start)) AS td FROM tokenlord.leaderboard_weekly",
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


def new_topic(brokers: str, prefix: str, partitions: int = PARTITIONS) -> str:
    name = f"bench-{prefix}-{uuid.uuid4().hex[:12]}"
    ensure_topics(brokers, {name: partitions})
    return name


def _producer(brokers: str, linger_ms: int) -> Producer:
    return Producer(
        {
            "bootstrap.servers": brokers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": linger_ms,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
            "compression.type": "lz4",  # what `tokenlord produce` uses
            "message.max.bytes": 2_000_000,
        }
    )


# ---- producing ------------------------------------------------------------------


def produce(brokers: str, topic: str, stream: Stream) -> dict[str, Any]:
    """Send the stream (each message to its stream partition); wait for every ack."""
    producer = _producer(brokers, 50)
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


# ---- child processes: CPU, RSS -----------------------------------------------------


class ProcSampler:
    """Samples a child from /proc (Linux): the process's CPU time (all threads)
    every 0.1 s as a time series, so the CPU spent inside a time window can be
    interpolated; its peak RSS (``VmHWM``: ``ru_maxrss`` of a child is no use
    here, Linux carries the parent's RSS at fork over the exec); and every 0.5 s
    the CPU time of each thread (main thread = the event loop of Faust / Quix's
    poll loop; the others by OS thread name)."""

    def __init__(self, pid: int, started_at: float, interval: float = 0.1, thread_every: int = 5) -> None:
        self.pid = pid
        self.interval = interval
        self.thread_every = thread_every
        self.series: list[tuple[float, float]] = [(started_at, 0.0)]  # (epoch s, CPU s)
        self.ticks: dict[int, tuple[str, int]] = {}  # tid -> (name, utime + stime)
        self.hwm_kb = 0  # VmHWM: peak RSS of the process's own (post-exec) memory
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._hz = os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> ProcSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @staticmethod
    def _stat_ticks(path: str) -> tuple[str, int] | None:
        try:
            with open(path) as f:
                stat = f.read()
        except OSError:
            return None
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        return name, int(fields[11]) + int(fields[12])

    def _sample_threads(self) -> None:
        try:
            tids = os.listdir(f"/proc/{self.pid}/task")
        except OSError:
            return
        for tid in tids:
            got = self._stat_ticks(f"/proc/{self.pid}/task/{tid}/stat")
            if got is not None:
                self.ticks[int(tid)] = got

    def _hwm_kb(self) -> int | None:
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return None

    def _run(self) -> None:
        n = 0
        while not self._stop.wait(self.interval):
            got = self._stat_ticks(f"/proc/{self.pid}/stat")
            if got is not None:
                self.series.append((time.time(), got[1] / self._hz))
            hwm = self._hwm_kb()
            if hwm is not None:
                self.hwm_kb = max(self.hwm_kb, hwm)
            if n % self.thread_every == 0:
                self._sample_threads()
            n += 1

    def cpu_between(self, t0: float, t1: float, end: tuple[float, float]) -> float | None:
        """CPU seconds spent in [t0, t1], linearly interpolated between samples;
        ``end``: (exit time, total CPU from rusage), the last point of the series."""
        pts = [*self.series, end]
        if len(pts) < 2 or t0 >= t1:
            return None

        def at(t: float) -> float:
            times = [p[0] for p in pts]
            i = bisect.bisect_left(times, t)
            if i == 0:
                return pts[0][1]
            if i >= len(pts):
                return pts[-1][1]
            (ta, ca), (tb, cb) = pts[i - 1], pts[i]
            return ca + (cb - ca) * (t - ta) / (tb - ta) if tb > ta else cb

        return max(0.0, at(t1) - at(t0))

    def threads_summary(self) -> dict[str, Any]:
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


class Child:
    """A contender process: spawned with its output in a log file, reaped with
    ``wait4`` so that its own rusage (CPU time, peak RSS) is known."""

    def __init__(self, cmd: list[str], env: dict[str, str], cwd: Path, log_path: Path) -> None:
        cwd.mkdir(parents=True, exist_ok=True)
        self.cmd = cmd
        self.log_path = log_path
        self._log = open(log_path, "wb")  # closed when reaped
        self.spawned_at = time.time()
        self._t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT)
        self.sampler = ProcSampler(self.proc.pid, self.spawned_at).__enter__()
        self.rc: int | None = None
        self.rusage: Any = None
        self.wall = 0.0
        self.exited_at = 0.0

    def alive(self) -> bool:
        return self.rc is None and self._reap(os.WNOHANG)

    def _reap(self, flags: int) -> bool:
        """True while running; reaps it (once) when it has exited."""
        pid, status, ru = os.wait4(self.proc.pid, flags)
        if pid == 0:
            return True
        self.exited_at = time.time()
        self.wall = time.perf_counter() - self._t0
        self.rc = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.rc
        self.rusage = ru
        self.sampler.__exit__(None, None, None)
        self._log.close()
        return False

    def wait(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while self.rc is None and self._reap(os.WNOHANG):
            if time.monotonic() > deadline:
                self.stop()
                return None
            time.sleep(0.02)
        return self.rc

    def stop(self, grace: float = 30) -> None:
        if self.rc is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self._reap(os.WNOHANG):
            if time.monotonic() > deadline:
                self.proc.kill()
                self._reap(0)
                return
            time.sleep(0.05)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def usage(self, events: int, window: tuple[float, float] | None) -> dict[str, Any]:
        ru = self.rusage
        cpu = ru.ru_utime + ru.ru_stime
        win_cpu = self.sampler.cpu_between(*window, (self.exited_at, cpu)) if window else None
        return {
            "wall_seconds": self.wall,
            "cpu_user_s": ru.ru_utime,
            "cpu_system_s": ru.ru_stime,
            "cpu_s": cpu,
            "cpu_s_per_m_events": cpu / events * 1e6,
            "cpu_s_processing_window": win_cpu,
            "cpu_s_per_m_events_processing": None if win_cpu is None else win_cpu / events * 1e6,
            "peak_rss_mb": self.sampler.hwm_kb / 1024 if self.sampler.hwm_kb else None,
            "ru_maxrss_mb_includes_parent_at_fork": ru.ru_maxrss / 1024,
            "threads": self.sampler.threads_summary(),
        }


def _read_result(path: Path, child: Child) -> dict[str, Any]:
    try:
        result: dict[str, Any] = json.loads(path.read_text())
        return result
    except (OSError, ValueError):
        sys.exit(f"ABORT: {child.cmd[1]} wrote no result; log tail:\n{child.log_text()[-4000:]}")


# ---- the contenders -----------------------------------------------------------------

_LOG_TS = r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\] \[\d+\] \[INFO\] "
READY_RE = re.compile(_LOG_TS + r"\[\^Worker\]: Ready", re.M)
FIRST_BATCH_RE = re.compile(_LOG_TS + r"partition \d+ restored", re.M)
CAUGHT_UP_RE = re.compile(_LOG_TS + r"caught up with the end offsets", re.M)


def _log_time(m: re.Match[str] | None) -> float | None:
    if m is None:
        return None
    # Faust logs local time with milliseconds.
    return dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def worker_env(brokers: str, topic: str, workdir: Path) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:12]
    return {
        **os.environ,
        "TOKENLORD_KAFKA_BROKERS": brokers,
        "TOKENLORD_EVENTS_TOPIC": topic,
        "TOKENLORD_DLQ_TOPIC": f"{topic}.dlq",
        "TOKENLORD_OUTCOMES_TOPIC": f"bench-outcomes-{suffix}",
        "TOKENLORD_GROUP_ID": f"bench-{suffix}",
        "TOKENLORD_CLICKHOUSE_URL": f"chdb://{workdir / 'chdb'}",
        "TOKENLORD_WEB_PORT": str(free_port()),
        "TOKENLORD_LOG_LEVEL": LOG_LEVEL,
    }


def spawn(name: str, brokers: str, topic: str, workdir: Path, *, quix_py: Path | None = None, stop_at_end: bool = True,
          regroup: bool = False, noop_max_messages: int = 0) -> tuple[Child, dict[str, Any]]:  # fmt: skip
    """Start contender ``name`` on ``topic``; returns the child and what to read
    afterwards (result file, chDB URL, extra topics to delete, web port)."""
    # Faust apps keep their datadir under ./var relative to the working directory.
    (workdir / "var").mkdir(parents=True, exist_ok=True)
    result = workdir / "result.json"
    progress = workdir / "progress.jsonl"
    chdb = workdir / "chdb"
    group = f"bench-{name}-{uuid.uuid4().hex[:12]}"
    env = dict(os.environ)
    info: dict[str, Any] = {"result": result, "progress": progress, "url": f"chdb://{chdb}", "topics": []}
    if name == "raw":
        cmd = [sys.executable, str(HERE / "_raw_consume.py"), "--brokers", brokers, "--topic", topic,
               "--result", str(result)]  # fmt: skip
    elif name in ("tokenlord", "faust-noop"):
        env = worker_env(brokers, topic, workdir)
        info["url"] = env["TOKENLORD_CLICKHOUSE_URL"]
        info["web_port"] = int(env["TOKENLORD_WEB_PORT"])
        info["topics"] = [env["TOKENLORD_DLQ_TOPIC"], env["TOKENLORD_OUTCOMES_TOPIC"]]
        if name == "tokenlord":
            cmd = [str(TOKENLORD), "worker", *(["--stop-at-end"] if stop_at_end else [])]
        else:
            cmd = [sys.executable, str(HERE / "_faust_noop.py")]
            env["BENCH_NOOP_MAX_MESSAGES"] = str(noop_max_messages)
    elif name == "naive-faust":
        info["web_port"] = free_port()
        cmd = [sys.executable, str(HERE / "_naive_faust.py"), "--brokers", brokers, "--topic", topic,
               "--group", group, "--chdb", str(chdb), "--result", str(result),
               "--web-port", str(info["web_port"])]  # fmt: skip
    elif name == "quix":
        assert quix_py is not None
        cmd = [str(quix_py), str(HERE / "_quix.py"), "--brokers", brokers, "--topic", topic, "--group", group,
               "--chdb", str(chdb), "--state-dir", str(workdir / "quix-state"), "--result", str(result)]  # fmt: skip
        if regroup:
            cmd.append("--regroup")
    else:
        raise ValueError(name)
    if name in ("naive-faust", "quix"):
        cmd += ["--stop-at-end"] if stop_at_end else ["--progress", str(progress)]
    return Child(cmd, env, workdir, workdir / "log.txt"), info


def run_contender(name: str, brokers: str, topic: str, workdir: Path, stream: Stream, timeout: float, *,
                  quix_py: Path | None, noop_max_messages: int) -> dict[str, Any]:  # fmt: skip
    """One throughput run of a contender (as a child process) to the end of ``topic``."""
    child, info = spawn(name, brokers, topic, workdir, quix_py=quix_py, regroup=stream.per_message > 1,
                        noop_max_messages=noop_max_messages)  # fmt: skip
    rc = child.wait(timeout)
    text = child.log_text()
    if rc != 0:
        sys.exit(f"ABORT: {name} exited with {rc} after {child.wall:.1f}s; log tail:\n{text[-4000:]}")
    out: dict[str, Any] = {"url": info["url"], "topics": info["topics"], "log": str(child.log_path)}
    events, messages = stream.events, stream.messages
    ready = _log_time(READY_RE.search(text))
    if name == "tokenlord":
        caught_up = _log_time(CAUGHT_UP_RE.search(text))
        first_batch = _log_time(FIRST_BATCH_RE.search(text))
        window = (ready, caught_up) if ready and caught_up else None
        out["window_definition"] = "Faust 'Worker: Ready' → 'caught up' (written and committed)"
        out["phases"] = None if window is None else {
            "spawn_to_ready": ready - child.spawned_at,  # type: ignore[operator]
            "ready_to_first_batch": None if first_batch is None else first_batch - ready,  # type: ignore[operator]
            "ready_to_caught_up": window[1] - window[0],  # type: ignore[operator]
            "caught_up_to_exit": child.exited_at - caught_up,  # type: ignore[operator]
        }  # fmt: skip
    elif name == "faust-noop":
        found = re.search(r'\{"first_batch".*?\}', text)  # Faust sends stdout to its log
        if found is None:
            sys.exit(f"ABORT: _faust_noop.py printed no result; log tail:\n{text[-4000:]}")
        marks = json.loads(found.group(0))
        window = (ready, marks["caught_up"]) if ready else None
        messages = marks["messages"]
        events = messages * stream.events // stream.messages
        out["window_definition"] = "Faust 'Worker: Ready' → caught up (messages taken and acked)"
        out["messages_taken"] = messages
    else:
        r = _read_result(info["result"], child)
        out["child"] = r
        if name == "raw":
            window = (r["assigned_at"], r["last_message_at"])
            out["window_definition"] = "assign() → last message"
        elif name == "naive-faust":
            window = (ready, r["last_write_at"]) if ready else None
            out["window_definition"] = "Faust 'Worker: Ready' → last row written"
        else:
            window = (r["assigned_at"], r["last_write_at"])
            out["window_definition"] = "partitions assigned (end of Quix's on_assign) → last row written"
        if window is not None and r.get("first_message_at"):
            out["start_to_first_message"] = r["first_message_at"] - window[0]
    seconds = None if window is None else window[1] - window[0]
    out.update(
        events=events,
        messages=messages,
        processing_seconds=seconds,
        events_per_s=None if not seconds else events / seconds,
        messages_per_s=None if not seconds else messages / seconds,
        **child.usage(events, window),
    )
    return out


def raw_consume_aiokafka(brokers: str, topic: str, stream: Stream) -> dict[str, Any]:
    """aiokafka, the client Faust consumes through, in this process (same fetch
    size and max records per poll as the worker's Faust app): context only."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition as AioTP

    ends = end_offsets(brokers, topic)
    batch = Settings().batch_size

    async def go() -> float:
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
            remaining = sum(ends.values())
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
            return time.perf_counter() - t0
        finally:
            await consumer.stop()

    c0 = time.process_time()
    seconds = asyncio.run(go())
    cpu = time.process_time() - c0
    return {
        "processing_seconds": seconds,
        "events": stream.events,
        "messages": stream.messages,
        "events_per_s": stream.events / seconds,
        "messages_per_s": stream.messages / seconds,
        "cpu_s_processing_window": cpu,
        "cpu_s_per_m_events_processing": cpu / stream.events * 1e6,
        "window_definition": "assign → last message (in the benchmark's process)",
    }


# ---- the Quix Streams virtualenv ---------------------------------------------------


def quix_python(wheel: str | None) -> tuple[Path, dict[str, str]]:
    """``.venv-quix/bin/python`` with the tokenlord wheel (for Store and the
    settings) and QUIX_REQUIREMENTS; created or refreshed when they change."""
    if wheel is None:
        wheels = sorted((REPO / "var" / "wheels").glob("tokenlord-*.whl"), key=lambda p: p.stat().st_mtime)
        if not wheels:
            sys.exit("ABORT: no tokenlord wheel in var/wheels (run `make install`, or pass --wheel)")
        wheel = str(wheels[-1])
    st = Path(wheel).stat()
    want = json.dumps({"wheel": Path(wheel).name, "size": st.st_size, "mtime": st.st_mtime,
                       "requirements": QUIX_REQUIREMENTS})  # fmt: skip
    py = QUIX_VENV / "bin" / "python"
    marker = QUIX_VENV / ".bench-installed"
    if not (py.exists() and marker.exists() and marker.read_text() == want):
        print(f"setting up {QUIX_VENV} (quixstreams; separate from .venv)...", file=sys.stderr)
        if not py.exists():
            subprocess.run([sys.executable, "-m", "venv", str(QUIX_VENV)], check=True)
        pip = [str(py), "-m", "pip", "--disable-pip-version-check", "-q", "install"]
        # The wheel's dependencies are its `worker` extra (the Store needs chDB).
        subprocess.run([*pip, f"{wheel}[worker]", *QUIX_REQUIREMENTS], check=True)
        subprocess.run([*pip, "--force-reinstall", "--no-deps", wheel], check=True)
        check = subprocess.run([str(py), "-m", "pip", "check"], capture_output=True, text=True, check=False)
        if check.returncode != 0:
            sys.exit(f"ABORT: {QUIX_VENV}: pip check failed:\n{check.stdout}{check.stderr}")
        marker.write_text(want)
    code = ("import json, quixstreams, confluent_kafka, chdb, tiktoken; print(json.dumps({"
            "'quixstreams': quixstreams.__version__, 'confluent_kafka': confluent_kafka.__version__, "
            "'librdkafka': confluent_kafka.libversion()[0], 'chdb': chdb.__version__, "
            "'tiktoken': tiktoken.__version__}))")  # fmt: skip
    out = subprocess.run([str(py), "-W", "ignore", "-c", code], capture_output=True, text=True, check=True)
    versions: dict[str, str] = json.loads(out.stdout.strip().splitlines()[-1])
    return py, versions


def versions_here() -> dict[str, str]:
    import chdb
    import confluent_kafka
    import faust
    import tiktoken

    return {
        "faust_streaming": faust.__version__,
        "confluent_kafka": confluent_kafka.__version__,
        "librdkafka": confluent_kafka.libversion()[0],
        "chdb": chdb.__version__,
        "tiktoken": tiktoken.__version__,
    }


# ---- the result every contender must store -----------------------------------------


def stored(url: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", VERIFY_CODE, url, json.dumps(VERIFY_SQL)],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    if out.returncode != 0:
        sys.exit(f"ABORT: reading the result failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def expected(partitions: list[int], offsets: list[int], values: list[bytes]) -> tuple[dict[str, Any], dict[str, int]]:
    """What a contender must store: the core on the same messages in Kafka order
    (the latest restatement of every cell); also the rejection reasons."""
    core = Core(**Settings().core_kwargs())
    now_ms = int(time.time() * 1000)
    n = tokens = 0
    reasons: dict[str, int] = {}
    hourly: dict[tuple[Any, ...], tuple[int, int]] = {}
    weekly: dict[tuple[Any, ...], tuple[int, int]] = {}
    step = 20_000
    for i in range(0, len(values), step):
        b = core.process(partitions[i : i + step], offsets[i : i + step], values[i : i + step], now_ms)
        n += b.accepted
        tokens += sum(b.events["total_tokens"])
        for r in b.rejected["reason"]:
            reasons[r] = reasons.get(r, 0) + 1
        h = b.hourly
        for row in zip(h["src_partition"], h["hour"], h["user"], h["model"], h["requests"], h["total_tokens"],
                       strict=True):  # fmt: skip
            hourly[row[:4]] = row[4:]
        w = b.weekly
        for row in zip(w["src_partition"], w["week_start"], w["user"], w["requests"], w["total_tokens"], strict=True):
            weekly[row[:3]] = row[3:]
    h_cells: dict[tuple[Any, ...], int] = {}
    for (_, hour, user, model), (_, t) in hourly.items():
        h_cells[(hour, user, model)] = h_cells.get((hour, user, model), 0) + t
    w_cells: dict[tuple[Any, ...], int] = {}
    for (_, week, user), (_, t) in weekly.items():
        w_cells[(week, user)] = w_cells.get((week, user), 0) + t
    want = {
        "events": {"n": n, "t": tokens},
        "rejected": {"n": sum(reasons.values())},
        "hourly": {"cells": len(h_cells), "n": sum(r for r, _ in hourly.values()), "t": sum(h_cells.values()),
                   "th": sum(t * (k[0] // 3_600_000) for k, t in h_cells.items())},
        "weekly": {"cells": len(w_cells), "n": sum(r for r, _ in weekly.values()), "t": sum(w_cells.values()),
                   "td": sum(t * (k[0] // 86_400_000) for k, t in w_cells.items())},
    }  # fmt: skip
    return want, reasons


def verify(name: str, label: str, url: str, want: dict[str, Any]) -> dict[str, Any]:
    got = stored(url)
    if got != want:
        sys.exit(f"ABORT: [{label}] {name} stored a different result (the run is void):\n"
                 f"  got  {got}\n  want {want}")  # fmt: skip
    return got


# ---- latency ------------------------------------------------------------------------


class MetricsPoller:
    """GET the worker's /metrics every METRICS_POLL_S; records (epoch s when the
    answer arrived, tokenlord_messages_total) whenever the counter moves."""

    COUNTER = re.compile(rb"^tokenlord_messages_total (\S+)$", re.M)

    def __init__(self, port: int) -> None:
        self.port = port
        self.points: list[tuple[float, int]] = []
        self.polls = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> MetricsPoller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def latest(self) -> int:
        return self.points[-1][1] if self.points else 0

    def _run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        while not self._stop.wait(METRICS_POLL_S):
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/metrics")
                body = conn.getresponse().read()
                t = time.time()
            except (OSError, http.client.HTTPException):
                self.errors += 1
                if conn is not None:
                    conn.close()
                conn = None
                continue
            self.polls += 1
            m = self.COUNTER.search(body)
            if m is None:
                continue
            value = int(float(m.group(1)))
            if not self.points or value != self.points[-1][1]:
                self.points.append((t, value))


def flush_points(progress: Path) -> list[tuple[float, int]]:
    """A naive contender's flush log → (epoch s, next offset written in partition 0)."""
    points: list[tuple[float, int]] = []
    if progress.exists():
        for line in progress.read_text().splitlines():
            if line.strip():
                d = json.loads(line)
                points.append((d["t"], int(d["next"].get("0", 0))))
    return points


def latency_events(n: int, seed: int) -> list[tuple[str, dict[str, Any]]]:
    """``n`` distinct valid generated events (no retries, nothing invalid)."""
    out: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    for user, ev in generate_events(int(n * 1.05) + 100, seed):
        try:
            validate(ev)
        except Reject:
            continue
        if ev["event_id"] in seen:
            continue
        seen.add(ev["event_id"])
        out.append((user, ev))
        if len(out) == n:
            break
    return out


def produce_paced(brokers: str, topic: str, events: list[tuple[str, dict[str, Any]]], rate: float,
                  first_offset: int) -> tuple[list[float], list[bytes]]:  # fmt: skip
    """One event per message to partition 0 at ``rate`` messages/s; each event's
    ``ts`` is its produce time (epoch ms). Returns the produce times (epoch s,
    taken when ``produce()`` is called) and the values, in offset order."""
    producer = _producer(brokers, 5)
    delivered: list[tuple[int, int]] = []
    errors: list[str] = []
    sent_at: list[float] = []
    values: list[bytes] = []

    def on_delivery(i: int) -> Any:
        def cb(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(str(err))
            else:
                delivered.append((i, msg.offset()))

        return cb

    start = time.perf_counter()
    for i, (user, ev) in enumerate(events):
        due = start + i / rate
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        t = time.time()
        value = orjson.dumps({**ev, "ts": int(t * 1000)})
        producer.produce(topic, value, user.encode(), partition=0, on_delivery=on_delivery(i))
        sent_at.append(t)
        values.append(value)
        producer.poll(0)
    producer.flush(60)
    if errors or len(delivered) != len(events):
        sys.exit(f"ABORT: latency produce: {len(delivered)}/{len(events)} delivered, errors {errors[:3]}")
    if any(off != first_offset + i for i, off in delivered):
        sys.exit("ABORT: latency produce: offsets are not the send order")
    return sent_at, values


def percentile(sorted_values: list[float], q: float) -> float:
    k = (len(sorted_values) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    if k == lo or sorted_values[hi] == math.inf:  # (inf - x) * 0 would be nan
        return sorted_values[lo] if k == lo else math.inf
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def run_latency(name: str, brokers: str, workdir: Path, events: list[tuple[str, dict[str, Any]]], rate: float,
                quix_py: Path | None, timeout: float) -> dict[str, Any]:  # fmt: skip
    """One long-running contender on a fresh 1-partition topic: a warm-up event,
    then ``events`` at ``rate``; latency = visible (rows written) - produced."""
    topic = new_topic(brokers, f"lat-{name}", partitions=1)
    child, info = spawn(name, brokers, topic, workdir, quix_py=quix_py, stop_at_end=False)
    poller = MetricsPoller(info["web_port"]).start() if name == "tokenlord" else None

    def written() -> list[tuple[float, int]]:
        return poller.points if poller is not None else flush_points(info["progress"])

    def wait_written(n: int, deadline: float) -> bool:
        while time.monotonic() < deadline:
            pts = written()
            if pts and pts[-1][1] >= n:
                return True
            if not child.alive():
                sys.exit(f"ABORT: latency {name} exited early; log tail:\n{child.log_text()[-4000:]}")
            time.sleep(0.05)
        return False

    try:
        # Warm-up: the first event starts the pipeline (group join, first batch, chDB
        # warm-up); measuring starts once it is written.
        warm_sent, warm_values = produce_paced(brokers, topic, events[:1], rate, 0)
        if not wait_written(1, time.monotonic() + 120):
            sys.exit(f"ABORT: latency {name}: the warm-up event was not written; log tail:\n"
                     f"{child.log_text()[-4000:]}")  # fmt: skip
        measured = events[1:]
        t0 = time.time()
        sent_at, values = produce_paced(brokers, topic, measured, rate, 1)
        produce_s = time.time() - t0
        kept_up = wait_written(len(events), time.monotonic() + timeout)
        behind_at_end = len(events) - (written()[-1][1] if written() else 0)
    finally:
        if poller is not None:
            poller.stop()
        child.stop()
    pts = written()
    times = [t for t, _ in pts]
    counts = [c for _, c in pts]
    lat: list[float] = []
    for i, sent in enumerate(sent_at):
        # Offset i + 1 (offset 0 is the warm-up) is written once the count reaches i + 2.
        j = bisect.bisect_left(counts, i + 2)
        # Not written before the contender was stopped: latency above the deadline.
        lat.append(times[j] - sent if j < len(pts) else math.inf)
    lat.sort()
    all_values = warm_values + values
    want, _ = expected([0] * len(all_values), list(range(len(all_values))), all_values)
    # A contender that fell behind was stopped with part of the stream unwritten:
    # nothing complete to compare (its throughput runs above were verified).
    got = verify(name, "latency", info["url"], want) if kept_up else None
    out: dict[str, Any] = {
        "topic": topic,
        "events": len(measured),
        "rate_target_per_s": rate,
        "rate_achieved_per_s": len(measured) / produce_s,
        "kept_up": kept_up,
        "behind_at_end": behind_at_end,
        "visible_measured_for": sum(1 for x in lat if x != math.inf),
        "method": f"worker /metrics tokenlord_messages_total, polled every {METRICS_POLL_S * 1000:.0f} ms" if poller
        else "the contender's own log of each durable flush (next offset written)",
        "verified": got,
        "url": info["url"],
        "peak_rss_mb": child.sampler.hwm_kb / 1024 if child.sampler.hwm_kb else None,
        "warm_up_sent_at": warm_sent[0],
    }  # fmt: skip
    if poller is not None:
        out["metrics_polls"] = poller.polls
        out["metrics_poll_errors"] = poller.errors
    if lat:
        out.update(
            p50_s=percentile(lat, 0.5),
            p90_s=percentile(lat, 0.9),
            p99_s=percentile(lat, 0.99),
            max_s=lat[-1],
            mean_s=sum(lat) / len(lat),
        )
        # JSON has no infinity: a percentile among the unwritten events is None
        # ("kept_up": false says why).
        out.update(
            {k: (None if out[k] == math.inf else out[k]) for k in ("p50_s", "p90_s", "p99_s", "max_s", "mean_s")}
        )
    return out


# ---- main ------------------------------------------------------------------------


def _fmt_s(x: float | None) -> str:
    return "—" if x is None else (f"{x:.2f} s" if x < 10 else f"{x:.1f} s")


def _fmt_ms(x: float | None) -> str:
    if x is None:
        return "—"
    return "not written" if x == math.inf else f"{x * 1000:.0f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=300_000, help="events of the 100-events/message run")
    ap.add_argument("--events-1msg", type=int, default=1_000_000, help="events of the 1-event/message run")
    ap.add_argument("--events-text", type=int, default=100_000, help="events of the text mix")
    ap.add_argument("--text-share", type=float, default=0.3, help="share of text events in the text mix")
    ap.add_argument("--events-prose", type=int, default=20_000, help="events of the prose runs (~14 KB each)")
    ap.add_argument(
        "--encodings",
        nargs="*",
        default=["1", "100", "text", "prose", "prose-nocounts"],
        choices=["1", "100", "text", "prose", "prose-nocounts"],
        help="none: skip the throughput phase; prose: every event carries 2-16 KB of prompt and 0.3-4 KB of "
        "output text, 1 per message, with its counts (prose-nocounts: without, tokenized)",
    )
    ap.add_argument("--contenders", nargs="+", default=list(CONTENDERS), choices=CONTENDERS)
    ap.add_argument("--latency-contenders", nargs="*", default=list(LATENCY_CONTENDERS),
                    choices=LATENCY_CONTENDERS, help="none: skip the latency phase")  # fmt: skip
    ap.add_argument("--latency-rate", type=float, default=None,
                    help="events/s (default: 50%% of the worker's 1-event/message rate of this run)")  # fmt: skip
    ap.add_argument("--latency-seconds", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=20250109)
    ap.add_argument("--port", type=int, default=29092)
    ap.add_argument("--controller-port", type=int, default=29093)
    ap.add_argument("--wheel", help="tokenlord wheel for .venv-quix (default: the newest in var/wheels)")
    ap.add_argument("--keep-kafka", action="store_true", help="leave the broker running")
    ap.add_argument("--keep-data", action="store_true", help="keep topics and chDB dirs")
    ap.add_argument("--noop-messages", type=int, default=100_000,
                    help="messages the no-op Faust agent reads (0: the whole topic)")  # fmt: skip
    ap.add_argument("--timeout", type=float, default=900, help="max seconds per contender run")
    ap.add_argument("--out", default="e2e_worker.json")
    args = ap.parse_args()

    info = machine_info()
    started = time.perf_counter()
    versions: dict[str, Any] = {"benchmark_venv": versions_here()}
    quix_py: Path | None = None
    if "quix" in args.contenders or "quix" in (args.latency_contenders or []):
        quix_py, versions["quix_venv"] = quix_python(args.wheel)
    load: dict[str, list[float]] = {"at_start": list(os.getloadavg())}
    t0 = time.perf_counter()
    msg = local.start(KAFKA_HOME, port=args.port, controller_port=args.controller_port, timeout=180)
    kafka_start = time.perf_counter() - t0
    print(msg, file=sys.stderr)
    brokers = f"{local.HOST}:{args.port}"
    topics: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix="tokenlord-e2e-"))
    results: dict[str, Any] = {}
    rows: list[list[str]] = []
    lat_rows: list[list[str]] = []
    latency: dict[str, Any] = {}
    try:
        encodings: list[tuple[str, str, Stream]] = []
        generated: dict[int, list[tuple[str, dict[str, Any]]]] = {}

        def events_of(n: int) -> list[tuple[str, dict[str, Any]]]:
            if n not in generated:
                print(f"generating {n:,} events (seed {args.seed})...", file=sys.stderr)
                generated[n] = generate_events(n, args.seed)
            return generated[n]

        for enc in args.encodings:
            if enc == "1":
                evs = events_of(args.events_1msg)
                encodings.append(("1_per_message", "1 event/msg", build_stream(evs, 1)))
            elif enc == "100":
                evs = events_of(args.events)
                encodings.append(("100_per_message", "100 events/msg", build_stream(evs, 100)))
            elif enc == "text":
                evs = with_text(events_of(args.events_text), args.text_share, args.seed)
                label = f"text mix {args.text_share:.0%}, 100/msg"
                encodings.append(("text_100_per_message", label, build_stream(evs, 100)))
            else:
                counts = enc == "prose"
                evs = with_prose(events_of(args.events_prose), counts, args.seed)
                label = "prose + counts, 1/msg" if counts else "prose, no counts, 1/msg"
                encodings.append((enc.replace("-", "_"), label, build_stream(evs, 1)))
            late = max_lateness_ms(evs)
            if late >= Settings().grace:
                sys.exit(f"ABORT: the input has an event {late} ms behind its partition's watermark "
                         "(>= grace): the contenders' lateness rules would differ")  # fmt: skip

        for key, label, stream in encodings:
            topic = new_topic(brokers, key.split("_")[0])
            topics.append(topic)
            print(f"[{label}] producing {stream.messages:,} messages ({stream.events:,} events, "
                  f"{stream.bytes / 1e6:.0f} MB)...", file=sys.stderr)  # fmt: skip
            prod = produce(brokers, topic, stream)
            want, reasons = expected(stream.partitions, stream.offsets, stream.values)
            if reasons.get("late") or reasons.get("future_timestamp"):
                sys.exit(f"ABORT: [{label}] the core rejects events as late/future {reasons}: the contenders' "
                         "rules for these corners differ; the input must avoid them")  # fmt: skip
            res: dict[str, Any] = {
                "events": stream.events,
                "messages": stream.messages,
                "bytes": stream.bytes,
                "topic": topic,
                "produce": prod,
                "expected": want,
                "rejected_by_reason": reasons,
                "contenders": {},
            }
            results[key] = res
            for name in args.contenders:
                load[f"before_{name}_{key}"] = list(os.getloadavg())
                print(f"[{label}] {NAMES[name]}...", file=sys.stderr)
                if name == "aiokafka":
                    r = raw_consume_aiokafka(brokers, topic, stream)
                else:
                    r = run_contender(name, brokers, topic, tmp / f"{key}-{name}", stream, args.timeout,
                                      quix_py=quix_py, noop_max_messages=args.noop_messages)  # fmt: skip
                    topics += r.pop("topics")
                    if name not in ("raw", "faust-noop"):
                        r["verified"] = verify(name, label, r["url"], want)
                res["contenders"][name] = r
            tl = res["contenders"].get("tokenlord", {}).get("events_per_s")
            raw = res["contenders"].get("raw", {}).get("events_per_s")
            tl_wall = res["contenders"].get("tokenlord", {}).get("wall_seconds")
            raw_wall = res["contenders"].get("raw", {}).get("wall_seconds")
            for name, r in res["contenders"].items():
                eps = r.get("events_per_s")
                if eps:
                    r["mb_per_s"] = eps * stream.bytes / stream.events / 1e6
                wall = r.get("wall_seconds")
                r["ratios"] = {"vs_tokenlord": eps / tl if eps and tl else None,
                               "vs_raw": eps / raw if eps and raw else None,
                               # spawn -> exit, start-up included
                               "vs_raw_wall": raw_wall / wall if wall and raw_wall else None,
                               "tokenlord_vs_this_wall": wall / tl_wall if wall and tl_wall else None}  # fmt: skip
                rows.append([
                    NAMES[name], label, _fmt_s(r.get("wall_seconds")), _fmt_s(r.get("processing_seconds")),
                    fmt_rate(eps) if eps else "—",
                    f"{r['mb_per_s']:.0f}" if eps else "—",
                    "—" if r["ratios"]["vs_raw"] is None else f"{r['ratios']['vs_raw']:.2f}",
                    "—" if r.get("cpu_s_per_m_events_processing") is None
                    else f"{r['cpu_s_per_m_events_processing']:.1f}",
                    "—" if r.get("cpu_s_per_m_events") is None else f"{r['cpu_s_per_m_events']:.1f}",
                    "—" if r.get("peak_rss_mb") is None else f"{r['peak_rss_mb']:.0f} MB",
                    "—" if r["ratios"]["vs_tokenlord"] is None else f"{r['ratios']['vs_tokenlord']:.2f}x",
                ])  # fmt: skip

        if args.latency_contenders:
            one = results.get("1_per_message", {}).get("contenders", {}).get("tokenlord", {}).get("events_per_s")
            rate = args.latency_rate or (0.5 * one if one else 1000.0)
            n = int(rate * args.latency_seconds) + 1
            events = latency_events(n, args.seed + 1)
            latency = {
                "rate_per_s": rate,
                "rate_source": "--latency-rate" if args.latency_rate else
                ("50% of the tokenlord worker's 1-event/message rate of this run" if one else "default 1000/s"),
                "seconds": args.latency_seconds,
                "events": n - 1,
                "contenders": {},
            }  # fmt: skip
            for name in args.latency_contenders:
                load[f"before_latency_{name}"] = list(os.getloadavg())
                print(f"[latency] {NAMES[name]} at {rate:,.0f} events/s for {args.latency_seconds:g} s...",
                      file=sys.stderr)  # fmt: skip
                r = run_latency(name, brokers, tmp / f"latency-{name}", events, rate, quix_py,
                                max(60.0, 3 * args.latency_seconds))  # fmt: skip
                topics.append(r["topic"])
                latency["contenders"][name] = r
                lat_rows.append([
                    NAMES[name], f"{r['rate_achieved_per_s']:,.0f}/s", f"{r['events']:,}",
                    _fmt_ms(r.get("p50_s")), _fmt_ms(r.get("p90_s")), _fmt_ms(r.get("p99_s")),
                    _fmt_ms(r.get("max_s")), "yes" if r["kept_up"] else f"no ({r['behind_at_end']:,} behind)",
                ])  # fmt: skip
        load["at_end"] = list(os.getloadavg())
    finally:
        if not args.keep_data:
            with contextlib.suppress(Exception):
                delete_topics(brokers, sorted(set(topics)))  # a repeated name crashes librdkafka
            subprocess.run(["rm", "-rf", str(tmp)], check=False)
        if not args.keep_kafka:
            print(local.stop(KAFKA_HOME), file=sys.stderr)

    doc = {
        "benchmark": "e2e_worker",
        "machine": info,
        "versions": versions,
        "loadavg": load,
        "parameters": {
            "events_100_per_message": args.events,
            "events_1_per_message": args.events_1msg,
            "events_text": args.events_text,
            "text_share": args.text_share,
            "encodings": args.encodings,
            "contenders": args.contenders,
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
            "naive_flush": "every 20,000 events and every 1 s (naive Faust); Quix checkpoint every 1 s",
            "producer": "confluent-kafka, acks=all, idempotent, linger 50 ms (latency: 5 ms), lz4",
            "faust_noop_messages": args.noop_messages,
        },
        "results": results,
        "latency": latency,
        "wall_seconds": time.perf_counter() - started,
    }
    path = write_json(args.out, doc)
    if rows:
        print()
        print(table(["contender", "input", "wall", "processing", "events/s", "MB/s", "vs raw",
                     "CPU-s/M ev (processing)", "CPU-s/M ev (process)", "peak RSS", "vs tokenlord"],
                    rows, left=2))  # fmt: skip
    if lat_rows:
        print()
        print(table(["latency: contender", "rate", "events", "p50", "p90", "p99", "max", "kept up"], lat_rows))
    la = load["at_start"]
    print(f"\n{info['cpu_model']}, {info['cpus_usable']} cores, load {la[0]:.2f}; "
          f"tokenlord {info['tokenlord']}; results: {path}")  # fmt: skip


if __name__ == "__main__":
    main()
