"""The worker's consumers of ``tokenlord.events``, ``tokenlord.outcomes`` and,
when ``TOKENLORD_OTLP_TOPIC`` is set, the OpenTelemetry traces topic: whole
fetches of raw messages → the Rust core → ClickHouse.

Faust runs the worker (consumer group, rebalances, commits, web server,
signals) but its per-event stream path is skipped for these two topics:
:class:`streams.consumer.BatchConsumer` hands each fetch to a
:class:`streams.batches.Batcher`, which cuts batches of up to
``TOKENLORD_BATCH_SIZE`` messages (or what arrived within
``TOKENLORD_FLUSH_INTERVAL``), runs the core on one thread while the previous
batch is written on another, and reports a batch's offsets for commit only
after everything was durably written. A crash before that replays the batch,
and the store's keys, ``_progress`` and the restored state make the replay
harmless (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import faust
from faust.types import TP
from tokenlord.pipeline import Pipeline
from tokenlord.settings import Settings

from streams import budgets, digest, web
from streams.batches import Batcher, Stage
from streams.consumer import BatchConsumer

log = logging.getLogger("tokenlord.worker")


def register(
    app: faust.App,
    settings: Settings,
    pipeline: Pipeline,
    *,
    stop_at: Mapping[tuple[str, int], int] | None = None,
) -> None:
    """Subscribes ``app`` to the events, outcomes (and OTLP) topics and adds their batchers.

    ``stop_at``: (topic, partition) → end offset seen at start
    (``--stop-at-end``); the worker commits and exits once it has written
    everything before them.
    """
    topics = [settings.events_topic, settings.outcomes_topic, *([settings.otlp_topic] if settings.otlp_topic else [])]
    for name in topics:
        app.topics.add(app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"))
    # The core thread runs the core; the store thread every store access
    # (writes, restores, page reads: chDB is not safe across threads).
    core_thread = ThreadPoolExecutor(1, thread_name_prefix="tokenlord-core")
    store_thread = ThreadPoolExecutor(1, thread_name_prefix="tokenlord-store")
    done_up_to: dict[tuple[str, int], int] = {}
    stopping = False

    def on_thread(executor: ThreadPoolExecutor) -> Any:
        async def run(fn: Any, *args: Any) -> Any:
            return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

        return run

    run_core, run_store = on_thread(core_thread), on_thread(store_thread)

    def consumer() -> BatchConsumer:
        c = app.consumer
        assert isinstance(c, BatchConsumer), "streams.app.App makes the worker's consumer"
        return c

    def on_done(ends: dict[TP, int]) -> None:
        consumer().batch_done(ends)
        for tp, end in ends.items():
            key = (tp.topic, tp.partition)
            if end > done_up_to.get(key, 0):
                done_up_to[key] = end

    def batcher(topic: str, stage: Stage) -> Batcher:
        return Batcher(
            topic,
            stage,
            run_core=run_core,
            run_store=run_store,
            max_messages=settings.batch_size,
            max_bytes=settings.batch_bytes,
            flush_interval=settings.flush_interval / 1000,
            assignment=lambda: consumer().assignment(),
            on_done=on_done,
        )

    events = batcher(
        settings.events_topic,
        Stage(pipeline.prepare, pipeline.write, pipeline.new_partitions, pipeline.restore),
    )
    outcomes = batcher(settings.outcomes_topic, Stage(pipeline.prepare_outcomes, pipeline.write))
    # The OTLP topic: the same stages, its partitions kept apart in the core (pipeline.Source).
    usage = [(events, pipeline.events)]
    otlp = pipeline.otlp
    if otlp is not None:
        stage = Stage(
            functools.partial(pipeline.prepare, source=otlp),
            pipeline.write,
            functools.partial(pipeline.new_partitions, source=otlp),
            functools.partial(pipeline.restore, source=otlp),
        )
        usage.append((batcher(otlp.topic, stage), otlp))
    batchers = [events, outcomes, *(b for b, _ in usage[1:])]

    @app.task  # type: ignore[untyped-decorator]
    async def run_batchers() -> None:
        c = consumer()
        for b in batchers:
            c.add_batch_sink(b.topic, b)
        await asyncio.gather(*(b.run() for b in batchers))

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, revoked: Any, **_: Any) -> None:
        for b, source in usage:
            parts = sorted(tp.partition for tp in revoked if tp.topic == source.topic)
            if parts:
                # After the batch in flight is written; none starts meanwhile.
                await b.exclusive(pipeline.revoke, parts, source)
                log.info("partitions of %s revoked: %s", source.topic, parts)

    # /metrics, /healthz, /readyz and the leaderboard page; their store reads
    # run on the store thread.
    web.register(app, settings, pipeline, run_store, done_up_to, budgets.register(app, settings, pipeline))
    digest.register(app, settings, pipeline)

    if stop_at is not None:
        targets = {p: o for p, o in stop_at.items() if o > 0}

        @app.timer(0.2)  # type: ignore[untyped-decorator]
        async def stop_when_caught_up() -> None:
            nonlocal stopping
            if stopping or any(done_up_to.get(tp, 0) < end for tp, end in targets.items()):
                return
            stopping = True
            await app.consumer.commit()
            s = pipeline.stats
            log.info(
                "caught up with the end offsets seen at start %s: %d messages, %d OTLP records "
                "(%d spans skipped), %d accepted, %d duplicates, %d rejected, %d outcomes; stopping",
                {f"{t}[{p}]": o for (t, p), o in sorted(targets.items())},
                s.messages,
                s.otlp_messages,
                s.skipped_spans,
                s.accepted,
                s.duplicates,
                sum(s.rejected.values()),
                s.outcomes,
            )
            os.kill(os.getpid(), signal.SIGTERM)
