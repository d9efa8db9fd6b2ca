"""Serving the leaderboard pages, apart from the web framework: who may see what
(:mod:`tokenlord.web_access`), the page cache and the bound on pages in flight
(:mod:`tokenlord.page_cache`), and the store reads on their own thread.

``streams/web.py`` turns a Faust request into an :class:`~tokenlord.web_access.Ask`
and :meth:`PageServer.serve`'s :class:`Answer` into a response; the tests drive
:class:`PageServer` directly.

The reads run on :class:`Reads`: one thread and one read-only connection
(:meth:`Store.reader`) of their own, never the pipeline's store thread, so a
page neither waits for the batch being written nor delays the next one. Page
requests past ``TOKENLORD_WEB_MAX_REQUESTS`` are answered 503 at once, so the
read thread's queue is bounded too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol
from urllib.parse import urlencode

from tokenlord import pages, team_pages
from tokenlord.budgets import Budget
from tokenlord.budgets import state as budget_state
from tokenlord.budgets import usage as budget_usage
from tokenlord.page_cache import Limiter, PageCache, cache_key
from tokenlord.report import Ranking
from tokenlord.store import boards
from tokenlord.web_access import COOKIE, Access, Ask, Denied, Viewer

__all__ = ["QUERY_TIMEOUT", "RETRY_AFTER", "Answer", "PageServer", "Reads"]

log = logging.getLogger("tokenlord.web")

QUERY_TIMEOUT: Final = 10.0  # seconds a page waits for the store
RETRY_AFTER: Final = "1"  # seconds, on a 503 for too many page requests at once
_USERINFO = re.compile(r"://([^:/@\s]+):[^@\s]*@")
_COOKIE_SAFE = re.compile(r"^[A-Za-z0-9._~+/=-]{1,512}$")
Page = Literal["board", "user", "teams", "team", "org"]
# Pages of several users' usage summed up (a small team's total gives its members away): admins only.
ADMIN_PAGES: Final = ("teams", "team", "org")


def masked(text: str) -> str:
    """Error text with any ``scheme://user:password@`` password hidden."""
    return _USERINFO.sub(r"://\1:***@", text)


class PageStore(Protocol):
    """The reads of ``tokenlord.store.Store`` the pages use."""

    def weeks(self) -> list[dt.date]: ...
    def leaderboard(
        self, week: dt.date | None = None, top: int = 100, by: Ranking = "raw",
        user: str | None = None,
    ) -> list[dict[str, Any]]: ...  # fmt: skip
    def explain(self, user: str, week: dt.date) -> dict[str, Any]: ...
    def table(self, name: str) -> str: ...
    def query_rows(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]: ...


class Reads:
    """Runs the pages' store reads on their own single thread, each within ``timeout``."""

    def __init__(self, store: PageStore, *, timeout: float = QUERY_TIMEOUT) -> None:
        self.store = store
        self.timeout = timeout
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="tokenlord-pages")

    async def __call__(self, fn: Callable[..., Any], *args: Any) -> Any:
        future = asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)
        return await asyncio.wait_for(future, self.timeout)

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    headers: Mapping[str, str] = field(default_factory=dict)


class Forbidden(Exception):
    """Another user's page, asked for by a non-admin (403)."""


class PageServer:
    def __init__(
        self,
        access: Access,
        reads: Callable[..., Awaitable[Any]],
        store: PageStore,
        *,
        cache: PageCache,
        limiter: Limiter,
        today: Callable[[], dt.date | None] = lambda: None,
        budgets: Sequence[Budget] = (),
        budget_warn_pct: int = 80,
    ) -> None:
        self.access = access
        self.reads = reads
        self.store = store
        self.cache = cache
        self.limiter = limiter
        self._today = today
        self.budgets = tuple(budgets)
        self.budget_warn_pct = budget_warn_pct
        # Password hashes (scrypt: ~16 MiB, tens of ms each) run off the event loop, which also
        # heartbeats the consumer group, and one at a time: a flood of wrong passwords costs one core.
        self._hasher = ThreadPoolExecutor(1, thread_name_prefix="tokenlord-auth") if access.mode == "basic" else None

    async def serve(self, page: Page, path: str, ask: Ask, user: str | None = None) -> Answer:
        """The page at ``path`` (``user``: the name of a ``/user/...`` page) for the asker,
        or a page saying why not (never a traceback, never data the asker may not see)."""
        if not self.limiter.try_enter():
            return Answer(
                503,
                pages.error_page(503, "too many page requests at once; try again in a moment"),
                {"Retry-After": RETRY_AFTER},
            )
        try:
            if self._hasher is None:
                viewer = self.access.decide(ask)
            else:
                viewer = await asyncio.get_running_loop().run_in_executor(self._hasher, self.access.decide, ask)
            if isinstance(viewer, Denied):
                return Answer(viewer.status, pages.error_page(viewer.status, viewer.message), viewer.headers)
            token = ask.query.get("token")
            if self.access.mode == "token" and token is not None:
                # Keep the token in a cookie (the page's links carry none) and out of the URL and history.
                rest = {k: v for k, v in ask.query.items() if k != "token"}
                headers = {"Location": path + ("?" + urlencode(rest) if rest else "")}
                # Only the right token goes into the cookie: a link with a wrong one must not
                # replace the good cookie of whoever follows it.
                if _COOKIE_SAFE.match(token) and self.access.is_token(token):
                    headers["Set-Cookie"] = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
                return Answer(303, "", headers)
            if page == "user" and not viewer.sees(str(user)):
                raise Forbidden(f"you may see your own usage only ({pages.user_path(str(viewer.user))})")
            if page in ADMIN_PAGES and not viewer.admin:
                raise Forbidden(
                    "the team and organisation pages are for admins (TOKENLORD_WEB_ADMINS); "
                    f"you may see your own usage ({pages.user_path(str(viewer.user))})"
                )
            key = cache_key(path, ask.query, viewer.scope)
            body = self.cache.get(key)
            if body is None:
                body = await self._render(page, viewer, ask.query, user)
                self.cache.put(key, body)
            return Answer(200, body)
        except pages.BadRequest as exc:
            return Answer(400, pages.error_page(400, str(exc)))
        except Forbidden as exc:
            return Answer(403, pages.error_page(403, str(exc)))
        except TimeoutError:
            return Answer(503, pages.error_page(503, "the store is busy or unreachable; try again shortly"))
        except Exception as exc:
            log.warning("page %s failed: %s", path, masked(str(exc)))
            return Answer(500, pages.error_page(500, f"reading the store failed: {masked(str(exc))[:300]}"))
        finally:
            self.limiter.leave()

    async def _render(self, page: Page, viewer: Viewer, query: Mapping[str, str], user: str | None) -> str:
        if page == "board":
            return await self._board(viewer, query)
        if page == "user":
            return await self._user(str(user), query)
        if page == "teams":
            return await self._teams(query)
        if page == "team":
            return await self._team(query)
        return await self._org(query)

    def _badges(self, kind: str, week: dt.date | None, shown: set[str]) -> dict[str, str]:
        """Budget marks (HTML) of the ``shown`` users or teams that are near or over."""
        mine = [b for b in self.budgets if b.kind == kind and b.name in shown]
        if week is None or not mine:
            return {}
        return {
            u.budget.name: pages.budget_badge(u.ratio, str(u.budget), budget_state(u.ratio, self.budget_warn_pct))
            for u in budget_usage(self.store, mine, week)
        }

    def _board_reads(
        self, q: pages.BoardQuery, only: str | None
    ) -> tuple[dt.date | None, list[dt.date], list[dict[str, Any]], dict[str, str]]:
        weeks = self.store.weeks()
        week = q.week or (weeks[-1] if weeks else None)
        rows = self.store.leaderboard(week, pages.TOP, q.by, user=only) if week is not None else []
        return week, weeks, rows, self._badges("user", week, {str(r["user"]) for r in rows})

    async def _board(self, viewer: Viewer, query: Mapping[str, str]) -> str:
        q = pages.board_query(query, self._today())
        only = None if viewer.admin else viewer.user
        week, weeks, rows, badges = await self.reads(self._board_reads, q, only)
        return pages.board_page(
            rows, week=week, weeks=weeks, by=q.by, generated=dt.datetime.now(tz=dt.UTC), only=only, budgets=badges
        )

    def _chosen(self, week: dt.date | None) -> tuple[dt.date, list[dt.date]]:
        """``week``, else the latest with data, else the current one; and the weeks with data."""
        weeks = self.store.weeks()
        chosen = week or (weeks[-1] if weeks else pages.user_query({"week": "current"}, self._today()))
        assert chosen is not None
        return chosen, weeks

    def _explain_reads(
        self, user: str, week: dt.date | None
    ) -> tuple[dict[str, Any], list[dt.date], list[dict[str, Any]]]:
        chosen, weeks = self._chosen(week)
        return self.store.explain(user, chosen), weeks, boards.trend(self.store, user=user, until=chosen)

    async def _user(self, user: str, query: Mapping[str, str]) -> str:
        week = pages.user_query(query, self._today())
        report, weeks, trend = await self.reads(self._explain_reads, user, week)
        return pages.explain_page(report, weeks=weeks, charts=team_pages.trend_charts(trend, "user"))

    def _teams_reads(
        self, q: pages.BoardQuery
    ) -> tuple[dt.date | None, list[dt.date], list[dict[str, Any]], dict[str, str]]:
        weeks = self.store.weeks()
        week = q.week or (weeks[-1] if weeks else None)
        rows = boards.team_board(self.store, week, pages.TOP, q.by) if week is not None else []
        return week, weeks, rows, self._badges("team", week, {str(r["team"]) for r in rows})

    async def _teams(self, query: Mapping[str, str]) -> str:
        q = pages.board_query(query, self._today())
        week, weeks, rows, badges = await self.reads(self._teams_reads, q)
        return team_pages.teams_page(
            rows, week=week, weeks=weeks, by=q.by, generated=dt.datetime.now(tz=dt.UTC), budgets=badges
        )

    def _team_reads(self, team: str, week: dt.date | None) -> dict[str, Any]:
        chosen, weeks = self._chosen(week)
        row = boards.team_board(self.store, chosen, 1, team=team)
        return {
            "week": chosen,
            "weeks": weeks,
            "row": row[0] if row else None,
            "members": boards.members(self.store, chosen, team),
            "waste": boards.waste_by_reason(self.store, chosen, team=team),
            "trend": boards.trend(self.store, team=team, until=chosen),
        }

    async def _team(self, query: Mapping[str, str]) -> str:
        team, week = team_pages.team_query(query, self._today())
        r = await self.reads(self._team_reads, team, week)
        return team_pages.team_page(
            team, r["week"], row=r["row"], members=r["members"], waste=r["waste"], trend=r["trend"],
            weeks=r["weeks"], generated=dt.datetime.now(tz=dt.UTC),
        )  # fmt: skip

    def _org_reads(self, week: dt.date | None) -> tuple[dict[str, Any], list[dt.date]]:
        return boards.org_summary(self.store, week), self.store.weeks()

    async def _org(self, query: Mapping[str, str]) -> str:
        summary, weeks = await self.reads(self._org_reads, pages.user_query(query, self._today()))
        return team_pages.org_page(summary, weeks=weeks, generated=dt.datetime.now(tz=dt.UTC))
