"""Fault injection against real Kafka and embedded ClickHouse: kill -9 at random
moments, a self-kill after each write step, consumer-group churn, failing store
writes, duplicates and full redelivery, and a broker restart. In every scenario
each public view must equal the reference's exactly: nothing lost, nothing
counted twice (tests/chaos.py has the scenarios; benchmarks/reliability.py
prints them as a table)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import chaos
import orjson
import pytest
from e2e import DAY, dump_views, produce, start_worker, worker_env
from tokenlord.settings import Settings

pytestmark = pytest.mark.integration
SEED = int(os.environ.get("TOKENLORD_CHAOS_SEED", "1"))


@pytest.fixture
def ctx(kafka_brokers: str, kafka_home: Path, kafka_ports: tuple[int, int], topic: Callable[..., str],
        tmp_path: Path) -> chaos.Ctx:  # fmt: skip
    return chaos.Ctx(kafka_brokers, kafka_home, kafka_ports, tmp_path, topic, seed=SEED)


def check(report: chaos.Report) -> None:
    summary = {k: v for k, v in report.as_dict().items() if k != "notes"}
    assert report.events_expected > 2000 and report.rejected, summary
    assert report.lost_events == 0 and report.extra_events == 0, (summary, report.notes)
    assert report.lost_tokens == 0 and report.double_counted_tokens == 0, (summary, report.notes)
    assert report.dlq_missing == 0, (summary, report.notes)
    assert report.views_exact, (summary, report.notes)


def test_kill9_at_random_moments(ctx: chaos.Ctx) -> None:
    report = chaos.kill9(ctx, kills=20)
    check(report)
    assert report.notes["kills"] >= 15, report.notes  # most lives end by SIGKILL, not by finishing


def test_self_kill_after_each_write_step(ctx: chaos.Ctx) -> None:
    report = chaos.crash_points(ctx)
    check(report)
    assert sum(outcome == "killed" for _, outcome in report.notes["lives"]) >= 5, report.notes


def test_a_first_batch_killed_before_its_progress_counts_as_unapplied(ctx: chaos.Ctx) -> None:
    """The first batch of a partition writes ``_events`` and dies before ``_progress``:
    an event of an old week first, then this week's. The restart must not take the
    orphaned rows as applied (this week's watermark would make the old event late on
    the replay: its row stays in ``events`` but its week's cell is never counted)."""
    topic = ctx.make_topic("first-batch", 1)
    log = ctx.workdir / "first-batch.log"
    now = int(time.time() * 1000)
    old = now - 21 * DAY
    evs = [{"event_id": f"fb-{i}", "ts": ts, "user": "backfiller", "model": "gpt-4o", "input_tokens": 100,
            "output_tokens": 7} for i, ts in enumerate((old, now - 2000, now - 1000))]  # fmt: skip
    produce(ctx.brokers, topic, [(b"backfiller", orjson.dumps(e)) for e in evs])
    env = worker_env(ctx.brokers, topic, ctx.workdir / "first-batch-ch")
    proc = start_worker({**env, "TOKENLORD_FAULT_CRASH_AT": "_events:1"}, log)
    assert proc.wait(timeout=chaos.WORKER_TIMEOUT) == -signal.SIGKILL, log.read_text()[-3000:]
    assert start_worker(env, log).wait(timeout=chaos.WORKER_TIMEOUT) == 0, log.read_text()[-3000:]
    s = Settings.from_env(environ=env)
    views = dump_views(s.clickhouse_url, s.database)
    assert sorted(e["event_id"] for e in views["events"]) == ["fb-0", "fb-1", "fb-2"]
    assert views["rejected"] == [], views["rejected"]
    cells = sorted((str(r["week_start"]), r["total_tokens"]) for r in views["leaderboard_weekly"])
    assert [t for _, t in cells] == [107, 214], cells  # the old week's cell and this week's


def test_store_writes_failing_for_a_stretch(ctx: chaos.Ctx) -> None:
    report = chaos.store_outage(ctx, failures=6)
    check(report)
    assert report.notes["retries_logged"] == 6


def test_duplicates_replays_and_full_redelivery(ctx: chaos.Ctx) -> None:
    report = chaos.redelivery(ctx)
    check(report)
    assert report.events_expected < report.messages  # the second copy was all duplicates


def test_group_members_joining_and_leaving(ctx: chaos.Ctx) -> None:
    report = chaos.rebalance(ctx, cycles=3)
    check(report)
    assert report.notes["revocations"] >= 3, report.notes


def test_broker_restart_mid_stream(ctx: chaos.Ctx) -> None:
    # Last in the module: the session's broker goes down and comes back.
    report = chaos.broker_restart(ctx)
    check(report)
    assert report.notes["worker_alive_10s_later"], report.notes


def test_hostile_input_between_honest_events(ctx: chaos.Ctx) -> None:
    report = chaos.hostile(ctx)
    summary = {k: v for k, v in report.as_dict().items() if k != "notes"}
    assert report.events_expected == 301 and report.events_counted == 301, (summary, report.notes)  # 300 + p-1
    assert report.lost_events == report.extra_events == report.lost_tokens == report.double_counted_tokens == 0
    assert report.dlq_missing == 0 and report.views_exact, (summary, report.notes)
    assert {"too_many_rejections", "late", "invalid_json", "missing_field:model"} <= set(report.rejected), summary
