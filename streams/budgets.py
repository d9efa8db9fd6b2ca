"""Budget metrics in the worker: a Faust timer reads what each budget of
``TOKENLORD_BUDGETS`` used this week (tokenlord.budgets) on its own thread and
read-only connection, for ``/metrics`` to export; every worker does it (alert
on ``max by (kind, name)``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import faust
from tokenlord.budgets import BudgetUse, usage
from tokenlord.pipeline import Pipeline
from tokenlord.settings import Settings

log = logging.getLogger("tokenlord.budgets")


def register(app: faust.App, settings: Settings, pipeline: Pipeline) -> Callable[[], Sequence[BudgetUse]]:
    """Adds the refresh timer (when budgets are set); returns what /metrics reads."""
    budgets = settings.budget_list()
    latest: dict[str, Sequence[BudgetUse]] = {"uses": ()}
    if not budgets:
        return lambda: latest["uses"]
    thread = ThreadPoolExecutor(1, thread_name_prefix="tokenlord-budgets")
    state: dict[str, Any] = {}

    def refresh() -> Sequence[BudgetUse]:
        if "store" not in state:
            state["store"] = pipeline.store.reader()
        today = dt.datetime.now(tz=dt.UTC).date()
        return usage(state["store"], budgets, today - dt.timedelta(days=today.weekday()))

    @app.timer(interval=settings.budget_interval / 1000)  # type: ignore[untyped-decorator]
    async def budget_timer() -> None:
        try:
            latest["uses"] = await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(thread, refresh), 60)
        except Exception as exc:  # the store: the last figures stay until the next tick
            log.warning("budget metrics: %s", str(exc)[:300])

    return lambda: latest["uses"]
