"""Property test: the Rust core and the plain-Python reference agree on random
and adversarial streams (docs/semantics.md is the spec both implement)."""

from __future__ import annotations

import math
import random
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import Reference
from tokenlord import _core
from tokenlord.time_utils import DAY_MS as DAY
from tokenlord.time_utils import HOUR_MS as HOUR

MON = 1_704_067_200_000  # 2024-01-01T00:00:00Z
NOW = MON + 30 * DAY
GRACE = HOUR
HORIZON = DAY
PRICES = {"gpt-4o": (2.5, 1.25, 10.0), "gpt-4": (30.0, 30.0, 60.0), "llama": (0.5, 0.5, 0.75)}


def count(text: str, model: str) -> tuple[int, bool]:
    enc, estimated = _core.encoding_for(model)
    return _core.count_tokens([text], enc)[0], estimated


# Timestamps cluster around week boundaries, hours, the horizon and "now".
ts_values = st.one_of(
    st.integers(MON - 2 * DAY, MON + 22 * DAY),
    st.sampled_from(
        [
            MON - 1,
            MON,
            MON + 7 * DAY - 1,
            MON + 7 * DAY,
            MON + 7 * DAY + GRACE - 1,
            MON + 7 * DAY + GRACE,
            MON + 14 * DAY + GRACE,
            NOW + 600_000,
            NOW + 600_001,
            0,
            -1,
            253402300799999,
            253402300800000,
        ]
    ),
    st.integers(MON, MON + 21 * DAY).map(lambda t: t - t % HOUR),
)


def rfc3339(ts: int, offset_min: int) -> str:
    import datetime as dt

    tz = dt.timezone(dt.timedelta(minutes=offset_min))
    d = dt.datetime.fromtimestamp(ts / 1000, tz=tz)
    return d.strftime("%Y-%m-%dT%H:%M:%S") + f".{ts % 1000:03d}" + d.strftime("%z")[:3] + ":" + d.strftime("%z")[3:]


_WORDS = "alpha beta gamma delta tokens model answer user query data report graph table error".split()
# Long texts that repeat across events, so every waste rule fires: resent and
# near-identical prompts (a step counter), padding, a looping answer, one huge word.
_BASE = [" ".join(random.Random(i).choices(_WORDS, k=n)) for i, n in ((1, 60), (2, 200), (3, 400))]
WASTE_PROMPTS = [*_BASE, *(f"{_BASE[1]} step {k}" for k in range(4)), _BASE[0] + " " + " ".join([_BASE[0]] * 8)]
WASTE_OUTPUTS = [_BASE[0], _BASE[2], " ".join(["same phrase again"] * 80), "x" * 3000, "ok"]


def _reworded(text: str, k: int) -> str:
    """``text`` with every 7th word (from the k-th) swapped and its halves in another order (a re-ask)."""
    words = text.split(" ")
    words[k::7] = [_WORDS[(_WORDS.index(w) + 1) % len(_WORDS)] for w in words[k::7]]
    cut = len(words) // (2 + k % 2)
    return " ".join(words[cut:] + words[:cut])


# Re-asks (reworded questions, answers alike: near_duplicate) and noised filler (padding by 3-word windows).
REASK_PROMPTS = [_reworded(_BASE[2], k) for k in range(4)]
REASK_OUTPUTS = [_reworded(_BASE[1], k) for k in range(3)]
_FILLER = " ".join([_BASE[0]] * 10).split(" ")
_FILLER[2::5] = [f"n{i}" for i in range(len(_FILLER[2::5]))]
NOISED_PROMPT = _BASE[1][:200] + " " + " ".join(_FILLER)


@st.composite
def events(draw: Any) -> Any:
    ev: dict[str, Any] = {}
    ev["event_id"] = draw(st.sampled_from(["a", "b", "c", "d", "e", "f", "é" * 3, ""]) | st.text(max_size=6))
    ts = draw(ts_values)
    if 0 <= ts <= 253402300799999 - 86_400_000 and draw(st.booleans()):
        ev["ts"] = rfc3339(ts, draw(st.sampled_from([0, 60, -330, 840])))
    else:
        ev["ts"] = ts
    user_key = draw(st.sampled_from(["user", "user", "user_id", "enduser.id"]))
    ev[user_key] = draw(st.sampled_from(["ann", "bob", "cy", "dee"]))
    ev[draw(st.sampled_from(["model", "gen_ai.request.model"]))] = draw(
        st.sampled_from(["gpt-4o", "gpt-4", "llama-3", "x"])
    )
    if draw(st.booleans()):
        ev["team"] = draw(st.sampled_from(["red", "blue", ""]))
    usage = draw(st.sampled_from(["counts", "counts", "alias", "text", "mixed", "none", "waste", "waste", "waste"]))
    if usage == "waste":
        # Clustered in 15 minutes so storms (10 s), loops (10 min) and repeats (1 h) happen.
        # In the stream's last week (never closed by the other events) with ids of its own.
        ev["ts"] = MON + 21 * DAY + draw(st.sampled_from([0, 4000, 8000, 300_000, 900_000])) + draw(st.integers(0, 999))
        ev["event_id"] = f"w{draw(st.integers(0, 10**9))}"
        ev[user_key] = draw(st.sampled_from(["ann", "ann", "bob"]))
        ev["prompt"] = draw(st.sampled_from(WASTE_PROMPTS))
        if draw(st.integers(0, 3)):
            ev["output"] = draw(st.sampled_from(WASTE_OUTPUTS))
        if draw(st.booleans()):
            ev["input_tokens"] = draw(st.sampled_from([10, 40, 400, 4000]))
    if usage in ("counts", "mixed"):
        ev["input_tokens"] = draw(st.integers(0, 5000))
    if usage == "counts":
        ev["output_tokens"] = draw(st.integers(0, 5000))
        if draw(st.booleans()):
            ev["cached_input_tokens"] = draw(st.integers(0, 6000))
        if draw(st.booleans()):
            ev["reasoning_tokens"] = draw(st.integers(0, 6000))
    if usage == "alias":
        ev["gen_ai.usage.input_tokens"] = draw(st.integers(0, 10**9 + 1))
        ev["gen_ai.usage.output_tokens"] = draw(st.integers(-1, 100))
    if usage in ("text", "mixed"):
        ev["prompt"] = draw(st.text(max_size=40))
        if draw(st.booleans()):
            ev["output"] = draw(st.text(max_size=40))
    if draw(st.integers(0, 9)) == 0:
        ev["status"] = draw(st.sampled_from(["ok", "error", "error", "bad", None]))
    if draw(st.integers(0, 9)) == 0:
        ev["latency_ms"] = draw(st.sampled_from([0, 5, -1, 2**31, 1.5, "3"]))
    if draw(st.integers(0, 9)) == 0:
        ev["finish_reason"] = draw(st.sampled_from(["stop", ["length"], [], [1], 3]))
    # Mutations: drop or corrupt a field.
    if draw(st.integers(0, 7)) == 0:
        field = draw(st.sampled_from(sorted(ev)))
        if draw(st.booleans()):
            del ev[field]
        else:
            ev[field] = draw(st.sampled_from([None, 1.0, True, [], {}, "", "x" * 300]))
    return ev


def encode(value: Any) -> bytes:
    return orjson.dumps(value)


messages = st.one_of(
    events().map(encode),
    events().map(encode),
    st.lists(events(), max_size=4).map(encode),
    st.lists(events(), min_size=2, max_size=4).map(lambda evs: b"\n".join(encode(e) for e in evs)),
    st.lists(
        st.one_of(events().map(encode), st.sampled_from([b"{", b"7", b"[]", b"  ", b"null"])), min_size=2, max_size=4
    ).map(lambda parts: b"\n".join(parts)),
    st.binary(max_size=30),
    st.sampled_from(
        [
            b"",
            b"[1, {}]",
            b"\xef\xbb\xbf{}",
            b'{"a":1e309}',
            b'{"event_id":"\\ud800"}',
            b"[" * 200,
            b"[" * 127 + b"]" * 127,
            b"[" * 128 + b"]" * 128,
            b'{"event_id":"z","ts":-0,"user":"u","model":"m","input_tokens":1}',
            b'{"event_id":"z","ts":0,"user":"u","model":"m","input_tokens":1,"latency_ms":-0}',
            b'{"event_id":"z","ts":0,"user":"u","model":"m","input_tokens":1,"x":' + b"[" * 126 + b"]" * 126 + b"}",
            b'{"event_id":"z","ts":0,"user":"u","model":"m","input_tokens":1,"x":' + b"[" * 127 + b"]" * 127 + b"}",
        ]
    ),
)


def final_rows(state: dict[Any, dict[str, Any]], cols: dict[str, list[Any]], key_cols: tuple[str, ...]) -> None:
    n = len(cols[key_cols[0]])
    for i in range(n):
        key = tuple(cols[k][i] for k in key_cols)
        state[key] = {k: v[i] for k, v in cols.items()}


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.tuples(st.integers(0, 1), messages), max_size=40), st.integers(1, 7))
def test_core_matches_reference(stream: list[tuple[int, bytes]], batch_size: int) -> None:
    check(stream, batch_size)


@st.composite
def waste_events(draw: Any) -> bytes:
    """Valid events of one busy quarter hour: every waste rule and its state get exercised."""
    ev: dict[str, Any] = {
        "event_id": f"w{draw(st.integers(0, 10**9))}",
        "ts": MON + 21 * DAY + draw(st.sampled_from([0, 4000, 8000, 300_000, 900_000])) + draw(st.integers(0, 999)),
        "user": draw(st.sampled_from(["ann", "ann", "bob"])),
        "model": draw(st.sampled_from(["gpt-4o", "gpt-4o", "x"])),
    }
    kind = draw(st.sampled_from(["text", "text", "counts", "both", "reask"]))
    if kind in ("text", "both"):
        ev["prompt"] = draw(st.sampled_from([*WASTE_PROMPTS[1:], NOISED_PROMPT]))
        if draw(st.integers(0, 3)):
            ev["output"] = draw(st.sampled_from(WASTE_OUTPUTS[1:3]))
    if kind == "reask":
        ev["prompt"] = draw(st.sampled_from(REASK_PROMPTS))
        ev["output"] = draw(st.sampled_from(REASK_OUTPUTS))
        if draw(st.booleans()):
            ev["input_tokens"] = draw(st.sampled_from([400, 600, 2000]))
            ev["output_tokens"] = draw(st.sampled_from([200, 300]))
    if kind in ("counts", "both"):
        ev["input_tokens"] = draw(st.sampled_from([10, 40, 4000, 4000]))
        ev["output_tokens"] = draw(st.sampled_from([100, 105, 300]))
    if draw(st.integers(0, 9)) == 0:
        ev["status"] = "error"
    return encode(ev)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 1), waste_events()), min_size=3, max_size=60), st.integers(1, 7))
def test_waste_verdicts_match_reference(stream: list[tuple[int, bytes]], batch_size: int) -> None:
    check(stream, batch_size)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    st.lists(st.tuples(st.integers(0, 1), messages), max_size=30),
    st.integers(1, 7),
    st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(1, 6)),
)
def test_fan_out_limits_match_reference(
    stream: list[tuple[int, bytes]], batch_size: int, limits: tuple[int, int, int]
) -> None:
    check(stream, batch_size, limits)


def check(stream: list[tuple[int, bytes]], batch_size: int, limits: tuple[int, int, int] | None = None) -> None:
    caps = {}
    if limits is not None:
        caps = dict(zip(("max_elements_per_message", "max_rejections_per_message", "max_rejections_per_batch"),
                        limits, strict=True))  # fmt: skip
    core = _core.Core(grace_ms=GRACE, dedupe_horizon_ms=HORIZON, prices=PRICES, max_message_bytes=400, **caps)
    ref = Reference(
        grace_ms=GRACE,
        dedupe_horizon_ms=HORIZON,
        future_tolerance_ms=600_000,
        max_message_bytes=400,
        prices=PRICES,
        count_tokens=count,
        **caps,
    )
    offsets = {0: 0, 1: 0}
    msgs = []
    for p, v in stream:
        msgs.append((p, offsets[p], v))
        offsets[p] += 1
    events: list[tuple[Any, ...]] = []
    rejected: list[tuple[Any, ...]] = []
    weekly: dict[Any, dict[str, Any]] = {}
    hourly: dict[Any, dict[str, Any]] = {}
    duplicates = 0
    for i in range(0, len(msgs), batch_size):
        chunk = msgs[i : i + batch_size]
        parts, offs, vals = [c[0] for c in chunk], [c[1] for c in chunk], [c[2] for c in chunk]
        out = core.process(parts, offs, vals, NOW)
        ref.process(parts, offs, vals, NOW)
        e = out.events
        events += list(
            zip(
                e["src_partition"],
                e["src_offset"],
                e["event_id"],
                e["ts"],
                e["user"],
                e["model"],
                e["team"],
                e["input_tokens"],
                e["output_tokens"],
                e["cached_input_tokens"],
                e["reasoning_tokens"],
                e["tokens_estimated"],
                e["status"],
                e["finish_reason"],
                e["latency_ms"],
                e["wasted_tokens"],
                e["waste_reason"],
                strict=True,
            )
        )
        r = out.rejected
        rejected += list(zip(r["src_partition"], r["src_offset"], r["idx"], r["reason"], r["raw"], strict=True))
        final_rows(weekly, out.weekly, ("src_partition", "week_start", "user"))
        final_rows(hourly, out.hourly, ("src_partition", "hour", "user", "model"))
        duplicates += out.duplicates

    ref_events = [
        (
            x["src_partition"],
            x["src_offset"],
            x["event_id"],
            x["ts"],
            x["user"],
            x["model"],
            x["team"],
            x["input_tokens"],
            x["output_tokens"],
            x["cached_input_tokens"],
            x["reasoning_tokens"],
            int(x["tokens_estimated"]),
            x["status"],
            x["finish_reason"],
            x["latency_ms"],
            x["wasted_tokens"],
            x["waste_reason"],
        )
        for x in ref.events()
    ]
    assert events == ref_events
    assert rejected == [tuple(x) for x in ref.rejected()]
    assert duplicates == ref.duplicates
    ref_weekly = ref.weekly()
    assert set(weekly) == set(ref_weekly)
    for key, row in weekly.items():
        want = ref_weekly[key]
        for col in ("requests", "input_tokens", "output_tokens", "total_tokens", "wasted_tokens", "team", "team_ts"):
            assert row[col] == want[col], (key, col, row, want)
        assert row["final"] == int(want["final"]), (key, row, want)
        assert close(row["cost_usd"], want["cost_usd"])
    ref_hourly = ref.hourly()
    assert set(hourly) == set(ref_hourly)
    for key, row in hourly.items():
        for col in (
            "requests",
            "input_tokens",
            "output_tokens",
            "cached_input_tokens",
            "total_tokens",
            "wasted_tokens",
        ):
            assert row[col] == ref_hourly[key][col], (key, col)
