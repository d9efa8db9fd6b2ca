"""Embedded chDB clients, one per data directory and process (chDB hosts one engine per
process), shared by every ``Store`` on it and reference counted: the last release closes it."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from tokenlord.errors import StoreError

__all__ = ["acquire", "release"]


@dataclass
class _Shared:
    client: Client
    refs: int


_CHDB_LOCK = threading.Lock()
_CHDB_CLIENTS: dict[str, _Shared] = {}


def acquire(path: str) -> Client:
    with _CHDB_LOCK:
        shared = _CHDB_CLIENTS.get(path)
        if shared is not None:
            shared.refs += 1
            return shared.client
        others = [p for p in _CHDB_CLIENTS if p != path]
        if others:
            raise StoreError(
                f"chDB allows one data directory per process: {others[0]!r} is open, cannot also open {path!r}"
            )
        if path != ":memory:":
            os.makedirs(path, exist_ok=True)
        try:
            client = clickhouse_connect.get_client(interface="chdb", path=path)
        except DatabaseError as exc:
            raise StoreError(
                f"cannot open the chDB data directory {path!r}: {exc}. chDB allows one "
                "process per directory: is a worker (or another tokenlord command) using "
                "it? Stop it, or point TOKENLORD_CLICKHOUSE_URL at a ClickHouse server."
            ) from exc
        _CHDB_CLIENTS[path] = _Shared(client, 1)
        return client


def release(path: str) -> None:
    with _CHDB_LOCK:
        shared = _CHDB_CLIENTS.get(path)
        if shared is None:
            return
        shared.refs -= 1
        if shared.refs <= 0:
            del _CHDB_CLIENTS[path]
            shared.client.close()
