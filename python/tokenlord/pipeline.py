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

The OTLP traces topic (``TOKENLORD_OTLP_TOPIC``, docs/gateways.md) takes the same
path through the same core: its records' GenAI spans are usage events. The
core's state and the store's per-partition rows are keyed by partition, so a
:class:`Source` maps a topic's Kafka partitions to core partitions: the events
topic's as they are, the OTLP topic's plus :data:`OTLP_PARTITION_BASE` (its
``_events``, ``_hourly``, ``_weekly``, ``_waste`` and ``_progress`` rows carry
that number; ``rejected`` rows and dead letters the Kafka partition).

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from tokenlord._core import Batch, Core
from tokenlord.errors import StoreError
from tokenlord.faults import Faults
from tokenlord.kafka.dlq import Sent
from tokenlord.settings import Settings
from tokenlord.stats import Stats
from tokenlord.time_utils import WEEK_MS, week_start_ms

#: (src_offset, ts ms, event_id) of a restore chunk's last event (Store.restore_chunk).
RestoreKey = tuple[int, int, str]

log = logging.getLogger("tokenlord.pipeline")
T = TypeVar("T")
#: The message keys of a batch, for its dead letters: one per message, or a
#: mapping (partition, offset) -> key (the worker's, looked up on demand).
Keys = Sequence[bytes | None] | Mapping[tuple[int, int], bytes | None]


#: Core (and store) partition of the OTLP topic's Kafka partition p: p + this,
#: so that it never meets the events topic's partition p (docs/schema.md).
OTLP_PARTITION_BASE = 1_000_000


@dataclass(frozen=True)
class Source:
    """A topic of usage input: its core partitions are its Kafka partitions + ``base``."""

    topic: str
    base: int = 0
    otlp: bool = False

    def core_partitions(self, partitions: Sequence[int]) -> Sequence[int]:
        return [p + self.base for p in partitions] if self.base else partitions


@dataclass(frozen=True)
class Prepared:
    """A batch after the core, before its writes (:meth:`Pipeline.write`)."""

    topic: str
    batch: Any  # tokenlord._core.Batch, or {"outcomes": ..., "rejected": ...}
    rejected: Any
    partitions: Sequence[int]
    offsets: Sequence[int]
    keys: Keys
    now_ms: int
    messages: int
    started: float  # perf_counter() when the core started on it
    state_size: dict[str, int] | None  # Core.state_size() after it (None: outcomes)
    otlp: bool = False  # read from the OTLP topic


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
        self.events = Source(settings.events_topic)
        self.otlp = Source(settings.otlp_topic, OTLP_PARTITION_BASE, otlp=True) if settings.otlp_topic else None
        self.clock = clock
        self.faults = Faults(settings.fault_crash_at, settings.fault_fail_writes)
        self.stats = Stats()
        self.stopping = threading.Event()
        # The worker calls the core from two threads (batches on the core
        # thread, restores on the store thread); one call at a time.
        self.core_lock = threading.Lock()

    # -- partition ownership ------------------------------------------------------

    def restore(self, partition: int, source: Source | None = None) -> None:
        """Rebuild the state of ``partition`` (of ``source``, default the events
        topic) from the store and restate its open cells."""
        s = self.settings
        src = source or self.events
        topic = src.topic
        partition += src.base
        state = self._retry("read state", lambda: self.store.restore_partition(partition, None, topic))
        watermark = state.watermark
        if watermark is None:
            since = 0
        else:
            oldest_open_week = week_start_ms(watermark - WEEK_MS - s.grace)
            since = min(oldest_open_week, watermark - s.dedupe_horizon)
        # In chunks: the worker holds one chunk of the stored events at a time, not a week of them.
        with self.core_lock:
            self.core.restore_begin(partition, watermark, state.max_version, state.next_offset)
        restored = 0
        after: RestoreKey | None = None
        rows = s.restore_chunk
        while True:
            key = after
            events, after = self._retry(
                # No progress stored: no batch of the partition finished, none of its events counts.
                "read state",
                partial(self.store.restore_chunk, partition, since, state.next_offset or 0, rows, key),
            )
            with self.core_lock:
                self.core.restore_events(partition, events)
            restored += len(events["event_id"])
            if after is None:
                break
        with self.core_lock:
            batch = self.core.restore_end(partition)
        self._retry("write", lambda: self._write(batch, topic, self._now_ms()))
        self.stats.restores += 1
        log.info(
            "%s partition %d restored: resumes at offset %s, %d events since %s, watermark %s, %d weekly rows restated",
            topic,
            partition - src.base,
            state.next_offset,
            restored,
            since,
            watermark,
            batch.rows["weekly"],
        )

    def revoke(self, partitions: Sequence[int], source: Source | None = None) -> None:
        with self.core_lock:
            for p in (source or self.events).core_partitions(partitions):
                self.core.drop_partition(p)

    # -- the batch ----------------------------------------------------------------

    def handle(
        self,
        partitions: Sequence[int],
        offsets: Sequence[int],
        values: Sequence[bytes],
        keys: Sequence[bytes | None],
    ) -> Batch:
        """Tests only: process and durably write one batch on this thread
        (restoring partitions first seen); returns the core's result. The
        worker never calls it: it runs these steps on two threads
        (:meth:`restore_new` and :meth:`write` on the store's, :meth:`prepare`
        on the core's) so that a batch's core work overlaps the previous
        batch's store write."""
        self.restore_new(partitions)
        prepared = self.prepare(partitions, offsets, values, keys)
        self.write(prepared)
        assert isinstance(prepared.batch, Batch)
        return prepared.batch

    def restore_new(self, partitions: Sequence[int], source: Source | None = None) -> None:
        """Restore every partition of ``partitions`` this worker does not hold yet."""
        for p in self.new_partitions(partitions, source):
            self.restore(p, source)

    def new_partitions(self, partitions: Sequence[int], source: Source | None = None) -> list[int]:
        """Kafka partitions of ``partitions`` (of ``source``) whose state this worker does not hold (yet)."""
        base = (source or self.events).base
        with self.core_lock:
            held = set(self.core.partitions())
        return sorted(p for p in set(partitions) if p + base not in held)

    def prepare(
        self,
        partitions: Sequence[int],
        offsets: Sequence[int],
        values: Sequence[bytes],
        keys: Keys,
        source: Source | None = None,
    ) -> Prepared:
        """The core's part of a batch of usage messages, or of OTLP records
        (``source`` :attr:`otlp`) (no I/O). Every partition must be held
        (:meth:`restore_new`)."""
        src = source or self.events
        started = time.perf_counter()
        now_ms = self._now_ms()
        core_partitions = src.core_partitions(partitions)
        with self.core_lock:
            batch = self.core.process(core_partitions, offsets, values, now_ms, otlp=src.otlp)
            state_size = self.core.state_size()
        rejected = batch.rejected
        if src.base and rejected["src_partition"]:
            # Rejections name the Kafka partition (dead letters, `rejected`).
            rejected["src_partition"] = [p - src.base for p in rejected["src_partition"]]
        return Prepared(
            src.topic, batch, rejected, partitions, offsets, keys, now_ms,
            len(values), started, state_size, src.otlp,
        )  # fmt: skip

    def prepare_outcomes(
        self,
        partitions: Sequence[int],
        offsets: Sequence[int],
        values: Sequence[bytes],
        keys: Keys,
    ) -> Prepared:
        """The core's part of a batch of outcome messages (validation; no I/O)."""
        started = time.perf_counter()
        now_ms = self._now_ms()
        with self.core_lock:
            outcomes, rejected = self.core.outcomes(partitions, offsets, values, now_ms)
        return Prepared(
            self.settings.outcomes_topic, {"outcomes": outcomes, "rejected": rejected}, rejected,
            partitions, offsets, keys, now_ms, len(values), started, None,
        )  # fmt: skip

    def write(self, prepared: Prepared) -> None:
        """Durably write a prepared batch: dead letters, then the store (retried
        until it succeeds: nothing is acked meanwhile)."""
        p = prepared
        self._dead_letter(p.rejected, p.partitions, p.offsets, p.keys, p.topic)
        self._retry("write", lambda: self._write(p.batch, p.topic, p.now_ms))
        if p.state_size is None:
            rejected = p.rejected["reason"]
            self.stats.add_outcomes(p.messages, len(p.batch["outcomes"]["user"]), rejected)
            return
        self.stats.add(p.batch, p.messages, otlp=p.otlp)
        self.stats.flushed(time.perf_counter() - p.started, self.clock(), p.state_size)

    def handle_outcomes(
        self,
        partitions: Sequence[int],
        offsets: Sequence[int],
        values: Sequence[bytes],
        keys: Sequence[bytes | None],
    ) -> int:
        """Tests only (the worker runs :meth:`prepare_outcomes` and :meth:`write`
        on two threads): validate (in the core) and durably write one batch of
        outcome messages; bad ones go to the dead-letter topic and ``rejected``.
        Returns the outcomes kept."""
        prepared = self.prepare_outcomes(partitions, offsets, values, keys)
        self.write(prepared)
        return len(prepared.batch["outcomes"]["user"])

    # -- helpers ------------------------------------------------------------------

    def _dead_letter(
        self,
        rejected: Any,
        partitions: Sequence[int],
        offsets: Sequence[int],
        keys: Keys,
        topic: str,
    ) -> None:
        """Rejections of a batch read from ``topic`` → the DLQ (flushed), keyed as their source messages."""
        reasons = rejected["reason"]
        if not reasons:
            return
        key_of = (
            keys
            if isinstance(keys, Mapping)
            else {(p, o): k for p, o, k in zip(partitions, offsets, keys, strict=True)}
        )
        # Letters acknowledged by a failed attempt are not sent again by the next.
        acked: set[int] = set()
        totals = Sent()

        def send() -> None:
            s = self.dead_letters.send(rejected, key_of, topic, acked=acked)
            totals.truncated += s.truncated
            totals.parked += s.parked

        self._retry("dead-letter", send)
        poison = sum(1 for r in reasons if r == "poison")
        if poison:
            log.error(
                "%d message(s) of %s made the core fail: dead-lettered whole with reason poison, the batch went on",
                poison, topic,
            )  # fmt: skip
        with self.stats.lock:
            self.stats.poison += poison
            self.stats.dead_letters_truncated += totals.truncated
            self.stats.dead_letters_parked += totals.parked
        self.faults.reached("dlq")

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
                result = fn()
                if attempt:
                    self.stats.failing = ""
                    log.info("%s succeeded after %d failed attempts", what, attempt)
                return result
            except Exception as exc:
                attempt += 1
                self.stats.store_retries += 1
                self.stats.failing = f"{what} failed {attempt} time(s), retrying: {exc}"[:500]
                if self.stopping.is_set():
                    raise StoreError(f"{what} failed while stopping: {exc}") from exc
                log.warning("%s failed (attempt %d), retrying in %.1fs: %s", what, attempt, delay, exc)
                self.stopping.wait(delay)
                delay = min(delay * 2, self.settings.store_retry_max / 1000)
