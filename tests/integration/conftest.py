"""Fixtures for the integration tests: a real single-node Kafka started by the suite.

The broker runs from ``<repo>/var/kafka-test`` on 127.0.0.1, port
``$TOKENLORD_TEST_KAFKA_PORT`` (default 19092, controller the next port) so it
does not clash with a dev broker on 9092. It is stopped when the session ends
unless ``TOKENLORD_TEST_KEEP_KAFKA=1`` (then the next session reuses it).
Not meant for pytest-xdist: each worker would stop the shared broker at its end.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tokenlord.kafka import local
from tokenlord.kafka.admin import delete_topics, ensure_topics

REPO = Path(__file__).resolve().parents[2]
KAFKA_TEST_HOME = REPO / "var" / "kafka-test"


def kafka_test_port() -> int:
    return int(os.environ.get("TOKENLORD_TEST_KAFKA_PORT", "19092"))


def kafka_test_controller_port() -> int:
    return int(os.environ.get("TOKENLORD_TEST_KAFKA_CONTROLLER_PORT", str(kafka_test_port() + 1)))


@pytest.fixture(scope="session")
def kafka_home() -> Path:
    return KAFKA_TEST_HOME


@pytest.fixture(scope="session")
def kafka_ports() -> tuple[int, int]:
    """(PLAINTEXT port, controller port) of the test broker."""
    return kafka_test_port(), kafka_test_controller_port()


@pytest.fixture(scope="session")
def kafka_brokers(kafka_home: Path, kafka_ports: tuple[int, int]) -> Iterator[str]:
    """``"127.0.0.1:<port>"`` of a real Kafka started for this test session."""
    port, controller_port = kafka_ports
    local.start(kafka_home, port=port, controller_port=controller_port, timeout=180)
    try:
        yield f"{local.HOST}:{port}"
    finally:
        if os.environ.get("TOKENLORD_TEST_KEEP_KAFKA") != "1":
            local.stop(kafka_home)


@pytest.fixture
def topic(kafka_brokers: str) -> Iterator[Callable[..., str]]:
    """Factory: ``topic(prefix="test", partitions=3)`` creates a fresh uuid-suffixed topic.

    The topics are deleted when the test ends.
    """
    created: list[str] = []

    def make(prefix: str = "test", partitions: int = 3) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        ensure_topics(kafka_brokers, {name: partitions})
        created.append(name)
        return name

    yield make
    with contextlib.suppress(Exception):  # cleanup only: never fail a test on it
        delete_topics(kafka_brokers, created)
