"""requirements/worker.lock (`make lock`): the Docker image's pinned dependencies.

Every requirement of pyproject.toml's ``worker`` extra is locked at a version its
specifier allows, every locked package is pinned exactly with at least one sha256
hash, every locked package is there for a reason (its ``# via`` names the extra or
another locked package), and the Dockerfile installs the lock with
``--require-hashes`` and the tokenlord wheel alone with ``--no-deps``.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements/worker.lock"


class Locked:
    def __init__(self, name: str, version: str) -> None:
        self.name, self.version = canonicalize_name(name), Version(version)
        self.hashes: list[str] = []
        self.via: set[str] = set()


def parse_lock(text: str) -> dict[str, Locked]:
    """The lock's entries; any line that is not a pin, a hash, a comment or blank is an error."""
    entries: dict[str, Locked] = {}
    current: Locked | None = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or (line.startswith("#") and not line.startswith("# via")):
            continue
        if m := re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)(?:\s*;[^\\]*)?\s*\\?", raw):
            current = Locked(m.group(1), m.group(2))
            assert current.name not in entries, f"line {n}: {current.name} locked twice"
            entries[current.name] = current
        elif m := re.fullmatch(r"--hash=sha256:([0-9a-f]{64})\s*\\?", line):
            assert current is not None, f"line {n}: a hash before any package"
            current.hashes.append(m.group(1))
        elif line.startswith("# via"):
            assert current is not None, f"line {n}: '# via' before any package"
            current.via |= {v.strip() for v in line.removeprefix("# via").split(",") if v.strip()}
        else:
            pytest.fail(f"{LOCK.name} line {n} is not an exact pin with hashes: {raw!r}")
    return entries


@pytest.fixture(scope="module")
def locked() -> dict[str, Locked]:
    return parse_lock(LOCK.read_text())


def worker_extra() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["dependencies"] == [], "the base distribution has dependencies: `make lock` must lock them too"
    return [Requirement(r) for r in project["optional-dependencies"]["worker"]]


def test_every_worker_requirement_is_locked_within_its_specifier(locked: dict[str, Locked]) -> None:
    for req in worker_extra():
        name = canonicalize_name(req.name)
        assert name in locked, f"{req} (pyproject.toml [worker]) is not in {LOCK.name}: run `make lock`"
        assert req.specifier.contains(locked[name].version, prereleases=True), (
            f"{LOCK.name} pins {name}=={locked[name].version}, outside pyproject's {req}: run `make lock`"
        )


def test_every_locked_package_is_pinned_with_hashes_and_needed(locked: dict[str, Locked]) -> None:
    assert len(locked) > len(worker_extra()), "the lock holds the whole closure, not only the direct requirements"
    for name, entry in locked.items():
        assert entry.hashes, f"{name} has no --hash: pip --require-hashes would refuse the lock"
        assert len(set(entry.hashes)) == len(entry.hashes), f"{name} repeats a hash"
        assert entry.via, f"{name} says not why it is locked (# via)"
        for via in entry.via:
            assert via == "pyproject.toml [worker]" or canonicalize_name(via) in locked, (
                f"{name} is locked for {via!r}, which is neither the worker extra nor locked"
            )
    direct = {n for n, e in locked.items() if "pyproject.toml [worker]" in e.via}
    assert direct == {canonicalize_name(r.name) for r in worker_extra()}


def test_the_parser_rejects_what_pip_would_not_take() -> None:
    good = "six==1.17.0 \\\n    --hash=sha256:" + "a" * 64 + "\n    # via pyproject.toml [worker]\n"
    assert parse_lock(good)["six"].hashes == ["a" * 64]
    for bad in ("six>=1.16\n", "six==1.17.0\n--find-links /opt/wheels\n", "-e .\n"):
        with pytest.raises(pytest.fail.Exception):
            parse_lock(bad)


def test_the_image_installs_the_lock_with_hashes_then_the_wheel_alone() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    final = dockerfile[dockerfile.rindex("\nFROM ") :]
    assert "COPY requirements/worker.lock " in final
    install_lock = re.search(r"pip install [^\n]*--require-hashes [^\n]*-r /tmp/worker\.lock", final)
    install_wheel = re.search(r"pip install [^\n]*--no-deps /wheels/\*\.whl", final)
    assert install_lock and install_wheel and install_lock.start() < install_wheel.start()
    assert "[worker]" not in final, "the image resolves the worker extra again instead of using the lock"
    assert len(re.findall(r"pip install", final)) == 2
