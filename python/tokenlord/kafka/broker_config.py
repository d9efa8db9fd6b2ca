"""The broker's ``server.properties`` for ``tokenlord kafka-local`` (KRaft, one node on
127.0.0.1), with the SASL/TLS listeners the tests of authenticated clients add."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["HOST", "NODE_ID", "SASL_MECHANISMS", "BrokerCerts", "configured_port", "server_properties"]

HOST = "127.0.0.1"
NODE_ID = 1
#: Largest message the local broker accepts (contract: values over 1 MiB are
#: rejected by the worker, so tests must be able to produce them first).
MESSAGE_MAX_BYTES = 16 * 1024 * 1024
PROPS_FILE = "server.properties"
LOG4J_FILE = "log4j2.properties"
DATA_DIR = "data"

# --------------------------------------------------------------------------- config files


#: Mechanisms of the SASL listeners of a test broker (``start(..., sasl=...)``).
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
SCRAM_MECHANISMS = tuple(m for m in SASL_MECHANISMS if m.startswith("SCRAM-"))
SCRAM_UNSAFE = re.compile(r"[\[\],=\s\"']")


@dataclass(frozen=True)
class BrokerCerts:
    """A throw-away CA and a broker key store signed by it (:func:`make_test_certs`)."""

    ca_pem: Path  # what a client trusts (TOKENLORD_KAFKA_CA_FILE)
    keystore: Path  # PKCS12: the broker's key and certificate chain
    password: str  # of the key store and the key


def listener_sasl_lines(listener: str, users: Mapping[str, str]) -> list[str]:
    name = listener.lower()
    accounts = " ".join(f'user_{u}="{pw}"' for u, pw in users.items())
    lines = [
        f"listener.name.{name}.sasl.enabled.mechanisms={','.join(SASL_MECHANISMS)}",
        f"listener.name.{name}.plain.sasl.jaas.config="
        f"org.apache.kafka.common.security.plain.PlainLoginModule required {accounts};",
    ]
    # SCRAM credentials live in the cluster metadata (``format --add-scram``), not here.
    lines += [
        f"listener.name.{name}.{m.lower()}.sasl.jaas.config="
        "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        for m in SCRAM_MECHANISMS
    ]
    return lines


def server_properties(
    home: Path,
    port: int,
    controller_port: int,
    sasl: tuple[int, Mapping[str, str]] | None = None,
    sasl_ssl: tuple[int, BrokerCerts] | None = None,
) -> str:
    data = home / DATA_DIR
    listeners = f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}"
    advertised = f"PLAINTEXT://{HOST}:{port}"
    protocols = "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    sasl_lines: list[str] = []
    if sasl is not None:
        sasl_port, users = sasl
        listeners += f",SASL_PLAINTEXT://{HOST}:{sasl_port}"
        advertised += f",SASL_PLAINTEXT://{HOST}:{sasl_port}"
        protocols += ",SASL_PLAINTEXT:SASL_PLAINTEXT"
        sasl_lines = [
            f"sasl.enabled.mechanisms={','.join(SASL_MECHANISMS)}",
            *listener_sasl_lines("SASL_PLAINTEXT", users),
        ]
        if sasl_ssl is not None:
            ssl_port, certs = sasl_ssl
            listeners += f",SASL_SSL://{HOST}:{ssl_port}"
            advertised += f",SASL_SSL://{HOST}:{ssl_port}"
            protocols += ",SASL_SSL:SASL_SSL"
            sasl_lines += [
                *listener_sasl_lines("SASL_SSL", users),
                f"listener.name.sasl_ssl.ssl.keystore.location={certs.keystore}",
                "listener.name.sasl_ssl.ssl.keystore.type=PKCS12",
                f"listener.name.sasl_ssl.ssl.keystore.password={certs.password}",
                f"listener.name.sasl_ssl.ssl.key.password={certs.password}",
            ]
    lines = [
        "# Written by tokenlord.kafka.local on every start; edits are overwritten.",
        "process.roles=broker,controller",
        f"node.id={NODE_ID}",
        f"controller.quorum.voters={NODE_ID}@{HOST}:{controller_port}",
        f"listeners={listeners}",
        f"advertised.listeners={advertised}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        f"listener.security.protocol.map={protocols}",
        *sasl_lines,
        f"log.dirs={data}",
        "num.partitions=3",
        "default.replication.factor=1",
        "min.insync.replicas=1",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=5",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "transaction.state.log.num.partitions=5",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "auto.create.topics.enable=true",
        "delete.topic.enable=true",
        f"message.max.bytes={MESSAGE_MAX_BYTES}",
        f"replica.fetch.max.bytes={MESSAGE_MAX_BYTES}",
        "num.network.threads=2",
        "num.io.threads=4",
        "num.recovery.threads.per.data.dir=1",
        "log.retention.hours=168",
        "",
    ]
    return "\n".join(lines)


LOG4J2_CONFIG = """\
# Written by tokenlord.kafka.local: broker logs go to stdout, i.e. kafka.log.
status = warn
name = tokenlord-kafka-local
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
# the full config dump on every client/server start: server.properties is beside this file
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
"""


def configured_port(home: Path) -> int | None:
    """The PLAINTEXT port of the broker last started from ``home``."""
    props = home / PROPS_FILE
    try:
        text = props.read_text(encoding="utf-8")
    except OSError:
        return None
    match = re.search(r"^advertised\.listeners=PLAINTEXT://[^:]+:(\d+)", text, re.MULTILINE)
    return int(match.group(1)) if match else None
