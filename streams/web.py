"""The worker's web endpoints on Faust's web server (``TOKENLORD_WEB_BIND``:``TOKENLORD_WEB_PORT``).

- ``/metrics`` — Prometheus text format (tokenlord.metrics, a registry per app);
- ``/healthz`` — 200 while the process serves requests;
- ``/readyz`` — 200 once partitions were assigned and the store answers, else
  503 with a JSON reason;
- ``/`` (also ``/leaderboard``) — the weekly leaderboard page (tokenlord.pages),
  ``?by=raw|effective&week=YYYY-MM-DD``;
- ``/user/<name>?week=...`` — why a user's tokens were discounted.

Access to the pages (not to ``/metrics`` and health) is decided by
:class:`tokenlord.web_access.Access` (``TOKENLORD_WEB_AUTH``): a denied request
gets 401/403 and no data; a non-admin sees their own row and page only.

The pages' store reads run on their own thread and their own (read-only)
connection (:meth:`Store.reader`), never on the pipeline's store thread: a page
neither waits for the batch being written nor delays the next one. Rendered
pages are reused for ``TOKENLORD_WEB_CACHE`` per (page, query, viewer scope),
and at most ``TOKENLORD_WEB_MAX_REQUESTS`` pages are served at once (more get
503 with Retry-After). A read that does not finish within
:data:`QUERY_TIMEOUT` answers 503 instead of hanging.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

import faust
from faust.web import Request, Response, View
from tokenlord import __version__, pages
from tokenlord import metrics as m
from tokenlord.page_cache import Limiter, PageCache, cache_key
from tokenlord.pipeline import Pipeline
from tokenlord.settings import Settings
from tokenlord.web_access import COOKIE, Access, Ask, Denied, Viewer

log = logging.getLogger("tokenlord.web")

QUERY_TIMEOUT = 10.0  # seconds a page waits for the store
READY_TIMEOUT = 3.0  # seconds /readyz waits for the store's answer
RETRY_AFTER = "1"  # seconds, on a 503 for too many page requests at once
_USERINFO = re.compile(r"://([^:/@\s]+):[^@\s]*@")
_COOKIE_SAFE = re.compile(r"^[A-Za-z0-9._~+/=-]{1,512}$")

Run = Callable[..., Awaitable[Any]]


def _masked(text: str) -> str:
    """Error text with any ``scheme://user:password@`` password hidden."""
    return _USERINFO.sub(r"://\1:***@", text)


class Lag:
    """Consumer lag per assigned partition: the partition's high watermark minus
    the next offset to process (what this worker wrote and acked, or what the
    group committed, whichever is further)."""

    def __init__(self, app: faust.App, topics: Iterable[str], done_up_to: Mapping[tuple[str, int], int]) -> None:
        self.app = app
        self.topics = frozenset(topics)  # Faust's own (e.g. its assignor's) are not ours to report
        self.done_up_to = done_up_to

    def __call__(self) -> Iterable[m.PartitionLag] | None:
        try:
            consumer = self.app.consumer
            assignment = consumer.assignment()
        except Exception:  # consumer not started (yet) or stopping
            return None
        committed = getattr(consumer, "_committed_offset", {})
        out = []
        for tp in assignment:
            if tp.topic not in self.topics:
                continue
            try:
                high = consumer.highwater(tp)
            except Exception:
                high = None
            if high is None:  # nothing fetched yet: unknown, not zero
                continue
            position = max(self.done_up_to.get((tp.topic, tp.partition), 0), committed.get(tp) or 0)
            out.append(m.PartitionLag(tp.topic, tp.partition, max(0, int(high) - position), position))
        return out


def register(
    app: faust.App,
    settings: Settings,
    pipeline: Pipeline,
    run: Run,
    done_up_to: Mapping[tuple[str, int], int],
) -> None:
    """Adds the endpoints above to ``app``. ``run(fn, *args)`` runs ``fn`` on the
    pipeline thread; ``done_up_to``: (topic, partition) → next offset to process."""
    lag = Lag(app, (settings.events_topic, settings.outcomes_topic, *filter(None, [settings.otlp_topic])), done_up_to)
    registry = m.make_registry(m.WorkerCollector(pipeline.stats.snapshot, lag, version=__version__))
    state = {"assigned": False}
    store = pipeline.store

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(sender: Any, assigned: Any, **_: Any) -> None:
        state["assigned"] = True

    access = Access.from_settings(settings)
    cache = PageCache(settings.web_cache / 1000)
    limiter = Limiter(settings.web_max_requests)
    # The pages' reads: their own thread and connection, beside the store thread's writes.
    read_thread: ThreadPoolExecutor | None = ThreadPoolExecutor(1, thread_name_prefix="tokenlord-pages")
    try:
        reader = store.reader()
    except Exception as exc:  # a store not made by Store.connect (tests): share the store thread
        log.warning("pages read on the store thread (no read connection: %s)", _masked(str(exc)))
        reader, read_thread = store, None

    async def read(fn: Callable[..., Any], *args: Any) -> Any:
        if read_thread is None:
            return await asyncio.wait_for(run(fn, *args), QUERY_TIMEOUT)
        future = asyncio.get_running_loop().run_in_executor(read_thread, fn, *args)
        return await asyncio.wait_for(future, QUERY_TIMEOUT)

    def html(view: View, status: int, body: str, headers: Mapping[str, str] | None = None) -> Response:
        return view.html(body, status=status, headers={"Cache-Control": "no-store", **(headers or {})})

    def first_values(request: Request) -> dict[str, str]:
        out: dict[str, str] = {}
        for k, v in request.query.items():
            out.setdefault(k, v)
        return out

    async def page(view: View, request: Request, build: Callable[[Viewer, dict[str, str]], Awaitable[str]]) -> Response:
        """A page the viewer may see (cached), or a page saying what went wrong (never a traceback)."""
        if not limiter.try_enter():
            return html(
                view, 503, pages.error_page(503, "too many page requests at once; try again in a moment"),
                {"Retry-After": RETRY_AFTER},
            )  # fmt: skip
        try:
            query = first_values(request)
            # Faust's Request is aiohttp's here (remote: the peer address, path: without the query)
            ask = Ask(request.headers, query, dict(getattr(request, "cookies", {})), getattr(request, "remote", None))
            viewer = access.decide(ask)
            if isinstance(viewer, Denied):
                return html(view, viewer.status, pages.error_page(viewer.status, viewer.message), viewer.headers)
            token = query.get("token")
            if access.mode == "token" and token is not None:
                # Keep the token in a cookie (the page's links carry none) and out of the URL.
                rest = {k: v for k, v in query.items() if k != "token"}
                headers = {"Location": request.url.raw_path + ("?" + urlencode(rest) if rest else "")}
                if _COOKIE_SAFE.match(token):
                    headers["Set-Cookie"] = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
                return html(view, 303, "", headers)
            key = cache_key(request.url.raw_path, query, viewer.scope)
            body = cache.get(key)
            if body is None:
                body = await build(viewer, query)
                cache.put(key, body)
            return html(view, 200, body)
        except pages.BadRequest as exc:
            return html(view, 400, pages.error_page(400, str(exc)))
        except Forbidden as exc:
            return html(view, 403, pages.error_page(403, str(exc)))
        except TimeoutError:
            return html(view, 503, pages.error_page(503, "the store is busy or unreachable; try again shortly"))
        except Exception as exc:
            log.warning("page %s failed: %s", view.view_path, _masked(str(exc)))
            return html(view, 500, pages.error_page(500, f"reading the store failed: {_masked(str(exc))[:300]}"))
        finally:
            limiter.leave()

    @app.page("/metrics", name="tokenlord-metrics")
    async def metrics_view(self: View, request: Request) -> Response:
        return self.bytes(m.render(registry), headers={"Content-Type": m.CONTENT_TYPE})

    @app.page("/healthz", name="tokenlord-healthz")
    async def healthz(self: View, request: Request) -> Response:
        return self.json({"status": "ok"})

    @app.page("/readyz", name="tokenlord-readyz")
    async def readyz(self: View, request: Request) -> Response:
        reasons = []
        if not state["assigned"]:
            reasons.append("no partition assignment yet (joining the consumer group)")
        elif getattr(app, "rebalancing", False):
            reasons.append("the consumer group is rebalancing")
        failing = pipeline.stats.failing
        if failing:
            reasons.append(f"store: {_masked(failing)}")
        else:
            try:
                await asyncio.wait_for(run(store.query_rows, "SELECT 1 AS ok"), READY_TIMEOUT)
            except TimeoutError:
                reasons.append(f"store: no answer within {READY_TIMEOUT:g}s")
            except Exception as exc:
                reasons.append(f"store: {_masked(str(exc))[:300]}")
        if reasons:
            return self.json({"status": "not ready", "reasons": reasons}, status=503)
        return self.json({"status": "ready"})

    def board_reads(
        q: pages.BoardQuery, only: str | None
    ) -> tuple[dt.date | None, list[dt.date], list[dict[str, Any]]]:
        weeks = reader.weeks()
        week = q.week or (weeks[-1] if weeks else None)
        rows = reader.leaderboard(week, pages.TOP, q.by, user=only) if week is not None else []
        return week, weeks, rows

    async def board(self: View, request: Request) -> Response:
        async def build(viewer: Viewer, query: dict[str, str]) -> str:
            q = pages.board_query(query)
            only = None if viewer.admin else viewer.user
            started = time.perf_counter()
            week, weeks, rows = await read(board_reads, q, only)
            read_s = time.perf_counter() - started
            out = pages.board_page(
                rows, week=week, weeks=weeks, by=q.by, generated=dt.datetime.now(tz=dt.UTC), only=only
            )
            log.debug("board %s by %s: %d rows, read %.1f ms", week, q.by, len(rows), 1000 * read_s)
            return out

        return await page(self, request, build)

    app.page("/", name="tokenlord-board")(board)
    app.page("/leaderboard", name="tokenlord-leaderboard")(board)

    def explain_reads(user: str, week: dt.date | None) -> tuple[dict[str, Any], list[dt.date]]:
        weeks = reader.weeks()
        chosen = week or (weeks[-1] if weeks else pages.user_query({"week": "current"}))
        assert chosen is not None
        return reader.explain(user, chosen), weeks

    @app.page("/user/{name:.+}", name="tokenlord-user")
    async def user_view(self: View, request: Request, name: str) -> Response:
        async def build(viewer: Viewer, query: dict[str, str]) -> str:
            if not viewer.sees(name):
                raise Forbidden(f"you may see your own usage only ({pages.user_path(str(viewer.user))})")
            week = pages.user_query(query)
            report, weeks = await read(explain_reads, name, week)
            return pages.explain_page(report, weeks=weeks)

        return await page(self, request, build)


class Forbidden(Exception):
    """A page of another user's usage, asked by a non-admin (403)."""
