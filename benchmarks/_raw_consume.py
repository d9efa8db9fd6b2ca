"""Raw consume, the ceiling: confluent-kafka reading a topic and doing nothing.

Run by ``e2e_worker.py`` as its own process (so its CPU time and peak RSS are
its own): a ``Consumer`` assigned to every partition from the beginning reads
up to the end offsets seen at start, touching only each message's length, and
writes one JSON object (epoch seconds of the assignment, the first and the
last message; messages, bytes) to ``--result``.

    python benchmarks/_raw_consume.py --brokers H:P --topic T --result FILE
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid

# Only confluent-kafka is imported: the process's peak RSS is the client's.
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--result", required=True)
    ap.add_argument("--timeout", type=float, default=300)
    args = ap.parse_args()

    consumer = Consumer(
        {
            "bootstrap.servers": args.brokers,
            "group.id": f"bench-raw-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
        }
    )
    meta = consumer.list_topics(args.topic, timeout=30).topics[args.topic]
    ends = {p: consumer.get_watermark_offsets(TopicPartition(args.topic, p), timeout=30)[1] for p in meta.partitions}
    ends = {p: o for p, o in ends.items() if o > 0}
    remaining, nbytes, first = sum(ends.values()), 0, None
    assigned = time.time()
    consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in ends])
    deadline = time.monotonic() + args.timeout
    while remaining > 0:
        if time.monotonic() > deadline:
            sys.exit(f"raw consume timed out, {remaining} messages left")
        # Ask for no more than what is left: consume() waits for a full batch.
        for m in consumer.consume(num_messages=min(10_000, remaining), timeout=1.0):
            err = m.error()
            if err is not None and err.code() != KafkaError._PARTITION_EOF:
                sys.exit(f"raw consume: {err}")
            if err is None:
                if first is None:
                    first = time.time()
                remaining -= 1
                nbytes += len(m.value() or b"")
    last = time.time()
    consumer.close()
    result = {
        "contender": "raw_confluent",
        "assigned_at": assigned,
        "first_message_at": first,
        "last_message_at": last,
        "messages": sum(ends.values()),
        "bytes": nbytes,
    }
    with open(args.result, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
