"""`make demo`'s steps, with less traffic, so the demo cannot rot."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from tokenlord.kafka import local

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("args", "kind"),
    [
        (["40", "9", "2"], "prompt and output text, no counts"),
        (["40", "9", "2", "1.0", "1"], "counts + fingerprints, no text"),
    ],
    ids=["text", "fingerprints"],
)
def test_demo_script_prints_a_leaderboard(
    kafka_brokers: str, kafka_home: Path, kafka_ports: tuple[int, int], args: list[str], kind: str
) -> None:
    port, _ = kafka_ports
    env = {
        **os.environ,
        # Reuse the suite's broker: `kafka-local start` finds it running.
        "TOKENLORD_KAFKA_HOME": str(kafka_home),
        "TOKENLORD_KAFKA_PORT": str(port),
        "TOKENLORD_KAFKA_BROKERS": kafka_brokers,
        "TOKENLORD_WEB_PORT": "26066",
    }
    proc = subprocess.run(
        ["bash", str(REPO / "scripts/demo.sh"), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "already running" in out or local.HOST in out
    assert f"({kind})" in out
    assert out.count("Leaderboard — week of") >= 2  # this week may still be empty just after Monday 00:00 UTC
    assert "Token Lord" in out
    board = out.split("ranked by raw tokens", 1)[1].split("==>", 1)[0]
    ranks = [line.split()[0] for line in board.strip().splitlines()[1:] if line.strip()]
    assert ranks[:3] == ["1", "2", "3"]
    teams = out.split("Teams — week of", 1)[1].split("==>", 1)[0]
    assert "ranked by effective tokens" in teams and len(teams.strip().splitlines()) >= 4
    assert "Organisation — week of" in out and "Waste by reason" in out
