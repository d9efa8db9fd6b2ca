"""The worker's web endpoints on Faust's web server (``TOKENLORD_WEB_BIND``:``TOKENLORD_WEB_PORT``).

- ``/metrics`` — Prometheus text format (tokenlord.metrics, a registry per app);
- ``/healthz`` — 200 while the process serves requests;
- ``/readyz`` — 200 once partitions were assigned and the store answers, else
  503 with a JSON reason;
- ``/`` (also ``/leaderboard``) — the weekly leaderboard page (tokenlord.pages),
  ``?by=raw|effective&week=YYYY-MM-DD``;
- ``/user/<name>?week=...`` — why a user's tokens were discounted.

Store reads run on the pipeline's single thread (``run``) — the same one that
writes batches — because an embedded chDB client must not be used from two
threads at once; so a page waits at most for the batch in flight. A read that
cannot start within :data:`QUERY_TIMEOUT` (the store is failing and the
pipeline is retrying) answers 503 instead of hanging.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import faust
from faust.web import Request, Response, View
from tokenlord import __version__, pages
from tokenlord import metrics as m
from tokenlord.pipeline import Pipeline
from tokenlord.settings import Settings

log = logging.getLogger("tokenlord.web")

QUERY_TIMEOUT = 10.0  # seconds a page waits for the store
READY_TIMEOUT = 3.0  # seconds /readyz waits for the store's answer
_USERINFO = re.compile(r"://([^:/@\s]+):[^@\s]*@")

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

    async def read(fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.wait_for(run(fn, *args), QUERY_TIMEOUT)

    def html(view: View, status: int, body: str) -> Response:
        return view.html(body, status=status, headers={"Cache-Control": "no-store"})

    async def page(view: View, build: Callable[[], Awaitable[str]]) -> Response:
        """A page, or a page saying what went wrong (never a traceback)."""
        try:
            return html(view, 200, await build())
        except pages.BadRequest as exc:
            return html(view, 400, pages.error_page(400, str(exc)))
        except TimeoutError:
            return html(view, 503, pages.error_page(503, "the store is busy or unreachable; try again shortly"))
        except Exception as exc:
            log.warning("page %s failed: %s", view.view_path, _masked(str(exc)))
            return html(view, 500, pages.error_page(500, f"reading the store failed: {_masked(str(exc))[:300]}"))

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

    def board_reads(q: pages.BoardQuery) -> tuple[dt.date | None, list[dt.date], list[dict[str, Any]]]:
        weeks = store.weeks()
        week = q.week or (weeks[-1] if weeks else None)
        rows = store.leaderboard(week, pages.TOP, q.by) if week is not None else []
        return week, weeks, rows

    async def board(self: View, request: Request) -> Response:
        async def build() -> str:
            q = pages.board_query(request.query)
            started = time.perf_counter()
            week, weeks, rows = await read(board_reads, q)
            read_s = time.perf_counter() - started
            out = pages.board_page(rows, week=week, weeks=weeks, by=q.by, generated=dt.datetime.now(tz=dt.UTC))
            log.debug("board %s by %s: %d rows, read %.1f ms", week, q.by, len(rows), 1000 * read_s)
            return out

        return await page(self, build)

    app.page("/", name="tokenlord-board")(board)
    app.page("/leaderboard", name="tokenlord-leaderboard")(board)

    def explain_reads(user: str, week: dt.date | None) -> tuple[dict[str, Any], list[dt.date]]:
        weeks = store.weeks()
        chosen = week or (weeks[-1] if weeks else pages.user_query({"week": "current"}))
        assert chosen is not None
        return store.explain(user, chosen), weeks

    @app.page("/user/{name:.+}", name="tokenlord-user")
    async def user_view(self: View, request: Request, name: str) -> Response:
        async def build() -> str:
            week = pages.user_query(request.query)
            report, weeks = await read(explain_reads, name, week)
            return pages.explain_page(report, weeks=weeks)

        return await page(self, build)
