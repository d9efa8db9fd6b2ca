"""The worker's leaderboard web page: pure functions from store rows to HTML.

Server-rendered, no JavaScript, no external resources (inline CSS), every
value from the store escaped (user and team names are hostile input). The
Faust views in ``streams/web.py`` parse the query with :func:`board_query` /
:func:`user_query`, read the store, and call :func:`board_page` /
:func:`explain_page`; :class:`BadRequest` becomes a 400 with its message.
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any, Final
from urllib.parse import quote, urlencode

from tokenlord import report as fmt

__all__ = [
    "CSS",
    "TOP",
    "BadRequest",
    "BoardQuery",
    "avatar",
    "board_page",
    "board_query",
    "budget_badge",
    "error_page",
    "explain_page",
    "user_path",
    "user_query",
    "waste_bar",
]

TOP: Final = 100
By = fmt.Ranking


class BadRequest(ValueError):
    """A query parameter the page cannot use; the message says what is accepted."""


@dataclass(frozen=True)
class BoardQuery:
    week: dt.date | None  # None: the latest week with data
    by: By


def _week(text: str | None, today: dt.date | None) -> dt.date | None:
    """``YYYY-MM-DD`` (any day: its Monday), ``current``, ``last``; absent/empty → None."""
    if text is None or text == "":
        return None
    today = today or dt.datetime.now(tz=dt.UTC).date()
    monday = today - dt.timedelta(days=today.weekday())
    if text == "current":
        return monday
    if text == "last":
        return monday - dt.timedelta(days=7)
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"week={text!r}: use a date like 2026-11-16 (any day of the week), current or last") from None
    if len(text) != 10:  # fromisoformat also takes 20261116 and week dates: keep URLs canonical
        raise BadRequest(f"week={text!r}: use a date like 2026-11-16 (YYYY-MM-DD)")
    return day - dt.timedelta(days=day.weekday())


def board_query(query: Mapping[str, str], today: dt.date | None = None) -> BoardQuery:
    """``?by=raw|effective|value&week=YYYY-MM-DD``; other parameters are ignored."""
    by = query.get("by") or "raw"
    for known in fmt.RANKINGS:
        if by == known:
            return BoardQuery(_week(query.get("week"), today), known)
    raise BadRequest(
        f"by={by!r}: use by=raw (total tokens), by=effective (tokens minus waste) "
        "or by=value (effective tokens that led to outcomes)"
    )


def user_query(query: Mapping[str, str], today: dt.date | None = None) -> dt.date | None:
    """``?week=YYYY-MM-DD`` of the explain page (None: the latest week with data)."""
    return _week(query.get("week"), today)


def user_path(user: str, week: dt.date | None = None) -> str:
    """``/user/<name>?week=...`` with the name percent-encoded (``/`` too); not yet HTML-escaped."""
    path = "/user/" + quote(user, safe="")
    return path + ("?" + urlencode({"week": week.isoformat()}) if week else "")


def board_path(week: dt.date | None, by: str) -> str:
    params = {"by": by}
    if week is not None:
        params = {"week": week.isoformat(), **params}
    return "/?" + urlencode(params)


def avatar(name: str) -> tuple[str, int]:
    """Initials (up to two) and a hue (0-359) stable for a name."""
    parts = [p for p in "".join(c if c.isalnum() else " " for c in name).split() if p]
    initials = "".join(p[0] for p in parts[:2]).upper() or "?"
    return initials, zlib.crc32(name.encode("utf-8", "surrogatepass")) % 360


def _e(value: object) -> str:
    return escape(fmt.printable(value), quote=True)


CSS: Final = """
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#0f1221;color:#e8eaf6}
a{color:#9fb4ff;text-decoration:none}a:hover{text-decoration:underline}
header{padding:24px 32px 8px;background:linear-gradient(120deg,#2a1b5c,#0f1221)}
h1{margin:0;font-size:28px;letter-spacing:.5px}h1 .crown{color:#ffcf40}
.sub{color:#aab0d6;margin:4px 0 0}
.controls{display:flex;flex-wrap:wrap;gap:16px;align-items:center;padding:12px 32px}
.toggle{display:inline-flex;border:1px solid #3b4170;border-radius:8px;overflow:hidden}
.toggle a{padding:6px 14px;color:#cfd3f5}.toggle a[aria-current=page]{background:#5b5bd6;color:#fff}
.weeks a{margin-right:8px;padding:3px 8px;border-radius:6px;color:#aab0d6}
.weeks a[aria-current=page]{background:#2b3059;color:#fff}
form{display:inline-flex;gap:6px;align-items:center}
select,button{background:#1b1f38;color:#e8eaf6;border:1px solid #3b4170;border-radius:6px;padding:4px 8px}
main{padding:0 32px 32px}
table{width:100%;border-collapse:collapse;background:#151933;border-radius:10px;overflow:hidden}
th,td{padding:8px 10px;text-align:left;border-bottom:1px solid #232849;vertical-align:middle}
th{font-size:12px;text-transform:uppercase;letter-spacing:.6px;color:#8d93bd;background:#1a1e3b}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tr.top1 td{background:rgba(255,207,64,.08)}
.pos{font-weight:700;font-size:17px;width:3em}
.av{display:inline-flex;width:34px;height:34px;border-radius:50%;align-items:center;justify-content:center;
font-weight:700;font-size:13px;color:#fff}
.user{font-weight:600}.team{color:#aab0d6}
.title{display:inline-block;padding:2px 8px;border-radius:10px;background:#ffcf40;color:#2a1b00;font-size:12px;
font-weight:700}
.bar{width:120px;height:10px;border-radius:5px;background:#263056;display:inline-block;vertical-align:middle;
overflow:hidden}.bar span{display:block;height:100%;background:linear-gradient(90deg,#f7b733,#fc4a1a)}
.pct{margin-left:6px;color:#cfd3f5;font-size:13px}td.waste,.title{white-space:nowrap}
.empty{padding:32px;text-align:center;color:#aab0d6;background:#151933;border-radius:10px}
.card{background:#151933;border-radius:10px;padding:16px 20px;margin:0 0 16px}
.card h2{margin:0 0 6px;font-size:17px}.rule{color:#aab0d6}.mono{font-family:ui-monospace,monospace;font-size:13px}
footer{padding:0 32px 24px;color:#6f76a8;font-size:12px}
.charts{display:flex;flex-wrap:wrap;gap:16px;margin:0 0 16px}
figure.chart{margin:0;background:#151933;border-radius:10px;padding:12px 14px}
figure.chart figcaption{font-size:13px;color:#cfd3f5;margin:0 0 6px}
.legend .key{margin-left:10px;color:#aab0d6;font-size:12px;white-space:nowrap}
.legend .key i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px}
.card table{background:transparent}
.budget{display:inline-block;margin-left:8px;padding:1px 7px;border-radius:9px;font-size:11px;font-weight:700}
.budget.near{background:#f7b733;color:#2a1b00}.budget.over{background:#fc4a1a;color:#fff}
"""


def _doc(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def _avatar_html(name: str) -> str:
    initials, hue = avatar(name)
    return f'<span class="av" style="background:hsl({hue} 55% 42%)" aria-hidden="true">{_e(initials)}</span>'


def budget_badge(ratio: float, limit: str, state: str) -> str:
    """``near``/``over`` budget mark (HTML); ``""`` when neither."""
    if state not in ("near", "over"):
        return ""
    text = f"{100 * ratio:.0f}% of budget"
    return f' <span class="budget {state}" title="{_e(limit)}">{_e(text)}</span>'


def waste_bar(ratio: float) -> str:
    """A waste-share bar and its percentage (HTML)."""
    pct = min(100.0, max(0.0, 100.0 * float(ratio)))
    return (
        f'<span class="bar" role="img" aria-label="{pct:.1f}% wasted"><span style="width:{pct:.1f}%"></span></span>'
        f'<span class="pct">{_e(fmt.percent(ratio))}</span>'
    )


def _week_nav(weeks: Sequence[dt.date], current: dt.date | None, by: str, *, recent: int = 8) -> str:
    """Links to the latest ``recent`` weeks and a form to pick any week with data."""
    if not weeks:
        return ""
    newest_first = sorted(weeks, reverse=True)
    links = "".join(
        f'<a href="{_e(board_path(w, by))}"{" aria-current=page" if w == current else ""}>{_e(w.isoformat())}</a>'
        for w in newest_first[:recent]
    )
    options = "".join(
        f'<option value="{_e(w.isoformat())}"{" selected" if w == current else ""}>{_e(w.isoformat())}</option>'
        for w in newest_first
    )
    return (
        f'<nav class="weeks" aria-label="weeks">Weeks: {links}</nav>'
        f'<form method="get" action="/"><input type="hidden" name="by" value="{_e(by)}">'
        f'<label for="week">Week of</label> <select id="week" name="week">{options}</select>'
        "<button type=submit>Show</button></form>"
    )


def _header(subtitle: str) -> str:
    return (
        '<header><h1><span class="crown">&#9813;</span> Token Lord <small>leaderboard</small></h1>'
        f'<p class="sub">{subtitle}</p></header>'
    )


def board_page(
    rows: Sequence[Mapping[str, Any]],
    *,
    week: dt.date | None,
    weeks: Sequence[dt.date],
    by: By,
    generated: dt.datetime | None = None,
    only: str | None = None,
    budgets: Mapping[str, str] | None = None,
) -> str:
    """The weekly board: ``rows`` from ``Store.leaderboard(week, TOP, by)`` in that order;
    ``only``: the viewer may see their own usage only (``rows`` is their row);
    ``budgets``: user → a budget badge (:func:`budget_badge`) for who is near or over."""
    other: By = "raw" if by == "effective" else "effective"
    ranked = {
        "raw": "raw tokens",
        "effective": "effective tokens (total - wasted)",
        "value": "value (effective tokens that led to outcomes, capped per outcome)",
    }[by]
    toggle = (
        '<div class="toggle" role="group" aria-label="rank by">'
        + "".join(
            f'<a id="by-{b}" href="{_e(board_path(week, b))}"{" aria-current=page" if b == by else ""}>{label}</a>'
            for b, label in (("raw", "Raw tokens"), ("effective", "Effective tokens"), ("value", "Value"))
        )
        + "</div>"
    )
    elsewhere = ""
    if only is None:  # who sees everyone also sees the teams and the organisation
        q = "?" + urlencode({"week": week.isoformat()}) if week else ""
        elsewhere = (
            '<div class="toggle" role="group" aria-label="pages"><a href="/" aria-current=page>Users</a>'
            f'<a id="nav-teams" href="/teams{_e(q)}">Teams</a><a id="nav-org" href="/org{_e(q)}">Organisation</a></div>'
        )
    controls = f'<div class="controls">{elsewhere}{toggle}{_week_nav(weeks, week, by)}</div>'
    if week is None:
        subtitle = "No week has data yet: start a worker and send usage events."
    else:
        state = fmt.board_state(rows) if rows else "no data"
        subtitle = f"Week of {_e(week.isoformat())} ({_e(state)}) — ranked by {_e(ranked)}, top {TOP}"
    if only is not None:
        subtitle += f' <span id="scope">Your own usage only ({_e(only)}).</span>'
    if not rows:
        known = "" if not weeks else " Pick another week above."
        where = f"the week of {_e(week.isoformat())}" if week else "any week"
        whose = "" if only is None else f" by {_e(only)}"
        content = f'<div class="empty" id="empty">No usage recorded{whose} for {where} (yet).{known}</div>'
    else:
        head = (
            "<thead><tr><th>#</th><th></th><th>User</th><th>Team</th><th class=num>Tokens</th>"
            "<th class=num>Effective</th><th>Title</th><th>Waste</th>"
            f"<th class=num>{'Raw rank' if by == 'effective' else 'Eff. rank'}</th>"
            + ("<th class=num>Value tokens</th><th class=num>Credit</th>" if by == "value" else "")
            + "<th class=num>Outcomes</th><th class=num>Cost $</th></tr></thead>"
        )
        body = []
        for r in rows:
            pos = fmt.position(r, by)
            user, team = str(r["user"]), str(r["team"] or "")
            title = f'<span class="title">{_e(r["title"])}</span>' if r["title"] else ""
            body.append(
                f'<tr class="{"top1" if pos == 1 else ""}" data-user="{_e(user)}" data-rank="{_e(r["rank"])}" '
                f'data-effective-rank="{_e(r["effective_rank"])}">'
                f'<td class="pos">{_e(pos)}</td><td>{_avatar_html(user)}</td>'
                f'<td class="user"><a href="{_e(user_path(user, r["week_start"]))}">{_e(user)}</a>'
                f"{(budgets or {}).get(user, '')}</td>"
                f'<td class="team">{_e(team)}</td>'
                f'<td class="num">{_e(fmt.tokens(r["total_tokens"]))}</td>'
                f'<td class="num">{_e(fmt.tokens(r["effective_tokens"]))}</td>'
                f'<td>{title}</td><td class="waste">{waste_bar(r["waste_ratio"])}</td>'
                f'<td class="num">{_e(fmt.position(r, other))}</td>'
                + (
                    f'<td class="num">{_e(fmt.tokens(r["value_tokens"]))}</td>'
                    f'<td class="num">{_e(fmt.credit(r["credit"]))}</td>'
                    if by == "value"
                    else ""
                )
                + f'<td class="num">{_e(fmt.tokens(r["outcomes"]))}</td>'
                f'<td class="num">{_e(fmt.money(r["cost_usd"]))}</td></tr>'
            )
        content = f'<table id="board">{head}<tbody>{"".join(body)}</tbody></table>'
    stamp = f" Rendered {_e(generated.strftime('%Y-%m-%d %H:%M:%S UTC'))}." if generated else ""
    footer = (
        "<footer>Effective tokens = total - tokens judged wasted (loops, retries, padding, failures); "
        f"click a user for the audit trail.{stamp}</footer>"
    )
    title = f"Token Lord — week of {week.isoformat()}" if week else "Token Lord"
    return _doc(title, _header(subtitle) + controls + f"<main>{content}</main>" + footer)


def explain_page(report: Mapping[str, Any], *, weeks: Sequence[dt.date], charts: str = "") -> str:
    """``Store.explain(user, week)`` as a page: the user's numbers, the trend ``charts``
    (SVG, already escaped), each waste rule with counts and example events, and the outcomes."""
    user, week = str(report["user"]), report["week_start"]
    row = report["leaderboard"]
    back = f'<a href="{_e(board_path(week, "raw"))}">&larr; leaderboard of the week of {_e(week)}</a>'
    others = "".join(
        f'<a href="{_e(user_path(user, w))}"{" aria-current=page" if w == week else ""}>{_e(w.isoformat())}</a>'
        for w in sorted(weeks, reverse=True)[:8]
    )
    nav = f'<div class="controls">{back}<nav class="weeks" aria-label="weeks">Weeks: {others}</nav></div>'
    if row is None:
        body = f'<div class="empty" id="empty">{_e(fmt.no_usage(user, week))}.</div>'
        return _doc(f"{user} — Token Lord", _header("Why tokens were discounted") + nav + f"<main>{body}</main>")
    head, *summary = fmt.explain_headline(user, week, row)
    cards = [
        f'<div class="card" id="summary"><h2>{_avatar_html(user)} {_e(head)}</h2>'
        + "".join(f"<div>{_e(line)}</div>" for line in summary)
        + f"<div>{waste_bar(row['waste_ratio'])}</div></div>"
    ]
    if charts:
        cards.append(f'<div class="charts" id="trends">{charts}</div>')
    if not report["reasons"]:
        cards.append('<div class="card">Nothing was discounted.</div>')
    for r in report["reasons"]:
        examples = "".join(f'<li class="mono">{_e(fmt.example_line(e))}</li>' for e in r["examples"])
        cards.append(
            f'<div class="card reason" data-reason="{_e(r["reason"])}"><h2>{_e(fmt.reason_line(r))}</h2>'
            f'<div class="rule">rule: {_e(fmt.rule(r["reason"]))}</div>'
            + (f"<ul>{examples}</ul>" if examples else "")
            + "</div>"
        )
    kinds = fmt.outcome_kinds(report["outcomes"])
    note = fmt.rejected_outcomes_note(report["outcomes"])
    cards.append(
        f'<div class="card" id="outcomes"><h2>Outcomes</h2>{_e(", ".join(kinds) or "none reported")}'
        + (f' <span class="rule">{_e(note)}</span>' if note else "")
        + "</div>"
    )
    return _doc(f"{user} — Token Lord", _header("Why tokens were discounted") + nav + f"<main>{''.join(cards)}</main>")


def error_page(status: int, message: str) -> str:
    return _doc(
        f"{status} — Token Lord",
        _header(f"Error {status}") + f'<main><div class="empty" id="error">{_e(message)}</div>'
        '<p><a href="/">back to the leaderboard</a></p></main>',
    )
