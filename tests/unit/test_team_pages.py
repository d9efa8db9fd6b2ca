"""The team board, a team's page, the organisation's page and the trend charts
(tokenlord.team_pages, tokenlord.charts): hostile names stay text, charts say
what they draw, and only admins are served these pages."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from tokenlord import charts, team_pages
from tokenlord.pages import BadRequest

WEEK = dt.date(2026, 11, 16)
HOSTILE = '"><script>alert(1)</script>'


def team_row(team: str, rank: int, total: int = 1000, wasted: int = 100) -> dict[str, Any]:
    return {
        "week_start": WEEK, "team": team, "members": 3, "requests": 9, "input_tokens": total, "output_tokens": 0,
        "total_tokens": total, "wasted_tokens": wasted, "effective_tokens": total - wasted,
        "waste_ratio": wasted / total, "cost_usd": 1.5, "wasted_cost_usd": 0.15, "outcomes": 2, "value": 0.0,
        "credit": 0.0, "value_tokens": 0, "rank": rank, "effective_rank": rank, "value_rank": rank, "final": 1,
    }  # fmt: skip


def trend(weeks: int = 3) -> list[dict[str, Any]]:
    return [
        {"week_start": WEEK - dt.timedelta(days=7 * (weeks - 1 - i)), "total_tokens": 1000 * (i + 1),
         "effective_tokens": 800 * (i + 1), "wasted_tokens": 200 * (i + 1), "cost_usd": 0.5 * (i + 1),
         "wasted_cost_usd": 0.1 * (i + 1), "waste": {"failed_request": 150 * (i + 1), HOSTILE: 50 * (i + 1)}}
        for i in range(weeks)
    ]  # fmt: skip


def test_team_board_escapes_names_and_links_each_team() -> None:
    html = team_pages.teams_page(
        [team_row("core", 1), team_row(HOSTILE, 2), team_row("", 3)], week=WEEK, weeks=[WEEK], by="raw"
    )
    assert "<script>" not in html and "&#34;&gt;&lt;script&gt;" in html
    assert html.count("<tr class=") == 3 and "(no team)" in html
    assert 'href="/team?name=core&amp;week=2026-11-16"' in html
    assert 'href="/team?name=&amp;week=2026-11-16"' in html  # users without a team
    assert 'id="by-raw" href="/teams?week=2026-11-16&amp;by=raw" aria-current=page' in html
    assert "Teams, week of 2026-11-16 (final)" in html
    empty = team_pages.teams_page([], week=None, weeks=[], by="raw")
    assert 'id="empty"' in empty and "No week has data yet" in empty


def test_team_page_has_members_waste_and_three_charts() -> None:
    members = [{"user": "ann", "rank": 1, "total_tokens": 900, "effective_tokens": 800, "waste_ratio": 0.11,
                "cost_usd": 1.0, "title": "Token Lord"}]  # fmt: skip
    waste = [{"reason": "failed_request", "requests": 2, "wasted_tokens": 100, "wasted_cost_usd": 0.15}]
    html = team_pages.team_page(
        "core", WEEK, row=team_row("core", 1), members=members, waste=waste, trend=trend(), weeks=[WEEK]
    )
    assert "core: 3 members, 1,000 tokens, 100 judged wasted (10.0%), 900 effective" in html
    assert re.findall(r'<figure class="chart" id="([\w-]+)"', html) == ["team-tokens", "team-waste", "team-cost"]
    assert 'data-user="ann"' in html and 'href="/user/ann?week=2026-11-16"' in html
    assert 'data-reason="failed_request"' in html and "<script>" not in html
    missing = team_pages.team_page("gone", WEEK, row=None, members=[], waste=[], trend=trend(), weeks=[WEEK])
    assert "No usage recorded for team gone in the week of 2026-11-16" in missing


def test_org_page_compares_with_the_week_before() -> None:
    def org(week: dt.date, total: int, wasted_usd: float) -> dict[str, Any]:
        return {"week_start": week, "users": 10, "teams": 2, "requests": 50, "total_tokens": total,
                "wasted_tokens": total // 10, "effective_tokens": total - total // 10, "waste_ratio": 0.1,
                "cost_usd": 2.0, "wasted_cost_usd": wasted_usd, "outcomes": 4, "value": 8.0,
                "value_per_1m_tokens": 8e6 / total, "final": 0}  # fmt: skip

    before = WEEK - dt.timedelta(days=7)
    summary = {
        "week_start": WEEK,
        "row": org(WEEK, 2000, 0.3),
        "history": [org(WEEK, 2000, 0.3), org(before, 1000, 0.4)],
        "waste": [{"reason": "agent_loop", "requests": 3, "wasted_tokens": 200, "wasted_cost_usd": 0.3}],
    }
    html = team_pages.org_page(summary, weeks=[before, WEEK])
    row = re.search(r'<tr data-measure="total_tokens">(.*?)</tr>', html)
    assert row and re.findall(r'class="num">([^<]*)<', row[1]) == ["2,000", "1,000", "+100.0%"]
    row = re.search(r'<tr data-measure="wasted_cost_usd">(.*?)</tr>', html)
    assert row and re.findall(r'class="num">([^<]*)<', row[1]) == ["0.30", "0.40", "-25.0%"]
    assert 'data-reason="agent_loop"' in html and 'id="org-tokens"' in html
    alone = team_pages.org_page({**summary, "history": summary["history"][:1]}, weeks=[WEEK])
    assert re.search(r'data-measure="total_tokens">.*?"num">2,000<.*?"num">-<.*?"num">new<', alone)


def test_team_query_needs_a_name() -> None:
    assert team_pages.team_query({"name": "", "week": "2026-11-18"}) == ("", WEEK)
    with pytest.raises(BadRequest, match="name=TEAM is missing"):
        team_pages.team_query({"week": "2026-11-18"})


def test_bars_scale_to_the_tallest_week_and_stack_reasons() -> None:
    labels = ["2026-11-02", "2026-11-09", "2026-11-16"]
    svg = charts.bars("c", "Tokens", labels, [charts.Series("raw", "#fff", [0, 50, 100])])
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([\d.]+)"', svg)]
    assert heights[0] == 0 and heights[2] == pytest.approx(2 * heights[1]) and heights[2] == 130
    stacked = charts.bars(
        "s", "Waste", labels,
        [charts.Series("a", "#f00", [10, 0, 30]), charts.Series(HOSTILE, "#0f0", [10, 20, 10])], mode="stack",
    )  # fmt: skip
    tall = [float(h) for h in re.findall(r'<rect [^>]*height="([\d.]+)"', stacked)]
    assert tall[4] + tall[5] == pytest.approx(130)  # the week with most waste fills the plot
    assert "<script>" not in stacked and "&lt;script&gt;" in stacked
    assert 'aria-label="Waste, 2026-11-02 to 2026-11-16"' in stacked
    with pytest.raises(ValueError):
        charts.bars("x", "x", labels, [charts.Series("a", "#fff", [1])])
    assert team_pages.trend_charts([]) == ""


def test_budget_marks_on_the_boards() -> None:
    from tokenlord import pages

    assert pages.budget_badge(0.5, "x", "ok") == ""
    near = pages.budget_badge(0.85, 'team "x": 50,000,000 tokens a week', "near")
    assert '<span class="budget near" title="team &quot;x&quot;: 50,000,000 tokens a week">85% of budget</span>' in near
    html = team_pages.teams_page([team_row("core", 1)], week=WEEK, weeks=[WEEK], by="raw", budgets={"core": near})
    assert "85% of budget" in html and 'class="budget near"' in html
    row = {"week_start": WEEK, "user": "ann", "team": "core", "total_tokens": 5, "effective_tokens": 5,
           "waste_ratio": 0.0, "cost_usd": 0.0, "outcomes": 0, "rank": 1, "effective_rank": 1, "title": "",
           "final": 0}  # fmt: skip
    board = pages.board_page([row], week=WEEK, weeks=[WEEK], by="raw",
                             budgets={"ann": pages.budget_badge(1.2, "user ann: $1.00 a week", "over")})  # fmt: skip
    assert '<span class="budget over" title="user ann: $1.00 a week">120% of budget</span>' in board
