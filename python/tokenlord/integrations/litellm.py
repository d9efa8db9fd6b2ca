"""LiteLLM → tokenlord: one usage event per LiteLLM call, produced to Kafka.

A LiteLLM proxy loads it from its ``config.yaml``::

    litellm_settings:
      callbacks: tokenlord.integrations.litellm.proxy_handler_instance

and the SDK takes ``litellm.callbacks = [TokenlordLogger()]``. Settings are the
usual ``TOKENLORD_*`` ones (brokers, topic, Kafka security; docs/gateways.md),
read when the first event arrives.

The request path never waits on Kafka: LiteLLM's log hooks only map the call's
``standard_logging_object`` to an event and put it into a bounded queue; one
background thread computes the fingerprints (one core call per batch) and
produces. When the queue is full the event is dropped and counted
(:attr:`TokenlordLogger.dropped`, a warning at most once a minute); Kafka
errors are counted too (:attr:`TokenlordLogger.errors`). The queue is flushed
when the process exits.

Prompt and output text never leave the gateway unless the operator opts in
(``TOKENLORD_GATEWAY_SEND_TEXT=true``): events carry their ``fingerprint``.
This module imports only LiteLLM, confluent-kafka, orjson and tokenlord's
gateway API (no Faust, no ClickHouse client).
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from litellm.integrations.custom_logger import CustomLogger

from tokenlord.errors import TokenlordError
from tokenlord.gateway import utf8
from tokenlord.settings import Settings

__all__ = ["Call", "TokenlordLogger", "map_payload", "output_text", "prompt_text", "proxy_handler_instance"]

log = logging.getLogger("tokenlord.integrations.litellm")

#: What LiteLLM puts in place of the text when message logging is turned off
#: (``litellm.constants.REDACTED_BY_LITELLM``): not the user's text, never fingerprinted.
REDACTED = "redacted-by-litellm"
#: Events per fingerprint call and produce round of the background thread.
BATCH = 256
#: Warnings about drops and Kafka errors: at most one per this many seconds.
LOG_EVERY_S = 60.0
#: librdkafka's own buffer (beyond the queue): bounded, a proxy is not a Kafka spool.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "client.id": "tokenlord-litellm",
    "queue.buffering.max.messages": 100_000,
    "queue.buffering.max.kbytes": 65_536,
    "logger": log,
}
_MAX_EVENT_ID = 128


class ProducerLike(Protocol):
    """What the background thread uses of ``confluent_kafka.Producer``."""

    def produce(
        self, topic: str, *, value: bytes, key: bytes | None, on_delivery: Callable[[Any, Any], None]
    ) -> None: ...
    def poll(self, timeout: float) -> int: ...
    def flush(self, timeout: float) -> int: ...


@dataclass(frozen=True)
class Call:
    """One LiteLLM call as tokenlord sees it: the event (docs/semantics.md) without
    its ``fingerprint``, and the text the fingerprint is made of."""

    event: dict[str, Any]
    prompt: str | None
    output: str | None


# Mapping ----------------------------------------------------------------------


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, Mapping) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _count(value: Any) -> int | None:
    """A token count: an integer >= 0 (LiteLLM sometimes has floats like 12.0)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    return None


def _texts(content: Any) -> list[str]:
    """The text of a message's ``content``: a string or a list of parts."""
    if isinstance(content, str):
        return [content]
    out: list[str] = []
    if isinstance(content, list):
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(text := _get(part, "text"), str):
                out.append(text)
    return out


def _message_texts(message: Any) -> list[str]:
    if isinstance(message, str):
        return [message]
    out = _texts(_get(message, "content"))
    for call in _get(message, "tool_calls") or ():
        fn = _get(call, "function")
        out += [t for t in (_get(fn, "name"), _get(fn, "arguments")) if isinstance(t, str)]
    return out


def _joined(parts: list[str]) -> str | None:
    parts = [p for p in parts if p]
    if not parts or all(p == REDACTED for p in parts):
        return None
    return "\n".join(parts)


def prompt_text(messages: Any) -> str | None:
    """The prompt as one text: every message's text (and tool-call arguments),
    one per line; None when there is none or LiteLLM redacted it."""
    if isinstance(messages, str | Mapping):
        messages = [messages]
    if not isinstance(messages, list):
        return None
    return _joined([t for m in messages for t in _message_texts(m)])


def output_text(response: Any) -> str | None:
    """The answer as one text: every choice's message (or text completion)."""
    if isinstance(response, str):
        return _joined([response])
    parts: list[str] = []
    for choice in _get(response, "choices") or ():
        message = _get(choice, "message") or _get(choice, "delta")
        parts += _message_texts(message) if message is not None else []
        if isinstance(text := _get(choice, "text"), str):
            parts.append(text)
    return _joined(parts)


def _user(payload: Mapping[str, Any], metadata: Any) -> str | None:
    # The key's user first: LiteLLM authenticated it. The end user (the request's
    # `user` field: `end_user` on a proxy, a model parameter in the SDK) is what
    # the caller claims; it names the spender when the key has no user (SDK
    # calls, service keys).
    return (
        _str(_get(metadata, "user_api_key_user_id"))
        or _str(payload.get("end_user"))
        or _str(_get(metadata, "user_api_key_end_user_id"))
        or _str(_get(payload.get("model_parameters"), "user"))
    )


def _event_id(payload: Mapping[str, Any]) -> str | None:
    call_id = _str(payload.get("id")) or _str(payload.get("litellm_call_id"))
    if call_id is not None and len(call_id) > _MAX_EVENT_ID:
        return "litellm-" + hashlib.sha256(call_id.encode()).hexdigest()
    return call_id


def map_payload(payload: Mapping[str, Any], *, failed: bool = False) -> Call:
    """The event of one LiteLLM call from its ``standard_logging_object``
    (docs/gateways.md has the table). ``failed``: it came to a failure hook."""
    metadata = payload.get("metadata")
    response = payload.get("response")
    usage = _get(response, "usage") or _get(metadata, "usage_object")
    end = payload.get("endTime")
    start = payload.get("startTime")
    end_s = float(end) if isinstance(end, int | float) else time.time()
    ev: dict[str, Any] = {"event_id": _event_id(payload), "ts": round(end_s * 1000)}
    fields: dict[str, Any] = {
        "user": _user(payload, metadata),
        "model": _str(payload.get("model"))
        or _str(_get(response, "model"))
        or _str(_get(payload.get("hidden_params"), "litellm_model_name")),
        "team": _str(_get(metadata, "user_api_key_team_alias")) or _str(_get(metadata, "user_api_key_team_id")),
        "provider": _str(payload.get("custom_llm_provider")),
        "session_id": _str(payload.get("session_id")) or _str(payload.get("trace_id")),
    }
    ev.update((k, v) for k, v in fields.items() if v is not None)

    inp = _count(payload.get("prompt_tokens"))
    out = _count(payload.get("completion_tokens"))
    inp = _count(_get(usage, "prompt_tokens")) if inp is None else inp
    out = _count(_get(usage, "completion_tokens")) if out is None else out
    cached = _count(_get(_get(usage, "prompt_tokens_details"), "cached_tokens"))
    if cached is None:
        cached = _count(_get(usage, "cache_read_input_tokens"))
    reasoning = _count(_get(_get(usage, "completion_tokens_details"), "reasoning_tokens"))
    if payload.get("cache_hit") is True:
        # Served from LiteLLM's cache: no provider tokens were spent.
        inp, out, cached, reasoning = 0, 0, None, None
    # Reported counts win in the worker; a request with none is still a request.
    ev["input_tokens"] = inp or 0
    ev["output_tokens"] = out or 0
    if cached:  # the contract bounds them by their totals: never lose a call to a provider's rounding
        ev["cached_input_tokens"] = min(cached, ev["input_tokens"])
    if reasoning:
        ev["reasoning_tokens"] = min(reasoning, ev["output_tokens"])

    ev["status"] = "error" if failed or payload.get("status") == "failure" else "ok"
    choices = _get(response, "choices")
    if choices and isinstance(reason := _get(choices[0], "finish_reason"), str) and reason:
        ev["finish_reason"] = reason
    if isinstance(start, int | float) and isinstance(end, int | float):
        ev["latency_ms"] = max(0, round((float(end) - float(start)) * 1000))
    if ev["event_id"] is None:
        del ev["event_id"]  # the worker dead-letters it as missing_field:event_id
    return Call(ev, prompt_text(payload.get("messages")), output_text(response))


# The logger -------------------------------------------------------------------


class _Every:
    """Lets a repeated message through at most once per ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._last = -float("inf")
        self._lock = threading.Lock()

    def ready(self) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._last < self.seconds:
                return False
            self._last = now
            return True


class TokenlordLogger(CustomLogger):
    """A LiteLLM callback that produces one tokenlord usage event per call.

    ``settings`` default to ``Settings.from_env()`` at the first event;
    ``producer_config`` adds librdkafka properties; ``producer_factory`` makes
    the producer from them (default ``confluent_kafka.Producer``).

    Counters (read them any time): :attr:`received` (calls logged),
    :attr:`queued`, :attr:`dropped` (queue full, settings wrong, or after
    :meth:`close`), :attr:`delivered`, :attr:`errors` (Kafka refused or could
    not deliver an event), :attr:`skipped` (a call without a standard logging
    payload).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        producer_config: Mapping[str, Any] | None = None,
        producer_factory: Callable[[dict[str, Any]], ProducerLike] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._settings = settings
        self._producer_config = dict(producer_config or {})
        self._producer_factory = producer_factory
        self._lock = threading.Lock()
        self._queue: queue.Queue[Call] | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._closing = threading.Event()
        self._closed = False
        self._deadline = float("inf")
        self._send_text = False
        self._disabled: str | None = None
        self._maxsize = 0
        self._drop_log = _Every(LOG_EVERY_S)
        self._error_log = _Every(LOG_EVERY_S)
        self.received = 0
        self.queued = 0
        self.dropped = 0
        self.delivered = 0
        self.errors = 0
        self.skipped = 0

    # LiteLLM's hooks: map and enqueue, nothing else --------------------------

    def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._record(kwargs, failed=False)

    def log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._record(kwargs, failed=True)

    async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._record(kwargs, failed=False)

    async def async_log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._record(kwargs, failed=True)

    def stats(self) -> dict[str, int]:
        """The counters, for a health endpoint or a test."""
        with self._lock:
            return {k: getattr(self, k) for k in ("received", "queued", "dropped", "delivered", "errors", "skipped")}

    def _add(self, counter: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, counter, getattr(self, counter) + n)

    def _record(self, kwargs: Any, *, failed: bool) -> None:
        """Never raises and never blocks: LiteLLM calls it on the request's path."""
        self._add("received")
        try:
            payload = _get(kwargs, "standard_logging_object")
            if not isinstance(payload, Mapping):
                self._add("skipped")
                return
            call = map_payload(payload, failed=failed)
            q = self._ensure_started()
            if q is None:
                self._drop(1)
                return
            q.put_nowait(call)
            self._add("queued")
        except queue.Full:
            self._drop(1)
        except Exception:  # a logging callback must never break a request
            self._add("skipped")
            if self._error_log.ready():
                log.exception("tokenlord: could not map a LiteLLM call to an event")

    def _drop(self, n: int) -> None:
        self._add("dropped", n)
        if self._drop_log.ready():
            why = self._disabled or (
                "the logger is closed"
                if self._closed
                else f"the queue of {self._maxsize} events is full (is Kafka slow or down?)"
            )
            log.warning("tokenlord: %d event(s) dropped so far: %s", self.dropped, why)

    def _ensure_started(self) -> queue.Queue[Call] | None:
        """The queue, starting the producer thread on the first event (and again
        in a forked child, which has no threads). None: events are dropped."""
        q = self._queue
        if q is not None and self._pid == os.getpid():
            return q
        with self._lock:
            if self._closed or self._disabled:
                return None
            if self._queue is not None and self._pid == os.getpid():
                return self._queue
            try:
                settings = self._settings or Settings.from_env()
            except TokenlordError as exc:
                self._disabled = f"{exc} (LiteLLM calls go on; tokenlord sends nothing)"
                log.error("tokenlord: %s", self._disabled)
                return None
            self._send_text = settings.gateway_send_text
            self._maxsize = settings.gateway_queue_size
            self._queue = queue.Queue(maxsize=self._maxsize)
            self._pid = os.getpid()
            self._thread = threading.Thread(
                target=self._run, args=(settings, self._queue), name="tokenlord-litellm", daemon=True
            )
            self._thread.start()
            atexit.register(self.close)
            return self._queue

    # The background thread ------------------------------------------------------

    def _new_producer(self, settings: Settings) -> ProducerLike:
        from tokenlord.kafka.produce import producer_config

        conf = producer_config(settings, **{**PRODUCER_DEFAULTS, **self._producer_config})
        if self._producer_factory is not None:
            return self._producer_factory(conf)
        from confluent_kafka import Producer

        producer: ProducerLike = Producer(conf)
        return producer

    def _run(self, settings: Settings, q: queue.Queue[Call]) -> None:
        try:
            producer = self._new_producer(settings)
        except Exception as exc:
            with self._lock:
                self._disabled = (
                    f"cannot create the Kafka producer ({exc}); LiteLLM calls go on, tokenlord sends nothing"
                )
                self._queue = None  # later events are dropped at once
            log.error("tokenlord: %s", self._disabled)
            self._drain_dropped(q)
            return
        topic = settings.events_topic
        while True:
            try:
                batch = [q.get(timeout=0.2)]
            except queue.Empty:
                producer.poll(0)
                if self._closing.is_set():
                    break
                continue
            while len(batch) < BATCH:
                try:
                    batch.append(q.get_nowait())
                except queue.Empty:
                    break
            try:
                self._send(producer, topic, batch)
            except Exception as exc:  # never lose the thread (and every later event) to one batch
                self._add("errors", len(batch))
                if self._error_log.ready():
                    log.error("tokenlord: cannot send %d events (%s); they are dropped", len(batch), exc)
        remaining = producer.flush(max(0.0, self._deadline - time.monotonic()))
        if remaining:
            self._add("errors", remaining)
            log.error("tokenlord: %d events not delivered to %r at shutdown (is Kafka up?)", remaining, topic)

    def _drain_dropped(self, q: queue.Queue[Call]) -> None:
        n = 0
        while True:
            try:
                q.get_nowait()
                n += 1
            except queue.Empty:
                break
        with self._lock:
            self.queued -= n
        self._drop(n)

    def _values(self, batch: list[Call]) -> list[bytes]:
        if self._send_text:
            return [orjson.dumps({**c.event, **{k: utf8(v) for k, v in _text_fields(c).items()}}) for c in batch]
        pairs = [(c.prompt, c.output) for c in batch]
        marks: list[dict[str, Any] | None] = [None] * len(batch)
        wanted = [i for i, (p, o) in enumerate(pairs) if p is not None or o is not None]
        if wanted:
            try:
                import tokenlord

                for i, mark in zip(wanted, tokenlord.fingerprints([pairs[i] for i in wanted]), strict=True):
                    marks[i] = mark
            except Exception as exc:  # counts still go: the call is counted, its waste signals are lost
                if self._error_log.ready():
                    log.error("tokenlord: cannot fingerprint events (%s); sending them with counts only", exc)
        return [
            orjson.dumps(c.event if mark is None else {**c.event, "fingerprint": mark})
            for c, mark in zip(batch, marks, strict=True)
        ]

    def _send(self, producer: ProducerLike, topic: str, batch: list[Call]) -> None:
        for call, value in zip(batch, self._values(batch), strict=True):
            user = call.event.get("user")
            key = user.encode() if isinstance(user, str) else None
            while True:
                try:
                    producer.produce(topic, value=value, key=key, on_delivery=self._on_delivery)
                    break
                except BufferError:  # librdkafka's buffer is full: wait here, the queue takes the pressure
                    if self._closing.is_set() and time.monotonic() >= self._deadline:
                        self._add("errors")
                        break
                    producer.poll(0.1)
                except Exception as exc:
                    self._error(f"Kafka refused an event for {topic!r}: {exc}")
                    break
        producer.poll(0)

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is None:
            self._add("delivered")
        else:
            self._error(f"an event was not delivered: {err}")

    def _error(self, what: str) -> None:
        self._add("errors")
        if self._error_log.ready():
            log.error("tokenlord: %s (%d Kafka errors so far)", what, self.errors)

    # Shutdown -------------------------------------------------------------------

    def close(self, timeout: float = 10.0) -> None:
        """Sends what is queued (waiting at most ``timeout`` seconds for Kafka)
        and stops the thread; later events are dropped. Called at exit."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread if self._pid == os.getpid() else None
            self._queue = None  # later events are dropped (the thread keeps its own reference)
        self._deadline = time.monotonic() + timeout
        self._closing.set()
        if thread is not None:
            thread.join(timeout + 1.0)
        atexit.unregister(self.close)


def _text_fields(call: Call) -> dict[str, str]:
    return {k: v for k, v in (("prompt", call.prompt), ("output", call.output)) if v is not None}


#: For a LiteLLM proxy's ``config.yaml``: ``callbacks: tokenlord.integrations.litellm.proxy_handler_instance``.
#: Cheap: settings are read, and Kafka is connected, at the first event.
proxy_handler_instance = TokenlordLogger()
