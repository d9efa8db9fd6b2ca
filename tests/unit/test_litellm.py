"""The LiteLLM callback on real LiteLLM calls (offline: ``mock_response``, the
local model cost map): the standard logging payloads LiteLLM itself builds are
mapped to events, and what would go to Kafka is captured by a stand-in
producer (the real Kafka path is tests/integration/test_litellm_pipeline.py)."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no internet: LiteLLM must not fetch its price map

import litellm
import orjson
import pytest
import tokenlord
from confluent_kafka import KafkaException
from litellm.integrations.custom_logger import CustomLogger
from tokenlord.integrations.litellm import TokenlordLogger, map_payload
from tokenlord.settings import Settings

MESSAGES = [
    {"role": "system", "content": "You answer in one word."},
    {"role": "user", "content": [{"type": "text", "text": "What colour is the sky?"}]},
]


class Payloads(CustomLogger):
    """Keeps LiteLLM's own payloads, to compare the events with."""

    def __init__(self) -> None:
        super().__init__()
        self.got: list[dict[str, Any]] = []

    def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self.got.append(kwargs["standard_logging_object"])

    log_failure_event = log_success_event

    async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self.got.append(kwargs["standard_logging_object"])

    async_log_failure_event = async_log_success_event


class Captured:
    """A stand-in for confluent_kafka.Producer that keeps what it is given."""

    def __init__(self, fail: str | None = None) -> None:
        self.fail = fail
        self.conf: dict[str, Any] = {}
        self.sent: list[tuple[str, bytes | None, dict[str, Any]]] = []
        self.threads: set[int] = set()

    def produce(self, topic: str, *, value: bytes, key: bytes | None, on_delivery: Callable[[Any, Any], None]) -> None:
        self.threads.add(threading.get_ident())
        if self.fail == "refuse":
            raise KafkaException("broker says no")
        self.sent.append((topic, key, orjson.loads(value)))
        on_delivery("timed out" if self.fail == "undelivered" else None, None)

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        return 0


def register(*loggers: CustomLogger) -> None:
    """Makes ``loggers`` LiteLLM's only callbacks. LiteLLM registers one logger
    per class, so the lists it derives from ``litellm.callbacks`` are reset too."""
    litellm.success_callback, litellm.failure_callback = [], []
    litellm._async_success_callback, litellm._async_failure_callback = [], []
    litellm.callbacks = list(loggers)


def wait_for(cond: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.fixture
def fingerprints(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str | None, str | None]]:
    """Records the (prompt, output) pairs the logger fingerprints (a marker stands for each fingerprint)."""
    pairs: list[tuple[str | None, str | None]] = []

    def fake(batch: Any) -> list[dict[str, Any]]:
        batch = list(batch)
        pairs.extend(batch)
        return [{"v": 1, "n": len(pairs) - len(batch) + i} for i in range(len(batch))]

    monkeypatch.setattr(tokenlord, "fingerprints", fake, raising=False)
    return pairs


@pytest.fixture
def run() -> Iterator[Callable[..., tuple[TokenlordLogger, Captured, Payloads]]]:
    """``run(logger_kwargs..., settings=...)``: a TokenlordLogger with a captured
    producer, registered in LiteLLM next to a payload recorder."""
    made: list[TokenlordLogger] = []

    def start(
        settings: Settings | None = None, *, fail: str | None = None, gate: threading.Event | None = None
    ) -> tuple[TokenlordLogger, Captured, Payloads]:
        producer = Captured(fail)

        def factory(conf: dict[str, Any]) -> Captured:
            if gate is not None:  # the thread cannot produce until the gate opens
                gate.wait(30)
            producer.conf = conf
            return producer

        logger = TokenlordLogger(settings or Settings(), producer_factory=factory)
        payloads = Payloads()
        register(logger, payloads)
        made.append(logger)
        return logger, producer, payloads

    yield start
    for logger in made:
        logger.close(timeout=1)
    register()


def settle(logger: TokenlordLogger, payloads: Payloads, calls: int) -> None:
    """Waits for LiteLLM to have called both loggers (its sync hooks run on a thread pool), then flushes."""
    wait_for(lambda: logger.received == calls and len(payloads.got) == calls, f"{calls} logged calls")
    logger.close()


def test_a_successful_call_is_one_event_with_its_counts_and_fingerprint(
    run: Any, fingerprints: list[tuple[str | None, str | None]]
) -> None:
    logger, producer, payloads = run()
    usage = litellm.Usage(
        prompt_tokens=1200,
        completion_tokens=300,
        total_tokens=1500,
        prompt_tokens_details={"cached_tokens": 1000},
        completion_tokens_details={"reasoning_tokens": 250},
    )
    answer = litellm.ModelResponse(
        choices=[{"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": "Blue."}}],
        usage=usage,
    )
    resp = litellm.completion(
        model="gpt-4o",
        messages=MESSAGES,
        mock_response=answer,
        user="end-user-7",
        metadata={"user_api_key_user_id": "alice", "user_api_key_team_alias": "search"},
        litellm_session_id="conv-42",
    )
    settle(logger, payloads, 1)
    [payload] = payloads.got
    [(topic, key, event)] = producer.sent
    assert (topic, key) == ("tokenlord.events", b"alice")
    assert event == {
        "event_id": resp.id,
        "ts": round(payload["endTime"] * 1000),
        "user": "alice",  # the key's user wins over the request's `user`
        "team": "search",
        "model": "gpt-4o",
        "provider": "openai",
        "session_id": "conv-42",
        "input_tokens": 1200,
        "output_tokens": 300,
        "cached_input_tokens": 1000,
        "reasoning_tokens": 250,
        "status": "ok",
        "finish_reason": "length",
        "latency_ms": round((payload["endTime"] - payload["startTime"]) * 1000),
        "fingerprint": {"v": 1, "n": 0},
    }
    assert fingerprints == [("You answer in one word.\nWhat colour is the sky?", "Blue.")]
    assert logger.stats() == {"received": 1, "queued": 1, "dropped": 0, "delivered": 1, "errors": 0, "skipped": 0}


def test_no_text_on_the_wire_unless_the_operator_opts_in(run: Any, fingerprints: list[Any]) -> None:
    logger, producer, payloads = run()
    litellm.completion(model="gpt-4o-mini", messages=MESSAGES, mock_response="Blue, mostly.", user="bob")
    settle(logger, payloads, 1)
    [(_, key, event)] = producer.sent
    assert key == b"bob" and event["user"] == "bob"  # no key user: the end user
    assert "prompt" not in event and "output" not in event
    assert "sky" not in orjson.dumps(event).decode() and "mostly" not in orjson.dumps(event).decode()
    assert event["input_tokens"] == payloads.got[0]["prompt_tokens"] > 0

    logger, producer, payloads = run(Settings(gateway_send_text=True))
    litellm.completion(model="gpt-4o-mini", messages=MESSAGES, mock_response="Blue, mostly.", user="bob")
    settle(logger, payloads, 1)
    [(_, _, event)] = producer.sent
    assert event["prompt"] == "You answer in one word.\nWhat colour is the sky?"
    assert event["output"] == "Blue, mostly."
    assert "fingerprint" not in event
    assert len(fingerprints) == 1  # only the first logger fingerprinted


def test_text_litellm_redacted_is_not_fingerprinted(run: Any, fingerprints: list[Any]) -> None:
    logger, producer, payloads = run()
    litellm.turn_off_message_logging = True
    try:
        litellm.completion(model="gpt-4o", messages=MESSAGES, mock_response="Blue.", user="bob")
        settle(logger, payloads, 1)
    finally:
        litellm.turn_off_message_logging = False
    assert payloads.got[0]["messages"][0]["content"] == "redacted-by-litellm"
    [(_, _, event)] = producer.sent
    assert "fingerprint" not in event and fingerprints == []
    assert event["input_tokens"] > 0  # the counts still go


def test_a_failed_call_is_an_error_event(run: Any, fingerprints: list[Any]) -> None:
    logger, producer, payloads = run()
    with pytest.raises(litellm.exceptions.InternalServerError):
        litellm.completion(model="gpt-4o", messages=MESSAGES, mock_response=Exception("upstream down"), user="carol")
    settle(logger, payloads, 1)
    [payload] = payloads.got
    assert payload["status"] == "failure"
    [(_, key, event)] = producer.sent
    assert key == b"carol"
    assert event == {
        "event_id": payload["id"],
        "ts": round(payload["endTime"] * 1000),
        "user": "carol",
        "model": "gpt-4o",
        "provider": "openai",
        "session_id": payload["trace_id"],
        "input_tokens": 0,
        "output_tokens": 0,
        "status": "error",
        "latency_ms": round((payload["endTime"] - payload["startTime"]) * 1000),
        "fingerprint": {"v": 1, "n": 0},
    }
    assert fingerprints == [("You answer in one word.\nWhat colour is the sky?", None)]


def test_async_calls_go_through_the_async_hooks(run: Any, fingerprints: list[Any]) -> None:
    logger, producer, payloads = run()

    async def calls() -> None:
        await litellm.acompletion(
            model="anthropic/claude-sonnet-4", messages=MESSAGES, mock_response="Blue.", user="dan"
        )
        with pytest.raises(litellm.exceptions.InternalServerError):
            await litellm.acompletion(model="gpt-4o", messages=MESSAGES, mock_response=Exception("no"), user="dan")
        wait = time.monotonic() + 30
        while logger.received < 2 and time.monotonic() < wait:  # the hooks run as tasks of this loop
            await asyncio.sleep(0.01)

    asyncio.run(calls())
    settle(logger, payloads, 2)
    events = sorted((e for _, _, e in producer.sent), key=lambda e: e["status"])
    assert [(e["status"], e["model"], e["provider"]) for e in events] == [
        ("error", "gpt-4o", "openai"),
        ("ok", "claude-sonnet-4", "anthropic"),
    ]
    assert {e["event_id"] for e in events} == {p["id"] for p in payloads.got}


def test_a_full_queue_drops_and_counts_and_never_blocks_the_call(
    run: Any, fingerprints: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    gate = threading.Event()  # the producer thread is stuck (a broker that never answers)
    logger, producer, payloads = run(Settings(gateway_queue_size=3), gate=gate)
    caplog.set_level(logging.WARNING, "tokenlord.integrations.litellm")
    for i in range(10):
        litellm.completion(
            model="gpt-4o", messages=[{"role": "user", "content": f"q{i}"}], mock_response="a", user="eve"
        )
    wait_for(lambda: logger.received == 10, "10 logged calls")
    assert (logger.queued, logger.dropped) == (3, 7)
    drops = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(drops) == 1 and "queue of 3 events is full" in drops[0].getMessage()  # rate-limited
    gate.set()
    settle(logger, payloads, 10)
    assert len(producer.sent) == logger.delivered == 3
    assert producer.threads == {logger._thread.ident}  # type: ignore[union-attr]  # never the caller's thread
    litellm.completion(model="gpt-4o", messages=MESSAGES, mock_response="late", user="eve")
    wait_for(lambda: logger.received == 11, "the call after close")
    assert logger.dropped == 8  # after close: dropped, counted


@pytest.mark.parametrize("fail", ["refuse", "undelivered"])
def test_kafka_errors_are_counted_not_raised(run: Any, fingerprints: list[Any], fail: str) -> None:
    logger, _producer, payloads = run(fail=fail)
    for _ in range(3):
        litellm.completion(model="gpt-4o", messages=MESSAGES, mock_response="a", user="fay")
    settle(logger, payloads, 3)
    assert (logger.errors, logger.delivered, logger.queued) == (3, 0, 3)


def test_wrong_settings_drop_events_but_not_calls(
    run: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TOKENLORD_KAFKA_BROKERS", "not a broker list")
    logger = TokenlordLogger()
    payloads = Payloads()
    register(logger, payloads)
    try:
        with caplog.at_level(logging.ERROR, "tokenlord.integrations.litellm"):
            for _ in range(2):
                assert litellm.completion(model="gpt-4o", messages=MESSAGES, mock_response="fine", user="gus")
            wait_for(lambda: logger.received == 2, "2 logged calls")
        assert logger.dropped == 2 and logger._thread is None
        [err] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert "TOKENLORD_KAFKA_BROKERS" in err and "host:port" in err
    finally:
        register()


def test_fingerprint_failures_still_send_the_counts(run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(pairs: Any) -> list[dict[str, Any]]:
        raise tokenlord.ConfigError("TOKENLORD_FINGERPRINT_KEY_FILE='/nope': cannot read it")

    monkeypatch.setattr(tokenlord, "fingerprints", broken, raising=False)
    logger, producer, payloads = run()
    litellm.completion(model="gpt-4o", messages=MESSAGES, mock_response="a", user="hal")
    settle(logger, payloads, 1)
    [(_, _, event)] = producer.sent
    assert "fingerprint" not in event and event["input_tokens"] > 0 and logger.delivered == 1


def test_mapping_edges_on_a_real_payload(run: Any, fingerprints: list[Any]) -> None:
    logger, _producer, payloads = run()
    litellm.completion(model="gpt-4o", messages=MESSAGES, mock_response="a", user="ivy")
    settle(logger, payloads, 1)
    payload = payloads.got[0]
    # A LiteLLM cache hit spent no provider tokens.
    hit = map_payload({**payload, "cache_hit": True}).event
    assert (hit["input_tokens"], hit["output_tokens"]) == (0, 0)
    # Details larger than their totals are bounded by them (the contract's ranges).
    usage = {
        "prompt_tokens_details": {"cached_tokens": 10**6},
        "completion_tokens_details": {"reasoning_tokens": 10**6},
    }
    big = map_payload({**payload, "response": {**payload["response"], "usage": usage}}).event
    assert big["cached_input_tokens"] == big["input_tokens"] and big["reasoning_tokens"] == big["output_tokens"]
    # An id longer than the contract's 128 chars becomes a stable hash of it.
    long_id = map_payload({**payload, "id": "x" * 300}).event["event_id"]
    assert len(long_id) <= 128 and long_id == map_payload({**payload, "id": "x" * 300}).event["event_id"]
    # No user anywhere: sent without one (the worker dead-letters it as missing_field:user).
    anon = map_payload({**payload, "model_parameters": {}}).event
    assert "user" not in anon
    # A proxy's end user and team id when there is no alias.
    meta = {**payload["metadata"], "user_api_key_team_id": "team-9"}
    proxied = map_payload({**payload, "model_parameters": {}, "end_user": "cust-1", "metadata": meta}).event
    assert (proxied["user"], proxied["team"]) == ("cust-1", "team-9")


def test_import_is_lazy_and_needs_no_worker_dependencies() -> None:
    code = """
import os, sys, threading
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
before = threading.active_count()
from tokenlord.integrations import litellm as tl
assert tl.proxy_handler_instance._thread is None and tl.proxy_handler_instance._queue is None
call = tl.map_payload({"id": "c1", "model": "m", "endTime": 1.0, "prompt_tokens": 1, "completion_tokens": 2})
assert call.event["input_tokens"] == 1
worker = ("faust", "mode", "aiokafka", "chdb", "clickhouse_connect", "prometheus_client", "streams",
          "tokenlord.pipeline", "tokenlord.store", "tokenlord.stats")
loaded = sorted(m for m in sys.modules if any(m == w or m.startswith(w + ".") for w in worker))
assert not loaded, loaded
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


def test_gateway_settings() -> None:
    s = Settings.from_env(environ={"TOKENLORD_GATEWAY_SEND_TEXT": "yes", "TOKENLORD_GATEWAY_QUEUE_SIZE": "50"})
    assert (s.gateway_send_text, s.gateway_queue_size) == (True, 50)
    assert Settings.from_env(environ={}).gateway_send_text is False
    with pytest.raises(tokenlord.ConfigError, match="TOKENLORD_GATEWAY_SEND_TEXT='maybe': must be true or false"):
        Settings.from_env(environ={"TOKENLORD_GATEWAY_SEND_TEXT": "maybe"})
    with pytest.raises(tokenlord.ConfigError, match="TOKENLORD_GATEWAY_QUEUE_SIZE='0': must be > 0"):
        Settings.from_env(environ={"TOKENLORD_GATEWAY_QUEUE_SIZE": "0"})


def test_a_producer_that_cannot_be_made_drops_every_event(run: Any, fingerprints: list[Any]) -> None:
    def factory(conf: dict[str, Any]) -> Captured:
        raise KafkaException('No such configuration property: "sasl.oops"')

    logger = TokenlordLogger(Settings(), producer_factory=factory)
    payloads = Payloads()
    register(logger, payloads)
    try:
        for _ in range(3):
            litellm.completion(model="gpt-4o", messages=MESSAGES, mock_response="a", user="jo")
        wait_for(lambda: logger.received == 3 and logger.queued == 0 and logger.dropped == 3, "3 dropped calls")
        assert logger._disabled is not None and "sasl.oops" in logger._disabled
    finally:
        register()
        logger.close(timeout=1)


def test_the_proxy_config_line_loads_the_instance(tmp_path: Any) -> None:
    """``callbacks: tokenlord.integrations.litellm.proxy_handler_instance``, as LiteLLM's proxy resolves it."""
    from litellm.proxy.types_utils.utils import get_instance_fn
    from tokenlord.integrations import litellm as integration

    config = tmp_path / "config.yaml"
    config.write_text("litellm_settings:\n  callbacks: tokenlord.integrations.litellm.proxy_handler_instance\n")
    instance = get_instance_fn("tokenlord.integrations.litellm.proxy_handler_instance", str(config))
    assert instance is integration.proxy_handler_instance and isinstance(instance, CustomLogger)


def test_a_streamed_call_is_one_event_once_complete(run: Any, fingerprints: list[Any]) -> None:
    logger, producer, payloads = run()
    chunks = litellm.completion(model="gpt-4o", messages=MESSAGES, mock_response="Blue, in daylight.", stream=True,
                                user="kim")  # fmt: skip
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Blue, in daylight."
    settle(logger, payloads, 1)
    [(_, _, event)] = producer.sent
    assert (event["user"], event["status"]) == ("kim", "ok")
    assert event["output_tokens"] == payloads.got[0]["completion_tokens"]
    assert event["output_tokens"] > 0 and event["finish_reason"] == "stop"
    assert fingerprints == [("You answer in one word.\nWhat colour is the sky?", "Blue, in daylight.")]


def test_queued_events_are_sent_when_the_process_exits() -> None:
    """An SDK script that ends right after its calls: the atexit hook sends what is queued."""
    code = """
import os
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
import litellm, tokenlord
from tokenlord.integrations.litellm import TokenlordLogger
tokenlord.fingerprints = lambda pairs: [{"v": 1} for _ in pairs]
class Out:
    def __init__(self, conf): pass
    def produce(self, topic, *, value, key, on_delivery):
        print("sent", key.decode(), flush=True)
        on_delivery(None, None)
    def poll(self, timeout): return 0
    def flush(self, timeout): print("flushed", flush=True); return 0
litellm.callbacks = [TokenlordLogger(producer_factory=Out)]
for i in range(3):
    litellm.completion(model="gpt-4o", messages=[{"role": "user", "content": "x"}], mock_response="y", user="u")
print("exiting", flush=True)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.split()
    assert lines.count("sent") == 3 and lines[-1] == "flushed", out.stdout
