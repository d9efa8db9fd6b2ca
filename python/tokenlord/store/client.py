"""The ClickHouse store: one code path (clickhouse-connect) for embedded chDB and a
server (``TOKENLORD_CLICKHOUSE_URL``, store/urls.py; chDB's one engine per process,
store/chdb.py): the schema's creation and check, a core batch's writes (rows as
the core encodes them, store/rows.py), the restore reads, and the pages' reads.

Every insert is an acknowledged, synchronous write (``async_insert=0``), sent
column-oriented with explicit column types (no DESCRIBE round trip).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Final, NamedTuple, Protocol

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from tokenlord.errors import StoreError
from tokenlord.report import RANKINGS, Ranking

from . import chdb, schema
from .rows import (
    BatchLike,
    Columns,
    _ms_to_days,
    _ms_to_seconds,
    _none_to_zero,
    _rows,
    _section,
    stored_raw,
)
from .schema import check_ident, quote_ident
from .urls import ChdbTarget, parse_url

__all__ = ["RESTORE_COLUMNS", "Restored", "Store", "StoreError", "StoreSettings", "open_store"]


# Acknowledged writes: 26.x enables async_insert by default, which would
# acknowledge an insert before it is in a part.
_INSERT_SETTINGS: Final[dict[str, Any]] = {"async_insert": 0, "optimize_on_insert": 0}

RESTORE_COLUMNS: Final = (
    "event_id", "ts", "user", "team", "model", "input_tokens", "output_tokens",
    "cached_input_tokens", "total_tokens", "wasted_tokens", "waste_reason", "cost_usd",
    "fp_prompt", "fp_prompt_sim", "fp_output_sim", "fp_flags", "fp_prompt_mh", "fp_output_mh",
)  # fmt: skip


#: Where a chunk of a restore ends: (src_offset, ts ms, event_id) of its last event.
RestoreKey = tuple[int, int, str]


class Restored(NamedTuple):
    """A partition's state as stored (``Store.restore_partition``)."""

    watermark: int | None
    max_version: int
    events: dict[str, list[Any]]
    next_offset: int | None


class StoreSettings(Protocol):
    """The fields of ``tokenlord.settings.Settings`` the store reads."""

    @property
    def clickhouse_url(self) -> str: ...
    @property
    def database(self) -> str: ...


def open_store(settings: StoreSettings) -> Store:
    """``Store.connect(settings.clickhouse_url, settings.database)``."""
    return Store.connect(settings.clickhouse_url, settings.database)


# ---- the store ---------------------------------------------------------------------


class Store:
    """Writes core batches and serves the reads the worker and the CLI need."""

    def __init__(
        self,
        client: Client,
        database: str,
        *,
        chdb_path: str | None = None,
        connect_params: Mapping[str, Any] | None = None,
    ) -> None:
        self._client = client
        self._connect_params = connect_params
        self._db_name = check_ident(database)
        self._db = quote_ident(database)
        self._chdb_path = chdb_path
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------

    @classmethod
    def connect(cls, url: str, database: str | None = None) -> Store:
        """Open a store. Database: the argument, else the URL's ``/db``, else ``tokenlord``."""
        target = parse_url(url)
        if isinstance(target, ChdbTarget):
            db = check_ident(database or schema.DEFAULT_DATABASE)
            return cls(chdb.acquire(target.path), db, chdb_path=target.path)
        db = check_ident(database or target.database or schema.DEFAULT_DATABASE)
        params: dict[str, Any] = {
            "host": target.host,
            "port": target.port,
            "secure": target.secure,
            "username": target.username,
            "password": target.password,
            **dict[str, Any](target.tls),
            # No server session: a session serializes requests and the store
            # may be used from several threads.
            "autogenerate_session_id": False,
        }
        try:
            client = clickhouse_connect.get_client(**params)
        except ClickHouseError as exc:
            scheme = "https" if target.secure else "http"
            raise StoreError(f"cannot reach ClickHouse at {scheme}://{target.host}:{target.port}: {exc}") from exc
        return cls(client, db, connect_params=params)

    def reader(self) -> Store:
        """A second store on its own connection for reads (the pages): its queries run
        beside this store's writes instead of waiting for them. Read-only
        (``readonly=2``); close it on its own. chDB: another connection to the same
        engine (chdb.connect: concurrent queries on separate connections are safe)."""
        return self._sibling({"readonly": 2})

    def sibling(self) -> Store:
        """Another store on its own connection, for work beside the batches' writes that
        also writes (the weekly digest's records); close it on its own."""
        return self._sibling({})

    def _sibling(self, settings: dict[str, Any]) -> Store:
        if self._chdb_path is not None:
            path = self._chdb_path
            client = clickhouse_connect.get_client(interface="chdb", path=path, settings=settings)
            return type(self)(client, self._db_name)
        if self._connect_params is None:
            raise StoreError("this store was not opened by Store.connect: no second connection")
        try:
            client = clickhouse_connect.get_client(**self._connect_params, settings=settings)
        except ClickHouseError as exc:
            raise StoreError(f"cannot open a second connection to ClickHouse: {exc}") from exc
        return type(self)(client, self._db_name)

    @property
    def database(self) -> str:
        return self._db_name

    @property
    def client(self) -> Client:
        """The underlying clickhouse-connect client (for diagnostics)."""
        return self._client

    def table(self, name: str) -> str:
        """Quoted ``db.name`` for ad-hoc SQL."""
        return f"{self._db}.{quote_ident(name)}"

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._chdb_path is not None:
            chdb.release(self._chdb_path)
        else:
            self._client.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema --------------------------------------------------------------------

    def init_db(
        self,
        titles: Sequence[str] = schema.DEFAULT_TITLES,
        value_tokens_per_credit: int = schema.VALUE_TOKENS_PER_CREDIT,
    ) -> None:
        """Create the database, tables and views (idempotent) and refill the titles;
        ``value_tokens_per_credit`` is the value ranking's cap, written into
        the value_weekly view (docs/semantics.md, "Value ranking")."""
        if isinstance(titles, str):
            raise TypeError("titles must be a sequence of strings, not one string")
        for stmt in schema.ddl(self._db_name, value_tokens_per_credit):
            self._client.command(stmt)
        self._client.command(f"TRUNCATE TABLE IF EXISTS {self.table('_titles')}")
        if titles:
            self._client.insert(
                "_titles",
                [list(range(1, len(titles) + 1)), [str(t) for t in titles]],
                column_names=[c for c, _ in schema.TITLES_COLUMNS],
                column_type_names=[t for _, t in schema.TITLES_COLUMNS],
                database=self._db_name,
                column_oriented=True,
                settings=_INSERT_SETTINGS,
            )

    def check_schema(self) -> None:
        """Raise :class:`StoreError` unless every table and view of the schema
        exists (a worker started with ``TOKENLORD_WORKER_INIT_DB=false``).

        Reads ``system.tables``, which shows a user the tables it has any grant on."""
        wanted = (*schema.INTERNAL_TABLES, *schema.PUBLIC_VIEWS)
        rows = self._client.query(
            "SELECT name FROM system.tables WHERE database = {db:String}", parameters={"db": self._db_name}
        ).result_rows
        missing = [t for t in wanted if t not in {r[0] for r in rows} and t != "_titles"]
        if missing:
            raise StoreError(
                f"database {self._db_name!r} lacks {', '.join(missing)}: run `tokenlord init-db` first (with a "
                "user allowed to create tables), or set TOKENLORD_WORKER_INIT_DB=true"
            )

    # -- writes ----------------------------------------------------------------------

    def _insert(self, table: str, columns: schema.Columns, data: list[Sequence[Any]]) -> None:
        self._client.insert(
            table,
            data,
            column_names=[c for c, _ in columns],
            column_type_names=[t for _, t in columns],
            database=self._db_name,
            column_oriented=True,
            settings=_INSERT_SETTINGS,
        )

    def record_digest(self, week: date, webhook: str, digest_id: str, sent_at: datetime, status: int) -> None:
        """Records that the digest of ``week`` reached ``webhook`` (tokenlord.digest)."""
        row = (week, webhook, digest_id, sent_at, status)
        self._insert("_digests", schema.DIGESTS_COLUMNS, [[v] for v in row])

    def write_batch(
        self,
        batch: BatchLike | Mapping[str, Columns],
        src_topic: str,
        now_ms: int,
        *,
        on_written: Callable[[str], None] | None = None,
    ) -> dict[str, int]:
        """Insert one core batch: rejected, outcomes, events, hourly, weekly, waste,
        then the progress (one INSERT each, empty ones skipped). Idempotent: writing
        the same batch again changes nothing the views show. ``on_written(table)``
        runs after each insert (fault injection). Returns the rows written per table."""
        written: dict[str, int] = {}

        def insert(table: str, columns: schema.Columns, data: list[Sequence[Any]]) -> None:
            self._insert(table, columns, data)
            if on_written is not None:
                on_written(table)

        row_binary = None if isinstance(batch, Mapping) else getattr(batch, "row_binary", None)

        def insert_row_binary(name: str, table: str, columns: schema.Columns) -> bool:
            """The native core's rows of ``name``, inserted as the RowBinary bytes it
            made (no Python object per row); False for look-alike batches."""
            if row_binary is None:
                return False
            n, data = row_binary(name)
            if n:
                self._client.raw_insert(
                    self.table(table),
                    [c for c, _ in columns],
                    insert_block=data,
                    settings=_INSERT_SETTINGS,
                    fmt="RowBinary",
                )
                if on_written is not None:
                    on_written(table)
                written[name] = n
            return True

        rej = _section(batch, "rejected")
        rej_cols = ("src_partition", "src_offset", "idx", "reason", "raw")
        n = _rows(rej, "rejected", rej_cols)
        if n:
            insert(
                "_rejected",
                schema.REJECTED_COLUMNS,
                [
                    [now_ms] * n,
                    rej["reason"],
                    [src_topic] * n,
                    rej["src_partition"],
                    rej["src_offset"],
                    rej["idx"],
                    stored_raw(rej["raw"]),
                ],
            )
            written["rejected"] = n

        oc = _section(batch, "outcomes")
        names = [c for c, _ in schema.OUTCOMES_COLUMNS]
        n = _rows(oc, "outcomes", names)
        if n:
            insert("_outcomes", schema.OUTCOMES_COLUMNS, [oc[c] for c in names])
            written["outcomes"] = n

        # The four row tables: from the core's RowBinary blocks, else (look-alike
        # batches, e.g. the reference implementation's) from its columns.
        tables: tuple[tuple[str, str, schema.Columns, dict[str, Callable[[Sequence[Any]], list[Any]]]], ...] = (
            # DateTime64(3) takes the epoch-ms ints as they are (raw ticks).
            ("events", "_events", schema.EVENTS_COLUMNS, {}),
            ("hourly", "_hourly", schema.HOURLY_COLUMNS, {"hour": _ms_to_seconds}),
            ("weekly", "_weekly", schema.WEEKLY_COLUMNS, {"week_start": _ms_to_days, "team_ts": _none_to_zero}),
            ("waste", "_waste", schema.WASTE_COLUMNS, {"week_start": _ms_to_days}),
        )
        for name, table, columns, convert in tables:
            if insert_row_binary(name, table, columns):
                continue
            section = _section(batch, name)
            names = [c for c, _ in columns]
            n = _rows(section, name, names)
            if n:
                insert(table, columns, [convert[c](section[c]) if c in convert else section[c] for c in names])
                written[name] = n

        # Last: the batch is complete up to these offsets.
        progress: Mapping[int, int] = _section(batch, "progress")  # type: ignore[assignment]
        if progress:
            parts = sorted(progress)
            version = batch["version"] if isinstance(batch, Mapping) else getattr(batch, "version", 0)
            insert(
                "_progress",
                schema.PROGRESS_COLUMNS,
                [[src_topic] * len(parts), parts, [progress[p] for p in parts], [now_ms] * len(parts),
                 [version] * len(parts)],
            )  # fmt: skip
            written["progress"] = len(parts)
        return written

    # -- reads -------------------------------------------------------------------------

    def query_rows(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a SELECT with bound parameters (``{name:Type}``); rows as dicts."""
        result = self._client.query(sql, parameters=dict(parameters or {}))
        return list(result.named_results())

    def restore_partition(self, partition: int, since_ms: int | None, topic: str | None = None) -> Restored:
        """What a worker needs to rebuild the core state of one Kafka partition.

        Returns ``Restored(watermark, max_version, events, next_offset)``:
        ``next_offset`` is the partition's stored progress in ``topic`` (None if
        none is stored, or no ``topic``): only events of messages below it count
        as applied. With a ``topic`` but no progress, no batch of the partition
        ever finished: none of its stored events count (rows of a batch killed
        before its progress are rewritten by the replay, which may judge them
        otherwise: an event that came first and is late once its batch's later
        events are restored as applied). Without a ``topic`` (tests, tools) every
        stored event counts. ``watermark`` is the max event ts (epoch ms) of those events or
        None; ``max_version`` the highest aggregate version written for the
        partition (0 if none); ``events`` its applied events with ``ts >=
        since_ms`` as columns (``RESTORE_COLUMNS``, ts in epoch ms), in Kafka
        offset order (``since_ms=None``: no events, empty columns).
        """
        next_offset = None
        if topic is not None:
            rows = self._client.query(
                f"SELECT maxOrNull(next_offset) FROM {self.table('_progress')} FINAL "
                "WHERE src_topic = {t:String} AND src_partition = {p:Int32}",
                parameters={"t": topic, "p": partition},
            ).result_rows
            next_offset = None if not rows or rows[0][0] is None else int(rows[0][0])
        if next_offset is not None:
            applied_below = next_offset
        else:
            applied_below = 0 if topic is not None else 2**63 - 1
        params = {"p": partition, "since": since_ms, "next": applied_below}
        applied = "src_partition = {p:Int32} AND src_offset < {next:Int64}"
        wm_rows = self._client.query(
            f"SELECT maxOrNull(toUnixTimestamp64Milli(ts)) AS wm FROM {self.table('_events')} WHERE {applied}",
            parameters=params,
        ).result_rows
        watermark = None if not wm_rows or wm_rows[0][0] is None else int(wm_rows[0][0])
        version_sql = " UNION ALL ".join(
            f"SELECT max(version) AS v FROM {self.table(t)} WHERE src_partition = {{p:Int32}}"
            for t in ("_hourly", "_weekly", "_waste")
        )
        v_rows = self._client.query(f"SELECT max(v) AS version FROM ({version_sql})", parameters=params).result_rows
        max_version = int(v_rows[0][0]) if v_rows and v_rows[0][0] is not None else 0

        events: dict[str, list[Any]] = {c: [] for c in RESTORE_COLUMNS}
        if since_ms is None:
            return Restored(watermark, max_version, events, next_offset)
        select = ", ".join(
            "toUnixTimestamp64Milli(ts) AS x_ts_ms" if c == "ts" else quote_ident(c) for c in RESTORE_COLUMNS
        )
        result = self._client.query(
            f"SELECT {select} FROM {self.table('_events')} FINAL "
            f"WHERE {applied} "
            "AND ts >= fromUnixTimestamp64Milli({since:Int64}, 'UTC') "
            "ORDER BY src_offset, x_ts_ms, event_id "
            "SETTINGS do_not_merge_across_partitions_select_final = 1",
            parameters=params,
            column_oriented=True,
        )
        cols = result.result_columns
        if cols and len(cols) == len(RESTORE_COLUMNS):
            events = {c: list(col) for c, col in zip(RESTORE_COLUMNS, cols, strict=True)}
        return Restored(watermark, max_version, events, next_offset)

    def restore_chunk(
        self, partition: int, since_ms: int, next_offset: int | None, rows: int, after: RestoreKey | None = None
    ) -> tuple[dict[str, list[Any]], RestoreKey | None]:
        """One chunk of the events of :meth:`restore_partition` (applied, ``ts >=
        since_ms``, in Kafka offset order): at most ``rows`` of them after the
        key ``after`` (None: from the first), and the key to pass for the next
        chunk (None: this was the last). A restore holds one chunk at a time."""
        select = ", ".join(
            "toUnixTimestamp64Milli(ts) AS x_ts_ms" if c == "ts" else quote_ident(c) for c in RESTORE_COLUMNS
        )
        params: dict[str, Any] = {
            "p": partition, "since": since_ms, "rows": rows,
            "next": next_offset if next_offset is not None else 2**63 - 1,
        }  # fmt: skip
        keyset = ""
        if after is not None:
            params.update(o=after[0], t=after[1], e=after[2])
            keyset = "AND (src_offset, toUnixTimestamp64Milli(ts), event_id) > ({o:Int64}, {t:Int64}, {e:String}) "
        result = self._client.query(
            f"SELECT {select}, src_offset AS x_offset FROM {self.table('_events')} FINAL "
            "WHERE src_partition = {p:Int32} AND src_offset < {next:Int64} "
            "AND ts >= fromUnixTimestamp64Milli({since:Int64}, 'UTC') "
            f"{keyset}"
            "ORDER BY src_offset, x_ts_ms, event_id LIMIT {rows:UInt64} "
            "SETTINGS do_not_merge_across_partitions_select_final = 1",
            parameters=params,
            column_oriented=True,
        )
        cols = result.result_columns
        if not cols or not cols[0]:
            return {c: [] for c in RESTORE_COLUMNS}, None
        events = {c: list(col) for c, col in zip(RESTORE_COLUMNS, cols, strict=False)}
        if len(cols[0]) < rows:
            return events, None
        return events, (int(cols[-1][-1]), int(events["ts"][-1]), str(events["event_id"][-1]))

    def weeks(self) -> list[date]:
        """Weeks (Monday dates) with leaderboard data, oldest first."""
        rows = self._client.query(
            f"SELECT DISTINCT week_start FROM {self.table('_weekly')} ORDER BY week_start"
        ).result_rows
        return [r[0] for r in rows]

    def explain(self, user: str, week: date) -> dict[str, Any]:
        """Why ``user``'s tokens were discounted in ``week``: the leaderboard row
        (None if absent), per waste reason the requests and tokens, for each
        reason the three events that wasted most (an audit trail), and the
        week's outcomes per kind (count, summed value)."""
        params = {"user": user, "week": week}
        cols = ", ".join(quote_ident(c) for c in schema.LEADERBOARD_VIEW_COLUMNS)
        board = self.query_rows(
            f"SELECT {cols} FROM {self.table('leaderboard_weekly')} "
            "WHERE week_start = {week:Date} AND `user` = {user:String}",
            params,
        )
        in_week = (
            "`user` = {user:String} AND ts >= toDateTime64({week:Date}, 3, 'UTC') "
            "AND ts < toDateTime64({week:Date} + 7, 3, 'UTC')"
        )
        reasons = self.query_rows(
            "SELECT waste_reason AS reason, count() AS requests, sum(wasted_tokens) AS wasted_tokens, "
            f"sum(total_tokens) AS total_tokens FROM {self.table('events')} "
            f"WHERE {in_week} AND waste_reason != '' GROUP BY reason ORDER BY wasted_tokens DESC, reason",
            params,
        )
        examples = self.query_rows(
            "SELECT waste_reason AS reason, event_id, ts, model, session_id, total_tokens, wasted_tokens "
            f"FROM {self.table('events')} WHERE {in_week} AND waste_reason != '' "
            "ORDER BY reason, wasted_tokens DESC, ts, event_id LIMIT 3 BY reason",
            params,
        )
        for r in reasons:
            r["examples"] = [e for e in examples if e["reason"] == r["reason"]]
        outcomes = self.query_rows(
            "SELECT outcome, count() AS n, sum(ifNull(value, 0)) AS value "
            f"FROM {self.table('_outcomes')} FINAL WHERE {in_week} GROUP BY outcome ORDER BY n DESC, outcome",
            params,
        )
        return {
            "user": user,
            "week_start": week,
            "leaderboard": board[0] if board else None,
            "reasons": reasons,
            "outcomes": outcomes,
        }

    def leaderboard(
        self,
        week: date | None = None,
        top: int = 100,
        by: Ranking = "raw",
        user: str | None = None,
    ) -> list[dict[str, Any]]:
        """Rows of ``leaderboard_weekly`` for one week (None: the latest week
        present), ordered by ``rank`` (by="raw"), ``effective_rank`` or, with
        by="value", ``value_rank`` (rows then also carry ``value_weekly``'s
        ``credit``, ``value_tokens`` and ``value_rank``); with ``user``, only
        that user's row (ranks as on the whole board)."""
        if by not in RANKINGS:
            raise ValueError(f"by must be 'raw', 'effective' or 'value', not {by!r}")
        if top < 0:
            raise ValueError("top must be >= 0")
        if week is None:
            known = self.weeks()
            if not known:
                return []
            week = known[-1]
        order = {"raw": "l.`rank`", "effective": "l.effective_rank", "value": "v.value_rank"}[by]
        cols = ", ".join(f"l.{quote_ident(c)} AS {quote_ident(c)}" for c in schema.LEADERBOARD_VIEW_COLUMNS)
        source = f"{self.table('leaderboard_weekly')} AS l"
        if by == "value":
            cols += "".join(f", v.{quote_ident(c)} AS {quote_ident(c)}" for c in schema.VALUE_RANK_COLUMNS)
            source += (
                f" INNER JOIN (SELECT `user`, {', '.join(quote_ident(c) for c in schema.VALUE_RANK_COLUMNS)}"
                f" FROM {self.table('value_weekly')} WHERE week_start = {{week:Date}}) AS v ON v.`user` = l.`user`"
            )
        only = "" if user is None else " AND l.`user` = {user:String}"
        return self.query_rows(
            f"SELECT {cols} FROM {source} WHERE l.week_start = {{week:Date}}{only} "
            f"ORDER BY {order} LIMIT {{top:UInt64}}",
            {"week": week, "top": top, **({"user": user} if user is not None else {})},
        )
