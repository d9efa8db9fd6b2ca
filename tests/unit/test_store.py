"""The ClickHouse store against embedded chDB (no server, no native core needed).

chDB hosts one data directory per process, so the whole module shares one
engine in a temporary directory and every test works in its own
uuid-suffixed database.
"""

from __future__ import annotations

import calendar
import datetime as dt
import importlib
import sys
import types
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("clickhouse_connect")
pytest.importorskip("chdb")

_PY = Path(__file__).resolve().parents[2] / "python"


def _forget_tokenlord() -> None:
    for name in [n for n in sys.modules if n == "tokenlord" or n.startswith("tokenlord.")]:
        del sys.modules[name]


def _load_store() -> types.ModuleType:
    """Import tokenlord.store: the installed package (``make install``), else the
    source tree, else the source tree's store alone (native core not built)."""
    try:
        return importlib.import_module("tokenlord.store")
    except ImportError:
        _forget_tokenlord()
    if str(_PY) not in sys.path:
        sys.path.insert(0, str(_PY))
    try:
        return importlib.import_module("tokenlord.store")
    except ImportError:
        pass
    # tokenlord/__init__.py imports the native core: load the subpackage under a
    # stand-in parent, then take the stand-in away again.
    _forget_tokenlord()
    pkg = types.ModuleType("tokenlord")
    pkg.__path__ = [str(_PY / "tokenlord")]
    sys.modules["tokenlord"] = pkg
    try:
        return importlib.import_module("tokenlord.store")
    finally:
        del sys.modules["tokenlord"]


st = _load_store()
HOUR, DAY = 3_600_000, 86_400_000  # tokenlord.time_utils (not imported before _load_store)
Store = st.Store
StoreError = st.StoreError

WEEK1 = dt.date(2026, 11, 16)  # a Monday
WEEK2 = dt.date(2026, 11, 23)


def ms(d: dt.date, hours: float = 0) -> int:
    return calendar.timegm(d.timetuple()) * 1000 + int(hours * HOUR)


# ---- fake core batches (plain dicts of lists, as in _core.pyi) ----------------------

EVENT_COLS = [
    "event_id", "ts", "user", "team", "app", "model", "provider", "session_id",
    "input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens",
    "total_tokens", "tokens_estimated", "status", "finish_reason", "latency_ms",
    "cost_usd", "wasted_tokens", "waste_reason", "src_partition", "src_offset",
    "fp_prompt", "fp_prompt_sim", "fp_output_sim", "fp_flags", "fp_prompt_mh", "fp_output_mh",
]  # fmt: skip
HOURLY_COLS = [
    "src_partition", "hour", "user", "model", "requests", "input_tokens", "output_tokens",
    "cached_input_tokens", "total_tokens", "wasted_tokens", "cost_usd", "version",
]  # fmt: skip
WEEKLY_COLS = [
    "src_partition", "week_start", "user", "team", "team_ts", "requests", "input_tokens",
    "output_tokens", "total_tokens", "wasted_tokens", "cost_usd", "final", "version",
]  # fmt: skip
WASTE_COLS = [
    "src_partition",
    "week_start",
    "user",
    "reason",
    "requests",
    "wasted_tokens",
    "version",
]
REJECTED_COLS = ["src_partition", "src_offset", "idx", "reason", "raw"]


def columns(rows: list[dict[str, Any]], names: list[str]) -> dict[str, list[Any]]:
    return {n: [r[n] for r in rows] for n in names}


def event(
    event_id: str,
    ts: int,
    user: str,
    *,
    partition: int = 0,
    offset: int = 0,
    model: str = "gpt-4o",
    inp: int = 100,
    out: int = 50,
    team: str = "",
    status: str = "ok",
) -> dict[str, Any]:
    total = inp + out
    wasted = total if status == "error" else 0
    return {
        "event_id": event_id, "ts": ts, "user": user, "team": team, "app": "cli",
        "model": model, "provider": "openai", "session_id": f"s-{event_id}",
        "input_tokens": inp, "output_tokens": out, "cached_input_tokens": inp // 10,
        "reasoning_tokens": 0, "total_tokens": total, "tokens_estimated": 0,
        "status": status, "finish_reason": "stop", "latency_ms": None if offset % 2 else 123,
        "cost_usd": total * 1e-6, "wasted_tokens": wasted,
        "waste_reason": "failed_request" if wasted else "", "src_partition": partition,
        "src_offset": offset, "fp_prompt": (2**64 - 1) if offset % 3 else 0, "fp_prompt_sim": offset,
        "fp_output_sim": 0, "fp_flags": 1 if offset % 3 else 0,
        "fp_prompt_mh": f"{offset:02x}" * 64 if offset % 3 else "", "fp_output_mh": "",
    }  # fmt: skip


def weekly(
    user: str,
    total: int,
    *,
    week: dt.date = WEEK1,
    partition: int = 0,
    version: int = 1,
    wasted: int = 0,
    team: str = "",
    team_ts: int | None = None,
    final: int = 0,
    requests: int = 1,
) -> dict[str, Any]:
    return {
        "src_partition": partition, "week_start": ms(week), "user": user, "team": team,
        "team_ts": team_ts if team_ts is not None else (ms(week) if team else 0),
        "requests": requests, "input_tokens": total - total // 3, "output_tokens": total // 3,
        "total_tokens": total, "wasted_tokens": wasted, "cost_usd": total * 1e-6,
        "final": final, "version": version,
    }  # fmt: skip


def hourly(
    user: str,
    hour_ms: int,
    total: int,
    *,
    partition: int = 0,
    version: int = 1,
    model: str = "gpt-4o",
    requests: int = 1,
) -> dict[str, Any]:
    return {
        "src_partition": partition, "hour": hour_ms, "user": user, "model": model,
        "requests": requests, "input_tokens": total - total // 3, "output_tokens": total // 3,
        "cached_input_tokens": 0, "total_tokens": total, "wasted_tokens": 0,
        "cost_usd": total * 1e-6, "version": version,
    }  # fmt: skip


def waste(
    user: str,
    wasted: int,
    *,
    week: dt.date = WEEK1,
    partition: int = 0,
    version: int = 1,
    requests: int = 1,
) -> dict[str, Any]:
    return {
        "src_partition": partition, "week_start": ms(week), "user": user,
        "reason": "failed_request", "requests": requests, "wasted_tokens": wasted,
        "version": version,
    }  # fmt: skip


def rejected(offset: int, raw: bytes, reason: str = "invalid_json", *, partition: int = 0,
             idx: int = 0) -> dict[str, Any]:  # fmt: skip
    return {
        "src_partition": partition,
        "src_offset": offset,
        "idx": idx,
        "reason": reason,
        "raw": raw,
    }


def batch(
    events: list[dict[str, Any]] = (),  # type: ignore[assignment]
    hourly_rows: list[dict[str, Any]] = (),  # type: ignore[assignment]
    weekly_rows: list[dict[str, Any]] = (),  # type: ignore[assignment]
    waste_rows: list[dict[str, Any]] = (),  # type: ignore[assignment]
    rejected_rows: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> types.SimpleNamespace:
    return types.SimpleNamespace(
        events=columns(list(events), EVENT_COLS),
        hourly=columns(list(hourly_rows), HOURLY_COLS),
        weekly=columns(list(weekly_rows), WEEKLY_COLS),
        waste=columns(list(waste_rows), WASTE_COLS),
        rejected=columns(list(rejected_rows), REJECTED_COLS),
        duplicates=0,
    )


# ---- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chdb_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = f"chdb://{tmp_path_factory.mktemp('chdb')}/data"
    keeper = Store.connect(url, "tl_keeper")  # holds the one engine for the module
    yield url
    keeper.close()


@pytest.fixture
def store(chdb_url: str) -> Iterator[Any]:
    s = Store.connect(chdb_url, f"tl_{uuid.uuid4().hex[:12]}")
    s.init_db()
    yield s
    s.client.command(f"DROP DATABASE IF EXISTS `{s.database}`")
    s.close()


def view(s: Any, name: str, order: str = "") -> list[dict[str, Any]]:
    return s.query_rows(f"SELECT * FROM {s.table(name)} {order}")


def sample_batch() -> types.SimpleNamespace:
    t = ms(WEEK1, 10.5)
    return batch(
        events=[
            event("e1", t, "alice", offset=1, team="core"),
            event("e2", t + 1000, "alice", offset=2, team="core", status="error"),
            event("e3", t + 2000, "bob", offset=3, model="claude-3"),
        ],
        hourly_rows=[
            hourly("alice", ms(WEEK1, 10), 300, requests=2),
            hourly("bob", ms(WEEK1, 10), 150, model="claude-3"),
        ],
        weekly_rows=[
            weekly("alice", 300, wasted=150, team="core", requests=2),
            weekly("bob", 150),
        ],
        waste_rows=[waste("alice", 150)],
        rejected_rows=[rejected(4, b"{not json")],
    )


# ---- tests ------------------------------------------------------------------------------


def test_init_db_is_idempotent(store: Any) -> None:
    store.init_db()
    store.init_db(["Token Lord", "AI Grandmaster", "Token Overlord"])
    names = {
        r["name"]
        for r in store.query_rows("SELECT name FROM system.tables WHERE database = {db:String}", {"db": store.database})
    }
    assert set(st.PUBLIC_VIEWS) <= names
    assert {"_events", "_hourly", "_weekly", "_waste", "_rejected", "_titles"} <= names
    titles = store.query_rows(f"SELECT rank, title FROM {store.table('_titles')} ORDER BY rank")
    assert titles == [
        {"rank": 1, "title": "Token Lord"},
        {"rank": 2, "title": "AI Grandmaster"},
        {"rank": 3, "title": "Token Overlord"},
    ]


def test_public_views_run_with_their_definers_rights(store: Any) -> None:
    """A BI user granted SELECT on the views alone can read them (init-db --bi-user)."""
    rows = store.query_rows(
        "SELECT name, create_table_query AS q FROM system.tables WHERE database = {db:String} AND engine = 'View'",
        {"db": store.database},
    )
    assert {r["name"] for r in rows} == set(st.PUBLIC_VIEWS)
    for r in rows:
        assert "SQL SECURITY DEFINER" in r["q"], r["name"]


def test_view_columns_follow_the_contract(store: Any) -> None:
    def cols(table: str) -> list[str]:
        rows = store.query_rows(
            "SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String} ORDER BY position",
            {"db": store.database, "t": table},
        )
        return [r["name"] for r in rows]

    assert cols("events") == EVENT_COLS[:-6]  # fingerprints stay internal
    assert cols("usage_hourly") == [
        "hour", "user", "model", "requests", "input_tokens", "output_tokens",
        "cached_input_tokens", "total_tokens", "wasted_tokens", "cost_usd",
    ]  # fmt: skip
    assert cols("leaderboard_weekly") == [
        "week_start", "user", "team", "requests", "input_tokens", "output_tokens",
        "total_tokens", "wasted_tokens", "effective_tokens", "waste_ratio", "cost_usd",
        "outcomes", "rank", "effective_rank", "title", "final",
    ]  # fmt: skip
    assert cols("waste_weekly") == ["week_start", "user", "reason", "requests", "wasted_tokens"]
    assert cols("rejected") == ["at", "reason", "src_topic", "src_partition", "src_offset", "raw"]
    views = {"waste_cost_weekly": "WASTE_COST", "team_weekly": "TEAM", "org_weekly": "ORG"}
    for name, const in views.items():
        want = getattr(st.schema, f"{const}_VIEW_COLUMNS")
        assert cols(name) == list(want), name


def test_write_batch_values_and_types(store: Any) -> None:
    now = ms(WEEK1, 11)
    written = store.write_batch(sample_batch(), "tokenlord.events", now)
    assert written == {"rejected": 1, "events": 3, "hourly": 2, "weekly": 2, "waste": 1}

    ev = view(store, "events", "ORDER BY src_offset")
    assert [e["event_id"] for e in ev] == ["e1", "e2", "e3"]
    e1 = ev[0]
    assert e1["ts"] == dt.datetime(2026, 11, 16, 10, 30)  # naive UTC
    assert e1["latency_ms"] is None and ev[1]["latency_ms"] == 123
    assert e1["cached_input_tokens"] == 10 and e1["total_tokens"] == 150
    ts_ms = store.query_rows(f"SELECT toUnixTimestamp64Milli(ts) AS t FROM {store.table('events')} ORDER BY t")
    assert [r["t"] for r in ts_ms] == [
        ms(WEEK1, 10.5),
        ms(WEEK1, 10.5) + 1000,
        ms(WEEK1, 10.5) + 2000,
    ]

    hours = store.query_rows(
        f"SELECT toUnixTimestamp(hour) * 1000 AS h, user, model, requests, total_tokens "
        f"FROM {store.table('usage_hourly')} ORDER BY user"
    )
    assert hours == [
        {
            "h": ms(WEEK1, 10),
            "user": "alice",
            "model": "gpt-4o",
            "requests": 2,
            "total_tokens": 300,
        },
        {
            "h": ms(WEEK1, 10),
            "user": "bob",
            "model": "claude-3",
            "requests": 1,
            "total_tokens": 150,
        },
    ]
    assert view(store, "waste_weekly") == [
        {"week_start": WEEK1, "user": "alice", "reason": "failed_request", "requests": 1,
         "wasted_tokens": 150},
    ]  # fmt: skip
    rej = view(store, "rejected")
    assert rej == [
        {"at": dt.datetime(2026, 11, 16, 11, 0), "reason": "invalid_json",
         "src_topic": "tokenlord.events", "src_partition": 0, "src_offset": 4,
             "raw": '{"<redacted: 3 bytes>" "<redacted: 4 bytes>"'},
    ]  # fmt: skip


def test_replayed_batch_is_counted_once(store: Any) -> None:
    b = sample_batch()
    store.write_batch(b, "tokenlord.events", ms(WEEK1, 11))
    before = {v: view(store, v) for v in ("events", "usage_hourly", "leaderboard_weekly", "waste_weekly")}
    # a replay after a crash: same rows, a later wall clock
    store.write_batch(b, "tokenlord.events", ms(WEEK1, 12))
    store.write_batch(b, "tokenlord.events", ms(WEEK1, 13))
    for v, rows in before.items():
        assert view(store, v) == rows, v
    assert len(view(store, "events")) == 3
    rej = view(store, "rejected")
    assert len(rej) == 1
    lb = store.leaderboard(WEEK1)
    assert [(r["user"], r["requests"], r["total_tokens"]) for r in lb] == [
        ("alice", 2, 300),
        ("bob", 1, 150),
    ]


def test_restatement_with_higher_version_replaces(store: Any) -> None:
    store.write_batch(
        batch(hourly_rows=[hourly("alice", ms(WEEK1, 3), 100, version=1)],
              weekly_rows=[weekly("alice", 100, version=1)],
              waste_rows=[waste("alice", 10, version=1)]),
        "t", 0,
    )  # fmt: skip
    store.write_batch(
        batch(hourly_rows=[hourly("alice", ms(WEEK1, 3), 250, version=2, requests=3)],
              weekly_rows=[weekly("alice", 250, version=2, requests=3, final=1)],
              waste_rows=[waste("alice", 40, version=2, requests=2)]),
        "t", 0,
    )  # fmt: skip
    # an out-of-order replay of the old version must not win
    store.write_batch(
        batch(hourly_rows=[hourly("alice", ms(WEEK1, 3), 100, version=1)],
              weekly_rows=[weekly("alice", 100, version=1)],
              waste_rows=[waste("alice", 10, version=1)]),
        "t", 0,
    )  # fmt: skip
    (h,) = view(store, "usage_hourly")
    assert (h["requests"], h["total_tokens"]) == (3, 250)
    (w,) = store.leaderboard(WEEK1)
    assert (w["requests"], w["total_tokens"], w["final"]) == (3, 250, 1)
    (x,) = view(store, "waste_weekly")
    assert (x["requests"], x["wasted_tokens"]) == (2, 40)


def test_partitions_of_one_user_week_are_summed(store: Any) -> None:
    store.write_batch(
        batch(
            hourly_rows=[
                hourly("alice", ms(WEEK1, 5), 100, partition=0),
                hourly("alice", ms(WEEK1, 5), 60, partition=1, version=7),
            ],
            weekly_rows=[
                weekly("alice", 100, partition=0, team="red", team_ts=ms(WEEK1, 5), final=1,
                       wasted=20),
                weekly("alice", 60, partition=1, team="blue", team_ts=ms(WEEK1, 6), version=7),
                weekly("alice", 40, partition=2, team="", team_ts=ms(WEEK1, 9), final=1),
            ],
            waste_rows=[waste("alice", 20, partition=0), waste("alice", 5, partition=3)],
        ),
        "t", 0,
    )  # fmt: skip
    (h,) = view(store, "usage_hourly")
    assert (h["requests"], h["total_tokens"]) == (2, 160)
    (w,) = store.leaderboard(WEEK1)
    assert w["requests"] == 3 and w["total_tokens"] == 200 and w["wasted_tokens"] == 20
    assert w["effective_tokens"] == 180 and w["waste_ratio"] == pytest.approx(0.1)
    assert w["team"] == "blue"  # latest non-empty team across partitions
    assert w["final"] == 0  # partition 1 still has the week open
    (x,) = view(store, "waste_weekly")
    assert (x["requests"], x["wasted_tokens"]) == (2, 25)


def test_ranks_titles_and_ties(store: Any) -> None:
    rows = [
        weekly("dave", 1000, wasted=900),  # rank 1 raw, last effective
        weekly("carol", 500),
        weekly("bob", 500),  # ties carol: user asc → bob first
        weekly("alice", 300),
        weekly("erin", 0),
        weekly("zed", 999, week=WEEK2),
    ]
    store.write_batch(batch(weekly_rows=rows), "t", 0)
    raw = store.leaderboard(WEEK1, 100, "raw")
    assert [(r["user"], r["rank"]) for r in raw] == [
        ("dave", 1), ("bob", 2), ("carol", 3), ("alice", 4), ("erin", 5),
    ]  # fmt: skip
    eff = store.leaderboard(WEEK1, 100, "effective")
    assert [(r["user"], r["effective_rank"], r["effective_tokens"], r["title"]) for r in eff] == [
        ("bob", 1, 500, "Token Lord"),
        ("carol", 2, 500, "AI Grandmaster"),
        ("alice", 3, 300, "Token Overlord"),
        ("dave", 4, 100, ""),
        ("erin", 5, 0, ""),
    ]
    assert eff[4]["waste_ratio"] == 0.0 and eff[3]["waste_ratio"] == pytest.approx(0.9)
    assert all(r["outcomes"] == 0 for r in eff)
    assert list(raw[0]) == [
        "week_start", "user", "team", "requests", "input_tokens", "output_tokens",
        "total_tokens", "wasted_tokens", "effective_tokens", "waste_ratio", "cost_usd",
        "outcomes", "rank", "effective_rank", "title", "final",
    ]  # fmt: skip
    # top, latest week, weeks()
    assert [r["user"] for r in store.leaderboard(WEEK1, 2)] == ["dave", "bob"]
    assert store.leaderboard(WEEK1, 0) == []
    latest = store.leaderboard(None)
    assert [(r["week_start"], r["user"], r["rank"], r["title"]) for r in latest] == [
        (WEEK2, "zed", 1, "Token Lord"),
    ]
    assert store.weeks() == [WEEK1, WEEK2]
    # titles are configurable; init_db refills them
    store.init_db(["Emperor"])
    eff = store.leaderboard(WEEK1, 3, "effective")
    assert [r["title"] for r in eff] == ["Emperor", "", ""]
    # the plain view, as a BI tool reads it
    plain = store.query_rows(
        f"SELECT user, rank, title FROM {store.table('leaderboard_weekly')} "
        "WHERE week_start = {w:Date} ORDER BY rank",
        {"w": WEEK1},
    )
    assert [r["user"] for r in plain] == ["dave", "bob", "carol", "alice", "erin"]


def test_leaderboard_empty_and_bad_arguments(store: Any) -> None:
    assert store.leaderboard(None) == []
    assert store.weeks() == []
    with pytest.raises(ValueError):
        store.leaderboard(WEEK1, 10, "loudest")
    with pytest.raises(ValueError):
        store.leaderboard(WEEK1, -1)


def test_rejected_raw_is_stored_redacted(store: Any) -> None:
    hostile = [
        b"\xff\xfe\x00 not utf-8 \xc3\x28",
        b"x'); DROP TABLE _events; --",
        b'back\\slash\ttab\nnewline "q" `tick`',
        b"x" * 5000,
        b"",
    ]
    rows = [rejected(10 + i, raw, idx=i) for i, raw in enumerate(hostile)]
    rows[1]["reason"] = "missing_field:user'); DROP TABLE x; --"
    store.write_batch(batch(rejected_rows=rows), "topic'); DROP DATABASE x; --", ms(WEEK1))
    store.write_batch(batch(rejected_rows=rows), "topic'); DROP DATABASE x; --", ms(WEEK1, 1))
    got = store.client.query(
        f"SELECT src_offset, reason, src_topic, raw FROM {store.table('rejected')} ORDER BY src_offset",
        column_formats={"raw": "bytes"},
    ).result_rows
    # No text at rest: what is not a short name, id, number or punctuation is
    # replaced by its size, and the row is cut to RAW_MAX_BYTES.
    assert [r[3] for r in got] == st.stored_raw(hostile)
    assert got[3][3] == b'"<redacted: 5000 bytes>"'
    assert b"DROP" not in got[1][3] and b"newline" not in got[2][3]
    assert all(len(r[3]) <= st.RAW_MAX_BYTES for r in got)
    assert got[1][1] == "missing_field:user'); DROP TABLE x; --"
    assert {r[2] for r in got} == {"topic'); DROP DATABASE x; --"}
    assert len(view(store, "events")) == 0  # _events still exists


def test_restore_chunks_are_restore_partition_in_pieces(store: Any) -> None:
    """Keyset chunks of any size give the same events in the same order, several
    events of one message (one offset) included, applied ones only."""
    t0 = ms(WEEK1, 1)
    evs = [event(f"e{i}", t0 + (i * 7919) % 50 * 60_000, f"u{i % 3}", partition=0, offset=i // 3) for i in range(23)]
    evs.append(event("other", t0, "x", partition=1, offset=0))
    store.write_batch(batch(events=evs), "t", 0)
    store.write_batch(batch(events=evs), "t", 0)  # replay: FINAL keeps one of each
    for next_offset in (None, 5):
        want = store.restore_partition(0, t0).events if next_offset is None else None
        if want is None:  # progress at offset 5: events of messages 0-4 only
            whole = store.restore_partition(0, t0).events
            keep = [i for i, o in enumerate(whole["event_id"]) if int(o[1:]) // 3 < 5]
            want = {c: [v[i] for i in keep] for c, v in whole.items()}
        for rows in (1, 2, 5, 23, 100):
            got: dict[str, list[Any]] = {c: [] for c in st.RESTORE_COLUMNS}
            after, calls = None, 0
            while True:
                chunk, after = store.restore_chunk(0, t0, next_offset, rows, after)
                assert len(chunk["event_id"]) <= rows
                calls += 1
                for c in got:
                    got[c] += chunk[c]
                if after is None:
                    break
            assert got == want, (next_offset, rows)
            assert calls >= len(want["event_id"]) // rows


def test_restore_partition(store: Any) -> None:
    t0 = ms(WEEK1, 1)
    evs = [
        event("a1", t0, "alice", partition=0, offset=5),
        event("b1", t0 + 5 * HOUR, "bob", partition=0, offset=6, team="core"),
        event("a2", t0 + 2 * HOUR, "alice", partition=0, offset=7, status="error"),
        event("z1", t0 + 9 * HOUR, "zoe", partition=1, offset=5),
    ]
    store.write_batch(
        batch(
            events=evs,
            hourly_rows=[hourly("alice", ms(WEEK1, 1), 150, version=4)],
            weekly_rows=[
                weekly("alice", 300, version=6),
                weekly("zoe", 1, partition=1, version=99),
            ],
            waste_rows=[waste("alice", 150, version=5)],
        ),
        "t",
        0,
    )
    store.write_batch(batch(events=evs), "t", 0)  # replay
    wm, version, cols, next_offset = store.restore_partition(0, t0 + HOUR)
    assert wm == t0 + 5 * HOUR and next_offset is None
    assert version == 6
    assert list(cols) == list(st.RESTORE_COLUMNS)
    assert cols["event_id"] == ["b1", "a2"]  # ts >= since, in offset order
    assert cols["ts"] == [t0 + 5 * HOUR, t0 + 2 * HOUR]
    assert cols["user"] == ["bob", "alice"] and cols["team"] == ["core", ""]
    assert cols["total_tokens"] == [150, 150] and cols["wasted_tokens"] == [0, 150]
    assert cols["waste_reason"] == ["", "failed_request"]
    assert cols["cached_input_tokens"] == [10, 10]
    assert cols["cost_usd"] == pytest.approx([150e-6, 150e-6])
    all_ = store.restore_partition(0, 0)[2]
    assert all_["event_id"] == ["a1", "b1", "a2"]
    wm_only = store.restore_partition(0, None)
    assert wm_only[:2] == (t0 + 5 * HOUR, 6) and wm_only[2]["event_id"] == []
    assert store.restore_partition(1, 0)[:2] == (t0 + 9 * HOUR, 99)
    assert store.restore_partition(7, 0) == (None, 0, {c: [] for c in st.RESTORE_COLUMNS}, None)


def test_progress_bounds_what_a_restore_counts_as_applied(store: Any) -> None:
    t0 = ms(WEEK1, 1)
    evs = [event(f"e{o}", t0 + o * HOUR, "alice", partition=0, offset=o) for o in range(5)]
    # Offsets 0..2 complete (progress 3); 3 and 4 written but the batch never finished.
    store.write_batch({"events": columns(evs, EVENT_COLS), "progress": {0: 3}, "version": 7}, "t", 0)
    assert store.restore_partition(0, None, "t").next_offset == 3
    got = store.restore_partition(0, 0, "t")
    assert (got.watermark, got.next_offset, got.events["event_id"]) == (t0 + 2 * HOUR, 3, ["e0", "e1", "e2"])
    other = store.restore_partition(0, 0, "other-topic")  # progress is per topic: none there
    assert other.next_offset is None and other.watermark is None and other.events["event_id"] == []
    assert store.restore_partition(0, 0).events["event_id"] == [f"e{o}" for o in range(5)]
    # Progress only moves forward in effect: the highest version wins.
    store.write_batch({"progress": {0: 5, 1: 9}, "version": 8}, "t", 0)
    assert [store.restore_partition(p, None, "t").next_offset for p in (0, 1, 2)] == [5, 9, None]


def test_batch_shapes(store: Any) -> None:
    assert store.write_batch(batch(), "t", 0) == {}
    mapping = {"events": columns([event("m1", ms(WEEK1), "u")], EVENT_COLS)}
    assert store.write_batch(mapping, "t", 0) == {"events": 1}  # a Mapping works too
    bad = batch(events=[event("e", ms(WEEK1), "u")])
    del bad.events["model"]
    with pytest.raises(StoreError, match="model"):
        store.write_batch(bad, "t", 0)
    ragged = batch(events=[event("e", ms(WEEK1), "u")])
    ragged.events["user"].append("extra")
    with pytest.raises(StoreError, match="rows"):
        store.write_batch(ragged, "t", 0)


def test_first_week_of_1970_does_not_break_the_insert(store: Any) -> None:
    # ts 0 is a valid event time; its Monday (1969-12-29) is before Date's range
    store.write_batch(
        batch(
            events=[event("old", 0, "u")],
            weekly_rows=[weekly("u", 5, week=dt.date(1970, 1, 1))],
            hourly_rows=[hourly("u", 0, 5)],
            waste_rows=[waste("u", 5, week=dt.date(1970, 1, 1))],
        ),
        "t",
        0,
    )
    assert store.weeks() == [dt.date(1970, 1, 1)]
    ms_week = -3 * DAY
    store.write_batch(batch(weekly_rows=[{**weekly("u", 7, version=2), "week_start": ms_week}]), "t", 0)
    assert store.leaderboard(None)[0]["total_tokens"] == 7


def test_connect_and_identifiers(chdb_url: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Store.connect(chdb_url, "bad; DROP DATABASE x")
    with pytest.raises(ValueError):
        st.quote_ident("a`b")
    assert st.quote_ident("tokenlord") == "`tokenlord`"
    # chDB hosts one directory per process: a second one is a clear error
    with pytest.raises(StoreError, match="one data directory per process"):
        Store.connect(f"chdb://{tmp_path}/other")
    # the same directory spelled differently shares the engine
    a = Store.connect(chdb_url, "tl_a")
    b = Store.connect(chdb_url + "/", "tl_b")
    try:
        assert a.client is b.client
    finally:
        a.close()
        b.close()
        a.close()  # idempotent


def test_parse_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert st.parse_url("chdb://./var/tokenlord").path == str(tmp_path.resolve() / "var/tokenlord")
    assert st.parse_url("chdb://var/x").path == str(tmp_path.resolve() / "var/x")
    assert st.parse_url("chdb:///abs/path").path == "/abs/path"
    assert st.parse_url("chdb://memory").path == ":memory:"
    h = st.parse_url("http://me:p%40ss@ch.local:8124/analytics")
    assert (h.host, h.port, h.secure, h.username, h.password, h.database) == (
        "ch.local", 8124, False, "me", "p@ss", "analytics",
    )  # fmt: skip
    h = st.parse_url("https://ch.local")
    assert (h.port, h.secure, h.username, h.password, h.database) == (8443, True, None, "", None)
    assert st.parse_url("http://localhost").port == 8123
    for bad in ("ftp://x", "http://", "http://h:8123/db?x=1", "http://h/bad-name", "https://h?ca_cert=/nope.pem",
                "https://h?verify=maybe", "http://h?verify=false", "https://h?sslmode=require"):  # fmt: skip
        with pytest.raises((StoreError, ValueError)):
            st.parse_url(bad)


def test_https_url_tls_options_reach_the_client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    h = st.parse_url(f"https://bi:pw@ch.example:8443/tokenlord?ca_cert={ca}&verify=true")
    assert h.tls == (("ca_cert", str(ca)), ("verify", True))
    seen: dict[str, Any] = {}

    def fake_get_client(**kwargs: Any) -> Any:
        seen.update(kwargs)
        raise client_mod.ClickHouseError("stop here")

    client_mod = sys.modules[st.Store.__module__]
    monkeypatch.setattr(client_mod.clickhouse_connect, "get_client", fake_get_client)
    with pytest.raises(StoreError) as err:
        st.Store.connect(f"https://bi:pw@ch.example:8443/tokenlord?ca_cert={ca}&verify=false")
    assert (seen["ca_cert"], seen["verify"], seen["secure"], seen["password"]) == (str(ca), False, True, "pw")
    assert "pw" not in str(err.value).replace("https", "")


def test_real_core_batch_round_trip(store: Any) -> None:
    """The native core's Batch goes in as it is (skipped until the core is built)."""
    try:
        core_mod = importlib.import_module("tokenlord._core")
    except ImportError:
        pytest.skip("tokenlord._core is not built")
    now = ms(WEEK1, 30)
    values = [
        b'{"event_id":"a","ts":%d,"user":"alice","model":"gpt-4o","input_tokens":10,'
        b'"output_tokens":5,"team":"red"}' % (now - HOUR),
        b'{"event_id":"b","ts":%d,"user":"bob","model":"gpt-4o","input_tokens":100,'
        b'"output_tokens":5,"status":"error"}' % (now - 2 * HOUR),
        b"\xff{bad",
    ]
    b = core_mod.Core().process([0, 0, 0], [0, 1, 2], values, now)
    for _ in range(2):
        store.write_batch(b, "tokenlord.events", now)
    lb = store.leaderboard(WEEK1, 10, "effective")
    assert [(r["user"], r["total_tokens"], r["effective_rank"], r["team"]) for r in lb] == [
        ("alice", 15, 1, "red"),
        ("bob", 105, 2, ""),
    ]
    wm, version, cols, next_offset = store.restore_partition(0, 0, "tokenlord.events")
    assert wm == now - HOUR and version == b.version and next_offset == 3 == b.progress[0]
    assert cols["event_id"] == ["a", "b"]
    restated = core_mod.Core().restore(0, wm, version, cols)
    store.write_batch(restated, "tokenlord.events", now)
    assert store.leaderboard(WEEK1, 10, "effective") == lb
    assert len(view(store, "rejected")) == 1


def test_row_binary_blocks_store_what_the_columns_say(chdb_url: str, store: Any) -> None:
    """The core's RowBinary blocks (the worker's insert path) and its column views
    (the path of look-alike batches) store identical rows, and the blocks' column
    lists are the schema's."""
    import orjson

    try:
        from tokenlord import _core
    except ImportError:
        pytest.skip("tokenlord._core is not built")
    schema = st.schema
    assert _core.ROW_BINARY_COLUMNS == {
        "events": list(schema.EVENTS_COLUMNS),
        "hourly": list(schema.HOURLY_COLUMNS),
        "weekly": list(schema.WEEKLY_COLUMNS),
        "waste": list(schema.WASTE_COLUMNS),
    }
    t0 = ms(WEEK1, 10)
    evs: list[dict[str, Any]] = [
        {"event_id": f"e{i}", "ts": t0 + i * 1500, "user": ["ann", "bo\u00e9", "x'); DROP --", "z" * 200][i % 4],
         "model": ["gpt-4o", "claude-sonnet-4", "llama-3"][i % 3], "input_tokens": 100 + i, "output_tokens": i,
         "team": "t\n" if i % 2 else "", "latency_ms": i if i % 3 else None, "status": "error" if i % 7 == 0 else "ok",
         "cached_input_tokens": i % 5, "reasoning_tokens": i % 2, "finish_reason": "stop" if i % 2 else "",
         "prompt": "the same prompt text " * 5 if i % 4 == 1 else None}
        for i in range(60)
    ]  # fmt: skip
    evs = [{k: v for k, v in e.items() if v is not None} for e in evs]
    b = _core.Core().process([0] * 60, list(range(60)), [orjson.dumps(e) for e in evs], t0 + 10 * HOUR)
    assert b.rows["events"] == 60 and b.rows["hourly"] > 0 and b.rows["waste"] > 0
    as_columns = {name: getattr(b, name) for name in ("events", "hourly", "weekly", "waste", "rejected")}
    other = Store.connect(chdb_url, f"tl_{uuid.uuid4().hex[:12]}")
    try:
        other.init_db()
        written = store.write_batch(b, "tokenlord.events", t0)
        assert written == {**other.write_batch(as_columns, "tokenlord.events", t0), "progress": 1}
        for table in ("_events", "_hourly", "_weekly", "_waste"):
            cols = ", ".join(f"`{c}`" for c, _ in getattr(schema, table[1:].upper() + "_COLUMNS"))
            sql = "SELECT {c} FROM {t} ORDER BY {c}"
            got = store.query_rows(sql.format(c=cols, t=store.table(table)))
            want = other.query_rows(sql.format(c=cols, t=other.table(table)))
            assert got == want and len(got) == b.rows[table[1:]]
    finally:
        other.client.command(f"DROP DATABASE IF EXISTS `{other.database}`")
        other.close()


def test_explain_shows_reasons_and_example_events(store: Any) -> None:
    import orjson
    from tokenlord import _core
    from tokenlord.cli import format_explain

    t0 = ms(WEEK1, 10)
    user = "x'); DROP TABLE t; --"
    evs = [
        {"event_id": f"s{i}", "ts": t0 + i * 2000, "user": user, "model": "gpt-4o", "input_tokens": 5000,
         "output_tokens": 10, "team": "red"}
        for i in range(5)
    ]  # fmt: skip
    evs.append({"event_id": "err", "ts": t0 + 60_000, "user": user, "model": "gpt-4o", "input_tokens": 7,
                "output_tokens": 0, "status": "error"})  # fmt: skip
    evs.append({"event_id": "ok", "ts": t0 + 90_000, "user": "bob", "model": "gpt-4o", "input_tokens": 9,
                "output_tokens": 1})  # fmt: skip
    out = _core.Core().process([0] * len(evs), list(range(len(evs))), [orjson.dumps(e) for e in evs], t0 + 100_000)
    store.write_batch(out, "tokenlord.events", t0 + 100_000)
    report = store.explain(user, WEEK1)
    assert report["leaderboard"]["wasted_tokens"] == 3 * 5010 + 7
    got = {
        r["reason"]: (r["requests"], r["wasted_tokens"], [e["event_id"] for e in r["examples"]])
        for r in report["reasons"]
    }
    assert got == {"retry_storm": (3, 15030, ["s2", "s3", "s4"]), "failed_request": (1, 7, ["err"])}
    text = format_explain(report)
    assert "retry_storm: 3 requests, 15,030 tokens wasted" in text and "e.g. s2" in text
    assert "rank 1 by raw tokens, 1 by effective tokens — Token Lord" in text
    assert "nothing was discounted" in format_explain(store.explain("bob", WEEK1))
    assert "no usage" in format_explain(store.explain("nobody", WEEK1))


def test_outcomes_join_usage_in_leaderboard_and_value_weekly(store: Any) -> None:
    import orjson
    from tokenlord import _core

    t0 = ms(WEEK1, 10)
    core = _core.Core()
    usage = [
        {"event_id": "u1", "ts": t0, "user": "ann", "team": "red", "model": "gpt-4o", "session_id": "s-a",
         "input_tokens": 1000, "output_tokens": 200},
        {"event_id": "u2", "ts": t0 + 1, "user": "ann", "team": "red", "model": "gpt-4o", "session_id": "s-a",
         "input_tokens": 2000, "output_tokens": 300},
        {"event_id": "u3", "ts": t0 + 2, "user": "ann", "team": "red", "model": "gpt-4o", "input_tokens": 500,
         "output_tokens": 0},
        {"event_id": "u4", "ts": t0 + 3, "user": "bob", "model": "gpt-4o", "input_tokens": 40, "output_tokens": 2},
    ]  # fmt: skip
    out = core.process([0] * 4, [0, 1, 2, 3], [orjson.dumps(u) for u in usage], t0 + 10)
    store.write_batch(out, "tokenlord.events", t0 + 10)
    outcomes = [
        {"session_id": "s-a", "ts": t0 + 5, "user": "ann", "outcome": "merged", "value": 3.0},
        {"event_id": "u3", "ts": t0 + 6, "user": "ann", "outcome": "resolved"},
        {"event_id": "u3", "ts": t0 + 6, "user": "ann", "outcome": "resolved"},  # sent twice: once
        {"event_id": "zz", "ts": t0 + 7, "user": "ann"},  # no outcome: rejected
        {"event_id": "u4", "ts": t0 + 8, "user": "bob", "outcome": "rejected"},  # achieved nothing
    ]
    oc, rj = core.outcomes([0] * 5, [0, 1, 2, 3, 4], [orjson.dumps(o) for o in outcomes], t0 + 10)
    assert rj["reason"] == ["missing_field:outcome"]
    written = store.write_batch({"outcomes": oc, "rejected": rj}, "tokenlord.outcomes", t0 + 10)
    assert written == {"outcomes": 4, "rejected": 1}
    board = {r["user"]: r for r in store.leaderboard(WEEK1)}
    assert (board["ann"]["outcomes"], board["bob"]["outcomes"]) == (2, 0)
    value = {r["user"]: r for r in view(store, "value_weekly")}
    ann = value["ann"]
    assert (ann["team"], ann["total_tokens"], ann["outcomes"], ann["value"]) == ("red", 4000, 2, 3.0)
    assert ann["attributed_tokens"] == 4000  # session s-a (u1, u2) and event u3
    assert ann["tokens_per_outcome"] == 2000 and ann["value_per_1m_tokens"] == 750.0
    assert value["bob"]["tokens_per_outcome"] is None and value["bob"]["value"] == 0
    assert value["bob"]["attributed_tokens"] == 0  # a rejected diff achieved nothing
    assert [r["src_topic"] for r in view(store, "rejected")] == ["tokenlord.outcomes"]
    from tokenlord.cli import format_explain

    assert "outcomes: merged 1 (value 3), resolved 1" in format_explain(store.explain("ann", WEEK1))
    assert "outcomes: rejected 1  ('rejected' does not count)" in format_explain(store.explain("bob", WEEK1))


class RecordingClient:
    """Passes every call to the real client and records what it touches."""

    def __init__(self, client: Any, db: str) -> None:
        self.client, self.db = client, db
        self.inserted: set[str] = set()
        self.selected: set[str] = set()
        self.commands: list[str] = []

    def _tables(self, sql: str) -> set[str]:
        import re

        return set(re.findall(rf"`{self.db}`\.`(\w+)`", sql))

    def insert(self, table: str, *args: Any, **kwargs: Any) -> Any:
        self.inserted.add(table)
        return self.client.insert(table, *args, **kwargs)

    def raw_insert(self, table: str, *args: Any, **kwargs: Any) -> Any:
        self.inserted |= self._tables(table)  # the quoted `db`.`name`
        return self.client.raw_insert(table, *args, **kwargs)

    def query(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        assert sql.lstrip().upper().startswith(("SELECT", "WITH")), sql
        self.selected |= self._tables(sql)
        return self.client.query(sql, *args, **kwargs)

    def command(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        self.commands.append(sql)
        return self.client.command(sql, *args, **kwargs)


def test_a_worker_needs_exactly_the_worker_users_grants(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a worker started with TOKENLORD_WORKER_INIT_DB=false does to the store
    (write batches of events and outcomes, restore, the pages' reads, the schema
    check) touches exactly the tables `init-db --worker-user` grants, and issues
    no DDL or other command."""
    import orjson
    from tokenlord import _core
    from tokenlord.store import access

    t0 = ms(WEEK1, 10)
    core = _core.Core()
    usage = {"event_id": "u1", "ts": t0, "user": "ann", "model": "gpt-4o", "input_tokens": 10, "output_tokens": 2}
    out = core.process([0], [0], [orjson.dumps(usage)], t0 + 10)
    outcome = {"event_id": "u1", "ts": t0 + 5, "user": "ann", "outcome": "merged"}
    oc, rj = core.outcomes([0, 0], [0, 1], [orjson.dumps(outcome), b"{bad"], t0 + 10)
    rec = RecordingClient(store.client, store.database)
    monkeypatch.setattr(store, "_client", rec)
    store.check_schema()
    store.write_batch(sample_batch(), "tokenlord.events", t0)
    store.write_batch(out, "tokenlord.events", t0 + 10)
    store.write_batch({"outcomes": oc, "rejected": rj}, "tokenlord.outcomes", t0 + 10)
    store.restore_partition(0, None, "tokenlord.events")
    store.restore_partition(0, t0 - 1, "tokenlord.events")
    store.leaderboard()
    store.leaderboard(WEEK1, by="effective")
    store.explain("ann", WEEK1)
    # The team and organisation pages, and the weekly digest (reads, its record)
    from tokenlord import digest
    from tokenlord.store import boards

    _team_story(store)
    boards.team_board(store, WEEK1)
    boards.members(store, WEEK1, "red")
    boards.trend(store, team="red")
    week0 = WEEK1 - dt.timedelta(days=7)
    store.write_batch(batch(weekly_rows=[weekly("zed", 10, week=week0, final=1)]), "tokenlord.events", t0)
    hooks = digest.parse_webhooks("a=json:http://127.0.0.1:9/x")
    at = ms(WEEK2, 30) / 1000
    sent = digest.Digester(store, hooks, post=lambda *_: 200, clock=lambda: at, **_digest_kw({0: 1})).run_once()
    assert sent == [(week0, "a", "sent")]
    assert rec.commands == []
    assert rec.inserted == set(access.WORKER_INSERT)
    views = rec.selected & set(st.PUBLIC_VIEWS)
    assert rec.selected - views == set(access.WORKER_SELECT) and views
    grants = access.worker_user_statements(store.database, "w")[-1]
    for table in rec.inserted:
        assert f"INSERT, SELECT ON `{store.database}`.`{table}`" in grants or (
            f"INSERT ON `{store.database}`.`{table}`" in grants
        )
    for table in rec.selected:
        assert f"SELECT ON `{store.database}`.`{table}`" in grants
    assert "_titles" not in grants and "ALTER" not in grants and "CREATE" not in grants


def test_check_schema_names_what_is_missing(store: Any) -> None:
    store.check_schema()
    store.client.command(f"DROP TABLE {store.table('_waste')}")
    with pytest.raises(StoreError, match=r"lacks _waste: run `tokenlord init-db` first"):
        store.check_schema()


def test_an_outcome_attributes_only_its_own_users_events(store: Any) -> None:
    """An outcome naming another user's event or session (a colliding session id,
    or claiming a colleague's request) attributes none of that user's tokens."""
    import orjson
    from tokenlord import _core

    t0 = ms(WEEK1, 10)
    core = _core.Core()
    usage = [
        {"event_id": "a1", "ts": t0, "user": "ann", "model": "gpt-4o", "session_id": "s", "input_tokens": 1000,
         "output_tokens": 0},
        {"event_id": "a2", "ts": t0 + 1, "user": "ann", "model": "gpt-4o", "input_tokens": 300, "output_tokens": 0},
        {"event_id": "b1", "ts": t0 + 2, "user": "bob", "model": "gpt-4o", "session_id": "s", "input_tokens": 70,
         "output_tokens": 0},
    ]  # fmt: skip
    out = core.process([0] * 3, [0, 1, 2], [orjson.dumps(u) for u in usage], t0 + 10)
    store.write_batch(out, "tokenlord.events", t0 + 10)
    outcomes = [
        {"event_id": "a2", "ts": t0 + 5, "user": "bob", "outcome": "merged", "value": 5.0},  # ann's request
        {"session_id": "s", "ts": t0 + 6, "user": "bob", "outcome": "resolved"},  # bob's and ann's session id
        {"event_id": "b1", "ts": t0 + 7, "user": "ann", "outcome": "merged"},  # bob's request
    ]
    oc, rj = core.outcomes([0] * 3, [0, 1, 2], [orjson.dumps(o) for o in outcomes], t0 + 10)
    assert rj["reason"] == []
    store.write_batch({"outcomes": oc, "rejected": rj}, "tokenlord.outcomes", t0 + 10)
    value = {r["user"]: r for r in view(store, "value_weekly")}
    assert value["bob"]["attributed_tokens"] == 70  # his own b1, through his session s only
    assert value["ann"]["attributed_tokens"] == 0  # neither a1 (session s) nor a2 through bob's outcomes
    # Each outcome still counts, with its value, for the user who sent it.
    assert (value["bob"]["outcomes"], value["bob"]["value"]) == (2, 5.0)
    assert (value["ann"]["outcomes"], value["ann"]["value"]) == (1, 0)


def test_leaderboard_of_one_user_keeps_the_whole_boards_ranks(store: Any) -> None:
    rows = [weekly("dave", 1000, wasted=900), weekly("bob", 500), weekly("alice", 300)]
    store.write_batch(batch(weekly_rows=rows), "t", 0)
    whole = {r["user"]: r for r in store.leaderboard(WEEK1, 100, "effective")}
    for user in ("dave", "bob", "alice"):
        (own,) = store.leaderboard(WEEK1, 100, "effective", user=user)
        assert own == whole[user]
    assert store.leaderboard(WEEK1, 100, "raw", user="nobody") == []
    assert [r["rank"] for r in store.leaderboard(WEEK1, 100, "raw", user="alice")] == [3]


def test_reader_is_its_own_read_only_connection(store: Any) -> None:
    """The pages' reader: another connection (its queries do not wait for the writer's),
    seeing what the writer wrote, refusing writes, closed on its own."""
    reader = store.reader()
    try:
        assert reader.client is not store.client and reader.database == store.database
        store.write_batch(batch(weekly_rows=[weekly("alice", 300)]), "t", 0)
        assert [r["user"] for r in reader.leaderboard(WEEK1)] == ["alice"]
        store.write_batch(batch(weekly_rows=[weekly("bob", 500)]), "t", 0)
        assert [r["user"] for r in reader.leaderboard(WEEK1)] == ["bob", "alice"]
        with pytest.raises(Exception, match=r"(?i)readonly"):
            reader.client.command(f"TRUNCATE TABLE {store.table('_weekly')}")
    finally:
        reader.close()
    assert store.query_rows("SELECT 1 AS ok") == [{"ok": 1}]  # the writer's connection is still open


def test_value_ranking_rule(store: Any) -> None:
    """docs/semantics.md "Value": effective attributed tokens, capped per outcome
    credit; no outcome, no value (ranked by name only); waste never counts."""
    import orjson
    from tokenlord import _core
    from tokenlord.store.schema import VALUE_TOKENS_PER_CREDIT

    t0 = ms(WEEK1, 10)
    core = _core.Core()

    def use(eid: str, user: str, tokens: int, session: str = "", status: str = "ok", dt_ms: int = 0) -> dict[str, Any]:
        return {"event_id": eid, "ts": t0 + dt_ms, "user": user, "model": "gpt-4o", "session_id": session,
                "input_tokens": tokens, "output_tokens": 0, "status": status}  # fmt: skip

    usage = [
        use("big1", "spender", 3_000_000),  # a huge spend, no outcome
        use("tiny", "lucky", 50),  # a tiny spend, one outcome of value 10
        use("w1", "worker", 200_000, "s-w"), use("w2", "worker", 300_000, "s-w", dt_ms=1),
        use("w3", "worker", 100_000, "s-w", status="error", dt_ms=2),  # failed: waste, not value
        use("t1", "theater", 2_000_000, "s-t"),  # one real outcome, a huge session: capped
        use("c1", "claimer", 900),  # claims a colleague's event
        use("r1", "rejected", 40_000),
    ]  # fmt: skip
    out = core.process([0] * len(usage), list(range(len(usage))), [orjson.dumps(u) for u in usage], t0 + 10)
    store.write_batch(out, "tokenlord.events", t0 + 10)
    outcomes = [
        {"event_id": "tiny", "ts": t0 + 5, "user": "lucky", "outcome": "merged", "value": 10.0},
        {"session_id": "s-w", "ts": t0 + 6, "user": "worker", "outcome": "merged"},
        {"event_id": "w1", "ts": t0 + 7, "user": "worker", "outcome": "resolved", "value": 0.5},
        {"session_id": "s-t", "ts": t0 + 8, "user": "theater", "outcome": "merged"},
        {"event_id": "w2", "ts": t0 + 9, "user": "claimer", "outcome": "merged"},
        {"event_id": "r1", "ts": t0 + 9, "user": "rejected", "outcome": "rejected"},
    ]
    oc, rj = core.outcomes([0] * 6, list(range(6)), [orjson.dumps(o) for o in outcomes], t0 + 10)
    store.write_batch({"outcomes": oc, "rejected": rj}, "tokenlord.outcomes", t0 + 10)
    v = {r["user"]: r for r in view(store, "value_weekly")}
    assert (v["worker"]["credit"], v["worker"]["value_tokens"]) == (1.5, 500_000)  # w3 failed: waste
    assert v["theater"]["value_tokens"] == VALUE_TOKENS_PER_CREDIT  # 2M attributed, one credit
    assert (v["lucky"]["credit"], v["lucky"]["value_tokens"]) == (10.0, 50)
    assert v["spender"]["value_tokens"] == 0 and v["claimer"]["value_tokens"] == 0
    assert v["rejected"]["value_tokens"] == 0 and not v["rejected"]["credit"]
    board = store.leaderboard(WEEK1, 100, "value")
    # worker and theater tie on value tokens: more credit first
    assert [r["user"] for r in board] == ["worker", "theater", "lucky", "claimer", "rejected", "spender"]
    assert [r["value_rank"] for r in board] == [1, 2, 3, 4, 5, 6]
    assert board[0]["rank"] == 3 and board[-1]["rank"] == 1  # the biggest spender is last by value
    assert store.leaderboard(WEEK1, 2, "value", user="lucky")[0]["value_rank"] == 3


def _value_story(store: Any, usage: list[dict[str, Any]], outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    """Usage and outcome events through the core into the store; value_weekly by (week, user)."""
    import orjson
    from tokenlord import _core

    now = max(u["ts"] for u in usage) + 10
    core = _core.Core()
    out = core.process([0] * len(usage), list(range(len(usage))), [orjson.dumps(u) for u in usage], now)
    store.write_batch(out, "tokenlord.events", now)
    oc, rj = core.outcomes([0] * len(outcomes), list(range(len(outcomes))), [orjson.dumps(o) for o in outcomes], now)
    assert rj["reason"] == []
    store.write_batch({"outcomes": oc, "rejected": rj}, "tokenlord.outcomes", now)
    return {(str(r["week_start"]), r["user"]): r for r in view(store, "value_weekly")}


def _use(eid: str, user: str, tokens: int, ts: int, session: str = "") -> dict[str, Any]:
    return {"event_id": eid, "ts": ts, "user": user, "model": "gpt-4o", "session_id": session,
            "input_tokens": tokens, "output_tokens": 0}  # fmt: skip


def test_value_ties_and_a_board_without_outcomes_go_by_name(store: Any) -> None:
    """Equal value tokens and credit: by user name; nobody with value tokens (no
    outcome, or an outcome on wasted tokens only): the value board is alphabetical
    whatever was spent or credited (spending cannot climb it)."""
    t1, t2 = ms(WEEK1, 10), ms(WEEK2, 10)
    usage = [
        _use("b1", "bob", 1000, t1), _use("a1", "amy", 1000, t1), _use("c1", "cat", 1000, t1, "s"),
        _use("z1", "zed", 9_000_000, t2), _use("y1", "yan", 10, t2), _use("x1", "xia", 500_000, t2),
        {**_use("z2", "zed", 40_000, t2 + 1), "status": "error"},  # failed: all waste
    ]  # fmt: skip
    outcomes = [
        {"event_id": "z2", "ts": t2 + 5, "user": "zed", "outcome": "merged", "value": 5},  # credit, no value tokens
        {"event_id": "b1", "ts": t1 + 5, "user": "bob", "outcome": "merged", "value": 2},
        {"event_id": "a1", "ts": t1 + 5, "user": "amy", "outcome": "merged", "value": 2},
        {"session_id": "s", "ts": t1 + 5, "user": "cat", "outcome": "merged"},  # same tokens, less credit
    ]
    _value_story(store, usage, outcomes)
    board = store.leaderboard(WEEK1, 100, "value")
    assert [(r["user"], r["value_rank"], r["value_tokens"], r["credit"]) for r in board] == [
        ("amy", 1, 1000, 2.0), ("bob", 2, 1000, 2.0), ("cat", 3, 1000, 1.0),
    ]  # fmt: skip
    board = store.leaderboard(WEEK2, 100, "value")
    assert [(r["user"], r["value_rank"], r["value_tokens"], r["credit"]) for r in board] == [
        ("xia", 1, 0, 0.0), ("yan", 2, 0, 0.0), ("zed", 3, 0, 5.0),
    ]  # fmt: skip
    assert [r["user"] for r in store.leaderboard(WEEK2, 100, "raw")] == ["zed", "xia", "yan"]
    assert [r["user"] for r in store.leaderboard(WEEK2, 1, "value")] == ["xia"]  # --top applies


def test_an_outcome_whose_session_spans_two_weeks_credits_both(store: Any) -> None:
    """Credit counts per week the outcome attributes events in; the outcome itself
    (outcomes, value) counts in the week of its own ts only."""
    sunday, monday = ms(WEEK2, -2), ms(WEEK2, 2)
    usage = [_use("n1", "nia", 700, sunday, "long"), _use("n2", "nia", 300, monday, "long")]
    outcomes = [{"session_id": "long", "ts": monday + 5, "user": "nia", "outcome": "merged", "value": 3}]
    v = _value_story(store, usage, outcomes)
    w1, w2 = v[(str(WEEK1), "nia")], v[(str(WEEK2), "nia")]
    assert (w1["credit"], w1["value_tokens"], w1["outcomes"], w1["value"]) == (3.0, 700, 0, 0)
    assert (w2["credit"], w2["value_tokens"], w2["outcomes"], w2["value"]) == (3.0, 300, 1, 3.0)


def test_value_credit_rules(store: Any) -> None:
    """No value given: credit 1; value 0 or below: credit 0 (and no value tokens);
    the same outcome sent twice counts once; one outcome naming two events counts once;
    a rejected outcome's value is neither credit nor value."""
    t0 = ms(WEEK1, 10)
    usage = [
        _use("p1", "pam", 100, t0, "sp"), _use("p2", "pam", 100, t0 + 1, "sp"),
        _use("q1", "quin", 100, t0), _use("r1", "rue", 100, t0), _use("r2", "rue", 100, t0 + 1),
    ]  # fmt: skip
    merged = {"session_id": "sp", "ts": t0 + 5, "user": "pam", "outcome": "merged"}
    outcomes = [
        merged, merged,
        {"event_id": "p1", "ts": t0 + 6, "user": "pam", "outcome": "resolved", "value": 0.25},
        {"event_id": "q1", "ts": t0 + 5, "user": "quin", "outcome": "merged", "value": -4},
        {"event_id": "r1", "ts": t0 + 5, "user": "rue", "outcome": "rejected", "value": 7},
        {"event_id": "r2", "ts": t0 + 5, "user": "rue", "outcome": "accepted", "value": 0},
    ]  # fmt: skip
    v = {u: r for (_w, u), r in _value_story(store, usage, outcomes).items()}
    assert (v["pam"]["credit"], v["pam"]["value_tokens"], v["pam"]["outcomes"]) == (1.25, 200, 2)
    assert (v["quin"]["credit"], v["quin"]["value_tokens"], v["quin"]["attributed_tokens"]) == (0.0, 0, 100)
    assert (v["rue"]["credit"], v["rue"]["value_tokens"], v["rue"]["outcomes"]) == (0.0, 0, 1)
    assert v["rue"]["value"] == 0 and v["rue"]["attributed_tokens"] == 100  # r2 only: r1's outcome was rejected


def test_the_cap_per_credit_is_the_setting_init_db_writes(store: Any) -> None:
    """TOKENLORD_VALUE_TOKENS_PER_CREDIT shapes value_weekly when init-db runs."""
    from tokenlord.settings import Settings
    from tokenlord.store.schema import VALUE_TOKENS_PER_CREDIT, ddl

    assert Settings().value_tokens_per_credit == VALUE_TOKENS_PER_CREDIT
    assert Settings.from_env(environ={}).value_tokens_per_credit == VALUE_TOKENS_PER_CREDIT
    t0 = ms(WEEK1, 10)
    usage = [_use("k1", "kim", 5000, t0), _use("l1", "lee", 800, t0)]
    outcomes = [
        {"event_id": "k1", "ts": t0 + 5, "user": "kim", "outcome": "merged"},
        {"event_id": "l1", "ts": t0 + 5, "user": "lee", "outcome": "merged", "value": 2},
    ]
    v = _value_story(store, usage, outcomes)
    assert [v[(str(WEEK1), u)]["value_tokens"] for u in ("kim", "lee")] == [5000, 800]
    store.init_db(value_tokens_per_credit=1000)
    v = {u: r for (_w, u), r in {(str(r["week_start"]), r["user"]): r for r in view(store, "value_weekly")}.items()}
    assert [(v[u]["value_tokens"], v[u]["value_rank"]) for u in ("kim", "lee")] == [(1000, 1), (800, 2)]
    store.init_db(value_tokens_per_credit=300)
    assert [r["user"] for r in store.leaderboard(WEEK1, 100, "value")] == ["lee", "kim"]  # 600 vs 300
    for bad in (0, -1, 10**12 + 1, 2.5, True, "500000"):
        with pytest.raises(ValueError, match="value_tokens_per_credit"):
            ddl("db", bad)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_value_weekly_equals_the_plain_python_reference(store: Any, seed: int) -> None:
    """Random usage (sessions across a week boundary, failed requests) and outcomes
    (by event or session, own or a colleague's, rejected, with and without value,
    sent twice): value_weekly and the value board equal tests/expected.py's."""
    import random

    import expected
    import orjson
    from reference import Reference
    from tokenlord import _core

    rng = random.Random(seed)
    users = ["ann", "bob", "cy", "dee", "eve"]
    t0 = ms(WEEK2, -6)
    usage = []
    for i in range(120):
        user = rng.choice(users)
        usage.append({"event_id": f"e{i}", "ts": t0 + i * 240_000, "user": user, "model": "gpt-4o",
                      "session_id": rng.choice(["", f"{user}-s{rng.randrange(3)}", "shared"]),
                      "input_tokens": rng.randrange(0, 400_000), "output_tokens": rng.randrange(0, 50_000),
                      "status": "error" if rng.random() < 0.15 else "ok"})  # fmt: skip
    outcomes = []
    for _ in range(40):
        ev = rng.choice(usage)
        o: dict[str, Any] = {
            "ts": ev["ts"] + rng.randrange(0, 2 * DAY),
            "outcome": rng.choice(["merged", "merged", "resolved", "rejected"]),
            "user": ev["user"] if rng.random() < 0.8 else rng.choice(users),  # a claim on a colleague's work
        }
        if ev["session_id"] and rng.random() < 0.5:
            o["session_id"] = ev["session_id"]
        else:
            o["event_id"] = ev["event_id"]
        if rng.random() < 0.6:
            o["value"] = rng.choice([0, -1, 0.5, 1, 2.5, 10])
        outcomes += [o, o] if rng.random() < 0.1 else [o]
    now = usage[-1]["ts"] + 10
    values = [orjson.dumps(u) for u in usage]
    core, ref = _core.Core(), Reference(count_tokens=lambda text, model: 0)
    store.write_batch(core.process([0] * len(values), list(range(len(values))), values, now), "tokenlord.events", now)
    ref.process([0] * len(values), list(range(len(values))), values, now)
    later = now + 3 * DAY  # outcomes arrive after the work
    oc, rj = core.outcomes([0] * len(outcomes), list(range(len(outcomes))), [orjson.dumps(o) for o in outcomes], later)
    assert rj["reason"] == []
    store.write_batch({"outcomes": oc, "rejected": rj}, "tokenlord.outcomes", later)
    assert any(e["wasted_tokens"] for e in ref.events())
    want = expected.value_weekly(ref, outcomes)
    got = [{k: str(v) if k == "week_start" else v for k, v in r.items()}
           for r in view(store, "value_weekly", "ORDER BY week_start, user")]  # fmt: skip
    expected.approx_equal_rows(got, want, expected.VALUE_FLOATS)
    assert {r["week_start"] for r in want} == {str(WEEK1), str(WEEK2)}
    assert any(r["value_tokens"] for r in want) and any(not r["value_tokens"] for r in want)
    assert any(0 < r["value_tokens"] < r["attributed_tokens"] for r in want), "some value is capped or waste"
    got_lb = [{k: str(v) if k == "week_start" else v for k, v in r.items()}
              for r in view(store, "leaderboard_weekly", "ORDER BY week_start, `rank`")]  # fmt: skip
    expected.approx_equal_rows(got_lb, expected.leaderboard(ref, outcomes=outcomes), ("cost_usd", "waste_ratio"))
    for week in (WEEK1, WEEK2):
        board = store.leaderboard(week, 100, "value")
        ranked = sorted((r for r in want if r["week_start"] == str(week)), key=lambda r: r["value_rank"])
        assert [(r["user"], r["value_rank"], r["value_tokens"]) for r in board] == [
            (r["user"], r["value_rank"], r["value_tokens"]) for r in ranked
        ]


# ---- teams, the organisation, trends (store/boards.py) ----------------------------------


def _team_story(store: Any) -> list[dict[str, Any]]:
    """Two weeks of real core batches: teams red and blue, users without a team,
    failed requests (wasted in full) and a user who changes team mid-week."""
    import orjson
    from tokenlord import _core
    from tokenlord.settings import Settings

    core = _core.Core(prices=Settings.from_env(environ={}).prices())
    usage: list[dict[str, Any]] = []
    for week, base in ((WEEK1, 0), (WEEK2, 1)):
        t0 = ms(week, 9)
        for i, (user, team, inp, out, status) in enumerate([
            ("ann", "red", 1200 + base, 300, "ok"), ("ann", "red", 800, 100, "error"),
            ("bob", "red", 400, 40, "ok"), ("cy", "blue", 5000, 900, "ok"), ("cy", "blue", 700, 0, "error"),
            ("dee", "", 90, 10, "ok"), ("eve", "blue", 60, 6, "ok"), ("eve", "red", 70, 7, "ok"),
            ("fay", "", 30, 3, "error"),
        ]):  # fmt: skip
            usage.append({
                "event_id": f"{week}-{i}", "ts": t0 + i * 60_000, "user": user, "team": team,
                "model": "gpt-4o" if i % 2 else "claude-3-5-sonnet", "input_tokens": inp, "output_tokens": out,
                "status": status,
            })  # fmt: skip
    now = ms(WEEK2, 12)
    out = core.process([0] * len(usage), list(range(len(usage))), [orjson.dumps(u) for u in usage], now)
    store.write_batch(out, "tokenlord.events", now)
    return usage


def test_team_board_is_the_sum_of_its_members(store: Any) -> None:
    from tokenlord.store import boards

    _team_story(store)
    for week in (WEEK1, WEEK2):
        members = store.leaderboard(week)
        teams = {r["team"]: r for r in boards.team_board(store, week)}
        assert set(teams) == {"red", "blue", ""}
        assert teams["red"]["members"] == 3 and teams[""]["members"] == 2  # eve's latest team is red
        for team, row in teams.items():
            mine = [m for m in members if m["team"] == team]
            for col in ("requests", "input_tokens", "output_tokens", "total_tokens", "wasted_tokens",
                        "effective_tokens", "outcomes"):  # fmt: skip
                assert row[col] == sum(m[col] for m in mine), (team, col)
            assert row["cost_usd"] == pytest.approx(sum(m["cost_usd"] for m in mine), rel=1e-12)
            assert row["waste_ratio"] == pytest.approx(row["wasted_tokens"] / row["total_tokens"])
        by_total = sorted(teams.values(), key=lambda r: (-r["total_tokens"], r["team"]))
        assert [r["rank"] for r in by_total] == [1, 2, 3]
        by_effective = sorted(teams.values(), key=lambda r: (-r["effective_tokens"], r["team"]))
        assert [r["effective_rank"] for r in by_effective] == [1, 2, 3]
        assert [r["team"] for r in boards.team_board(store, week, by="effective")] == [r["team"] for r in by_effective]
    assert [r["team"] for r in boards.team_board(store, WEEK1, top=1)] == [by_total[0]["team"]]
    assert [r["rank"] for r in boards.team_board(store, WEEK1, team="")] == [
        next(r["rank"] for r in boards.team_board(store, WEEK1) if r["team"] == "")
    ]
    assert boards.team_board(store) == boards.team_board(store, WEEK2)
    with pytest.raises(ValueError):
        boards.team_board(store, WEEK1, by="cost")  # type: ignore[arg-type]


def test_wasted_dollars_are_the_sum_over_events(store: Any) -> None:
    from tokenlord.store import boards

    _team_story(store)
    events = view(store, "events")
    assert any(e["wasted_tokens"] for e in events)
    for week in (WEEK1, WEEK2):
        mine = [e for e in events if e["ts"].date() - dt.timedelta(days=e["ts"].weekday()) == week]
        wasted_usd = sum(e["cost_usd"] * min(e["wasted_tokens"], e["total_tokens"]) / e["total_tokens"]
                         for e in mine if e["total_tokens"])  # fmt: skip
        summary = boards.org_summary(store, week)
        org = summary["row"]
        assert org["wasted_cost_usd"] == pytest.approx(wasted_usd, rel=1e-12) and wasted_usd > 0
        assert org["cost_usd"] == pytest.approx(sum(e["cost_usd"] for e in mine), rel=1e-12)
        assert org["total_tokens"] == sum(e["total_tokens"] for e in mine)
        assert org["wasted_tokens"] == sum(e["wasted_tokens"] for e in mine)
        assert (org["users"], org["teams"], org["requests"]) == (6, 2, len(mine))
        by_reason = {r["reason"]: r for r in summary["waste"]}
        assert sum(r["wasted_cost_usd"] for r in by_reason.values()) == pytest.approx(wasted_usd, rel=1e-12)
        teams = boards.team_board(store, week)
        assert sum(t["wasted_cost_usd"] for t in teams) == pytest.approx(wasted_usd, rel=1e-12)
    # waste_cost_weekly is waste_weekly with dollars
    plain = {(r["week_start"], r["user"], r["reason"]): (r["requests"], r["wasted_tokens"])
             for r in view(store, "waste_weekly")}  # fmt: skip
    costed = {(r["week_start"], r["user"], r["reason"]): (r["requests"], r["wasted_tokens"])
              for r in view(store, "waste_cost_weekly")}  # fmt: skip
    assert costed == plain and plain
    history = boards.org_summary(store, WEEK2, weeks=4)["history"]
    assert [r["week_start"] for r in history] == [WEEK2, WEEK1]
    assert boards.org_summary(store, WEEK2, weeks=1)["history"][0]["week_start"] == WEEK2
    red = {r["reason"]: r["wasted_tokens"] for r in boards.waste_by_reason(store, WEEK1, team="red")}
    assert red == {"failed_request": 900}  # ann's failure; eve (red at the end of the week) wasted nothing
    assert boards.waste_by_reason(store, WEEK1, user="fay")[0]["wasted_tokens"] == 33


def test_trends_cover_every_week_up_to_the_last(store: Any) -> None:
    from tokenlord.store import boards

    _team_story(store)
    ann = boards.trend(store, user="ann", weeks=3)
    assert [w["week_start"] for w in ann] == [WEEK1 - dt.timedelta(days=7), WEEK1, WEEK2]
    assert ann[0]["total_tokens"] == 0 and ann[0]["waste"] == {}
    assert ann[1]["total_tokens"] == 2400 and ann[1]["effective_tokens"] == 1500
    assert ann[1]["waste"] == {"failed_request": 900} and ann[1]["wasted_cost_usd"] > 0
    assert ann[2]["total_tokens"] == 2401
    red = boards.trend(store, team="red", until=WEEK1, weeks=1)
    board = {r["team"]: r for r in boards.team_board(store, WEEK1)}
    assert red[0]["total_tokens"] == board["red"]["total_tokens"]
    assert red[0]["wasted_cost_usd"] == pytest.approx(board["red"]["wasted_cost_usd"])
    with pytest.raises(ValueError):
        boards.trend(store, user="ann", team="red")


def test_team_board_and_org_summary_on_the_command_line(
    store: Any, chdb_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import csv
    import io

    import orjson
    from tokenlord.cli import main

    _team_story(store)
    monkeypatch.setenv("TOKENLORD_CLICKHOUSE_URL", chdb_url)
    monkeypatch.setenv("TOKENLORD_DATABASE", store.database)
    assert main(["leaderboard", "--group", "team", "--week", WEEK1.isoformat()]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"Teams — week of {WEEK1} (final), ranked by raw tokens")
    lines = text.splitlines()
    assert lines[3].split()[:3] == ["1", "blue", "1"] and "(no team)" in text
    assert main(["leaderboard", "--group", "team", "--week", WEEK1.isoformat(), "--format", "json"]) == 0
    rows = orjson.loads(capsys.readouterr().out)
    assert [r["team"] for r in rows] == ["blue", "red", ""] and rows[0]["members"] == 1
    assert main(["leaderboard", "--group", "team", "--week", WEEK1.isoformat(), "--format", "csv", "--by",
                 "effective"]) == 0  # fmt: skip
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["team"] for r in table] == ["blue", "red", ""] and list(table[0]) == list(st.schema.TEAM_VIEW_COLUMNS)
    assert main(["org", "--week", WEEK2.isoformat()]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"Organisation — week of {WEEK2} (open): 6 users in 2 teams")
    assert "failed_request" in text and "vs the week before" in text and str(WEEK1) in text
    assert main(["org", "--week", WEEK2.isoformat(), "--format", "json", "--weeks", "1"]) == 0
    summary = orjson.loads(capsys.readouterr().out)
    assert summary["row"]["users"] == 6 and len(summary["history"]) == 1
    assert main(["org", "--week", "2020-01-06"]) == 0
    assert capsys.readouterr().out.startswith("no usage recorded for the week of 2020-01-06")


# ---- the weekly digest (tokenlord.digest) ------------------------------------------------


def _digest_kw(ends: dict[int, int]) -> dict[str, Any]:
    return {"topic": "tokenlord.events", "end_offsets": lambda: ends, "grace_ms": HOUR}


def test_the_digest_goes_once_per_week_and_webhook_and_retries_with_backoff(store: Any) -> None:
    import orjson
    from tokenlord import digest
    from webhook_server import Hooks

    _team_story(store)
    hooks = Hooks()
    try:
        hooks.fail["/chat"] = [500, 503]
        webhooks = digest.parse_webhooks(f"bi=json:{hooks.url}/bi, chat=slack:{hooks.url}/chat")
        now = [ms(WEEK2, 30) / 1000]
        ends = {0: 18}
        d = digest.Digester(store, webhooks, clock=lambda: now[0], page_url="https://tl.example/", **_digest_kw(ends))
        ends[1] = 5  # a partition with messages not consumed yet: no week is settled
        assert d.run_once() == []
        del ends[1]
        # WEEK1 is final (the watermark passed its end + grace), WEEK2 is not.
        assert sorted(d.run_once()) == [(WEEK1, "bi", "sent"), (WEEK1, "chat", "failed: HTTP 500")]
        assert d.run_once() == []  # chat waits for its backoff; bi is recorded
        now[0] += digest.BACKOFF_FIRST_S
        assert d.run_once() == [(WEEK1, "chat", "failed: HTTP 503")]
        now[0] += digest.BACKOFF_FIRST_S  # the backoff doubled: not yet
        assert d.run_once() == []
        now[0] += digest.BACKOFF_FIRST_S
        assert d.run_once() == [(WEEK1, "chat", "sent")]
        # A second worker (or a restart) finds the records and posts nothing.
        again = digest.Digester(store, webhooks, clock=lambda: now[0], **_digest_kw(ends))
        assert again.run_once() == []
        assert [p for p, _, _ in hooks.posts] == ["/bi", "/chat", "/chat", "/chat"]
        _, headers, body = hooks.posts[0]
        assert headers["Idempotency-Key"] == f"tokenlord-digest-{WEEK1}-bi"
        sent = orjson.loads(body)
        assert sent["kind"] == "tokenlord.weekly_digest" and sent["id"] == headers["Idempotency-Key"]
        assert [r["user"] for r in sent["top_raw"]] == [r["user"] for r in store.leaderboard(WEEK1, 10)]
        assert [r["user"] for r in sent["top_effective"]][:1] == ["cy"]
        assert {r["reason"] for r in sent["waste"]} == {"failed_request"}
        assert sent["org"]["wasted_cost_usd"] > 0 and sent["link"] == f"https://tl.example/?week={WEEK1}"
        slack = orjson.loads(hooks.posts[-1][2])
        assert "*Token Lord — week of 2026-11-16 is final*" in slack["text"]
        assert "<https://tl.example/?week=2026-11-16|The leaderboard>" in slack["text"]
        rows = view(store, "_digests")
        assert sorted((r["week_start"], r["webhook"], r["status"]) for r in rows) == [
            (WEEK1, "bi", 200), (WEEK1, "chat", 200)
        ]  # fmt: skip
    finally:
        hooks.close()


def test_slack_digests_keep_names_from_becoming_links_or_mentions() -> None:
    from tokenlord import digest

    d = {"week_start": "2026-11-16", "org": None, "previous": None, "movers": {"up": [], "down": []},
         "top_raw": [{"rank": 1, "user": "<!channel> <https://evil|x>", "team": "", "total_tokens": 5}],
         "top_effective": [], "waste": [], "value_leaders": [], "teams": [], "link": ""}  # fmt: skip
    import orjson

    text = orjson.loads(digest.slack_body(d, "k"))["text"]
    assert "<!channel>" not in text and "&lt;!channel&gt; &lt;https://evil|x&gt;" in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("chat=slack", "expected NAME=KIND:URL"),
        ("chat=teams:https://x", "kind 'teams' is not json or slack"),
        ("chat=json:ftp://x", "must start with http"),
        ("a b=json:https://x", "use 1-64 letters"),
        ("a=json:https://x,a=slack:https://y", "given twice"),
    ],
)
def test_bad_webhook_settings_say_what_is_wrong(text: str, message: str) -> None:
    from tokenlord import digest

    with pytest.raises(ValueError, match=message):
        digest.parse_webhooks(text)
    assert digest.parse_webhooks(" ") == ()
    assert "https" not in repr(digest.parse_webhooks("a=json:https://secret.example/x")[0])


# ---- budgets (tokenlord.budgets) ------------------------------------------------------------


def test_budgets_use_the_weeks_raw_tokens_or_dollars(
    store: Any, chdb_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import orjson
    from tokenlord import budgets, metrics
    from tokenlord.cli import main
    from tokenlord.store import boards

    _team_story(store)
    plan = budgets.parse_budgets("team:red=3k, user:ann=$0.0001\nuser:nobody=1M\nteam:=500")
    uses = {(u.budget.kind, u.budget.name): u for u in budgets.usage(store, plan, WEEK1)}
    red = next(t for t in boards.team_board(store, WEEK1) if t["team"] == "red")
    ann = store.leaderboard(WEEK1, user="ann")[0]
    assert uses[("team", "red")].used == red["total_tokens"] and uses[("team", "red")].budget.limit == 3000
    assert uses[("user", "ann")].used == pytest.approx(ann["cost_usd"]) and uses[("user", "ann")].ratio > 1
    assert uses[("user", "nobody")].used == 0
    assert uses[("team", "")].used == 133  # dee and fay: the users without a team
    assert [budgets.state(r, 80) for r in (0.5, 0.8, 1.0)] == ["ok", "near", "over"]
    # the worker's gauges
    collector = metrics.WorkerCollector(lambda: metrics.Stats(), budgets=lambda: list(uses.values()))
    text = metrics.render(metrics.make_registry(collector)).decode()
    assert 'tokenlord_budget_limit{kind="team",name="red",unit="tokens"} 3000.0' in text
    assert f'tokenlord_budget_used{{kind="team",name="red",unit="tokens"}} {float(red["total_tokens"])}' in text
    assert 'tokenlord_budget_used_ratio{kind="user",name="ann",unit="usd"}' in text
    # the command line
    monkeypatch.setenv("TOKENLORD_CLICKHOUSE_URL", chdb_url)
    monkeypatch.setenv("TOKENLORD_DATABASE", store.database)
    monkeypatch.setenv("TOKENLORD_BUDGETS", "team:red=3k,user:ann=$0.0001")
    assert main(["budgets", "--week", WEEK1.isoformat()]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Budgets — week of {WEEK1}") and "over" in out and "$0.00" in out
    assert main(["budgets", "--week", WEEK1.isoformat(), "--format", "json"]) == 0
    got = orjson.loads(capsys.readouterr().out)["budgets"]
    assert [(b["name"], b["state"]) for b in got] == [("red", "over" if red["total_tokens"] >= 3000 else "near"),
                                                       ("ann", "over")]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("team:red", "expected KIND:NAME=AMOUNT"),
        ("group:red=5", "expected KIND:NAME=AMOUNT"),
        ("team:red=$5M", "no k/M/G suffix"),
        ("team:red=0", "must be > 0"),
        ("team:red=5,team:red=6", "two budgets"),
    ],
)
def test_bad_budgets_say_what_is_wrong(text: str, message: str) -> None:
    from tokenlord import budgets

    with pytest.raises(ValueError, match=message):
        budgets.parse_budgets(text)
    got = budgets.parse_budgets("# weekly\nteam:ml=2.5M\nuser:a b=250k, user:c=200usd\n")
    assert [(b.kind, b.name, b.limit, b.unit) for b in got] == [
        ("team", "ml", 2.5e6, "tokens"), ("user", "a b", 250e3, "tokens"), ("user", "c", 200.0, "usd")
    ]  # fmt: skip
