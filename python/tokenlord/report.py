"""Wording and number formats shared by the command line and the web page.

``tokenlord leaderboard`` / ``tokenlord explain`` (text) and the worker's
leaderboard page (HTML) say the same things the same way; both take their
words and formats from here. Everything is plain text: callers escape it for
their medium.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

# The rankings of a week's board: by total tokens, by effective tokens, by value.
Ranking = Literal["raw", "effective", "value"]
RANKINGS: Final[tuple[Ranking, ...]] = ("raw", "effective", "value")

# C0/C1 controls and DEL, and the Unicode bidi controls (embeddings, overrides,
# isolates, marks): in a name they could rewrite a terminal line or reorder
# what a reader sees (a "Trojan Source" name).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# A spreadsheet evaluates a cell starting with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

# What each waste reason means, for people reading `explain` (docs/semantics.md, "Waste").
WASTE_RULES = {
    "failed_request": "the request failed (status=error): all its tokens",
    "retry_storm": "the same request again within seconds of two or more identical ones",
    "agent_loop": (
        "a near-identical prompt got the same answer again within minutes, or more than twice in a day "
        "however the steps were paced (across sessions, apps and models)"
    ),
    "duplicate_prompt": (
        "the same prompt sent again within the hour (the first resend is free) or more than twice in a day"
    ),
    "padded_prompt": (
        "most of the prompt repeats itself (in 10-word windows, or in 3-word windows when every few words "
        "were changed): the repeated share of its input tokens"
    ),
    "near_duplicate": (
        "the same question asked again, reworded or reordered (MinHash sketches of prompt and answer alike), "
        "more than three times in a day; the first re-asks (an edit and retries) are free"
    ),
    "repetitive_output": "most of the answer repeats itself: the repeated share, and the prompt that bought it",
}

UNKNOWN_RULE = "see docs/semantics.md"


def printable(text: object, keep: str = "") -> str:
    """``text`` with control and bidi characters shown as ``\\uXXXX`` (except those in ``keep``)."""
    return _UNPRINTABLE.sub(lambda m: m[0] if m[0] in keep else f"\\u{ord(m[0]):04x}", str(text))


def csv_cell(value: object) -> object:
    """A CSV cell a spreadsheet will not run: a string starting like a formula gets a leading ``'``."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def rule(reason: str) -> str:
    return WASTE_RULES.get(reason, UNKNOWN_RULE)


def tokens(n: int) -> str:
    """``1234567`` → ``1,234,567``."""
    return f"{n:,}"


def percent(ratio: float) -> str:
    """``0.9421`` → ``94.2%``."""
    return f"{100 * ratio:.1f}%"


def money(usd: float) -> str:
    return f"{usd:,.2f}"


def credit(c: float) -> str:
    """An outcome credit (docs/semantics.md, "Value ranking"): ``2.0`` → ``2``, ``1.25`` → ``1.25``."""
    return f"{c:,.2f}".rstrip("0").rstrip(".")


def week_state(final: bool) -> str:
    return "final" if final else "open"


def board_state(rows: Sequence[Mapping[str, Any]]) -> str:
    """``final`` when every row of the week is final, else ``open``."""
    return week_state(all(r["final"] for r in rows))


NO_WEEK_DATA: Final = "no data for that week (yet): run a worker, or pick another --week (last, YYYY-MM-DD)\n"


def board_heading(what: str, rows: Sequence[Mapping[str, Any]], by: str) -> str:
    """``Leaderboard — week of 2026-11-16 (open), ranked by raw tokens`` (a line; ``rows`` not empty)."""
    ranked = "value (effective tokens that led to outcomes)" if by == "value" else f"{by} tokens"
    return f"{what} — week of {rows[0]['week_start']} ({board_state(rows)}), ranked by {ranked}\n"


def position(row: Mapping[str, Any], by: str) -> int:
    """The row's place in a board ranked ``by`` raw or effective tokens or by value."""
    return int(row[{"raw": "rank", "effective": "effective_rank", "value": "value_rank"}[by]])


def outcome_kinds(outcomes: Sequence[Mapping[str, Any]]) -> list[str]:
    """``["merged 3 (value 6)", "resolved 1"]`` from ``Store.explain``'s outcomes."""
    return [f"{o['outcome']} {o['n']:,}" + (f" (value {o['value']:g})" if o["value"] else "") for o in outcomes]


def rejected_outcomes_note(outcomes: Sequence[Mapping[str, Any]]) -> str:
    return "('rejected' does not count)" if any(o["outcome"] == "rejected" for o in outcomes) else ""


def explain_headline(user: str, week: object, row: Mapping[str, Any]) -> list[str]:
    """The three summary lines of an explain report (row: the user's leaderboard row)."""
    return [
        f"{user} ({row['team'] or 'no team'}) — week of {week} ({week_state(bool(row['final']))})",
        f"{tokens(row['total_tokens'])} tokens, {tokens(row['wasted_tokens'])} judged wasted "
        f"({percent(row['waste_ratio'])}), {tokens(row['effective_tokens'])} effective",
        f"rank {row['rank']} by raw tokens, {row['effective_rank']} by effective tokens"
        + (f" — {row['title']}" if row["title"] else ""),
    ]


def reason_line(r: Mapping[str, Any]) -> str:
    return (
        f"{r['reason']}: {tokens(r['requests'])} requests, {tokens(r['wasted_tokens'])} tokens wasted "
        f"(of {tokens(r['total_tokens'])})"
    )


def example_line(e: Mapping[str, Any]) -> str:
    return (
        f"{e['event_id']}  {e['ts']:%Y-%m-%d %H:%M:%S}  {e['model']}  "
        f"session {e['session_id'] or '-'}  {tokens(e['wasted_tokens'])} of {tokens(e['total_tokens'])} tokens"
    )


def no_usage(user: str, week: object) -> str:
    return f"{user}: no usage in the week of {week}"
