"""A second member of a tokenlord worker's consumer group, for rebalance tests.

It joins the group of ``TOKENLORD_GROUP_ID`` on ``TOKENLORD_EVENTS_TOPIC`` with
Faust (same partition assignor as the worker), takes the partitions Kafka gives
it, reads but never acknowledges anything (so it commits no offsets), and
leaves the group when it is killed (its session times out after 6 s): every
join and leave forces the worker through a revoke/assign cycle.
"""

from __future__ import annotations

import asyncio
import os

import faust

app = faust.App(
    os.environ["TOKENLORD_GROUP_ID"],
    broker=f"kafka://{os.environ['TOKENLORD_KAFKA_BROKERS']}",
    web_enabled=False,
    store="memory://",
    consumer_auto_offset_reset="earliest",
    broker_session_timeout=6.0,  # killed, it leaves the group 6 s later
    broker_heartbeat_interval=2.0,
    datadir=os.environ.get("TMPDIR", "/tmp") + f"/tokenlord-member-{os.getpid()}",
)
# The worker's subscription exactly (events and outcomes): Faust's assignor
# balances members with the same topics.
events, outcomes = (
    app.topic(os.environ[name], key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    for name in ("TOKENLORD_EVENTS_TOPIC", "TOKENLORD_OUTCOMES_TOPIC")
)


async def hold(stream: faust.StreamT[bytes]) -> None:
    async for _ in stream.noack():  # type: ignore[attr-defined]
        await asyncio.sleep(0.05)


app.agent(events, name="tokenlord-events")(hold)
app.agent(outcomes, name="tokenlord-outcomes")(hold)


if __name__ == "__main__":
    faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()
