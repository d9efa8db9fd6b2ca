"""A core batch's sections as the store inserts them: the column views of
``tokenlord._core.Batch`` (or plain mappings of columns, in tests), their row
counts, and the conversions ClickHouse's column types need."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol

from tokenlord import _core
from tokenlord.errors import StoreError
from tokenlord.time_utils import DAY_MS

__all__ = ["BatchLike", "Columns", "stored_raw"]

Columns = Mapping[str, Sequence[Any]]

# What `rejected.raw` keeps of a rejected message (redacted): at most this many bytes.
RAW_MAX_BYTES: Final = 4096


class BatchLike(Protocol):
    """What ``write_batch`` reads: ``tokenlord._core.Batch`` or any look-alike."""

    @property
    def events(self) -> Columns: ...
    @property
    def hourly(self) -> Columns: ...
    @property
    def weekly(self) -> Columns: ...
    @property
    def waste(self) -> Columns: ...
    @property
    def rejected(self) -> Columns: ...


def _section(batch: BatchLike | Mapping[str, Columns], name: str) -> Columns:
    if isinstance(batch, Mapping):
        section = batch.get(name)
        return section if section is not None else {}
    cols: Columns | None = getattr(batch, name, None)
    return cols if cols is not None else {}


def _rows(section: Columns, name: str, wanted: Sequence[str]) -> int:
    """Row count of a section; checks every wanted column is there with that length."""
    if not section:
        return 0
    missing = [c for c in wanted if c not in section]
    if missing:
        raise StoreError(f"batch.{name} lacks columns {missing}")
    n = len(section[wanted[0]])
    bad = [c for c in wanted if len(section[c]) != n]
    if bad:
        raise StoreError(f"batch.{name}: columns {bad} do not have {n} rows")
    return n


def _ms_to_days(values: Sequence[int]) -> list[int]:
    # Date is days since 1970-01-01 as UInt16; the Monday before 1970-01-05 is
    # 1969-12-29, which Date cannot hold: clamp it to day 0 instead of failing.
    return [d if d > 0 else 0 for d in (v // DAY_MS for v in values)]


def _ms_to_seconds(values: Sequence[int]) -> list[int]:
    return [v // 1000 for v in values]


def _none_to_zero(values: Sequence[int | None]) -> list[int]:
    return [v if v is not None else 0 for v in values]


def _raw_bytes(value: bytes | bytearray | memoryview | str) -> bytes:
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogateescape")
    return bytes(value)


def stored_raw(values: Sequence[bytes | bytearray | memoryview | str]) -> list[bytes]:
    """What ``rejected.raw`` keeps of rejected input: its structure, never its text.

    Every rejection of every topic passes here (one call into the core per
    batch): prompt/output text and anything else that is not a short name or
    id is redacted, and the result cut to :data:`RAW_MAX_BYTES`.
    """
    return _core.redact([_raw_bytes(v) for v in values], RAW_MAX_BYTES)
