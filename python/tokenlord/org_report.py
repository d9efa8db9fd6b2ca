"""The team board and the organisation's week as text (``tokenlord leaderboard
--group team``, ``tokenlord org``), from the rows of :mod:`tokenlord.store.boards`.
Words and number formats come from :mod:`tokenlord.report`, as on the page."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tokenlord import report as fmt

__all__ = ["NO_TEAM", "change", "org_text", "team_name", "team_table"]

NO_TEAM = "(no team)"


def team_name(team: str) -> str:
    """How a team is shown: users without one form ``(no team)``."""
    return fmt.printable(team) if team else NO_TEAM


def change(now: float, before: float | None) -> str:
    """``+12.5%`` / ``-3.0%`` against an earlier value; ``new`` when there was none."""
    if before is None or before == 0:
        return "new" if now else "-"
    return f"{100 * (now - before) / before:+.1f}%"


def team_table(rows: Sequence[Mapping[str, Any]], by: str) -> str:
    if not rows:
        return fmt.NO_WEEK_DATA
    head = fmt.board_heading("Teams", rows, by)
    cols = [("#", 4), ("team", 20), ("members", 7), ("tokens", 14), ("effective", 14), ("waste", 7),
            ("wasted $", 10), ("cost $", 10), ("outcomes", 8), ("value tok.", 12)]  # fmt: skip
    lines = [head, "  ".join(n.ljust(w) if n == "team" else n.rjust(w) for n, w in cols)]
    for r in rows:
        cells = [
            str(fmt.position(r, by)).rjust(4),
            team_name(r["team"])[:20].ljust(20),
            str(r["members"]).rjust(7),
            fmt.tokens(r["total_tokens"]).rjust(14),
            fmt.tokens(r["effective_tokens"]).rjust(14),
            fmt.percent(r["waste_ratio"]).rjust(7),
            fmt.money(r["wasted_cost_usd"]).rjust(10),
            fmt.money(r["cost_usd"]).rjust(10),
            fmt.tokens(r["outcomes"]).rjust(8),
            fmt.tokens(r["value_tokens"]).rjust(12),
        ]
        lines.append("  ".join(cells))
    return "\n".join(lines) + "\n"


def org_text(summary: Mapping[str, Any]) -> str:
    """``tokenlord org``: the week's totals with the change against the week before,
    waste by reason in tokens and dollars, and the earlier weeks."""
    week, row, history = summary["week_start"], summary["row"], summary["history"]
    if row is None:
        when = f"the week of {week}" if week else "any week"
        return f"no usage recorded for {when} (yet): run a worker, or pick another --week\n"
    prev = history[1] if len(history) > 1 else None

    def line(label: str, key: str, shown: str) -> str:
        delta = change(float(row[key]), None if prev is None else float(prev[key]))
        return f"  {label:<22}{shown:>18}   {delta:>8} vs the week before"

    lines = [
        f"Organisation — week of {week} ({fmt.week_state(bool(row['final']))}): "
        f"{row['users']:,} users in {row['teams']:,} teams",
        line("tokens", "total_tokens", fmt.tokens(row["total_tokens"])),
        line(
            "judged wasted", "wasted_tokens", f"{fmt.tokens(row['wasted_tokens'])} ({fmt.percent(row['waste_ratio'])})"
        ),
        line("effective tokens", "effective_tokens", fmt.tokens(row["effective_tokens"])),
        line("cost $", "cost_usd", fmt.money(row["cost_usd"])),
        line("wasted $", "wasted_cost_usd", fmt.money(row["wasted_cost_usd"])),
        line("outcomes", "outcomes", fmt.tokens(row["outcomes"])),
        line("value per 1M tokens", "value_per_1m_tokens", f"{row['value_per_1m_tokens']:,.2f}"),
        "",
        "Waste by reason" + ("" if summary["waste"] else ": none"),
    ]
    for r in summary["waste"]:
        lines.append(
            f"  {r['reason']:<22}{fmt.tokens(r['requests']):>10} requests{fmt.tokens(r['wasted_tokens']):>16} tokens"
            f"{fmt.money(r['wasted_cost_usd']):>12} $"
        )
    if len(history) > 1:
        lines += ["", "Week        tokens          wasted   waste    cost $  wasted $  value/1M"]
        for h in history:
            lines.append(
                f"{h['week_start']}  {fmt.tokens(h['total_tokens']):>14}  {fmt.tokens(h['wasted_tokens']):>14}  "
                f"{fmt.percent(h['waste_ratio']):>6}  {fmt.money(h['cost_usd']):>8}  "
                f"{fmt.money(h['wasted_cost_usd']):>8}  {h['value_per_1m_tokens']:>8,.2f}"
            )
    return "\n".join(lines) + "\n"
