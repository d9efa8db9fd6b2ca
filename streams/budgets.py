"""Budget metrics in the worker: a Faust timer reads what each budget of
``TOKENLORD_BUDGETS`` used this week (tokenlord.budgets) on its own thread and
read-only connection, for ``/metrics`` to export; every worker does it (alert
on ``max by (kind, name)``)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from typing import Any

import faust
from tokenlord.budgets import BudgetUse, usage
from tokenlord.pipeline import Pipeline
from tokenlord.settings import Settings
from tokenlord.time_utils import week_start

from streams.background import every

log = logging.getLogger("tokenlord.budgets")


def register(app: faust.App, settings: Settings, pipeline: Pipeline) -> Callable[[], Sequence[BudgetUse]]:
    """Adds the refresh timer (when budgets are set); returns what /metrics reads."""
    budgets = settings.budget_list()
    latest: dict[str, Sequence[BudgetUse]] = {"uses": ()}
    if not budgets:
        return lambda: latest["uses"]
    state: dict[str, Any] = {}

    def refresh() -> Sequence[BudgetUse]:
        if "store" not in state:
            state["store"] = pipeline.store.reader()
        return usage(state["store"], budgets, week_start(dt.datetime.now(tz=dt.UTC).date()))

    def keep(uses: Sequence[BudgetUse]) -> None:  # the last figures stay until a tick succeeds
        latest["uses"] = uses

    every(app, settings.budget_interval / 1000, "budget metrics", refresh, keep, timeout=60, log=log)
    return lambda: latest["uses"]
