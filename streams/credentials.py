"""The Faust app's broker credentials, from the same settings as every other
Kafka client of tokenlord (:mod:`tokenlord.kafka.security`).

Secrets come from the environment or a file only, and never reach a log.
"""

from __future__ import annotations

import ssl
from typing import Any

from tokenlord.kafka.security import KafkaSettings

__all__ = ["faust_credentials"]


def _ssl_context(settings: KafkaSettings) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=settings.kafka_ca_file or None)
    if settings.kafka_cert_file:
        ctx.load_cert_chain(settings.kafka_cert_file, settings.kafka_key_file)
    return ctx


def faust_credentials(settings: KafkaSettings) -> Any:
    """``broker_credentials`` for the Faust app (None for PLAINTEXT)."""
    import faust

    proto = settings.kafka_security_protocol
    if proto == "PLAINTEXT":
        return None
    if proto == "SSL":
        return faust.SSLCredentials(_ssl_context(settings))
    creds = faust.SASLCredentials(
        username=settings.kafka_username,
        password=settings.kafka_secret(),
        mechanism=settings.kafka_sasl_mechanism,
        ssl_context=_ssl_context(settings) if proto == "SASL_SSL" else None,
    )
    return creds
