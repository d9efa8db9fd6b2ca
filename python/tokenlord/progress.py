"""A dependency-free progress line for long CLI jobs (stderr only)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(
        self, label: str, total: int | None = None, *, enabled: bool = True, stream: TextIO | None = None
    ) -> None:
        self.label = label
        self.total = total
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.count = 0
        self.started = time.monotonic()
        self._last = 0.0
        self._tty = self.stream.isatty()

    def update(self, n: int = 1, *, done_units: int | None = None) -> None:
        self.count += n
        now = time.monotonic()
        if self.enabled and now - self._last >= (0.2 if self._tty else 5.0):
            self._last = now
            self._draw(now, done_units)

    def _draw(self, now: float, done_units: int | None) -> None:
        elapsed = max(now - self.started, 1e-9)
        rate = self.count / elapsed
        if self.total:
            part = min(done_units if done_units is not None else self.count, self.total) / self.total
            filled = int(part * 30)
            bar = f"[{'#' * filled}{'.' * (30 - filled)}] {100 * part:5.1f}% "
        else:
            bar = ""
        line = f"{self.label}: {bar}{self.count:,} ({rate:,.0f}/s)"
        self.stream.write(("\r" + line) if self._tty else (line + "\n"))
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(time.monotonic(), self.total)
            if self._tty:
                self.stream.write("\n")
            self.stream.flush()
