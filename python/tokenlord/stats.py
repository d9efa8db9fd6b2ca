"""A worker's counters: what the pipeline counts and ``/metrics`` exposes.

Below both: the pipeline (python/tokenlord/pipeline.py) writes them, the
metrics (python/tokenlord/metrics.py) read them; neither imports the other.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field

from tokenlord._core import Batch

__all__ = ["BATCH_SIZE_BOUNDS", "FLUSH_SECONDS_BOUNDS", "Distribution", "Stats"]

# Histogram bounds: messages per batch (up to TOKENLORD_BATCH_SIZE) and seconds per flush.
BATCH_SIZE_BOUNDS: tuple[float, ...] = (1, 10, 100, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000)
FLUSH_SECONDS_BOUNDS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass
class Distribution:
    """A histogram without dependencies: counts per upper bound, plus the sum.

    ``counts[i]`` holds observations ``<= bounds[i]`` not counted before it,
    ``counts[-1]`` those above every bound; the total is their sum, so a
    snapshot is always self-consistent (cumulative buckets end at the count).
    """

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations <= it)`` ending with ``(inf, count)``."""
        out, running = [], 0
        for bound, n in zip((*self.bounds, math.inf), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out


@dataclass
class Stats:
    """Counters of a worker (also exposed as metrics: tokenlord.metrics).

    Written on the pipeline thread, read by the web server's thread of control
    (``/metrics``): readers take :meth:`snapshot`, which copies under the lock.
    """

    messages: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    restores: int = 0
    replayed: int = 0
    store_retries: int = 0
    poison: int = 0  # messages the core failed on (reason poison), events and outcomes
    dead_letters_truncated: int = 0  # letters whose key or value was cut
    dead_letters_parked: int = 0  # letters the broker refused as too large, sent again cut
    last_flush_seconds: float = 0.0
    outcomes: int = 0
    outcomes_rejected: int = 0
    outcome_messages: int = 0
    outcomes_rejected_by_reason: dict[str, int] = field(default_factory=dict)
    otlp_messages: int = 0  # records of the OTLP topic (their events count in accepted/duplicates/rejected)
    skipped_spans: int = 0  # spans of OTLP records that are not GenAI spans
    batch_messages: Distribution = field(default_factory=lambda: Distribution(BATCH_SIZE_BOUNDS))
    flush_seconds: Distribution = field(default_factory=lambda: Distribution(FLUSH_SECONDS_BOUNDS))
    last_flush_at: float = 0.0  # epoch seconds of the last durable batch write (0: none yet)
    state_size: dict[str, int] = field(default_factory=dict)  # Core.state_size() after the last batch
    # Set while a store/DLQ write is failing and being retried (readiness), with the error.
    failing: str = ""
    digest_checks: int = 0  # looks for due weekly digests (on the worker holding events partition 0)
    digests_sent: int = 0
    digest_failures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, batch: Batch, messages: int, *, otlp: bool = False) -> None:
        with self.lock:
            if otlp:
                self.otlp_messages += messages
                self.skipped_spans += batch.skipped_spans
            else:
                self.messages += messages
            self.accepted += batch.accepted
            self.duplicates += batch.duplicates
            for reason in batch.rejected["reason"]:
                self.rejected[reason] = self.rejected.get(reason, 0) + 1
            self.batches += 1
            self.replayed += batch.replayed
            self.batch_messages.observe(messages)

    def add_outcomes(self, messages: int, kept: int, rejected_reasons: Sequence[str]) -> None:
        with self.lock:
            self.outcome_messages += messages
            self.outcomes += kept
            self.outcomes_rejected += len(rejected_reasons)
            for reason in rejected_reasons:
                self.outcomes_rejected_by_reason[reason] = self.outcomes_rejected_by_reason.get(reason, 0) + 1

    def digest_checked(self, outcomes: Sequence[str]) -> None:
        """One look for due digests and what each post attempt came to (``sent`` or ``failed: ...``)."""
        with self.lock:
            self.digest_checks += 1
            self.digests_sent += sum(o == "sent" for o in outcomes)
            self.digest_failures += sum(o != "sent" for o in outcomes)

    def flushed(self, seconds: float, at: float, state_size: dict[str, int]) -> None:
        with self.lock:
            self.last_flush_seconds = seconds
            self.flush_seconds.observe(seconds)
            self.last_flush_at = at
            self.state_size = dict(state_size)

    def snapshot(self) -> Stats:
        """A consistent copy (its dicts and distributions copied too)."""
        with self.lock:
            return dataclasses.replace(
                self,
                rejected=dict(self.rejected),
                outcomes_rejected_by_reason=dict(self.outcomes_rejected_by_reason),
                batch_messages=Distribution(
                    self.batch_messages.bounds, list(self.batch_messages.counts), self.batch_messages.total
                ),
                flush_seconds=Distribution(
                    self.flush_seconds.bounds, list(self.flush_seconds.counts), self.flush_seconds.total
                ),
                state_size=dict(self.state_size),
                lock=threading.Lock(),
            )
