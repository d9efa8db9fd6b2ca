"""The leaderboard page's pure rendering (tokenlord.pages): escaping, order, bars, links, queries."""

from __future__ import annotations

import datetime as dt
import re
import time
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote

import pytest
from tokenlord import pages
from tokenlord.cli import format_explain

WEEK = dt.date(2026, 11, 16)  # a Monday
WEEKS = [dt.date(2026, 11, 2), dt.date(2026, 11, 9), WEEK]
HOSTILE = '<script>alert("x")</script>'


def row(user: str, rank: int, eff: int, **kw: Any) -> dict[str, Any]:
    r: dict[str, Any] = {
        "week_start": WEEK, "user": user, "team": "data", "requests": 10, "input_tokens": 900,
        "output_tokens": 100, "total_tokens": 1000 * (10 - rank), "wasted_tokens": 0,
        "effective_tokens": 1000 * (10 - eff), "waste_ratio": 0.0, "cost_usd": 1.5, "outcomes": 2,
        "rank": rank, "effective_rank": eff, "title": "", "final": 0,
    }  # fmt: skip
    r.update(kw)
    return r


ROWS = [
    row("maxxer", 1, 3, waste_ratio=0.942, team=HOSTILE),
    row(HOSTILE, 2, 1, title="Token Lord"),
    row("ann.lee", 3, 2, title='AI <b>"Grand"</b>master'),
]


class Tags(HTMLParser):
    """Start tags with their attributes, and the text, of a document."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(doc: str) -> Tags:
    t = Tags()
    t.feed(doc)
    t.close()
    return t


def board_rows(doc: str) -> list[dict[str, str | None]]:
    return [a for tag, a in parse(doc).tags if tag == "tr" and "data-user" in a]


def test_hostile_names_and_titles_are_text_never_markup() -> None:
    doc = pages.board_page(ROWS, week=WEEK, weeks=WEEKS, by="raw")
    t = parse(doc)
    tags = {tag for tag, _ in t.tags}
    assert "script" not in tags and "b" not in tags and "img" not in tags
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in doc
    text = "".join(t.text)
    assert HOSTILE in text  # shown as the text it is
    assert 'AI <b>"Grand"</b>master' in text
    # The hostile user's row keeps its name in an attribute, intact after unescaping.
    assert [r["data-user"] for r in board_rows(doc)] == ["maxxer", HOSTILE, "ann.lee"]
    links = [a["href"] for tag, a in t.tags if tag == "a" and (a.get("href") or "").startswith("/user/")]
    assert links[1] == "/user/%3Cscript%3Ealert%28%22x%22%29%3C%2Fscript%3E?week=2026-11-16"
    assert unquote(links[1].split("?")[0][len("/user/") :]) == HOSTILE


def test_rank_order_and_the_other_rank_column() -> None:
    raw = pages.board_page(ROWS, week=WEEK, weeks=WEEKS, by="raw")
    assert [r["data-rank"] for r in board_rows(raw)] == ["1", "2", "3"]
    assert "<th class=num>Eff. rank</th>" in raw
    by_eff = sorted(ROWS, key=lambda r: r["effective_rank"])
    eff = pages.board_page(by_eff, week=WEEK, weeks=WEEKS, by="effective")
    assert [r["data-effective-rank"] for r in board_rows(eff)] == ["1", "2", "3"]
    assert "<th class=num>Raw rank</th>" in eff
    # The position cell is the rank the board is ordered by; the other rank is shown too.
    assert '<td class="pos">1</td>' in eff and "ranked by effective tokens" in eff
    # The toggle marks the current ordering and keeps the week.
    toggles = {a["id"]: a for tag, a in parse(eff).tags if tag == "a" and a.get("id", "").startswith("by-")}
    assert toggles["by-effective"].get("aria-current") == "page" and "aria-current" not in toggles["by-raw"]
    assert toggles["by-raw"]["href"] == "/?week=2026-11-16&by=raw"


def test_the_value_board_orders_by_value_rank_and_shows_value_tokens() -> None:
    rows = [{**r, "value_rank": i + 1, "value_tokens": 1000 * (3 - i), "credit": 2.5 - i} for i, r in
            enumerate(sorted(ROWS, key=lambda r: r["user"]))]  # fmt: skip
    doc = pages.board_page(rows, week=WEEK, weeks=WEEKS, by="value")
    assert [r["data-user"] for r in board_rows(doc)] == [r["user"] for r in rows]
    assert "<th class=num>Value tokens</th><th class=num>Credit</th>" in doc and "<th class=num>Eff. rank</th>" in doc
    assert '<td class="num">3,000</td><td class="num">2.5</td>' in doc
    assert "ranked by value (effective tokens that led to outcomes" in doc
    # The position cell is the value rank, whatever the raw and effective ranks are.
    assert re.findall(r"<td class=\"pos\">(\d+)</td>", doc) == ["1", "2", "3"]
    assert [r["data-rank"] for r in board_rows(doc)] != ["1", "2", "3"]
    toggles = {a["id"]: a for tag, a in parse(doc).tags if tag == "a" and a.get("id", "").startswith("by-")}
    assert set(toggles) == {"by-raw", "by-effective", "by-value"}
    assert (
        toggles["by-value"].get("aria-current") == "page"
        and toggles["by-value"]["href"] == "/?week=2026-11-16&by=value"
    )
    assert "Value tokens" not in pages.board_page(ROWS, week=WEEK, weeks=WEEKS, by="raw")
    assert "Credit" not in pages.board_page(ROWS, week=WEEK, weeks=WEEKS, by="effective")


def test_titles_avatars_and_numbers() -> None:
    doc = pages.board_page(ROWS, week=WEEK, weeks=WEEKS, by="raw")
    assert '<span class="title">Token Lord</span>' in doc
    assert pages.avatar("uma.meyer")[0] == "UM"
    assert pages.avatar("ann")[0] == "A"
    assert pages.avatar(HOSTILE)[0] == "SA"  # letters only: <script>alert("x")... → S, A
    assert pages.avatar("")[0] == "?" and pages.avatar("--")[0] == "?"
    assert pages.avatar("bob") == pages.avatar("bob") and 0 <= pages.avatar("bob")[1] < 360
    assert pages.avatar("bob")[1] != pages.avatar("alice")[1]
    assert "9,000" in doc and "1.50" in doc


@pytest.mark.parametrize(("ratio", "width", "label"), [(0.942, "94.2%", "94.2%"), (0.0, "0.0%", "0.0%"),
                                                        (1.0, "100.0%", "100.0%"), (1.7, "100.0%", "170.0%"),
                                                        (-0.2, "0.0%", "-20.0%")])  # fmt: skip
def test_waste_bar_width_is_clamped_but_the_number_is_true(ratio: float, width: str, label: str) -> None:
    doc = pages.board_page([row("a", 1, 1, waste_ratio=ratio)], week=WEEK, weeks=WEEKS, by="raw")
    bars = [a for tag, a in parse(doc).tags if tag == "span" and (a.get("style") or "").startswith("width:")]
    assert [b["style"] for b in bars] == [f"width:{width}"]
    assert f'<span class="pct">{label}</span>' in doc


def test_empty_week_and_no_data_at_all() -> None:
    doc = pages.board_page([], week=dt.date(2026, 10, 5), weeks=WEEKS, by="raw")
    assert "No usage recorded for the week of 2026-10-05 (yet). Pick another week above." in doc
    assert "<table" not in doc
    # The week picker still links to every week that has data.
    hrefs = {a["href"] for tag, a in parse(doc).tags if tag == "a"}
    assert {f"/?week={w.isoformat()}&by=raw" for w in WEEKS} <= hrefs
    options = [a["value"] for tag, a in parse(doc).tags if tag == "option"]
    assert options == ["2026-11-16", "2026-11-09", "2026-11-02"]
    none = pages.board_page([], week=None, weeks=[], by="effective")
    assert "No week has data yet" in none and "No usage recorded for any week" in none


def test_board_query_parses_and_rejects_with_a_clear_message() -> None:
    today = dt.date(2026, 11, 19)
    assert pages.board_query({}, today) == pages.BoardQuery(None, "raw")
    assert pages.board_query({"by": "effective", "week": "2026-11-19"}, today) == pages.BoardQuery(WEEK, "effective")
    assert pages.board_query({"by": "value"}, today) == pages.BoardQuery(None, "value")
    assert pages.board_query({"week": "current"}, today).week == WEEK
    assert pages.board_query({"week": "last"}, today).week == dt.date(2026, 11, 9)
    assert pages.board_query({"week": "", "utm_source": "mail"}, today).week is None
    with pytest.raises(pages.BadRequest, match=r"by='sideways': use by=raw .* by=effective .* or by=value"):
        pages.board_query({"by": "sideways"})
    for bad in ("yesterday", "2026-13-01", "20261116", "2026-11-16T00:00", "<script>"):
        with pytest.raises(pages.BadRequest, match="week="):
            pages.board_query({"week": bad})
    assert pages.user_query({"week": "2026-11-22"}) == WEEK


def test_error_page_escapes_the_message() -> None:
    doc = pages.error_page(400, f"week={HOSTILE!r}: use a date")
    assert "<script>" not in doc and "Error 400" in doc


def test_user_path_encodes_every_special_character() -> None:
    for name in ("a/b", "q?x=1#f", "日本 語", "..", HOSTILE, "100%"):
        path = pages.user_path(name, WEEK)
        assert path.startswith("/user/") and path.endswith("?week=2026-11-16")
        encoded = path[len("/user/") : -len("?week=2026-11-16")]
        assert "/" not in encoded and "?" not in encoded and "#" not in encoded
        assert unquote(encoded) == name


REPORT: dict[str, Any] = {
    "user": HOSTILE,
    "week_start": WEEK,
    "leaderboard": row(HOSTILE, 1, 4, total_tokens=8_086_031, wasted_tokens=7_620_351, effective_tokens=465_680,
                       waste_ratio=0.9424, title="", final=1),
    "reasons": [{"reason": "agent_loop", "requests": 1423, "wasted_tokens": 7_618_653, "total_tokens": 7_618_653,
                 "examples": [{"reason": "agent_loop", "event_id": "<ev-1>", "ts": dt.datetime(2026, 11, 18, 7, 22, 14),
                               "model": "gpt-4o", "session_id": "", "total_tokens": 9145, "wasted_tokens": 9145}]},
                {"reason": "new_rule<x>", "requests": 1, "wasted_tokens": 5, "total_tokens": 5, "examples": []}],
    "outcomes": [{"outcome": "merged", "n": 3, "value": 6.0}, {"outcome": "rejected", "n": 1, "value": 0}],
}  # fmt: skip


def test_explain_page_says_what_the_cli_says() -> None:
    doc = pages.explain_page(REPORT, weeks=WEEKS)
    t = parse(doc)
    assert "script" not in {tag for tag, _ in t.tags}
    text = " ".join(" ".join(t.text).split())
    cli = format_explain(REPORT)
    # Every line of the CLI report appears, in the same words, on the page.
    for line in cli.splitlines():
        words = " ".join(line.replace("e.g. ", "").replace("rule: ", "").split())
        if words and not words.startswith("outcomes:"):
            assert words in text, words
    assert "merged 3 (value 6), rejected 1" in text and "('rejected' does not count)" in text
    assert "see docs/semantics.md" in text  # an unknown rule still explains where to look
    reasons = [a["data-reason"] for tag, a in t.tags if "data-reason" in a]
    assert reasons == ["agent_loop", "new_rule<x>"]
    back = next(a["href"] for tag, a in t.tags if tag == "a")
    assert back == "/?week=2026-11-16&by=raw"


def test_explain_page_without_usage() -> None:
    doc = pages.explain_page({**REPORT, "leaderboard": None, "reasons": [], "outcomes": []}, weeks=[])
    assert (
        f"{HOSTILE}: no usage in the week of 2026-11-16".replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        in doc
    )


def test_render_100_rows_is_fast() -> None:
    rows = [row(f"user-{i}", i + 1, 100 - i, waste_ratio=i / 100, title="Token Lord" if i == 99 else "")
            for i in range(100)]  # fmt: skip
    started = time.perf_counter()
    for _ in range(20):
        doc = pages.board_page(rows, week=WEEK, weeks=WEEKS * 20, by="raw")
    per_page = (time.perf_counter() - started) / 20
    assert len(board_rows(doc)) == 100
    assert per_page < 0.05, f"{per_page * 1000:.1f} ms per 100-row page"


def test_control_and_bidi_characters_in_names_are_shown_escaped() -> None:
    trojan = "eve\u202egnp.exe\x1b[2J\u2066x\u2069"
    doc = pages.board_page([row(trojan, 1, 1, team="red\u200fteam\x07")], week=WEEK, weeks=WEEKS, by="raw")
    for ch in ("\u202e", "\x1b", "\u2066", "\u2069", "\u200f", "\x07"):
        assert ch not in doc
    assert "eve\\u202egnp.exe\\u001b[2J\\u2066x\\u2069" in "".join(parse(doc).text)
    assert "red\\u200fteam\\u0007" in doc
    # Emoji sequences (zero-width joiners) and accents stay as they are.
    assert "\U0001f469\u200d\U0001f4bb Zoë" in pages.board_page([row("\U0001f469\u200d\U0001f4bb Zoë", 1, 1)],
                                                            week=WEEK, weeks=WEEKS, by="raw")  # fmt: skip
