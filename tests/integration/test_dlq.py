"""The dead-letter producer against a real broker: bounded letters, parking, retries."""

from __future__ import annotations

import contextlib
import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from tokenlord.kafka.admin import consume_all, delete_topics, ensure_topics, topic_config
from tokenlord.kafka.dlq import PARKED_VALUE_BYTES, DeadLetters, topic_max_message_bytes
from tokenlord.kafka.security import client_config
from tokenlord.settings import Settings

from streams.worker import ensure_dlq_topic


def rejected(raws: list[bytes]) -> dict[str, list[Any]]:
    n = len(raws)
    return {
        "src_partition": [0] * n,
        "src_offset": list(range(n)),
        "idx": [0] * n,
        "reason": ["invalid_json"] * n,
        "raw": raws,
    }


@pytest.fixture
def dlq_topic(kafka_brokers: str) -> Iterator[Any]:
    made: list[str] = []

    def make(config: dict[str, str] | None = None) -> str:
        name = f"dlq-{uuid.uuid4().hex[:12]}"
        ensure_topics(kafka_brokers, {name: 1}, config=config)
        made.append(name)
        return name

    yield make
    with contextlib.suppress(Exception):
        delete_topics(kafka_brokers, made)


def test_keys_are_cut_and_values_kept_whole(kafka_brokers: str, dlq_topic: Any) -> None:
    topic = dlq_topic({"max.message.bytes": str(topic_max_message_bytes(20_000, 16))})
    dlq = DeadLetters(kafka_brokers, topic, max_key_bytes=16)
    keys = {(0, 0): b"k" * 100_000, (0, 1): b"short"}
    value = random.Random(2).randbytes(20_000)  # a whole source message, incompressible
    sent = dlq.send(rejected([value, b"{}"]), keys, "events")
    assert (sent.letters, sent.truncated, sent.parked) == (2, 1, 0)
    msgs = sorted(consume_all(kafka_brokers, topic), key=lambda m: m.offset())
    first, second = (dict(m.headers() or []) for m in msgs)
    assert msgs[0].key() == b"k" * 16 and first["tokenlord.key_truncated"] == b"100000"
    assert msgs[0].value() == value and "tokenlord.truncated" not in first
    assert msgs[1].key() == b"short" and msgs[1].value() == b"{}"
    assert "tokenlord.key_truncated" not in second


def test_the_worker_sizes_the_dlq_topic_for_whole_source_messages(kafka_brokers: str, dlq_topic: Any) -> None:
    events = dlq_topic({"max.message.bytes": "3000000"})
    dlq = f"dlq-{uuid.uuid4().hex[:12]}"
    settings = Settings(kafka_brokers=kafka_brokers, events_topic=events, dlq_topic=dlq, partitions=1)
    try:
        ensure_dlq_topic(client_config(settings), settings)
        assert topic_config(kafka_brokers, dlq, "max.message.bytes") == str(topic_max_message_bytes(3_000_000, 256))
    finally:
        delete_topics(kafka_brokers, [dlq])


def test_a_letter_the_broker_refuses_as_too_large_is_parked(kafka_brokers: str, dlq_topic: Any) -> None:
    # A DLQ topic made elsewhere, with a limit below the worker's letters.
    topic = dlq_topic({"max.message.bytes": "100000"})
    dlq = DeadLetters(kafka_brokers, topic)
    big = random.Random(1).randbytes(600_000)  # incompressible: zstd cannot make it fit
    sent = dlq.send(rejected([b"{}", big]), {}, "events", timeout=60)
    assert (sent.letters, sent.parked) == (2, 1)
    msgs = sorted(consume_all(kafka_brokers, topic), key=lambda m: m.offset())
    assert [m.value() for m in msgs] == [b"{}", big[:PARKED_VALUE_BYTES]]
    headers = dict(msgs[1].headers() or [])
    assert headers["tokenlord.truncated"] == str(len(big)).encode()
    assert "tokenlord.parked" in headers and headers["tokenlord.reason"] == b"invalid_json"


def test_letters_are_compressed(kafka_brokers: str, dlq_topic: Any) -> None:
    # 600 kB of JSON-like text fits a 100 kB topic limit only compressed.
    topic = dlq_topic({"max.message.bytes": "100000"})
    text = b"[" + b'{"user":"u","n":1},' * 30_000 + b"{}]"
    sent = DeadLetters(kafka_brokers, topic).send(rejected([text]), {}, "events", timeout=60)
    assert (sent.letters, sent.parked) == (1, 0)
    assert [m.value() for m in consume_all(kafka_brokers, topic)] == [text]


def test_a_retry_does_not_resend_acknowledged_letters(kafka_brokers: str, dlq_topic: Any) -> None:
    topic = dlq_topic()
    dlq = DeadLetters(kafka_brokers, topic)
    acked: set[int] = set()
    rows = rejected([b"a", b"b", b"c"])
    # As if an earlier attempt had letters 0 and 2 acknowledged, then failed.
    acked.update({0, 2})
    assert dlq.send(rows, {}, "events", acked=acked).letters == 1
    assert acked == {0, 1, 2}
    assert dlq.send(rows, {}, "events", acked=acked).letters == 0
    assert [m.value() for m in consume_all(kafka_brokers, topic)] == [b"b"]
