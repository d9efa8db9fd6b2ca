"""Authenticated Kafka: a second local broker with a SASL_PLAINTEXT and a SASL_SSL
listener (PLAIN and SCRAM-SHA-256/512 accounts; TLS from a throw-away CA made with
the JDK's keytool). produce (admin + producer), a worker (Faust: consumer, producer,
admin) and the leaderboard go through it with TOKENLORD_KAFKA_SECURITY_PROTOCOL /
SASL_MECHANISM / USERNAME / PASSWORD / CA_FILE. A wrong password, or TLS without the
CA, is refused with an error that never shows the password."""

from __future__ import annotations

import secrets
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from e2e import REPO, free_port
from kafka_certs import make_test_certs
from tokenlord.kafka import local
from tokenlord.kafka.admin import KafkaAdminError, ensure_topics
from tokenlord.kafka.security import client_config
from tokenlord.settings import Settings

pytestmark = pytest.mark.integration
TOKENLORD = str(REPO / ".venv/bin/tokenlord")
HOME = REPO / "var" / "kafka-sasl-test"


@dataclass(frozen=True)
class Broker:
    sasl_plaintext: str  # bootstrap servers of each listener
    sasl_ssl: str
    user: str
    password: str
    ca_file: Path


@pytest.fixture(scope="module")
def secured_broker(kafka_ports: tuple[int, int]) -> Iterator[Broker]:
    """Ports after the suite broker's: PLAINTEXT, controller, SASL_PLAINTEXT, SASL_SSL."""
    port = kafka_ports[0] + 10
    user, password = "tokenlord", secrets.token_urlsafe(12)
    certs = make_test_certs(HOME / "tls", secrets.token_urlsafe(12))
    local.start(
        HOME, port=port, controller_port=port + 1, timeout=180,
        sasl=(port + 2, {user: password}), sasl_ssl=(port + 3, certs),
    )  # fmt: skip
    try:
        yield Broker(f"{local.HOST}:{port + 2}", f"{local.HOST}:{port + 3}", user, password, certs.ca_pem)
    finally:
        local.stop(HOME)


def run(args: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TOKENLORD, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def client_env(brokers: str, protocol: str, mechanism: str, user: str, password: str, tmp: Path) -> dict[str, str]:
    topic = f"sasl-{uuid.uuid4().hex[:8]}"
    return {
        "PATH": "/usr/bin:/bin",
        "TOKENLORD_KAFKA_BROKERS": brokers,
        "TOKENLORD_KAFKA_SECURITY_PROTOCOL": protocol,
        "TOKENLORD_KAFKA_SASL_MECHANISM": mechanism,
        "TOKENLORD_KAFKA_USERNAME": user,
        "TOKENLORD_KAFKA_PASSWORD": password,
        "TOKENLORD_EVENTS_TOPIC": topic,
        "TOKENLORD_DLQ_TOPIC": f"{topic}.dlq",
        "TOKENLORD_OUTCOMES_TOPIC": f"{topic}.outcomes",
        "TOKENLORD_GROUP_ID": f"sasl-{uuid.uuid4().hex[:8]}",
        "TOKENLORD_CLICKHOUSE_URL": f"chdb://{tmp / 'ch'}",
        "TOKENLORD_WEB_PORT": str(free_port()),
        "TOKENLORD_FLUSH_INTERVAL": "200ms",
    }


def produce_consume_rank(env: dict[str, str], tmp: Path) -> None:
    """produce (admin creates the topic) -> worker --stop-at-end -> leaderboard, all through env's Kafka."""
    events = tmp / "events.jsonl"
    lines = [orjson.dumps({"event_id": f"e{i}", "ts": "2026-01-06T10:00:00Z", "user": f"u{i % 3}", "model": "gpt-4o",
                           "input_tokens": 100 * (i % 3 + 1), "output_tokens": 1}) for i in range(30)]  # fmt: skip
    events.write_bytes(b"\n".join(lines) + b"\n")
    produced = run(["produce", "--quiet", str(events)], env)
    assert produced.returncode == 0, produced.stderr[-2000:]
    worker = run(["worker", "--stop-at-end"], env)
    assert worker.returncode == 0, worker.stderr[-3000:]
    assert env["TOKENLORD_KAFKA_PASSWORD"] not in worker.stderr
    board = run(["leaderboard", "--week", "2026-01-05", "--format", "json"], env)
    assert board.returncode == 0, board.stderr
    rows = orjson.loads(board.stdout)
    assert [(r["user"], r["requests"], r["total_tokens"]) for r in rows] == [
        ("u2", 10, 3010), ("u1", 10, 2010), ("u0", 10, 1010)
    ]  # fmt: skip


def assert_refused(result: subprocess.CompletedProcess[str], password: str, *wanted: str) -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    assert "error" in result.stderr and "Traceback" not in result.stderr
    for w in wanted:
        assert w in result.stderr, (w, result.stderr[-2000:])
    assert password not in result.stderr


def admin_refused(env: dict[str, str], password: str) -> str:
    """tokenlord's admin client with env's settings must fail (quickly: a short timeout); its message."""
    settings = Settings.from_env(environ=env)
    with pytest.raises(KafkaAdminError) as info:
        ensure_topics(client_config(settings), {env["TOKENLORD_EVENTS_TOPIC"]: 1}, timeout=4)
    assert password not in str(info.value)
    return str(info.value)


def test_worker_and_tools_over_sasl_plain(secured_broker: Broker, tmp_path: Path) -> None:
    b = secured_broker
    env = client_env(b.sasl_plaintext, "SASL_PLAINTEXT", "PLAIN", b.user, b.password, tmp_path)
    # The CLI's answer to a wrong password takes the admin timeout (30 s): run it meanwhile.
    wrong = subprocess.Popen(
        [TOKENLORD, "worker", "--stop-at-end"], env={**env, "TOKENLORD_KAFKA_PASSWORD": "not-" + b.password},
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        produce_consume_rank(env, tmp_path)
        out, err = wrong.communicate(timeout=120)
    finally:
        wrong.kill()
        wrong.wait()
    refused = subprocess.CompletedProcess(wrong.args, wrong.returncode, out, err)
    assert_refused(refused, b.password, "cannot reach Kafka", "TOKENLORD_KAFKA_PASSWORD")


def test_worker_and_tools_over_scram_sha_512(secured_broker: Broker, tmp_path: Path) -> None:
    t0 = time.monotonic()
    b = secured_broker
    env = client_env(b.sasl_plaintext, "SASL_PLAINTEXT", "SCRAM-SHA-512", b.user, b.password, tmp_path)
    produce_consume_rank(env, tmp_path)
    # SCRAM checks the password (the credentials from `format --add-scram`), not just the mechanism.
    admin_refused({**env, "TOKENLORD_KAFKA_PASSWORD": "not-" + b.password}, b.password)
    # The account has SCRAM-SHA-256 credentials too.
    ensure_topics(client_config(Settings.from_env(environ={**env, "TOKENLORD_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256"})),
                  {env["TOKENLORD_EVENTS_TOPIC"]: 1}, timeout=10)  # fmt: skip
    assert time.monotonic() - t0 < 45


def test_worker_and_tools_over_tls_with_scram(secured_broker: Broker, tmp_path: Path) -> None:
    """SASL_SSL: the broker's certificate is checked against TOKENLORD_KAFKA_CA_FILE (PEM)."""
    t0 = time.monotonic()
    b = secured_broker
    env = client_env(b.sasl_ssl, "SASL_SSL", "SCRAM-SHA-512", b.user, b.password, tmp_path)
    produce_consume_rank({**env, "TOKENLORD_KAFKA_CA_FILE": str(b.ca_file)}, tmp_path)
    # Without the CA the system's trust store does not know the broker: refused, not silently accepted.
    admin_refused(env, b.password)
    assert time.monotonic() - t0 < 45
