"""Usage events as OpenTelemetry trace records, for ``tokenlord simulate --format otlp-*``.

One record per event: an ``ExportTraceServiceRequest`` holding one trace, a
server span (not a GenAI span: the worker skips it) and its GenAI ``chat``
child span with the event's counts under the OTel GenAI names — what an
instrumented gateway exports through the Collector's kafka exporter
(``otlp_proto`` or ``otlp_json``, docs/gateways.md, "OpenTelemetry"). Dependency-free: the protobuf
wire format is written here (the tests check it against the OpenTelemetry
SDK's own classes). Spans carry counts, never text.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import struct
from collections.abc import Iterator
from typing import Any

__all__ = ["FORMATS", "record", "records", "spans_of"]

FORMATS = ("otlp-proto", "otlp-json")

_STATUS_ERROR = 2
_KIND_SERVER, _KIND_CLIENT = 2, 3


def _ts_ms(ts: int | str) -> int:
    if isinstance(ts, int):
        return ts
    return int(dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)


def _get(ev: dict[str, Any], *names: str) -> Any:
    for n in names:
        if ev.get(n) is not None:
            return ev[n]
    return None


def spans_of(ev: dict[str, Any]) -> dict[str, Any]:
    """The trace of one usage event: ids, times, resource and span attributes."""
    event_id = str(ev["event_id"]).encode()
    trace_id = hashlib.sha256(b"trace:" + event_id).digest()[:16]
    end_ns = _ts_ms(ev["ts"]) * 1_000_000
    latency = int(ev.get("latency_ms") or 0)
    start_ns = end_ns - latency * 1_000_000
    resource: list[tuple[str, Any]] = [("service.name", ev.get("app") or "tokenlord-simulate")]
    if ev.get("team"):
        resource.append(("service.namespace", ev["team"]))
    attrs: list[tuple[str, Any]] = [
        ("gen_ai.operation.name", "chat"),
        ("gen_ai.request.model", _get(ev, "model", "gen_ai.request.model", "gen_ai.response.model")),
        ("user.id", _get(ev, "user", "user_id", "enduser.id")),
    ]
    optional = (
        ("gen_ai.provider.name", ("provider", "gen_ai.provider.name")),
        ("gen_ai.conversation.id", ("session_id", "gen_ai.conversation.id")),
        ("gen_ai.usage.input_tokens", ("input_tokens", "gen_ai.usage.input_tokens")),
        ("gen_ai.usage.output_tokens", ("output_tokens", "gen_ai.usage.output_tokens")),
        ("gen_ai.usage.cache_read.input_tokens", ("cached_input_tokens", "gen_ai.usage.cache_read.input_tokens")),
        ("gen_ai.usage.reasoning.output_tokens", ("reasoning_tokens",)),
    )
    for key, names in optional:
        value = _get(ev, *names)
        if value is not None and value != "":
            attrs.append((key, value))
    finish = _get(ev, "finish_reason", "gen_ai.response.finish_reasons")
    if finish:
        attrs.append(("gen_ai.response.finish_reasons", finish if isinstance(finish, list) else [finish]))
    return {
        "trace_id": trace_id,
        "server_id": hashlib.sha256(b"server:" + event_id).digest()[:8],
        "span_id": hashlib.sha256(b"span:" + event_id).digest()[:8],
        "start_ns": start_ns,
        "end_ns": end_ns,
        "error": ev.get("status") == "error",
        "resource": resource,
        "attributes": attrs,
        "model": attrs[1][1],
    }


def record(ev: dict[str, Any], fmt: str) -> bytes:
    """One event as one OTLP record in ``fmt`` (:data:`FORMATS`)."""
    t = spans_of(ev)
    if fmt == "otlp-proto":
        return _proto(t)
    if fmt == "otlp-json":
        return _json(t)
    raise ValueError(f"unknown OTLP format {fmt!r} (one of {', '.join(FORMATS)})")


# -- protobuf (opentelemetry/proto/collector/trace/v1/trace_service.proto) -------------------


def _varint(v: int) -> bytes:
    v &= (1 << 64) - 1  # int64 as two's complement
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _len(field: int, body: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(body)) + body


def _fixed64(field: int, v: int) -> bytes:
    return _varint(field << 3 | 1) + struct.pack("<Q", v)


def _int(field: int, v: int) -> bytes:
    return _varint(field << 3) + _varint(v)


def _any(v: Any) -> bytes:
    if isinstance(v, bool):
        return _int(2, int(v))
    if isinstance(v, int):
        return _int(3, v)
    if isinstance(v, float):
        return _fixed64(4, struct.unpack("<Q", struct.pack("<d", v))[0])
    if isinstance(v, list):
        return _len(5, b"".join(_len(1, _any(x)) for x in v))
    return _len(1, str(v).encode())


def _kvs(field: int, attrs: list[tuple[str, Any]]) -> bytes:
    return b"".join(_len(field, _len(1, k.encode()) + _len(2, _any(v))) for k, v in attrs)


def _span(trace_id: bytes, span_id: bytes, parent: bytes, name: str, kind: int, t: dict[str, Any],
          attrs: list[tuple[str, Any]], error: bool) -> bytes:  # fmt: skip
    body = _len(1, trace_id) + _len(2, span_id)
    if parent:
        body += _len(4, parent)
    body += _len(5, name.encode()) + _int(6, kind) + _fixed64(7, t["start_ns"]) + _fixed64(8, t["end_ns"])
    body += _kvs(9, attrs)
    if error:
        body += _len(15, _len(2, b"upstream error") + _int(3, _STATUS_ERROR))
    return body


def _proto(t: dict[str, Any]) -> bytes:
    server = _span(t["trace_id"], t["server_id"], b"", "POST /v1/chat/completions", _KIND_SERVER, t,
                   [("http.request.method", "POST"), ("http.route", "/v1/chat/completions")], t["error"])  # fmt: skip
    chat = _span(t["trace_id"], t["span_id"], t["server_id"], f"chat {t['model']}", _KIND_CLIENT, t,
                 t["attributes"], t["error"])  # fmt: skip
    scope = _len(1, _len(1, b"tokenlord.simulate")) + _len(2, server) + _len(2, chat)
    resource_spans = _len(1, _kvs(1, t["resource"])) + _len(2, scope)
    return _len(1, resource_spans)


# -- OTLP/JSON: hex ids, integer enums, 64-bit integers as strings ---------------------------


def _json_any(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, list):
        return {"arrayValue": {"values": [_json_any(x) for x in v]}}
    return {"stringValue": str(v)}


def _json_kvs(attrs: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _json_any(v)} for k, v in attrs]


def _json_span(t: dict[str, Any], span_id: bytes, parent: bytes, name: str, kind: int,
               attrs: list[tuple[str, Any]]) -> dict[str, Any]:  # fmt: skip
    span: dict[str, Any] = {"traceId": t["trace_id"].hex(), "spanId": span_id.hex()}
    if parent:
        span["parentSpanId"] = parent.hex()
    span.update(
        name=name, kind=kind, startTimeUnixNano=str(t["start_ns"]), endTimeUnixNano=str(t["end_ns"]),
        attributes=_json_kvs(attrs), status={"code": _STATUS_ERROR} if t["error"] else {},
    )  # fmt: skip
    return span


def _json(t: dict[str, Any]) -> bytes:
    spans = [
        _json_span(t, t["server_id"], b"", "POST /v1/chat/completions", _KIND_SERVER,
                   [("http.request.method", "POST"), ("http.route", "/v1/chat/completions")]),
        _json_span(t, t["span_id"], t["server_id"], f"chat {t['model']}", _KIND_CLIENT, t["attributes"]),
    ]  # fmt: skip
    req = {
        "resourceSpans": [
            {
                "resource": {"attributes": _json_kvs(t["resource"])},
                "scopeSpans": [{"scope": {"name": "tokenlord.simulate"}, "spans": spans}],
            }
        ]
    }
    return json.dumps(req, separators=(",", ":"), ensure_ascii=False).encode()


def records(events: Iterator[dict[str, Any]], fmt: str) -> Iterator[tuple[bytes, bytes | None]]:
    """``(record, key)`` per event; the key is the user id (a user's spans share a partition)."""
    for ev in events:
        user = _get(ev, "user", "user_id", "enduser.id")
        yield record(ev, fmt), (str(user).encode() if user is not None else None)
