"""The worker's web endpoints on Faust's web server (``TOKENLORD_WEB_BIND``:``TOKENLORD_WEB_PORT``).

- ``/metrics`` — Prometheus text format (tokenlord.metrics, a registry per app);
- ``/healthz`` — 200 while the process serves requests;
- ``/readyz`` — 200 once partitions were assigned and the store answers, else
  503 with a JSON reason;
- ``/`` (also ``/leaderboard``) — the weekly leaderboard page (tokenlord.pages),
  ``?by=raw|effective|value&week=YYYY-MM-DD``;
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
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import faust
from faust.web import Request, Response, View
from tokenlord import __version__
from tokenlord import metrics as m
from tokenlord.budgets import BudgetUse
from tokenlord.page_cache import Limiter, PageCache
from tokenlord.page_server import QUERY_TIMEOUT, Page, PageServer, PageStore, Reads
from tokenlord.page_server import masked as _masked
from tokenlord.pipeline import Pipeline
from tokenlord.settings import Settings
from tokenlord.web_access import Access, Ask

log = logging.getLogger("tokenlord.web")

READY_TIMEOUT = 3.0  # seconds /readyz waits for the store's answer

Run = Callable[..., Awaitable[Any]]


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
    budget_uses: Callable[[], Sequence[BudgetUse]] = lambda: (),
) -> None:
    """Adds the endpoints above to ``app``. ``run(fn, *args)`` runs ``fn`` on the
    pipeline thread; ``done_up_to``: (topic, partition) → next offset to process."""
    lag = Lag(app, (settings.events_topic, settings.outcomes_topic, *filter(None, [settings.otlp_topic])), done_up_to)
    registry = m.make_registry(
        m.WorkerCollector(pipeline.stats.snapshot, lag, version=__version__, budgets=budget_uses)
    )
    state = {"assigned": False}
    store = pipeline.store

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(sender: Any, assigned: Any, **_: Any) -> None:
        state["assigned"] = True

    # The pages: access, cache, bound, and reads on their own thread and connection.
    try:
        page_store: PageStore = store.reader()
        reads: Run = Reads(page_store)
    except Exception as exc:  # a store not made by Store.connect (tests): share the store thread
        log.warning("pages read on the store thread (no read connection: %s)", _masked(str(exc)))
        page_store = store

        async def reads(fn: Callable[..., Any], *args: Any) -> Any:
            return await asyncio.wait_for(run(fn, *args), QUERY_TIMEOUT)

    server = PageServer(
        Access.from_settings(settings),
        reads,
        page_store,
        cache=PageCache(settings.web_cache / 1000),
        limiter=Limiter(settings.web_max_requests),
        budgets=settings.budget_list(),
        budget_warn_pct=settings.budget_warn_pct,
    )

    async def serve(view: View, request: Request, page: Page, user: str | None = None) -> Response:
        query: dict[str, str] = {}
        for k, v in request.query.items():
            query.setdefault(k, v)
        # Faust's Request is aiohttp's here (cookies; remote: the peer address)
        ask = Ask(request.headers, query, dict(getattr(request, "cookies", {})), getattr(request, "remote", None))
        answer = await server.serve(page, request.url.raw_path, ask, user)
        return view.html(answer.body, status=answer.status, headers={"Cache-Control": "no-store", **answer.headers})

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

    async def board(self: View, request: Request) -> Response:
        return await serve(self, request, "board")

    app.page("/", name="tokenlord-board")(board)
    app.page("/leaderboard", name="tokenlord-leaderboard")(board)

    @app.page("/user/{name:.+}", name="tokenlord-user")
    async def user_view(self: View, request: Request, name: str) -> Response:
        return await serve(self, request, "user", name)

    @app.page("/teams", name="tokenlord-teams")
    async def teams_view(self: View, request: Request) -> Response:
        return await serve(self, request, "teams")

    @app.page("/team", name="tokenlord-team")
    async def team_view(self: View, request: Request) -> Response:
        return await serve(self, request, "team")

    @app.page("/org", name="tokenlord-org")
    async def org_view(self: View, request: Request) -> Response:
        return await serve(self, request, "org")
