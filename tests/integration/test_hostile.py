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
from chaos import POISON, SECRET, hostile_stream
from e2e import TOKENLORD, dump_views, produce, worker_env
from tokenlord.kafka.admin import consume_all, delete_topics, ensure_topics

pytestmark = pytest.mark.integration

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
