"""The worker's batcher (streams/batches.py) without Kafka: cutting, ordering,
revoked partitions, write-then-done, back-pressure, exclusive sections."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from faust.types import TP

from streams.batches import Batcher, RecordKeys, Stage


@dataclass
class Rec:
    offset: int
    value: bytes
    key: bytes | None = None


def recs(start: int, n: int, partition: int = 0) -> list[Rec]:
    return [Rec(o, b"v%d-%d" % (partition, o), b"k%d" % o) for o in range(start, start + n)]


class Harness:
    def __init__(
        self,
        *,
        max_messages: int = 5,
        max_bytes: int = 1 << 20,
        flush_interval: float = 0.05,
        assigned: set[TP] | None = None,
        clock: Any = None,
    ):
        self.log: list[tuple[str, Any]] = []
        self.assigned = assigned if assigned is not None else {TP("t", 0), TP("t", 1)}
        self.write_gate = asyncio.Event()
        self.write_gate.set()
        self.fail_writes = 0

        def prepare(parts: Sequence[int], offsets: Sequence[int], values: Sequence[bytes], keys: Any) -> Any:
            self.log.append(("prepare", list(zip(parts, offsets, strict=True))))
            return (list(parts), list(offsets), keys)

        def write(prepared: Any) -> None:
            if self.fail_writes:
                self.fail_writes -= 1
                raise RuntimeError("store down")
            self.log.append(("write", list(zip(prepared[0], prepared[1], strict=True))))

        async def run_core(fn: Any, *args: Any) -> Any:
            return fn(*args)

        async def run_store(fn: Any, *args: Any) -> Any:
            await self.write_gate.wait()
            return fn(*args)

        self.batcher = Batcher(
            "t",
            Stage(prepare, write),
            run_core=run_core,
            run_store=run_store,
            max_messages=max_messages,
            max_bytes=max_bytes,
            flush_interval=flush_interval,
            assignment=lambda: self.assigned,
            on_done=lambda ends: self.log.append(("done", dict(ends))),
            **({"clock": clock} if clock is not None else {}),
        )

    def entries(self, kind: str) -> list[Any]:
        return [x for k, x in self.log if k == kind]


async def until(cond: Any, timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


class Clock:
    """A monotonic clock the test moves (``Batcher(clock=...)``): no waiting on real time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def settle() -> None:
    """Let every ready task run until it waits (no timer is due: the clock is a fake)."""
    for _ in range(50):
        await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def running(h: Harness) -> Any:
    task = asyncio.ensure_future(h.batcher.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_batches_cut_at_max_messages_in_arrival_order_then_by_time() -> None:
    async def go() -> None:
        h = Harness(max_messages=5, flush_interval=0.05)
        async with running(h):
            await h.batcher.put(TP("t", 0), recs(0, 3), 1)
            await h.batcher.put(TP("t", 1), recs(10, 4, 1), 1)
            await until(lambda: len(h.entries("done")) == 2)
        first, second = h.entries("write")
        assert first == [(0, 0), (0, 1), (0, 2), (1, 10), (1, 11)]
        assert second == [(1, 12), (1, 13)]  # the rest, after the flush interval
        assert h.entries("done") == [{TP("t", 0): 3, TP("t", 1): 12}, {TP("t", 1): 14}]

    asyncio.run(go())


def test_batches_also_end_at_max_bytes() -> None:
    async def go() -> None:
        h = Harness(max_messages=1000, max_bytes=20, flush_interval=0.05)  # values are 4 bytes
        async with running(h):
            await h.batcher.put(TP("t", 0), recs(0, 10), 1)
            await until(lambda: sum(len(w) for w in h.entries("write")) == 10)
        sizes = [len(w) for w in h.entries("write")]
        assert sizes == [5, 5]
        assert [o for w in h.entries("write") for _, o in w] == list(range(10))

    asyncio.run(go())


def test_caught_up_partitions_are_cut_without_waiting_the_flush_interval() -> None:
    async def go() -> None:
        clock = Clock()
        h = Harness(max_messages=100, flush_interval=10, clock=clock)
        async with running(h):
            await h.batcher.put(TP("t", 0), recs(0, 3), 1, caught_up=True)
            await until(lambda: len(h.entries("done")) == 1)  # the clock did not move: not the flush interval
            # one partition behind: wait (for more of it, up to the interval)
            await h.batcher.put(TP("t", 1), recs(0, 2, 1), 1, caught_up=False)
            await h.batcher.put(TP("t", 0), recs(3, 1), 1, caught_up=True)
            clock.now += 1.9
            h.batcher.wake()
            await settle()
            assert len(h.entries("done")) == 1
            # caught up again: cut, but not within flush_interval / 5 (2 s) of the last cut
            await h.batcher.put(TP("t", 1), recs(2, 1, 1), 1, caught_up=True)
            await settle()
            assert len(h.entries("done")) == 1
            clock.now += 0.1  # 2 s after the last cut
            h.batcher.wake()
            await until(lambda: len(h.entries("done")) == 2)
        assert h.entries("write")[1] == [(1, 0), (1, 1), (0, 3), (1, 2)]

    asyncio.run(go())


def test_records_of_revoked_partitions_are_dropped() -> None:
    async def go() -> None:
        h = Harness(max_messages=100, assigned={TP("t", 1)})
        async with running(h):
            await h.batcher.put(TP("t", 0), recs(0, 3), 1)
            await h.batcher.put(TP("t", 1), recs(0, 2, 1), 1)
            await until(lambda: h.entries("done"))
        assert h.entries("write") == [[(1, 0), (1, 1)]]
        assert h.entries("done") == [{TP("t", 1): 2}]

    asyncio.run(go())


def test_next_batch_is_prepared_while_the_previous_one_is_written() -> None:
    async def go() -> None:
        h = Harness(max_messages=2, flush_interval=10)
        h.write_gate.clear()  # the store is slow
        async with running(h):
            await h.batcher.put(TP("t", 0), recs(0, 2), 1)
            await h.batcher.put(TP("t", 0), recs(2, 2), 1)
            await until(lambda: len(h.entries("prepare")) == 2)
            assert h.entries("write") == [] and h.entries("done") == []
            h.write_gate.set()
            await until(lambda: len(h.entries("done")) == 2)
        kinds = [k for k, _ in h.log]
        # done only after its write; writes in batch order
        assert kinds == ["prepare", "prepare", "write", "done", "write", "done"]
        assert h.entries("done") == [{TP("t", 0): 2}, {TP("t", 0): 4}]

    asyncio.run(go())


def test_exclusive_waits_for_the_write_in_flight() -> None:
    async def go() -> None:
        h = Harness(max_messages=2, flush_interval=10)
        h.write_gate.clear()
        async with running(h):
            await h.batcher.put(TP("t", 0), recs(0, 2), 1)
            await until(lambda: h.entries("prepare"))
            revoke = asyncio.ensure_future(h.batcher.exclusive(lambda: h.log.append(("revoke", None))))
            await settle()
            assert not revoke.done()
            h.write_gate.set()
            await revoke
        assert [k for k, _ in h.log] == ["prepare", "write", "done", "revoke"]

    asyncio.run(go())


def test_put_waits_when_two_batches_are_waiting() -> None:
    async def go() -> None:
        h = Harness(max_messages=2, flush_interval=0.05)
        # not running: nothing drains
        await h.batcher.put(TP("t", 0), recs(0, 4), 1)
        blocked = asyncio.ensure_future(h.batcher.put(TP("t", 0), recs(4, 1), 1))
        await settle()
        assert not blocked.done()
        async with running(h):
            await asyncio.wait_for(blocked, 2)
            await until(lambda: len(h.entries("done")) == 3)
        assert sum(len(w) for w in h.entries("write")) == 5

    asyncio.run(go())


def test_a_failed_write_stops_the_loop_and_is_not_done() -> None:
    async def go() -> None:
        h = Harness(max_messages=2, flush_interval=10)
        h.fail_writes = 1
        task = asyncio.ensure_future(h.batcher.run())
        await h.batcher.put(TP("t", 0), recs(0, 2), 1)
        await h.batcher.put(TP("t", 0), recs(2, 2), 1)
        with pytest.raises(RuntimeError, match="store down"):
            await asyncio.wait_for(task, 2)
        assert h.entries("done") == []

    asyncio.run(go())


def test_new_partitions_are_restored_once_after_the_write_in_flight() -> None:
    async def go() -> None:
        h = Harness(max_messages=2, flush_interval=10)
        held: set[int] = set()

        def new_partitions(parts: Sequence[int]) -> list[int]:
            return sorted(set(parts) - held)

        def restore(partition: int) -> None:
            held.add(partition)
            h.log.append(("restore", partition))
            if partition == 0:
                h.write_gate.clear()  # the store gets slow after the first restore

        h.batcher.stage = Stage(h.batcher.stage.prepare, h.batcher.stage.write, new_partitions, restore)
        async with running(h):
            await h.batcher.put(TP("t", 0), recs(0, 2), 1)
            await until(lambda: h.entries("prepare"))
            await h.batcher.put(TP("t", 0), recs(2, 1), 1)
            await h.batcher.put(TP("t", 1), recs(0, 1, 1), 1)
            await settle()
            assert h.entries("restore") == [0]  # partition 1 waits for the write of the first batch
            h.write_gate.set()
            await until(lambda: len(h.entries("done")) == 2)
        assert [k for k, _ in h.log] == ["restore", "prepare", "write", "done", "restore", "prepare", "write", "done"]
        assert h.entries("restore") == [0, 1]

    asyncio.run(go())


def test_record_keys_find_keys_on_demand() -> None:
    gappy = [Rec(5, b"a", b"k5"), Rec(7, b"b", None), Rec(9, b"c", b"k9")]  # compacted: gaps
    keys = RecordKeys([(0, recs(0, 3)), (1, gappy), (0, recs(3, 2))])
    assert keys[(0, 1)] == b"k1" and keys[(0, 4)] == b"k4"
    assert keys[(1, 7)] is None and keys.get((1, 9)) == b"k9"
    assert keys.get((1, 6), b"?") == b"?" and keys.get((2, 0)) is None
    assert len(keys) == 8 and (1, 5) in keys and (1, 8) not in keys
