"""The traffic simulator: deterministic, labelled, valid, realistic enough."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Iterable
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import reference
from tokenlord import _core, fingerprint, simulate
from tokenlord.simulate import profiles
from tokenlord.time_utils import DAY_MS as DAY

MON = 1_704_067_200_000  # 2024-01-01T00:00:00Z


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
    values = [json.dumps(o).encode() for o in outcomes]  # and valid outcome events (docs/semantics.md)
    accepted, rejected = _core.Core().outcomes([0] * len(values), list(range(len(values))), values, MON + 8 * DAY)
    assert len(accepted["outcome"]) == len(outcomes) and not rejected["reason"]
    assert simulate.summary(both)["outcomes"] == dict(kinds.most_common())


# ------------------------------------------------------------------ the red team (issue 17)

# sha256 of the default stream (JSON lines) of DEFAULT_ARGS, generated by the simulator before the red
# team existed: the default traffic must not change (tests, demo and benchmarks depend on it).
DEFAULT_ARGS: dict[str, Any] = {
    "users": 30, "days": 3, "gamers": 5, "seed": 7, "start_ms": 1_700_000_000_000, "text_share": 0.5, "outcomes": True,
}  # fmt: skip
DEFAULT_DIGEST = (3190, "8835769352fe075449dfb979979e3ad9ec4bb4bde4d292220a46548cc688be69")


def digest(events: Iterable[dict[str, Any]]) -> tuple[int, str]:
    h, n = hashlib.sha256(), 0
    for e in events:
        h.update(json.dumps(e, ensure_ascii=False).encode() + b"\n")
        n += 1
    return n, h.hexdigest()


def test_default_stream_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args: Any) -> Any:
        raise AssertionError("the default traffic drew red-team code")

    for name in profiles.RED_TEAM:
        monkeypatch.setitem(profiles.RED_TEAM, name, never)
    monkeypatch.setattr(simulate._Sim, "_lookalikes", never)
    assert digest(simulate.generate(**DEFAULT_ARGS)) == DEFAULT_DIGEST
    assert digest(simulate.generate(**DEFAULT_ARGS, red_team=False)) == DEFAULT_DIGEST


@pytest.fixture(scope="module")
def red() -> list[dict[str, Any]]:
    return gen(users=40, days=7.0, gamers=8, seed=11, text_share=1.0, outcomes=True, red_team=True)


@pytest.fixture(scope="module")
def red_counts() -> list[dict[str, Any]]:
    return gen(users=40, days=7.0, gamers=8, seed=11, outcomes=True, red_team=True)


def test_red_team_profiles_and_labels(red: list[dict[str, Any]], red_counts: list[dict[str, Any]]) -> None:
    assert set(simulate.RED_TEAM_LABELS) <= set(simulate.ALL_LABELS)
    assert len(simulate.ADAPTIVE_PROFILES) == 7 and len(simulate.LOOKALIKE_PROFILES) == 5
    for events in (red, red_counts):
        usage = [e for e in events if not simulate.is_outcome(e)]
        assert {e["_label"] for e in usage} == set(simulate.RED_TEAM_LABELS)  # every profile, nothing else
        by_user: dict[str, set[str]] = {}
        for e in usage:
            by_user.setdefault(first(e, "user", "user_id", "enduser.id"), set()).add(e["_label"])
        gamers = {u for u, labels in by_user.items() if any(simulate.is_gamer_label(x) for x in labels)}
        assert len(gamers) == 8 and set(simulate.summary(events)["gamers"]) == gamers
        for user, labels in by_user.items():
            kinds = labels - {"honest"}
            if user in gamers:  # one primary adaptive profile, maybe one more
                profiles = kinds - {simulate.LOOP_DILUTION}
                assert 1 <= len(profiles) <= 2 and profiles <= set(simulate.ADAPTIVE_PROFILES)
                assert simulate.LOOP_DILUTION not in kinds or "diluted_loop" in kinds
            else:  # at most one look-alike
                assert len(kinds) <= 1 and kinds <= set(simulate.LOOKALIKE_PROFILES)
        lookalike_users = sum(1 for u, labels in by_user.items() if u not in gamers and labels - {"honest"})
        assert 0.2 <= lookalike_users / (len(by_user) - 8) <= 0.4
    assert not any(simulate.is_gamer_label(x) for x in ("honest", *simulate.LOOKALIKE_PROFILES))
    assert all(
        simulate.is_gamer_label(x) for x in (*simulate.PATTERNS, *simulate.ADAPTIVE_PROFILES, *simulate.RULE_BLIND)
    )
    assert all("prompt" not in e for e in red_counts) and all("prompt" in e for e in red if not simulate.is_outcome(e))


def test_red_team_deterministic() -> None:
    args: dict[str, Any] = {"users": 12, "days": 1.0, "gamers": 3, "seed": 2, "text_share": 0.3, "red_team": True}
    a = gen(**args)
    assert a == gen(**args)
    assert a != gen(**{**args, "seed": 3}) and a != gen(**{**args, "red_team": False})


def test_red_team_events_valid(red: list[dict[str, Any]], red_counts: list[dict[str, Any]]) -> None:
    for events in (red, red_counts):
        last = MON
        for e in events:
            ts = simulate.event_ts_ms(e)
            assert last <= ts < MON + 7 * DAY
            last = ts
            assert e["_label"] in simulate.RED_TEAM_LABELS
            if simulate.is_outcome(e):
                continue
            assert len(json.dumps(e).encode()) < 1_048_576
            ev = reference.validate(e, words)
            assert ev.user == first(e, "user", "user_id", "enduser.id")


def test_red_team_counts_match_text() -> None:
    """The fingerprinted events carry counts and the text's size: about 4 characters a token."""
    events = gen(users=20, days=3.0, gamers=7, seed=4, text_share=1.0, fingerprints=True, red_team=True)
    seen = set()
    for e in events:
        fp, inp = e.get("fingerprint"), first(e, "input_tokens", "gen_ai.usage.input_tokens")
        out = first(e, "output_tokens", "gen_ai.usage.output_tokens")
        if fp and e["_label"] != "honest":
            seen.add(e["_label"])
            assert 0.95 <= fp["prompt"]["bytes"] / (4 * inp) <= 1.3, e["_label"]
            if out:
                assert 0.95 <= fp["output"]["bytes"] / (4 * out) <= 1.3, e["_label"]
    assert seen >= set(simulate.ADAPTIVE_PROFILES)
    for name in profiles.RED_TEAM:  # and every profile's requests, one by one
        for r in session(name):
            assert abs(len(r.prompt_text or "x" * 4 * r.input_tokens) / 4 - r.input_tokens) <= 1, name
            assert r.output_text is None or abs(len(r.output_text) / 4 - r.output_tokens) <= 1, name


def test_red_team_outcomes(red: list[dict[str, Any]]) -> None:
    outcomes = Counter(e["_label"] for e in red if simulate.is_outcome(e))
    assert outcomes["compute_theater"] == 0
    adaptive = sum(outcomes[x] for x in simulate.ADAPTIVE_PROFILES)
    honest = outcomes["honest"] + sum(outcomes[x] for x in simulate.LOOKALIKE_PROFILES)
    assert sum(outcomes[x] for x in simulate.LOOKALIKE_PROFILES) > 0 and adaptive * 10 < honest
    assert profiles.OUTCOME_RATE["batch_template"] > profiles.OUTCOME_RATE["edit_retry"] == 0.35
    assert max(profiles.OUTCOME_RATE[x] for x in simulate.ADAPTIVE_PROFILES) <= 0.03


# ---- each profile is what it claims (one session, straight from the profile)


def session(name: str, seed: int = 0, text: bool = True, sim: Any = None) -> list[Any]:
    sim = sim or simulate._Sim(10, 3.0, 0, seed, MON, 1.0 if text else 0.0, red_team=True)
    reqs = list(profiles.RED_TEAM[name](sim, sim.users[0], MON))
    # (a diluted loop's junk requests have a label of their own)
    assert reqs and all(r.label == name or (name, r.label) == ("diluted_loop", simulate.LOOP_DILUTION) for r in reqs)
    if not text:
        assert all(r.prompt_text is None and r.output_text is None for r in reqs)
    return reqs


def gaps(reqs: list[Any]) -> list[int]:
    return [b.ts - a.ts for a, b in pairwise(reqs)]


def overlap(a: str, b: str) -> float:
    """Share of ``a``'s words that are in ``b`` too (as multisets)."""
    ca, cb = Counter(a.split()), Counter(b.split())
    return sum((ca & cb).values()) / sum(ca.values())


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.?\n]) ", text) if s]


@pytest.mark.parametrize("name", profiles.RED_TEAM)
def test_profiles_without_text(name: str) -> None:
    for seed in range(3):
        for r in session(name, seed, text=False):
            assert r.input_tokens > 0 and r.output_tokens >= 0 and 0 <= r.cached <= r.input_tokens


def test_reworded_reask() -> None:
    reorder_only = 0
    for seed in range(4):
        reqs = session("reworded_reask", seed)
        assert 10 <= len(reqs) <= 40 and reqs[-1].ts - reqs[0].ts <= 4.5 * 3_600_000
        prompts = [r.prompt_text for r in reqs]
        assert len(set(prompts)) == len(prompts) and min(r.input_tokens for r in reqs) >= 2000
        assert all(overlap(prompts[0], p) > 0.6 for p in prompts)  # the same words, mostly
        assert all(overlap(reqs[0].output_text, r.output_text) > 0.8 for r in reqs)  # the same answer
        # Reordered-only re-asks: other text, the same words, so the same word-bag SimHash.
        by_words: dict[tuple[str, ...], list[str]] = {}
        for p in prompts:
            by_words.setdefault(tuple(sorted(p.split(" "))), []).append(p)
        for same in (v for v in by_words.values() if len(v) > 1):
            a, b = fingerprint(same[0], None)["prompt"], fingerprint(same[1], None)["prompt"]
            assert a["hash"] != b["hash"] and a["bag"] == b["bag"]
            reorder_only += 1
    assert reorder_only


def test_rotating_loop() -> None:
    reqs = session("rotating_loop")
    assert len(reqs) >= 30
    assert len({r.session_id for r in reqs}) == len(reqs)
    for a, b in pairwise(reqs):
        assert a.app != b.app and a.model != b.model
    assert len({(r.input_tokens, r.output_tokens, r.prompt_at, r.output_text) for r in reqs}) == 1
    assert len({r.prompt_suffix for r in reqs}) == len(reqs)  # a step counter


def test_varied_and_noised_filler() -> None:
    for name, lo, hi in (("varied_filler", 0.5, 1.0), ("noised_filler", 0.0, 0.05)):
        reqs = session(name)
        assert len({r.prompt_text for r in reqs}) == len(reqs) >= 3  # the filler changes every request
        for r in reqs:
            assert r.input_tokens >= 5000 and r.output_tokens <= 600 and r.cached == 0
            rep, total = fingerprint(r.prompt_text, None)["prompt"]["rep"]
            assert lo <= rep / total <= hi, (name, rep / total)  # 10-word windows repeated in the text
    counts = Counter(sentences(session("varied_filler")[0].prompt_text))
    filler = {x: n for x, n in counts.items() if n > 1}  # a small pool of sentences, repeated
    assert len(filler) <= 20 and min(filler.values()) > 5
    assert all(12 <= len(x.split()) <= 25 for x in filler)


def test_paced_resend_outside_the_windows() -> None:
    kinds = set()
    for seed in range(12):
        reqs = session("paced_resend", seed)
        g = gaps(reqs)
        if reqs[0].status == "error":  # identical failing requests, storm window 10 s
            kind, lo, hi = "storm", 11_000, 20_000
        elif reqs[0].app == "agent":  # loop steps, loop window 10 min
            kind, lo, hi = "loop", 11 * 60_000, 15 * 60_000
            assert len({r.output_text for r in reqs}) == 1
        else:  # the same prompt, duplicate window 1 h
            kind, lo, hi = "resend", 61 * 60_000, 80 * 60_000
            assert reqs[-1].ts - reqs[0].ts >= 12 * 3_600_000
        assert all(lo - 1 <= x <= hi for x in g), kind
        assert len({(r.prompt_at, r.input_tokens) for r in reqs}) == 1
        kinds.add(kind)
    assert kinds == {"storm", "loop", "resend"}


def test_compute_theater() -> None:
    reqs = session("compute_theater")
    assert all(r.output_tokens >= 8000 and r.finish_reason == "stop" for r in reqs)
    assert len({r.output_text[:200] for r in reqs}) == len(reqs) == len({r.prompt_at for r in reqs})
    assert all(len(r.output_text) == 4 * r.output_tokens for r in reqs)


def test_diluted_loop() -> None:
    reqs = session("diluted_loop")
    loop = [i for i, r in enumerate(reqs) if r.output_text is not None]
    assert len(loop) >= 4 and len({(reqs[i].prompt_at, reqs[i].output_text) for i in loop}) == 1
    between = [b - a - 1 for a, b in pairwise(loop)]
    assert all(30 <= n <= 100 for n in between)
    junk = [r for r in reqs if r.output_text is None]
    assert len({r.prompt_at for r in junk}) == len(junk) and max(r.input_tokens for r in junk) <= 300


def test_batch_template() -> None:
    sim = simulate._Sim(10, 3.0, 0, 0, MON, 1.0, red_team=True)
    jobs = [session("batch_template", sim=sim) for _ in range(2)]  # two jobs of one user
    template = jobs[0][0].prompt_text.split("\n\n--- ")[0]
    assert 4 * 2000 <= len(template) <= 4 * 6001
    for reqs in jobs:
        assert 20 <= len(reqs) <= 200 and {r.app for r in reqs} == {"batch"}
        assert len({r.session_id for r in reqs}) == 1 and max(gaps(reqs)) <= 20_000
        assert all(r.prompt_text.startswith(template + "\n\n--- ") for r in reqs)
        assert len({r.prompt_text[len(template) :] for r in reqs}) == len(reqs)  # a different file each time
        structured = [r for r in reqs if r.output_text is not None]
        assert structured and all(json.loads(r.output_text)["file"] in r.prompt_text for r in structured)


def test_edit_retry() -> None:
    for seed in range(4):
        reqs = session("edit_retry", seed)
        assert 3 <= len(reqs) <= 4 and len({r.session_id for r in reqs}) == 1
        assert all(x <= 240_000 for x in gaps(reqs))
        for a, b in pairwise(reqs):
            assert a.prompt_text != b.prompt_text and overlap(a.prompt_text, b.prompt_text) > 0.9
            kept = set(sentences(a.output_text)) & set(sentences(b.output_text))
            assert 0.1 <= len(kept) / len(sentences(a.output_text)) <= 0.9


def test_structured_output() -> None:
    kinds = set()
    for seed in range(4):
        for r in session("structured_output", seed):
            lines = r.output_text.splitlines()
            assert 2000 <= r.output_tokens <= 16_100
            if lines[0].startswith("| id |"):
                rows = [x for x in lines[2:] if x.startswith("| ")]
                assert len(rows) == len(set(rows)) >= 20
                kinds.add("table")
            else:
                tests = [x for x in lines if x.startswith("def test_")]
                assert len(tests) == len(set(tests)) >= 20
                kinds.add("tests")
            rep, total = fingerprint(None, r.output_text)["output"]["rep"]
            assert rep / total < 0.5  # similar lines, distinct values: not degenerate repetition
    assert kinds == {"table", "tests"}


def test_continue_prompt() -> None:
    for seed in range(3):
        reqs = session("continue_prompt", seed)
        assert len(reqs) >= 2 and reqs[-1].finish_reason == "stop"
        assert all(r.finish_reason == "length" for r in reqs[:-1])
        for a, b in pairwise(reqs):
            assert b.prompt_text.endswith("continue") and a.output_text[-500:] in b.prompt_text
            assert a.output_text != b.output_text


def test_heavy_agent() -> None:
    reqs = session("heavy_agent", 1)
    assert 20 <= len(reqs) <= 60 and {r.app for r in reqs} == {"agent"}
    inputs = [r.input_tokens for r in reqs]
    assert max(inputs) >= 20_000 and any(b < a for a, b in pairwise(inputs))  # slides
    assert len({r.prompt_text[-2000:] for r in reqs}) == len(reqs)  # a new tool result every turn
    sim = simulate._Sim(40, 1.0, 0, 1, MON, 0.0, red_team=True)
    heavy = [u for u in sim.users if u.lookalike == "heavy_agent"]
    assert heavy and all(u.sessions_per_day >= profiles.HEAVY_AGENT_SESSIONS_PER_DAY for u in heavy)
