"""Kafka security settings: validation, masking, and what each client gets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import faust
import pytest
from tokenlord.errors import ConfigError
from tokenlord.kafka.security import client_config, describe
from tokenlord.settings import Settings

from streams.credentials import faust_credentials


def settings(**env: str) -> Settings:
    return Settings.from_env(environ={f"TOKENLORD_{k.upper()}": v for k, v in env.items()})


def test_plaintext_is_just_the_bootstrap_servers() -> None:
    s = settings(kafka_brokers="k1:9092,k2:9092")
    assert client_config(s) == {"bootstrap.servers": "k1:9092,k2:9092"}
    assert faust_credentials(s) is None


def test_sasl_ssl_with_a_password_file_and_a_ca(tmp_path: Path) -> None:
    secret, ca = tmp_path / "pw", tmp_path / "ca.pem"
    secret.write_text("s3cret\n")
    ca.write_text("not used by this test")
    s = settings(kafka_security_protocol="sasl_ssl", kafka_sasl_mechanism="scram-sha-512", kafka_username="tl",
                 kafka_password_file=str(secret), kafka_ca_file=str(ca))  # fmt: skip
    conf = client_config(s)
    assert conf == {
        "bootstrap.servers": "localhost:9092",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "tl",
        "sasl.password": "s3cret",
        "ssl.ca.location": str(ca),
    }
    assert describe(conf)["sasl.password"] == "***"


def test_faust_gets_sasl_credentials() -> None:
    s = settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_username="tl", kafka_password="pw")
    creds = faust_credentials(s)
    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.username, creds.password, creds.mechanism.value) == ("tl", "pw", "PLAIN")
    assert creds.ssl_context is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "needs TOKENLORD_KAFKA_USERNAME and TOKENLORD_KAFKA_PASSWORD"),
        ({"kafka_security_protocol": "tls"}, "must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"),
        ({"kafka_sasl_mechanism": "GSSAPI"}, "must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"),
        ({"kafka_ca_file": "/nonexistent/ca.pem"}, "no such file"),
        ({"kafka_password": "a", "kafka_password_file": "/etc/hostname"}, "not both"),
        ({"kafka_cert_file": "/etc/hostname"}, "go together"),
        ({"kafka_ca_file": "/etc/hostname"}, "only used with TLS"),
    ],
)
def test_bad_combinations_say_how_to_fix_them(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings(**env)


def test_the_password_is_masked_and_never_a_flag() -> None:
    env = {"PATH": "/usr/bin:/bin", "TOKENLORD_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
           "TOKENLORD_KAFKA_USERNAME": "tl", "TOKENLORD_KAFKA_PASSWORD": "hunter2"}  # fmt: skip
    out = subprocess.run([sys.executable, "-m", "tokenlord", "config"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "hunter2" not in out.stdout and "TOKENLORD_KAFKA_PASSWORD" in out.stdout and "***" in out.stdout
    flag = subprocess.run([sys.executable, "-m", "tokenlord", "config", "--kafka-password", "x"], env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert flag.returncode == 2 and "unrecognized arguments: --kafka-password" in flag.stderr
