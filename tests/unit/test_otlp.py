"""OTLP trace records (docs/gateways.md) through the native core, without services:
records built by the OpenTelemetry SDK's own encoder, and the simulator's."""

from __future__ import annotations

import time
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from otlp_records import genai_span, otlp_json, proto, record_spans, usage_of
from tokenlord import otlp
from tokenlord._core import Core
from tokenlord.errors import ConfigError
from tokenlord.settings import Settings

NOW_MS = int(time.time() * 1000)
END_NS = (NOW_MS - 3_600_000) * 1_000_000


def _spans() -> list[Any]:
    def build(tracer: Any) -> None:
        server = tracer.start_span("POST /chat", start_time=END_NS - 2_000_000_000, attributes={"http.method": "POST"})
        genai_span(tracer, END_NS, {
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.provider.name": "openai",
            "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 300,
            "gen_ai.usage.cache_read.input_tokens": 200, "gen_ai.usage.reasoning.output_tokens": 40,
            "gen_ai.response.finish_reasons": ("stop",), "gen_ai.conversation.id": "c1", "user.id": "ann",
        }, parent=server)  # fmt: skip
        genai_span(tracer, END_NS + 1_000_000_000, {"gen_ai.operation.name": "execute_tool"}, parent=server)
        genai_span(tracer, END_NS + 2_000_000_000, {
            "gen_ai.system": "anthropic", "gen_ai.request.model": "claude-sonnet-4",
            "gen_ai.usage.prompt_tokens": 77, "gen_ai.usage.completion_tokens": 5,
        }, error=True)  # fmt: skip
        genai_span(tracer, END_NS + 3_000_000_000, {
            "openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini", "llm.provider": "openai",
            "llm.token_count.prompt": 9, "llm.token_count.completion": 3, "session.id": "s9", "user.id": "carol",
        })  # fmt: skip
        server.end(end_time=END_NS + 4_000_000_000)

    return record_spans({"service.name": "ide", "service.namespace": "platform", "user.id": "res-user"}, build)


def _process(values: list[bytes]) -> Any:
    core = Core()
    return core.process([0] * len(values), list(range(len(values))), values, NOW_MS, otlp=True)


def test_sdk_records_in_both_encodings_give_the_spans_usage() -> None:
    spans = _spans()
    want = sorted((u.event_id, u.ts_ms, u.user, u.input_tokens, u.output_tokens)
                  for u in map(usage_of, spans) if u is not None)  # fmt: skip
    assert len(want) == 3
    rows = {}
    for name, record in (("proto", proto(spans)), ("json", otlp_json(spans))):
        batch = _process([record])
        ev = batch.events
        got = sorted(zip(ev["event_id"], ev["ts"], ev["user"], ev["input_tokens"], ev["output_tokens"], strict=True))
        assert got == want, name
        assert batch.skipped_spans == 2, "the server span and the tool span"
        assert batch.rejected["reason"] == []
        rows[name] = {k: v for k, v in ev.items() if k not in ("src_offset",)}
        by_user = dict(zip(ev["user"], range(len(ev["user"])), strict=True))
        ann, res, carol = by_user["ann"], by_user["res-user"], by_user["carol"]
        assert (ev["team"][ann], ev["app"][ann], ev["model"][ann], ev["provider"][ann]) == (
            "platform", "ide", "gpt-4o", "openai")  # fmt: skip
        cached, reasoning = ev["cached_input_tokens"][ann], ev["reasoning_tokens"][ann]
        assert (cached, reasoning, ev["finish_reason"][ann]) == (200, 40, "stop")
        assert (ev["session_id"][ann], ev["latency_ms"][ann]) == ("c1", 800)
        assert (ev["status"][res], ev["waste_reason"][res], ev["provider"][res]) == (
            "error", "failed_request", "anthropic")  # fmt: skip
        assert (ev["session_id"][carol], ev["model"][carol]) == ("s9", "gpt-4o-mini")
    assert rows["proto"] == rows["json"]


def test_a_resent_record_counts_once_whatever_its_encoding() -> None:
    spans = _spans()
    batch = _process([proto(spans), proto(spans), otlp_json(spans)])
    assert (batch.accepted, batch.duplicates, batch.skipped_spans) == (3, 6, 6)


def test_hostile_records_are_rejected_whole() -> None:
    good = proto(_spans())
    deep = (
        b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"gen_ai.response.finish_reasons",'
        b'"value":' + b'{"arrayValue":{"values":[' * 3000 + b"]}}" * 3000 + b"}]}]}]}]}"
    )
    batch = _process([good[: len(good) // 2], good[:-3], deep, b"\x00\x01garbage", b"{}", b""])
    assert batch.rejected["reason"] == ["invalid_json"] * 4 + ["not_an_object", "invalid_json"]
    assert batch.rejected["idx"] == [0] * 6
    assert batch.accepted == 0


def test_simulated_records_decode_with_the_sdks_classes_and_in_the_core() -> None:
    ev = {"event_id": "e-1", "ts": NOW_MS - 60_000, "user": "ann", "team": "search", "app": "cli",
          "gen_ai.request.model": "gpt-4o", "provider": "openai", "session_id": "s1", "input_tokens": 500,
          "output_tokens": 20, "cached_input_tokens": 100, "status": "error", "finish_reason": "stop",
          "latency_ms": 1234}  # fmt: skip
    req = ExportTraceServiceRequest.FromString(otlp.record(ev, "otlp-proto"))
    spans = req.resource_spans[0].scope_spans[0].spans
    assert len(spans) == 2 and spans[1].parent_span_id == spans[0].span_id
    attrs = {kv.key: kv.value for kv in spans[1].attributes}
    assert attrs["gen_ai.usage.input_tokens"].int_value == 500
    assert spans[1].end_time_unix_nano - spans[1].start_time_unix_nano == 1_234_000_000
    batch = _process([otlp.record(ev, "otlp-proto"), otlp.record(ev, "otlp-json")])
    assert (batch.accepted, batch.duplicates, batch.skipped_spans) == (1, 1, 2)
    e = batch.events
    assert (e["user"], e["team"], e["app"], e["model"], e["input_tokens"], e["cached_input_tokens"]) == (
        ["ann"], ["search"], ["cli"], ["gpt-4o"], [500], [100])  # fmt: skip
    assert (e["status"], e["finish_reason"], e["latency_ms"], e["session_id"]) == (["error"], ["stop"], [1234], ["s1"])


def test_the_otlp_topic_must_be_its_own() -> None:
    assert Settings.from_env(environ={}).otlp_topic == ""
    with pytest.raises(ConfigError, match="TOKENLORD_OTLP_TOPIC"):
        Settings.from_env(environ={"TOKENLORD_OTLP_TOPIC": "tokenlord.events"})
    with pytest.raises(ConfigError, match="not a Kafka topic"):
        Settings.from_env(environ={"TOKENLORD_OTLP_TOPIC": "bad topic"})


def test_simulate_otlp_json_lines_and_bad_flags(tmp_path: Any, capsys: Any) -> None:
    from tokenlord.cli import main

    out = tmp_path / "spans.jsonl"
    args = ["simulate", "--users", "20", "--days", "1", "--seed", "3", "--no-outcomes"]
    assert main([*args, "--format", "otlp-json", "--out", str(out)]) == 0
    lines = out.read_bytes().splitlines()
    batch = _process(lines)
    assert batch.accepted + batch.duplicates + len(batch.rejected["reason"]) == len(lines) > 50
    assert batch.skipped_spans == len(lines)
    assert set(batch.rejected["reason"]) <= {"future_timestamp"}
    for bad, why in (
        (["--format", "otlp-proto", "--out", str(out)], "otlp-json"),
        (["--format", "otlp-proto"], "TOKENLORD_OTLP_TOPIC"),
        (["--format", "otlp-json", "--text-share", "0.5"], "text"),
    ):
        assert main([*args, *bad]) == 2
        assert why in capsys.readouterr().err
