"""Reads for the people who look past the weekly board: the team board, the
organisation's week against the previous ones, waste by reason in tokens and
dollars, and per-user / per-team trends over the last weeks.

Every read is a plain ``SELECT`` on the public views (``team_weekly``,
``org_weekly``, ``waste_cost_weekly``, ``leaderboard_weekly``), the same
queries a BI tool would run (docs/bi.md); values from the caller go in as
query parameters, never into the SQL text.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final, Protocol

from tokenlord.report import RANKINGS, Ranking

from .schema import LEADERBOARD_VIEW_COLUMNS, ORG_VIEW_COLUMNS, TEAM_VIEW_COLUMNS, quote_ident

__all__ = ["MEMBER_COLUMNS", "TREND_WEEKS", "Reads", "members", "org_summary", "team_board", "trend", "waste_by_reason"]

TREND_WEEKS: Final = 8  # weeks a trend chart or the organisation summary looks back


class Reads(Protocol):
    """What these reads need of :class:`tokenlord.store.Store`."""

    def table(self, name: str) -> str: ...
    def query_rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]: ...
    def weeks(self) -> list[dt.date]: ...


def _cols(names: tuple[str, ...], prefix: str = "") -> str:
    return ", ".join(f"{prefix}{quote_ident(c)} AS {quote_ident(c)}" if prefix else quote_ident(c) for c in names)


def _latest(store: Reads, week: dt.date | None) -> dt.date | None:
    if week is not None:
        return week
    known = store.weeks()
    return known[-1] if known else None


def team_board(store: Reads, week: dt.date | None = None, top: int = 100, by: Ranking = "raw",
               team: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Rows of ``team_weekly`` for one week (None: the latest week with data), in
    the order of ``rank`` (raw), ``effective_rank`` or ``value_rank``; with
    ``team``, that team's row only (ranks as on the whole board). Users without
    a team form the team ``''``."""
    if by not in RANKINGS:
        raise ValueError(f"by must be 'raw', 'effective' or 'value', not {by!r}")
    if top < 0:
        raise ValueError("top must be >= 0")
    week = _latest(store, week)
    if week is None:
        return []
    order = {"raw": "`rank`", "effective": "effective_rank", "value": "value_rank"}[by]
    only = "" if team is None else " AND team = {team:String}"
    return store.query_rows(
        f"SELECT {_cols(TEAM_VIEW_COLUMNS)} FROM {store.table('team_weekly')} "
        f"WHERE week_start = {{week:Date}}{only} ORDER BY {order} LIMIT {{top:UInt64}}",
        {"week": week, "top": top, **({"team": team} if team is not None else {})},
    )


def waste_by_reason(store: Reads, week: dt.date, *, team: str | None = None,
                    user: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Per waste reason in ``week``: requests, wasted tokens and their cost in
    USD, for the organisation, one ``team`` (its members as on the team board)
    or one ``user``; most tokens first."""
    where, params = "w.week_start = {week:Date}", dict[str, Any](week=week)
    if user is not None:
        where += " AND w.`user` = {user:String}"
        params["user"] = user
    source = f"{store.table('waste_cost_weekly')} AS w"
    if team is not None:
        source += (
            f" INNER JOIN (SELECT `user` FROM {store.table('leaderboard_weekly')} "
            "WHERE week_start = {week:Date} AND team = {team:String}) AS m ON m.`user` = w.`user`"
        )
        params["team"] = team
    return store.query_rows(
        "SELECT w.reason AS reason, sum(w.requests) AS requests, sum(w.wasted_tokens) AS wasted_tokens, "
        f"sum(w.wasted_cost_usd) AS wasted_cost_usd FROM {source} WHERE {where} "
        "GROUP BY reason ORDER BY wasted_tokens DESC, reason",
        params,
    )


def org_summary(store: Reads, week: dt.date | None = None, weeks: int = TREND_WEEKS) -> dict[str, Any]:
    """The organisation's ``week`` (None: the latest with data): its ``org_weekly``
    row, the same row of up to ``weeks - 1`` earlier weeks (newest first) to
    compare against, and its waste by reason in tokens and dollars."""
    if weeks < 1:
        raise ValueError("weeks must be >= 1")
    week = _latest(store, week)
    if week is None:
        return {"week_start": None, "row": None, "history": [], "waste": []}
    history = store.query_rows(
        f"SELECT {_cols(ORG_VIEW_COLUMNS)} FROM {store.table('org_weekly')} "
        "WHERE week_start <= {week:Date} AND week_start > {week:Date} - {days:UInt32} "
        "ORDER BY week_start DESC",
        {"week": week, "days": 7 * weeks},
    )
    row = history[0] if history and history[0]["week_start"] == week else None
    return {"week_start": week, "row": row, "history": history, "waste": waste_by_reason(store, week)}


def trend(store: Reads, *, user: str | None = None, team: str | None = None, until: dt.date | None = None,
          weeks: int = TREND_WEEKS) -> list[dict[str, Any]]:  # fmt: skip
    """One ``user``'s (or one ``team``'s) last ``weeks`` weeks up to ``until``
    (None: the latest with data), oldest first, every week present even without
    usage: ``week_start``, ``total_tokens``, ``effective_tokens``,
    ``wasted_tokens``, ``cost_usd``, ``wasted_cost_usd`` and ``waste`` (reason
    → wasted tokens)."""
    if (user is None) == (team is None):
        raise ValueError("give exactly one of user and team")
    if weeks < 1:
        raise ValueError("weeks must be >= 1")
    until = _latest(store, until)
    if until is None:
        return []
    first = until - dt.timedelta(days=7 * (weeks - 1))
    params: dict[str, Any] = {"first": first, "until": until}
    span = "week_start >= {first:Date} AND week_start <= {until:Date}"
    view, key, name = ("leaderboard_weekly", "user", user) if user is not None else ("team_weekly", "team", team)
    params["name"] = name
    sums = store.query_rows(
        f"SELECT week_start, total_tokens, effective_tokens, wasted_tokens, cost_usd "
        f"FROM {store.table(view)} WHERE {span} AND {quote_ident(key)} = {{name:String}}",
        params,
    )
    # A team's waste: its members' as on the team board (their latest team of each week).
    members = (
        f"SELECT week_start, `user` FROM {store.table('leaderboard_weekly')} "
        f"WHERE {span} AND {quote_ident(key)} = {{name:String}}"
    )
    waste = store.query_rows(
        "SELECT w.week_start AS week_start, w.reason AS reason, sum(w.wasted_tokens) AS wasted_tokens, "
        f"sum(w.wasted_cost_usd) AS wasted_cost_usd FROM {store.table('waste_cost_weekly')} AS w "
        f"INNER JOIN ({members}) AS m ON m.week_start = w.week_start AND m.`user` = w.`user` "
        "GROUP BY week_start, reason",
        params,
    )
    by_week = {r["week_start"]: r for r in sums}
    out = []
    for i in range(weeks):
        w = first + dt.timedelta(days=7 * i)
        r = by_week.get(w, {})
        reasons = {x["reason"]: int(x["wasted_tokens"]) for x in waste if x["week_start"] == w}
        out.append(
            {
                "week_start": w,
                "total_tokens": int(r.get("total_tokens", 0)),
                "effective_tokens": int(r.get("effective_tokens", 0)),
                "wasted_tokens": int(r.get("wasted_tokens", 0)),
                "cost_usd": float(r.get("cost_usd", 0.0)),
                "wasted_cost_usd": sum(float(x["wasted_cost_usd"]) for x in waste if x["week_start"] == w),
                "waste": dict(sorted(reasons.items())),
            }
        )
    return out


# The leaderboard columns a team's member list shows (the team page).
MEMBER_COLUMNS: Final = tuple(c for c in LEADERBOARD_VIEW_COLUMNS if c != "team")


def members(store: Reads, week: dt.date, team: str) -> list[dict[str, Any]]:
    """The team's members in ``week`` as on the leaderboard, by raw rank."""
    return store.query_rows(
        f"SELECT {_cols(MEMBER_COLUMNS)} FROM {store.table('leaderboard_weekly')} "
        "WHERE week_start = {week:Date} AND team = {team:String} ORDER BY `rank`",
        {"week": week, "team": team},
    )
