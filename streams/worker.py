"""``tokenlord worker``: one Faust worker process of the consumer group.

Scale out by starting more processes with the same ``TOKENLORD_GROUP_ID``:
Kafka's group protocol spreads the events topic's partitions over them, and
each partition's state lives with its owner (restored from the store when a
partition moves).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import faust
from tokenlord.kafka.admin import KafkaAdminError, ensure_topics, topic_config, unfinished
from tokenlord.kafka.dlq import DeadLetters, topic_max_message_bytes
from tokenlord.kafka.security import client_config
from tokenlord.logs import logging_config
from tokenlord.pipeline import Pipeline
from tokenlord.settings import Settings
from tokenlord.store import Store, open_store

from streams.app import create_app
from streams.events import register

log = logging.getLogger("tokenlord.worker")


#: A broker's default message.max.bytes (a topic without its own limit).
BROKER_DEFAULT_MESSAGE_BYTES = 1_048_588

#: Allocations between young-generation collections (CPython's default is 700).
GC_GEN0_THRESHOLD = 50_000


def tune_gc() -> None:
    """Keep Python's cyclic garbage collector off the hot path.

    A fetch makes tens of thousands of short-lived record objects; with the
    default thresholds the collector ran every 700 allocations and its full
    passes walked the millions of objects the imports left (measured with
    py-spy: 17 % of the worker's samples in ``gc_collect_main``). Everything
    alive at start moves to the permanent generation (``gc.freeze``) and the
    young generation is collected every 50,000 allocations; the batch objects
    hold no reference cycles, so reference counting frees them as before.
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


#: How long the event loop runs on after every task is done and cancelled, for
#: their last callbacks (mode's Worker waits a fixed 1 s there).
LOOP_SETTLE_S = 0.05


class Worker(faust.Worker):
    """Faust's worker, closing its event loop :data:`LOOP_SETTLE_S` after the
    tasks are gathered instead of mode's fixed second (measured with
    benchmarks/startup.py: it was 1 s of every ``--stop-at-end`` run and of
    every graceful stop; everything durable is written and committed before)."""

    async def _sentinel_task(self) -> None:
        await asyncio.sleep(LOOP_SETTLE_S)


def ensure_dlq_topic(kafka: dict[str, Any], settings: Settings) -> None:
    """Create the DLQ topic (if missing) with a ``max.message.bytes`` that fits
    the largest letter: a whole message of the events topic, a cut key, headers."""
    source = BROKER_DEFAULT_MESSAGE_BYTES
    with contextlib.suppress(KafkaAdminError, ValueError, TypeError):
        source = int(topic_config(kafka, settings.events_topic, "max.message.bytes") or source)
    limit = topic_max_message_bytes(max(source, settings.max_message_bytes), settings.dlq_max_key_bytes)
    ensure_topics(kafka, {settings.dlq_topic: settings.partitions}, config={"max.message.bytes": str(limit)})


def ready_store(settings: Settings) -> Store:
    """The store, its schema created (or checked, ``TOKENLORD_WORKER_INIT_DB=false``)."""
    store = open_store(settings)
    if settings.worker_init_db:
        store.init_db(settings.title_list(), settings.value_tokens_per_credit)
    else:  # a separate `tokenlord init-db` owns the schema; this worker may have no DDL rights
        store.check_schema()
    return store


def run_worker(settings: Settings, *, stop_at_end: bool = False) -> int:
    kafka = client_config(settings)
    # Kafka answers first: a worker that cannot reach it (or is refused) does
    # not hold the chDB directory meanwhile (one process per directory).
    ensure_topics(
        kafka,
        {
            settings.events_topic: settings.partitions,
            settings.outcomes_topic: settings.partitions,
            # The Collector writes to it; created here too so a worker can start first.
            **({settings.otlp_topic: settings.partitions} if settings.otlp_topic else {}),
        },
    )
    # The store opens (chDB's engine, the schema: ~0.45 s) while the rest of Kafka is checked.
    with ThreadPoolExecutor(1, thread_name_prefix="tokenlord-start") as starting:
        store_ready = starting.submit(ready_store, settings)
        ensure_dlq_topic(kafka, settings)
        stop_at = None
        if stop_at_end:
            # Partitions the group has already committed up to the end have nothing to wait for.
            topics = (settings.events_topic, settings.outcomes_topic, *filter(None, [settings.otlp_topic]))
            stop_at = unfinished(kafka, settings.group_id, topics)
            log.info(
                "--stop-at-end: will stop at offsets %s", {f"{t}[{p}]": o for (t, p), o in sorted(stop_at.items())}
            )
        store = store_ready.result()
    app = create_app(settings)
    dlq = DeadLetters(kafka, settings.dlq_topic, max_key_bytes=settings.dlq_max_key_bytes)
    pipeline = Pipeline(settings, store, dlq)
    register(app, settings, pipeline, stop_at=stop_at)
    # JSON logs: Faust's worker (mode) replaces the root handlers, so hand it ours.
    config = logging_config(settings.log_level, "json") if settings.log_format == "json" else None
    worker = Worker(app, loglevel=settings.log_level.upper(), quiet=True, logging_config=config)
    tune_gc()
    code = 0
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        pipeline.stopping.set()
        dlq.close()
    return code
