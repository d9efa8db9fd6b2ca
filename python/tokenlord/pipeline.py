"""The per-batch work of a worker, independent of Faust: core → DLQ → store.

One :class:`Pipeline` owns the native :class:`~tokenlord._core.Core` (the
window and dedupe state of the partitions this worker holds), the store and
the dead-letter producer. The Faust agent in ``streams/events.py`` calls
:meth:`Pipeline.handle` once per batch (in a worker thread, so the event loop
keeps heartbeating) and acks the batch only after it returned: everything
was durably written by then.

Write order per batch, and why a crash anywhere is safe:

1. DLQ messages (produced and flushed),
2. ``_rejected`` rows (idempotent: keyed by source offset),
3. ``_events`` rows (idempotent: keyed by source partition/offset/event_id),
4. restated ``_hourly`` / ``_weekly`` / ``_waste`` rows (versioned),
5. ``_progress``: per partition, the offset after the batch — the commit point.

On (re)assignment a partition's window, dedupe and waste state is rebuilt
from the ``_events`` of messages below its stored progress, every open cell is
restated with a higher version, and the core skips messages below the
progress. A crash before 5 replays the batch onto state that does not hold it
(its rows are rewritten under the same keys); a crash after 5 replays nothing
twice, whatever the events' age (docs/operations.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tokenlord._core import Batch, Core
from tokenlord.errors import StoreError
from tokenlord.faults import Faults
from tokenlord.settings import Settings
from tokenlord.time_utils import WEEK_MS, week_start_ms

log = logging.getLogger("tokenlord.pipeline")
T = TypeVar("T")


@dataclass
class Stats:
    """Counters of a worker (also exposed as metrics)."""

    messages: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    restores: int = 0
    replayed: int = 0
    store_retries: int = 0
    last_flush_seconds: float = 0.0
    outcomes: int = 0
    outcomes_rejected: int = 0

    def add(self, batch: Batch, messages: int) -> None:
        self.messages += messages
        self.accepted += batch.accepted
        self.duplicates += batch.duplicates
        for reason in batch.rejected["reason"]:
            self.rejected[reason] = self.rejected.get(reason, 0) + 1
        self.batches += 1
        self.replayed += batch.replayed


class Pipeline:
    """Core + store + DLQ for one worker process."""

    def __init__(
        self,
        settings: Settings,
        store: Any,
        dead_letters: Any,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.dead_letters = dead_letters
        self.core = Core(**settings.core_kwargs())
        self.clock = clock
        self.faults = Faults(settings.fault_crash_at, settings.fault_fail_writes)
        self.stats = Stats()
        self.stopping = threading.Event()

    # -- partition ownership ------------------------------------------------------

    def restore(self, partition: int) -> None:
        """Rebuild ``partition``'s state from the store and restate its open cells."""
        s = self.settings
        topic = s.events_topic
        state = self._retry("read state", lambda: self.store.restore_partition(partition, None, topic))
        watermark = state.watermark
        if watermark is None:
            since = 0
        else:
            oldest_open_week = week_start_ms(watermark - WEEK_MS - s.grace)
            since = min(oldest_open_week, watermark - s.dedupe_horizon)
        events = self._retry("read state", lambda: self.store.restore_partition(partition, since, topic)).events
        batch = self.core.restore(partition, watermark, state.max_version, events, state.next_offset)
        self._retry("write", lambda: self._write(batch, topic, self._now_ms()))
        self.stats.restores += 1
        log.info(
            "partition %d restored: resumes at offset %s, %d events since %s, watermark %s, %d weekly rows restated",
            partition,
            state.next_offset,
            len(events["event_id"]),
            since,
            watermark,
            len(batch.weekly["user"]),
        )

    def revoke(self, partitions: Sequence[int]) -> None:
        for p in partitions:
            self.core.drop_partition(p)

    # -- the batch ----------------------------------------------------------------

    def handle(
        self,
        partitions: Sequence[int],
        offsets: Sequence[int],
        values: Sequence[bytes],
        keys: Sequence[bytes | None],
    ) -> Batch:
        """Process and durably write one batch; returns the core's result."""
        owned = set(self.core.partitions())
        for p in sorted(set(partitions) - owned):
            self.restore(p)
        started = time.perf_counter()
        now_ms = self._now_ms()
        batch = self.core.process(partitions, offsets, values, now_ms)
        if batch.rejected["reason"]:
            key_of = {(p, o): k for p, o, k in zip(partitions, offsets, keys, strict=True)}
            self._retry(
                "dead-letter", lambda: self.dead_letters.send(batch.rejected, key_of, self.settings.events_topic)
            )
            self.faults.reached("dlq")
        self._retry("write", lambda: self._write(batch, self.settings.events_topic, now_ms))
        self.stats.add(batch, len(values))
        self.stats.last_flush_seconds = time.perf_counter() - started
        return batch

    def handle_outcomes(
        self,
        partitions: Sequence[int],
        offsets: Sequence[int],
        values: Sequence[bytes],
        keys: Sequence[bytes | None],
    ) -> int:
        """Validate (in the core) and durably write one batch of outcome messages;
        bad ones go to the dead-letter topic and ``rejected``. Returns the outcomes kept."""
        s = self.settings
        now_ms = self._now_ms()
        outcomes, rejected = self.core.outcomes(partitions, offsets, values, now_ms)
        if rejected["reason"]:
            key_of = {(p, o): k for p, o, k in zip(partitions, offsets, keys, strict=True)}
            self._retry("dead-letter", lambda: self.dead_letters.send(rejected, key_of, s.outcomes_topic))
            self.faults.reached("dlq")
        batch = {"outcomes": outcomes, "rejected": rejected}
        self._retry("write", lambda: self._write(batch, s.outcomes_topic, now_ms))
        self.stats.outcomes += len(outcomes["user"])
        self.stats.outcomes_rejected += len(rejected["reason"])
        return len(outcomes["user"])

    # -- helpers ------------------------------------------------------------------

    def _write(self, batch: Any, topic: str, now_ms: int) -> dict[str, int]:
        self.faults.reached("start")
        written: dict[str, int] = self.store.write_batch(batch, topic, now_ms, on_written=self.faults.reached)
        return written

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _retry(self, what: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` until it succeeds, backing off up to ``store_retry_max``.

        Nothing is acked meanwhile, so the consumer stops (back-pressure).
        Gives up only when the worker is stopping.
        """
        delay = 0.1
        attempt = 0
        while True:
            try:
                return fn()
            except Exception as exc:
                attempt += 1
                self.stats.store_retries += 1
                if self.stopping.is_set():
                    raise StoreError(f"{what} failed while stopping: {exc}") from exc
                log.warning("%s failed (attempt %d), retrying in %.1fs: %s", what, attempt, delay, exc)
                self.stopping.wait(delay)
                delay = min(delay * 2, self.settings.store_retry_max / 1000)
