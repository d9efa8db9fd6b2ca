"""Authenticated Kafka: a second local broker with a SASL_PLAINTEXT listener
(mechanism PLAIN); produce, a worker and the leaderboard go through it with
TOKENLORD_KAFKA_SECURITY_PROTOCOL / USERNAME / PASSWORD, and a wrong password
is a clear error that never shows the password."""

from __future__ import annotations

import secrets
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from e2e import REPO, free_port
from tokenlord.kafka import local

pytestmark = pytest.mark.integration
TOKENLORD = str(REPO / ".venv/bin/tokenlord")
HOME = REPO / "var" / "kafka-sasl-test"


@pytest.fixture(scope="module")
def sasl_broker(kafka_ports: tuple[int, int]) -> Iterator[tuple[str, str, str]]:
    """(bootstrap servers of the SASL listener, user, password); ports after the suite broker's."""
    port = kafka_ports[0] + 10
    user, password = "tokenlord", secrets.token_urlsafe(12)
    local.start(HOME, port=port, controller_port=port + 1, timeout=180, sasl=(port + 2, {user: password}))
    try:
        yield f"{local.HOST}:{port + 2}", user, password
    finally:
        local.stop(HOME)


def run(args: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TOKENLORD, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def test_worker_and_tools_over_sasl(sasl_broker: tuple[str, str, str], tmp_path: Path) -> None:
    brokers, user, password = sasl_broker
    topic = f"sasl-{uuid.uuid4().hex[:8]}"
    env = {
        "PATH": "/usr/bin:/bin",
        "TOKENLORD_KAFKA_BROKERS": brokers,
        "TOKENLORD_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "TOKENLORD_KAFKA_USERNAME": user,
        "TOKENLORD_KAFKA_PASSWORD": password,
        "TOKENLORD_EVENTS_TOPIC": topic,
        "TOKENLORD_DLQ_TOPIC": f"{topic}.dlq",
        "TOKENLORD_OUTCOMES_TOPIC": f"{topic}.outcomes",
        "TOKENLORD_GROUP_ID": f"sasl-{uuid.uuid4().hex[:8]}",
        "TOKENLORD_CLICKHOUSE_URL": f"chdb://{tmp_path / 'ch'}",
        "TOKENLORD_WEB_PORT": str(free_port()),
        "TOKENLORD_FLUSH_INTERVAL": "200ms",
    }
    events = tmp_path / "events.jsonl"
    lines = [orjson.dumps({"event_id": f"e{i}", "ts": "2026-01-06T10:00:00Z", "user": f"u{i % 3}", "model": "gpt-4o",
                           "input_tokens": 100 * (i % 3 + 1), "output_tokens": 1}) for i in range(30)]  # fmt: skip
    events.write_bytes(b"\n".join(lines) + b"\n")
    produced = run(["produce", "--quiet", str(events)], env)
    assert produced.returncode == 0, produced.stderr[-2000:]
    worker = run(["worker", "--stop-at-end"], env)
    assert worker.returncode == 0, worker.stderr[-3000:]
    assert password not in worker.stderr
    board = run(["leaderboard", "--week", "2026-01-05", "--format", "json"], env)
    assert board.returncode == 0, board.stderr
    rows = orjson.loads(board.stdout)
    assert [(r["user"], r["requests"], r["total_tokens"]) for r in rows] == [
        ("u2", 10, 3010), ("u1", 10, 2010), ("u0", 10, 1010)
    ]  # fmt: skip

    wrong = run(["worker", "--stop-at-end"], {**env, "TOKENLORD_KAFKA_PASSWORD": "not-" + password}, timeout=120)
    assert wrong.returncode == 2, wrong.stderr[-2000:]
    assert "error" in wrong.stderr and "Traceback" not in wrong.stderr
    assert "cannot reach Kafka" in wrong.stderr and "TOKENLORD_KAFKA_PASSWORD" in wrong.stderr, wrong.stderr[-2000:]
    assert password not in wrong.stderr
