"""Turns the reference implementation's per-partition state into the rows the
public views must show (CONTRACT §3): sums over partitions, ranks, titles."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from reference import Reference

TITLES = ("Token Lord", "AI Grandmaster", "Token Overlord")


def _day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).date().isoformat()


def _hour(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def leaderboard(ref: Reference, titles: tuple[str, ...] = TITLES) -> list[dict[str, Any]]:
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
        row["outcomes"] = 0
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
            if k in float_keys:
                assert abs(float(a[k]) - float(v)) <= 1e-9 * max(1.0, abs(float(v))), (k, a, e)
            else:
                assert str(a[k]) == str(v), (k, a, e)
