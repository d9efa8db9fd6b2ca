"""Fault scenarios against real Kafka and embedded ClickHouse (issue: reliability).

Each scenario feeds the generated stream (honest traffic over ten days,
producer retries and replays, hostile and malformed input, late events, and a
backfill older than the dedupe horizon) through ``tokenlord worker``
processes while something goes wrong, lets a last worker finish, and returns a
:class:`e2e.Report`: events and tokens lost or counted twice, rejections, dead
letters, and whether every public view equals the reference's exactly.

Used by tests/integration/test_faults.py (short) and benchmarks/reliability.py
(the table in the README; ``--long`` for more kills and a soak).
"""

from __future__ import annotations

import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from e2e import DAY, HOUR, REPO, Report, make_stream, produce, start_worker, verify, worker_env
from tokenlord.kafka import local

CRASH_POINTS = ("dlq", "_rejected", "_events", "_hourly", "_weekly", "_waste", "_progress")
POISON = "POISON-PILL-7f3a"
SECRET = "SECRET-PROMPT-TEXT"
WORKER_TIMEOUT = 300.0


@dataclass
class Ctx:
    brokers: str
    kafka_home: Path
    kafka_ports: tuple[int, int]
    workdir: Path
    make_topic: Callable[[str, int], str]
    seed: int = 1


def chaos_stream(now_ms: int, seed: int) -> list[tuple[bytes | None, bytes]]:
    """make_stream's messages with the hostile ones spread through the stream,
    plus a backfill: a user's events of a past week, then three of that week's
    first hour arriving after the user's partition moved > 24 h further (older
    than the dedupe horizon, in a week still open: counted once, and never again
    on a redelivery)."""
    msgs = make_stream(now_ms, seed)
    good = [m for m in msgs if m[0] is not None]
    bad = [m for m in msgs if m[0] is None]
    step = max(1, len(good) // (len(bad) + 1))
    out: list[tuple[bytes | None, bytes]] = []
    for i, m in enumerate(good):
        out.append(m)
        if i % step == step - 1 and bad:
            out.append(bad.pop(0))
    out.extend(bad)
    monday = (now_ms // DAY - (now_ms // DAY + 3) % 7) * DAY - 21 * DAY
    user = b"backfill-user"
    for i in range(30):
        ev = {"event_id": f"bf-{seed}-{i}", "ts": monday + i * 2 * HOUR, "user": "backfill-user",
              "model": "gpt-4o", "input_tokens": 100 + i, "output_tokens": 7}  # fmt: skip
        out.insert(len(out) * i // 30, (user, orjson.dumps(ev)))
    for i in range(3):
        ev = {"event_id": f"bf-old-{seed}-{i}", "ts": monday + 10 * 60_000 * (i + 1), "user": "backfill-user",
              "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 1}  # fmt: skip
        out.insert(len(out) * (i + 2) // 5, (user, orjson.dumps(ev)))
    return out


def chunks(msgs: list[Any], n: int) -> list[list[Any]]:
    size = -(-len(msgs) // n)
    return [msgs[i : i + size] for i in range(0, len(msgs), size)]


def _setup(ctx: Ctx, name: str, **extra: str) -> tuple[str, dict[str, str], int, Path]:
    topic = ctx.make_topic(name, 3)  # the worker creates its DLQ and outcomes topics
    env = worker_env(ctx.brokers, topic, ctx.workdir / f"{name}-ch", **extra)
    log = ctx.workdir / f"{name}.log"
    return topic, env, int(time.time() * 1000), log


def _finish(env: dict[str, str], log: Path, report: Report) -> None:
    """A last, clean worker until the end offsets; its run time is the recovery time."""
    started = time.monotonic()
    proc = start_worker(env, log)
    try:
        rc = proc.wait(timeout=WORKER_TIMEOUT)
    except subprocess.TimeoutExpired:
        _kill(proc)
        rc = f"did not catch up within {WORKER_TIMEOUT:.0f} s"  # type: ignore[assignment]
    report.recovery_s = round(time.monotonic() - started, 2)
    if rc != 0:
        report.notes["final_worker_exit"] = rc
        report.notes["log_tail"] = log.read_text(errors="replace")[-3000:]


def _kill(proc: subprocess.Popen[bytes]) -> bool:
    """SIGKILL if still running; True if it was killed."""
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return True


def _working(proc: subprocess.Popen[bytes], log: Path, since: int, timeout: float = 60) -> None:
    """Returns once the worker ``proc`` has restored a partition (its pid's
    "restored:" line in ``log`` past byte ``since``), or has ended."""
    mark = f"[{proc.pid}] ".encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with log.open("rb") as f:
            f.seek(since)
            if any(mark in line and b" restored: " in line for line in f):
                return
        time.sleep(0.05)


def kill9(ctx: Ctx, kills: int = 20) -> Report:
    """``kill -9`` of the worker at random moments of its work, restarted each
    time; a new slice of the stream is produced before each life. The moment
    is drawn after the life restored its first partition (a fixed delay from
    the process start would, on a fast machine, often come after the life had
    caught up and stopped by itself: no kill at all), uniformly up to a bound
    that starts at 0.5 s and shrinks whenever a life ends before its kill (a
    faster worker, or machine, has shorter lives)."""
    # Restores in many small chunks (the default reads 20,000 events a step).
    topic, env, now_ms, log = _setup(ctx, "kill9", TOKENLORD_BATCH_SIZE="25", TOKENLORD_RESTORE_CHUNK="97")
    rng = random.Random(ctx.seed)
    parts = chunks(chaos_stream(now_ms, ctx.seed), kills + 1)
    report = Report("kill -9 at random moments")
    delays = []
    bound = 0.5
    for i in range(kills):
        produce(ctx.brokers, topic, parts[i])
        delay = round(rng.uniform(0.0, bound), 2)
        since = log.stat().st_size if log.exists() else 0
        proc = start_worker(env, log)
        _working(proc, log, since)
        time.sleep(delay)
        if _kill(proc):
            delays.append(delay)
        else:
            report.notes.setdefault("finished_before_kill", 0)
            report.notes["finished_before_kill"] += 1
            bound = max(0.05, min(bound, delay) * 0.7)
    for part in parts[kills:]:
        produce(ctx.brokers, topic, part)
    report.notes.update(kills=len(delays), seed=ctx.seed, kill_after_s=delays)
    _finish(env, log, report)
    return verify(report, ctx.brokers, topic, env, now_ms)


def crash_points(ctx: Ctx) -> Report:
    """The worker kills itself (SIGKILL) right after each step of a batch's
    write path in turn: DLQ flushed, each table insert, the progress."""
    topic, env, now_ms, log = _setup(ctx, "crashpoints", TOKENLORD_BATCH_SIZE="25", TOKENLORD_RESTORE_CHUNK="53")
    rng = random.Random(ctx.seed)
    parts = chunks(chaos_stream(now_ms, ctx.seed), len(CRASH_POINTS) + 1)
    report = Report("self-kill after each write step")
    crashed = []
    for point, part in zip(CRASH_POINTS, parts, strict=False):
        produce(ctx.brokers, topic, part)
        spec = f"{point}:{rng.randint(1, 3)}"
        proc = start_worker({**env, "TOKENLORD_FAULT_CRASH_AT": spec}, log)
        rc = proc.wait(timeout=WORKER_TIMEOUT)
        crashed.append((spec, "killed" if rc == -signal.SIGKILL else f"exit {rc}"))
    for part in parts[len(CRASH_POINTS) :]:
        produce(ctx.brokers, topic, part)
    report.notes["lives"] = crashed
    _finish(env, log, report)
    return verify(report, ctx.brokers, topic, env, now_ms)


def rebalance(ctx: Ctx, cycles: int = 4) -> Report:
    """A second member joins and leaves the worker's consumer group again and
    again (revoke/assign cycles) while the worker consumes."""
    topic, env, now_ms, log = _setup(ctx, "rebalance", TOKENLORD_BATCH_SIZE="25")
    parts = chunks(chaos_stream(now_ms, ctx.seed), cycles + 1)
    report = Report("second group member joins/leaves")
    produce(ctx.brokers, topic, parts[0])
    worker = start_worker(env, log, stop_at_end=False)
    member_log = ctx.workdir / "rebalance-member.log"
    try:
        time.sleep(4)
        for part in parts[1:]:
            member = subprocess.Popen(
                [sys.executable, str(REPO / "tests/group_member.py")],
                env={**env, "TOKENLORD_WEB_PORT": "0"},
                stdout=subprocess.DEVNULL,
                stderr=member_log.open("ab"),
            )
            time.sleep(4)
            produce(ctx.brokers, topic, part)
            time.sleep(2)
            _kill(member)
            time.sleep(8)  # its session expires: the worker gets every partition back
        report.notes["cycles"] = cycles
        report.notes["revocations"] = len(re.findall(r"partitions of \S+ revoked", log.read_text(errors="replace")))
        report.notes["restores"] = log.read_text(errors="replace").count("restored: resumes at")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    _finish(env, log, report)
    return verify(report, ctx.brokers, topic, env, now_ms)


def broker_restart(ctx: Ctx, down_s: float = 8.0) -> Report:
    """The Kafka broker stops mid-stream and comes back; the worker rides it out."""
    topic, env, now_ms, log = _setup(ctx, "broker", TOKENLORD_BATCH_SIZE="25")
    first, second = chunks(chaos_stream(now_ms, ctx.seed), 2)
    report = Report("broker stop/start mid-stream")
    produce(ctx.brokers, topic, first)
    worker = start_worker(env, log, stop_at_end=False)
    port, controller = ctx.kafka_ports
    try:
        time.sleep(5)
        local.stop(ctx.kafka_home)
        time.sleep(down_s)
        local.start(ctx.kafka_home, port=port, controller_port=controller, timeout=180)
        back = time.monotonic()
        produce(ctx.brokers, topic, second)
        report.notes["worker_alive_after_outage"] = worker.poll() is None
        time.sleep(10)
        report.notes["worker_alive_10s_later"] = worker.poll() is None
        report.notes["down_s"] = down_s
        report.notes["produced_after_restart_s"] = round(time.monotonic() - back, 2)
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
        report.notes["worker_exit"] = worker.returncode
    _finish(env, log, report)
    return verify(report, ctx.brokers, topic, env, now_ms)


def store_outage(ctx: Ctx, failures: int = 6) -> Report:
    """Store writes fail for a stretch (after a batch's rejections and before its
    events: a partial write); the worker backs off, holds its acks, recovers."""
    topic, env, now_ms, log = _setup(
        ctx, "store", TOKENLORD_BATCH_SIZE="200", TOKENLORD_FAULT_FAIL_WRITES=f"{failures}@_rejected"
    )
    report = Report("store writes failing for a stretch")
    produce(ctx.brokers, topic, chaos_stream(now_ms, ctx.seed))
    _finish(env, log, report)
    text = log.read_text(errors="replace")
    report.notes["retries_logged"] = text.count("retrying in")
    return verify(report, ctx.brokers, topic, env, now_ms)


def redelivery(ctx: Ctx) -> Report:
    """Duplicates and redeliveries: the stream (with producer retries) is
    produced twice, and after the worker finished, a new consumer group reads
    the whole topic again into the same store."""
    topic, env, now_ms, log = _setup(ctx, "redelivery")
    msgs = chaos_stream(now_ms, ctx.seed)
    report = Report("duplicates, replayed file, full redelivery")
    produce(ctx.brokers, topic, msgs)
    produce(ctx.brokers, topic, msgs)  # the same file replayed
    first = start_worker(env, log)
    first.wait(timeout=WORKER_TIMEOUT)
    env = {**env, "TOKENLORD_GROUP_ID": env["TOKENLORD_GROUP_ID"] + "-again"}  # reads from offset 0
    _finish(env, log, report)
    return verify(report, ctx.brokers, topic, env, now_ms)


def honest(i: int, now_ms: int) -> tuple[bytes, bytes]:
    user = f"u{i % 7}"
    ev = {"event_id": f"ok-{i}", "ts": now_ms - 3_600_000 + i, "user": user, "model": "gpt-4o",
          "input_tokens": 100 + i, "output_tokens": 10}  # fmt: skip
    return user.encode(), orjson.dumps(ev)


def hostile_stream(now_ms: int) -> tuple[list[tuple[bytes | None, bytes]], set[str], int, bytes, int]:
    msgs: list[tuple[bytes | None, bytes]] = []
    bad: list[tuple[bytes | None, bytes]] = []
    ids: set[str] = set()
    i = 0

    def some_honest(n: int) -> None:
        nonlocal i
        for _ in range(n):
            key, value = honest(i, now_ms)
            msgs.append((key, value))
            ids.add(f"ok-{i}")
            i += 1

    def hostile(key: bytes | None, value: bytes) -> None:
        msgs.append((key, value))
        bad.append((key, value))

    some_honest(50)
    flood = b"\n".join([b"1"] * 524_000)  # 1 MiB of tiny non-events
    assert len(flood) <= 1 << 20
    hostile(b"u1", flood)
    some_honest(50)
    for n in range(5):
        hostile(b"k" * 100_000 + bytes([48 + n]), b"{not json")
    some_honest(50)
    late = {"event_id": "late-1", "ts": now_ms - 21 * 86_400_000, "user": "u2", "model": "gpt-4o",
            "input_tokens": 1, "pad": ""}  # fmt: skip
    late["pad"] = "x" * ((1 << 20) - len(orjson.dumps(late)) - 16)
    late_value = orjson.dumps(late)
    hostile(b"u2", late_value)
    some_honest(50)
    poison = orjson.dumps({"event_id": "p-1", "ts": now_ms - 60_000, "user": "u3", "model": "gpt-4o",
                           "input_tokens": 5, "note": POISON})  # fmt: skip
    hostile(b"u3", poison)
    some_honest(50)
    for n in range(40):  # rejected (no model), carrying prompt and output text
        ev = {"event_id": f"t-{n}", "ts": now_ms - 60_000, "user": "u4", "prompt": f"{SECRET} prompt {n}",
              "output": f"{SECRET} output {n}"}  # fmt: skip
        hostile(b"u4", orjson.dumps(ev))
    some_honest(50)
    bad_bytes = sum(len(k or b"") + len(v) for k, v in bad)
    return msgs, ids, bad_bytes, poison, len(late_value)


def hostile(ctx: Ctx) -> Report:
    """tests/integration/test_hostile.py's stream (a 1 MiB NDJSON flood of
    non-events, 100 kB keys, a 1 MiB late event, rejected events carrying text,
    between honest events) through one worker, compared with the reference. The
    poison message is not injected here (the reference has no fault to model):
    it is an honest event."""
    topic, env, now_ms, log = _setup(ctx, "hostile", TOKENLORD_BATCH_SIZE="100")
    msgs, *_ = hostile_stream(now_ms)
    report = Report("hostile input between honest events (1 MiB NDJSON flood, 100 kB keys, 1 MiB late event, text)")
    produce(ctx.brokers, topic, msgs)
    _finish(env, log, report)
    return verify(report, ctx.brokers, topic, env, now_ms)


SCENARIOS: dict[str, Callable[..., Report]] = {
    "kill9": kill9,
    "crash_points": crash_points,
    "rebalance": rebalance,
    "store_outage": store_outage,
    "redelivery": redelivery,
    "broker_restart": broker_restart,
    "hostile": hostile,
}
