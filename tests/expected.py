"""Turns the reference implementation's per-partition state into the rows the
public views must show (docs/schema.md): sums over partitions, ranks, titles."""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from reference import Reference, week_start_of
from tokenlord.store.schema import DEFAULT_TITLES as TITLES


def _day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).date().isoformat()


def _hour(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def stored_outcomes(outcomes: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Valid outcome events (ts in epoch ms) as `_outcomes` holds them: one per
    (user, event_id, session_id, outcome, ts), the last one sent winning."""
    kept: dict[tuple[str, str, str, str, int], dict[str, Any]] = {}
    for o in outcomes:
        row = {
            "user": o["user"],
            "event_id": o.get("event_id", ""),
            "session_id": o.get("session_id", ""),
            "outcome": o["outcome"],
            "ts": o["ts"],
            "value": o.get("value"),
        }
        kept[(row["user"], row["event_id"], row["session_id"], row["outcome"], row["ts"])] = row
    return list(kept.values())


def leaderboard(
    ref: Reference, titles: tuple[str, ...] = TITLES, outcomes: Iterable[Mapping[str, Any]] = ()
) -> list[dict[str, Any]]:
    counted: dict[tuple[str, str], int] = defaultdict(int)  # (week, user) -> outcomes not "rejected"
    for o in stored_outcomes(outcomes):
        if o["outcome"] != "rejected":
            counted[(_day(week_start_of(o["ts"])), o["user"])] += 1
    per_user: dict[tuple[int, str], dict[str, Any]] = {}
    for (_p, week, user), c in ref.weekly().items():
        row = per_user.setdefault(
            (week, user),
            {
                "week_start": _day(week),
                "user": user,
                "team": "",
                "_team_key": (-1, ""),
                "requests": 0,
                "input_tokens": 0,
                "output_tokens": 0,
                "total_tokens": 0,
                "wasted_tokens": 0,
                "cost_usd": 0.0,
                "final": 1,
            },
        )
        for k in ("requests", "input_tokens", "output_tokens", "total_tokens", "wasted_tokens", "cost_usd"):
            row[k] += c[k]
        if c["team"] and (c["team_ts"], c["team"]) > row["_team_key"]:
            row["_team_key"] = (c["team_ts"], c["team"])
            row["team"] = c["team"]
        row["final"] = min(row["final"], int(c["final"]))
    by_week: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in per_user.values():
        del row["_team_key"]
        row["effective_tokens"] = row["total_tokens"] - row["wasted_tokens"]
        row["waste_ratio"] = row["wasted_tokens"] / row["total_tokens"] if row["total_tokens"] else 0.0
        row["outcomes"] = counted[(row["week_start"], row["user"])]
        by_week[row["week_start"]].append(row)
    out: list[dict[str, Any]] = []
    for week in sorted(by_week):
        rows = by_week[week]
        for i, r in enumerate(sorted(rows, key=lambda r: (-r["effective_tokens"], r["user"])), 1):
            r["effective_rank"] = i
            r["title"] = titles[i - 1] if i <= len(titles) else ""
        for i, r in enumerate(sorted(rows, key=lambda r: (-r["total_tokens"], r["user"])), 1):
            r["rank"] = i
            out.append(r)
    return out


def value_weekly(
    ref: Reference,
    outcomes: Iterable[Mapping[str, Any]] = (),
    tokens_per_credit: int = 500_000,
    titles: tuple[str, ...] = TITLES,
) -> list[dict[str, Any]]:
    """`value_weekly` (docs/schema.md; the value ranking: docs/semantics.md,
    "Value ranking"), ordered by week_start, user."""
    stored = stored_outcomes(outcomes)
    counted = [o for o in stored if o["outcome"] != "rejected"]
    value: dict[tuple[str, str], float] = defaultdict(float)  # by the outcome's own week
    for o in counted:
        value[(_day(week_start_of(o["ts"])), o["user"])] += o["value"] or 0.0

    def attributes(o: Mapping[str, Any], e: Mapping[str, Any]) -> bool:
        if o["user"] != e["user"]:
            return False
        return bool(o["event_id"] and o["event_id"] == e["event_id"]) or bool(
            o["session_id"] and o["session_id"] == e["session_id"]
        )

    attributed: dict[tuple[str, str], int] = defaultdict(int)
    effective: dict[tuple[str, str], int] = defaultdict(int)
    crediting: dict[tuple[str, str], set[int]] = defaultdict(set)  # (week, user) -> indexes into counted
    for e in ref.events():
        key = (_day(week_start_of(e["ts"])), e["user"])
        by = [i for i, o in enumerate(counted) if attributes(o, e)]
        if by:
            attributed[key] += e["total_tokens"]
            effective[key] += e["total_tokens"] - min(e["wasted_tokens"], e["total_tokens"])
            crediting[key].update(by)
    rows: list[dict[str, Any]] = []
    for lb in sorted(leaderboard(ref, titles, stored), key=lambda r: (r["week_start"], r["user"])):
        key = (lb["week_start"], lb["user"])
        credit = sum(max(1.0 if counted[i]["value"] is None else counted[i]["value"], 0.0) for i in crediting[key])
        n, total = lb["outcomes"], lb["total_tokens"]
        rows.append(
            {
                **{k: lb[k] for k in ("week_start", "user", "team", "total_tokens", "effective_tokens", "cost_usd")},
                "outcomes": n,
                "value": value[key],
                "attributed_tokens": attributed[key],
                "tokens_per_outcome": total / n if n else None,
                "cost_per_outcome": lb["cost_usd"] / n if n else None,
                "value_per_1m_tokens": value[key] * 1_000_000 / total if total else 0.0,
                "credit": credit,
                "value_tokens": min(effective[key], math.floor(credit * tokens_per_credit)),
            }
        )
    by_week: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_week[r["week_start"]].append(r)
    for week_rows in by_week.values():
        ranked = sorted(
            week_rows,
            key=lambda r: (r["value_tokens"] == 0, -r["value_tokens"], -r["credit"] if r["value_tokens"] else 0.0,
                           r["user"]),
        )  # fmt: skip
        for i, r in enumerate(ranked, 1):
            r["value_rank"] = i
    return rows


VALUE_FLOATS = ("cost_usd", "value", "tokens_per_outcome", "cost_per_outcome", "value_per_1m_tokens", "credit")


def usage_hourly(ref: Reference) -> list[dict[str, Any]]:
    acc: dict[tuple[int, str, str], dict[str, Any]] = {}
    for (_p, hour, user, model), c in ref.hourly().items():
        row = acc.setdefault(
            (hour, user, model),
            {
                "hour": _hour(hour),
                "user": user,
                "model": model,
                "requests": 0,
                "input_tokens": 0,
                "output_tokens": 0,
                "cached_input_tokens": 0,
                "total_tokens": 0,
                "wasted_tokens": 0,
                "cost_usd": 0.0,
            },
        )
        for k in (
            "requests",
            "input_tokens",
            "output_tokens",
            "cached_input_tokens",
            "total_tokens",
            "wasted_tokens",
            "cost_usd",
        ):
            row[k] += c[k]
    return [acc[k] for k in sorted(acc)]


def rejected(ref: Reference) -> list[tuple[int, int, int, str, bytes]]:
    return sorted((p, o, i, reason, raw) for p, o, i, reason, raw in ref.rejected())


def approx_equal_rows(
    actual: list[dict[str, Any]], expected: list[dict[str, Any]], float_keys: tuple[str, ...]
) -> None:
    """Exact on every column but floats (summation order may differ)."""
    assert len(actual) == len(expected), (len(actual), len(expected))
    for a, e in zip(actual, expected, strict=True):
        for k, v in e.items():
            if k in float_keys and v is None:
                assert a[k] is None, (k, a, e)
            elif k in float_keys:
                assert abs(float(a[k]) - float(v)) <= 1e-9 * max(1.0, abs(float(v))), (k, a, e)
            else:
                assert str(a[k]) == str(v), (k, a, e)
