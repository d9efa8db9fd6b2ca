"""The local Kafka manager and the admin helpers against a real broker."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from tokenlord.kafka import local
from tokenlord.kafka.admin import consume_all, delete_topics, end_offsets, ensure_topics

pytestmark = pytest.mark.integration


Record = tuple[bytes | None, bytes, int]  # key, value, partition (-1: by key)


def _produce(brokers: str, topic: str, records: Sequence[Record]) -> None:
    """Send the records and wait for every ack."""
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            errors.append(err)

    producer = Producer({"bootstrap.servers": brokers, "acks": "all", "message.max.bytes": 8 * 1024 * 1024})
    for key, value, partition in records:
        producer.produce(topic, value=value, key=key, partition=partition, on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(30) == 0
    assert errors == []


def test_start_is_idempotent(kafka_brokers: str, kafka_home: Path, kafka_ports: tuple[int, int]) -> None:
    pid = int((kafka_home / local.PID_FILE).read_text())
    t0 = time.monotonic()
    msg = local.start(kafka_home, port=kafka_ports[0], controller_port=kafka_ports[1])
    assert "already running" in msg
    assert time.monotonic() - t0 < 10
    assert int((kafka_home / local.PID_FILE).read_text()) == pid


def test_start_refuses_another_port_while_running(
    kafka_brokers: str, kafka_home: Path, kafka_ports: tuple[int, int]
) -> None:
    with pytest.raises(local.KafkaLocalError, match="already running"):
        local.start(kafka_home, port=kafka_ports[0] + 10, controller_port=kafka_ports[0] + 11)


def test_status_reports_running(kafka_brokers: str, kafka_home: Path, kafka_ports: tuple[int, int]) -> None:
    running, msg = local.status(kafka_home, port=kafka_ports[0])
    assert running, msg
    assert kafka_brokers in msg


def test_broker_serves_metadata(kafka_brokers: str, kafka_ports: tuple[int, int]) -> None:
    md = AdminClient({"bootstrap.servers": kafka_brokers}).list_topics(timeout=10)
    assert list(md.brokers) == [local.NODE_ID]
    broker = md.brokers[local.NODE_ID]
    assert f"{broker.host}:{broker.port}" == f"{local.HOST}:{kafka_ports[0]}"


def test_produce_consume_round_trip(kafka_brokers: str, topic: Callable[..., str]) -> None:
    name = topic("roundtrip")
    records: list[Record] = [(f"user-{i % 7}".encode(), f"{i}".encode(), -1) for i in range(300)]
    _produce(kafka_brokers, name, records)

    got = consume_all(kafka_brokers, name)
    values = [m.value() or b"" for m in got]
    assert sorted(values) == sorted(v for _, v, _ in records)
    # the key picks the partition: a user's messages share one, in produce order
    by_key: dict[bytes, set[int]] = {}
    for m in got:
        key = m.key()
        part = m.partition()
        assert key is not None and part is not None
        by_key.setdefault(key, set()).add(part)
    assert all(len(parts) == 1 for parts in by_key.values())
    for key in by_key:
        seq = [int(m.value() or b"-1") for m in got if m.key() == key]
        assert seq == sorted(seq), key
    assert {p for parts in by_key.values() for p in parts} <= {0, 1, 2}


def test_consumer_group_round_trip(kafka_brokers: str, topic: Callable[..., str]) -> None:
    """A subscribed consumer group (what the worker does) reads everything and commits."""
    name = topic("group")
    _produce(kafka_brokers, name, [(None, f"v{i}".encode(), i % 3) for i in range(30)])
    group = f"test-group-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_brokers,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    seen: list[bytes] = []
    try:
        consumer.subscribe([name])
        deadline = time.monotonic() + 60
        while len(seen) < 30 and time.monotonic() < deadline:
            for msg in consumer.consume(100, timeout=1.0):
                assert msg.error() is None, msg.error()
                value = msg.value()
                assert value is not None
                seen.append(value)
        consumer.commit(asynchronous=False)
        committed = consumer.committed([TopicPartition(name, p) for p in range(3)], timeout=10)
    finally:
        consumer.close()
    assert sorted(seen) == sorted(f"v{i}".encode() for i in range(30))
    assert {tp.partition: tp.offset for tp in committed} == {0: 10, 1: 10, 2: 10}


def test_end_offsets(kafka_brokers: str, topic: Callable[..., str]) -> None:
    name = topic("offsets")
    assert end_offsets(kafka_brokers, name) == {0: 0, 1: 0, 2: 0}
    records = [(None, b"a", 0)] * 5 + [(None, b"c", 2)] * 7
    _produce(kafka_brokers, name, records)
    assert end_offsets(kafka_brokers, name) == {0: 5, 1: 0, 2: 7}
    got = consume_all(kafka_brokers, name)
    assert [(m.partition(), m.offset()) for m in got] == [(0, i) for i in range(5)] + [(2, i) for i in range(7)]


def test_consume_all_empty_topic(kafka_brokers: str, topic: Callable[..., str]) -> None:
    assert consume_all(kafka_brokers, topic("empty"), timeout=10) == []


def test_ensure_topics_idempotent(kafka_brokers: str) -> None:
    a, b = (f"ensure-{uuid.uuid4().hex[:12]}" for _ in range(2))
    try:
        assert ensure_topics(kafka_brokers, {a: 3}) == [a]
        assert ensure_topics(kafka_brokers, {a: 3}) == []
        # an existing topic is left alone, a missing one in the same call is created
        assert ensure_topics(kafka_brokers, {a: 6, b: 1}) == [b]
        md = AdminClient({"bootstrap.servers": kafka_brokers}).list_topics(timeout=10)
        assert len(md.topics[a].partitions) == 3
        assert len(md.topics[b].partitions) == 1
        # concurrent callers both succeed
        c = f"ensure-{uuid.uuid4().hex[:12]}"
        results: list[list[str]] = []
        threads = [
            threading.Thread(target=lambda: results.append(ensure_topics(kafka_brokers, {c: 3}))) for _ in range(3)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(results) == 3
        assert sum(len(r) for r in results) <= 1
        assert end_offsets(kafka_brokers, c) == {0: 0, 1: 0, 2: 0}
    finally:
        delete_topics(kafka_brokers, [a, b, f"ensure-missing-{uuid.uuid4().hex[:8]}"])
    md = AdminClient({"bootstrap.servers": kafka_brokers}).list_topics(timeout=10)
    assert a not in md.topics or md.topics[a].error is not None


def test_large_message_accepted(kafka_brokers: str, topic: Callable[..., str]) -> None:
    """Values over the contract's 1 MiB limit must reach Kafka so the worker can reject them."""
    name = topic("large")
    big = b"x" * (2 * 1024 * 1024)
    _produce(kafka_brokers, name, [(b"k", big, 0)])
    got = consume_all(kafka_brokers, name)
    assert [m.value() for m in got] == [big]


def test_lifecycle_on_other_ports(tmp_path: Path, kafka_ports: tuple[int, int]) -> None:
    """Concurrent start, status, restart on existing data, stop, stop again."""
    port = kafka_ports[0] + 2
    cport = kafka_ports[0] + 3
    home = tmp_path / "kafka"
    brokers = f"{local.HOST}:{port}"
    try:
        messages: list[str] = []
        errors: list[BaseException] = []

        def run() -> None:
            try:
                messages.append(local.start(home, port=port, controller_port=cport))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert errors == []
        assert sum("already running" in m for m in messages) == 1, messages
        assert local.status(home, port)[0]

        ensure_topics(brokers, {"persist": 1})
        _produce(brokers, "persist", [(None, b"kept", 0)])
        assert "stopped" in local.stop(home)
        running, msg = local.status(home, port)
        assert not running and "not running" in msg, msg
        assert not (home / local.PID_FILE).exists()

        assert "started" in local.start(home, port=port, controller_port=cport)
        assert end_offsets(brokers, "persist") == {0: 1}
        assert [m.value() for m in consume_all(brokers, "persist")] == [b"kept"]
    finally:
        local.stop(home)
    assert "not running" in local.stop(home)


def test_missing_java_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(local.KafkaLocalError, match="java not found: install a JDK 17"):
        local.find_java()
