"""Test certificates for a local broker's SASL_SSL listener (tests only; the runtime
package has no use for them)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tokenlord.errors import KafkaLocalError
from tokenlord.kafka.broker_config import BrokerCerts
from tokenlord.kafka.jars import find_java

__all__ = ["make_test_certs"]


def make_test_certs(directory: Path, password: str, validity_days: int = 2) -> BrokerCerts:
    """A CA and a broker key store for 127.0.0.1 / localhost, made with the JDK's keytool.

    For tests only: short-lived, one password for everything, written into
    ``directory`` (created; existing files are replaced).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    keytool = str(Path(find_java()).parent / "keytool")
    ca_store, ca_pem = directory / "ca.p12", directory / "ca.pem"
    keystore, csr, crt = directory / "broker.p12", directory / "broker.csr", directory / "broker.pem"
    for f in (ca_store, ca_pem, keystore, csr, crt):
        f.unlink(missing_ok=True)
    san = "SAN=ip:127.0.0.1,dns:localhost"
    common = ["-storetype", "PKCS12", "-storepass", password, "-keypass", password]

    def kt(*args: str) -> None:
        try:
            res = subprocess.run([keytool, *args], capture_output=True, text=True, timeout=120, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise KafkaLocalError(f"keytool {args[0]} failed: {exc}") from exc
        if res.returncode != 0:
            raise KafkaLocalError(f"keytool {args[0]} failed (exit {res.returncode}): {res.stderr.strip()[-2000:]}")

    days = str(validity_days)
    kt("-genkeypair", "-alias", "ca", "-keyalg", "RSA", "-keysize", "2048", "-dname", "CN=tokenlord test CA",
       "-ext", "bc:c", "-validity", days, "-keystore", str(ca_store), *common)  # fmt: skip
    kt("-exportcert", "-rfc", "-alias", "ca", "-keystore", str(ca_store), "-storepass", password, "-file", str(ca_pem))
    kt("-genkeypair", "-alias", "broker", "-keyalg", "RSA", "-keysize", "2048", "-dname", "CN=127.0.0.1",
       "-ext", san, "-validity", days, "-keystore", str(keystore), *common)  # fmt: skip
    kt("-certreq", "-alias", "broker", "-keystore", str(keystore), "-storepass", password, "-file", str(csr))
    kt("-gencert", "-rfc", "-alias", "ca", "-keystore", str(ca_store), "-storepass", password, "-infile", str(csr),
       "-outfile", str(crt), "-ext", san, "-validity", days)  # fmt: skip
    kt("-importcert", "-noprompt", "-alias", "ca", "-file", str(ca_pem), "-keystore", str(keystore), *common)
    kt("-importcert", "-noprompt", "-alias", "broker", "-file", str(crt), "-keystore", str(keystore), *common)
    return BrokerCerts(ca_pem=ca_pem, keystore=keystore, password=password)
