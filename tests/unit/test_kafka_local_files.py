"""Files of the local broker that hold secrets are the owner's only."""

from __future__ import annotations

import stat
from pathlib import Path

from tokenlord.kafka import local


def test_secret_files_are_written_0600(tmp_path: Path) -> None:
    path = tmp_path / "server.properties"
    path.write_text("old, world-readable\n")
    path.chmod(0o644)
    local.write_private(path, "listener.name.sasl_plaintext.plain.sasl.jaas.config=password=s3cret\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == "listener.name.sasl_plaintext.plain.sasl.jaas.config=password=s3cret\n"
    fresh = tmp_path / "new.properties"
    local.write_private(fresh, "x")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
