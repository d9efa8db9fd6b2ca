"""The traffic simulator: deterministic, labelled, valid, realistic enough."""

from __future__ import annotations

import gzip
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import reference
from tokenlord import _core, simulate

MON = 1_704_067_200_000  # 2024-01-01T00:00:00Z
DAY = 86_400_000


def gen(**kw: Any) -> list[dict[str, Any]]:
    args: dict[str, Any] = {"users": 40, "days": 7.0, "gamers": 4, "seed": 11, "start_ms": MON}
    args.update(kw)
    return list(simulate.generate(**args))


@pytest.fixture(scope="module")
def week() -> list[dict[str, Any]]:
    return gen()


@pytest.fixture(scope="module")
def texty() -> list[dict[str, Any]]:
    return gen(users=20, days=3.0, gamers=4, seed=5, text_share=0.4)


def first(ev: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if ev.get(k) is not None:
            return ev[k]
    return None


def words(text: str, model: str) -> tuple[int, bool]:
    return len(text.split()), False


def test_deterministic_for_a_seed() -> None:
    a = gen(users=15, days=2.0, seed=3, text_share=0.2)
    assert a == gen(users=15, days=2.0, seed=3, text_share=0.2)
    assert a != gen(users=15, days=2.0, seed=4, text_share=0.2)


def test_labels(week: list[dict[str, Any]]) -> None:
    labels = Counter(e["_label"] for e in week)
    assert set(labels) == set(simulate.LABELS)
    assert labels["honest"] > len(week) / 3
    honest_only = gen(gamers=0)
    assert {e["_label"] for e in honest_only} == {"honest"}


def test_gamers_present_and_on_top(week: list[dict[str, Any]]) -> None:
    s = simulate.summary(week)
    assert len(s["gamers"]) == 4
    gamer_users = {first(e, "user", "user_id", "enduser.id") for e in week if e["_label"] != "honest"}
    assert gamer_users == set(s["gamers"])
    # Token-maxxers dominate the raw ranking.
    top = [u for u, _ in s["top_users"][:3]]
    assert len(set(top) & gamer_users) >= 2


def test_every_event_is_valid(week: list[dict[str, Any]], texty: list[dict[str, Any]]) -> None:
    for events, end in ((week, MON + 7 * DAY), (texty, MON + 3 * DAY)):
        ids = [e["event_id"] for e in events]
        assert len(set(ids)) == len(ids)
        last = MON
        for e in events:
            ts = simulate.event_ts_ms(e)
            assert MON <= ts < end
            assert ts >= last, "time order"
            last = ts
            assert isinstance(e["event_id"], str) and 1 <= len(e["event_id"]) <= 128
            assert isinstance(e["ts"], (int, str))
            user = first(e, "user", "user_id", "enduser.id")
            model = first(e, "model", "gen_ai.request.model", "gen_ai.response.model")
            assert isinstance(user, str) and 1 <= len(user) <= 256
            assert isinstance(model, str) and 1 <= len(model) <= 256
            inp = first(e, "input_tokens", "gen_ai.usage.input_tokens")
            out = first(e, "output_tokens", "gen_ai.usage.output_tokens")
            if inp is None:
                assert "prompt" in e and out is None
            else:
                assert 0 <= inp <= 1_000_000_000 and 0 <= out <= 1_000_000_000
                cached = first(e, "cached_input_tokens", "gen_ai.usage.cache_read.input_tokens") or 0
                assert 0 <= cached <= inp
                assert 0 <= e.get("reasoning_tokens", 0) <= out
                if e["_label"] == "honest":
                    assert 200 <= inp <= 20_000 and out <= 2000
            assert e.get("status", "ok") in ("ok", "error")
            assert 0 <= e["latency_ms"] < 2**31
            assert e["_label"] in simulate.LABELS
            # What the pipeline would make of it (docs/semantics.md, via the reference).
            ev = reference.validate(e, words)
            assert ev.ts == ts and ev.user == user and ev.model == model


def test_whole_stream_accepted_by_the_reference(texty: list[dict[str, Any]]) -> None:
    ref = reference.Reference(count_tokens=words, prices={})
    values = [json.dumps(e).encode() for e in texty]
    ref.process([0] * len(values), list(range(len(values))), values, MON + 3 * DAY)
    assert ref.rejected() == [] and ref.duplicates == 0
    assert len(ref.events()) == len(texty)
    assert max(len(v) for v in values) < 1_048_576


def test_gateway_styles_and_timestamps(week: list[dict[str, Any]]) -> None:
    assert any("gen_ai.request.model" in e and "gen_ai.usage.input_tokens" in e for e in week)
    assert any("model" in e and "input_tokens" in e for e in week)
    assert any("enduser.id" in e for e in week) and any("user" in e for e in week)
    assert any(isinstance(e["ts"], int) for e in week)
    strings = [e["ts"] for e in week if isinstance(e["ts"], str)]
    assert strings and any(s.endswith("Z") for s in strings) and any(s[-6] in "+-" for s in strings)
    assert any(s[-6] in "+-" and s[-6:] != "+00:00" for s in strings)
    assert any(e.get("status") == "error" and e["_label"] == "honest" for e in week)
    teams = {e.get("team") for e in week}
    assert len(teams - {None}) >= 4
    assert any("session_id" in e or "gen_ai.conversation.id" in e for e in week)


def test_business_hours_and_weekdays(week: list[dict[str, Any]]) -> None:
    honest = [simulate.event_ts_ms(e) for e in week if e["_label"] == "honest"]
    weekday = sum(1 for t in honest if (t - MON) // DAY < 5)
    assert weekday / len(honest) > 0.8  # Mon-Fri of the week starting MON


def test_sessions_grow_context(week: list[dict[str, Any]]) -> None:
    sessions: dict[str, list[int]] = {}
    for e in week:
        sid = first(e, "session_id", "gen_ai.conversation.id")
        inp = first(e, "input_tokens", "gen_ai.usage.input_tokens")
        if e["_label"] == "honest" and sid and inp is not None:
            sessions.setdefault(sid, []).append(inp)
    growing = [s for s in sessions.values() if len(s) >= 3]
    assert growing
    assert sum(s == sorted(s) for s in growing) / len(growing) > 0.9


def test_gaming_patterns_shape(week: list[dict[str, Any]]) -> None:
    by: dict[str, list[dict[str, Any]]] = {}
    for e in week:
        by.setdefault(e["_label"], []).append(e)

    def counts(e: dict[str, Any]) -> tuple[Any, Any]:
        return (
            first(e, "input_tokens", "gen_ai.usage.input_tokens"),
            first(e, "output_tokens", "gen_ai.usage.output_tokens"),
        )

    loops: dict[str, set[tuple[Any, Any]]] = {}
    for e in by["agent_loop"]:
        loops.setdefault(first(e, "session_id", "gen_ai.conversation.id"), set()).add(counts(e))
    assert all(len(c) == 1 for c in loops.values())  # the same request, again and again
    assert all(e.get("status") == "error" for e in by["retry_storm"])
    assert min(counts(e)[0] for e in by["padded_prompt"]) >= 80_000
    assert min(counts(e)[1] for e in by["long_output"]) >= 8000


def test_text_share(texty: list[dict[str, Any]]) -> None:
    text = [e for e in texty if "prompt" in e]
    assert 0.3 < len(text) / len(texty) < 0.5
    for e in text:
        assert (
            first(
                e,
                "input_tokens",
                "gen_ai.usage.input_tokens",
                "output_tokens",
                "cached_input_tokens",
            )
            is None
        )
        assert isinstance(e["prompt"], str) and e["prompt"]
    assert len({e["prompt"][:50] for e in text}) > 10
    assert all("prompt" not in e for e in gen(users=5, days=1.0, gamers=1))


def test_period_ends_now_by_default() -> None:
    before = int(time.time() * 1000)
    events = list(simulate.generate(users=10, days=1.5, gamers=1, seed=1))
    after = int(time.time() * 1000)
    assert events
    for e in events:
        ts = simulate.event_ts_ms(e)
        assert before - 1.5 * DAY <= ts <= after


def test_bad_arguments() -> None:
    for kw in ({"users": 0}, {"days": 0.0}, {"gamers": 41}, {"gamers": -1}, {"text_share": 1.5}):
        with pytest.raises(ValueError):
            gen(**kw)


@pytest.mark.parametrize("name", ["events.jsonl", "events.jsonl.gz"])
def test_write_jsonl(tmp_path: Path, name: str) -> None:
    events = gen(users=5, days=1.0, gamers=1)
    path = tmp_path / name
    assert simulate.write_jsonl(iter(events), str(path)) == len(events)
    raw = gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()
    assert [json.loads(line) for line in raw.splitlines()] == events


def test_summary(week: list[dict[str, Any]]) -> None:
    s = simulate.summary(week)
    assert s["events"] == len(week)
    assert sum(s["labels"].values()) == len(week)
    assert s["first_ts"] >= MON and s["last_ts"] < MON + 7 * DAY
    assert 0 < s["otel_share"] < 1 and 0 < s["epoch_ts_share"] < 1
    assert s["users"] <= 40


def test_outcomes(week: list[dict[str, Any]]) -> None:
    both = gen(outcomes=True)
    outcomes = [e for e in both if simulate.is_outcome(e)]
    assert [e for e in both if not simulate.is_outcome(e)] == week, "usage is the same with or without outcomes"
    assert [simulate.event_ts_ms(e) for e in both] == sorted(simulate.event_ts_ms(e) for e in both)
    kinds = Counter(o["outcome"] for o in outcomes)
    assert set(kinds) == set(simulate.OUTCOMES) and kinds["rejected"] < kinds["merged"]
    sessions = {e.get("session_id") or e.get("gen_ai.conversation.id") for e in week} - {None}
    ids = {e["event_id"] for e in week}
    by_label = Counter(o["_label"] for o in outcomes)
    assert by_label["honest"] > 10 * sum(n for label, n in by_label.items() if label != "honest")
    for o in outcomes:  # naming real work
        assert o.get("session_id") in sessions or o.get("event_id") in ids
        assert ("value" in o) == (o["outcome"] != "rejected")
    values = [json.dumps(o).encode() for o in outcomes]  # and valid CONTRACT §2 events
    accepted, rejected = _core.Core().outcomes([0] * len(values), list(range(len(values))), values, MON + 8 * DAY)
    assert len(accepted["outcome"]) == len(outcomes) and not rejected["reason"]
    assert simulate.summary(both)["outcomes"] == dict(kinds.most_common())
