"""Prometheus metrics of a worker, read from :class:`tokenlord.stats.Stats` at scrape time.

Nothing here counts by itself: the pipeline keeps its counters in ``Stats``
(one place, also logged at ``--stop-at-end``), and :class:`WorkerCollector`
turns a consistent snapshot of them into metric families when ``/metrics`` is
scraped. Each worker has its own :class:`~prometheus_client.CollectorRegistry`
(never the global one), so several apps in one process (tests) do not clash.

docs/operations.md lists the metrics; a unit test checks that list against
:data:`METRICS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from tokenlord.budgets import BudgetUse
from tokenlord.stats import Distribution, Stats

__all__ = ["CONTENT_TYPE", "METRICS", "PartitionLag", "WorkerCollector", "make_registry", "render"]

# The classic text format (what generate_latest writes), understood by every Prometheus.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# name (without the _total suffix Prometheus adds to counters) → (type, help)
METRICS: dict[str, tuple[str, str]] = {
    "tokenlord_messages": ("counter", "Kafka messages of the events topic processed (written and acked)."),
    "tokenlord_events_accepted": ("counter", "Usage events accepted and written to the store."),
    "tokenlord_events_duplicate": ("counter", "Usage events dropped as duplicates (event_id seen within the horizon)."),
    "tokenlord_events_rejected": ("counter", "Rejected usage input by reason code (also in the DLQ and `rejected`)."),
    "tokenlord_outcome_messages": ("counter", "Kafka messages of the outcomes topic processed."),
    "tokenlord_outcomes": ("counter", "Outcome events accepted and written to the store."),
    "tokenlord_outcomes_rejected": ("counter", "Rejected outcome input by reason code."),
    "tokenlord_otlp_messages": ("counter", "Records of the OTLP traces topic processed (TOKENLORD_OTLP_TOPIC)."),
    "tokenlord_otlp_spans_skipped": (
        "counter",
        "Spans of OTLP records that are not GenAI spans (skipped: neither events nor rejections).",
    ),
    "tokenlord_batches": ("counter", "Batches of usage messages handled (one core call and store write each)."),
    "tokenlord_store_retries": ("counter", "Failed store or DLQ writes that were retried."),
    "tokenlord_poison_messages": (
        "counter",
        "Messages the core failed on, dead-lettered whole (reason poison): a bug to report; alert on it.",
    ),
    "tokenlord_dead_letters_truncated": ("counter", "Dead letters whose key or value was cut to the DLQ limits."),
    "tokenlord_dead_letters_parked": (
        "counter",
        "Dead letters the broker refused as too large, sent again cut (raise the DLQ topic's max.message.bytes).",
    ),
    "tokenlord_restores": ("counter", "Partition states rebuilt from the store (at assignment)."),
    "tokenlord_messages_replayed": ("counter", "Messages skipped as already applied (below a restored progress)."),
    "tokenlord_digest_checks": (
        "counter",
        "Looks for weekly digests due (only on the worker holding partition 0 of the events topic).",
    ),
    "tokenlord_digests_sent": ("counter", "Weekly digests posted to a webhook and recorded."),
    "tokenlord_digest_failures": ("counter", "Weekly digest posts that failed (retried with backoff)."),
    "tokenlord_batch_messages": ("histogram", "Messages per usage batch."),
    "tokenlord_flush_seconds": ("histogram", "Seconds to handle a usage batch: core call, DLQ and store writes."),
    "tokenlord_last_flush_timestamp_seconds": ("gauge", "When the last usage batch was durably written (epoch s)."),
    "tokenlord_store_failing": ("gauge", "1 while a store or DLQ write is failing and being retried, else 0."),
    "tokenlord_window_state": ("gauge", "Open window and dedupe state held in memory, by kind (Core.state_size)."),
    "tokenlord_consumer_lag": ("gauge", "Messages behind the end of the partition (high watermark - position)."),
    "tokenlord_written_offset": (
        "gauge",
        "Position per assigned partition: every message below this offset is durably written.",
    ),
    "tokenlord_partitions_assigned": ("gauge", "Partitions of each topic assigned to this worker."),
    "tokenlord_budget_limit": ("gauge", "A weekly budget of TOKENLORD_BUDGETS (tokens or USD, see unit)."),
    "tokenlord_budget_used": ("gauge", "What the budget's user or team spent this week (raw tokens or USD)."),
    "tokenlord_budget_used_ratio": ("gauge", "Spent / budget this week (1 = all of it)."),
    "tokenlord_build": ("info", "tokenlord version of this worker."),
}


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    lag: int
    position: int = 0  # next offset to process: everything below is written


def _family(name: str, labels: Iterable[str] = ()) -> Metric:
    kind, doc = METRICS[name]
    if kind == "counter":
        return CounterMetricFamily(name, doc, labels=list(labels))
    if kind == "gauge":
        return GaugeMetricFamily(name, doc, labels=list(labels))
    raise ValueError(f"{name}: histograms are built by _histogram")


def _counter(name: str, value: float) -> Metric:
    m = _family(name)
    assert isinstance(m, CounterMetricFamily)
    m.add_metric([], value)
    return m


def _by_reason(name: str, counts: dict[str, int]) -> Metric:
    m = _family(name, ["reason"])
    assert isinstance(m, CounterMetricFamily)
    for reason, n in sorted(counts.items()):
        m.add_metric([reason], n)
    return m


def _histogram(name: str, dist: Distribution) -> Metric:
    _, doc = METRICS[name]
    buckets = [("+Inf" if b == float("inf") else f"{b:g}", n) for b, n in dist.cumulative()]
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=dist.total)


class WorkerCollector(Collector):
    """Metric families from a :class:`Stats` snapshot and the consumer's lag.

    ``stats``: returns a consistent copy (``Pipeline.stats.snapshot``).
    ``lag``: returns per assigned partition its lag, or None when the consumer
    does not know yet (then no lag series are exported).
    ``budgets``: the budgets' use this week, as last read (none: no budget series).
    """

    def __init__(
        self,
        stats: Callable[[], Stats],
        lag: Callable[[], Iterable[PartitionLag] | None] = lambda: None,
        version: str = "",
        budgets: Callable[[], Sequence[BudgetUse]] = lambda: (),
    ) -> None:
        self._stats = stats
        self._lag = lag
        self._version = version
        self._budgets = budgets

    def collect(self) -> Iterator[Metric]:
        s = self._stats()
        yield _counter("tokenlord_messages", s.messages)
        yield _counter("tokenlord_events_accepted", s.accepted)
        yield _counter("tokenlord_events_duplicate", s.duplicates)
        yield _by_reason("tokenlord_events_rejected", s.rejected)
        yield _counter("tokenlord_outcome_messages", s.outcome_messages)
        yield _counter("tokenlord_outcomes", s.outcomes)
        yield _by_reason("tokenlord_outcomes_rejected", s.outcomes_rejected_by_reason)
        yield _counter("tokenlord_otlp_messages", s.otlp_messages)
        yield _counter("tokenlord_otlp_spans_skipped", s.skipped_spans)
        yield _counter("tokenlord_batches", s.batches)
        yield _counter("tokenlord_store_retries", s.store_retries)
        yield _counter("tokenlord_poison_messages", s.poison)
        yield _counter("tokenlord_dead_letters_truncated", s.dead_letters_truncated)
        yield _counter("tokenlord_dead_letters_parked", s.dead_letters_parked)
        yield _counter("tokenlord_restores", s.restores)
        yield _counter("tokenlord_messages_replayed", s.replayed)
        yield _counter("tokenlord_digest_checks", s.digest_checks)
        yield _counter("tokenlord_digests_sent", s.digests_sent)
        yield _counter("tokenlord_digest_failures", s.digest_failures)
        yield _histogram("tokenlord_batch_messages", s.batch_messages)
        yield _histogram("tokenlord_flush_seconds", s.flush_seconds)

        last = _family("tokenlord_last_flush_timestamp_seconds")
        assert isinstance(last, GaugeMetricFamily)
        last.add_metric([], s.last_flush_at)
        yield last
        failing = _family("tokenlord_store_failing")
        assert isinstance(failing, GaugeMetricFamily)
        failing.add_metric([], 1 if s.failing else 0)
        yield failing
        state = _family("tokenlord_window_state", ["kind"])
        assert isinstance(state, GaugeMetricFamily)
        for kind, n in sorted(s.state_size.items()):
            state.add_metric([kind], n)
        yield state

        lags = self._lag()
        if lags is not None:
            lag = _family("tokenlord_consumer_lag", ["topic", "partition"])
            written = _family("tokenlord_written_offset", ["topic", "partition"])
            assigned = _family("tokenlord_partitions_assigned", ["topic"])
            assert isinstance(lag, GaugeMetricFamily) and isinstance(assigned, GaugeMetricFamily)
            assert isinstance(written, GaugeMetricFamily)
            per_topic: dict[str, int] = {}
            for pl in sorted(lags, key=lambda x: (x.topic, x.partition)):
                lag.add_metric([pl.topic, str(pl.partition)], pl.lag)
                written.add_metric([pl.topic, str(pl.partition)], pl.position)
                per_topic[pl.topic] = per_topic.get(pl.topic, 0) + 1
            for topic, n in sorted(per_topic.items()):
                assigned.add_metric([topic], n)
            yield lag
            yield written
            yield assigned

        uses = self._budgets()
        if uses:
            labels = ["kind", "name", "unit"]
            fams = [_family(n, labels) for n in ("tokenlord_budget_limit", "tokenlord_budget_used",
                                                   "tokenlord_budget_used_ratio")]  # fmt: skip
            for u in uses:
                values = (u.budget.limit, u.used, u.ratio)
                for fam, value in zip(fams, values, strict=True):
                    assert isinstance(fam, GaugeMetricFamily)
                    fam.add_metric([u.budget.kind, u.budget.name, u.budget.unit], value)
            yield from fams

        yield InfoMetricFamily("tokenlord_build", METRICS["tokenlord_build"][1], value={"version": self._version})


def make_registry(collector: WorkerCollector) -> CollectorRegistry:
    """A registry of its own (not prometheus_client's global one) holding ``collector``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition of ``registry``."""
    return generate_latest(registry)
