"""A gateway installs tokenlord without the worker: the built wheel in a fresh
virtualenv with no dependencies at all, then the gateway API and the CLI's
message for the worker's commands."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import tokenlord

REPO = Path(__file__).resolve().parents[2]
WHEELS = REPO / "var" / "wheels"

GATEWAY_SCRIPT = r"""
import importlib.util, json, sys
import tokenlord
fp = tokenlord.fingerprint("Summarise the quarterly report for the board", "Revenue grew 4%.")
many = tokenlord.fingerprints([("a b c", None), (None, "out")])
loaded = sorted(m for m in ("faust", "chdb", "clickhouse_connect", "aiokafka", "confluent_kafka", "orjson")
                if importlib.util.find_spec(m) is not None)
print(json.dumps({"fp": fp, "many": many, "key": tokenlord.fingerprint_key_id(),
                  "tokens": tokenlord.count_tokens(["hello world"], "gpt-4o"), "installed": loaded,
                  "modules": sorted(m for m in sys.modules if m.split(".")[0] in ("faust", "chdb"))}))
"""


@pytest.fixture(scope="module")
def gateway_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wheels = sorted(WHEELS.glob("tokenlord-*.whl"))
    assert wheels, f"no wheel in {WHEELS}: run `make install` (it builds one)"
    env_dir = tmp_path_factory.mktemp("gateway-venv")
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    # This venv's pip installs into the new one (--python): no download, no dependencies.
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check", "-q",
         "install", "--no-index", "--no-deps", str(wheels[-1])],
        check=True, timeout=300,
    )  # fmt: skip
    return env_dir


def test_gateway_api_works_without_the_worker_dependencies(gateway_env: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "TOKENLORD_FINGERPRINT_KEY": "org-secret"}
    out = subprocess.run(
        [str(gateway_env / "bin" / "python"), "-c", GATEWAY_SCRIPT],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["installed"] == [], "the fresh venv has none of the worker's (or gateway extra's) dependencies"
    assert got["modules"] == []
    # The same Rust code as this environment's: identical fingerprints for the same key.
    assert got["fp"] == tokenlord.fingerprint(
        "Summarise the quarterly report for the board", "Revenue grew 4%.", secret="org-secret"
    )
    assert got["key"] == tokenlord.fingerprint_key_id(secret="org-secret")
    assert got["fp"]["v"] == tokenlord.gateway.FINGERPRINT_VERSION == 2 and got["fp"]["key"] == got["key"]
    assert [set(m) for m in got["many"]] == [{"v", "key", "prompt"}, {"v", "key", "output"}]
    assert got["tokens"] == tokenlord.count_tokens(["hello world"], "gpt-4o")


def test_worker_commands_say_which_extra_they_need(gateway_env: Path) -> None:
    out = subprocess.run(
        [str(gateway_env / "bin" / "tokenlord"), "worker", "--stop-at-end"],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert "pip install 'tokenlord[worker]'" in out.stderr
