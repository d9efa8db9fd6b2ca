"""End-to-end helpers shared by the integration tests and benchmarks/reliability.py:
a generated stream with duplicates and hostile input, producing it, running
``tokenlord worker`` processes, reading the public views from another process,
and checking them against the plain-Python reference.
"""

from __future__ import annotations

import base64
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import expected
import orjson
from confluent_kafka import Producer
from reference import Reference, WasteConfig
from tokenlord import _core
from tokenlord.kafka.admin import consume_all
from tokenlord.settings import Settings
from tokenlord.store import stored_raw
from tokenlord.time_utils import DAY_MS as DAY
from tokenlord.time_utils import HOUR_MS as HOUR

REPO = Path(__file__).resolve().parents[1]
TOKENLORD = str(REPO / ".venv/bin/tokenlord")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_stream(now_ms: int, seed: int = 11) -> list[tuple[bytes | None, bytes]]:
    """(key, value) messages: honest traffic over 10 days, then hostile input."""
    rng = random.Random(seed)
    users = [f"user-{i:02d}" for i in range(14)]
    teams = {u: f"team-{i % 4}" for i, u in enumerate(users)}
    models = ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "llama-3.1-70b", "claude-sonnet-4"]
    msgs: list[tuple[bytes | None, bytes]] = []
    sent: list[tuple[bytes, bytes]] = []
    start = now_ms - 10 * DAY
    for i in range(2500):
        user = rng.choice(users)
        ts = start + int((i / 2500) * 10 * DAY) + rng.randrange(0, 30 * 60_000)
        ts = min(ts, now_ms - 1000)
        ev: dict[str, Any] = {
            "event_id": f"ev-{seed}-{i}",
            "user": user,
            "model": rng.choice(models),
            "team": teams[user] if rng.random() > 0.1 else "new-" + teams[user],
        }
        ev["ts"] = (
            ts
            if rng.random() < 0.5
            else time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts / 1000)) + f".{ts % 1000:03d}Z"
        )
        kind = rng.random()
        if kind < 0.1:
            ev["prompt"] = " ".join(
                rng.choice(["alpha", "beta", "δέλτα", "日本語", "fn()", "\n"]) for _ in range(rng.randrange(1, 40))
            )
            ev["output"] = "ok " * rng.randrange(0, 20)
        elif kind < 0.2:
            ev["gen_ai.usage.input_tokens"] = rng.randrange(0, 5000)
            ev["gen_ai.usage.output_tokens"] = rng.randrange(0, 800)
            ev["enduser.id"] = ev.pop("user")
        else:
            ev["input_tokens"] = rng.randrange(0, 20000)
            ev["output_tokens"] = rng.randrange(0, 2000)
            ev["cached_input_tokens"] = rng.randrange(0, ev["input_tokens"] + 1)
        if rng.random() < 0.03:
            ev["status"] = "error"
        value = orjson.dumps(ev)
        msgs.append((user.encode(), value))
        sent.append((user.encode(), value))
    # Duplicates: producer retries shortly after the original, and a replay of
    # the last hours at the end (both inside the 24 h dedupe horizon).
    for _ in range(150):
        j = rng.randrange(len(msgs))
        msgs.insert(min(len(msgs), j + rng.randrange(1, 50)), msgs[j])
    msgs.extend(sent[-120:])
    # Packed messages: an array (with a non-object) and NDJSON (with a bad line).
    u = users[0].encode()
    batch = [orjson.loads(v) for _, v in sent[-5:]]
    batch = [{**e, "event_id": e["event_id"] + "-arr", "user": users[0]} for e in batch if "user" in e]
    msgs.append((u, orjson.dumps([*batch, 42])))
    msgs.append((u, b"\n".join(orjson.dumps({**e, "event_id": e["event_id"] + "-nd"}) for e in batch) + b"\n{oops\n"))
    # Hostile and malformed input.
    recent = now_ms - HOUR
    bad: list[bytes] = [
        b"not json at all",
        b"",
        b"\xff\xfe\x00garbage",
        b"[1, 2]",
        b"null",
        orjson.dumps({"ts": recent, "user": "x", "model": "m", "input_tokens": 1}),
        orjson.dumps({"event_id": "m1", "ts": recent, "user": "x", "input_tokens": 1}),
        orjson.dumps({"event_id": "m2", "ts": "yesterday", "user": "x", "model": "m", "input_tokens": 1}),
        orjson.dumps({"event_id": "m3", "ts": recent, "user": "x", "model": "m", "input_tokens": -4}),
        orjson.dumps({"event_id": "m4", "ts": recent, "user": "x", "model": "m"}),
        orjson.dumps({"event_id": "m5", "ts": recent, "user": "x", "model": "m", "input_tokens": 1, "status": "meh"}),
        orjson.dumps(
            {"event_id": "m6", "ts": recent, "user": "x'); DROP TABLE events; --", "model": "m", "input_tokens": 3}
        ),
        orjson.dumps({"event_id": "m7", "ts": now_ms + 2 * HOUR, "user": "x", "model": "m", "input_tokens": 1}),
        b'{"event_id":"m8","ts":' + str(recent).encode() + b',"user":"x","model":"m","input_tokens":1e309}',
        b'{"event_id":"m9","ts":'
        + str(recent).encode()
        + b',"user":"x","model":"m","input_tokens":1,"pad":"'
        + b"a" * (1 << 20)
        + b'"}',
    ]
    msgs.extend((None, b) for b in bad)
    # Late: two weeks back, after every partition's watermark is near now.
    for i, user in enumerate(users):
        late = {"event_id": f"late-{i}", "ts": now_ms - 15 * DAY, "user": user, "model": "gpt-4o", "input_tokens": 5}
        msgs.append((user.encode(), orjson.dumps(late)))
    return msgs


def user_of(ev: dict[str, Any]) -> str:
    """An event's user under any of its names: the Kafka key a gateway gives it."""
    return str(next((ev[k] for k in ("user", "user_id", "enduser.id") if k in ev), ""))


def produce(brokers: str, topic: str, msgs: list[tuple[bytes | None, bytes]]) -> None:
    p = Producer(
        {"bootstrap.servers": brokers, "enable.idempotence": True, "message.max.bytes": 4 << 20, "linger.ms": 5}
    )
    for i, (key, value) in enumerate(msgs):
        # Keyless messages are spread over partitions deterministically.
        p.produce(topic, value=value, key=key, partition=-1 if key is not None else i % 3)
        p.poll(0)
    assert p.flush(60) == 0


def run_worker(env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """``tokenlord worker --stop-at-end`` to completion."""
    return subprocess.run(
        [TOKENLORD, "worker", "--stop-at-end"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def dump_views(url: str, db: str, *, everything: bool = False) -> dict[str, list[dict[str, Any]]]:
    """The public views (tests/dump_views.py); ``everything``: every table and view, bytes as text."""
    out = subprocess.run(
        [sys.executable, str(REPO / "tests/dump_views.py"), url, db, *(["--all"] if everything else [])],
        capture_output=True, check=True, timeout=120,
    )  # fmt: skip
    views: dict[str, list[dict[str, Any]]] = orjson.loads(out.stdout)
    return views


def reference_for(brokers: str, topic: str, now_ms: int, settings: Settings) -> Reference:
    return reference_from(consume_all(brokers, topic), now_ms, settings)


def reference_from(messages: list[Any], now_ms: int, settings: Settings) -> Reference:
    """The reference's result for these Kafka messages (processed in partition/offset order)."""
    ref = Reference(
        grace_ms=settings.grace,
        dedupe_horizon_ms=settings.dedupe_horizon,
        future_tolerance_ms=settings.future_tolerance,
        max_message_bytes=settings.max_message_bytes,
        prices=settings.prices(),
        count_tokens=lambda text, model: count(text, model, settings),
        waste=WasteConfig(**settings.waste_thresholds()),
        fingerprint_secret=settings.fingerprint_secret(),
        max_elements_per_message=settings.max_elements_per_message,
        max_rejections_per_message=settings.max_rejections_per_message,
        max_rejections_per_batch=settings.max_rejections_per_batch,
    )
    for m in sorted(messages, key=lambda m: (m.partition(), m.offset())):
        ref.process([m.partition()], [m.offset()], [m.value() or b""], now_ms)
    return ref


def count(text: str, model: str, settings: Settings) -> tuple[int, bool]:
    enc, estimated = _core.encoding_for(model, settings.model_encodings_list(), settings.fallback_encoding)
    return _core.count_tokens([text], enc)[0], estimated


def worker_env(brokers: str, events_topic: str, store_dir: Path, **extra: str) -> dict[str, str]:
    """Environment of a worker on ``events_topic`` (DLQ and outcomes topics derived
    from it) with its own consumer group and embedded store."""
    return {
        **os.environ,
        "TOKENLORD_KAFKA_BROKERS": brokers,
        "TOKENLORD_EVENTS_TOPIC": events_topic,
        "TOKENLORD_DLQ_TOPIC": f"{events_topic}.dlq",
        "TOKENLORD_OUTCOMES_TOPIC": f"{events_topic}.outcomes",
        "TOKENLORD_GROUP_ID": f"it-{uuid.uuid4().hex[:8]}",
        "TOKENLORD_CLICKHOUSE_URL": f"chdb://{store_dir}",
        "TOKENLORD_WEB_PORT": str(free_port()),
        "TOKENLORD_FLUSH_INTERVAL": "200ms",
        "TOKENLORD_SESSION_TIMEOUT": "6s",  # a killed worker's partitions move on quickly
        **extra,
    }


def start_worker(env: dict[str, str], log: Path, *, stop_at_end: bool = True) -> subprocess.Popen[bytes]:
    """A worker process writing its stderr to ``log`` (appended)."""
    args = [TOKENLORD, "worker", *(["--stop-at-end"] if stop_at_end else [])]
    with log.open("ab") as f:
        return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=f)


@dataclass
class Report:
    """What a scenario did to the numbers, against the reference."""

    scenario: str
    messages: int = 0
    events_expected: int = 0
    events_counted: int = 0
    lost_events: int = 0  # accepted by the reference, missing from `events`
    extra_events: int = 0  # in `events`, not accepted by the reference
    tokens_expected: int = 0
    tokens_counted: int = 0
    lost_tokens: int = 0  # leaderboard cells below the reference
    double_counted_tokens: int = 0  # leaderboard cells above the reference
    rejected: dict[str, int] = field(default_factory=dict)
    dlq_missing: int = 0  # rejections with no dead letter
    dlq_redelivered: int = 0  # extra copies of dead letters (the DLQ is at-least-once)
    views_exact: bool = False  # leaderboard_weekly, usage_hourly, rejected, events equal the reference's
    recovery_s: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.views_exact and not (self.lost_events or self.extra_events or self.lost_tokens
                                         or self.double_counted_tokens or self.dlq_missing)  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def dead_letters(brokers: str, dlq_topic: str) -> list[tuple[int, int, int, str, bytes]]:
    """Every dead letter as (src_partition, src_offset, idx, reason, value), from its headers."""
    out = []
    for m in consume_all(brokers, dlq_topic):
        h = dict(m.headers() or [])
        out.append((int(h["tokenlord.src_partition"]), int(h["tokenlord.src_offset"]), int(h["tokenlord.idx"]),
                    h["tokenlord.reason"].decode(), m.value() or b""))  # fmt: skip
    return out


def verify(report: Report, brokers: str, topic: str, env: dict[str, str], now_ms: int) -> Report:
    """Fills ``report`` by comparing the store and the DLQ with the reference run
    over every message of ``topic``."""
    settings = Settings.from_env(environ=env)
    messages = consume_all(brokers, topic)
    ref = reference_from(messages, now_ms, settings)
    views = dump_views(settings.clickhouse_url, settings.database)
    want_ids = Counter(e["event_id"] for e in ref.events())
    got_ids = Counter(e["event_id"] for e in views["events"])
    report.messages = len(messages)
    report.events_expected, report.events_counted = sum(want_ids.values()), sum(got_ids.values())
    report.lost_events = sum((want_ids - got_ids).values())
    report.extra_events = sum((got_ids - want_ids).values())

    want_lb = expected.leaderboard(ref)
    got_lb = sorted(views["leaderboard_weekly"], key=lambda r: (r["week_start"], r["rank"]))
    want_cells = {(r["week_start"], r["user"]): r["total_tokens"] for r in want_lb}
    got_cells = {(r["week_start"], r["user"]): r["total_tokens"] for r in got_lb}
    report.tokens_expected, report.tokens_counted = sum(want_cells.values()), sum(got_cells.values())
    for k in want_cells.keys() | got_cells.keys():
        diff = got_cells.get(k, 0) - want_cells.get(k, 0)
        report.double_counted_tokens += max(diff, 0)
        report.lost_tokens += max(-diff, 0)
        if diff:
            report.notes.setdefault("cells_off", []).append((str(k[0]), k[1], diff))

    want_rej = expected.rejected(ref)
    report.rejected = dict(Counter(r[3] for r in want_rej).most_common())
    got_rej = sorted(
        (r["src_partition"], r["src_offset"], r["reason"], base64.b64decode(r["raw"]["b64"])) for r in views["rejected"]
    )
    dlq = Counter(dead_letters(brokers, f"{topic}.dlq"))
    report.dlq_missing = sum(1 for r in want_rej if r not in dlq)
    report.dlq_redelivered = sum(n - 1 for n in dlq.values())
    try:
        expected.approx_equal_rows(got_lb, want_lb, ("cost_usd", "waste_ratio"))
        expected.approx_equal_rows(views["usage_hourly"], expected.usage_hourly(ref), ("cost_usd",))
        want_rows = Counter(
            (p, o, reason, kept)
            for (p, o, _i, reason, _raw), kept in zip(want_rej, stored_raw([r[4] for r in want_rej]), strict=True)
        )
        got_rows = Counter(got_rej)
        assert got_rows == want_rows, {
            "rejected_missing": [r[:3] for r in (want_rows - got_rows).elements()][:20],
            "rejected_extra": [r[:3] for r in (got_rows - want_rows).elements()][:20],
        }
        assert got_ids == want_ids
        report.views_exact = True
    except AssertionError as exc:
        report.notes["mismatch"] = str(exc)[:2000]
    return report
