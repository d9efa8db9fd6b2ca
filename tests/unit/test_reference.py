"""Hand-written cases for the plain-Python reference (tests/reference.py):
each rule of docs/semantics.md, checked directly. Those marked
``both_implementations`` run on the native core too (behind the reference's
interface, tests/core_adapter.py); the rest check what only the reference
shows (its tokenizer stand-in, its cell shapes)."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
import reference
from reference import Reference
from tokenlord.time_utils import DAY_MS as DAY
from tokenlord.time_utils import HOUR_MS as HOUR
from tokenlord.time_utils import WEEK_MS as WEEK

MON = 1_704_067_200_000  # 2024-01-01T00:00:00Z, a Monday
NOW = MON + 60 * DAY
PRICES = {"gpt-4o": (2.5, 1.25, 10.0), "gpt-4o-mini": (0.15, 0.075, 0.6), "gpt": (1.0, 1.0, 1.0)}


def fake_count(text: str, model: str) -> tuple[int, bool]:
    """Deterministic stand-in for the tokenizer: words; 'estimated' unless a gpt model."""
    return len(text.split()), not model.startswith("gpt")


#: The implementation ``make`` builds: the reference, or the native core behind its interface
#: for the tests marked ``@pytest.mark.usefixtures("both_implementations")``.
IMPL: Any = Reference


@pytest.fixture(params=["reference", "core"])
def both_implementations(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs a hand-written rule test on the reference and on the core (their other
    comparisons are property tests: test_core_vs_reference.py)."""
    from core_adapter import CoreAsReference

    monkeypatch.setattr(sys.modules[__name__], "IMPL", {"reference": Reference, "core": CoreAsReference}[request.param])


def make(**kw: Any) -> Reference:
    args: dict[str, Any] = {
        "grace_ms": HOUR,
        "dedupe_horizon_ms": DAY,
        "future_tolerance_ms": 600_000,
        "max_message_bytes": 2000,
        "prices": PRICES,
        "count_tokens": fake_count,
    }
    args.update(kw)
    impl: type[Reference] = IMPL
    return impl(**args)


def ev(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": "e1",
        "ts": MON + HOUR,
        "user": "ann",
        "model": "gpt-4o",
        "input_tokens": 100,
        "output_tokens": 10,
    }
    for k, v in kw.items():
        if v is ...:
            base.pop(k, None)
        else:
            base[k] = v
    return base


def enc(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


def run(*values: bytes, now: int = NOW, partition: int = 0, ref: Reference | None = None) -> Reference:
    ref = ref or make()
    ref.process([partition] * len(values), list(range(len(values))), list(values), now)
    return ref


def reasons(ref: Reference) -> list[str]:
    return [r[3] for r in ref.rejected()]


def one_reason(obj: Any) -> str:
    ref = run(obj if isinstance(obj, bytes) else enc(obj))
    assert ref.events() == []
    (r,) = ref.rejected()
    return r[3]


# ------------------------------------------------------------------ splitting


@pytest.mark.usefixtures("both_implementations")
def test_single_object_is_accepted() -> None:
    ref = run(enc(ev()))
    (e,) = ref.events()
    assert e["event_id"] == "e1" and e["ts"] == MON + HOUR and e["total_tokens"] == 110
    assert e["src_partition"] == 0 and e["src_offset"] == 0
    assert ref.rejected() == []


@pytest.mark.usefixtures("both_implementations")
def test_too_large_whole_message() -> None:
    big = enc(ev(prompt="x" * 3000))
    ref = run(big)
    assert ref.rejected() == [(0, 0, 0, "too_large", big)]
    exact = enc(ev(app="y" * 100))
    assert run(exact, ref=make(max_message_bytes=len(exact))).rejected() == []
    assert reasons(run(exact, ref=make(max_message_bytes=len(exact) - 1))) == ["too_large"]


@pytest.mark.usefixtures("both_implementations")
def test_array_items_and_raw_text() -> None:
    good = enc(ev(event_id="a"))
    value = b"[ " + good + b' ,  7 , {"x": 1} , [1,2]\n]'
    ref = run(value)
    assert [e["event_id"] for e in ref.events()] == ["a"]
    assert ref.rejected() == [
        (0, 0, 1, "not_an_object", b"7"),
        (0, 0, 2, "missing_field:event_id", b'{"x": 1}'),
        (0, 0, 3, "not_an_object", b"[1,2]"),
    ]


@pytest.mark.usefixtures("both_implementations")
def test_empty_array_yields_nothing() -> None:
    ref = run(b"[]", b"  [ ]\n")
    assert ref.events() == [] and ref.rejected() == []


@pytest.mark.parametrize("value", [b"7", b'"x"', b"null", b"true", b" 1.5 "])
@pytest.mark.usefixtures("both_implementations")
def test_top_level_scalar_is_not_an_object(value: bytes) -> None:
    assert run(value).rejected() == [(0, 0, 0, "not_an_object", value)]


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"   ",
        b"\n\n",
        b" \t\r\n",
        b"\xef\xbb\xbf",
        b"{",
        b"{\n",
        b"\n{bad\n\n",
        b"{'a': 1}",
        b"\xff",
    ],
)
@pytest.mark.usefixtures("both_implementations")
def test_whole_message_invalid_json(value: bytes) -> None:
    assert run(value).rejected() == [(0, 0, 0, "invalid_json", value)]


@pytest.mark.usefixtures("both_implementations")
def test_ndjson_elements_idx_and_raw() -> None:
    a, b = enc(ev(event_id="a")), enc(ev(event_id="b"))
    value = a + b"\r\n\n  \t\r\n{oops\n" + b"[1]\n" + b + b"\n"
    ref = run(value)
    assert [e["event_id"] for e in ref.events()] == ["a", "b"]
    # Blank lines are not counted; the raw keeps the '\r'.
    assert ref.rejected() == [
        (0, 0, 1, "invalid_json", b"{oops"),
        (0, 0, 2, "not_an_object", b"[1]"),
    ]


@pytest.mark.usefixtures("both_implementations")
def test_ndjson_all_lines_unparsable_is_one_rejection() -> None:
    value = b"{a\n{b\n\n"
    assert run(value).rejected() == [(0, 0, 0, "invalid_json", value)]


@pytest.mark.usefixtures("both_implementations")
def test_ndjson_non_objects_only_are_rejected_per_line() -> None:
    assert run(b"7\n{x").rejected() == [
        (0, 0, 0, "not_an_object", b"7"),
        (0, 0, 1, "invalid_json", b"{x"),
    ]


@pytest.mark.usefixtures("both_implementations")
def test_ndjson_invalid_utf8_only_spoils_its_line() -> None:
    ref = run(enc(ev(event_id="a")) + b'\n{"x": "\xff"}')
    assert [e["event_id"] for e in ref.events()] == ["a"]
    assert ref.rejected() == [(0, 0, 1, "invalid_json", b'{"x": "\xff"}')]


@pytest.mark.usefixtures("both_implementations")
def test_bom_is_skipped() -> None:
    body = enc(ev())
    assert len(run(b"\xef\xbb\xbf" + body).events()) == 1
    # A single-object message's rejections carry the original bytes; NDJSON lines do not.
    assert run(b"\xef\xbb\xbf{} ").rejected() == [(0, 0, 0, "missing_field:event_id", b"\xef\xbb\xbf{} ")]
    assert run(b"\xef\xbb\xbf7").rejected() == [(0, 0, 0, "not_an_object", b"\xef\xbb\xbf7")]
    assert run(b"\xef\xbb\xbf{}\n7").rejected() == [
        (0, 0, 0, "missing_field:event_id", b"{}"),
        (0, 0, 1, "not_an_object", b"7"),
    ]
    # Only one BOM is skipped.
    assert reasons(run(b"\xef\xbb\xbf\xef\xbb\xbf" + body)) == ["invalid_json"]


@pytest.mark.parametrize(
    "text",
    [
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": -Infinity}',
        b'{"a": 1e309}',
        b'{"a": -1e309}',
        b'{"a": ' + b"9" * 400 + b"}",
        b'{"a": "\\ud800"}',
        b'{"a": ["\\udc00"]}',
        b'{"\\ud800": 1}',
        b'{"a": "\\ud800", "a": 1}',
        b'{"a": "x\x01"}',
        b'{"a": 01}',
        b'{"a": .5}',
        b'{"a": 1.}',
        b'{"a": +1}',
        b'{"a": 1,}',
        b'{"a": "\\x"}',
        b'{"a": "\xed\xa0\x80"}',
        b'{"a": "\xc0\xaf"}',
        b"\xc2\xa0{}",
        b'{"a": 1}\x0c',
        b'{"a": ' + b"[" * 128 + b"]" * 128 + b"}",
    ],
)
@pytest.mark.usefixtures("both_implementations")
def test_strict_json(text: bytes) -> None:
    with pytest.raises(reference._Unparsable):
        reference.parse_json(text)
    assert run(text + b"\n" + enc(ev())).rejected() == [(0, 0, 0, "invalid_json", text)]


def test_lenient_bits_that_are_valid_json() -> None:
    assert reference.parse_json(b'{"a": "\\ud83d\\ude00"}') == {"a": "\U0001f600"}
    assert reference.parse_json(b' {"a": 1, "a": 2} \r\n') == {"a": 2}
    assert reference.parse_json(b'"\x7f"') == "\x7f"
    assert reference.parse_json(b"[" * 127 + b"]" * 127) is not None
    with pytest.raises(reference._Unparsable):
        reference.parse_json(b"[" * 128 + b"]" * 128)
    assert reference.parse_json(b"1e308") == 1e308


# ------------------------------------------------------------------ validation: every reason code


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        (ev(event_id=...), "missing_field:event_id"),
        (ev(event_id=None), "missing_field:event_id"),
        (ev(event_id=""), "invalid_field:event_id"),
        (ev(event_id="x" * 129), "invalid_field:event_id"),
        (ev(event_id=5), "invalid_field:event_id"),
        (ev(ts=...), "missing_field:ts"),
        (ev(ts=1.0 * MON), "invalid_field:ts"),
        (ev(ts=True), "invalid_field:ts"),
        (ev(ts="yesterday"), "invalid_field:ts"),
        (ev(ts=-1), "out_of_range:ts"),
        (ev(ts=253_402_300_800_000), "out_of_range:ts"),
        (ev(ts=2**63), "out_of_range:ts"),
        (ev(ts="1969-12-31T23:59:59.999Z"), "out_of_range:ts"),
        (ev(user=...), "missing_field:user"),
        (ev(user=""), "invalid_field:user"),
        (ev(user="u" * 257), "invalid_field:user"),
        (ev(user=["ann"]), "invalid_field:user"),
        (ev(model=...), "missing_field:model"),
        (ev(model=""), "invalid_field:model"),
        (ev(model="m" * 257), "invalid_field:model"),
        (ev(team=1), "invalid_field:team"),
        (ev(team="t" * 257), "invalid_field:team"),
        (ev(app={}), "invalid_field:app"),
        (ev(provider=False), "invalid_field:provider"),
        (ev(**{"gen_ai.provider.name": 3}), "invalid_field:provider"),
        (ev(session_id=[]), "invalid_field:session_id"),
        (ev(**{"gen_ai.conversation.id": 1}), "invalid_field:session_id"),
        (ev(input_tokens=1.0), "invalid_field:input_tokens"),
        (ev(input_tokens="5"), "invalid_field:input_tokens"),
        (ev(input_tokens=True), "invalid_field:input_tokens"),
        (ev(input_tokens=-1), "out_of_range:input_tokens"),
        (ev(input_tokens=10**9 + 1), "out_of_range:input_tokens"),
        (ev(output_tokens=1e2), "invalid_field:output_tokens"),
        (ev(output_tokens=-5), "out_of_range:output_tokens"),
        (ev(prompt=1), "invalid_field:prompt"),
        (ev(output=["x"]), "invalid_field:output"),
        (ev(cached_input_tokens=0.5), "invalid_field:cached_input_tokens"),
        (ev(cached_input_tokens=-1), "out_of_range:cached_input_tokens"),
        (ev(cached_input_tokens=101), "out_of_range:cached_input_tokens"),
        (ev(reasoning_tokens="1"), "invalid_field:reasoning_tokens"),
        (ev(reasoning_tokens=10**9 + 1), "out_of_range:reasoning_tokens"),
        (ev(reasoning_tokens=11), "out_of_range:reasoning_tokens"),
        (ev(status="OK"), "invalid_field:status"),
        (ev(status=0), "invalid_field:status"),
        (ev(finish_reason=3), "invalid_field:finish_reason"),
        (ev(finish_reason=[1, "stop"]), "invalid_field:finish_reason"),
        (ev(**{"gen_ai.response.finish_reasons": {"a": 1}}), "invalid_field:finish_reason"),
        (ev(latency_ms=1.5), "invalid_field:latency_ms"),
        (ev(latency_ms=-1), "out_of_range:latency_ms"),
        (ev(latency_ms=2**31), "out_of_range:latency_ms"),
        (ev(input_tokens=..., output_tokens=...), "missing_usage"),
        (ev(input_tokens=None, output_tokens=None, prompt=None), "missing_usage"),
        (ev(ts=NOW + 600_001), "future_timestamp"),
    ],
)
@pytest.mark.usefixtures("both_implementations")
def test_reason_codes(obj: dict[str, Any], reason: str) -> None:
    assert one_reason(obj) == reason


@pytest.mark.usefixtures("both_implementations")
def test_integer_literals_outside_64_bits_are_not_integers() -> None:
    body = enc(ev())[:-1]
    assert one_reason(body + b', "input_tokens": 18446744073709551616}') == "invalid_field:input_tokens"
    assert one_reason(body + b', "input_tokens": -9223372036854775809}') == "invalid_field:input_tokens"
    assert one_reason(body + b', "input_tokens": 18446744073709551615}') == "out_of_range:input_tokens"
    assert one_reason(body + b', "latency_ms": 1e1}') == "invalid_field:latency_ms"
    # serde_json reads -0 as the float -0.0; so does the spec.
    assert one_reason(body + b', "latency_ms": -0}') == "invalid_field:latency_ms"


@pytest.mark.usefixtures("both_implementations")
def test_first_failing_check_wins() -> None:
    assert one_reason(ev(event_id=..., ts="bad", user="")) == "missing_field:event_id"
    assert one_reason(ev(ts="bad", user="", model="")) == "invalid_field:ts"
    assert one_reason(ev(team=1, input_tokens=-1)) == "invalid_field:team"
    assert one_reason(ev(output_tokens=-1, prompt=5)) == "out_of_range:output_tokens"
    assert one_reason(ev(prompt=5, cached_input_tokens="x")) == "invalid_field:prompt"
    assert one_reason(ev(cached_input_tokens=-1, status="bad")) == "out_of_range:cached_input_tokens"
    assert one_reason(ev(status="bad", latency_ms=-1)) == "invalid_field:status"
    # Range checks against the resolved counts come after everything else.
    assert one_reason(ev(cached_input_tokens=101, latency_ms=-1)) == "out_of_range:latency_ms"
    assert one_reason(ev(input_tokens=..., output_tokens=..., latency_ms=1.5)) == "invalid_field:latency_ms"
    assert one_reason(ev(cached_input_tokens=101, reasoning_tokens=11)) == "out_of_range:cached_input_tokens"
    # Stream checks only for valid elements: future before duplicate before late.
    assert one_reason(ev(ts=NOW + DAY, user="")) == "invalid_field:user"


# ------------------------------------------------------------------ aliases, defaults, token counts


@pytest.mark.usefixtures("both_implementations")
def test_aliases_and_null_fallthrough() -> None:
    obj = {
        "event_id": "x",
        "ts": MON,
        "user": None,
        "user_id": None,
        "enduser.id": "otel-user",
        "gen_ai.request.model": None,
        "gen_ai.response.model": "gpt-4o-mini-2024",
        "gen_ai.provider.name": "openai",
        "gen_ai.conversation.id": "s1",
        "gen_ai.usage.input_tokens": 7,
        "gen_ai.usage.output_tokens": 3,
        "gen_ai.usage.cache_read.input_tokens": 2,
        "gen_ai.response.finish_reasons": ["length", "stop"],
    }
    (e,) = run(enc(obj)).events()
    assert (e["user"], e["model"], e["provider"], e["session_id"]) == (
        "otel-user",
        "gpt-4o-mini-2024",
        "openai",
        "s1",
    )
    assert (e["input_tokens"], e["output_tokens"], e["cached_input_tokens"]) == (7, 3, 2)
    assert e["finish_reason"] == "length"


@pytest.mark.usefixtures("both_implementations")
def test_canonical_name_wins_over_alias() -> None:
    (e,) = run(enc(ev(user="canon", user_id="alias", input_tokens=5, **{"gen_ai.usage.input_tokens": 9}))).events()
    assert (e["user"], e["input_tokens"]) == ("canon", 5)
    # A non-null but invalid canonical value does not fall through to a valid alias.
    assert one_reason(ev(user="", user_id="alias")) == "invalid_field:user"


@pytest.mark.usefixtures("both_implementations")
def test_duplicate_keys_last_wins() -> None:
    body = enc(ev())[:-1] + b', "user": "first", "user": "last"}'
    (e,) = run(body).events()
    assert e["user"] == "last"


@pytest.mark.usefixtures("both_implementations")
def test_defaults_of_optional_fields() -> None:
    (e,) = run(enc(ev(status=None, finish_reason=[]))).events()
    assert (e["team"], e["app"], e["provider"], e["session_id"], e["finish_reason"]) == (
        "",
        "",
        "",
        "",
        "",
    )
    assert (e["status"], e["latency_ms"], e["cached_input_tokens"], e["reasoning_tokens"]) == (
        "ok",
        None,
        0,
        0,
    )
    assert e["tokens_estimated"] == 0 and e["wasted_tokens"] == 0 and e["waste_reason"] == ""


def test_token_counts_from_text() -> None:
    ref = run(
        enc(
            ev(
                event_id="a",
                input_tokens=...,
                output_tokens=...,
                prompt="one two three",
                output="four five",
            )
        ),
        enc(ev(event_id="b", input_tokens=..., output_tokens=12, prompt="one two")),  # reported output wins
        enc(ev(event_id="c", input_tokens=5, output_tokens=..., prompt="never counted")),  # missing output, no text: 0
        enc(ev(event_id="d", model="llama-3", input_tokens=..., output_tokens=..., output="a b c d")),
        enc(
            ev(
                event_id="e",
                model="llama-3",
                input_tokens=1,
                output_tokens=2,
                prompt="x y",
                output="z",
            )
        ),
        enc(ev(event_id="f", input_tokens=..., output_tokens=..., prompt="")),
    )
    got = {e["event_id"]: (e["input_tokens"], e["output_tokens"], e["tokens_estimated"]) for e in ref.events()}
    assert got == {
        "a": (3, 2, 0),
        "b": (2, 12, 0),
        "c": (5, 0, 0),
        "d": (0, 4, 1),
        "e": (1, 2, 0),
        "f": (0, 0, 0),
    }


@pytest.mark.usefixtures("both_implementations")
def test_cached_and_reasoning_checked_against_resolved_counts() -> None:
    obj = ev(
        input_tokens=...,
        prompt="a b c",
        cached_input_tokens=3,
        output_tokens=...,
        output="x y",
        reasoning_tokens=2,
    )
    (e,) = run(enc(obj)).events()
    assert (e["cached_input_tokens"], e["reasoning_tokens"]) == (3, 2)
    assert one_reason(ev(input_tokens=..., prompt="a b", cached_input_tokens=3)) == "out_of_range:cached_input_tokens"
    assert one_reason(ev(output_tokens=..., output="x", reasoning_tokens=2)) == "out_of_range:reasoning_tokens"


# ------------------------------------------------------------------ timestamps


@pytest.mark.parametrize(
    ("ts", "ms"),
    [
        ("2024-01-01T00:00:00Z", MON),
        ("2024-01-01t00:00:00z", MON),
        ("2024-01-01 00:00:00Z", MON),
        ("2024-01-01T00:00:00+00:00", MON),
        ("2024-01-01T00:00:00-00:00", MON),
        ("2024-01-01T02:00:00+02:00", MON),
        ("2024-01-01T01:30:00+02:00", MON - 30 * 60_000),  # crosses midnight back into Sunday
        ("2023-12-31T23:00:00-01:00", MON),  # Sunday local, Monday UTC
        ("2024-01-01T05:30:00.123+05:30", MON + 123),
        ("2024-01-01T00:00:00.9999999Z", MON + 999),  # truncated, not rounded
        ("2024-01-01T00:00:00.5Z", MON + 500),
        ("2024-01-01T00:00:00.05Z", MON + 50),
        ("2024-02-29T00:00:00Z", MON + 59 * DAY),
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T01:00:00+01:00", 0),
        ("9999-12-31T23:59:59.999Z", 253_402_300_799_999),
        ("9999-12-31T23:59:59.999+00:00", 253_402_300_799_999),
        ("2024-01-01T00:00:00+23:59", MON - (23 * 60 + 59) * 60_000),
    ],
)
def test_rfc3339_accepted(ts: str, ms: int) -> None:
    assert reference.parse_rfc3339(ts) == ms


@pytest.mark.parametrize(
    "ts",
    [
        "2024-01-01T00:00:00",
        "2024-01-01T00:00:00+0000",
        "2024-01-01T00:00:00+24:00",
        "2024-01-01T00:00:00+00:60",
        "2024-01-01T24:00:00Z",
        "2024-01-01T23:60:00Z",
        "2024-01-01T23:59:60Z",
        "2023-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2024-04-31T00:00:00Z",
        "2024-00-01T00:00:00Z",
        "2024-13-01T00:00:00Z",
        "2024-01-00T00:00:00Z",
        "2024-1-01T00:00:00Z",
        "2024-01-01T00:00Z",
        "2024-01-01T00:00:00.Z",
        "2024-01-01T00:00:00,5Z",
        "2024-01-01_00:00:00Z",
        " 2024-01-01T00:00:00Z",
        "2024-01-01T00:00:00Z ",
        "2024-01-01T00:00:00Z\n",
        "2024-01-01  00:00:00Z",
        "\uff12024-01-01T00:00:00Z",
        "+2024-01-01T00:00:00Z",
        "2024-01-01T00:00:00\u221201:00",
        "0000-02-30T00:00:00Z",
        "",
        "1704067200000",
    ],
)
@pytest.mark.usefixtures("both_implementations")
def test_rfc3339_rejected(ts: str) -> None:
    with pytest.raises(ValueError):
        reference.parse_rfc3339(ts)
    assert one_reason(ev(ts=ts)) == "invalid_field:ts"


@pytest.mark.parametrize(
    "ts",
    [
        "1969-12-31T23:59:59.999Z",
        "1970-01-01T00:59:59+01:00",
        "0000-02-29T00:00:00Z",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59-00:01",
    ],
)
@pytest.mark.usefixtures("both_implementations")
def test_rfc3339_out_of_range(ts: str) -> None:
    assert one_reason(ev(ts=ts)) == "out_of_range:ts"


@pytest.mark.usefixtures("both_implementations")
def test_epoch_ms_bounds() -> None:
    far = 253_402_300_799_999
    ref = run(enc(ev(event_id="a", ts=0)), enc(ev(event_id="b", ts=far)), now=far)
    assert [e["ts"] for e in ref.events()] == [0, far]


@pytest.mark.usefixtures("both_implementations")
def test_week_boundaries() -> None:
    assert reference.week_start_of(MON) == MON
    assert reference.week_start_of(MON - 1) == MON - WEEK  # Sunday 23:59:59.999
    assert reference.week_start_of(MON + WEEK - 1) == MON
    assert reference.week_start_of(0) == -3 * DAY  # 1970-01-01 is a Thursday
    assert reference.week_start_of(4 * DAY) == 4 * DAY  # 1970-01-05, a Monday
    assert reference.hour_of(MON + HOUR - 1) == MON
    ref = run(
        enc(ev(event_id="sun", ts="2023-12-31T23:59:59.999Z")),
        enc(ev(event_id="mon", ts="2024-01-01T00:00:00Z")),
        enc(ev(event_id="plus2", ts="2024-01-01T01:59:59.999+02:00")),
    )  # = Sunday 23:59:59.999Z
    weeks = {k[1]: v["requests"] for k, v in ref.weekly().items()}
    assert weeks == {MON - WEEK: 2, MON: 1}
    hours = {k[1]: v["requests"] for k, v in ref.hourly().items()}
    assert hours == {MON - HOUR: 2, MON: 1}


# ------------------------------------------------------------------ stream checks


@pytest.mark.usefixtures("both_implementations")
def test_future_tolerance() -> None:
    ref = run(enc(ev(event_id="ok", ts=NOW + 600_000)), enc(ev(event_id="no", ts=NOW + 600_001)))
    assert [e["event_id"] for e in ref.events()] == ["ok"]
    assert reasons(ref) == ["future_timestamp"]
    # A future event does not move the watermark.
    assert ref.watermarks == {0: NOW + 600_000}


@pytest.mark.usefixtures("both_implementations")
def test_duplicates_within_and_beyond_horizon() -> None:
    ref = make()
    t = MON + DAY
    run(enc(ev(event_id="d", ts=t)), ref=ref)
    run(enc(ev(event_id="d", ts=t + 5, input_tokens=999)), ref=ref)  # same id, other content: still a duplicate
    assert ref.duplicates == 1
    run(enc(ev(event_id="x", ts=t + DAY)), ref=ref)  # watermark = t + DAY: "d" is exactly at the horizon
    run(enc(ev(event_id="d", ts=t)), ref=ref)
    assert ref.duplicates == 2
    run(enc(ev(event_id="y", ts=t + DAY + 1)), ref=ref)  # now "d" (ts=t) is below wm - horizon: forgotten
    run(enc(ev(event_id="d", ts=t + 2)), ref=ref)
    assert ref.duplicates == 2
    assert [e["event_id"] for e in ref.events()] == ["d", "x", "y", "d"]
    assert ref.rejected() == []
    # Only input_tokens of the accepted copies count.
    assert sum(c["input_tokens"] for c in ref.weekly().values()) == 400


@pytest.mark.usefixtures("both_implementations")
def test_duplicates_are_per_partition_and_within_a_batch() -> None:
    ref = make()
    v = enc(ev())
    ref.process([0, 0, 1], [0, 1, 0], [v, v, v], NOW)
    assert ref.duplicates == 1
    assert [(e["src_partition"], e["src_offset"]) for e in ref.events()] == [(0, 0), (1, 0)]


@pytest.mark.usefixtures("both_implementations")
def test_duplicate_checked_before_late_and_after_future() -> None:
    ref = make()
    run(
        enc(ev(event_id="a", ts=MON + WEEK - 1)),
        enc(ev(event_id="b", ts=MON + WEEK + HOUR)),
        ref=ref,
    )
    run(enc(ev(event_id="a", ts=MON + 5)), ref=ref)  # its week is closed, but it is a duplicate first
    assert ref.duplicates == 1 and ref.rejected() == []
    run(enc(ev(event_id="a", ts=NOW + DAY)), ref=ref)  # future beats duplicate
    assert reasons(ref) == ["future_timestamp"] and ref.duplicates == 1


@pytest.mark.usefixtures("both_implementations")
def test_rejected_copy_is_not_remembered() -> None:
    ref = run(enc(ev(event_id="a", user="")), enc(ev(event_id="a")))
    assert len(ref.events()) == 1 and ref.duplicates == 0


@pytest.mark.usefixtures("both_implementations")
def test_lateness_with_grace() -> None:
    ref = make()
    run(enc(ev(event_id="w1", ts=MON + DAY)), ref=ref)
    run(enc(ev(event_id="n1", ts=MON + WEEK + HOUR - 1)), ref=ref)  # wm just before week 1's end + grace
    run(enc(ev(event_id="late-ok", ts=MON + 2 * DAY)), ref=ref)  # week still open: accepted, hour restated
    run(enc(ev(event_id="n2", ts=MON + WEEK + HOUR)), ref=ref)  # wm == end + grace: week closed
    run(enc(ev(event_id="late", ts=MON + WEEK - 1)), ref=ref)
    assert [e["event_id"] for e in ref.events()] == ["w1", "n1", "late-ok", "n2"]
    assert ref.rejected() == [(0, 0, 0, "late", enc(ev(event_id="late", ts=MON + WEEK - 1)))]
    # A late event does not move the watermark; another partition has its own.
    assert ref.watermarks == {0: MON + WEEK + HOUR}
    run(enc(ev(event_id="late", ts=MON + WEEK - 1)), partition=1, ref=ref)
    assert ref.events()[-1]["src_partition"] == 1


def test_week_closing_and_final_rows() -> None:
    ref = make()
    b1 = ref.process(
        [0, 0],
        [0, 1],
        [
            enc(ev(event_id="a", ts=MON + DAY, status="error")),
            enc(ev(event_id="b", ts=MON + 2 * DAY, user="bob")),
        ],
        NOW,
    )
    assert set(b1.weekly) == {(0, MON, "ann"), (0, MON, "bob")}
    assert not any(r["final"] for r in b1.weekly.values())
    assert set(b1.waste) == {(0, MON, "ann", "failed_request")}
    # A batch on another partition closes nothing on partition 0.
    b2 = ref.process([1], [0], [enc(ev(event_id="c", ts=MON + 3 * WEEK))], NOW)
    assert set(b2.weekly) == {(1, MON + 3 * WEEK, "ann")}
    # Advancing partition 0's watermark past the end + grace closes both cells of week 1, once.
    b3 = ref.process([0], [2], [enc(ev(event_id="d", ts=MON + WEEK + HOUR, user="cy"))], NOW)
    assert set(b3.weekly) == {(0, MON, "ann"), (0, MON, "bob"), (0, MON + WEEK, "cy")}
    assert b3.weekly[(0, MON, "ann")]["final"] and b3.weekly[(0, MON, "ann")]["requests"] == 1
    assert not b3.weekly[(0, MON + WEEK, "cy")]["final"]
    assert b3.hourly == {(0, MON + WEEK + HOUR, "cy", "gpt-4o"): b3.hourly[(0, MON + WEEK + HOUR, "cy", "gpt-4o")]}
    b4 = ref.process([0], [3], [b"garbage"], NOW)
    assert b4.weekly == {}
    # The final state keeps the closed cells.
    w = ref.weekly()
    assert w[(0, MON, "ann")]["final"] and w[(0, MON, "bob")]["final"] and not w[(0, MON + WEEK, "cy")]["final"]
    assert ref.waste()[(0, MON, "ann", "failed_request")]["final"]
    assert (0, MON + DAY, "ann", "gpt-4o") in ref.hourly()


def test_event_accepted_and_closed_in_one_batch() -> None:
    ref = make()
    b = ref.process(
        [0, 0],
        [0, 1],
        [enc(ev(event_id="a", ts=MON)), enc(ev(event_id="b", ts=MON + 2 * WEEK))],
        NOW,
    )
    assert b.weekly[(0, MON, "ann")]["final"] and b.weekly[(0, MON, "ann")]["requests"] == 1


def test_hourly_restated_cumulatively() -> None:
    ref = make()
    ref.process([0], [0], [enc(ev(event_id="a", ts=MON + 10))], NOW)
    b = ref.process([0], [1], [enc(ev(event_id="b", ts=MON + 20, input_tokens=5, output_tokens=1))], NOW)
    row = b.hourly[(0, MON, "ann", "gpt-4o")]
    assert (row["requests"], row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (
        2,
        105,
        11,
        116,
    )


# ------------------------------------------------------------------ windows: team, waste, cost


@pytest.mark.usefixtures("both_implementations")
def test_team_rule() -> None:
    ref = run(
        enc(ev(event_id="1", ts=MON + 5, team="red")),
        enc(ev(event_id="2", ts=MON + 9, team="")),  # empty team never wins
        enc(ev(event_id="3", ts=MON + 1, team="zzz")),  # older
        enc(ev(event_id="4", ts=MON + 5, team="blue")),  # same ts: greater team name wins -> red stays
        enc(ev(event_id="5", ts=MON + 7)),  # no team
        enc(ev(event_id="6", ts=MON + 3, user="bob")),
    )
    w = ref.weekly()
    assert (w[(0, MON, "ann")]["team"], w[(0, MON, "ann")]["team_ts"]) == ("red", MON + 5)
    assert (w[(0, MON, "bob")]["team"], w[(0, MON, "bob")]["team_ts"]) == ("", 0)
    ref2 = run(
        enc(ev(event_id="1", ts=MON + 5, team="red")),
        enc(ev(event_id="2", ts=MON + 5, team="yellow")),
    )
    assert ref2.weekly()[(0, MON, "ann")]["team"] == "yellow"


def test_waste_failed_requests() -> None:
    ref = run(
        enc(ev(event_id="a", status="error")),
        enc(ev(event_id="b", status="error", input_tokens=0, output_tokens=0)),
        enc(ev(event_id="c")),
    )
    ea, eb, ec = ref.events()
    assert (ea["wasted_tokens"], ea["waste_reason"]) == (110, "failed_request")
    assert (eb["wasted_tokens"], eb["waste_reason"]) == (0, "failed_request")
    assert (ec["wasted_tokens"], ec["waste_reason"]) == (0, "")
    # Waste cells only for events with wasted_tokens > 0.
    assert ref.waste() == {(0, MON, "ann", "failed_request"): {"requests": 1, "wasted_tokens": 110, "final": False}}
    assert ref.weekly()[(0, MON, "ann")]["wasted_tokens"] == 110
    assert ref.hourly()[(0, MON + HOUR, "ann", "gpt-4o")]["wasted_tokens"] == 110


@pytest.mark.usefixtures("both_implementations")
def test_cost_longest_prefix() -> None:
    ref = run(
        enc(
            ev(
                event_id="a",
                model="gpt-4o-2024-08-06",
                input_tokens=1_000_000,
                cached_input_tokens=400_000,
                output_tokens=100_000,
            )
        ),
        enc(ev(event_id="b", model="gpt-4o-mini", input_tokens=1_000_000, output_tokens=1_000_000)),
        enc(ev(event_id="c", model="gpt-3.5", input_tokens=500_000, output_tokens=0)),
        enc(ev(event_id="d", model="claude", input_tokens=500_000, output_tokens=9)),
        enc(ev(event_id="e", model="GPT-4o", input_tokens=500_000, output_tokens=9)),  # case-sensitive
    )
    cost = {e["event_id"]: e["cost_usd"] for e in ref.events()}
    assert cost["a"] == pytest.approx(0.6 * 2.5 + 0.4 * 1.25 + 0.1 * 10.0)
    assert cost["b"] == pytest.approx(0.15 + 0.6)
    assert cost["c"] == pytest.approx(0.5)
    assert cost["d"] == 0.0 and cost["e"] == 0.0
    hourly = ref.hourly()
    assert hourly[(0, MON + HOUR, "ann", "gpt-4o-2024-08-06")]["cost_usd"] == pytest.approx(cost["a"])
    assert ref.weekly()[(0, MON, "ann")]["cost_usd"] == pytest.approx(sum(cost.values()))


def test_output_columns() -> None:
    (e,) = run(
        enc(
            ev(
                team="t",
                app="a",
                provider="p",
                session_id="s",
                status="error",
                latency_ms=5,
                finish_reason="stop",
                reasoning_tokens=3,
                cached_input_tokens=4,
            )
        )
    ).events()
    assert list(e) == [
        "event_id",
        "ts",
        "user",
        "team",
        "app",
        "model",
        "provider",
        "session_id",
        "input_tokens",
        "output_tokens",
        "cached_input_tokens",
        "reasoning_tokens",
        "total_tokens",
        "tokens_estimated",
        "status",
        "finish_reason",
        "latency_ms",
        "cost_usd",
        "wasted_tokens",
        "waste_reason",
        "src_partition",
        "src_offset",
    ]
    assert (e["team"], e["app"], e["provider"], e["session_id"], e["latency_ms"]) == (
        "t",
        "a",
        "p",
        "s",
        5,
    )
    h = next(iter(run(enc(ev())).hourly().values()))
    assert set(h) == {
        "requests",
        "input_tokens",
        "output_tokens",
        "cached_input_tokens",
        "total_tokens",
        "wasted_tokens",
        "cost_usd",
    }


@pytest.mark.usefixtures("both_implementations")
def test_column_lengths_must_match() -> None:
    with pytest.raises(ValueError):
        make().process([0], [0, 1], [b"{}"], NOW)
