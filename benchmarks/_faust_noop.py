"""A Faust worker that only consumes: the worker's app and take/ack loop, no pipeline.

Run by ``e2e_worker.py`` as a subprocess with the same ``TOKENLORD_*``
environment as ``tokenlord worker --stop-at-end``. It builds the Faust app with
``streams.app.create_app`` (the worker's configuration), takes batches with
``noack_take(batch_size, within=flush_interval)`` and acks every event, exactly
like ``streams/events.py``, but hands the batch to nothing. It stops at the end
offsets seen at start (or after ``BENCH_NOOP_MAX_MESSAGES``) and prints one
JSON line: epoch seconds of the first batch and of the moment it caught up,
and the number of messages taken by then.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import Any

import faust
from tokenlord.kafka.admin import end_offsets
from tokenlord.settings import Settings

from streams.app import create_app


def main() -> int:
    settings = Settings.from_env()
    ends = {p: o for p, o in end_offsets(settings.kafka_brokers, settings.events_topic).items()
            if o > 0}  # fmt: skip
    # BENCH_NOOP_MAX_MESSAGES: stop after about that many messages (the same share of
    # every partition), to measure the rate without reading a whole long topic.
    limit = int(os.environ.get("BENCH_NOOP_MAX_MESSAGES", "0"))
    share = min(1.0, limit / sum(ends.values())) if limit > 0 and ends else 1.0
    targets = {p: max(1, int(o * share)) for p, o in ends.items()}
    app = create_app(settings, batch_consumer=False)  # Faust's own per-event consumer
    topic = app.topic(
        settings.events_topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    done_up_to: dict[int, int] = {}
    marks: dict[str, Any] = {"first_batch": None, "caught_up": None, "messages": 0, "batches": 0}

    @app.agent(topic, name="noop-events")
    async def events(stream: faust.StreamT[bytes]) -> None:
        async for batch in stream.noack_take(settings.batch_size, within=settings.flush_interval / 1000):
            if marks["first_batch"] is None:
                marks["first_batch"] = time.time()
            for e in batch:
                await stream.ack(e)
            for e in batch:
                p, o = e.message.partition, e.message.offset
                if o + 1 > done_up_to.get(p, 0):
                    done_up_to[p] = o + 1
            marks["messages"] += len(batch)
            marks["batches"] += 1

    @app.timer(0.2)
    async def stop_when_caught_up() -> None:
        if marks["caught_up"] is not None:
            return
        if any(done_up_to.get(p, 0) < end for p, end in targets.items()):
            return
        marks["caught_up"] = time.time()
        marks["target_messages"] = sum(targets.values())
        await app.consumer.commit()
        print(json.dumps(marks), flush=True)
        os.kill(os.getpid(), signal.SIGTERM)

    worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
