"""From fetched record lists to durably written batches, two stages deep.

A :class:`Batcher` takes the records :class:`streams.consumer.BatchConsumer`
fetched for one topic, cuts batches (``batch_size`` messages or
``batch_bytes`` of values, or whatever arrived within ``flush_interval`` of
the oldest waiting message) and runs each
through the pipeline on two threads:

- the **core thread** runs the Rust core on batch *n+1* (it releases the GIL),
- while the **store thread** writes batch *n* (dead letters, ClickHouse).

Writes stay in batch order, and a batch's offsets are reported done (for the
Kafka commit and ``--stop-at-end``) only after its write returned. Every store
access of the worker (writes, restores, the web pages' reads) runs on the store
thread: chDB is not safe across threads. A partition seen for the first time
is restored on the store thread after the write in flight, before the core
sees its messages; a revocation waits for the batch in flight (:meth:`exclusive`).

Back-pressure: at most two batches of records wait here; beyond that the
fetch loop waits (and with it Kafka fetching), so memory stays bounded when
the store is slow or down.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from faust.types import TP

log = logging.getLogger("tokenlord.worker")
T = TypeVar("T")

Run = Callable[..., Awaitable[Any]]


@dataclass
class Stage:
    """What a Batcher calls: ``prepare`` and ``new_partitions`` (which of a
    batch's partitions the core does not hold yet) on the core thread,
    ``write`` and ``restore`` (one such partition) on the store thread."""

    prepare: Callable[[Sequence[int], Sequence[int], Sequence[bytes], Mapping[tuple[int, int], bytes | None]], Any]
    write: Callable[[Any], None]
    new_partitions: Callable[[Sequence[int]], list[int]] | None = None
    restore: Callable[[int], None] | None = None


class RecordKeys(Mapping[tuple[int, int], "bytes | None"]):
    """(partition, offset) → message key of a batch's records, found on demand:
    only the dead letters need keys, so none is copied out per record."""

    def __init__(self, chunks: list[tuple[int, list[Any]]]) -> None:
        self._by_partition: dict[int, list[list[Any]]] = {}
        for partition, recs in chunks:
            self._by_partition.setdefault(partition, []).append(recs)

    def __getitem__(self, key: tuple[int, int]) -> bytes | None:
        partition, offset = key
        for recs in self._by_partition.get(partition, ()):
            if recs[0].offset <= offset <= recs[-1].offset:
                i = bisect.bisect_left(recs, offset, key=lambda r: r.offset)
                if i < len(recs) and recs[i].offset == offset:
                    k: bytes | None = recs[i].key
                    return k
        raise KeyError(key)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((p, r.offset) for p, chunks in self._by_partition.items() for recs in chunks for r in recs)

    def __len__(self) -> int:
        return sum(len(recs) for chunks in self._by_partition.values() for recs in chunks)


class Batcher:
    """The batches of one topic (see the module docstring)."""

    def __init__(
        self,
        topic: str,
        stage: Stage,
        *,
        run_core: Run,
        run_store: Run,
        max_messages: int,
        max_bytes: int,
        flush_interval: float,
        assignment: Callable[[], set[TP]],
        on_done: Callable[[dict[TP, int]], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.topic = topic
        self.stage = stage
        self.run_core = run_core
        self.run_store = run_store
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.flush_interval = flush_interval
        self.assignment = assignment
        self.on_done = on_done
        self.clock = clock  # seconds, monotonic; the tests' clock is a fake they move
        self._chunks: list[tuple[TP, list[Any], int]] = []  # (tp, records, bytes of their values)
        self._waiting = 0  # records in _chunks
        self._waiting_bytes = 0
        self._oldest = 0.0  # monotonic time the oldest waiting record arrived
        self._last_cut = 0.0  # monotonic time of the last cut
        # Per partition: whether its last fetch left more records on the broker.
        self._behind: dict[TP, bool] = {}
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._lock = asyncio.Lock()  # held while a batch is cut and prepared, and by exclusive()
        self._write: asyncio.Future[None] | None = None

    # -- the fetch loop's side --------------------------------------------------------

    async def put(self, tp: TP, records: list[Any], generation: int, caught_up: bool = False) -> None:
        """Records of one partition in offset order; ``caught_up``: they reach the
        partition's high watermark (nothing more to fetch right now)."""
        while self._waiting >= 2 * self.max_messages or self._waiting_bytes >= 2 * self.max_bytes:
            self._room.clear()
            await self._room.wait()
        if not self._chunks:
            self._oldest = self.clock()
        nbytes = sum(len(r.value or b"") for r in records)
        self._chunks.append((tp, records, nbytes))
        self._waiting += len(records)
        self._waiting_bytes += nbytes
        self._behind[tp] = not caught_up
        self._arrived.set()

    def wake(self) -> None:
        """Check the cut conditions again now (after the clock moved)."""
        self._arrived.set()

    # -- the batch loop -----------------------------------------------------------------

    async def run(self) -> None:
        """Cut, prepare and write batches until cancelled."""
        try:
            while True:
                await self._next_cut()
                async with self._lock:
                    await self._one_batch()
        finally:
            with contextlib.suppress(Exception):
                await self.flush()

    async def _next_cut(self) -> None:
        """Wait until a batch is full, or the oldest waiting record is
        flush_interval old — or, once every partition waiting here has been
        fetched up to its end (more records would only come from new
        messages), right away but not within a fifth of flush_interval of the
        last cut: low latency when idle, at most 5 writes per flush interval."""
        while True:
            if self._waiting >= self.max_messages or self._waiting_bytes >= self.max_bytes:
                return
            if self._chunks:
                deadline = self._oldest + self.flush_interval
                if not any(self._behind.get(tp, True) for tp, _, _ in self._chunks):
                    deadline = min(deadline, self._last_cut + self.flush_interval / 5)
                left = deadline - self.clock()
                if left <= 0:
                    return
                self._arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), left)
            else:
                self._arrived.clear()
                await self._arrived.wait()

    def _cut(self) -> tuple[list[int], list[int], list[bytes], RecordKeys, dict[TP, int]]:
        """Up to max_messages waiting records (and about max_bytes, at least one
        record) of partitions still assigned, in arrival order."""
        assigned = self.assignment()
        parts: list[int] = []
        offsets: list[int] = []
        values: list[bytes] = []
        taken: list[tuple[int, list[Any]]] = []
        ends: dict[TP, int] = {}
        room, room_bytes = self.max_messages, self.max_bytes
        while self._chunks and room > 0 and room_bytes > 0:
            tp, recs, nbytes = self._chunks[0]
            take = min(len(recs), room)
            if nbytes > room_bytes:
                take = min(take, max(1, len(recs) * room_bytes // nbytes))
            if take < len(recs):
                head_bytes = nbytes * take // len(recs)
                self._chunks[0] = (tp, recs[take:], nbytes - head_bytes)
                recs, nbytes = recs[:take], head_bytes
            else:
                self._chunks.pop(0)
            self._waiting -= len(recs)
            self._waiting_bytes -= nbytes
            if tp not in assigned:
                log.debug("dropping %d fetched records of revoked %s", len(recs), tp)
                continue
            room -= len(recs)
            room_bytes -= nbytes
            parts.extend([tp.partition] * len(recs))
            offsets.extend([r.offset for r in recs])
            values.extend([r.value or b"" for r in recs])
            taken.append((tp.partition, recs))
            ends[tp] = recs[-1].offset + 1
        if not self._chunks:
            self._waiting_bytes = 0  # the byte split above is approximate
        self._oldest = self._last_cut = self.clock()
        self._room.set()
        return parts, offsets, values, RecordKeys(taken), ends

    async def _one_batch(self) -> None:
        parts, offsets, values, keys, ends = self._cut()
        if not parts:
            return
        stage = self.stage
        if stage.new_partitions is not None and stage.restore is not None:
            # On the core thread: the event loop never waits for the core's lock.
            new = await self.run_core(stage.new_partitions, parts)
            if new:
                # Restores read what the write in flight is writing: after it.
                await self.flush()
                for partition in new:
                    await self.run_store(stage.restore, partition)
        prepared = await self.run_core(stage.prepare, parts, offsets, values, keys)
        await self.flush()
        self._write = asyncio.ensure_future(self._write_then_done(prepared, ends))

    async def _write_then_done(self, prepared: Any, ends: dict[TP, int]) -> None:
        await self.run_store(self.stage.write, prepared)
        self.on_done(ends)

    async def flush(self) -> None:
        """Wait for the write in flight (its error, if any, is raised here)."""
        write, self._write = self._write, None
        if write is not None:
            await write

    async def exclusive(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on the core thread with no batch in flight (e.g. a revocation)."""
        async with self._lock:
            await self.flush()
            result: T = await self.run_core(fn, *args)
            return result
