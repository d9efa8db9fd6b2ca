"""Faust's aiokafka consumer with a batch path for the topics the Rust core reads.

Faust hands every message to its streams one at a time: per message it builds
a ``Message`` and an ``Event``, runs sensors and awaits two tasks
(``Consumer._drain_messages`` → ``Conductor.on_message``) — about 170 µs a
message here, ~6k messages/s, while the core does 100k+ events/s
(benchmarks/README.md). For the topics registered with :meth:`add_batch_sink`
this consumer skips that path: the record lists aiokafka fetched (up to
``broker_max_poll_records`` per poll) go straight to the topic's
:class:`~streams.batches.BatchSink` as they are; other topics (Faust's own)
keep the per-message path.

Everything else stays Faust's: the consumer group membership and rebalances,
flow control, seeking, the commit timer. Offsets of the batch topics are
committed through Faust's commit machinery: a sink reports the offset after
the last durably written message of a partition (:meth:`batch_done`), which
replaces Faust's per-message acked-offset lists for those partitions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from typing import Any, Protocol, cast

from faust.transport.drivers.aiokafka import Consumer
from faust.types import TP
from mode import Service, ServiceT


class BatchSink(Protocol):
    async def put(self, tp: TP, records: list[Any], generation: int, caught_up: bool = False) -> None:
        """Take the records of one partition in offset order (may wait: back-pressure);
        ``caught_up``: they reach the partition's high watermark."""


class BatchConsumer(Consumer):
    """aiokafka Consumer of Faust with whole-fetch delivery for some topics."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batch_sinks: dict[str, BatchSink] = {}
        # tp → offset after the last durably written message, not yet committed.
        self._batch_done: dict[TP, int] = {}

    def add_batch_sink(self, topic: str, sink: BatchSink) -> None:
        self._batch_sinks[topic] = sink

    def batch_done(self, offsets: Mapping[TP, int]) -> None:
        """Messages of these partitions below these offsets are durably processed."""
        for tp, offset in offsets.items():
            if offset > self._batch_done.get(tp, -1):
                self._batch_done[tp] = offset

    # -- Faust's commit machinery, fed by batch_done for the batch topics ------------

    def _filter_tps_with_pending_acks(self, topics: Any = None) -> Iterator[TP]:
        seen = set()
        for tp in (*super()._filter_tps_with_pending_acks(topics), *self._batch_done):
            if tp not in seen and (topics is None or tp in topics or tp.topic in topics):
                seen.add(tp)
                yield tp

    def _new_offset(self, tp: TP) -> int | None:
        if tp.topic in self._batch_sinks:
            return self._batch_done.pop(tp, None)
        offset: int | None = super()._new_offset(tp)
        return offset

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        for tp in revoked:
            self._batch_done.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    # -- the fetch loop ----------------------------------------------------------------

    async def _drain_messages(self, fetcher: ServiceT) -> None:  # pragma: no cover - needs a broker
        """Faust's fetch loop (``Consumer._drain_messages``), batch topics excepted."""
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                await self.sleep(0)
                if self.should_stop:
                    break
                records, active = await self._wait_next_records(timeout=1.0)
                if not records or self.should_stop:
                    continue
                if not self.flow_active:
                    # As Faust's getmany: records fetched while the flow stopped
                    # (rebalancing) are dropped and the partitions sought back.
                    try:
                        await self.perform_seek()
                    except Exception as exc:
                        self.log.warning("seek while flow not active failed: %r", exc)
                    continue
                generation = self.app.consumer_generation_id
                for tp, recs in records.items():
                    if not recs or not (active is None or tp in active or tp in self._buffered_partitions):
                        continue
                    high = self.highwater(tp)
                    self.app.monitor.track_tp_end_offset(tp, high)
                    self._read_offset[tp] = recs[-1].offset
                    sink = self._batch_sinks.get(tp.topic)
                    if sink is not None:
                        caught_up = high is not None and 0 <= high <= recs[-1].offset + 1
                        await sink.put(tp, recs, generation, caught_up)
                    else:
                        for record in recs:
                            await self.callback(self._to_message(tp, record))
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
