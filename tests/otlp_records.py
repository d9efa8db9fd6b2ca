"""OTLP trace records built with the real OpenTelemetry SDK and its own encoder.

``Trace`` spans are recorded by an SDK ``TracerProvider`` into an
``InMemorySpanExporter``; :func:`proto` is what the Collector's kafka exporter
writes with ``encoding: otlp_proto`` (``encode_spans(...).SerializeToString()``),
:func:`otlp_json` the ``otlp_json`` form (protobuf's JSON mapping with the
OTLP/JSON changes the Collector makes: hex ids, integer enums; 64-bit integers
stay decimal strings). :class:`Usage` is what a GenAI span says, for the
expected leaderboard.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode


@dataclass(frozen=True)
class Usage:
    """What one GenAI span reports."""

    event_id: str
    ts_ms: int
    user: str
    input_tokens: int
    output_tokens: int
    error: bool


def record_spans(resource: Mapping[str, Any], build: Any) -> list[ReadableSpan]:
    """Spans that ``build(tracer)`` records, under an SDK provider with ``resource``."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create(dict(resource)))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    build(provider.get_tracer("tokenlord.tests", "1.0"))
    spans = list(exporter.get_finished_spans())
    provider.shutdown()
    return spans


def genai_span(
    tracer: Any,
    end_ns: int,
    attributes: Mapping[str, Any],
    *,
    error: bool = False,
    name: str = "chat",
    parent: Any = None,
    latency_ns: int = 800_000_000,
) -> ReadableSpan:
    """One finished span with ``attributes``, ending at ``end_ns``."""
    from opentelemetry import trace

    ctx = trace.set_span_in_context(parent) if parent is not None else None
    span = tracer.start_span(name, context=ctx, kind=SpanKind.CLIENT, start_time=end_ns - latency_ns,
                             attributes=dict(attributes))  # fmt: skip
    if error:
        span.set_status(Status(StatusCode.ERROR, "upstream 500"))
    span.end(end_time=end_ns)
    return span  # type: ignore[no-any-return]


def usage_of(span: ReadableSpan) -> Usage | None:
    """What a GenAI span of these tests reports (None: not a usage span)."""
    a = dict(span.attributes or {})
    r = dict(span.resource.attributes)
    user = a.get("user.id", a.get("enduser.id", r.get("user.id", r.get("enduser.id"))))
    inp = a.get("gen_ai.usage.input_tokens", a.get("gen_ai.usage.prompt_tokens", a.get("llm.token_count.prompt")))
    out = a.get(
        "gen_ai.usage.output_tokens", a.get("gen_ai.usage.completion_tokens", a.get("llm.token_count.completion"))
    )
    if inp is None and out is None:
        return None
    ctx = span.get_span_context()
    assert ctx is not None and span.end_time is not None
    return Usage(
        event_id=f"{ctx.trace_id:032x}{ctx.span_id:016x}",
        ts_ms=span.end_time // 1_000_000,
        user=str(user),
        input_tokens=int(inp or 0),
        output_tokens=int(out or 0),
        error=span.status.status_code is StatusCode.ERROR,
    )


def proto(spans: Sequence[ReadableSpan]) -> bytes:
    """The record the Collector's kafka exporter writes (``encoding: otlp_proto``)."""
    data: bytes = encode_spans(spans).SerializeToString()
    return data


def _hex_ids(node: Any) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k in ("traceId", "spanId", "parentSpanId") and isinstance(v, str):
                import base64

                out[k] = base64.b64decode(v).hex()
            else:
                out[k] = _hex_ids(v)
        return out
    if isinstance(node, list):
        return [_hex_ids(x) for x in node]
    return node


def otlp_json(spans: Sequence[ReadableSpan]) -> bytes:
    """The same record as OTLP/JSON (``encoding: otlp_json``): hex ids, integer
    enums, 64-bit integers as decimal strings."""
    d = json_format.MessageToDict(encode_spans(spans), use_integers_for_enums=True)
    return json.dumps(_hex_ids(d), separators=(",", ":")).encode()
