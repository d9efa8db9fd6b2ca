"""Quix Streams contender: tokenlord's job written the Quix Streams way.

Runs in its own virtualenv (``.venv-quix``, created by ``e2e_worker.py``):
quixstreams 3.28 pins ``confluent-kafka < 2.13`` and would downgrade the
worker's. The topology, one ``Application`` (``auto_offset_reset="earliest"``,
a checkpoint — sink flush + commit — every second like the worker's flush
interval, Quix's defaults otherwise: RocksDB state with changelog topics,
at-least-once):

1. ``app.topic(...)`` with a deserializer that splits a message into its
   elements (``py_baseline.split_message``: one object, a JSON array or NDJSON;
   Quix's ``split_values``: one row per element) and a ``timestamp_extractor``
   that takes each element's ``ts`` (epoch ms or RFC 3339) as its event time;
2. ``apply``: the same plain-Python validation as the other naive contender
   (``py_baseline.validate``, text counted with tiktoken) and the future check;
   rejections branch off to the sink;
3. messages of more than one event are keyed by their first event's user, so
   with ``--regroup`` the events are re-keyed by user (``group_by``: through a
   repartition topic). One event per message is keyed by its user already;
4. a stateful ``apply`` per user (Quix state): dedupe on ``event_id``, and the
   counts-only waste signals of the core (failed requests; retry storms and
   resent prompts from the latest two times of a per-user prompt fingerprint).
   Without ``--regroup`` every entry has an event-time TTL (the dedupe horizon),
   so the state stays bounded like the worker's. Quix measures that TTL against
   the partition's high-water mark, and a repartition topic interleaves three
   source partitions that are days apart in event time, which would expire
   entries early and let duplicates through: with ``--regroup`` the entries
   have no TTL (the state grows with the stream: fine for a benchmark, not for
   a service);
5. branches into the sink: the accepted events; an hourly
   ``tumbling_window(1 h, grace = tokenlord's grace).reduce(...)`` per user
   whose value holds one cell per model (the hourly rows are per user x
   model); and the weekly per-user cell from a 7-day ``tumbling_window`` on
   timestamps shifted by -4 days — Quix aligns windows to the epoch, a
   Thursday; shifted, the windows start on Mondays 00:00 UTC — with the same
   grace. Both windows emit every update (``.current()``). Without
   ``--regroup`` they close by partition (``closing_strategy="partition"``: a
   week closes when the partition's event time passes its end + grace, the
   worker's rule); with it by key (the user's own event time: a repartition
   partition's time jumps between its source partitions, and closing by it
   drops most events as late; a user's events come from one source partition,
   in order). Events later than their hour's end + grace are dropped by Quix
   (tokenlord still counts them while their week is open): the benchmark
   input has none (``e2e_worker.py`` checks).
6. one ``BatchingSink`` subclass receives all branches and writes each
   topic-partition batch with one ``tokenlord.store.Store.write_batch`` (the
   same row shapes as the worker, latest restatement of each cell). The
   ``final`` flag of weekly rows stays 0 and no ``waste_weekly`` rows are
   written (``.current()`` does not say when a window closed); rejected input
   goes to the ``rejected`` table, not to a dead-letter topic.

    .venv-quix/bin/python benchmarks/_quix.py --brokers H:P --topic T --group G \\
        --chdb DIR --state-dir DIR --result FILE [--stop-at-end] [--regroup] [--progress FILE]

``--stop-at-end``: stop once the end offsets seen at start are consumed and
every event re-keyed through the repartition topic has been processed; the
final checkpoint flushes the sink. Writes one JSON object of stats to ``--result``.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta
from typing import Any

import orjson
from _contender import Prices, Progress, Rows, Tokenizer, new_stats, start_targets, write_result
from py_baseline import DAY_MS, HOUR_MS, WASTE_WINDOW_MS, WEEK_MS, Reject, parse_rfc3339, split_message, validate
from quixstreams import Application, State, message_context
from quixstreams.models.serializers import Deserializer
from quixstreams.sinks import BatchingSink, SinkBatch
from tokenlord.settings import Settings
from tokenlord.store import Store
from xxhash import xxh3_64_intdigest

#: Quix windows start at multiples of their duration since the epoch (Thursday
#: 1970-01-01); Monday 1970-01-05 is 4 days later.
MONDAY_SHIFT_MS = 4 * DAY_MS
STORM_WINDOW_MS = 10_000

# Field positions of an accepted element as it flows through the topology: the
# 16 of py_baseline.validate, then its source partition/offset, then (after the
# stateful step) cost, wasted tokens and waste reason.
EID, TS, USER, TEAM, MODEL, INP, OUT, CACHED, STATUS = 0, 1, 2, 3, 5, 8, 9, 10, 12
SRC_P, SRC_OFF = 16, 17
COST, WASTED, REASON = 18, 19, 20


class ElementsDeserializer(Deserializer):
    """A message value -> its elements ``(idx, element)``, one Quix row each;
    an element is a dict, or ``(reason, raw)`` for input rejected as a whole."""

    def __init__(self, max_bytes: int, stats: dict[str, Any]) -> None:
        super().__init__()
        self.max_bytes = max_bytes
        self.stats = stats

    @property
    def split_values(self) -> bool:
        return True

    def __call__(self, value: bytes, ctx: Any) -> list[tuple[int, Any]]:
        if self.stats["first_message_at"] is None:
            self.stats["first_message_at"] = time.time()
        return list(enumerate(split_message(value, self.max_bytes)))


def event_time(item: tuple[int, Any], headers: Any, timestamp: float, timestamp_type: Any) -> int:
    """The element's ``ts`` in epoch ms; the message timestamp if it has none
    (such an element is rejected by the next step anyway)."""
    el = item[1]
    if type(el) is dict:
        ts = el.get("ts")
        if type(ts) is int and 0 <= ts:
            return ts
        if type(ts) is str:
            parsed = parse_rfc3339(ts)
            if parsed is not None and parsed >= 0:
                return parsed
    return int(timestamp)


class StoreSink(BatchingSink):
    """Every branch's rows -> one ``Store.write_batch`` per topic-partition batch."""

    def __init__(self, store: Store, src_topic: str, stats: dict[str, Any], progress: Progress) -> None:
        super().__init__()
        self.store = store
        self.src_topic = src_topic
        self.stats = stats
        self.progress = progress
        self.version = 0
        self.next_offsets: dict[int, int] = {}

    def write(self, batch: SinkBatch) -> None:
        rows = Rows()
        p = batch.partition
        self.version += 1
        version = self.version
        last_offset = -1
        for item in batch:
            kind, v = item.value
            last_offset = max(last_offset, item.offset)
            if kind == "e":
                f = v
                total = f[INP] + f[OUT]
                rows.events.append(
                    (*f[:12], total, f[15], f[12], f[13], f[14], f[COST], f[WASTED], f[REASON], f[SRC_P], f[SRC_OFF])
                )
            elif kind == "r":
                rows.rejected.append(tuple(v))
            else:
                key = item.key
                user = key.decode() if isinstance(key, bytes) else key
                if kind == "h":
                    hour = v["start"]
                    for model, c in v["value"].items():
                        rows.hourly[(hour, user, model)] = (
                            p, hour, user, model, c[0], c[1], c[2], c[3], c[1] + c[2], c[4], c[5], version,
                        )  # fmt: skip
                else:  # "w"
                    week = v["start"] + MONDAY_SHIFT_MS
                    c = v["value"]
                    rows.weekly[(week, user)] = (
                        p, week, user, c[5], c[6], c[0], c[1], c[2], c[1] + c[2], c[3], c[4], 0, version,
                    )  # fmt: skip
        t0 = time.perf_counter()
        written = rows.write(self.store, self.src_topic)
        st = self.stats
        st["write_seconds"] += time.perf_counter() - t0
        st["last_write_at"] = time.time()
        st["flushes"] += 1
        for k, n in written.items():
            st["rows_written"][k] = st["rows_written"].get(k, 0) + n
        if batch.topic == self.src_topic:  # the latency phase (no repartition topic)
            self.next_offsets[p] = max(self.next_offsets.get(p, 0), last_offset + 1)
            self.progress.flushed(self.next_offsets)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--chdb", required=True, help="chDB data directory (fresh)")
    ap.add_argument("--state-dir", required=True, help="Quix state directory (fresh)")
    ap.add_argument("--result", required=True)
    ap.add_argument("--stop-at-end", action="store_true")
    ap.add_argument("--regroup", action="store_true", help="re-key events by user (group_by)")
    ap.add_argument("--progress", help="append one JSON line per flush")
    ap.add_argument("--commit-interval", type=float, default=1.0)
    args = ap.parse_args()

    settings = Settings.from_env()
    kw = settings.core_kwargs()
    grace, horizon, future = kw["grace_ms"], kw["dedupe_horizon_ms"], kw["future_tolerance_ms"]
    # Event-time TTLs of the state entries (none after a re-key: see the module docstring).
    waste_memory = None if args.regroup else timedelta(milliseconds=max(WASTE_WINDOW_MS, horizon))
    dedupe_ttl = None if args.regroup else timedelta(milliseconds=horizon)
    closing = "key" if args.regroup else "partition"
    prices = Prices(kw["prices"])
    tokenize = Tokenizer()
    store = Store.connect(f"chdb://{args.chdb}")
    store.init_db()
    targets = start_targets(args.brokers, args.topic) if args.stop_at_end else {}
    progress = Progress(args.progress)
    stats = new_stats("quix", assigned_at=None, regroup=args.regroup)
    done_up_to: dict[int, int] = {}
    counts = {"valid": 0, "rekeyed": 0}

    class App(Application):
        def _on_assign(self, consumer: Any, partitions: Any) -> None:
            # When the processing starts ("first poll"), as the Faust contenders' "Ready":
            # after the partitions are assigned and their state stores are open.
            super()._on_assign(consumer, partitions)
            if partitions and stats["assigned_at"] is None:
                stats["assigned_at"] = time.time()

    app = App(
        broker_address=args.brokers,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        commit_interval=args.commit_interval,
        state_dir=args.state_dir,
        loglevel="INFO",
    )

    def maybe_stop() -> None:
        if not args.stop_at_end or "caught_up_at" in stats:
            return
        if any(done_up_to.get(p, 0) < end for p, end in targets.items()):
            return
        if args.regroup and counts["rekeyed"] < counts["valid"]:
            return
        stats["caught_up_at"] = time.time()
        app.stop()  # the loop ends after this message; its last checkpoint flushes the sink

    def check(item: tuple[int, Any]) -> tuple[str, Any]:
        """Validation of one element (stateless): ("o", fields) or ("r", rejected row)."""
        ctx = message_context()
        p, off = ctx.partition, ctx.offset
        if off + 1 > done_up_to.get(p, 0):
            done_up_to[p] = off + 1
            stats["messages"] += 1
        stats["events"] += 1
        idx, el = item
        if type(el) is not dict:
            out: tuple[str, Any] = ("r", (p, off, idx, el[0], el[1]))
        else:
            try:
                f = validate(el, tokenize)
            except Reject as r:
                out = ("r", (p, off, idx, r.args[0], orjson.dumps(el)))
            else:
                if f[TS] > time.time() * 1000 + future:
                    out = ("r", (p, off, idx, "future_timestamp", orjson.dumps(el)))
                else:
                    counts["valid"] += 1
                    out = ("o", (*f, p, off))
        if out[0] == "r":
            stats["rejected"] += 1
        maybe_stop()
        return out

    def dedupe_and_waste(f: Any, state: State) -> Any:
        """Per user: drop an event_id seen within the horizon; the counts-only waste signals."""
        counts["rekeyed"] += 1
        seen_key = "e" + f[EID]
        ts = f[TS]
        if state.get(seen_key) is not None:
            stats["duplicates"] += 1
            maybe_stop()
            return None
        state.set(seen_key, ts, ttl=dedupe_ttl)
        inp, out, model = f[INP], f[OUT], f[MODEL]
        total = inp + out
        fp = xxh3_64_intdigest(f"\0counts\0{model}\0{inp}".encode()) | 1 if inp >= 32 else 0
        times = state.get(f"f{fp}", []) if fp else []
        if f[STATUS] == "error":
            wasted, reason = total, "failed_request"
        elif sum(1 for x in times if abs(ts - x) <= STORM_WINDOW_MS) >= 2:
            wasted, reason = total, "retry_storm"
        elif sum(1 for x in times if abs(ts - x) <= WASTE_WINDOW_MS) > 1:
            wasted, reason = total, "duplicate_prompt"
        else:
            wasted, reason = 0, ""
        if fp:
            state.set(f"f{fp}", sorted([*times, ts], reverse=True)[:2], ttl=waste_memory)
        maybe_stop()
        return (*f[:18], prices.cost(model, inp, f[CACHED], out), wasted, reason)

    def hour_init(f: Any) -> dict[str, list[Any]]:
        return hour_add({}, f)

    def hour_add(cells: dict[str, list[Any]], f: Any) -> dict[str, list[Any]]:
        c = cells.get(f[MODEL])
        if c is None:
            c = cells[f[MODEL]] = [0, 0, 0, 0, 0, 0.0]
        c[0] += 1
        c[1] += f[INP]
        c[2] += f[OUT]
        c[3] += f[CACHED]
        c[4] += f[WASTED]
        c[5] += f[COST]
        return cells

    def week_init(f: Any) -> list[Any]:
        return week_add([0, 0, 0, 0, 0.0, "", 0], f)

    def week_add(w: list[Any], f: Any) -> list[Any]:
        w[0] += 1
        w[1] += f[INP]
        w[2] += f[OUT]
        w[3] += f[WASTED]
        w[4] += f[COST]
        team, ts = f[TEAM], f[TS]
        if team and (not w[5] or (ts, team) > (w[6], w[5])):
            w[5], w[6] = team, ts
        return w

    max_bytes = kw["max_message_bytes"]
    topic = app.topic(
        args.topic,
        key_deserializer="bytes",
        value_deserializer=ElementsDeserializer(max_bytes, stats),
        timestamp_extractor=event_time,
    )
    sink = StoreSink(store, args.topic, stats, progress)
    sdf = app.dataframe(topic)
    sdf = sdf.apply(check)
    sdf.filter(lambda v: v[0] == "r").sink(sink)
    ok = sdf.filter(lambda v: v[0] == "o").apply(lambda v: v[1])
    if args.regroup:
        ok = ok.group_by(lambda f: f[USER], name="user")
    ok = ok.apply(dedupe_and_waste, stateful=True)
    ok = ok.filter(lambda f: f is not None)
    ok.apply(lambda f: ("e", f)).sink(sink)
    (
        ok.tumbling_window(HOUR_MS, grace_ms=grace, name="hourly")
        .reduce(hour_add, hour_init)
        .current(closing_strategy=closing)
        .apply(lambda w: ("h", w))
        .sink(sink)
    )  # fmt: skip
    (
        ok.set_timestamp(lambda f, key, ts, headers: ts - MONDAY_SHIFT_MS)
        .tumbling_window(WEEK_MS, grace_ms=grace, name="weekly")
        .reduce(week_add, week_init)
        .current(closing_strategy=closing)
        .apply(lambda w: ("w", w))
        .sink(sink)
    )  # fmt: skip

    stats["started_at"] = time.time()
    try:
        app.run()
    finally:
        stats["targets"] = {str(p): o for p, o in targets.items()}
        stats["valid"], stats["rekeyed"] = counts["valid"], counts["rekeyed"]
        write_result(args.result, stats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
