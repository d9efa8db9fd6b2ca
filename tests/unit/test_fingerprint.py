"""Fingerprints (docs/semantics.md "Fingerprints"): the gateway API's prints
equal the plain-Python reference's, and an event with counts + fingerprint
gets exactly the verdicts of its twin with counts + text, through the core
and through the reference."""

from __future__ import annotations

import json
import random
from typing import Any

import orjson
import pytest
import tokenlord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import Reference, fingerprint, fingerprint_key, fingerprint_wire
from tokenlord import _core
from tokenlord.time_utils import DAY_MS as DAY

SECRET = b"org-secret-for-tests"
MON = 1_704_067_200_000  # 2024-01-01T00:00:00Z
T0 = MON + 21 * DAY
NOW = MON + 30 * DAY

_WORDS = "alpha beta gamma delta tokens model answer user query data report graph table error".split()
_BASE = [" ".join(random.Random(i).choices(_WORDS, k=n)) for i, n in ((1, 60), (2, 200), (3, 400))]

#: Texts a gamer (or an unlucky gateway) sends: empty, blank, one huge word,
#: many words of one letter, scripts without ASCII spaces, emoji, case and
#: whitespace variants, near-duplicates, padding, a looping answer.
ADVERSARIAL = [
    "",
    " ",
    " \t\n\r\x0b\x0c ",
    "\u00a0\u3000",  # non-ASCII spaces: words, not separators
    "a" * 100_000,
    "a " * 50_000,
    "ab" * 1500,
    "漢字仮名交じり文を要約してください。" * 40,
    "請總結這份季度報告 " * 60,
    "🔥🚀💯 " * 300,
    "🔥" * 5000,
    "Summarise the quarterly report",
    "SUMMARISE   the\tquarterly\nREPORT",
    "Ünïcödé ÉTÉ été",
    _BASE[0],
    _BASE[1],
    _BASE[1] + " step 1",
    _BASE[1] + " step 2",
    _BASE[1].replace("alpha", "omega", 1),
    _BASE[2],
    _BASE[0] + " " + " ".join([_BASE[0]] * 8),
    " ".join(["same phrase again"] * 80),
    "x" * 3000,
    "ok",
]

texts = st.one_of(
    st.sampled_from(ADVERSARIAL),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=60),
    st.lists(st.sampled_from([*_WORDS, "ALPHA", "Beta", "😀", "字"]), max_size=80).map(" ".join),
)


def core_print(prompt: str | None, output: str | None, secret: bytes = SECRET) -> dict[str, Any]:
    return tokenlord.fingerprint(prompt, output, secret=secret)


def ref_print(prompt: str | None, output: str | None, secret: bytes = SECRET) -> dict[str, Any]:
    key = fingerprint_key(secret)
    return fingerprint_wire(key, fingerprint(key, prompt, output))


@pytest.mark.parametrize("text", ADVERSARIAL, ids=range(len(ADVERSARIAL)))
def test_adversarial_prints_equal_the_reference(text: str) -> None:
    assert core_print(text, text) == ref_print(text, text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.none(), texts), st.one_of(st.none(), texts))
def test_prints_equal_the_reference(prompt: str | None, output: str | None) -> None:
    assert core_print(prompt, output) == ref_print(prompt, output)


def test_the_batch_form_equals_one_by_one() -> None:
    pairs = [(t, ADVERSARIAL[-1 - i]) for i, t in enumerate(ADVERSARIAL)]
    assert tokenlord.fingerprints(pairs, secret=SECRET) == [core_print(p, o) for p, o in pairs]
    assert [json.loads(j) for j in tokenlord.gateway.fingerprints_json(pairs, secret=SECRET)] == [
        core_print(p, o) for p, o in pairs
    ]


def test_what_a_print_holds() -> None:
    fp = core_print("Summarise the quarterly report", "Revenue grew.")
    assert fp == {
        "v": 2,
        "key": tokenlord.fingerprint_key_id(secret=SECRET),
        "prompt": {"hash": fp["prompt"]["hash"], "sim": fp["prompt"]["sim"], "bag": fp["prompt"]["bag"],
                   "rep": [0, 0], "rep3": [0, 0], "words": 4, "bytes": 30},
        "output": {"sim": fp["output"]["sim"], "bag": fp["output"]["bag"], "rep": [0, 0], "words": 2, "bytes": 13},
    }  # fmt: skip
    assert all(len(fp[s][k]) == 16 for s in ("prompt", "output") for k in ("sim", "bag"))
    # Only the words count: ASCII case and whitespace do not change a print's hashes.
    a, b = core_print("Summarise the quarterly report", None), core_print("  SUMMARISE the\tQuarterly\nreport ", None)
    assert a["prompt"].pop("bytes") != b["prompt"].pop("bytes")
    assert a["prompt"] == b["prompt"]
    # Blank text has no side.
    assert core_print(" \n", "") == {"v": 2, "key": fp["key"]}
    # A looping answer shows its repetition; its bytes are the UTF-8 length.
    loop = core_print(None, " ".join(["same phrase again"] * 80))["output"]
    assert loop["words"] == 240 and loop["bytes"] == 17 * 80 + 79 and loop["rep"][0] > 0.9 * loop["rep"][1]
    # From 50 words on a side has a MinHash sketch (64 bytes); a prompt its 3-word repetition.
    assert len(bytes.fromhex(loop["mh"])) == 64 and "rep3" not in loop
    assert "mh" not in fp["prompt"] and "mh" not in fp["output"]
    padded = core_print(" ".join(f"{w} again and again" for w in ["one", "two", "three"] * 30), None)["prompt"]
    assert padded["rep3"][0] > 0.9 * padded["rep3"][1] and len(padded["mh"]) == 128


def test_prints_are_keyed() -> None:
    text = "Summarise the quarterly report"
    one, two = core_print(text, None, b"secret one"), core_print(text, None, b"secret two")
    assert one["key"] != two["key"] and len(one["key"]) == 8
    for k in ("hash", "sim", "bag"):
        assert one["prompt"][k] != two["prompt"][k]
    assert core_print(text, None, b"secret one") == one
    # The key id is derived from the secret: it names the key, it does not reveal it.
    assert tokenlord.fingerprint_key_id(secret=b"secret one") == one["key"]
    assert tokenlord.fingerprint_key_id(secret="secret one") == one["key"]


def test_the_secret_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("TOKENLORD_FINGERPRINT_KEY", "from-env")
    assert tokenlord.fingerprint("a b c", None) == core_print("a b c", None, b"from-env")
    monkeypatch.delenv("TOKENLORD_FINGERPRINT_KEY")
    f = tmp_path / "key"
    f.write_text("from-file\n")
    monkeypatch.setenv("TOKENLORD_FINGERPRINT_KEY_FILE", str(f))
    assert tokenlord.fingerprint("a b c", None) == core_print("a b c", None, b"from-file")


# -- twins: counts + text vs counts + fingerprint ------------------------------------------


@st.composite
def text_events(draw: Any) -> dict[str, Any]:
    """Valid events with counts and text, clustered so every waste rule fires."""
    ev: dict[str, Any] = {
        "event_id": f"w{draw(st.integers(0, 10**9))}",
        "ts": T0 + draw(st.sampled_from([0, 4000, 8000, 300_000, 900_000])) + draw(st.integers(0, 999)),
        "user": draw(st.sampled_from(["ann", "ann", "bob"])),
        "model": draw(st.sampled_from(["gpt-4o", "gpt-4o", "x"])),
        "input_tokens": draw(st.sampled_from([10, 40, 400, 4000])),
        "output_tokens": draw(st.sampled_from([0, 100, 105, 3000])),
    }
    if draw(st.integers(0, 5)):
        ev["prompt"] = draw(texts)
    if draw(st.integers(0, 3)):
        ev["output"] = draw(texts)
    if draw(st.integers(0, 9)) == 0:
        ev["status"] = "error"
    return ev


def twin(ev: dict[str, Any]) -> dict[str, Any]:
    """The same event as a gateway that sends no text would send it."""
    out = {k: v for k, v in ev.items() if k not in ("prompt", "output")}
    if "prompt" in ev or "output" in ev:
        out["fingerprint"] = core_print(ev.get("prompt"), ev.get("output"))
    return out


def verdicts_core(evs: list[dict[str, Any]], batch: int) -> list[tuple[Any, ...]]:
    core = _core.Core(fingerprint_secret=SECRET)
    got: list[tuple[Any, ...]] = []
    values = [orjson.dumps(e) for e in evs]
    for i in range(0, len(values), batch):
        chunk = values[i : i + batch]
        out = core.process([0] * len(chunk), list(range(i, i + len(chunk))), chunk, NOW)
        assert list(out.rejected["reason"]) == []
        e = out.events
        got += zip(e["event_id"], e["input_tokens"], e["output_tokens"], e["wasted_tokens"], e["waste_reason"],
                   strict=True)  # fmt: skip
    return got


def verdicts_ref(evs: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    ref = Reference(
        grace_ms=3_600_000,
        dedupe_horizon_ms=DAY,
        future_tolerance_ms=600_000,
        max_message_bytes=1_048_576,
        count_tokens=lambda text, model: (len(text.split()), False),  # never called: counts are given
        fingerprint_secret=SECRET,
    )
    values = [orjson.dumps(e) for e in evs]
    ref.process([0] * len(values), list(range(len(values))), values, NOW)
    assert ref.rejected() == []
    return [(e["event_id"], e["input_tokens"], e["output_tokens"], e["wasted_tokens"], e["waste_reason"])
            for e in ref.events()]  # fmt: skip


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(text_events(), min_size=2, max_size=40, unique_by=lambda e: e["event_id"]), st.integers(1, 7))
def test_fingerprint_twins_get_the_verdicts_of_text_events(evs: list[dict[str, Any]], batch: int) -> None:
    twins = [twin(e) for e in evs]
    text = verdicts_core(evs, batch)
    assert verdicts_core(twins, batch) == text
    assert verdicts_ref(twins) == verdicts_ref(evs) == text


def test_adversarial_twins_get_the_verdicts_of_text_events() -> None:
    evs = []
    for i, text in enumerate(ADVERSARIAL * 3):
        evs.append({"event_id": f"a{i}", "ts": T0 + 1000 * i, "user": "ann", "model": "gpt-4o", "input_tokens": 400,
                    "output_tokens": 3000, "prompt": text, "output": ADVERSARIAL[-1 - i % 5]})  # fmt: skip
    text = verdicts_core(evs, 8)
    assert any(w for *_, w, _r in text), "some of these are waste"
    assert verdicts_core([twin(e) for e in evs], 8) == text == verdicts_ref([twin(e) for e in evs])


def test_the_adaptive_gaming_rules_fire_alike_in_core_reference_text_and_prints() -> None:
    """Re-asks reworded hours apart (near_duplicate), a loop stepping every 13 minutes
    (agent_loop over the day) and filler with every fifth word changed (padded_prompt):
    the same verdicts from the core and the reference, from text and from prints."""
    from test_core_vs_reference import NOISED_PROMPT, REASK_OUTPUTS, REASK_PROMPTS

    base = {"user": "ann", "model": "gpt-4o", "input_tokens": 600, "output_tokens": 300}
    evs = [{**base, "event_id": f"r{i}", "ts": T0 + i * 5_400_000, "prompt": REASK_PROMPTS[i % 4],
            "output": REASK_OUTPUTS[i % 3]} for i in range(8)]  # fmt: skip
    evs += [{**base, "user": "bob", "event_id": f"l{i}", "ts": T0 + i * 780_000, "prompt": f"{_BASE[1]} step {i}",
             "output": _BASE[2]} for i in range(5)]  # fmt: skip
    evs.append({**base, "user": "cy", "event_id": "n", "ts": T0, "input_tokens": 4000, "prompt": NOISED_PROMPT})
    text = verdicts_core(evs, 3)
    assert verdicts_core([twin(e) for e in evs], 5) == text == verdicts_ref(evs) == verdicts_ref([twin(e) for e in evs])
    reasons = {eid: r for eid, *_, r in text}
    asks = [reasons[f"r{i}"] for i in range(8)]
    assert asks[:4] == ["", "", "", ""] and asks[4:].count("near_duplicate") >= 3, asks
    assert [reasons[f"l{i}"] for i in range(5)] == ["", "", "", "agent_loop", "agent_loop"]
    assert reasons["n"] == "padded_prompt"
    # A version 1 print has no sketch: re-asks sent so are not seen (nothing else changes).
    v1 = [twin(e) for e in evs]
    for e in v1:
        e["fingerprint"]["v"] = 1
    old = {eid: r for eid, *_, r in verdicts_core(v1, 4)}
    assert [old[f"r{i}"] for i in range(8)] == [""] * 8 and old["l4"] == "agent_loop"


def test_text_wins_over_a_fingerprint_side_by_side() -> None:
    loop = " ".join(["same phrase again"] * 80)
    base = {"ts": T0, "user": "ann", "model": "gpt-4o", "input_tokens": 400, "output_tokens": 3000}
    honest = core_print("a different prompt entirely, nothing repeated here", "a short honest answer")
    mixed = [
        # text prompt + a print whose output is the loop: the prompt's text wins, the print's output counts
        {**base, "event_id": "m1", "prompt": _BASE[1], "fingerprint": core_print("ignored", loop)},
        # text on both sides: the print is ignored entirely
        {**base, "event_id": "m2", "ts": T0 + 1, "prompt": _BASE[1], "output": loop, "fingerprint": honest},
    ]
    plain = [
        {**base, "event_id": "m1", "prompt": _BASE[1], "output": loop},
        {**base, "event_id": "m2", "ts": T0 + 1, "prompt": _BASE[1], "output": loop},
    ]
    assert verdicts_core(mixed, 2) == verdicts_core(plain, 2) == verdicts_ref(mixed)
    assert [r for *_, r in verdicts_core(mixed, 2)] == ["repetitive_output", "agent_loop"]


def _long_print(**kw: Any) -> dict[str, Any]:
    """A print whose prompt has a sketch, with ``kw`` replacing members of the prompt side (None: left out)."""
    good = core_print(" ".join(f"word{i}" for i in range(60)), None)
    side = {k: v for k, v in {**good["prompt"], **kw}.items() if v is not None}
    return {**good, "prompt": side}


def _bad_prints() -> list[Any]:
    good = core_print("Summarise the quarterly report", "Revenue grew.")
    p = good["prompt"]

    def with_prompt(**kw: Any) -> dict[str, Any]:
        return {**good, "prompt": {**p, **kw}}

    return [
        "not an object",
        [],
        {**good, "v": 3},
        {**good, "v": 0},
        {**good, "v": "2"},
        {**good, "v": 2.0},
        {**good, "prompt": {k: v for k, v in p.items() if k != "rep3"}},
        with_prompt(rep3=[3, 2]),
        with_prompt(mh="ab" * 64),  # a sketch on a side under 50 words
        _long_print(mh="ab" * 63),
        _long_print(mh=None),
        {k: v for k, v in good.items() if k != "v"},
        {k: v for k, v in good.items() if k != "key"},
        {**good, "key": "0000000"},
        {**good, "key": tokenlord.fingerprint_key_id(secret=b"another organisation")},
        with_prompt(hash="xyz"),
        with_prompt(sim="0" * 15),
        with_prompt(bag=12),
        {**good, "prompt": {k: v for k, v in p.items() if k != "hash"}},
        {**good, "prompt": {k: v for k, v in p.items() if k != "rep"}},
        with_prompt(rep=[1]),
        with_prompt(rep=[5, 4]),
        with_prompt(rep=[0, 10_000]),
        with_prompt(words=0),
        with_prompt(words=-1),
        with_prompt(words=1.5),
        with_prompt(words=p["bytes"] + 1),
        {**good, "prompt": "summary"},
        {**good, "output": [1, 2]},
    ]


@pytest.mark.parametrize("bad", _bad_prints(), ids=range(len(_bad_prints())))
def test_a_bad_print_is_rejected_and_counts_nothing(bad: Any) -> None:
    ev = {"event_id": "e", "ts": T0, "user": "ann", "model": "gpt-4o", "input_tokens": 40, "fingerprint": bad}
    value = orjson.dumps(ev)
    out = _core.Core(fingerprint_secret=SECRET).process([0], [0], [value], NOW)
    assert list(out.rejected["reason"]) == ["invalid_field:fingerprint"]
    assert list(out.events["event_id"]) == [] and list(out.weekly["user"]) == []
    ref = Reference(grace_ms=3_600_000, dedupe_horizon_ms=DAY, future_tolerance_ms=600_000, max_message_bytes=1_048_576,
                    count_tokens=lambda t, m: (0, False), fingerprint_secret=SECRET)  # fmt: skip
    ref.process([0], [0], [value], NOW)
    assert [r[3] for r in ref.rejected()] == ["invalid_field:fingerprint"] and ref.events() == []


def test_unknown_members_are_ignored() -> None:
    fp = core_print("Summarise the quarterly report", None)
    extended = {**fp, "future": {"x": 1}, "prompt": {**fp["prompt"], "minhash": [1, 2, 3]}}
    ev = {"event_id": "e", "ts": T0, "user": "ann", "model": "gpt-4o", "input_tokens": 40}
    assert verdicts_core([{**ev, "fingerprint": extended}], 1) == verdicts_core([{**ev, "fingerprint": fp}], 1)


def _one(value: bytes) -> tuple[list[str], list[str], list[str]]:
    """(core's rejections, reference's rejections, core's accepted event ids) of one raw message."""
    out = _core.Core(fingerprint_secret=SECRET).process([0], [0], [value], NOW)
    ref = Reference(grace_ms=3_600_000, dedupe_horizon_ms=DAY, future_tolerance_ms=600_000, max_message_bytes=1_048_576,
                    count_tokens=lambda t, m: (0, False), fingerprint_secret=SECRET)  # fmt: skip
    ref.process([0], [0], [value], NOW)
    return list(out.rejected["reason"]), [r[3] for r in ref.rejected()], list(out.events["event_id"])


@pytest.mark.parametrize(
    ("spelling", "accepted"),
    [
        # JSON spellings of a valid print: escapes, a repeated member (the last wins), an output "hash"
        (lambda fp: orjson.dumps(fp).replace(b'"v":2', b'"v":2,"key":"zz","v":2', 1), True),
        # a version 1 print (before sketches): read, without them
        (
            lambda fp: orjson.dumps({**fp, "v": 1, "prompt": {k: v for k, v in fp["prompt"].items() if k != "rep3"}}),
            True,
        ),
        (
            lambda fp: orjson.dumps(fp).replace(
                b'"key":"' + fp["key"][:1].encode(), b'"key":"\\u%04x' % ord(fp["key"][0]), 1
            ),
            True,
        ),
        (lambda fp: orjson.dumps({**fp, "output": {**fp["output"], "hash": 7}}), True),
        (lambda fp: orjson.dumps({**fp, "prompt": None}), True),
        # not objects
        (lambda fp: orjson.dumps([1, fp["key"]]), False),
        (lambda fp: orjson.dumps({**fp, "prompt": [fp["prompt"]["hash"]]}), False),
        (lambda fp: orjson.dumps({**fp, "v": True}), False),
    ],
    ids=[
        "repeated-member",
        "version-1",
        "escaped-key",
        "output-hash",
        "null-side",
        "array",
        "array-side",
        "bool-version",
    ],
)
def test_json_spellings_of_a_print_are_read_alike(spelling: Any, accepted: bool) -> None:
    fp = core_print("Summarise the quarterly report", "Revenue grew.")
    body = b'{"event_id":"e","ts":%d,"user":"ann","model":"gpt-4o","input_tokens":40,"fingerprint":%s}' % (
        T0, spelling(fp))  # fmt: skip
    core_rej, ref_rej, ids = _one(body)
    assert core_rej == ref_rej
    assert (ids == ["e"]) is accepted and (core_rej == []) is accepted, (core_rej, body)


def test_a_lone_surrogate_costs_only_its_own_text() -> None:
    got = tokenlord.fingerprints([("ok fine", None), ("bad \ud800 text", None)], secret=SECRET)
    assert got[0] == core_print("ok fine", None)
    assert got[1] == core_print("bad ? text", None)


def test_huge_repetition_counts_in_a_print_get_the_references_verdict() -> None:
    """A hostile print may carry counts up to 2^64 - 1: the share is compared without overflow."""
    fp = core_print("Summarise the quarterly report", None)
    big = 1 << 58
    fp["prompt"].update(rep=[0, big], rep3=[big, big], bytes=big)
    ev = {"event_id": "h", "ts": T0, "user": "ann", "model": "gpt-4o", "input_tokens": 400, "output_tokens": 0,
          "fingerprint": fp}  # fmt: skip
    assert verdicts_core([ev], 1) == verdicts_ref([ev]) == [("h", 400, 0, 400, "padded_prompt")]
