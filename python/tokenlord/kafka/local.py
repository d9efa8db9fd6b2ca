"""A real single-node Apache Kafka (KRaft, broker + controller) on 127.0.0.1.

Backs ``tokenlord kafka-local start|stop|status`` and the integration tests.

This module runs the broker process; its jars and java come from
:mod:`tokenlord.kafka.jars`, its ``server.properties`` from
:mod:`tokenlord.kafka.broker_config`; the tests' certificates are made in
``tests/kafka_certs.py``.

* Everything else (config, data, log, pid file) lives under ``home``.
* ``start`` is idempotent and safe to call from several processes at once
  (file locks); it returns only once the broker answers metadata requests.
* ``java`` is taken from ``$JAVA_HOME/bin/java`` or ``PATH`` (17 or newer).

Linux/macOS only (``fcntl`` locks, process sessions).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path

from tokenlord.errors import KafkaLocalError
from tokenlord.kafka.broker_config import (
    DATA_DIR,
    HOST,
    LOG4J2_CONFIG,
    LOG4J_FILE,
    NODE_ID,
    PROPS_FILE,
    SASL_MECHANISMS,
    SCRAM_MECHANISMS,
    SCRAM_UNSAFE,
    BrokerCerts,
    configured_port,
    server_properties,
)
from tokenlord.kafka.jars import KAFKA_VERSION, cache_dir, ensure_jars, file_lock, find_java

__all__ = [
    "HOST",
    "KAFKA_VERSION",
    "SASL_MECHANISMS",
    "BrokerCerts",
    "KafkaLocalError",
    "cache_dir",
    "ensure_jars",
    "find_java",
    "start",
    "status",
    "stop",
]

JVM_OPTS = (
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)

PID_FILE = "kafka.pid"
LOG_FILE = "kafka.log"
LOCK_FILE = ".kafka.lock"

_log = logging.getLogger(__name__)
_rdkafka_log = logging.getLogger("tokenlord.kafka.librdkafka")
_rdkafka_log.addHandler(logging.NullHandler())
_rdkafka_log.propagate = False

#: Brokers started by this process, so they can be reaped (no zombies, no
#: ResourceWarning) when this same process stops them.
_children: dict[int, subprocess.Popen[bytes]] = {}


# --------------------------------------------------------------------------- processes


def _home(home: Path | str) -> Path:
    return Path(home).expanduser().resolve()


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
        for m in SCRAM_MECHANISMS
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
    with file_lock(home / LOCK_FILE, timeout + 120, f"starting or stopping Kafka in {home}"):
        pid = _read_pid(home)
        if pid is not None and _is_our_broker(pid, home):
            running_port = configured_port(home)
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
            if SCRAM_UNSAFE.search(user + pw) or not (user and pw):
                raise KafkaLocalError(f"test account {user!r}: no spaces, quotes or any of []=, in a name or password")
        extra_ports = [p for p in (sasl[0] if sasl else None, sasl_ssl[0] if sasl_ssl else None) if p is not None]
        for p in (port, controller_port, *extra_ports):
            if _port_open(p):
                raise KafkaLocalError(f"{HOST}:{p} is already in use by another process; stop it or choose other ports")
        java = java or find_java()
        libs = ensure_jars()
        # It holds the SASL accounts' and key store's passwords: owner only.
        write_private(home / PROPS_FILE, server_properties(home, port, controller_port, sasl, sasl_ssl))
        (home / LOG4J_FILE).write_text(LOG4J2_CONFIG, encoding="utf-8")
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
    with file_lock(home / LOCK_FILE, timeout + 180, f"starting or stopping Kafka in {home}"):
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
        running_port = configured_port(home)
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
