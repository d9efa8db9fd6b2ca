"""Values that still stand in more than one place (Python and the Rust core, or the
settings and the schema) must agree: each test fails when two declarations of one
value drift apart. (``duplicates`` finds repeated code, not repeated values.)"""

from __future__ import annotations

import inspect

from tokenlord import _core
from tokenlord.settings import Settings
from tokenlord.store import schema


def test_the_cores_keyword_defaults_are_the_settings_defaults() -> None:
    """``Core()``'s defaults (the PyO3 signature in rust/src/py.rs; stubtest holds _core.pyi to it)
    are what the settings pass when nothing is set."""
    given = Settings().core_kwargs()
    params = inspect.signature(_core.Core).parameters
    defaults = {name: p.default for name, p in params.items() if p.default is not None}
    assert set(defaults) == {
        "grace_ms", "dedupe_horizon_ms", "future_tolerance_ms", "max_message_bytes", "fallback_encoding",
        "max_elements_per_message", "max_rejections_per_message", "max_rejections_per_batch",
    }  # fmt: skip
    assert {name: given[name] for name in defaults} == defaults
    fallback = inspect.signature(_core.encoding_for).parameters["fallback_encoding"].default
    assert fallback == Settings().fallback_encoding


def test_the_schemas_defaults_are_the_settings_defaults() -> None:
    settings = Settings()
    assert settings.database == schema.DEFAULT_DATABASE
    assert tuple(settings.title_list()) == schema.DEFAULT_TITLES
    assert settings.value_tokens_per_credit == schema.VALUE_TOKENS_PER_CREDIT


def test_the_cores_column_views_are_the_schemas_columns() -> None:
    """``Batch.events/hourly/weekly/waste`` (built by hand in rust/src/py.rs) name the columns of the
    tables they are inserted into, in the DDL's order."""
    core = _core.Core()
    event = b'{"event_id":"e1","ts":1736121600000,"user":"u","model":"gpt-4o","input_tokens":3,"output_tokens":4}'
    batch = core.process([0], [0], [event], 1736121600000 + 8 * 86_400_000)
    assert batch.accepted == 1
    for view, columns in (
        (batch.events, schema.EVENTS_COLUMNS),
        (batch.hourly, schema.HOURLY_COLUMNS),
        (batch.weekly, schema.WEEKLY_COLUMNS),
        (batch.waste, schema.WASTE_COLUMNS),
    ):
        assert list(view) == [name for name, _ in columns]
