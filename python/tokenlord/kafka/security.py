"""How every Kafka client of tokenlord connects: bootstrap servers plus the
security settings (``TOKENLORD_KAFKA_SECURITY_PROTOCOL``, SASL user and
password, CA / client certificate), for confluent-kafka (producers, admin,
tooling). The Faust app's credentials from the same settings are in
streams/credentials.py (the app layer, above this one).

Secrets come from the environment or a file only, and never reach a log:
:func:`describe` is what may be printed.
"""

from __future__ import annotations

from typing import Any, Protocol


class KafkaSettings(Protocol):
    @property
    def kafka_brokers(self) -> str: ...
    @property
    def kafka_security_protocol(self) -> str: ...
    @property
    def kafka_sasl_mechanism(self) -> str: ...
    @property
    def kafka_username(self) -> str: ...
    @property
    def kafka_ca_file(self) -> str: ...
    @property
    def kafka_cert_file(self) -> str: ...
    @property
    def kafka_key_file(self) -> str: ...
    def kafka_secret(self) -> str: ...


def client_config(settings: KafkaSettings) -> dict[str, Any]:
    """librdkafka (confluent-kafka) properties: ``bootstrap.servers`` and security."""
    conf: dict[str, Any] = {"bootstrap.servers": settings.kafka_brokers}
    proto = settings.kafka_security_protocol
    if proto == "PLAINTEXT":
        return conf
    conf["security.protocol"] = proto
    if proto.startswith("SASL_"):
        conf["sasl.mechanism"] = settings.kafka_sasl_mechanism
        conf["sasl.username"] = settings.kafka_username
        conf["sasl.password"] = settings.kafka_secret()
    if settings.kafka_ca_file:
        conf["ssl.ca.location"] = settings.kafka_ca_file
    if settings.kafka_cert_file:
        conf["ssl.certificate.location"] = settings.kafka_cert_file
        conf["ssl.key.location"] = settings.kafka_key_file
    return conf


def describe(conf: dict[str, Any]) -> dict[str, Any]:
    """``conf`` with its secrets masked, for logs and errors."""
    return {k: ("***" if "password" in k or k.endswith(".pem") else v) for k, v in conf.items()}
