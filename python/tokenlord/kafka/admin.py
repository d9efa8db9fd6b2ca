"""Small confluent-kafka admin helpers: topics, end offsets, reading a whole topic.

Used by the CLI (creating topics), the worker (``--stop-at-end`` end offsets)
and the tests (reading the DLQ). ``brokers`` is a ``bootstrap.servers`` string,
e.g. ``"127.0.0.1:9092"``, or a whole librdkafka configuration with security
settings (``tokenlord.kafka.security.client_config(settings)``).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType  # type: ignore[attr-defined]
from confluent_kafka.cimpl import NewTopic  # the same class confluent_kafka.admin exports

from tokenlord.errors import TokenlordError

__all__ = [
    "KafkaAdminError",
    "consume_all",
    "delete_topics",
    "end_offsets",
    "ensure_topics",
    "topic_config",
    "unfinished",
]

_log = logging.getLogger(__name__)
Brokers = str | Mapping[str, Any]
# A new topic's partition leader is still being elected or moving: retry.
_LEADER_MOVING = frozenset(
    {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE, KafkaError.UNKNOWN_TOPIC_OR_PART}
)
# The group coordinator is still being elected or loading (a fresh broker, a new group): retry.
_COORDINATOR_NOT_READY = frozenset(
    {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError._TIMED_OUT,
    }
)


def _conf(brokers: Brokers) -> dict[str, Any]:
    return {"bootstrap.servers": brokers} if isinstance(brokers, str) else dict(brokers)


def _hint(brokers: Brokers) -> str:
    if isinstance(brokers, Mapping) and "security.protocol" in brokers:
        return (
            f"is it up, does it speak {brokers['security.protocol']} there, and are TOKENLORD_KAFKA_USERNAME / "
            "TOKENLORD_KAFKA_PASSWORD / TOKENLORD_KAFKA_SASL_MECHANISM right? librdkafka's log above has the cause"
        )
    return "is it up? `tokenlord kafka-local start` for a local one, or set TOKENLORD_KAFKA_BROKERS"


def _where(brokers: Brokers) -> str:
    """The bootstrap servers, for messages (never the credentials)."""
    return brokers if isinstance(brokers, str) else str(brokers["bootstrap.servers"])


class KafkaAdminError(TokenlordError):
    """A Kafka admin operation failed or did not finish in time."""


def _admin(brokers: Brokers) -> AdminClient:
    return AdminClient(_conf(brokers), logger=_log)


def _consumer(brokers: Brokers) -> Consumer:
    """A consumer that never joins its (unique) group and commits nothing."""
    conf: dict[str, Any] = {
        **_conf(brokers),
        "group.id": f"tokenlord-admin-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        "logger": _log,
    }
    return Consumer(conf)


def _end_offsets(consumer: Consumer, topic: str, parts: list[int], deadline: float) -> dict[int, int]:
    out: dict[int, int] = {}
    for p in parts:
        while True:
            try:
                _low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=_remaining(deadline), cached=False
                )
                break
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                # A new topic's leader may still be moving (NOT_LEADER_FOR_PARTITION): retry until the deadline.
                moving = isinstance(err, KafkaError) and (err.retriable() or err.code() in _LEADER_MOVING)
                if not moving or time.monotonic() >= deadline:
                    raise KafkaAdminError(f"cannot read the end offset of {topic!r} partition {p}: {exc}") from exc
                time.sleep(0.1)
        out[p] = high
    return out


def _remaining(deadline: float) -> float:
    return max(0.1, deadline - time.monotonic())


def _partitions(admin: AdminClient, brokers: Brokers, topic: str, deadline: float) -> list[int]:
    """Partition ids of ``topic`` once every partition has a leader."""
    last_error = "no metadata"
    while True:
        try:
            md = admin.list_topics(topic=topic, timeout=min(5.0, _remaining(deadline)))
        except KafkaException as exc:
            last_error = str(exc)
        else:
            tmd = md.topics.get(topic)
            if tmd is not None and tmd.error is None and tmd.partitions:
                if all(p.error is None and p.leader >= 0 for p in tmd.partitions.values()):
                    return sorted(tmd.partitions)
                last_error = "partitions without a leader"
            elif tmd is not None and tmd.error is not None:
                last_error = str(tmd.error)
        if time.monotonic() >= deadline:
            raise KafkaAdminError(f"topic {topic!r} not ready on {_where(brokers)}: {last_error}")
        time.sleep(0.1)


def _wait_all(futures: Mapping[str, Any], deadline: float, harmless: int, verb: str) -> list[str]:
    """Waits for per-topic admin futures; returns the topics done by this call.

    The error code ``harmless`` is no failure (the topic was already as wanted)."""
    done: list[str] = []
    for name, fut in futures.items():
        try:
            fut.result(timeout=_remaining(deadline))
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if isinstance(err, KafkaError) and err.code() == harmless:
                continue
            raise KafkaAdminError(f"cannot {verb} topic {name!r}: {exc}") from exc
        done.append(name)
    return done


def ensure_topics(
    brokers: Brokers,
    topics: Mapping[str, int],
    timeout: float = 30,
    replication_factor: int = -1,
    config: Mapping[str, str] | None = None,
) -> list[str]:
    """Create the topics that are missing (``{name: partitions}``); idempotent.

    Existing topics are left as they are (even with another partition count).
    Waits until every partition of every topic has a leader. Returns the names
    this call created. ``replication_factor=-1`` takes the broker's default.
    """
    deadline = time.monotonic() + timeout
    admin = _admin(brokers)
    try:
        md = admin.list_topics(timeout=_remaining(deadline))
    except KafkaException as exc:
        raise KafkaAdminError(f"cannot reach Kafka at {_where(brokers)}: {exc} ({_hint(brokers)})") from exc
    missing = [
        NewTopic(
            name,
            num_partitions=partitions,
            replication_factor=replication_factor,
            config=dict(config or {}),
        )
        for name, partitions in topics.items()
        if name not in md.topics
    ]
    created: list[str] = []
    if missing:
        futures = admin.create_topics(missing, request_timeout=_remaining(deadline))
        # TOPIC_ALREADY_EXISTS: created concurrently by someone else, fine.
        created = _wait_all(futures, deadline, KafkaError.TOPIC_ALREADY_EXISTS, "create")
    for name in topics:
        _partitions(admin, brokers, name, deadline)
    return created


def end_offsets(brokers: Brokers, topic: str, timeout: float = 30) -> dict[int, int]:
    """High watermark (offset of the next message) of every partition of ``topic``."""
    deadline = time.monotonic() + timeout
    parts = _partitions(_admin(brokers), brokers, topic, deadline)
    consumer = _consumer(brokers)
    try:
        return _end_offsets(consumer, topic, parts, deadline)
    finally:
        consumer.close()


def unfinished(
    brokers: Brokers, group_id: str, topics: Iterable[str], timeout: float = 30
) -> dict[tuple[str, int], int]:
    """(topic, partition) → end offset, for every partition of ``topics`` whose end
    lies past the group's committed offset (``worker --stop-at-end``). One admin
    client and one consumer for all topics (the group is only read, never joined)."""
    deadline = time.monotonic() + timeout
    admin = _admin(brokers)
    tps = [TopicPartition(t, p) for t in topics for p in _partitions(admin, brokers, t, deadline)]
    consumer = Consumer({**_conf(brokers), "group.id": group_id, "enable.auto.commit": False, "logger": _log})
    try:
        done = {(tp.topic, tp.partition): tp.offset for tp in _committed(consumer, group_id, tps, deadline)}
        ends: dict[tuple[str, int], int] = {}
        for tp in tps:
            for p, end in _end_offsets(consumer, tp.topic, [tp.partition], deadline).items():
                if end > max(done.get((tp.topic, p), 0), 0):
                    ends[(tp.topic, p)] = end
        return ends
    finally:
        consumer.close()


def _committed(consumer: Consumer, group_id: str, tps: list[TopicPartition], deadline: float) -> list[TopicPartition]:
    while True:
        try:
            return list(consumer.committed(tps, timeout=_remaining(deadline)))
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            # e.g. NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS on a fresh broker: wait and retry
            retry = isinstance(err, KafkaError) and (err.retriable() or err.code() in _COORDINATOR_NOT_READY)
            if not retry or time.monotonic() >= deadline:
                topics = sorted({tp.topic for tp in tps})
                raise KafkaAdminError(
                    f"cannot read the committed offsets of group {group_id!r} on {topics}: {exc}"
                ) from exc
            time.sleep(0.2)


def committed_offsets(brokers: Brokers, group_id: str, topic: str, timeout: float = 30) -> dict[int, int]:
    """The consumer group's committed offset of every partition of ``topic`` that
    has one (the group is only read, never joined)."""
    deadline = time.monotonic() + timeout
    parts = _partitions(_admin(brokers), brokers, topic, deadline)
    consumer = Consumer({**_conf(brokers), "group.id": group_id, "enable.auto.commit": False, "logger": _log})
    try:
        got = _committed(consumer, group_id, [TopicPartition(topic, p) for p in parts], deadline)
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in got if tp.offset >= 0}


def consume_all(brokers: Brokers, topic: str, timeout: float = 30) -> list[Message]:
    """Every message of ``topic`` from the beginning up to the end offsets seen at the start.

    Partitions are assigned directly (no group rebalance) with a unique group id
    and nothing is committed. Returns messages ordered by (partition, offset).
    """
    deadline = time.monotonic() + timeout
    parts = _partitions(_admin(brokers), brokers, topic, deadline)
    consumer = _consumer(brokers)
    out: list[Message] = []
    try:
        ends = {p: h for p, h in _end_offsets(consumer, topic, parts, deadline).items() if h > 0}
        pending = dict(ends)
        if pending:
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in pending])
        while pending:
            if time.monotonic() >= deadline:
                raise KafkaAdminError(
                    f"consume_all({topic!r}) timed out after {timeout:.0f}s; "
                    f"{len(out)} messages read, still waiting for partitions "
                    f"{sorted(pending)}"
                )
            batch = consumer.consume(num_messages=1000, timeout=min(0.5, _remaining(deadline)))
            for msg in batch:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaAdminError(f"error reading {topic!r}: {err}")
                part, offset = msg.partition(), msg.offset()
                if part is not None and offset is not None and offset < ends.get(part, 0):
                    out.append(msg)
            for tp in consumer.position([TopicPartition(topic, p) for p in pending]):
                if tp.offset >= pending[tp.partition]:
                    del pending[tp.partition]
    finally:
        consumer.close()
    out.sort(key=lambda m: (m.partition() or 0, m.offset() or 0))
    return out


def delete_topics(brokers: Brokers, topics: Iterable[str], timeout: float = 30) -> None:
    """Delete the topics; ones that do not exist are ignored."""
    names = list(dict.fromkeys(topics))  # a repeated name makes the broker refuse the request
    if not names:
        return
    deadline = time.monotonic() + timeout
    admin = _admin(brokers)
    futures = admin.delete_topics(names, request_timeout=_remaining(deadline))
    _wait_all(futures, deadline, KafkaError.UNKNOWN_TOPIC_OR_PART, "delete")


def topic_config(brokers: Brokers, topic: str, name: str, timeout: float = 30) -> str | None:
    """The effective value of one config of ``topic`` (its own or the broker's default); None if unknown."""
    admin = _admin(brokers)
    futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)], request_timeout=timeout)
    try:
        entries = next(iter(futures.values())).result(timeout=timeout)
    except KafkaException as exc:
        raise KafkaAdminError(f"cannot read the config of topic {topic!r} at {_where(brokers)}: {exc}") from exc
    entry = entries.get(name)
    return None if entry is None else entry.value
