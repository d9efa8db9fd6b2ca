"""Typed stub of the native module ``tokenlord._core`` (built from rust/src/py.rs)."""

import os
from collections.abc import Sequence
from typing import Any, TypeAlias, final

__all__ = [
    "DEFAULT_MODEL_ENCODINGS",
    "FINGERPRINT_VERSION",
    "ROW_BINARY_COLUMNS",
    "WASTE_DEFAULTS",
    "WASTE_REASONS",
    "Batch",
    "ConfigError",
    "Core",
    "InputError",
    "TokenlordError",
    "__version__",
    "count_tokens",
    "encoding_for",
    "encodings",
    "fingerprint_key_id",
    "fingerprints",
    "load_encodings",
    "redact",
]

__version__: str
DEFAULT_MODEL_ENCODINGS: str
#: the version of the ``fingerprint`` field (``"v"``) this core makes (it reads 1 up to this one)
FINGERPRINT_VERSION: int
#: Every waste reason a verdict can give, in rule order (docs/semantics.md, "Waste").
WASTE_REASONS: list[str]
#: The core's default waste thresholds, by the names ``Core(waste=...)`` takes (windows in ms).
WASTE_DEFAULTS: dict[str, int]
#: table ("events", "hourly", "weekly", "waste") -> [(column, ClickHouse type)] of Batch.row_binary
ROW_BINARY_COLUMNS: dict[str, list[tuple[str, str]]]

class TokenlordError(Exception):
    """Base class of every error raised by the native core."""

class ConfigError(TokenlordError):
    """A bad setting handed to the core (unknown encoding, bad price...)."""

class InputError(TokenlordError):
    """Arguments of one call do not fit together (column lengths differ...)."""

_Columns: TypeAlias = dict[str, list[Any]]

@final
class Batch:
    """Columnar result of one ``Core.process`` / ``Core.restore`` call.

    events   : event_id, ts (epoch ms), user, team, app, model, provider,
               session_id, input_tokens, output_tokens, cached_input_tokens,
               reasoning_tokens, total_tokens, tokens_estimated (0/1), status,
               finish_reason, latency_ms (int or None), cost_usd, wasted_tokens,
               waste_reason, src_partition, src_offset
    hourly   : src_partition, hour (epoch ms), user, model, requests,
               input_tokens, output_tokens, cached_input_tokens, total_tokens,
               wasted_tokens, cost_usd, version
    weekly   : src_partition, week_start (epoch ms), user, team, team_ts,
               requests, input_tokens, output_tokens, total_tokens,
               wasted_tokens, cost_usd, final (0/1), version
    waste    : src_partition, week_start, user, reason, requests,
               wasted_tokens, version
    rejected : src_partition, src_offset, idx, reason, raw (bytes)
    progress : partition -> offset after the last applied message (write it last)
    replayed : messages skipped as already applied (below a restored progress)
    skipped_spans : spans of OTLP records (``otlp=True``) that are not GenAI spans

    The rows of events, hourly, weekly and waste are held as the RowBinary
    blocks the store inserts (``row_binary``); those four column views are
    decoded from the same bytes on first access (times as epoch ms; events
    also has the fingerprint columns fp_prompt, fp_prompt_sim, fp_output_sim,
    fp_flags).
    """

    events: _Columns
    hourly: _Columns
    weekly: _Columns
    waste: _Columns
    rejected: _Columns
    duplicates: int
    accepted: int
    watermarks: dict[int, int]
    version: int
    progress: dict[int, int]
    replayed: int
    skipped_spans: int
    #: rows per table: events, hourly, weekly, waste
    rows: dict[str, int]
    def row_binary(self, table: str) -> tuple[int, bytes]:
        """``(rows, bytes)`` of one table in ClickHouse RowBinary, columns as ``ROW_BINARY_COLUMNS[table]``."""

@final
class Core:
    def __new__(
        cls,
        *,
        grace_ms: int = 3_600_000,
        dedupe_horizon_ms: int = 86_400_000,
        future_tolerance_ms: int = 600_000,
        max_message_bytes: int = 1_048_576,
        prices: dict[str, tuple[float, float, float]] | None = None,
        model_encodings: Sequence[tuple[str, str]] | None = None,
        fallback_encoding: str = "o200k_base",
        tokenizer_dir: str | os.PathLike[str] | None = None,
        waste: dict[str, int] | None = None,
        fingerprint_secret: bytes | None = None,
        max_elements_per_message: int = 10_000,
        max_rejections_per_message: int = 100,
        max_rejections_per_batch: int = 10_000,
        fault_poison: bytes | None = None,
    ) -> Core: ...
    def process(
        self,
        partitions: Sequence[int],
        offsets: Sequence[int],
        values: Sequence[bytes],
        now_ms: int,
        *,
        otlp: bool = False,
    ) -> Batch: ...
    def outcomes(
        self,
        partitions: Sequence[int],
        offsets: Sequence[int],
        values: Sequence[bytes],
        now_ms: int,
    ) -> tuple[_Columns, _Columns]: ...
    def restore(
        self,
        partition: int,
        watermark_ms: int | None,
        min_version: int,
        events: _Columns,
        next_offset: int | None = None,
    ) -> Batch: ...
    def restore_begin(
        self, partition: int, watermark_ms: int | None, min_version: int, next_offset: int | None = None
    ) -> None: ...
    def restore_events(self, partition: int, events: _Columns) -> None: ...
    def restore_end(self, partition: int) -> Batch: ...
    def drop_partition(self, partition: int) -> None: ...
    def watermark(self, partition: int) -> int | None: ...
    def partitions(self) -> list[int]: ...
    def state_size(self) -> dict[str, int]: ...

def count_tokens(
    texts: Sequence[str], encoding: str, tokenizer_dir: str | os.PathLike[str] | None = None
) -> list[int]: ...
def encoding_for(
    model: str,
    model_encodings: Sequence[tuple[str, str]] | None = None,
    fallback_encoding: str = "o200k_base",
    tokenizer_dir: str | os.PathLike[str] | None = None,
) -> tuple[str, bool]: ...
def encodings() -> list[str]: ...
def load_encodings(tokenizer_dir: str | os.PathLike[str]) -> list[str]: ...
def fingerprints(pairs: Sequence[tuple[str | None, str | None]], secret: bytes) -> list[str]:
    """The ``fingerprint`` field (JSON text) of each (prompt, output) pair, keyed by ``secret``."""

def fingerprint_key_id(secret: bytes) -> str:
    """The public id of the key derived from ``secret``."""

def redact(values: Sequence[bytes], limit: int) -> list[bytes]:
    """What ``rejected.raw`` stores of each value: text redacted, at most ``limit`` bytes."""
