"""What the naive end-to-end contenders (``_naive_faust.py``, ``_quix.py``) share.

- :class:`Rows`: the rows of tokenlord's internal tables (the same shapes the
  worker writes: ``_events``, ``_hourly``, ``_weekly``, ``_waste``,
  ``_rejected``), accumulated between two flushes — an aggregate cell written
  more than once keeps its latest value only — and written with one
  ``tokenlord.store.Store.write_batch`` call.
- :class:`Tokenizer`: token counts of ``prompt`` / ``output`` text with
  tiktoken (what a Python user reaches for), vocabularies read offline as in
  tests/tiktoken_offline.py; the encoding of a model follows tokenlord's
  configured rules (looked up once per model).
- :class:`Prices`: cost per event, the same longest-prefix rule as the core.
- :func:`start_targets`, :class:`Progress`, :func:`write_result`: the stop
  condition (the end offsets seen at start), the flush log the latency phase
  reads, and the one JSON result a child hands back to ``e2e_worker.py``.

These processes are contenders, not tokenlord: nothing here calls the Rust
core except ``encoding_for`` (a configuration lookup, once per model).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tokenlord.store import Store
from tokenlord.store import schema as S

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

EVENT_NAMES = [c for c, _ in S.EVENTS_COLUMNS]
HOURLY_NAMES = [c for c, _ in S.HOURLY_COLUMNS]
WEEKLY_NAMES = [c for c, _ in S.WEEKLY_COLUMNS]
WASTE_NAMES = [c for c, _ in S.WASTE_COLUMNS]
REJECTED_NAMES = ["src_partition", "src_offset", "idx", "reason", "raw"]
#: The core's waste fingerprints (fp_prompt, fp_prompt_sim, fp_output_sim, fp_flags,
#: fp_prompt_mh, fp_output_mh): the naive contenders keep no text fingerprints and
#: write zeros and empty sketches.
FP_ZEROS = (0, 0, 0, 0, "", "")
N_EVENT_VALUES = len(EVENT_NAMES) - len(FP_ZEROS)


def _columns(rows: Iterable[tuple[Any, ...]], names: list[str]) -> dict[str, list[Any]]:
    cols = list(zip(*rows, strict=True))
    if not cols:
        return {}
    return {n: list(c) for n, c in zip(names, cols, strict=True)}


class Rows:
    """Rows written by one flush. Events and rejections are appended; an hourly,
    weekly or waste cell is keyed (partition + cell key) and keeps the last row
    given for it (its latest restatement, which carries the highest version)."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.rejected: list[tuple[Any, ...]] = []
        self.hourly: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self.weekly: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self.waste: dict[tuple[Any, ...], tuple[Any, ...]] = {}

    def __len__(self) -> int:
        return len(self.events) + len(self.rejected)

    def empty(self) -> bool:
        return not (self.events or self.rejected or self.hourly or self.weekly or self.waste)

    def add_py_batch(self, b: Any) -> None:
        """A ``py_baseline.PyBatch``."""
        self.events.extend(b.events)
        self.rejected.extend(b.rejected)
        for r in b.hourly:  # (p, hour, user, model, ...)
            self.hourly[r[:4]] = r
        for r in b.weekly:  # (p, week, user, ...)
            self.weekly[r[:3]] = r
        for r in b.waste:  # (p, week, user, reason, ...)
            self.waste[r[:4]] = r

    def sections(self) -> dict[str, dict[str, list[Any]]]:
        """``Store.write_batch`` input: section -> column -> values."""
        events = [e + FP_ZEROS if len(e) == N_EVENT_VALUES else e for e in self.events]
        return {
            "rejected": _columns(self.rejected, REJECTED_NAMES),
            "events": _columns(events, EVENT_NAMES),
            "hourly": _columns(self.hourly.values(), HOURLY_NAMES),
            "weekly": _columns(self.weekly.values(), WEEKLY_NAMES),
            "waste": _columns(self.waste.values(), WASTE_NAMES),
        }

    def write(self, store: Store, src_topic: str) -> dict[str, int]:
        written = store.write_batch(self.sections(), src_topic, int(time.time() * 1000))
        self.clear()
        return written


class Tokenizer:
    """``tokenize(model, text) -> (count, estimated)`` with tiktoken's ``encode_ordinary``."""

    def __init__(self) -> None:
        from tiktoken_offline import reference, use_offline_cache
        from tokenlord import _core
        from tokenlord.settings import Settings

        use_offline_cache(REPO / "var" / "tiktoken-cache")
        self._reference = reference
        self._encoding_for = _core.encoding_for
        self._kwargs = Settings.from_env().encoding_kwargs()
        self._by_model: dict[str, tuple[Any, bool]] = {}
        # Load the fallback vocabulary now, not at the first text event.
        reference(self._kwargs.get("fallback_encoding") or "o200k_base")
        self.texts = 0
        self.chars = 0

    def __call__(self, model: str, text: str) -> tuple[int, bool]:
        enc = self._by_model.get(model)
        if enc is None:
            name, estimated = self._encoding_for(model, **self._kwargs)
            enc = self._by_model[model] = (self._reference(name).encode_ordinary, estimated)
        self.texts += 1
        self.chars += len(text)
        return len(enc[0](text)), enc[1]


class Prices:
    """USD per event: (input - cached) x in + cached x cached + output x out, per 1M
    tokens, with the price of the longest configured model prefix (as the core)."""

    def __init__(self, prices: Mapping[str, tuple[float, float, float]]) -> None:
        self._prefixes = sorted(prices.items(), key=lambda kv: -len(kv[0]))
        self._cache: dict[str, tuple[float, float, float]] = {}

    def cost(self, model: str, inp: int, cached: int, out: int) -> float:
        p = self._cache.get(model)
        if p is None:
            p = next((v for k, v in self._prefixes if model.startswith(k)), (0.0, 0.0, 0.0))
            self._cache[model] = p
        return ((inp - cached) * p[0] + cached * p[1] + out * p[2]) / 1_000_000.0


def new_stats(contender: str, **extra: Any) -> dict[str, Any]:
    """The counters both naive contenders report (plus their own ``extra``)."""
    return {
        "contender": contender,
        "first_message_at": None,
        "last_write_at": None,
        "messages": 0,
        "events": 0,
        "rejected": 0,
        "duplicates": 0,
        "flushes": 0,
        "write_seconds": 0.0,
        "rows_written": {},
        **extra,
    }


def start_targets(brokers: str, topic: str) -> dict[int, int]:
    """Partition -> end offset, read at start (partitions holding messages only)."""
    from tokenlord.kafka.admin import end_offsets

    return {p: o for p, o in end_offsets(brokers, topic).items() if o > 0}


class Progress:
    """One JSON line per durable flush: ``{"t": epoch s after the write returned,
    "next": {partition: next offset written}}`` (the latency phase reads it)."""

    def __init__(self, path: str | None) -> None:
        self._f = open(path, "a", buffering=1) if path else None

    def flushed(self, next_offsets: Mapping[int, int]) -> None:
        if self._f is not None:
            self._f.write(json.dumps({"t": time.time(), "next": {str(p): o for p, o in next_offsets.items()}}) + "\n")


def write_result(path: str, result: Mapping[str, Any]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, path)
