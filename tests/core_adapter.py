"""The native core behind the plain-Python reference's interface
(``reference.Reference``), so hand-written rule tests run on both
implementations (pydantic-core's two-implementation fixture:
``tests/unit/test_reference.py``, ``both_implementations``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tokenlord import _core


def _rows(cols: dict[str, list[Any]]) -> list[dict[str, Any]]:
    n = len(next(iter(cols.values()), []))
    return [{k: v[i] for k, v in cols.items()} for i in range(n)]


class CoreAsReference:
    """``Reference(...)``'s constructor, ``process`` and final-state views over ``_core.Core``:
    events in order, rejections, the last row of every restated cell, duplicates and watermarks."""

    def __init__(self, *, count_tokens: Any = None, **kwargs: Any) -> None:
        del count_tokens  # the core counts with its own tokenizers
        self.core = _core.Core(**kwargs)
        self._events: list[dict[str, Any]] = []
        self._rejected: list[tuple[int, int, int, str, bytes]] = []
        self._weekly: dict[tuple[int, int, str], dict[str, Any]] = {}
        self._hourly: dict[tuple[int, int, str, str], dict[str, Any]] = {}
        self._waste: dict[tuple[int, int, str, str], dict[str, Any]] = {}
        self.duplicates = 0
        self.watermarks: dict[int, int] = {}
        # The tests number each call's messages from 0; the core skips offsets it has applied
        # (a replay), as Kafka never repeats one: it gets increasing offsets, the views the tests'.
        self._next: dict[int, int] = {}
        self._given: dict[tuple[int, int], int] = {}

    def process(self, partitions: Sequence[int], offsets: Sequence[int], values: Sequence[bytes], now_ms: int) -> Any:
        real = []
        for p, o in zip(partitions, offsets, strict=True):
            n = self._next.get(p, 0)
            self._next[p] = n + 1
            self._given[(p, n)] = o
            real.append(n)
        out = self.core.process(list(partitions), real, list(values), now_ms)
        for e in _rows(out.events):
            e["src_offset"] = self._given[(e["src_partition"], e["src_offset"])]
            self._events.append(e)
        r = out.rejected
        self._rejected += [
            (p, self._given[(p, o)], i, reason, raw)
            for p, o, i, reason, raw in zip(
                r["src_partition"], r["src_offset"], r["idx"], r["reason"], r["raw"], strict=True
            )
        ]
        for row in _rows(out.weekly):
            self._weekly[(row["src_partition"], row["week_start"], row["user"])] = row
        for row in _rows(out.hourly):
            self._hourly[(row["src_partition"], row["hour"], row["user"], row["model"])] = row
        for row in _rows(out.waste):
            self._waste[(row["src_partition"], row["week_start"], row["user"], row["reason"])] = row
        self.duplicates += out.duplicates
        self.watermarks.update(out.watermarks)
        return out

    def events(self) -> list[dict[str, Any]]:
        return [dict(e) for e in self._events]

    def rejected(self) -> list[tuple[int, int, int, str, bytes]]:
        return list(self._rejected)

    def weekly(self) -> dict[tuple[int, int, str], dict[str, Any]]:
        return {k: dict(v) for k, v in self._weekly.items()}

    def hourly(self) -> dict[tuple[int, int, str, str], dict[str, Any]]:
        return {k: dict(v) for k, v in self._hourly.items()}

    def waste(self) -> dict[tuple[int, int, str, str], dict[str, Any]]:
        return {k: dict(v) for k, v in self._waste.items()}
