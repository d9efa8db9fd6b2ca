"""The weekly digest in the worker (tokenlord.digest does the work): a Faust timer
that, on the worker holding partition 0 of the events topic (the consumer group
gives it to exactly one member), posts the digests of weeks that became final.

The posts and their store reads and records run on their own thread and their
own ClickHouse connection: a slow or failing webhook never delays a batch.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from faust.types import TP
from tokenlord.digest import Digester
from tokenlord.kafka.admin import end_offsets
from tokenlord.kafka.security import client_config
from tokenlord.pipeline import Pipeline
from tokenlord.settings import Settings
from tokenlord.time_utils import DAY_MS

from streams.background import every

log = logging.getLogger("tokenlord.digest")


def holds_partition_0(app: faust.App, topic: str) -> bool:
    try:
        return TP(topic, 0) in app.consumer.assignment()
    except Exception:  # consumer not started yet, or stopping
        return False


def register(app: faust.App, settings: Settings, pipeline: Pipeline) -> None:
    """Adds the digest timer to ``app`` when TOKENLORD_DIGEST_WEBHOOKS names any webhook."""
    hooks = settings.digest_hooks()
    if not hooks:
        return
    kafka = client_config(settings)
    state: dict[str, Any] = {}

    def run_once() -> list[Any]:
        digester = state.get("digester")
        if digester is None:
            digester = state["digester"] = Digester(
                pipeline.store.sibling(),
                hooks,
                topic=settings.events_topic,
                end_offsets=lambda: end_offsets(kafka, settings.events_topic, timeout=20),
                grace_ms=settings.grace,
                lookback_days=settings.digest_lookback // DAY_MS,
                page_url=settings.web_public_url,
                after_post=lambda: pipeline.faults.reached("digest"),
            )
        return digester.run_once()

    every(
        app,
        settings.digest_interval / 1000,
        "weekly digest",
        run_once,
        lambda done: pipeline.stats.digest_checked([outcome for _, _, outcome in done]),
        timeout=120,
        log=log,
        when=lambda: holds_partition_0(app, settings.events_topic),
    )
    log.info("weekly digest to %s", ", ".join(str(h) for h in hooks))
