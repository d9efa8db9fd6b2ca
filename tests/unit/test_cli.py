"""CLI and settings: clear errors without tracebacks, masked secrets, docs in sync."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tokenlord.cli import main, resolve_week
from tokenlord.errors import ConfigError
from tokenlord.settings import Settings, configuration_markdown, mask, parse_duration_ms

REPO = Path(__file__).resolve().parents[2]


def test_durations() -> None:
    assert parse_duration_ms("90s") == 90_000
    assert parse_duration_ms("1h") == 3_600_000
    assert parse_duration_ms("500ms") == 500
    assert parse_duration_ms("2") == 2000
    with pytest.raises(ValueError):
        parse_duration_ms("soon")


def test_env_then_flags() -> None:
    s = Settings.from_env({"grace": "2h"}, environ={"TOKENLORD_GRACE": "5m", "TOKENLORD_BATCH_SIZE": "7"})
    assert s.grace == 7_200_000 and s.batch_size == 7
    with pytest.raises(ConfigError, match=r"TOKENLORD_BATCH_SIZE='zero'.*not an integer.*--batch-size"):
        Settings.from_env(environ={"TOKENLORD_BATCH_SIZE": "zero"})
    with pytest.raises(ConfigError, match="chdb://"):
        Settings.from_env(environ={"TOKENLORD_CLICKHOUSE_URL": "mysql://x"})
    with pytest.raises(ConfigError, match="Kafka topic"):
        Settings.from_env(environ={"TOKENLORD_EVENTS_TOPIC": "bad topic!"})


def test_secrets_are_masked(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert mask("https://bi:hunter2@ch.example:8443/db?password=x") == "https://bi:***@ch.example:8443/db?password=***"
    monkeypatch.setenv("TOKENLORD_CLICKHOUSE_URL", "http://admin:s3cret@localhost:8123")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out and "admin:***@localhost:8123" in out
    monkeypatch.setenv("TOKENLORD_CLICKHOUSE_URL", "ftp://admin:s3cret@x")
    assert main(["config"]) == 2
    err = capsys.readouterr().err
    assert "s3cret" not in err and "TOKENLORD_CLICKHOUSE_URL" in err


@pytest.mark.parametrize("password", ["p/ss", "p#ss", "p?ss", "p@ss", "a/b#c?d@e", "plain"])
def test_passwords_with_url_delimiters_are_masked(password: str) -> None:
    for url in (
        f"http://admin:{password}@ch.example:8123/db",
        f"https://admin:{password}@ch.example:8443?verify=false",
    ):
        shown = mask(url)
        assert password not in shown and "ch.example" in shown and shown.startswith("http"), shown
        assert "admin:***@ch.example:" in shown
    assert mask("chdb://./var/x") == "chdb://./var/x" and mask("http://h:8123/?x=1#f") == "http://h:8123/?x=1#f"


def test_a_clickhouse_password_is_refused_as_a_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--clickhouse-url", "http://admin:s3/cret@h:8123"]) == 2
    err = capsys.readouterr().err
    assert "s3/cret" not in err and "TOKENLORD_CLICKHOUSE_URL" in err and "--clickhouse-url" in err
    assert main(["config", "--clickhouse-url", "http://reader@h:8123"]) == 0  # no password: fine
    assert "http://reader@h:8123" in capsys.readouterr().out


def test_bad_flag_exits_2_without_traceback() -> None:
    for args in (
        ["leaderboard", "--by", "loudest"],
        ["config", "--grace", "soon"],
        ["leaderboard", "--week", "someday"],
        ["simulate", "--users", "3", "--days", "1", "--outcomes-out", "o.jsonl"],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "tokenlord", *args],
            capture_output=True,
            text=True,
            check=False,
            env={"PATH": "/usr/bin:/bin", "TOKENLORD_CLICKHOUSE_URL": "chdb:///tmp/tokenlord-cli-test"},
        )
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert "error" in proc.stderr


def test_week_resolution() -> None:
    import datetime as dt

    today = dt.date(2026, 11, 25)  # a Wednesday
    assert resolve_week("current", today) == dt.date(2026, 11, 23)
    assert resolve_week("last", today) == dt.date(2026, 11, 16)
    assert resolve_week("2026-11-22", today) == dt.date(2026, 11, 16)  # a Sunday belongs to the week before


def test_configuration_doc_is_generated_from_the_code() -> None:
    doc = (REPO / "docs" / "configuration.md").read_text()
    assert doc == configuration_markdown(), "run: .venv/bin/tokenlord config --markdown > docs/configuration.md"


def test_unreachable_kafka_is_a_clear_error() -> None:
    from tokenlord.errors import TokenlordError
    from tokenlord.kafka.admin import ensure_topics

    with pytest.raises(TokenlordError, match=r"cannot reach Kafka at 127\.0\.0\.1:1.*kafka-local start"):
        ensure_topics("127.0.0.1:1", {"t": 1}, timeout=2)


def test_tokens_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = tmp_path / "a.txt"
    a.write_text("hello world")
    b = tmp_path / "b.txt"
    b.write_bytes(b"")
    assert main(["tokens", "--model", "gpt-4o", str(a), str(b)]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"2\t{a}\n0\t{b}\n"
    assert "o200k_base" in captured.err
    assert main(["tokens", "--model", "llama-3", str(a)]) == 0
    assert "estimates" in capsys.readouterr().err
    assert main(["tokens", "--model", "gpt-4o", str(tmp_path / "missing.txt")]) == 2


def test_tokens_with_llama_vocabularies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tiktoken_offline import llama_dir

    a = tmp_path / "a.txt"
    a.write_text("hello world")
    monkeypatch.setenv("TOKENLORD_TOKENIZER_DIR", llama_dir())
    assert main(["tokens", "--model", "Llama-3.3-70B-Instruct", str(a)]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"2\t{a}\n" and "llama3" in captured.err and "estimates" not in captured.err
    monkeypatch.setenv("TOKENLORD_TOKENIZER_DIR", str(tmp_path / "nope"))
    assert main(["tokens", "--model", "llama-3", str(a)]) == 2
    err = capsys.readouterr().err
    assert "TOKENLORD_TOKENIZER_DIR" in err and "not a directory" in err and "Traceback" not in err


def test_simulate_writes_usage_and_outcomes_to_separate_files(tmp_path: Path) -> None:
    import orjson

    out, oc = tmp_path / "usage.jsonl", tmp_path / "outcomes.jsonl"
    args = ["simulate", "--users", "30", "--days", "3", "--seed", "2", "--out", str(out)]
    assert main([*args, "--outcomes-out", str(oc)]) == 0
    usage = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    outcomes = [orjson.loads(line) for line in oc.read_bytes().splitlines()]
    assert outcomes and all("outcome" in o for o in outcomes) and not any("outcome" in e for e in usage)
    sessions = {e.get("session_id") or e.get("gen_ai.conversation.id") for e in usage}
    assert all(o.get("session_id") in sessions or "event_id" in o for o in outcomes)


def _lb_row(user: str, team: str, title: str = "") -> dict[str, Any]:
    return {
        "week_start": dt.date(2026, 11, 16), "user": user, "team": team, "requests": 1, "input_tokens": 5,
        "output_tokens": 5, "total_tokens": 10, "wasted_tokens": 0, "effective_tokens": 10, "waste_ratio": 0.0,
        "cost_usd": -1.0, "outcomes": 0, "rank": 1, "effective_rank": 1, "title": title, "final": 0,
    }  # fmt: skip


def test_the_table_and_explain_escape_control_and_bidi_characters() -> None:
    from tokenlord.cli import format_explain, format_table

    out = format_table([_lb_row("a\x1b[31mb", "t\u202eeam", "x\u2067y")], "raw")
    assert "\x1b" not in out and "\u202e" not in out and "\u2067" not in out
    assert "a\\u001b[31mb" in out and "t\\u202eeam" in out
    report = {"user": "m\u202eallory\r", "week_start": dt.date(2026, 11, 16), "leaderboard": None}
    text = format_explain(report)
    assert "\u202e" not in text and "\r" not in text and text.endswith("\n")


def test_csv_cells_that_look_like_formulas_are_neutralised(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import csv
    import io

    import tokenlord.store

    rows = [_lb_row('=HYPERLINK("http://x")', "+team"), _lb_row("@SUM(A1)", "-1"), _lb_row("ann", "data")]

    class FakeStore:
        def leaderboard(self, *_: Any) -> list[dict[str, Any]]:
            return rows

    monkeypatch.setattr(tokenlord.store, "open_store", lambda _s: FakeStore())
    assert main(["leaderboard", "--format", "csv"]) == 0
    got = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["user"] for r in got] == ['\'=HYPERLINK("http://x")', "'@SUM(A1)", "ann"]
    assert [r["team"] for r in got] == ["'+team", "'-1", "data"]
    assert got[0]["cost_usd"] == "-1.0"  # numbers are numbers, not formulas


def test_leaderboard_by_value_in_every_format(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import csv
    import io

    import orjson
    import tokenlord.store

    rows = [{**_lb_row("ann", "red"), "rank": 2, "effective_rank": 2, "value_rank": 1, "value_tokens": 42_000,
             "credit": 1.25},
            {**_lb_row("bob", "red"), "rank": 1, "effective_rank": 1, "value_rank": 2, "value_tokens": 0,
             "credit": 0.0}]  # fmt: skip
    asked: list[tuple[Any, ...]] = []

    class FakeStore:
        def leaderboard(self, *args: Any) -> list[dict[str, Any]]:
            asked.append(args)
            return rows

    monkeypatch.setattr(tokenlord.store, "open_store", lambda _s: FakeStore())
    assert main(["leaderboard", "--by", "value", "--top", "5"]) == 0
    table = capsys.readouterr().out
    assert "ranked by value (effective tokens that led to outcomes)" in table and "42,000" in table
    lines = table.splitlines()
    head = lines[2].split()
    assert head[:7] == ["#", "user", "team", "tokens", "effective", "value", "credit"], lines
    ann, bob = (line.split() for line in lines[3:5])
    assert (ann[0], ann[1], ann[5], ann[6]) == ("1", "ann", "42,000", "1.25")  # the position is value_rank
    assert (bob[0], bob[1], bob[5], bob[6]) == ("2", "bob", "0", "0")
    assert asked[-1][1:] == (5, "value")
    assert main(["leaderboard", "--by", "value", "--format", "json"]) == 0
    got = orjson.loads(capsys.readouterr().out)
    assert [(r["user"], r["value_rank"], r["value_tokens"]) for r in got] == [("ann", 1, 42_000), ("bob", 2, 0)]
    assert main(["leaderboard", "--by", "value", "--format", "csv"]) == 0
    got_csv = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    head = got_csv[0]
    assert head[-3:] == ["credit", "value_tokens", "value_rank"] and "effective_rank" in head
    assert [dict(zip(head, r, strict=True))["value_rank"] for r in got_csv[1:]] == ["1", "2"]
    # The raw board's CSV keeps the contract's columns only.
    assert main(["leaderboard", "--format", "csv"]) == 0
    assert "value_rank" not in capsys.readouterr().out


@pytest.mark.parametrize("by", ["Value", "values", "", "value;DROP"])
def test_leaderboard_by_takes_only_the_three_rankings(by: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["leaderboard", "--by", by])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice" in err and "'raw', 'effective', 'value'" in err


def test_a_bad_value_tokens_per_credit_says_what_to_set(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for bad in ("0", "-5", "lots", "1000000000001"):
        monkeypatch.setenv("TOKENLORD_VALUE_TOKENS_PER_CREDIT", bad)
        assert main(["config"]) == 2
        err = capsys.readouterr().err
        assert "TOKENLORD_VALUE_TOKENS_PER_CREDIT" in err and "500000" in err and "Traceback" not in err
    monkeypatch.setenv("TOKENLORD_VALUE_TOKENS_PER_CREDIT", "250000")
    assert main(["config"]) == 0
    assert "TOKENLORD_VALUE_TOKENS_PER_CREDIT" in capsys.readouterr().out


def test_explain_has_a_rule_for_every_waste_reason_of_the_core() -> None:
    from tokenlord import _core
    from tokenlord.report import WASTE_RULES

    assert set(WASTE_RULES) == set(_core.WASTE_REASONS)


def test_waste_defaults_are_declared_alike_in_the_core_the_settings_and_the_reference() -> None:
    """The thresholds stand in rust/src/waste.rs, settings.py and tests/reference.py: they must agree."""
    import dataclasses

    from reference import WasteConfig
    from tokenlord import _core
    from tokenlord.settings import Settings

    assert _core.WASTE_DEFAULTS == Settings().waste_thresholds() == dataclasses.asdict(WasteConfig())


def test_one_error_hierarchy_catches_the_cores_config_errors() -> None:
    import tokenlord
    from tokenlord import _core

    assert tokenlord.ConfigError is _core.ConfigError and issubclass(tokenlord.ConfigError, tokenlord.TokenlordError)
    with pytest.raises(tokenlord.ConfigError, match="loop_bits"):
        _core.Core(waste={"loop_bits": 99})


def test_every_settings_default_is_the_parsed_default_of_its_field() -> None:
    """Each setting is declared once (``settings.setting``): the attribute's default is its text default parsed
    (what the environment gives when unset), and every attribute but ``raw`` is a setting."""
    import dataclasses

    from tokenlord.settings import FIELDS, Settings

    parsed, plain = Settings.from_env(environ={}), Settings()
    differ = {f.name: (getattr(parsed, f.name), getattr(plain, f.name)) for f in FIELDS
              if getattr(parsed, f.name) != getattr(plain, f.name)}  # fmt: skip
    assert differ == {}
    assert {f.name for f in FIELDS} == {f.name for f in dataclasses.fields(Settings)} - {"raw"}


def test_webhook_urls_are_secrets_shown_by_host_only(capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    token = "T0AAA/B0BBB/s3cretT0ken"
    monkeypatch.setenv(
        "TOKENLORD_DIGEST_WEBHOOKS", f"chat=slack:https://hooks.slack.com/services/{token},bi=json:http://bi:8080/x"
    )
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert token not in out and "chat=slack:https://hooks.slack.com/***,bi=json:http://bi/***" in out
    monkeypatch.setenv("TOKENLORD_DIGEST_WEBHOOKS", f"chat=teams:https://hooks.slack.com/services/{token}")
    assert main(["config"]) == 2
    err = capsys.readouterr().err
    assert token not in err and "kind 'teams' is not json or slack" in err
