"""Worker metrics: Pipeline.stats as the pipeline fills it, and its Prometheus exposition."""

from __future__ import annotations

import math
import re
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from tokenlord import metrics as m
from tokenlord.kafka.dlq import Sent
from tokenlord.pipeline import Pipeline
from tokenlord.settings import Settings
from tokenlord.stats import Distribution, Stats
from tokenlord.store.client import RESTORE_COLUMNS, Restored

REPO = Path(__file__).resolve().parents[2]
NOW_MS = 1_795_000_000_000


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text.decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_distribution_buckets_are_cumulative_and_end_at_the_count() -> None:
    d = Distribution((1, 10, 100))
    for v in (0, 1, 2, 10, 11, 1000, 1000):
        d.observe(v)
    assert d.cumulative() == [(1, 2), (10, 4), (100, 5), (math.inf, 7)]
    assert d.count == 7 and d.total == 2024


def test_exposition_of_stats_and_lag() -> None:
    s = Stats(messages=10, accepted=7, duplicates=2, rejected={"invalid_json": 1, "late": 3}, batches=2,
              restores=3, store_retries=4, outcomes=5, outcome_messages=6,
              outcomes_rejected_by_reason={"missing_field:ts": 1}, state_size={"weekly_cells": 12, "dedupe_ids": 7},
              last_flush_at=1234.5, failing="write failed 1 time(s), retrying: boom")  # fmt: skip
    s.batch_messages.observe(4)
    s.batch_messages.observe(6)
    s.flush_seconds.observe(0.02)
    lags = [m.PartitionLag("tokenlord.events", 1, 0, 7), m.PartitionLag("tokenlord.events", 0, 42, 1000),
            m.PartitionLag("tokenlord.outcomes", 0, 5)]  # fmt: skip
    from tokenlord.budgets import Budget, BudgetUse

    uses = [BudgetUse(Budget("team", "core", 1e6, "tokens"), 850_000.0)]
    registry = m.make_registry(m.WorkerCollector(s.snapshot, lambda: lags, version="9.9.9", budgets=lambda: uses))
    got = samples(m.render(registry))
    assert got[("tokenlord_messages_total", ())] == 10
    assert got[("tokenlord_events_accepted_total", ())] == 7
    assert got[("tokenlord_events_duplicate_total", ())] == 2
    assert got[("tokenlord_events_rejected_total", (("reason", "late"),))] == 3
    assert got[("tokenlord_events_rejected_total", (("reason", "invalid_json"),))] == 1
    assert got[("tokenlord_outcomes_total", ())] == 5
    assert got[("tokenlord_outcome_messages_total", ())] == 6
    assert got[("tokenlord_outcomes_rejected_total", (("reason", "missing_field:ts"),))] == 1
    assert got[("tokenlord_store_retries_total", ())] == 4
    assert got[("tokenlord_restores_total", ())] == 3
    assert got[("tokenlord_batches_total", ())] == 2
    assert got[("tokenlord_batch_messages_bucket", (("le", "1"),))] == 0
    assert got[("tokenlord_batch_messages_bucket", (("le", "10"),))] == 2
    assert got[("tokenlord_batch_messages_bucket", (("le", "+Inf"),))] == 2
    assert got[("tokenlord_batch_messages_count", ())] == 2 and got[("tokenlord_batch_messages_sum", ())] == 10
    assert got[("tokenlord_flush_seconds_bucket", (("le", "0.025"),))] == 1
    assert got[("tokenlord_flush_seconds_bucket", (("le", "0.01"),))] == 0
    assert got[("tokenlord_consumer_lag", (("partition", "0"), ("topic", "tokenlord.events")))] == 42
    assert got[("tokenlord_written_offset", (("partition", "0"), ("topic", "tokenlord.events")))] == 1000
    assert got[("tokenlord_written_offset", (("partition", "1"), ("topic", "tokenlord.events")))] == 7
    assert got[("tokenlord_partitions_assigned", (("topic", "tokenlord.events"),))] == 2
    assert got[("tokenlord_window_state", (("kind", "weekly_cells"),))] == 12
    assert got[("tokenlord_store_failing", ())] == 1
    assert got[("tokenlord_last_flush_timestamp_seconds", ())] == 1234.5
    assert got[("tokenlord_build_info", (("version", "9.9.9"),))] == 1
    budget = (("kind", "team"), ("name", "core"), ("unit", "tokens"))
    assert got[("tokenlord_budget_used_ratio", budget)] == 0.85 and got[("tokenlord_budget_limit", budget)] == 1e6
    # Every family is declared in METRICS (and so documented, see below).
    names = {f.name for f in text_string_to_metric_families(m.render(registry).decode())}
    assert names == (set(m.METRICS) - {"tokenlord_build"}) | {"tokenlord_build_info"}


def test_no_lag_series_before_the_consumer_knows() -> None:
    registry = m.make_registry(m.WorkerCollector(Stats().snapshot, lambda: None))
    text = m.render(registry).decode()
    assert "tokenlord_consumer_lag" not in text and "tokenlord_messages_total 0.0" in text
    assert "tokenlord_store_failing 0.0" in text
    assert "tokenlord_budget" not in text  # no budgets set: no budget series


def test_each_app_has_its_own_registry() -> None:
    a, b = Stats(messages=1), Stats(messages=2)
    ra = m.make_registry(m.WorkerCollector(a.snapshot))
    rb = m.make_registry(m.WorkerCollector(b.snapshot))
    assert samples(m.render(ra))[("tokenlord_messages_total", ())] == 1
    assert samples(m.render(rb))[("tokenlord_messages_total", ())] == 2
    assert "tokenlord_messages_total" not in m.render(REGISTRY).decode()


def test_every_metric_is_documented() -> None:
    ops = (REPO / "docs/operations.md").read_text()
    for name, (kind, _) in m.METRICS.items():
        shown = f"{name}_total" if kind == "counter" else (f"{name}_info" if kind == "info" else name)
        assert f"`{shown}" in ops, f"docs/operations.md does not list {shown}"


# ---- the pipeline fills Stats -----------------------------------------------------------


class FakeStore:
    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.written: list[Any] = []
        self.seen_failing: list[str] = []
        self.pipeline: Pipeline | None = None

    def restore_partition(self, partition: int, since: int | None, topic: str | None = None) -> Any:
        return Restored(None, 0, {c: [] for c in RESTORE_COLUMNS}, None)

    def restore_chunk(self, partition: int, since: int, next_offset: int | None, rows: int, after: Any = None) -> Any:
        return {c: [] for c in RESTORE_COLUMNS}, None

    def write_batch(self, batch: Any, topic: str, now_ms: int, *, on_written: Any = None) -> dict[str, int]:
        if self.pipeline is not None and self.pipeline.stats.failing:
            self.seen_failing.append(self.pipeline.stats.failing)
        if self.failures:
            self.failures -= 1
            raise ConnectionError("clickhouse at http://u:secret@h:8123 went away")
        self.written.append(batch)
        return {}


class FakeDLQ:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, rejected: Any, key_of: Any, topic: str, *, acked: Any = None) -> Sent:
        self.sent.append(rejected)
        return Sent(letters=len(rejected["reason"]))


def event(i: int, **kw: Any) -> bytes:
    doc = {"event_id": f"e{i}", "ts": NOW_MS - 60_000, "user": "u", "model": "gpt-4o", "input_tokens": 5, **kw}
    return orjson.dumps(doc)


def test_pipeline_counts_into_stats() -> None:
    store, dlq = FakeStore(), FakeDLQ()
    p = Pipeline(Settings(), store, dlq, clock=lambda: NOW_MS / 1000)
    values = [event(1), event(1), b"{nope", event(2), event(3, ts=NOW_MS + 3_600_000)]
    p.handle([0] * 5, list(range(5)), values, [b"u"] * 5)
    s = p.stats.snapshot()
    assert (s.messages, s.accepted, s.duplicates, s.batches) == (5, 2, 1, 1)
    assert s.rejected == {"invalid_json": 1, "future_timestamp": 1}
    assert s.batch_messages.count == 1 and s.batch_messages.total == 5
    assert s.flush_seconds.count == 1 and s.flush_seconds.total > 0
    assert s.last_flush_at == NOW_MS / 1000
    assert s.state_size["partitions"] == 1 and s.state_size["dedupe_ids"] == 2
    assert s.restores == 1 and s.failing == ""
    p.handle_outcomes([0, 0], [0, 1], [orjson.dumps({"event_id": "e1", "ts": NOW_MS, "user": "u",
                                                     "outcome": "merged"}), b"{nope"], [None, None])  # fmt: skip
    s = p.stats.snapshot()
    assert (s.outcome_messages, s.outcomes, s.outcomes_rejected) == (2, 1, 1)
    assert s.outcomes_rejected_by_reason == {"invalid_json": 1}


def test_a_failing_store_shows_in_stats_until_it_recovers() -> None:
    store = FakeStore(failures=2)
    p = Pipeline(Settings(store_retry_max=200), store, FakeDLQ(), clock=lambda: NOW_MS / 1000)
    store.pipeline = p
    p.handle([0], [0], [event(1)], [None])
    # While retrying, the error was visible (readiness reads it); afterwards it is cleared.
    assert store.seen_failing and store.seen_failing[0].startswith("write failed 1 time(s), retrying:")
    assert p.stats.store_retries == 2 and p.stats.failing == ""
    assert p.stats.snapshot().accepted == 1


def test_snapshot_is_safe_while_the_pipeline_thread_counts() -> None:
    s = Stats()
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            with s.lock:
                s.rejected[f"reason-{i % 50}"] = i
                s.batch_messages.observe(i % 7)
            if i % 100 == 0:
                time.sleep(0.0005)  # let the scraper run

    t = threading.Thread(target=writer)
    t.start()
    try:
        registry = m.make_registry(m.WorkerCollector(s.snapshot))
        deadline = time.monotonic() + 1.0
        scrapes = 0
        while time.monotonic() < deadline or scrapes < 10:
            scrapes += 1
            got = samples(m.render(registry))
            inf = got.get(("tokenlord_batch_messages_bucket", (("le", "+Inf"),)), 0)
            assert inf == got.get(("tokenlord_batch_messages_count", ()), 0)
    finally:
        stop.set()
        t.join()


def test_metric_names_follow_prometheus_conventions() -> None:
    for name, (kind, doc) in m.METRICS.items():
        assert re.fullmatch(r"tokenlord_[a-z_]+", name) and not name.endswith("_total"), name
        assert kind in ("counter", "gauge", "histogram", "info") and doc.endswith("."), name


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_log_formats(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    import logging
    import logging.config

    from tokenlord.logs import logging_config

    logging.config.dictConfig(logging_config("info", fmt))
    try:
        logging.getLogger("tokenlord.test").warning("hello %s", "<world>")
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
    err = capsys.readouterr().err.strip().splitlines()[-1]
    if fmt == "json":
        doc = orjson.loads(err)
        assert doc["level"] == "warning" and doc["logger"] == "tokenlord.test" and doc["msg"] == "hello <world>"
        assert doc["ts"].endswith("+00:00")
    else:
        assert err.endswith("WARNING tokenlord.test: hello <world>")


class FlakyDLQ:
    """Acknowledges the first letter, then fails the batch once (a partly sent batch)."""

    def __init__(self) -> None:
        self.calls: list[set[int]] = []
        self.sent: list[bytes] = []

    def send(self, rejected: Any, key_of: Any, topic: str, *, acked: Any = None) -> Sent:
        self.calls.append(set(acked))
        todo = [i for i in range(len(rejected["reason"])) if i not in acked]
        if len(self.calls) == 1:
            todo = todo[:1]
        for i in todo:
            self.sent.append(rejected["raw"][i])
            acked.add(i)
        if len(self.calls) == 1:
            raise ConnectionError("broker went away mid-batch")
        return Sent(letters=len(todo), truncated=1)


def test_a_retried_dead_letter_batch_does_not_resend_acknowledged_letters() -> None:
    store, dlq = FakeStore(), FlakyDLQ()
    p = Pipeline(Settings(store_retry_max=1), store, dlq, clock=lambda: NOW_MS / 1000)
    p.handle([0] * 3, [0, 1, 2], [b"{a", b"{b", event(1)], [b"u"] * 3)
    assert dlq.calls == [set(), {0}]
    assert dlq.sent == [b"{a", b"{b"]
    s = p.stats.snapshot()
    assert (s.dead_letters_truncated, s.store_retries, s.accepted) == (1, 1, 1)
