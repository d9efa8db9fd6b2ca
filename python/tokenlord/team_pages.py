"""The team board, a team's page and the organisation's page (HTML), and the
trend charts the user and team pages show; rendered from the rows of
:mod:`tokenlord.store.boards` with jinja2 templates (``templates/``, autoescaped:
team and user names are hostile input). Served by :mod:`tokenlord.page_server`
like the user board (:mod:`tokenlord.pages`), whose style they share.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any, Final
from urllib.parse import urlencode

import jinja2
from markupsafe import Markup

from tokenlord import pages
from tokenlord import report as fmt
from tokenlord.charts import PALETTE, Series, bars
from tokenlord.org_report import change, team_name

__all__ = ["org_page", "team_link", "team_page", "team_query", "teams_page", "trend_charts"]

RAW, EFFECTIVE, COST, WASTED_COST = "#5b5bd6", "#4ecdc4", "#f7b733", "#fc4a1a"
_RANKINGS: Final = (("raw", "Raw tokens"), ("effective", "Effective tokens"), ("value", "Value"))


@cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("tokenlord", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _render(template: str, **context: Any) -> str:
    generated = context.pop("generated", None)
    week = context.get("week")
    return (
        _env()
        .get_template(template)
        .render(
            css=Markup(pages.CSS),
            week_qs="?" + urlencode({"week": week.isoformat()}) if week else "",
            generated=generated.strftime("%Y-%m-%d %H:%M:%S UTC") if generated else "",
            **context,
        )
    )


def team_link(team: str, week: dt.date | None = None) -> str:
    """``/team?name=...&week=...`` (``name=`` empty: the users without a team)."""
    return "/team?" + urlencode({"name": team, **({"week": week.isoformat()} if week else {})})


def _teams_link(week: dt.date | None, by: str = "raw") -> str:
    return "/teams?" + urlencode({**({"week": week.isoformat()} if week else {}), "by": by})


def team_query(query: Mapping[str, str], today: dt.date | None = None) -> tuple[str, dt.date | None]:
    """``?name=TEAM&week=YYYY-MM-DD`` of a team's page (``name=`` empty: no team)."""
    if "name" not in query:
        raise pages.BadRequest("name=TEAM is missing: pick a team on /teams (name= empty: users without a team)")
    return query["name"], pages.user_query(query, today)


def _bar(ratio: float) -> Markup:
    return Markup(pages.waste_bar(ratio))


def teams_page(
    rows: Sequence[Mapping[str, Any]],
    *,
    week: dt.date | None,
    weeks: Sequence[dt.date],
    by: fmt.Ranking,
    generated: dt.datetime | None = None,
    budgets: Mapping[str, str] | None = None,
) -> str:
    """The team board: ``rows`` from ``boards.team_board(week, top, by)`` in that order;
    ``budgets``: team → a budget mark (``pages.budget_badge``) for teams near or over."""
    shown = [
        {
            "pos": fmt.position(r, by),
            "team": r["team"],
            "name": team_name(r["team"]),
            "link": team_link(r["team"], r["week_start"]),
            "budget": Markup((budgets or {}).get(r["team"], "")),
            "rank": r["rank"],
            "effective_rank": r["effective_rank"],
            "members": fmt.tokens(r["members"]),
            "total": fmt.tokens(r["total_tokens"]),
            "effective": fmt.tokens(r["effective_tokens"]),
            "bar": _bar(r["waste_ratio"]),
            "wasted_cost": fmt.money(r["wasted_cost_usd"]),
            "cost": fmt.money(r["cost_usd"]),
            "outcomes": fmt.tokens(r["outcomes"]),
            "value_tokens": fmt.tokens(r["value_tokens"]),
        }
        for r in rows
    ]
    return _render(
        "teams.html",
        page="teams",
        week=week,
        weeks=sorted(weeks, reverse=True),
        rows=shown,
        by=by,
        rankings=_RANKINGS,
        ranked={"raw": "raw tokens", "effective": "effective tokens", "value": "value"}[by],
        state=fmt.board_state(rows) if rows else "no data",
        board_link=_teams_link,
        week_link=lambda w: _teams_link(w, by),
        generated=generated,
    )


def _reasons(waste: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    return [
        {
            "reason": str(r["reason"]),
            "requests": fmt.tokens(r["requests"]),
            "tokens": fmt.tokens(r["wasted_tokens"]),
            "cost": fmt.money(r["wasted_cost_usd"]),
        }
        for r in waste
    ]


def trend_charts(trend: Sequence[Mapping[str, Any]], prefix: str = "trend") -> str:
    """Three charts of ``boards.trend`` weeks: tokens raw vs effective, waste by
    reason (stacked), cost vs wasted cost."""
    if not trend:
        return ""
    labels = [w["week_start"].isoformat() for w in trend]
    reasons = sorted({r for w in trend for r in w["waste"]})
    waste_series = [
        Series(r, PALETTE[i % len(PALETTE)], [float(w["waste"].get(r, 0)) for w in trend])
        for i, r in enumerate(reasons)
    ]
    charts = [
        bars(
            f"{prefix}-tokens",
            "Tokens per week",
            labels,
            [
                Series("raw", RAW, [float(w["total_tokens"]) for w in trend]),
                Series("effective", EFFECTIVE, [float(w["effective_tokens"]) for w in trend]),
            ],
        ),
        bars(f"{prefix}-waste", "Tokens judged wasted, by reason", labels, waste_series, mode="stack"),
        bars(
            f"{prefix}-cost",
            "Cost per week ($)",
            labels,
            [
                Series("cost", COST, [float(w["cost_usd"]) for w in trend]),
                Series("wasted", WASTED_COST, [float(w["wasted_cost_usd"]) for w in trend]),
            ],
            number=fmt.money,
        ),
    ]
    return "".join(charts)


def team_page(
    team: str,
    week: dt.date,
    *,
    row: Mapping[str, Any] | None,
    members: Sequence[Mapping[str, Any]],
    waste: Sequence[Mapping[str, Any]],
    trend: Sequence[Mapping[str, Any]],
    weeks: Sequence[dt.date],
    generated: dt.datetime | None = None,
) -> str:
    """A team's week: totals, trend charts, waste by reason, its members."""
    summary: dict[str, Any] = {}
    if row is not None:
        summary = {
            "state": fmt.week_state(bool(row["final"])),
            "total": fmt.tokens(row["total_tokens"]),
            "wasted": fmt.tokens(row["wasted_tokens"]),
            "ratio": fmt.percent(row["waste_ratio"]),
            "effective": fmt.tokens(row["effective_tokens"]),
            "cost": fmt.money(row["cost_usd"]),
            "wasted_cost": fmt.money(row["wasted_cost_usd"]),
            "outcomes": fmt.tokens(row["outcomes"]),
            "bar": _bar(row["waste_ratio"]),
        }
    shown = [
        {
            "user": m["user"],
            "link": pages.user_path(str(m["user"]), week),
            "rank": m["rank"],
            "total": fmt.tokens(m["total_tokens"]),
            "effective": fmt.tokens(m["effective_tokens"]),
            "bar": _bar(m["waste_ratio"]),
            "cost": fmt.money(m["cost_usd"]),
            "title": m["title"],
        }
        for m in members
    ]
    return _render(
        "team.html",
        page="team",
        name=team_name(team),
        week=week,
        weeks=sorted(weeks, reverse=True),
        row=row,
        members=shown,
        reasons=_reasons(waste),
        charts=Markup(trend_charts(trend, "team")),
        teams_link=_teams_link(week),
        week_link=lambda w: team_link(team, w),
        generated=generated,
        **summary,
    )


_MEASURES: Final = (
    ("total_tokens", "Tokens", fmt.tokens),
    ("wasted_tokens", "Judged wasted", fmt.tokens),
    ("effective_tokens", "Effective tokens", fmt.tokens),
    ("cost_usd", "Cost $", fmt.money),
    ("wasted_cost_usd", "Wasted $", fmt.money),
    ("outcomes", "Outcomes", fmt.tokens),
    ("value_per_1m_tokens", "Value per 1M tokens", fmt.money),
    ("users", "Users", fmt.tokens),
)


def org_page(summary: Mapping[str, Any], *, weeks: Sequence[dt.date], generated: dt.datetime | None = None) -> str:
    """``boards.org_summary``: the week against the week before, waste by reason in
    tokens and dollars, and the earlier weeks as charts."""
    row, history = summary["row"], summary["history"]
    before = history[1] if len(history) > 1 else None
    measures = []
    if row is not None:
        for key, label, show in _MEASURES:
            prev = None if before is None else before[key]
            measures.append(
                {
                    "key": key,
                    "label": label,
                    "now": show(row[key]),
                    "before": "-" if prev is None else show(prev),
                    "change": change(float(row[key]), None if prev is None else float(prev)),
                }
            )
    trend = [
        {
            "week_start": h["week_start"],
            "total_tokens": h["total_tokens"],
            "effective_tokens": h["effective_tokens"],
            "cost_usd": h["cost_usd"],
            "wasted_cost_usd": h["wasted_cost_usd"],
            "waste": {"all reasons": h["wasted_tokens"]},
        }
        for h in reversed(history)
    ]
    return _render(
        "org.html",
        page="org",
        week=summary["week_start"],
        weeks=sorted(weeks, reverse=True),
        row=row,
        state=fmt.week_state(bool(row["final"])) if row else "",
        measures=measures,
        reasons=_reasons(summary["waste"]),
        charts=Markup(trend_charts(trend, "org")),
        week_link=lambda w: "/org?" + urlencode({"week": w.isoformat()}),
        generated=generated,
    )
