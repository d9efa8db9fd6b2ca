"""Agents on ``tokenlord.events`` and ``tokenlord.outcomes``: batches of raw
messages → the Rust core → ClickHouse.

Each batch is taken without acking (``noack_take``), handed to
:meth:`tokenlord.pipeline.Pipeline.handle` in one call on a dedicated thread
(the core releases the GIL; the event loop keeps heartbeating), and acked only
after everything was durably written. A crash before the ack replays the batch,
and the store's keys and the restored dedupe state make the replay harmless.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import faust
from tokenlord.pipeline import Pipeline
from tokenlord.settings import Settings

from streams import web

log = logging.getLogger("tokenlord.worker")


def register(
    app: faust.App,
    settings: Settings,
    pipeline: Pipeline,
    *,
    stop_at: Mapping[tuple[str, int], int] | None = None,
) -> None:
    """Adds the events and outcomes agents to ``app``.

    ``stop_at``: (topic, partition) → end offset seen at start
    (``--stop-at-end``); the worker commits and exits once it has written
    everything before them.
    """

    def raw_topic(name: str) -> Any:
        return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    topic = raw_topic(settings.events_topic)
    outcomes_topic = raw_topic(settings.outcomes_topic)
    # One thread for every core call and store write: batches apply in order.
    executor = ThreadPoolExecutor(1, thread_name_prefix="tokenlord-core")
    done_up_to: dict[tuple[str, int], int] = {}
    stopping = False

    async def run(fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    async def consume(stream: faust.StreamT[bytes], name: str, handle: Any) -> None:
        # noack_take (faust-streaming >= 0.11) is missing from Faust's StreamT protocol.
        take = stream.noack_take  # type: ignore[attr-defined]
        async for batch in take(settings.batch_size, within=settings.flush_interval / 1000):
            partitions = [e.message.partition for e in batch]
            offsets = [e.message.offset for e in batch]
            values = [e.message.value or b"" for e in batch]
            keys = [e.message.key for e in batch]
            await run(handle, partitions, offsets, values, keys)
            for e in batch:
                await stream.ack(e)
            for p, o in zip(partitions, offsets, strict=True):
                if o + 1 > done_up_to.get((name, p), 0):
                    done_up_to[(name, p)] = o + 1

    @app.agent(topic, name="tokenlord-events")
    async def events(stream: faust.StreamT[bytes]) -> None:
        await consume(stream, settings.events_topic, pipeline.handle)

    @app.agent(outcomes_topic, name="tokenlord-outcomes")
    async def outcomes(stream: faust.StreamT[bytes]) -> None:
        await consume(stream, settings.outcomes_topic, pipeline.handle_outcomes)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, revoked: Any, **_: Any) -> None:
        parts = sorted(tp.partition for tp in revoked if tp.topic == settings.events_topic)
        if parts:
            # Same thread as the batches: runs after the one in flight.
            await run(pipeline.revoke, parts)
            log.info("partitions revoked: %s", parts)

    # /metrics, /healthz, /readyz and the leaderboard page; their store reads
    # run on the same thread as the batches (chDB is not safe across threads).
    web.register(app, settings, pipeline, run, done_up_to)

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
                "caught up with the end offsets seen at start %s: %d messages, %d accepted, "
                "%d duplicates, %d rejected, %d outcomes; stopping",
                {f"{t}[{p}]": o for (t, p), o in sorted(targets.items())},
                s.messages,
                s.accepted,
                s.duplicates,
                sum(s.rejected.values()),
                s.outcomes,
            )
            os.kill(os.getpid(), signal.SIGTERM)
