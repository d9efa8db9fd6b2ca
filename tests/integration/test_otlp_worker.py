"""OpenTelemetry GenAI spans (docs/gateways.md) through real Kafka and
``tokenlord worker --stop-at-end``: records built with the OpenTelemetry SDK
and its own encoder, as the Collector's kafka exporter writes them (protobuf
and OTLP/JSON), mixed with non-GenAI spans, error spans, OpenInference spans,
a span without a user, re-sent records and hostile ones, on the same Kafka
partition numbers as usage events of the events topic. The leaderboard must
be what the spans (and the one usage event) say, exactly, across a restart."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer
from e2e import dead_letters, dump_views, run_worker, worker_env
from otlp_records import Usage, genai_span, otlp_json, proto, record_spans, usage_of
from tokenlord.pipeline import OTLP_PARTITION_BASE
from tokenlord.time_utils import week_start_ms

pytestmark = pytest.mark.integration


def _produce(brokers: str, topic: str, records: list[tuple[int, bytes]]) -> None:
    p = Producer({"bootstrap.servers": brokers, "enable.idempotence": True, "message.max.bytes": 4 << 20})
    for partition, value in records:
        p.produce(topic, value=value, partition=partition)
    assert p.flush(60) == 0


def test_genai_spans_make_the_leaderboard_exactly(kafka_brokers: str, topic: Any, tmp_path: Path) -> None:
    events_topic, otlp_topic = topic("events", 3), topic("otlp", 3)
    now_ms = int(time.time() * 1000)
    end = (now_ms - 2 * 3_600_000) * 1_000_000  # ns
    sec = 1_000_000_000
    resource = {"service.name": "ide", "service.namespace": "platform"}

    def r1(tracer: Any) -> None:
        server = tracer.start_span("POST /v1/chat", start_time=end - 3 * sec, attributes={"http.method": "POST"})
        genai_span(tracer, end, {
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.provider.name": "openai",
            "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 300,
            "gen_ai.usage.cache_read.input_tokens": 200, "user.id": "ann",
        }, parent=server)  # fmt: skip
        genai_span(tracer, end + sec, {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "grep"},
                   parent=server)  # fmt: skip
        server.end(end_time=end + 2 * sec)
        genai_span(tracer, end + 3 * sec, {
            "gen_ai.system": "anthropic", "gen_ai.request.model": "claude-sonnet-4",
            "gen_ai.usage.prompt_tokens": 640, "gen_ai.usage.completion_tokens": 64, "enduser.id": "bob",
        })  # fmt: skip

    def r2(tracer: Any) -> None:
        genai_span(tracer, end + 4 * sec, {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 500,
                                           "gen_ai.usage.output_tokens": 0, "user.id": "ann"}, error=True)  # fmt: skip
        genai_span(tracer, end + 5 * sec, {
            "openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini", "llm.provider": "openai",
            "llm.token_count.prompt": 90, "llm.token_count.completion": 30, "user.id": "carol", "session.id": "s1",
        })  # fmt: skip
        genai_span(tracer, end + 6 * sec, {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 7})
        genai_span(tracer, end + 7 * sec, {"http.route": "/healthz"}, name="GET /healthz")
        # A huge attribute array on a GenAI span, within the size limit: read in one pass.
        genai_span(tracer, end + 8 * sec, {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 33,
                                           "gen_ai.usage.output_tokens": 3, "user.id": "carol",
                                           "gen_ai.response.finish_reasons": ["stop"] * 20_000})  # fmt: skip

    def r3(tracer: Any) -> None:  # the user from the resource
        genai_span(tracer, end + 9 * sec, {"gen_ai.request.model": "gpt-4.1", "gen_ai.usage.input_tokens": 4000,
                                           "gen_ai.usage.output_tokens": 800})  # fmt: skip

    s1, s2 = record_spans(resource, r1), record_spans(resource, r2)
    s3 = record_spans({**resource, "user.id": "dave", "service.name": "batch"}, r3)
    too_big = record_spans(resource, lambda t: genai_span(t, end, {"user.id": "ann", "x": ["y" * 100] * 20_000,
                                                                    "gen_ai.request.model": "m"}))  # fmt: skip
    deep = (
        b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"gen_ai.response.finish_reasons",'
        b'"value":' + b'{"arrayValue":{"values":[' * 2000 + b"]}}" * 2000 + b"}]}]}]}]}"
    )
    first = [(0, proto(s1)), (0, otlp_json(s2)), (1, proto(s1)[:-7]), (2, deep), (2, proto(too_big))]
    # The events topic's partition 0 holds ann's usage too: the two partitions 0 must add up.
    event = {"event_id": "plain-1", "ts": end // 1_000_000 + 500, "user": "ann", "model": "gpt-4o",
             "input_tokens": 1000, "output_tokens": 10, "team": "platform"}  # fmt: skip
    _produce(kafka_brokers, events_topic, [(0, orjson.dumps(event))])
    _produce(kafka_brokers, otlp_topic, first)
    env = worker_env(kafka_brokers, events_topic, tmp_path / "ch", TOKENLORD_OTLP_TOPIC=otlp_topic,
                     TOKENLORD_BATCH_SIZE="2")  # fmt: skip
    proc = run_worker(env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "(3 spans skipped)" in proc.stderr

    # A second worker process (state restored from the store): the Collector re-sends
    # the first record, the second one arrives again as protobuf, one record is new;
    # the events topic's partition 0 (at other offsets) gets a new event.
    _produce(kafka_brokers, otlp_topic, [(0, proto(s1)), (0, proto(s2)), (0, proto(s3))])
    event2 = {**event, "event_id": "plain-2", "input_tokens": 2000, "ts": event["ts"] + 1}
    _produce(kafka_brokers, events_topic, [(0, orjson.dumps(event2))])
    proc = run_worker(env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "(3 spans skipped)" in proc.stderr

    usage: list[Usage] = [u for u in map(usage_of, [*s1, *s2, *s3]) if u is not None and u.user != "None"]
    assert len(usage) == 6
    views = dump_views(env["TOKENLORD_CLICKHOUSE_URL"], "tokenlord")
    want_ids = sorted([u.event_id for u in usage] + ["plain-1", "plain-2"])
    assert sorted(e["event_id"] for e in views["events"]) == want_ids
    otlp_rows = [e for e in views["events"] if not e["event_id"].startswith("plain-")]
    assert {e["src_partition"] for e in otlp_rows} == {OTLP_PARTITION_BASE}

    want: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    plain = [Usage(e["event_id"], e["ts"], "ann", e["input_tokens"], 10, False)  # type: ignore[arg-type]
             for e in (event, event2)]  # fmt: skip
    for u in [*usage, *plain]:
        week = str(_date(week_start_ms(u.ts_ms)))
        row = want[(week, u.user)]
        row["requests"] += 1
        row["input_tokens"] += u.input_tokens
        row["output_tokens"] += u.output_tokens
        row["wasted_tokens"] += (u.input_tokens + u.output_tokens) if u.error else 0
    cols = ("requests", "input_tokens", "output_tokens", "wasted_tokens")
    got = {(str(r["week_start"]), r["user"]): {k: r[k] for k in cols} for r in views["leaderboard_weekly"]}
    assert got == {k: dict(v) for k, v in want.items()}
    teams = {r["user"]: r["team"] for r in views["leaderboard_weekly"]}
    assert teams["dave"] == "platform" and teams["ann"] == "platform"

    # Dead letters and `rejected` rows name the OTLP topic and its Kafka partition.
    reasons = sorted((p, reason) for p, _o, _i, reason, _v in dead_letters(kafka_brokers, env["TOKENLORD_DLQ_TOPIC"]))
    assert reasons == [(0, "missing_field:user"), (0, "missing_field:user"), (1, "invalid_json"),
                       (2, "invalid_json"), (2, "too_large")]  # fmt: skip
    rejected = sorted((r["src_topic"], r["src_partition"], r["reason"]) for r in views["rejected"])
    assert rejected == sorted((otlp_topic, p, reason) for p, reason in reasons)


def _date(ms: int) -> Any:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date()
