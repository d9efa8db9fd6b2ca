"""A real single-node Apache Kafka (KRaft, broker + controller) on 127.0.0.1.

Backs ``tokenlord kafka-local start|stop|status`` and the integration tests.

* Jars come from Maven Central through Maven (``mvn dependency:copy-dependencies``
  on a small generated pom) and are cached under
  ``$TOKENLORD_CACHE_DIR/kafka-<version>/libs`` (default ``~/.cache/tokenlord``).
  ``TOKENLORD_KAFKA_LIBS`` may point at an existing directory of Kafka jars instead.
* Everything else (config, data, log, pid file) lives under ``home``.
* ``start`` is idempotent and safe to call from several processes at once
  (file locks); it returns only once the broker answers metadata requests.
* ``java`` is taken from ``$JAVA_HOME/bin/java`` or ``PATH`` (17 or newer).

Linux/macOS only (``fcntl`` locks, process sessions).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tokenlord.errors import KafkaLocalError

__all__ = [
    "HOST",
    "KAFKA_VERSION",
    "SASL_MECHANISMS",
    "BrokerCerts",
    "KafkaLocalError",
    "cache_dir",
    "ensure_jars",
    "find_java",
    "make_test_certs",
    "start",
    "status",
    "stop",
]

KAFKA_VERSION = "4.4.0"
SCALA_VERSION = "2.13"
LOG4J_VERSION = "2.26.1"
#: Kafka's pom pulls slf4j-api 1.7; the log4j2 binding needs the 2.x API.
SLF4J_VERSION = "2.0.17"
DEPENDENCY_PLUGIN_VERSION = "3.8.1"
MIN_JAVA = 17
HOST = "127.0.0.1"
NODE_ID = 1
#: Largest message the local broker accepts (contract: values over 1 MiB are
#: rejected by the worker, so tests must be able to produce them first).
MESSAGE_MAX_BYTES = 16 * 1024 * 1024
JVM_OPTS = (
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
DOWNLOAD_TIMEOUT = 900.0

PID_FILE = "kafka.pid"
LOG_FILE = "kafka.log"
PROPS_FILE = "server.properties"
LOG4J_FILE = "log4j2.properties"
DATA_DIR = "data"
LOCK_FILE = ".kafka.lock"

_log = logging.getLogger(__name__)
_rdkafka_log = logging.getLogger("tokenlord.kafka.librdkafka")
_rdkafka_log.addHandler(logging.NullHandler())
_rdkafka_log.propagate = False

#: Brokers started by this process, so they can be reaped (no zombies, no
#: ResourceWarning) when this same process stops them.
_children: dict[int, subprocess.Popen[bytes]] = {}


# --------------------------------------------------------------------------- paths


def cache_dir() -> Path:
    """``$TOKENLORD_CACHE_DIR`` or ``~/.cache/tokenlord``."""
    env = os.environ.get("TOKENLORD_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tokenlord"


def _home(home: Path | str) -> Path:
    return Path(home).expanduser().resolve()


# --------------------------------------------------------------------------- locking


@contextlib.contextmanager
def _file_lock(path: Path, timeout: float, what: str) -> Iterator[None]:
    """Exclusive ``flock`` on ``path``; released when the block ends (or the process dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise KafkaLocalError(
                        f"timed out after {timeout:.0f}s waiting for {path} (another process is busy with {what})"
                    ) from None
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- java + jars


def find_java() -> str:
    """Path of a ``java`` (17+) from ``$JAVA_HOME`` or ``PATH``."""
    java: str | None = None
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            java = str(candidate)
    if java is None:
        java = shutil.which("java")
    if java is None:
        raise KafkaLocalError("java not found: install a JDK 17+ or set JAVA_HOME")
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KafkaLocalError(f"cannot run {java} -version: {exc}") from exc
    text = out.stderr + out.stdout
    match = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if match is None:
        raise KafkaLocalError(f"cannot tell the Java version of {java}: {text.strip()[:200]}")
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8.0_392" style
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise KafkaLocalError(
            f"{java} is Java {major}; Kafka {KAFKA_VERSION} needs Java {MIN_JAVA}+ "
            "(install a newer JDK or set JAVA_HOME)"
        )
    return java


def _pom(version: str) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by tokenlord.kafka.local: the jars of a local Kafka broker. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.tokenlord</groupId>
  <artifactId>kafka-local</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{SCALA_VERSION}</artifactId>
      <version>{version}</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-api</artifactId>
      <version>{SLF4J_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j2-impl</artifactId>
      <version>{LOG4J_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>{LOG4J_VERSION}</version>
    </dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>{DEPENDENCY_PLUGIN_VERSION}</version>
      </plugin>
    </plugins>
  </build>
</project>
"""


def _has_kafka_jar(libs: Path) -> bool:
    return any(libs.glob(f"kafka_{SCALA_VERSION}-*.jar"))


def ensure_jars(version: str = KAFKA_VERSION, timeout: float = DOWNLOAD_TIMEOUT) -> Path:
    """Directory holding the broker's jars; fetches them with Maven the first time."""
    override = os.environ.get("TOKENLORD_KAFKA_LIBS")
    if override:
        libs = Path(override).expanduser().resolve()
        if not _has_kafka_jar(libs):
            raise KafkaLocalError(f"TOKENLORD_KAFKA_LIBS={override}: no kafka_{SCALA_VERSION}-*.jar in it")
        return libs
    base = cache_dir() / f"kafka-{version}"
    libs = base / "libs"
    marker = libs / ".complete"
    if marker.exists():
        return libs
    with _file_lock(base / ".lock", timeout + 60, f"downloading Kafka {version}"):
        if marker.exists():  # another process fetched them while we waited
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise KafkaLocalError(
                "mvn not found: Maven fetches the Kafka jars the first time "
                "(install it, e.g. `apt-get install maven`), or set TOKENLORD_KAFKA_LIBS "
                "to a directory of Kafka jars"
            )
        pom = base / "pom.xml"
        pom.write_text(_pom(version), encoding="utf-8")
        tmp = base / f"libs.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        cmd = [
            mvn,
            "-q",
            "-B",
            "-Dstyle.color=never",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={tmp}",
            "-DincludeScope=runtime",
        ]
        _log.info("fetching Kafka %s jars: %s", version, " ".join(cmd))
        try:
            res = subprocess.run(
                cmd,
                cwd=base,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise KafkaLocalError(f"Maven did not fetch the Kafka {version} jars within {timeout:.0f}s") from exc
        if res.returncode != 0 or not _has_kafka_jar(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
            tail = "\n".join((res.stdout + res.stderr).strip().splitlines()[-30:])
            raise KafkaLocalError(
                f"Maven could not fetch org.apache.kafka:kafka_{SCALA_VERSION}:{version} "
                f"(exit {res.returncode}; pom {pom}):\n{tail}"
            )
        (tmp / ".complete").write_text(version + "\n", encoding="utf-8")
        shutil.rmtree(libs, ignore_errors=True)
        os.replace(tmp, libs)
    return libs


# --------------------------------------------------------------------------- config files


#: Mechanisms of the SASL listeners of a test broker (``start(..., sasl=...)``).
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_SCRAM_MECHANISMS = tuple(m for m in SASL_MECHANISMS if m.startswith("SCRAM-"))
_SCRAM_UNSAFE = re.compile(r"[\[\],=\s\"']")


@dataclass(frozen=True)
class BrokerCerts:
    """A throw-away CA and a broker key store signed by it (:func:`make_test_certs`)."""

    ca_pem: Path  # what a client trusts (TOKENLORD_KAFKA_CA_FILE)
    keystore: Path  # PKCS12: the broker's key and certificate chain
    password: str  # of the key store and the key


def _listener_sasl_lines(listener: str, users: Mapping[str, str]) -> list[str]:
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
        for m in _SCRAM_MECHANISMS
    ]
    return lines


def _server_properties(
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
            *_listener_sasl_lines("SASL_PLAINTEXT", users),
        ]
        if sasl_ssl is not None:
            ssl_port, certs = sasl_ssl
            listeners += f",SASL_SSL://{HOST}:{ssl_port}"
            advertised += f",SASL_SSL://{HOST}:{ssl_port}"
            protocols += ",SASL_SSL:SASL_SSL"
            sasl_lines += [
                *_listener_sasl_lines("SASL_SSL", users),
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


_LOG4J2 = """\
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


def _configured_port(home: Path) -> int | None:
    """The PLAINTEXT port of the broker last started from ``home``."""
    props = home / PROPS_FILE
    try:
        text = props.read_text(encoding="utf-8")
    except OSError:
        return None
    match = re.search(r"^advertised\.listeners=PLAINTEXT://[^:]+:(\d+)", text, re.MULTILINE)
    return int(match.group(1)) if match else None


# --------------------------------------------------------------------------- processes


def _read_pid(home: Path) -> int | None:
    try:
        return int((home / PID_FILE).read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


def _remove_pid(home: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (home / PID_FILE).unlink()


def _alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None  # poll() reaps it once it has exited
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) is not running
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _is_our_broker(pid: int, home: Path) -> bool:
    """True if ``pid`` is a Kafka started from ``home`` (guards against pid reuse)."""
    if not _alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc (macOS): trust the pid file
    props = os.fsencode(home / PROPS_FILE)
    return b"kafka.Kafka" in argv and props in argv


def _port_open(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def _serves_metadata(port: int, timeout: float) -> bool:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(
        {"bootstrap.servers": f"{HOST}:{port}", "log.connection.close": False},
        logger=_rdkafka_log,
    )
    try:
        md = admin.list_topics(timeout=timeout)
    except KafkaException:
        return False
    return NODE_ID in md.brokers


def _log_tail(home: Path, lines: int = 40) -> str:
    try:
        with (home / LOG_FILE).open("r", encoding="utf-8", errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines)).rstrip() or "(the log is empty)"
    except OSError:
        return "(no log)"


def _wait_ready(home: Path, pid: int, port: int, deadline: float, started: float) -> None:
    while True:
        if not _alive(pid):
            child = _children.pop(pid, None)
            code = child.returncode if child is not None else None
            how = f" with exit code {code}" if code is not None else ""
            raise KafkaLocalError(
                f"Kafka (pid {pid}) exited during startup{how}; last lines of {home / LOG_FILE}:\n{_log_tail(home)}"
            )
        remaining = deadline - time.monotonic()
        if _port_open(port) and _serves_metadata(port, max(0.5, min(5.0, remaining))):
            return
        if time.monotonic() >= deadline:
            raise KafkaLocalError(
                f"Kafka (pid {pid}) did not serve metadata on {HOST}:{port} within "
                f"{time.monotonic() - started:.0f}s; last lines of {home / LOG_FILE}:\n"
                f"{_log_tail(home)}"
            )
        time.sleep(0.25)


def _signal(pid: int, sig: signal.Signals) -> None:
    """Signal the broker's process group (it runs in its own session), else the pid."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _terminate(pid: int, timeout: float) -> bool:
    """SIGTERM, wait up to ``timeout``, then SIGKILL. True if it exited on SIGTERM."""
    _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            _children.pop(pid, None)
            return True
        time.sleep(0.1)
    _signal(pid, signal.SIGKILL)
    kill_deadline = time.monotonic() + 15
    while _alive(pid) and time.monotonic() < kill_deadline:
        time.sleep(0.1)
    _children.pop(pid, None)
    return False


def _run_tool(java: str, libs: Path, home: Path, args: list[str]) -> str:
    cmd = [
        java,
        "-Xmx256m",
        f"-Dlog4j2.configurationFile={home / LOG4J_FILE}",
        "-cp",
        f"{libs}/*",
        "kafka.tools.StorageTool",
        *args,
    ]
    try:
        res = subprocess.run(cmd, cwd=home, capture_output=True, text=True, timeout=120, check=False)
    except subprocess.TimeoutExpired as exc:
        raise KafkaLocalError(f"kafka StorageTool {args[0]} timed out") from exc
    if res.returncode != 0:
        raise KafkaLocalError(
            f"kafka StorageTool {args[0]} failed (exit {res.returncode}):\n{(res.stdout + res.stderr).strip()[-3000:]}"
        )
    return res.stdout


def _format_storage(java: str, libs: Path, home: Path, scram_users: Mapping[str, str] | None = None) -> str:
    """Format the data directory once; with ``scram_users``, always anew with their SCRAM credentials."""
    data = home / DATA_DIR
    if scram_users is not None:
        shutil.rmtree(data, ignore_errors=True)  # credentials are set at format time only
    if (data / "meta.properties").exists():
        return ""
    shutil.rmtree(data, ignore_errors=True)  # a half-formatted leftover
    out = _run_tool(java, libs, home, ["random-uuid"]).strip().splitlines()
    if not out:
        raise KafkaLocalError("kafka StorageTool random-uuid printed nothing")
    cluster_id = out[-1].strip()
    scram = [
        arg
        for user, pw in (scram_users or {}).items()
        for m in _SCRAM_MECHANISMS
        for arg in ("--add-scram", f"{m}=[name={user},password={pw}]")
    ]
    _run_tool(java, libs, home, ["format", "-t", cluster_id, "-c", str(home / PROPS_FILE), *scram])
    return cluster_id


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600, also when it existed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(text)


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


def _spawn(java: str, libs: Path, home: Path) -> int:
    log_path = home / LOG_FILE
    if log_path.exists():
        os.replace(log_path, home / (LOG_FILE + ".1"))
    cmd = [
        java,
        *JVM_OPTS,
        f"-Dlog4j2.configurationFile={home / LOG4J_FILE}",
        f"-Dkafka.logs.dir={home}",
        "-cp",
        f"{libs}/*",
        "kafka.Kafka",
        str(home / PROPS_FILE),
    ]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=home,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    _children[proc.pid] = proc
    (home / PID_FILE).write_text(f"{proc.pid}\n", encoding="utf-8")
    return proc.pid


# --------------------------------------------------------------------------- public API


def start(
    home: Path,
    port: int = 9092,
    controller_port: int = 9093,
    timeout: float = 120,
    *,
    sasl: tuple[int, Mapping[str, str]] | None = None,
    sasl_ssl: tuple[int, BrokerCerts] | None = None,
) -> str:
    """Start the broker (if it is not running yet) and wait until it serves metadata.

    For testing authenticated clients (the PLAINTEXT listener stays):
    ``sasl=(port, {user: password})`` adds a SASL_PLAINTEXT listener on that
    port accepting those accounts with each of :data:`SASL_MECHANISMS` (PLAIN
    from the listener's config, SCRAM credentials written when the storage is
    formatted, so the data directory is formatted anew on every such start);
    ``sasl_ssl=(port, certs)`` (with ``sasl``) adds a SASL_SSL listener with
    the same accounts and TLS from :func:`make_test_certs`.

    ``timeout`` bounds the wait for the broker; fetching the jars the first
    time has its own bound (:data:`DOWNLOAD_TIMEOUT`). Returns a message for
    a person; raises :class:`KafkaLocalError`.
    """
    home = _home(home)
    if port == controller_port:
        raise KafkaLocalError(f"port and controller port must differ (both {port})")
    home.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    pid = _read_pid(home)
    java: str | None = None
    if pid is None or not _is_our_broker(pid, home):
        # Fetch the jars before taking the home lock: that can take minutes and
        # has its own lock, so a concurrent `status`/`stop` isn't blocked by it.
        java = find_java()
        ensure_jars()
    with _file_lock(home / LOCK_FILE, timeout + 120, f"starting or stopping Kafka in {home}"):
        pid = _read_pid(home)
        if pid is not None and _is_our_broker(pid, home):
            running_port = _configured_port(home)
            if running_port is not None and running_port != port:
                raise KafkaLocalError(
                    f"Kafka from {home} is already running on {HOST}:{running_port} "
                    f"(pid {pid}); stop it first to use port {port}"
                )
            _wait_ready(home, pid, port, time.monotonic() + timeout, t0)
            return f"Kafka already running on {HOST}:{port} (pid {pid}, data in {home})"
        if pid is not None:
            _remove_pid(home)  # stale
        if sasl_ssl is not None and sasl is None:
            raise KafkaLocalError("a SASL_SSL listener needs the SASL accounts: pass sasl=(port, users) too")
        for user, pw in (sasl[1] if sasl else {}).items():
            if _SCRAM_UNSAFE.search(user + pw) or not (user and pw):
                raise KafkaLocalError(f"test account {user!r}: no spaces, quotes or any of []=, in a name or password")
        extra_ports = [p for p in (sasl[0] if sasl else None, sasl_ssl[0] if sasl_ssl else None) if p is not None]
        for p in (port, controller_port, *extra_ports):
            if _port_open(p):
                raise KafkaLocalError(f"{HOST}:{p} is already in use by another process; stop it or choose other ports")
        java = java or find_java()
        libs = ensure_jars()
        # It holds the SASL accounts' and key store's passwords: owner only.
        write_private(home / PROPS_FILE, _server_properties(home, port, controller_port, sasl, sasl_ssl))
        (home / LOG4J_FILE).write_text(_LOG4J2, encoding="utf-8")
        _format_storage(java, libs, home, dict(sasl[1]) if sasl else None)
        t_spawn = time.monotonic()
        pid = _spawn(java, libs, home)
        try:
            _wait_ready(home, pid, port, t_spawn + timeout, t_spawn)
        except BaseException:
            _terminate(pid, 10)
            _remove_pid(home)
            raise
        elapsed = time.monotonic() - t0
        return (
            f"Kafka {KAFKA_VERSION} started on {HOST}:{port} (pid {pid}, controller "
            f"{HOST}:{controller_port}, data in {home}, log {home / LOG_FILE}) in {elapsed:.1f}s"
        )


def stop(home: Path, timeout: float = 60) -> str:
    """Stop the broker started from ``home``: SIGTERM, then SIGKILL after ``timeout``."""
    home = _home(home)
    if not home.is_dir():
        return f"Kafka is not running (no {home})"
    with _file_lock(home / LOCK_FILE, timeout + 180, f"starting or stopping Kafka in {home}"):
        pid = _read_pid(home)
        if pid is None:
            return f"Kafka is not running (no pid file in {home})"
        if not _is_our_broker(pid, home):
            _remove_pid(home)
            return f"Kafka is not running (removed stale pid file {home / PID_FILE})"
        t0 = time.monotonic()
        graceful = _terminate(pid, timeout)
        _remove_pid(home)
        if _alive(pid):
            raise KafkaLocalError(f"Kafka (pid {pid}) survived SIGKILL")
        how = "stopped" if graceful else f"killed (no exit within {timeout:.0f}s of SIGTERM)"
        return f"Kafka {how} (pid {pid}) in {time.monotonic() - t0:.1f}s"


def status(home: Path, port: int = 9092) -> tuple[bool, str]:
    """``(running, message)``: running means our pid is alive and the port answers."""
    home = _home(home)
    pid = _read_pid(home)
    ours = pid is not None and _is_our_broker(pid, home)
    answering = _port_open(port)
    if ours and answering:
        return True, f"Kafka running on {HOST}:{port} (pid {pid}, data in {home})"
    if ours:
        running_port = _configured_port(home)
        if running_port is not None and running_port != port:
            return (
                False,
                f"Kafka from {home} runs on {HOST}:{running_port} (pid {pid}), not on port {port}",
            )
        return False, f"Kafka process {pid} is alive but {HOST}:{port} does not answer (starting?)"
    if answering:
        return (
            False,
            f"Kafka from {home} is not running, but {HOST}:{port} answers (another broker or process)",
        )
    if pid is not None:
        return False, f"Kafka is not running (stale pid file {home / PID_FILE})"
    return False, f"Kafka is not running ({home})"
