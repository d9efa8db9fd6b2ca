"""Start-up: from process start to the first batch, for the worker and a bare
Faust consumer, in one run on the same one-event topics.

Contenders (each a fresh process, a fresh consumer group and a fresh chDB
directory, ``--runs`` times; the median is reported):

- ``tokenlord worker --stop-at-end``: process start → the event durably
  written (the worker's "caught up" log line, JSON logs) and → process exit;
- ``faust no-op``: ``_faust_noop.py``, the worker's Faust app with Faust's own
  per-event consumer and an agent that does nothing: process start → its
  first batch taken.

Writes ``benchmarks/results/startup.json``. No assertion on speed.

    .venv/bin/python benchmarks/startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
from _common import REPO, machine_info, table, write_json
from tokenlord.kafka import local
from tokenlord.kafka.admin import delete_topics, ensure_topics

KAFKA_HOME = REPO / "var" / "kafka-startup"
TOKENLORD = str(REPO / ".venv" / "bin" / "tokenlord")


def one_topic(brokers: str) -> str:
    from confluent_kafka import Producer

    name = f"startup-{uuid.uuid4().hex[:10]}"
    ensure_topics(brokers, {name: 3})
    p = Producer({"bootstrap.servers": brokers})
    event = {"event_id": "e1", "ts": int(time.time() * 1000), "user": "ann", "model": "gpt-4o",
             "input_tokens": 10, "output_tokens": 2}  # fmt: skip
    p.produce(name, key=b"ann", value=orjson.dumps(event))
    assert p.flush(30) == 0
    return name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(brokers: str, topic: str, tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "TOKENLORD_KAFKA_BROKERS": brokers,
        "TOKENLORD_EVENTS_TOPIC": topic,
        "TOKENLORD_OUTCOMES_TOPIC": f"{topic}.outcomes",
        "TOKENLORD_DLQ_TOPIC": f"{topic}.dlq",
        "TOKENLORD_GROUP_ID": topic,
        "TOKENLORD_CLICKHOUSE_URL": f"chdb://{tmp / topic}",
        "TOKENLORD_WEB_PORT": str(free_port()),
        "TOKENLORD_LOG_FORMAT": "json",
        "TOKENLORD_FLUSH_INTERVAL": "100ms",
    }


def run_worker(env: dict[str, str]) -> dict[str, float]:
    t0 = time.time()
    proc = subprocess.run([TOKENLORD, "worker", "--stop-at-end"], env=env, capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    ended = time.time()
    if proc.returncode != 0:
        raise SystemExit(f"worker failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    written = None
    for line in proc.stderr.splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            if rec.get("logger") == "tokenlord.worker" and rec["msg"].startswith("caught up"):
                written = dt.datetime.fromisoformat(rec["ts"].replace("Z", "+00:00")).timestamp()
    if written is None:
        raise SystemExit("no 'caught up' line in the worker's log")
    return {"first_batch_s": written - t0, "exit_s": ended - t0}


def run_noop(env: dict[str, str]) -> dict[str, float]:
    t0 = time.time()
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "_faust_noop.py")], env=env, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip
    ended = time.time()
    found = re.search(r'\{"first_batch".*?\}', proc.stdout + proc.stderr)  # Faust sends stdout to its log
    if found is None:
        raise SystemExit(f"faust no-op printed no result ({proc.returncode}):\n{proc.stderr[-3000:]}")
    got = json.loads(found.group(0))
    return {"first_batch_s": float(got["first_batch"]) - t0, "exit_s": ended - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--port", type=int, default=29292)
    args = ap.parse_args()
    local.start(KAFKA_HOME, port=args.port, controller_port=args.port + 1, timeout=180)
    brokers = f"{local.HOST}:{args.port}"
    created: list[str] = []
    runs: dict[str, list[dict[str, float]]] = {"tokenlord worker": [], "faust no-op": []}
    try:
        with tempfile.TemporaryDirectory(prefix="tokenlord-startup-") as tmp:
            for i in range(args.runs):
                for name, fn in (("tokenlord worker", run_worker), ("faust no-op", run_noop)):
                    topic = one_topic(brokers)
                    created += [topic, f"{topic}.outcomes", f"{topic}.dlq"]
                    runs[name].append(fn(env_for(brokers, topic, Path(tmp))))
                    print(f"run {i + 1} {name}: {runs[name][-1]}", file=sys.stderr)
    finally:
        try:
            delete_topics(brokers, created)
        finally:
            local.stop(KAFKA_HOME)
    med = {n: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for n, rs in runs.items()}
    rows = [[n, f"{m['first_batch_s']:.2f} s", f"{m['exit_s']:.2f} s"] for n, m in med.items()]
    print(table(["contender", "process start → first batch", "→ process exit"], rows))
    ratio = med["tokenlord worker"]["first_batch_s"] / med["faust no-op"]["first_batch_s"]
    print(f"worker / bare Faust, to the first batch: {ratio:.2f}x")
    path = write_json("startup.json", {"benchmark": "startup", "machine": machine_info(), "runs": runs,
                                        "median": med, "worker_over_faust_first_batch": ratio})  # fmt: skip
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
