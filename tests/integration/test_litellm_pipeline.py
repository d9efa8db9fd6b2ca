"""The LiteLLM callback end to end: real LiteLLM calls (offline, ``mock_response``)
through ``TokenlordLogger`` into real Kafka and ``tokenlord worker
--stop-at-end``; and a dead broker never holding up a call."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no internet: LiteLLM must not fetch its price map

import expected
import litellm
import orjson
import pytest
from confluent_kafka import Producer
from e2e import dump_views, free_port, reference_for, run_worker, worker_env
from litellm.integrations.custom_logger import CustomLogger
from tokenlord.integrations.litellm import TokenlordLogger
from tokenlord.kafka.admin import consume_all
from tokenlord.settings import Settings

pytestmark = pytest.mark.integration

# Long enough (>= 32 tokens) for the waste rules to consider repeats of it.
REPEATED = " ".join(f"Summarise section {i} of the quarterly report and list its open risks." for i in range(6))


def register(*loggers: CustomLogger) -> None:
    """Makes ``loggers`` LiteLLM's only callbacks (LiteLLM keeps one logger per class)."""
    litellm.success_callback, litellm.failure_callback = [], []
    litellm._async_success_callback, litellm._async_failure_callback = [], []
    litellm.callbacks = list(loggers)


def wait_for(cond: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


async def loop_wait_for(cond: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """:func:`wait_for` inside an event loop (LiteLLM's async hooks run as tasks of it)."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def answer(text: str, prompt: int, completion: int, cached: int = 0, reasoning: int = 0) -> litellm.ModelResponse:
    usage = litellm.Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details={"cached_tokens": cached},
        completion_tokens_details={"reasoning_tokens": reasoning},
    )
    return litellm.ModelResponse(
        choices=[{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}], usage=usage
    )


def test_litellm_calls_reach_the_leaderboard_exactly(kafka_brokers: str, topic: Any, tmp_path: Path) -> None:
    events_topic = topic("litellm", 3)
    env = worker_env(kafka_brokers, events_topic, tmp_path / "ch")
    logger = TokenlordLogger(Settings.from_env(environ=env))
    register(logger)
    want: dict[str, Counter[str]] = {}
    teams: dict[str, str] = {}

    def spent(user: str, team: str, usage: Any, ok: bool) -> None:
        c = want.setdefault(user, Counter())
        c["requests"] += 1
        c["input_tokens"] += usage.prompt_tokens if ok else 0
        c["output_tokens"] += usage.completion_tokens if ok else 0
        teams[user] = team

    calls = 0
    try:
        # A proxy's key user with a team: the same long prompt three times (a repeat the waste rules see).
        key = {"user_api_key_user_id": "alice", "user_api_key_team_alias": "research"}
        for i in range(3):
            r = litellm.completion(
                model="gpt-4o",
                messages=[{"role": "user", "content": REPEATED}],
                mock_response=answer(f"Risks, take {i}: none.", 900, 120, cached=600 if i else 0),
                metadata=key,
            )
            spent("alice", "research", r.usage, True)
            calls += 1

        # SDK end users, async, with reasoning tokens.
        async def bob() -> None:
            for i in range(2):
                r = await litellm.acompletion(
                    model="o3-mini",
                    messages=[{"role": "user", "content": f"Prove lemma {i}."}],
                    mock_response=answer(f"Proof {i}.", 50 + i, 400, reasoning=350),
                    user="bob",
                )
                spent("bob", "", r.usage, True)
            await loop_wait_for(lambda: logger.received >= 5, "the async hooks")

        asyncio.run(bob())
        calls += 2
        # Failures: sync and async.
        with pytest.raises(litellm.exceptions.InternalServerError):
            litellm.completion(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                               mock_response=Exception("upstream 500"), user="carol")  # fmt: skip
        spent("carol", "", None, False)

        async def carol() -> None:
            with pytest.raises(litellm.exceptions.InternalServerError):
                await litellm.acompletion(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi again"}],
                                          mock_response=Exception("upstream 503"), user="carol")  # fmt: skip
            await loop_wait_for(lambda: logger.received >= 7, "the async failure hook")

        asyncio.run(carol())
        spent("carol", "", None, False)
        r = litellm.completion(model="gpt-4o-mini", messages=[{"role": "user", "content": "third time"}],
                               mock_response=answer("lucky", 7, 2), user="carol")  # fmt: skip
        spent("carol", "", r.usage, True)
        calls += 3
        wait_for(lambda: logger.received == calls, f"{calls} logged calls")
    finally:
        logger.close(timeout=30)
        register()
    assert logger.stats() == {"received": calls, "queued": calls, "dropped": 0, "delivered": calls,
                              "errors": 0, "skipped": 0}  # fmt: skip

    # On the wire: one message per call, keyed by user, counts and a fingerprint, no text.
    messages = consume_all(kafka_brokers, events_topic)
    assert len(messages) == calls
    for m in messages:
        ev = orjson.loads(m.value())
        assert m.key() == ev["user"].encode()
        assert "prompt" not in ev and "output" not in ev and b"quarterly" not in m.value()
        assert ev["fingerprint"]["v"] >= 1, ev

    proc = run_worker(env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    settings = Settings.from_env(environ=env)
    views = dump_views(settings.clickhouse_url, settings.database)
    assert views["rejected"] == []

    # The leaderboard shows the calls, exactly as LiteLLM reported them.
    got = {r["user"]: r for r in views["leaderboard_weekly"]}
    assert set(got) == set(want)
    for user, c in want.items():
        row = got[user]
        assert (row["requests"], row["input_tokens"], row["output_tokens"]) == (
            c["requests"], c["input_tokens"], c["output_tokens"]), user  # fmt: skip
        assert row["total_tokens"] == c["input_tokens"] + c["output_tokens"]
        assert row["team"] == teams[user]
    by_user = Counter((e["user"], e["status"]) for e in views["events"])
    assert by_user == {("alice", "ok"): 3, ("bob", "ok"): 2, ("carol", "error"): 2, ("carol", "ok"): 1}
    alice = sorted((e for e in views["events"] if e["user"] == "alice"), key=lambda e: e["ts_ms"])
    assert [e["cached_input_tokens"] for e in alice] == [0, 600, 600]
    assert all((e["provider"], e["model"], e["team"], e["finish_reason"]) == ("openai", "gpt-4o", "research", "stop")
               for e in alice)  # fmt: skip
    assert [e["reasoning_tokens"] for e in views["events"] if e["user"] == "bob"] == [350, 350]
    # And every view equals the plain-Python reference's, waste verdicts from the fingerprints included.
    ref = reference_for(kafka_brokers, events_topic, int(time.time() * 1000), settings)
    want_lb = expected.leaderboard(ref)
    expected.approx_equal_rows(
        sorted(views["leaderboard_weekly"], key=lambda r: (r["week_start"], r["rank"])), want_lb,
        ("cost_usd", "waste_ratio"),
    )  # fmt: skip
    assert got["alice"]["wasted_tokens"] > 0, "the third identical prompt is a repeat"


class RecordingProducer(Producer):
    """The real librdkafka producer, noting which threads call into it."""

    threads: set[int]

    def produce(self, *args: Any, **kwargs: Any) -> None:
        self.threads.add(threading.get_ident())
        super().produce(*args, **kwargs)

    def poll(self, *args: Any, **kwargs: Any) -> int:
        self.threads.add(threading.get_ident())
        return int(super().poll(*args, **kwargs))

    def flush(self, *args: Any, **kwargs: Any) -> int:
        self.threads.add(threading.get_ident())
        return int(super().flush(*args, **kwargs))


def test_a_dead_broker_never_holds_up_a_call() -> None:
    """Kafka unreachable: every call returns, the hooks never call the producer,
    the queue fills and the rest are dropped and counted; at close every queued
    event is counted as not delivered (nothing vanishes uncounted)."""
    made: list[RecordingProducer] = []

    def factory(conf: dict[str, Any]) -> RecordingProducer:
        p = RecordingProducer(conf)
        p.threads = set()
        made.append(p)
        return p

    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    logger = TokenlordLogger(
        Settings(kafka_brokers=dead, gateway_queue_size=20),
        producer_config={"queue.buffering.max.messages": 5, "log_level": 0},  # librdkafka's buffer fills at once
        producer_factory=factory,
    )
    register(logger)
    calls = 120
    try:
        for i in range(calls):
            r = litellm.completion(model="gpt-4o", messages=[{"role": "user", "content": f"q{i}"}],
                                   mock_response="a", user="dave")  # fmt: skip
            assert r.choices[0].message.content == "a"
        wait_for(lambda: logger.received == calls, f"{calls} logged calls")
        assert logger.queued + logger.dropped == calls
        assert logger.dropped > 0, "the queue should have filled behind a dead broker"
        assert logger.delivered == 0
    finally:
        register()
        logger.close(timeout=1)
    [producer] = made
    assert producer.threads == {logger._thread.ident}  # type: ignore[union-attr]  # only the logger's thread
    assert logger.errors == logger.queued, logger.stats()  # each queued event: counted as not delivered
    assert not logger._thread.is_alive()  # type: ignore[union-attr]
