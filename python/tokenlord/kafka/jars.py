"""Apache Kafka's jars for ``tokenlord kafka-local``: fetched from Maven Central through
Maven once (a small generated pom, ``mvn dependency:copy-dependencies``) and cached under
``$TOKENLORD_CACHE_DIR/kafka-<version>/libs`` (default ``~/.cache/tokenlord``), or taken
from ``TOKENLORD_KAFKA_LIBS``; and the ``java`` (17 or newer) to run them."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tokenlord.errors import KafkaLocalError

__all__ = ["KAFKA_VERSION", "cache_dir", "ensure_jars", "file_lock", "find_java"]


KAFKA_VERSION = "4.4.0"
SCALA_VERSION = "2.13"
LOG4J_VERSION = "2.26.1"
#: Kafka's pom pulls slf4j-api 1.7; the log4j2 binding needs the 2.x API.
SLF4J_VERSION = "2.0.17"
DEPENDENCY_PLUGIN_VERSION = "3.8.1"
MIN_JAVA = 17
DOWNLOAD_TIMEOUT = 900.0

_log = logging.getLogger(__name__)
# --------------------------------------------------------------------------- paths


def cache_dir() -> Path:
    """``$TOKENLORD_CACHE_DIR`` or ``~/.cache/tokenlord``."""
    env = os.environ.get("TOKENLORD_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tokenlord"


# --------------------------------------------------------------------------- locking


@contextlib.contextmanager
def file_lock(path: Path, timeout: float, what: str) -> Iterator[None]:
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
    with file_lock(base / ".lock", timeout + 60, f"downloading Kafka {version}"):
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
