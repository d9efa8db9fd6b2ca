"""`tokenlord init-db --bi-user NAME`: the exact statements (recorded by a fake client),
the password only ever a bound parameter, names checked, chDB refused with one line,
and the views created to run with their definer's rights.

Not run against a ClickHouse server here (none on these machines; chDB has no user
management): the statements are checked for what they say and that ClickHouse's
parser takes them (``formatQuery`` in chDB).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tokenlord import cli
from tokenlord.store import access, schema

PASSWORD = "s3cr'et\\pw"  # a quote and a backslash: nothing may break out of a literal
VIEWS = (
    "events", "usage_hourly", "leaderboard_weekly", "waste_weekly", "rejected", "value_weekly",
    "waste_cost_weekly", "team_weekly", "org_weekly",
)  # fmt: skip

EXPECTED = [
    "CREATE USER IF NOT EXISTS `grafana` IDENTIFIED WITH sha256_password BY {bi_password:String} "
    "DEFAULT DATABASE `tokenlord` SETTINGS readonly = 1, max_execution_time CHANGEABLE_IN_READONLY",
    "ALTER USER `grafana` IDENTIFIED WITH sha256_password BY {bi_password:String} "
    "DEFAULT DATABASE `tokenlord` SETTINGS readonly = 1, max_execution_time CHANGEABLE_IN_READONLY",
    "GRANT SELECT ON `tokenlord`.`events`, SELECT ON `tokenlord`.`usage_hourly`, "
    "SELECT ON `tokenlord`.`leaderboard_weekly`, SELECT ON `tokenlord`.`waste_weekly`, "
    "SELECT ON `tokenlord`.`rejected`, SELECT ON `tokenlord`.`value_weekly`, "
    "SELECT ON `tokenlord`.`waste_cost_weekly`, SELECT ON `tokenlord`.`team_weekly`, "
    "SELECT ON `tokenlord`.`org_weekly` TO `grafana` WITH REPLACE OPTION",
]


class RecordingClient:
    def __init__(self, fail_on: str | None = None, error: Exception | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any] | None]] = []
        self.fail_on, self.error = fail_on, error

    def command(self, cmd: str, parameters: dict[str, Any] | None = None) -> None:
        self.calls.append((cmd, parameters))
        if self.fail_on and cmd.startswith(self.fail_on) and self.error is not None:
            raise self.error


class FakeStore:
    def __init__(self) -> None:
        self.client = RecordingClient()
        self.titles: list[str] | None = None

    def init_db(self, titles: list[str], value_tokens_per_credit: int = 500_000) -> None:
        self.titles = titles


def test_grants_cover_exactly_the_public_views() -> None:
    assert VIEWS == schema.PUBLIC_VIEWS
    assert not set(VIEWS) & set(schema.INTERNAL_TABLES)
    assert all(not v.startswith("_") for v in VIEWS) and all(t.startswith("_") for t in schema.INTERNAL_TABLES)


def test_exact_statements_and_the_password_only_as_a_parameter() -> None:
    client = RecordingClient()
    assert access.create_bi_user(client, "tokenlord", "grafana", PASSWORD) == EXPECTED
    assert client.calls == [
        (EXPECTED[0], {"bi_password": PASSWORD}),
        (EXPECTED[1], {"bi_password": PASSWORD}),
        (EXPECTED[2], None),
    ]
    assert all(PASSWORD not in sql and "s3cr" not in sql for sql, _ in client.calls)


@pytest.mark.parametrize("name", ["bi; DROP USER default", "bi`x", "a b", "", "1bi", "bi'", "x" * 200])
def test_user_and_database_names_are_checked(name: str) -> None:
    with pytest.raises(ValueError, match="identifier"):
        access.bi_user_statements("tokenlord", name)
    with pytest.raises(ValueError, match="identifier"):
        access.bi_user_statements(name, "grafana")


def test_empty_password_is_refused_before_any_statement() -> None:
    client = RecordingClient()
    with pytest.raises(ValueError, match="empty"):
        access.create_bi_user(client, "tokenlord", "grafana", "")
    assert client.calls == []


FORMAT_SQL = """
import json, sys
import clickhouse_connect
c = clickhouse_connect.get_client(interface="chdb", path=":memory:")
out = []
for sql in json.load(sys.stdin):
    out.append(c.query("SELECT formatQuery({s:String})", parameters={"s": sql}).result_rows[0][0])
    if "{bi_password:String}" in sql:  # the substitution is taken where the password goes
        c.query("EXPLAIN AST " + sql, parameters={"bi_password": "x'y"})
print(json.dumps(out))
"""


def test_clickhouse_parses_the_statements() -> None:
    """ClickHouse's own parser (chDB 26.x, in a child process) takes every statement as written."""
    import json

    out = subprocess.run(
        [sys.executable, "-c", FORMAT_SQL], input=json.dumps(EXPECTED), capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    formatted = json.loads(out.stdout.strip().splitlines()[-1])
    assert formatted[0].startswith("CREATE USER IF NOT EXISTS grafana IDENTIFIED WITH sha256_password BY {bi_password")
    assert "SETTINGS readonly = 1, max_execution_time CHANGEABLE_IN_READONLY" in formatted[1]
    assert formatted[2].endswith("ON tokenlord.org_weekly TO grafana WITH REPLACE OPTION")


def test_views_run_with_the_definers_rights() -> None:
    views = [s for s in schema.ddl("tokenlord") if s.startswith("CREATE OR REPLACE VIEW")]
    assert len(views) == len(VIEWS)
    assert all("\nDEFINER = CURRENT_USER SQL SECURITY DEFINER\nAS\n" in s for s in views)


# ---- the command ------------------------------------------------------------------------------


@pytest.fixture
def fake_store(monkeypatch: pytest.MonkeyPatch) -> FakeStore:
    import tokenlord.store as store_pkg

    store = FakeStore()
    monkeypatch.setattr(store_pkg, "open_store", lambda settings: store)
    for var in (
        "TOKENLORD_BI_USER",
        "TOKENLORD_BI_PASSWORD",
        "TOKENLORD_BI_PASSWORD_FILE",
        "TOKENLORD_WORKER_USER",
        "TOKENLORD_WORKER_PASSWORD",
        "TOKENLORD_WORKER_PASSWORD_FILE",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TOKENLORD_CLICKHOUSE_URL", "http://tokenlord:adminpw@clickhouse:8123")
    return store


def test_init_db_with_bi_user(
    fake_store: FakeStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TOKENLORD_BI_PASSWORD", PASSWORD)
    assert cli.main(["init-db", "--bi-user", "grafana"]) == 0
    assert fake_store.titles is not None
    assert [sql for sql, _ in fake_store.client.calls] == EXPECTED
    out = capsys.readouterr().out
    assert "BI user 'grafana'" in out and "adminpw" not in out and PASSWORD not in out


def test_init_db_bi_password_from_a_file(fake_store: FakeStore, tmp_path: Path) -> None:
    secret = tmp_path / "bi-password"
    secret.write_text(PASSWORD + "\n")
    assert cli.main(["init-db", "--bi-user", "grafana", "--bi-password-file", str(secret)]) == 0
    assert fake_store.client.calls[0][1] == {"bi_password": PASSWORD}


def test_init_db_without_bi_user_creates_no_user(fake_store: FakeStore) -> None:
    assert cli.main(["init-db"]) == 0
    assert fake_store.titles is not None and fake_store.client.calls == []


def test_bi_password_is_environment_or_file_only(fake_store: FakeStore, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):  # there is no flag for it
        cli.main(["init-db", "--bi-user", "grafana", "--bi-password", "x"])
    assert "unrecognized arguments: --bi-password" in capsys.readouterr().err
    assert cli.main(["init-db", "--bi-user", "grafana"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "TOKENLORD_BI_PASSWORD" in err and "Traceback" not in err
    assert fake_store.titles is None  # nothing created


def test_chdb_is_refused_in_one_line(
    fake_store: FakeStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TOKENLORD_BI_PASSWORD", PASSWORD)
    assert cli.main(["init-db", "--bi-user", "grafana", "--clickhouse-url", "chdb://./var/x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs a ClickHouse server" in err and "Traceback" not in err
    assert fake_store.titles is None and fake_store.client.calls == []


def test_server_refusal_is_one_line_without_the_password(
    fake_store: FakeStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from clickhouse_connect.driver.exceptions import DatabaseError

    monkeypatch.setenv("TOKENLORD_BI_PASSWORD", PASSWORD)
    fake_store.client.fail_on = "GRANT"
    fake_store.client.error = DatabaseError(
        f"Code: 497. DB::Exception: tokenlord: Not enough privileges ({PASSWORD}). (ACCESS_DENIED)\nmore detail"
    )
    assert cli.main(["init-db", "--bi-user", "grafana"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ACCESS_DENIED" in err and "grafana" in err
    assert PASSWORD not in err and "Traceback" not in err


def test_config_masks_the_bi_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("TOKENLORD_BI_USER", "grafana")
    monkeypatch.setenv("TOKENLORD_BI_PASSWORD", PASSWORD)
    assert cli.main(["config"]) == 0
    out = capsys.readouterr().out
    assert PASSWORD not in out and "TOKENLORD_BI_PASSWORD" in out and "***" in out and "grafana" in out
    (tmp_path / "pw").write_text("other")
    monkeypatch.setenv("TOKENLORD_BI_PASSWORD_FILE", str(tmp_path / "pw"))
    assert cli.main(["config"]) == 2
    assert "not both" in capsys.readouterr().err


# ---- the worker user (init-db --worker-user) ------------------------------------------------

WORKER_GRANT = (
    "GRANT INSERT, SELECT ON `tokenlord`.`_events`, INSERT, SELECT ON `tokenlord`.`_hourly`, "
    "INSERT, SELECT ON `tokenlord`.`_weekly`, INSERT, SELECT ON `tokenlord`.`_waste`, "
    "INSERT ON `tokenlord`.`_rejected`, INSERT, SELECT ON `tokenlord`.`_outcomes`, "
    "INSERT, SELECT ON `tokenlord`.`_progress`, INSERT, SELECT ON `tokenlord`.`_digests`, "
    + ", ".join(f"SELECT ON `tokenlord`.`{v}`" for v in VIEWS)
    + " TO `tokenlord_worker` WITH REPLACE OPTION"
)
WORKER_EXPECTED = [
    "CREATE USER IF NOT EXISTS `tokenlord_worker` IDENTIFIED WITH sha256_password BY {bi_password:String} "
    "DEFAULT DATABASE `tokenlord`",
    "ALTER USER `tokenlord_worker` IDENTIFIED WITH sha256_password BY {bi_password:String} "
    "DEFAULT DATABASE `tokenlord`",
    WORKER_GRANT,
]


def test_worker_user_statements_grant_no_ddl_and_nothing_on_titles() -> None:
    client = RecordingClient()
    assert access.create_worker_user(client, "tokenlord", "tokenlord_worker", PASSWORD) == WORKER_EXPECTED
    assert [p for _, p in client.calls] == [{"bi_password": PASSWORD}, {"bi_password": PASSWORD}, None]
    for word in ("CREATE", "ALTER", "DROP", "TRUNCATE", "OPTIMIZE", "_titles", "readonly", "*"):
        assert word not in WORKER_GRANT
    with pytest.raises(ValueError, match="empty"):
        access.create_worker_user(RecordingClient(), "tokenlord", "w", "")


def test_clickhouse_parses_the_worker_statements() -> None:
    import json

    out = subprocess.run(
        [sys.executable, "-c", FORMAT_SQL], input=json.dumps(WORKER_EXPECTED), capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    formatted = json.loads(out.stdout.strip().splitlines()[-1])
    assert formatted[2].startswith("GRANT INSERT, SELECT ON tokenlord._events, INSERT, SELECT ON tokenlord._hourly")
    assert formatted[2].endswith("SELECT ON tokenlord.org_weekly TO tokenlord_worker WITH REPLACE OPTION")


def test_init_db_with_worker_and_bi_users(
    fake_store: FakeStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("TOKENLORD_BI_PASSWORD", PASSWORD)
    secret = tmp_path / "worker-password"
    secret.write_text("w0rker\n")
    monkeypatch.setenv("TOKENLORD_WORKER_PASSWORD_FILE", str(secret))
    assert cli.main(["init-db", "--bi-user", "grafana", "--worker-user", "tokenlord_worker"]) == 0
    assert [sql for sql, _ in fake_store.client.calls] == EXPECTED + WORKER_EXPECTED
    assert fake_store.client.calls[-2][1] == {"bi_password": "w0rker"}
    out = capsys.readouterr().out
    assert "worker user 'tokenlord_worker'" in out and "w0rker" not in out and PASSWORD not in out


def test_worker_password_is_environment_or_file_only(
    fake_store: FakeStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TOKENLORD_WORKER_PASSWORD", raising=False)
    monkeypatch.delenv("TOKENLORD_WORKER_PASSWORD_FILE", raising=False)
    with pytest.raises(SystemExit):
        cli.main(["init-db", "--worker-user", "w", "--worker-password", "x"])
    assert "unrecognized arguments: --worker-password" in capsys.readouterr().err
    assert cli.main(["init-db", "--worker-user", "w"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "TOKENLORD_WORKER_PASSWORD" in err and "Traceback" not in err
    assert fake_store.titles is None
    monkeypatch.setenv("TOKENLORD_WORKER_PASSWORD", "x")
    assert cli.main(["init-db", "--worker-user", "w", "--clickhouse-url", "chdb://./var/x"]) == 2
    err = capsys.readouterr().err
    assert "--worker-user needs a ClickHouse server" in err and fake_store.titles is None


def test_worker_server_refusal_is_one_line_without_the_password(
    fake_store: FakeStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from clickhouse_connect.driver.exceptions import DatabaseError

    monkeypatch.setenv("TOKENLORD_WORKER_PASSWORD", PASSWORD)
    fake_store.client.fail_on = "GRANT"
    fake_store.client.error = DatabaseError(f"Code: 497. DB::Exception: denied ({PASSWORD}). (ACCESS_DENIED)\nmore")
    assert cli.main(["init-db", "--worker-user", "tokenlord_worker"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "worker user 'tokenlord_worker'" in err and "ACCESS_DENIED" in err
    assert PASSWORD not in err
