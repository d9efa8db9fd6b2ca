"""Producing events to Kafka: JSONL(.gz) files, stdin, or generated events."""

from __future__ import annotations

import gzip
import logging
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any

import orjson
from confluent_kafka import KafkaException, Producer

from tokenlord.errors import TokenlordError
from tokenlord.kafka.admin import ensure_topics
from tokenlord.kafka.security import client_config
from tokenlord.progress import Progress
from tokenlord.settings import Settings


def producer_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """librdkafka properties of tokenlord's producers (connection, security,
    idempotence, batching); ``extra`` overrides them."""
    conf: dict[str, Any] = {
        **client_config(settings),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        "compression.type": "lz4",
        "message.max.bytes": max(1_100_000, settings.max_message_bytes + 65536),
        "client.id": "tokenlord-produce",
        # librdkafka's own log lines go through Python logging (level, JSON format)
        "logger": logging.getLogger("tokenlord.kafka.produce"),
    }
    conf.update(extra)
    return conf


def producer(settings: Settings, **extra: Any) -> Producer:
    return Producer(producer_config(settings, **extra))


def _key_of(line: bytes) -> bytes | None:
    """The user id of a JSON event (the message key); None if unreadable."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if isinstance(obj, list):
        obj = obj[0] if obj else None
    if not isinstance(obj, dict):
        return None
    user = obj.get("user") or obj.get("user_id") or obj.get("enduser.id")
    return user.encode() if isinstance(user, str) else None


class _Sender:
    def __init__(self, settings: Settings, topic: str, rate: int | None, progress: Progress) -> None:
        self.p = producer(settings)
        self.topic = topic
        self.rate = rate
        self.progress = progress
        self.errors: list[str] = []
        self.sent_events = 0
        self.started = time.monotonic()

    @classmethod
    def to_topic(cls, settings: Settings, topic: str, rate: int | None, label: str, progress: bool) -> _Sender:
        """A sender to ``topic``, created first if missing."""
        ensure_topics(client_config(settings), {topic: settings.partitions})
        return cls(settings, topic, rate, Progress(label, enabled=progress))

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None and len(self.errors) < 5:
            self.errors.append(str(err))

    def send(self, value: bytes, key: bytes | None, events: int) -> None:
        while True:
            try:
                self.p.produce(self.topic, value=value, key=key, on_delivery=self._on_delivery)
                break
            except BufferError:
                self.p.poll(0.05)
            except KafkaException as exc:
                raise TokenlordError(f"cannot produce to {self.topic!r}: {exc}") from None
        self.p.poll(0)
        self.sent_events += events
        self.progress.update(events)
        if self.rate:
            ahead = self.sent_events / self.rate - (time.monotonic() - self.started)
            if ahead > 0:
                time.sleep(ahead)

    def finish(self) -> int:
        remaining = self.p.flush(120)
        self.progress.close()
        if remaining or self.errors:
            raise TokenlordError(
                f"{remaining} messages not delivered; errors: {'; '.join(self.errors) or 'timeout'} "
                "(is Kafka up? `tokenlord kafka-local status`)"
            )
        return self.sent_events


def _send_lines(sender: _Sender, lines: Iterable[bytes], per_message: int) -> None:
    chunk: list[bytes] = []
    for raw in lines:
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        if per_message == 1:
            sender.send(line, _key_of(line), 1)
            continue
        chunk.append(line)
        if len(chunk) >= per_message:
            sender.send(b"[" + b",".join(chunk) + b"]", _key_of(chunk[0]), len(chunk))
            chunk = []
    if chunk:
        sender.send(b"[" + b",".join(chunk) + b"]", _key_of(chunk[0]), len(chunk))


def _open(path: str) -> IO[bytes]:
    if path == "-":
        return sys.stdin.buffer
    try:
        if path.endswith(".gz"):
            return gzip.open(path, "rb")  # type: ignore[return-value]
        return open(path, "rb")
    except OSError as exc:
        raise TokenlordError(f"cannot read {path!r}: {exc.strerror}") from None


def produce_files(
    settings: Settings,
    paths: Sequence[str],
    *,
    topic: str,
    per_message: int = 1,
    rate: int | None = None,
    progress: bool = True,
) -> int:
    """Sends every line of the files (JSONL or JSONL.gz; '-' = stdin)."""
    sender = _Sender.to_topic(settings, topic, rate, f"produce → {topic}", progress)
    for path in paths:
        with _open(path) as fh:
            _send_lines(sender, fh, per_message)
    return sender.finish()


def produce_events(
    settings: Settings,
    events: Iterable[dict[str, Any]],
    *,
    topic: str,
    per_message: int = 1,
    rate: int | None = None,
    progress: bool = True,
) -> int:
    """Sends generated event dicts."""
    sender = _Sender.to_topic(settings, topic, rate, f"simulate → {topic}", progress)
    lines: Iterator[bytes] = (orjson.dumps(e) for e in events)
    _send_lines(sender, lines, per_message)
    return sender.finish()


def produce_records(
    settings: Settings,
    records: Iterable[tuple[bytes, bytes | None]],
    *,
    topic: str,
    progress: bool = True,
) -> int:
    """Sends ``(value, key)`` records as they are (e.g. OTLP trace records); one event each."""
    sender = _Sender.to_topic(settings, topic, None, f"simulate → {topic}", progress)
    for value, key in records:
        sender.send(value, key, 1)
    return sender.finish()
