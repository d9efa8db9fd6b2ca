"""The native core through its Python binding: shapes, errors, API."""

from __future__ import annotations

import orjson
import pytest
import tokenlord
from tokenlord import _core

MON = 1_704_067_200_000  # 2024-01-01T00:00:00Z, a Monday
NOW = MON + 86_400_000


def ev(i: int, **kw: object) -> bytes:
    base = {
        "event_id": f"e{i}",
        "ts": MON + i,
        "user": f"u{i % 3}",
        "model": "gpt-4o",
        "input_tokens": 10,
        "output_tokens": 5,
    }
    base.update(kw)
    return orjson.dumps(base)


def test_batch_is_columnar_and_complete() -> None:
    core = _core.Core()
    values = [ev(1), ev(2, team="red"), ev(1), b"nope", orjson.dumps([orjson.loads(ev(3)), 7])]
    out = core.process([0, 0, 0, 1, 1], [10, 11, 12, 5, 6], values, NOW)
    assert out.accepted == 3 and out.duplicates == 1
    assert set(out.events) >= {"event_id", "ts", "total_tokens", "src_partition", "src_offset", "cost_usd"}
    assert out.events["event_id"] == ["e1", "e2", "e3"]
    assert out.events["src_offset"] == [10, 11, 6]
    assert out.events["total_tokens"] == [15, 15, 15]
    assert out.rejected["reason"] == ["invalid_json", "not_an_object"]
    assert out.rejected["raw"] == [b"nope", b"7"]
    assert out.rejected["idx"] == [0, 1]
    assert sorted(out.watermarks) == [0, 1]
    weekly = dict(zip(out.weekly["user"], out.weekly["total_tokens"], strict=True))
    assert weekly == {"u1": 15, "u2": 15, "u0": 15}
    assert set(out.weekly["version"]) == {out.version}
    assert "Batch(accepted=3" in repr(out)


def test_no_text_is_kept() -> None:
    core = _core.Core()
    out = core.process(
        [0], [0], [ev(1, prompt="secret prompt", output="secret answer", input_tokens=None, output_tokens=None)], NOW
    )
    flat = repr({k: v for k, v in out.events.items()})
    assert "secret" not in flat
    assert out.events["input_tokens"] == [2] and out.events["output_tokens"] == [2]


def test_config_and_input_errors_are_typed() -> None:
    with pytest.raises(_core.ConfigError, match="unknown encoding"):
        _core.Core(model_encodings=[("gpt", "nope")])
    with pytest.raises(_core.ConfigError, match="price"):
        _core.Core(prices={"m": (float("nan"), 0.0, 0.0)})
    with pytest.raises(_core.InputError, match="differ in length"):
        _core.Core().process([0], [0, 1], [b"{}"], NOW)
    assert issubclass(_core.ConfigError, _core.TokenlordError)
    assert issubclass(tokenlord.ConfigError, _core.TokenlordError)


def test_public_token_api() -> None:
    assert tokenlord.encoding_for("gpt-4o-mini") == "o200k_base"
    assert tokenlord.encoding_for("gpt-4-turbo") == "cl100k_base"
    assert tokenlord.count_tokens(["hello world", "", "<|endoftext|>"], "gpt-4") == [2, 0, 7]
    assert {"o200k_base", "cl100k_base"} <= set(_core.encodings())  # + any loaded from files


def test_restore_then_dedupe() -> None:
    core = _core.Core()
    cols = {
        "event_id": ["e1"],
        "ts": [MON + 1],
        "user": ["u1"],
        "team": ["t"],
        "model": ["gpt-4o"],
        "input_tokens": [10],
        "output_tokens": [5],
        "cached_input_tokens": [0],
        "total_tokens": [15],
        "wasted_tokens": [0],
        "waste_reason": [""],
        "cost_usd": [0.0],
        "fp_prompt": [0],
        "fp_prompt_sim": [0],
        "fp_output_sim": [0],
        "fp_flags": [0],
        "fp_prompt_mh": [""],
        "fp_output_mh": [""],
    }
    restored = core.restore(4, MON + 1, 1000, cols)
    assert restored.weekly["total_tokens"] == [15] and restored.version > 1000
    out = core.process([4, 4], [0, 1], [ev(1), ev(2)], NOW)
    assert out.duplicates == 1 and out.accepted == 1
    assert core.partitions() == [4]
    core.drop_partition(4)
    assert core.partitions() == []
    with pytest.raises(_core.InputError, match="missing"):
        core.restore(1, None, 0, {"event_id": []})


def test_a_message_the_core_fails_on_is_one_poison_rejection_and_the_batch_goes_on() -> None:
    core = _core.Core(fault_poison=b"POISON")
    bad = b"\n".join([ev(2), orjson.dumps({"note": "POISON"})])
    out = core.process([0, 0, 0], [0, 1, 2], [ev(1), bad, ev(3)], NOW)
    assert out.events["event_id"] == ["e1", "e3"]
    assert (out.rejected["reason"], out.rejected["raw"], out.rejected["src_offset"]) == (["poison"], [bad], [1])
    # The next batch on the same core works as before.
    assert core.process([0], [3], [ev(4)], NOW).accepted == 1


def test_fan_out_is_bounded_by_the_settings() -> None:
    core = _core.Core(max_elements_per_message=5, max_rejections_per_message=2, max_rejections_per_batch=3)
    flood = b"\n".join([ev(1)] + [b"1"] * 50)
    out = core.process([0, 0], [0, 1], [flood, flood], NOW)
    assert out.accepted == 1
    assert out.rejected["reason"] == ["not_an_object", "not_an_object", "too_many_rejections", "too_many_rejections"]
    # The second message's first line is a duplicate; the rest of it is one rejection.
    assert out.rejected["idx"] == [1, 2, 3, 1] and out.duplicates == 1
    assert out.rejected["raw"][3] == flood[len(ev(1)) + 1 :]
    assert sum(map(len, out.rejected["raw"])) <= 2 * len(flood)
    with pytest.raises(_core.ConfigError):
        _core.Core(max_rejections_per_batch=0)
