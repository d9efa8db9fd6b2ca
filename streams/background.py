"""Periodic work beside the batches (the weekly digest, the budget gauges): a Faust
timer that runs a blocking job on a thread of its own, within a timeout, and logs
a failure instead of raising (the next tick tries again). Never on the store
thread: a slow store read or webhook does not delay a batch."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import faust

T = TypeVar("T")


def every(
    app: faust.App,
    seconds: float,
    name: str,
    job: Callable[[], T],
    done: Callable[[T], None],
    *,
    timeout: float,
    log: logging.Logger,
    when: Callable[[], bool] = lambda: True,
) -> None:
    """Every ``seconds``, if ``when()``: ``done(job())``, the job on the ``name`` thread."""
    thread = ThreadPoolExecutor(1, thread_name_prefix="tokenlord-" + name.replace(" ", "-"))

    @app.timer(interval=seconds, name="tokenlord-" + name.replace(" ", "-"))  # type: ignore[untyped-decorator]
    async def tick() -> None:
        if not when():
            return
        try:
            done(await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(thread, job), timeout))
        except Exception as exc:  # the store or a webhook: try again at the next tick
            log.warning("%s: %s", name, str(exc)[:300])
