"""ClickHouse store of tokenlord (embedded chDB or a server, via clickhouse-connect)."""

from .client import RESTORE_COLUMNS, Restored, Store, StoreError, StoreSettings, open_store
from .rows import RAW_MAX_BYTES, BatchLike, Columns, stored_raw
from .schema import DEFAULT_DATABASE, DEFAULT_TITLES, PUBLIC_VIEWS, check_ident, ddl, quote_ident
from .urls import parse_url

__all__ = [
    "DEFAULT_DATABASE",
    "DEFAULT_TITLES",
    "PUBLIC_VIEWS",
    "RAW_MAX_BYTES",
    "RESTORE_COLUMNS",
    "BatchLike",
    "Columns",
    "Restored",
    "Store",
    "StoreError",
    "StoreSettings",
    "check_ident",
    "ddl",
    "open_store",
    "parse_url",
    "quote_ident",
    "stored_raw",
]
