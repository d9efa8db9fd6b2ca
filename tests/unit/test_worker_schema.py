"""TOKENLORD_WORKER_INIT_DB: a worker runs init-db at start (default) or, with
false, only checks the schema (a user without DDL rights, docker-compose)."""

from __future__ import annotations

from typing import Any

import pytest
from tokenlord.errors import StoreError
from tokenlord.settings import Settings

from streams import worker


class Stop(Exception):
    pass


class FakeStore:
    def __init__(self, missing: str = "") -> None:
        self.calls: list[str] = []
        self.missing = missing

    def init_db(self, titles: list[str], value_tokens_per_credit: int = 500_000) -> None:
        self.calls.append("init_db")

    def check_schema(self) -> None:
        self.calls.append("check_schema")
        if self.missing:
            raise StoreError(f"database 'tokenlord' lacks {self.missing}: run `tokenlord init-db` first")


def start(monkeypatch: pytest.MonkeyPatch, store: FakeStore, env: dict[str, str]) -> None:
    monkeypatch.setattr(worker, "ensure_topics", lambda *a, **k: None)
    monkeypatch.setattr(worker, "ensure_dlq_topic", lambda *a, **k: None)
    monkeypatch.setattr(worker, "open_store", lambda settings: store)

    def create_app(settings: Any) -> Any:  # the store is ready: stop before Faust
        raise Stop

    monkeypatch.setattr(worker, "create_app", create_app)
    with pytest.raises(Stop):
        worker.run_worker(Settings.from_env(environ=env))


@pytest.mark.parametrize(("value", "expected"), [(None, "init_db"), ("true", "init_db"), ("false", "check_schema")])
def test_the_worker_runs_init_db_or_only_checks(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: str
) -> None:
    store = FakeStore()
    start(monkeypatch, store, {} if value is None else {"TOKENLORD_WORKER_INIT_DB": value})
    assert store.calls == [expected]


def test_a_missing_schema_stops_the_worker_before_consuming(monkeypatch: pytest.MonkeyPatch) -> None:
    store = FakeStore(missing="_progress")
    monkeypatch.setattr(worker, "ensure_topics", lambda *a, **k: None)
    monkeypatch.setattr(worker, "ensure_dlq_topic", lambda *a, **k: None)
    monkeypatch.setattr(worker, "open_store", lambda settings: store)
    monkeypatch.setattr(worker, "create_app", lambda settings: pytest.fail("consumed without a schema"))
    with pytest.raises(StoreError, match="lacks _progress"):
        worker.run_worker(Settings.from_env(environ={"TOKENLORD_WORKER_INIT_DB": "false"}))
    assert store.calls == ["check_schema"]
