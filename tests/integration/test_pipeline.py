"""End to end against real Kafka and embedded ClickHouse: a generated stream with
duplicates, malformed, late, future and oversized input goes through
``tokenlord worker --stop-at-end``; every public view and the DLQ topic must
equal what the plain-Python reference computes from the same messages."""

from __future__ import annotations

import base64
import datetime as dt
import os
import random
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import expected
import orjson
import pytest
from e2e import DAY, REPO, dead_letters, dump_views, free_port, make_stream, produce, reference_for, run_worker
from tokenlord.settings import Settings
from tokenlord.store import stored_raw

pytestmark = pytest.mark.integration


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
    # No outcomes: nobody has value, the value board goes by name.
    want_value = expected.value_weekly(ref, (), settings.value_tokens_per_credit)
    expected.approx_equal_rows(views["value_weekly"], want_value, expected.VALUE_FLOATS)
    assert not any(r["value_tokens"] for r in want_value)

    want_rej = expected.rejected(ref)
    got_rej = sorted(
        (r["src_partition"], r["src_offset"], r["reason"], base64.b64decode(r["raw"]["b64"])) for r in views["rejected"]
    )
    assert got_rej == sorted(
        (p, o, reason, kept)
        for (p, o, _i, reason, _raw), kept in zip(want_rej, stored_raw([r[4] for r in want_rej]), strict=True)
    )
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

    assert sorted(dead_letters(kafka_brokers, dlq_topic)) == want_rej


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
    # What honest-0's and honest-1's work achieved, a rejected piece of work, a claim
    # on a colleague's request, and one bad outcome.
    outcomes_topic = topic("outcomes", 3)
    outcomes = [
        {"event_id": f"h0-{i}-0", "ts": t0 + 3_600_000, "user": "honest-0", "outcome": "merged", "value": 2.0}
        for i in range(3)
    ] + [
        {"event_id": "h1-2-0", "ts": t0 + 3_600_000, "user": "honest-1", "outcome": "resolved"},
        {"event_id": "h1-4-0", "ts": t0 + 3_600_000, "user": "honest-1", "outcome": "rejected", "value": 3.0},
        {"event_id": "h1-6-0", "ts": t0 + 3_600_000, "user": "honest-2", "outcome": "merged", "value": 4.0},
    ]
    produce(
        kafka_brokers,
        outcomes_topic,
        [(o["user"].encode(), orjson.dumps(o)) for o in outcomes] + [(b"x", b'{"event_id": "h0-1-0", "user": "x"}')],
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
        # Small enough that every honest request outweighs it: the worker's init-db writes it into value_weekly.
        "TOKENLORD_VALUE_TOKENS_PER_CREDIT": "300",
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
    ref = reference_for(kafka_brokers, events_topic, now_ms, Settings.from_env(environ=env))
    expected.approx_equal_rows(views["value_weekly"], expected.value_weekly(ref, outcomes, 300), expected.VALUE_FLOATS)
    got_lb = sorted(views["leaderboard_weekly"], key=lambda r: (r["week_start"], r["rank"]))
    expected.approx_equal_rows(got_lb, expected.leaderboard(ref, outcomes=outcomes), ("cost_usd", "waste_ratio"))
    # Capped at 300 per credit: honest-0's three merges (credit 6), honest-1's one resolution (its rejected
    # work is no credit); honest-2's claim on honest-1's request and the loop earn nothing: by name.
    credits = [(value[u]["credit"], value[u]["value_tokens"]) for u in ("honest-0", "honest-1", "honest-2")]
    assert credits == [(6.0, 1800), (1.0, 300), (0.0, 0)]
    by_value = subprocess.run(
        [str(REPO / ".venv/bin/tokenlord"), "leaderboard", "--week", week, "--by", "value", "--format", "json"],
        env=env, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    by_name = ["honest-2", "honest-3", "honest-4", "honest-5", "maxxer"]
    assert [r["user"] for r in orjson.loads(by_value.stdout)] == ["honest-0", "honest-1", *by_name]
    assert [r["value_rank"] for r in orjson.loads(by_value.stdout)] == list(range(1, 8))
    assert [(r["reason"], r["src_topic"]) for r in views["rejected"]] == [("missing_field:ts", outcomes_topic)]
