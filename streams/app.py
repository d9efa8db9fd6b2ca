"""The Faust app of a tokenlord worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust
from faust.tables import TableManager
from faust.types import ConsumerT
from tokenlord.settings import Settings

from streams.consumer import BatchConsumer
from streams.credentials import faust_credentials


class App(faust.App):
    """A Faust app whose consumer hands whole fetches of the core's topics to
    batch sinks (streams/consumer.py) instead of one event at a time."""

    def _new_consumer(self) -> ConsumerT:
        transport: Any = self.transport
        return BatchConsumer(
            transport,
            callback=self.topics.on_message,
            on_partitions_revoked=self._on_partitions_revoked,
            on_partitions_assigned=self._on_partitions_assigned,
            beacon=self.beacon,
            loop=transport.loop,
        )


class Tables(TableManager):
    """Faust's table manager without the second it sleeps at start for tables to
    register: tokenlord's windows live in the Rust core and ClickHouse, the app
    has no Faust table, and the consumer group's join waited on that sleep
    (benchmarks/startup.py: process start -> first batch, before and after)."""

    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


def broker_urls(brokers: str) -> list[str]:
    return [f"kafka://{b.strip()}" for b in brokers.split(",") if b.strip()]


def create_app(settings: Settings, *, batch_consumer: bool = True) -> faust.App:
    """A Faust app: raw bytes in (the Rust core parses), manual acks, no tables.

    ``batch_consumer=False``: Faust's own consumer (every message on its
    per-event path; the benchmarks' no-op agent measures that path).

    Faust windowed tables expire by wall clock and have no grace period, so
    event-time windows live in the Rust core and in ClickHouse instead.
    """
    # Faust keeps (unused: no tables) state here and creates only the last level.
    datadir = Path("var/faust")
    datadir.mkdir(parents=True, exist_ok=True)
    return (App if batch_consumer else faust.App)(
        settings.group_id,
        broker=broker_urls(settings.kafka_brokers),
        broker_credentials=faust_credentials(settings),
        value_serializer="raw",
        key_serializer="raw",
        topic_partitions=settings.partitions,
        consumer_auto_offset_reset="earliest",
        web_port=settings.web_port,
        web_bind=settings.web_bind,
        web_enabled=True,
        store="memory://",
        stream_buffer_maxsize=max(4096, settings.batch_size * 2),
        broker_max_poll_records=max(500, settings.batch_size),
        broker_commit_every=max(1000, settings.batch_size),
        broker_commit_interval=1.0,
        # A crashed worker's partitions move after this (Faust's default is 60 s).
        broker_session_timeout=settings.session_timeout / 1000,
        broker_heartbeat_interval=min(3.0, settings.session_timeout / 3000),
        producer_max_request_size=16 * 1024 * 1024,
        consumer_max_fetch_size=16 * 1024 * 1024,
        datadir=str(datadir),
        TableManager=Tables,
    )
