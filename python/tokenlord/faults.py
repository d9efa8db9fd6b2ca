"""Fault injection, for tests of the worker's crash and outage handling.

Two settings (empty by default; never set them in production):

- ``TOKENLORD_FAULT_CRASH_AT=POINT[:N]``: the worker kills itself with
  SIGKILL (no cleanup, no commit: like ``kill -9``) the N-th time (default 1)
  it reaches ``POINT``;
- ``TOKENLORD_FAULT_FAIL_WRITES=N[@POINT]``: the first N times a store write
  reaches ``POINT`` (default ``start``) it raises, as a store that is down or
  full would; the pipeline retries with backoff.

Points, in the order a batch reaches them: ``start`` (before the first write
of a batch), ``dlq`` (rejections produced and flushed to the dead-letter
topic), then after each insert: ``_rejected``, ``_outcomes``, ``_events``,
``_hourly``, ``_weekly``, ``_waste``, ``_progress`` (the last write; the batch
is acked after it). Restores write through the same points. ``digest``: a
weekly digest was posted (2xx) and is not recorded yet (tokenlord.digest).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from tokenlord.errors import StoreError

log = logging.getLogger("tokenlord.faults")

POINTS = ("start", "dlq", "_rejected", "_outcomes", "_events", "_hourly", "_weekly", "_waste", "_progress", "digest")


def _split(text: str, sep: str, what: str) -> tuple[str, str]:
    left, _, right = text.partition(sep)
    if not left or (sep in text and not right):
        raise ValueError(f"expected {what}")
    return left, right


def parse_crash_at(text: str) -> str:
    """Validates ``POINT[:N]`` (or empty); returns it stripped."""
    text = text.strip()
    if text:
        point, nth = _split(text, ":", "POINT or POINT:N")
        _check_point(point)
        _check_count(nth or "1")
    return text


def parse_fail_writes(text: str) -> str:
    """Validates ``N[@POINT]`` (or empty); returns it stripped."""
    text = text.strip()
    if text:
        n, point = _split(text, "@", "N or N@POINT")
        _check_count(n)
        _check_point(point or "start")
    return text


def _check_point(point: str) -> None:
    if point not in POINTS:
        raise ValueError(f"unknown fault point {point!r}; one of {', '.join(POINTS)}")


def _check_count(n: str) -> int:
    if not n.isdigit() or int(n) < 1:
        raise ValueError(f"{n!r} is not a positive integer")
    return int(n)


class Faults:
    """Counts the points a worker reaches and injects the configured faults."""

    def __init__(self, crash_at: str = "", fail_writes: str = "") -> None:
        crash_at, fail_writes = parse_crash_at(crash_at), parse_fail_writes(fail_writes)
        self.crash_point, _, nth = crash_at.partition(":")
        self.crash_nth = int(nth or 1)
        n, _, point = fail_writes.partition("@")
        self.fail_left = int(n) if n else 0
        self.fail_point = point or "start"
        self.hits: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return bool(self.crash_point) or self.fail_left > 0

    def reached(self, point: str) -> None:
        """Called by the pipeline and the store at each point; may kill or raise."""
        if not self.active:
            return
        with self._lock:
            hits = self.hits[point] = self.hits.get(point, 0) + 1
            fail = point == self.fail_point and self.fail_left > 0
            if fail:
                self.fail_left -= 1
        if point == self.crash_point and hits == self.crash_nth:
            log.warning("fault injection: SIGKILL at %s (hit %d)", point, hits)
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        if fail:
            raise StoreError(f"injected store failure at {point} (TOKENLORD_FAULT_FAIL_WRITES)")
