"""What keeps the pages cheap for the store: a short cache of rendered pages and
a bound on page requests in flight (used by ``streams/web.py``).

A page is cached per (path, canonical query, viewer scope): one user's scoped
page is never served to another viewer, and an admin's full board never to a
non-admin. Entries live ``ttl`` seconds (``TOKENLORD_WEB_CACHE``; 0: off);
the cache holds at most ``max_entries`` (the oldest go first).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Final

__all__ = ["Limiter", "PageCache", "cache_key"]

Key = tuple[str, tuple[tuple[str, str], ...], str]
MAX_ENTRIES: Final = 512


def cache_key(path: str, query: Mapping[str, str], scope: str) -> Key:
    """The key of a page: its path, its query without the access token, and who may see it."""
    return path, tuple(sorted((k, v) for k, v in query.items() if k != "token")), scope


class PageCache:
    def __init__(
        self, ttl: float, *, max_entries: int = MAX_ENTRIES, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._pages: OrderedDict[Key, tuple[float, str]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Key) -> str | None:
        if self.ttl <= 0:
            return None
        entry = self._pages.get(key)
        if entry is None or self._clock() >= entry[0]:
            if entry is not None:
                del self._pages[key]
            self.misses += 1
            return None
        self.hits += 1
        return entry[1]

    def put(self, key: Key, page: str) -> None:
        if self.ttl <= 0:
            return
        self._pages[key] = (self._clock() + self.ttl, page)
        self._pages.move_to_end(key)
        while len(self._pages) > self.max_entries:
            self._pages.popitem(last=False)

    def __len__(self) -> int:
        return len(self._pages)


class Limiter:
    """At most ``limit`` page requests in flight; past it :meth:`try_enter` says no
    (the caller answers 503 with Retry-After) instead of queueing."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self.refused = 0

    def try_enter(self) -> bool:
        if self.active >= self.limit:
            self.refused += 1
            return False
        self.active += 1
        return True

    def leave(self) -> None:
        assert self.active > 0
        self.active -= 1
