"""End to end against real Kafka and embedded ClickHouse: a generated stream with
duplicates, malformed, late, future and oversized input goes through
``tokenlord worker --stop-at-end``; every public view and the DLQ topic must
equal what the plain-Python reference computes from the same messages."""

from __future__ import annotations

import base64
import datetime as dt
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import expected
import orjson
import pytest
from confluent_kafka import Producer
from reference import Reference
from tokenlord import _core
from tokenlord.kafka.admin import consume_all
from tokenlord.settings import Settings

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
HOUR = 3_600_000
DAY = 24 * HOUR


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
    return subprocess.run(
        [str(REPO / ".venv/bin/tokenlord"), "worker", "--stop-at-end"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def dump_views(url: str, db: str) -> dict[str, list[dict[str, Any]]]:
    out = subprocess.run(
        [sys.executable, str(REPO / "tests/dump_views.py"), url, db], capture_output=True, check=True, timeout=120
    )
    views: dict[str, list[dict[str, Any]]] = orjson.loads(out.stdout)
    return views


def reference_for(brokers: str, topic: str, now_ms: int, settings: Settings) -> Reference:
    ref = Reference(
        grace_ms=settings.grace,
        dedupe_horizon_ms=settings.dedupe_horizon,
        future_tolerance_ms=settings.future_tolerance,
        max_message_bytes=settings.max_message_bytes,
        prices=settings.prices(),
        count_tokens=lambda text, model: count(text, model, settings),
    )
    messages = consume_all(brokers, topic)
    for m in sorted(messages, key=lambda m: (m.partition(), m.offset())):
        ref.process([m.partition()], [m.offset()], [m.value() or b""], now_ms)
    return ref


def count(text: str, model: str, settings: Settings) -> tuple[int, bool]:
    enc, estimated = _core.encoding_for(model, settings.model_encodings_list(), settings.fallback_encoding)
    return _core.count_tokens([text], enc)[0], estimated


def test_worker_matches_reference_exactly(kafka_brokers: str, topic: Any, tmp_path: Path) -> None:
    events_topic = topic("events", 3)
    dlq_topic = topic("dlq", 3)
    now_ms = int(time.time() * 1000)
    msgs = make_stream(now_ms)
    produce(kafka_brokers, events_topic, msgs)
    url = f"chdb://{tmp_path / 'ch'}"
    env = {
        **os.environ,
        "TOKENLORD_KAFKA_BROKERS": kafka_brokers,
        "TOKENLORD_EVENTS_TOPIC": events_topic,
        "TOKENLORD_DLQ_TOPIC": dlq_topic,
        "TOKENLORD_OUTCOMES_TOPIC": f"{events_topic}.outcomes",
        "TOKENLORD_GROUP_ID": f"it-{uuid.uuid4().hex[:8]}",
        "TOKENLORD_CLICKHOUSE_URL": url,
        "TOKENLORD_WEB_PORT": str(free_port()),
        "TOKENLORD_BATCH_SIZE": "300",
        "TOKENLORD_FLUSH_INTERVAL": "200ms",
    }
    proc = run_worker(env)
    assert proc.returncode == 0, proc.stderr[-4000:]

    settings = Settings.from_env(environ=env)
    ref = reference_for(kafka_brokers, events_topic, now_ms, settings)
    views = dump_views(url, settings.database)

    # Every accepted event once, none of the bad ones.
    assert sorted(e["event_id"] for e in views["events"]) == sorted(e["event_id"] for e in ref.events())
    assert ref.duplicates >= 250

    want_lb = expected.leaderboard(ref)
    got_lb = sorted(views["leaderboard_weekly"], key=lambda r: (r["week_start"], r["rank"]))
    assert len({r["week_start"] for r in want_lb}) >= 2, "the stream spans a week boundary"
    expected.approx_equal_rows(got_lb, want_lb, ("cost_usd", "waste_ratio"))
    assert any(r["final"] for r in got_lb) and any(not r["final"] for r in got_lb)

    expected.approx_equal_rows(views["usage_hourly"], expected.usage_hourly(ref), ("cost_usd",))

    want_rej = expected.rejected(ref)
    got_rej = sorted(
        (r["src_partition"], r["src_offset"], r["reason"], base64.b64decode(r["raw"]["b64"])) for r in views["rejected"]
    )
    assert got_rej == sorted((p, o, reason, raw[:4096]) for p, o, _i, reason, raw in want_rej)
    reasons = {r[3] for r in want_rej}
    assert {
        "invalid_json",
        "not_an_object",
        "too_large",
        "missing_field:event_id",
        "missing_field:model",
        "invalid_field:ts",
        "out_of_range:input_tokens",
        "missing_usage",
        "invalid_field:status",
        "future_timestamp",
        "late",
    } <= reasons
    # The SQL-looking user is stored verbatim, never executed.
    assert "x'); DROP TABLE events; --" in {e["user"] for e in views["events"]}

    dlq = consume_all(kafka_brokers, dlq_topic)
    got_dlq = sorted(
        (
            int(dict(m.headers())["tokenlord.src_partition"]),
            int(dict(m.headers())["tokenlord.src_offset"]),
            int(dict(m.headers())["tokenlord.idx"]),
            dict(m.headers())["tokenlord.reason"].decode(),
            m.value(),
        )
        for m in dlq
    )
    assert got_dlq == want_rej


def test_a_token_maxxer_tops_raw_and_drops_in_effective(kafka_brokers: str, topic: Any, tmp_path: Path) -> None:
    events_topic = topic("maxxer", 3)
    now_ms = int(time.time() * 1000)
    rng = random.Random(5)
    vocab = [f"w{i}" for i in range(3000)]

    def text(n: int) -> str:
        return " ".join(rng.choice(vocab) for _ in range(n))

    msgs: list[tuple[bytes | None, bytes]] = []
    t0 = now_ms - 3 * 3_600_000
    monday = (now_ms // DAY - (now_ms // DAY + 3) % 7) * DAY
    if t0 < monday:  # keep the whole story (~2 h) inside one week
        t0 = monday - 4 * 3_600_000
    for u in range(6):  # honest: varied prompts and answers, a regeneration now and then
        for i in range(25):
            prompt = text(rng.randrange(100, 600))
            for j in range(2 if i % 10 == 0 else 1):
                ev = {"event_id": f"h{u}-{i}-{j}", "ts": t0 + u * 1000 + i * 300_000 + j * 20_000,
                      "user": f"honest-{u}", "model": "gpt-4o", "prompt": prompt, "output": text(300)}  # fmt: skip
                msgs.append((ev["user"].encode(), orjson.dumps(ev)))
    loop_prompt, loop_answer = text(1500), text(200)
    for i in range(60):  # an agent stuck in a loop: ~1,700 tokens a call, every 5 s
        ev = {"event_id": f"g-{i}", "ts": t0 + i * 5000, "user": "maxxer", "model": "gpt-4o",
              "prompt": f"{loop_prompt} [step {i}]", "output": loop_answer}  # fmt: skip
        msgs.append((b"maxxer", orjson.dumps(ev)))
    produce(kafka_brokers, events_topic, msgs)
    # What honest-0's work achieved (by event and by session), and one bad outcome.
    outcomes_topic = topic("outcomes", 3)
    outcomes = [
        {"event_id": f"h0-{i}-0", "ts": t0 + 3_600_000, "user": "honest-0", "outcome": "merged", "value": 2.0}
        for i in range(3)
    ]
    produce(
        kafka_brokers,
        outcomes_topic,
        [(b"honest-0", orjson.dumps(o)) for o in outcomes] + [(b"x", b'{"event_id": "h0-1-0", "user": "x"}')],
    )
    url = f"chdb://{tmp_path / 'ch'}"
    env = {
        **os.environ,
        "TOKENLORD_KAFKA_BROKERS": kafka_brokers,
        "TOKENLORD_EVENTS_TOPIC": events_topic,
        "TOKENLORD_DLQ_TOPIC": f"{events_topic}.dlq",
        "TOKENLORD_OUTCOMES_TOPIC": outcomes_topic,
        "TOKENLORD_GROUP_ID": f"it-{uuid.uuid4().hex[:8]}",
        "TOKENLORD_CLICKHOUSE_URL": url,
        "TOKENLORD_WEB_PORT": str(free_port()),
        "TOKENLORD_FLUSH_INTERVAL": "200ms",
    }
    proc = run_worker(env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    week = dt.datetime.fromtimestamp(t0 / 1000, tz=dt.UTC).date().isoformat()
    board = subprocess.run(
        [str(REPO / ".venv/bin/tokenlord"), "leaderboard", "--week", week, "--format", "json"],
        env=env, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    rows = {r["user"]: r for r in orjson.loads(board.stdout)}
    assert rows["maxxer"]["rank"] == 1 and rows["maxxer"]["title"] == "", rows
    assert rows["maxxer"]["effective_rank"] == len(rows), "the loop's tokens are discounted"
    assert rows["maxxer"]["waste_ratio"] > 0.95
    assert all(rows[f"honest-{u}"]["wasted_tokens"] == 0 for u in range(6)), "regenerations are free"
    why = subprocess.run(
        [str(REPO / ".venv/bin/tokenlord"), "explain", "maxxer", "--week", week],
        env=env, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    assert "agent_loop: 59 requests" in why.stdout and "e.g. g-" in why.stdout
    assert rows["honest-0"]["outcomes"] == 3 and rows["maxxer"]["outcomes"] == 0
    views = dump_views(url, "tokenlord")
    value = {r["user"]: r for r in views["value_weekly"]}
    assert value["honest-0"]["value"] == 6.0 and value["honest-0"]["attributed_tokens"] > 0
    assert [(r["reason"], r["src_topic"]) for r in views["rejected"]] == [("missing_field:ts", outcomes_topic)]
