"""The weekly digest: when a week becomes final, one post per configured webhook
(generic JSON or a Slack-compatible body) with the week's top 10 raw vs
effective, the biggest movers, waste by reason and what it cost, and the value
leaders.

Exactly once per (week, webhook): a post counts only once ClickHouse holds its
record in ``_digests`` (checked before every post, written after a 2xx), and
only the worker holding partition 0 of the events topic posts (the Kafka
consumer group decides which one: streams/digest.py). A worker killed between
a receiver's 2xx and that record posts again when it comes back: every post
carries the same ``Idempotency-Key`` header and ``id`` field for a (week,
webhook), so a receiver that keeps them sees the digest once (docs/operations.md,
"The weekly digest"). A failing webhook is retried with exponential backoff and
never touches ingestion: the posts run on their own thread.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol

import orjson

from tokenlord import report as fmt
from tokenlord.org_report import change, team_name
from tokenlord.store import boards
from tokenlord.time_utils import WEEK_MS
from tokenlord.webhooks import Webhook, parse_webhooks

__all__ = [
    "Digester",
    "Webhook",
    "build",
    "digest_id",
    "json_body",
    "parse_webhooks",
    "slack_body",
]

log = logging.getLogger("tokenlord.digest")

POST_TIMEOUT: Final = 10.0  # seconds per webhook post
BACKOFF_FIRST_S: Final = 30.0
BACKOFF_MAX_S: Final = 3600.0


class Reads(boards.Reads, Protocol):
    def leaderboard(
        self, week: dt.date | None = None, top: int = 100, by: fmt.Ranking = "raw", user: str | None = None
    ) -> list[dict[str, Any]]: ...
    def record_digest(self, week: dt.date, webhook: str, digest_id: str, sent_at: dt.datetime, status: int) -> None: ...


def digest_id(week: dt.date, hook: Webhook) -> str:
    """The idempotency key of a (week, webhook): the same on every attempt and every worker."""
    return f"tokenlord-digest-{week.isoformat()}-{hook.name}"


def _movers(store: Reads, week: dt.date, n: int = 3) -> dict[str, list[dict[str, Any]]]:
    """The users whose effective tokens grew and fell most against the week before."""
    lb = store.table("leaderboard_weekly")
    rows = store.query_rows(
        "SELECT c.`user` AS `user`, c.effective_tokens AS now, p.effective_tokens AS before, "
        "toInt64(c.effective_tokens) - toInt64(p.effective_tokens) AS delta, "
        "toInt64(p.effective_rank) - toInt64(c.effective_rank) AS places "
        f"FROM (SELECT `user`, effective_tokens, effective_rank FROM {lb} WHERE week_start = {{week:Date}}) AS c "
        f"INNER JOIN (SELECT `user`, effective_tokens, effective_rank FROM {lb} "
        "WHERE week_start = {week:Date} - 7) AS p ON p.`user` = c.`user` "
        "ORDER BY delta DESC, `user`",
        {"week": week},
    )
    up = [r for r in rows if r["delta"] > 0][:n]
    down = sorted((r for r in rows if r["delta"] < 0), key=lambda r: (r["delta"], r["user"]))[:n]
    return {"up": up, "down": down}


def build(store: Reads, week: dt.date, *, page_url: str = "") -> dict[str, Any]:
    """What a digest says about ``week`` (plain data; :func:`json_body` / :func:`slack_body` shape it)."""
    summary = boards.org_summary(store, week, 2)

    def people(rows: Sequence[Mapping[str, Any]], key: str, rank: str) -> list[dict[str, Any]]:
        return [{"rank": r[rank], "user": r["user"], "team": r["team"], key: r[key]} for r in rows]

    value = [r for r in store.leaderboard(week, 5, "value") if r["value_tokens"] > 0]
    return {
        "week_start": week.isoformat(),
        "org": summary["row"],
        "previous": summary["history"][1] if len(summary["history"]) > 1 else None,
        "top_raw": people(store.leaderboard(week, 10, "raw"), "total_tokens", "rank"),
        "top_effective": people(store.leaderboard(week, 10, "effective"), "effective_tokens", "effective_rank"),
        "movers": _movers(store, week),
        "waste": summary["waste"],
        "value_leaders": people(value, "value_tokens", "value_rank"),
        "teams": [
            {
                "rank": t["effective_rank"],
                "team": t["team"],
                "effective_tokens": t["effective_tokens"],
                "wasted_cost_usd": t["wasted_cost_usd"],
            }
            for t in boards.team_board(store, week, 5, "effective")
        ],
        "link": f"{page_url.rstrip('/')}/?week={week.isoformat()}" if page_url else "",
    }


def json_body(digest: Mapping[str, Any], key: str) -> bytes:
    return orjson.dumps({"kind": "tokenlord.weekly_digest", "id": key, **digest}, default=str)


def _lines(digest: Mapping[str, Any]) -> list[str]:
    org, prev = digest["org"], digest["previous"]
    out = [f"*Token Lord — week of {digest['week_start']} is final*"]
    if org:
        out.append(
            f"{fmt.tokens(org['total_tokens'])} tokens ({change(org['total_tokens'], prev and prev['total_tokens'])} "
            f"vs the week before), {fmt.percent(org['waste_ratio'])} judged wasted, cost ${fmt.money(org['cost_usd'])} "
            f"of which ${fmt.money(org['wasted_cost_usd'])} wasted"
        )
    out.append("*Top 10 by effective tokens*")
    out += [f"{r['rank']}. {fmt.printable(r['user'])} — {fmt.tokens(r['effective_tokens'])}"
            for r in digest["top_effective"]]  # fmt: skip
    out.append("*Top 10 by raw tokens*")
    out += [f"{r['rank']}. {fmt.printable(r['user'])} — {fmt.tokens(r['total_tokens'])}" for r in digest["top_raw"]]
    if digest["movers"]["up"] or digest["movers"]["down"]:
        out.append("*Biggest movers (effective tokens)*")
        out += [
            f"{fmt.printable(r['user'])} {r['delta']:+,}" for r in [*digest["movers"]["up"], *digest["movers"]["down"]]
        ]
    if digest["waste"]:
        out.append("*Waste by reason*")
        out += [f"{r['reason']}: {fmt.tokens(r['wasted_tokens'])} tokens, ${fmt.money(r['wasted_cost_usd'])}"
                for r in digest["waste"]]  # fmt: skip
    if digest["value_leaders"]:
        out.append("*Value leaders*")
        out += [f"{r['rank']}. {fmt.printable(r['user'])} — {fmt.tokens(r['value_tokens'])} value tokens"
                for r in digest["value_leaders"]]  # fmt: skip
    if digest["teams"]:
        out.append("*Teams by effective tokens*")
        out += [f"{t['rank']}. {team_name(t['team'])} — {fmt.tokens(t['effective_tokens'])}" for t in digest["teams"]]
    if digest["link"]:
        out.append(f"<{digest['link']}|The leaderboard>")
    return out


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn: &, < and > are control characters (links, mentions); names are input.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(digest: Mapping[str, Any], key: str) -> bytes:
    """A Slack incoming-webhook message (``text`` in mrkdwn; names escaped so none
    becomes a link or an @channel)."""
    lines = _lines({**digest, "link": ""})
    text = "\n".join(_slack_escape(ln) for ln in lines)
    if digest["link"]:
        text += f"\n<{digest['link']}|The leaderboard>"
    return orjson.dumps({"text": text, "mrkdwn": True, "metadata": {"event_type": "tokenlord_digest",
                                                                    "event_payload": {"id": key}}})  # fmt: skip


def http_post(url: str, body: bytes, headers: Mapping[str, str], timeout: float = POST_TIMEOUT) -> int:
    """POST; returns the HTTP status (raises OSError on a network failure)."""
    req = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


class Digester:
    """Finds final weeks without a recorded digest and posts them (``run_once``,
    called periodically by the worker holding partition 0; on its own thread)."""

    def __init__(
        self,
        store: Reads,
        webhooks: Sequence[Webhook],
        *,
        topic: str,
        end_offsets: Callable[[], Mapping[int, int]],
        grace_ms: int,
        lookback_days: int = 14,
        page_url: str = "",
        post: Callable[[str, bytes, Mapping[str, str]], int] = http_post,
        clock: Callable[[], float] = time.time,
        after_post: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.webhooks = tuple(webhooks)
        self.topic = topic
        self.end_offsets = end_offsets
        self.grace_ms = grace_ms
        self.lookback_days = lookback_days
        self.page_url = page_url
        self.post = post
        self.clock = clock
        self.after_post = after_post  # fault injection (TOKENLORD_FAULT_CRASH_AT=digest)
        self._retry_at: dict[tuple[dt.date, str], tuple[float, float]] = {}  # → (when, backoff)
        self.sent = 0
        self.failed = 0

    def _due(self) -> list[tuple[dt.date, Webhook]]:
        today = dt.datetime.fromtimestamp(self.clock(), tz=dt.UTC).date()
        weeks = [
            r["week_start"]
            for r in self.store.query_rows(
                f"SELECT week_start FROM {self.store.table('org_weekly')} "
                "WHERE `final` = 1 AND week_start >= {since:Date} ORDER BY week_start",
                {"since": today - dt.timedelta(days=self.lookback_days + 7)},
            )
        ]
        if not weeks:
            return []
        settled = self._settled_until()
        weeks = [w for w in weeks if self._ms(w) + WEEK_MS + self.grace_ms <= settled]
        if not weeks:
            return []
        sent = {
            (r["week_start"], r["webhook"])
            for r in self.store.query_rows(
                f"SELECT week_start, webhook FROM {self.store.table('_digests')} WHERE week_start >= {{first:Date}}",
                {"first": weeks[0]},
            )
        }
        return [(w, h) for w in weeks for h in self.webhooks if (w, h.name) not in sent]

    @staticmethod
    def _ms(day: dt.date) -> int:
        return int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp() * 1000)

    def _settled_until(self) -> float:
        """Until when (epoch ms) every partition of the events topic is past: its
        stored watermark (no event before it can change a week closed by then), or,
        for a partition that holds no event, forever once it was consumed to its end
        and never before. A week is due once its end + grace is not after this:
        ``final`` rows alone do not say it, a partition not consumed yet (a backlog
        after downtime) has no rows. Read once per look, for every week."""
        ends = self.end_offsets()
        marks = {
            int(r["p"]): float(r["wm"])
            for r in self.store.query_rows(
                f"SELECT src_partition AS p, toUnixTimestamp(max(hour)) * 1000 AS wm "
                f"FROM {self.store.table('_hourly')} GROUP BY p"
            )
        }
        progress = {
            int(r["p"]): int(r["next"])
            for r in self.store.query_rows(
                f"SELECT src_partition AS p, max(next_offset) AS next FROM {self.store.table('_progress')} "
                "WHERE src_topic = {topic:String} GROUP BY p",
                {"topic": self.topic},
            )
        }
        # An hourly cell says an event at or after its hour start: a week may wait up to an hour more.
        past = [
            marks[p] if p in marks else (math.inf if progress.get(p, 0) >= end else -math.inf)
            for p, end in ends.items()
            if end > 0
        ]
        return min(past, default=math.inf)

    def run_once(self) -> list[tuple[dt.date, str, str]]:
        """Posts every due digest whose backoff has passed; returns (week, webhook, outcome) per attempt."""
        if not self.webhooks:
            return []
        now = self.clock()
        done: list[tuple[dt.date, str, str]] = []
        built: dict[dt.date, dict[str, Any]] = {}
        for week, hook in self._due():
            when, backoff = self._retry_at.get((week, hook.name), (0.0, BACKOFF_FIRST_S))
            if now < when:
                continue
            if week not in built:  # once per week, for all its webhooks
                built[week] = build(self.store, week, page_url=self.page_url)
            digest = built[week]
            key = digest_id(week, hook)
            body = json_body(digest, key) if hook.kind == "json" else slack_body(digest, key)
            headers = {"Content-Type": "application/json", "Idempotency-Key": key, "User-Agent": "tokenlord-digest"}
            try:
                status = self.post(hook.url, body, headers)
                problem = "" if 200 <= status < 300 else f"HTTP {status}"
            except OSError as exc:
                problem = str(getattr(exc, "reason", exc))[:200]
            if problem:
                self.failed += 1
                self._retry_at[(week, hook.name)] = (now + backoff, min(BACKOFF_MAX_S, backoff * 2))
                log.warning("digest of %s to %s failed (%s); next try in %.0fs", week, hook, problem, backoff)
                done.append((week, hook.name, f"failed: {problem}"))
                continue
            self.after_post()
            self.store.record_digest(week, hook.name, key, dt.datetime.fromtimestamp(now, tz=dt.UTC), status)
            self._retry_at.pop((week, hook.name), None)
            self.sent += 1
            log.info("digest of the week of %s posted to %s", week, hook)
            done.append((week, hook.name, "sent"))
        return done
