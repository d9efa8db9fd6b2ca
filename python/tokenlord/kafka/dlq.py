"""The dead-letter producer: rejected input, original bytes, reason in headers."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer


class DeadLetters:
    """Produces rejections to the DLQ topic and waits until Kafka has them all."""

    def __init__(self, brokers: str | Mapping[str, Any], topic: str, *, extra: Mapping[str, Any] | None = None) -> None:
        """``brokers``: bootstrap servers, or a librdkafka configuration with security settings."""
        self.topic = topic
        conf: dict[str, Any] = {
            **({"bootstrap.servers": brokers} if isinstance(brokers, str) else brokers),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.max.bytes": 16 * 1024 * 1024,
            "client.id": "tokenlord-dlq",
            # librdkafka's own log lines go through Python logging (level, JSON format)
            "logger": logging.getLogger("tokenlord.kafka.dlq"),
        }
        conf.update(extra or {})
        self._producer = Producer(conf)

    def send(
        self,
        rejected: Mapping[str, Sequence[Any]],
        key_of: Mapping[tuple[int, int], bytes | None],
        src_topic: str,
        timeout: float = 30.0,
    ) -> int:
        """Produce every rejection of a batch; raises unless all were acknowledged."""
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                errors.append(err)

        cols = rejected
        n = len(cols["reason"])
        for i in range(n):
            partition, offset = int(cols["src_partition"][i]), int(cols["src_offset"][i])
            headers: list[tuple[str, str | bytes | None]] = [
                ("tokenlord.reason", str(cols["reason"][i]).encode()),
                ("tokenlord.src_topic", src_topic.encode()),
                ("tokenlord.src_partition", str(partition).encode()),
                ("tokenlord.src_offset", str(offset).encode()),
                ("tokenlord.idx", str(int(cols["idx"][i])).encode()),
            ]
            while True:
                try:
                    self._producer.produce(
                        self.topic,
                        value=cols["raw"][i],
                        key=key_of.get((partition, offset)),
                        headers=headers,
                        on_delivery=on_delivery,
                    )
                    break
                except BufferError:
                    self._producer.poll(0.1)
        remaining = self._producer.flush(timeout)
        if remaining:
            raise KafkaException(f"{remaining} dead-letter messages not delivered within {timeout}s")
        if errors:
            raise KafkaException(errors[0])
        return n

    def close(self) -> None:
        self._producer.flush(10)
