"""End to end with hostile input between honest events, on real Kafka and chDB.

One ``tokenlord worker --stop-at-end`` run over: a 1 MiB NDJSON of
non-events, messages with 100 kB keys, a near-1 MiB event rejected as
``late``, an event the core fails on (``TOKENLORD_FAULT_POISON``) and
rejected events carrying prompt text — all between honest events. The worker
must finish by itself with every honest event counted, the DLQ no bigger than
3x the bad input, and a bounded peak RSS (docs/operations.md, "Dead letters").
"""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from e2e import TOKENLORD, dump_views, produce, worker_env
from tokenlord.kafka.admin import consume_all, delete_topics, ensure_topics

pytestmark = pytest.mark.integration

POISON = "POISON-PILL-7f3a"
SECRET = "SECRET-PROMPT-TEXT"
#: Peak RSS of the worker over this run (measured 556 MiB here).
MAX_RSS_BYTES = 1024 * 1024 * 1024
# Runs the worker as its only child and prints the child's peak RSS (KiB on Linux).
RSS_WRAPPER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "print('peak_rss_kib', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


@dataclass
class Run:
    honest_ids: set[str]
    bad_bytes: int  # keys + values of the hostile messages
    proc: subprocess.CompletedProcess[str]
    letters: list[Any]
    views: dict[str, list[dict[str, Any]]]
    poison_value: bytes
    late_bytes: int

    @property
    def peak_rss(self) -> int:
        line = [x for x in self.proc.stderr.splitlines() if x.startswith("peak_rss_kib")][-1]
        return int(line.split()[1]) * 1024


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


@pytest.fixture(scope="module")
def run(kafka_brokers: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    events = f"hostile-{time.time_ns() % 10**12}"
    ensure_topics(kafka_brokers, {events: 3})
    now_ms = int(time.time() * 1000)
    msgs, ids, bad_bytes, poison, late_bytes = hostile_stream(now_ms)
    produce(kafka_brokers, events, msgs)
    store = tmp_path_factory.mktemp("hostile") / "ch"
    env = worker_env(kafka_brokers, events, store, TOKENLORD_FAULT_POISON=POISON, TOKENLORD_BATCH_SIZE="100")
    proc = subprocess.run(
        [sys.executable, "-c", RSS_WRAPPER, TOKENLORD, "worker", "--stop-at-end"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    try:
        letters = consume_all(kafka_brokers, env["TOKENLORD_DLQ_TOPIC"])
        views = dump_views(f"chdb://{store}", "tokenlord")
        yield Run(ids, bad_bytes, proc, letters, views, poison, late_bytes)
    finally:
        delete_topics(kafka_brokers, [events, env["TOKENLORD_DLQ_TOPIC"], env["TOKENLORD_OUTCOMES_TOPIC"]])


def reasons(letters: list[Any]) -> list[str]:
    return [dict(m.headers() or [])["tokenlord.reason"].decode() for m in letters]


def test_the_worker_finishes_and_counts_every_honest_event(run: Run) -> None:
    assert run.proc.returncode == 0, run.proc.stderr[-4000:]
    assert {e["event_id"] for e in run.views["events"]} == run.honest_ids
    total = sum(r["total_tokens"] for r in run.views["leaderboard_weekly"])
    assert total == sum(100 + i + 10 for i in range(len(run.honest_ids)))


def test_dead_letters_are_bounded_by_the_bad_input(run: Run) -> None:
    got = reasons(run.letters)
    # The flood: 100 letters, then the rest of it as one.
    assert got.count("not_an_object") == 100 and got.count("too_many_rejections") == 1
    assert got.count("invalid_json") == 5 and got.count("late") == 1 and got.count("poison") == 1
    assert got.count("missing_field:model") == 40
    dlq_bytes = sum(
        len(m.value() or b"") + len(m.key() or b"") + sum(len(k) + len(v or b"") for k, v in m.headers() or [])
        for m in run.letters
    )
    assert dlq_bytes <= 3 * run.bad_bytes, (dlq_bytes, run.bad_bytes)
    for m in run.letters:
        assert len(m.key() or b"") <= 256
    long_keys = [dict(m.headers() or []) for m in run.letters if dict(m.headers() or []).get("tokenlord.key_truncated")]
    assert [h["tokenlord.key_truncated"] for h in long_keys] == [b"100001"] * 5
    late = [m for m in run.letters if dict(m.headers() or [])["tokenlord.reason"] == b"late"]
    assert len(late[0].value() or b"") == run.late_bytes, "the near-1 MiB late event is kept whole"
    poison = [m for m in run.letters if dict(m.headers() or [])["tokenlord.reason"] == b"poison"]
    assert poison[0].value() == run.poison_value


def test_the_poison_message_is_alerted_and_the_worker_goes_on(run: Run) -> None:
    assert "made the core fail" in run.proc.stderr
    assert "p-1" not in {e["event_id"] for e in run.views["events"]}
    assert "poison" in {r["reason"] for r in run.views["rejected"]}


def test_peak_rss_is_bounded(run: Run) -> None:
    assert run.peak_rss <= MAX_RSS_BYTES, run.peak_rss


def test_no_prompt_or_output_text_is_stored(run: Run) -> None:
    assert run.views["rejected"], "rejections were stored"
    for name, rows in run.views.items():
        assert SECRET not in orjson.dumps(rows, default=str).decode(), name
    for r in run.views["rejected"]:  # raw comes base64-encoded
        assert SECRET.encode() not in base64.b64decode(r["raw"]["b64"]), r["reason"]
