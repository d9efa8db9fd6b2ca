"""The dead-letter producer: rejected input, original bytes, reason in headers.

Bounded (docs/operations.md, "Dead letters"): letters are compressed and a
letter's key is cut to ``max_key_bytes`` (header ``tokenlord.key_truncated``
gives its length); a value is the rejected bytes, at most one source message,
so a DLQ topic with :func:`topic_max_message_bytes` of the source topic's
limit fits every letter. A letter the broker still refuses as too large (a
topic made elsewhere with a smaller limit) is parked: sent again alone cut to
:data:`PARKED_VALUE_BYTES` (headers ``tokenlord.truncated``,
``tokenlord.parked``), counted, logged; the batch goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableSet, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

log = logging.getLogger("tokenlord.kafka.dlq")

#: What a letter refused as too large keeps of its value.
PARKED_VALUE_BYTES = 16 * 1024
#: Room for headers and the record batch's framing, above key and value.
HEADROOM_BYTES = 64 * 1024
_TOO_LARGE = {KafkaError.MSG_SIZE_TOO_LARGE}  # by the broker, or by produce() before sending


def topic_max_message_bytes(source_max_bytes: int, max_key_bytes: int) -> int:
    """``max.message.bytes`` for a DLQ topic whose letters come from messages of
    at most ``source_max_bytes``: the largest letter emitted, with headroom."""
    return source_max_bytes + max_key_bytes + HEADROOM_BYTES


@dataclass
class Sent:
    """What one :meth:`DeadLetters.send` did."""

    letters: int = 0  # acknowledged by this call
    truncated: int = 0  # letters whose key or value was cut (key limit, or parked)
    parked: int = 0  # letters refused as too large and sent again cut


class DeadLetters:
    """Produces rejections to the DLQ topic and waits until Kafka has them all."""

    def __init__(
        self,
        brokers: str | Mapping[str, Any],
        topic: str,
        *,
        max_key_bytes: int = 256,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """``brokers``: bootstrap servers, or a librdkafka configuration with security settings."""
        self.topic = topic
        self.max_key_bytes = max_key_bytes
        conf: dict[str, Any] = {
            **({"bootstrap.servers": brokers} if isinstance(brokers, str) else brokers),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            # Rejected input is mostly JSON text: it compresses well.
            "compression.type": "zstd",
            # The broker's limit is the topic's: the producer lets any letter try.
            "message.max.bytes": 64 * 1024 * 1024,
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
        *,
        acked: MutableSet[int] | None = None,
    ) -> Sent:
        """Produce every rejection of a batch; raises unless all were acknowledged.

        ``acked``: indexes of letters already acknowledged (by an earlier,
        failed call for the same batch): skipped, and extended by this call,
        so a retry never duplicates a letter Kafka has.
        """
        acked = set() if acked is None else acked
        errors: list[KafkaError] = []
        refused: list[int] = []
        sent = Sent()

        def delivered(i: int) -> Any:
            def on_delivery(err: KafkaError | None, _msg: Any) -> None:
                if err is None:
                    acked.add(i)
                    sent.letters += 1
                elif err.code() in _TOO_LARGE:
                    refused.append(i)
                else:
                    errors.append(err)

            return on_delivery

        cols = rejected
        for i in range(len(cols["reason"])):
            if i not in acked:
                self._produce(cols, i, key_of, src_topic, delivered(i), sent, None)
        remaining = self._producer.flush(timeout)
        # Refused as too large (a permanent error): its batch-mates were refused
        # with it, so each is sent again alone as it is, then cut (parked).
        for i in [] if remaining else sorted(set(refused)):
            for park in (None, PARKED_VALUE_BYTES):
                refused.clear()
                self._produce(cols, i, key_of, src_topic, delivered(i), sent, park)
                remaining = self._producer.flush(timeout)
                if remaining or not refused:
                    break
            else:
                errors.append(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "refused as too large even when cut"))
            if remaining:
                break
        if remaining:
            raise KafkaException(f"{remaining} dead-letter messages not delivered within {timeout}s")
        if errors:
            raise KafkaException(errors[0])
        return sent

    def _produce(
        self,
        cols: Mapping[str, Sequence[Any]],
        i: int,
        key_of: Mapping[tuple[int, int], bytes | None],
        src_topic: str,
        on_delivery: Any,
        sent: Sent,
        park: int | None,
    ) -> None:
        partition, offset = int(cols["src_partition"][i]), int(cols["src_offset"][i])
        reason = str(cols["reason"][i])
        headers: list[tuple[str, str | bytes | None]] = [
            ("tokenlord.reason", reason.encode()),
            ("tokenlord.src_topic", src_topic.encode()),
            ("tokenlord.src_partition", str(partition).encode()),
            ("tokenlord.src_offset", str(offset).encode()),
            ("tokenlord.idx", str(int(cols["idx"][i])).encode()),
        ]
        value: bytes = cols["raw"][i]
        key = key_of.get((partition, offset))
        cut = False
        if key is not None and len(key) > self.max_key_bytes:
            headers.append(("tokenlord.key_truncated", str(len(key)).encode()))
            key, cut = key[: self.max_key_bytes], True
        if park is not None and len(value) > park:
            headers.append(("tokenlord.truncated", str(len(value)).encode()))
            value, cut = value[:park], True
        if park is not None:
            headers.append(("tokenlord.parked", b"broker refused the letter as too large"))
            sent.parked += 1
            log.warning(
                "dead letter of %s[%d]@%d (%s) refused as too large by topic %s: sent cut to %d bytes; "
                "raise the topic's max.message.bytes to the source topic's + %d",
                src_topic, partition, offset, reason, self.topic, len(value),
                topic_max_message_bytes(0, self.max_key_bytes),
            )  # fmt: skip
        sent.truncated += int(cut)
        while True:
            try:
                self._producer.produce(self.topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
                return
            except BufferError:
                self._producer.poll(0.1)
            except KafkaException as exc:
                # Refused before sending (larger than the producer's message.max.bytes).
                if exc.args[0].code() not in _TOO_LARGE:
                    raise
                on_delivery(exc.args[0], None)
                return

    def close(self) -> None:
        self._producer.flush(10)
