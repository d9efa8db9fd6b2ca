"""End to end on real Kafka + chDB: the same simulated traffic sent by a
gateway that ships text and by one that ships only counts + fingerprints
gives the same waste and the same leaderboard; and no prompt or output text
is readable in any table or view afterwards, rejected text events included."""

from __future__ import annotations

import copy
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from e2e import dump_views, produce, run_worker, user_of, worker_env
from tokenlord import _core, simulate
from tokenlord.settings import Settings
from tokenlord.time_utils import DAY_MS as DAY

pytestmark = pytest.mark.integration

SECRET = "e2e-organisation-secret"
MARK = "CONFIDENTIAL-PROMPT-7d1e"


def with_counts(events: list[dict[str, Any]]) -> None:
    """Text events get the counts their gateway would have (the core's own count of the text)."""
    by_model: dict[str, list[tuple[dict[str, Any], str, str]]] = defaultdict(list)
    for ev in events:
        model = ev.get("model") or ev.get("gen_ai.request.model")
        for side, field in (("prompt", "input_tokens"), ("output", "output_tokens")):
            if side in ev:
                by_model[model].append((ev, side, field))
        if "prompt" in ev or "output" in ev:
            ev.setdefault("input_tokens", 0)
            ev.setdefault("output_tokens", 0)
    for model, items in by_model.items():
        enc = _core.encoding_for(model)[0]
        counts = _core.count_tokens([ev[s] for ev, s, _ in items], enc)
        for (ev, _side, field), n in zip(items, counts, strict=True):
            ev[field] = n


def rejected_text_events(now_ms: int) -> list[dict[str, Any]]:
    """Events carrying text that the worker rejects (each for another reason)."""
    base = {"ts": now_ms - DAY, "user": "mallory", "model": "gpt-4o", "input_tokens": 10,
            "prompt": f"{MARK} the launch plan for project nightingale", "output": f"{MARK} ship it"}  # fmt: skip
    return [
        {**base, "event_id": "r-future", "ts": now_ms + 7 * DAY},
        {**base, "event_id": "r-user", "user": ""},
        {**base, "event_id": "r-tokens", "input_tokens": -5},
        {**base, "event_id": "r-model", "model": 7},
        {**base, "event_id": "r-fp", "fingerprint": {"v": 99}},
    ]


def run(brokers: str, topic: str, tmp: Path, events: list[dict[str, Any]]) -> dict[str, Any]:
    env = worker_env(brokers, topic, tmp, TOKENLORD_FINGERPRINT_KEY=SECRET)
    # Keyed by user, as gateways do: a user's waste is judged on one partition.
    produce(brokers, topic, [(user_of(e).encode(), orjson.dumps(e)) for e in events])
    proc = run_worker(env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    s = Settings.from_env(environ=env)
    return {"views": dump_views(s.clickhouse_url, s.database),
            "all": dump_views(s.clickhouse_url, s.database, everything=True)}  # fmt: skip


def test_fingerprint_gateway_gets_the_text_gateways_leaderboard(kafka_brokers: str, topic: Any, tmp_path: Path) -> None:
    now_ms = int(time.time() * 1000)
    traffic = [e for e in simulate.generate(users=30, days=2, gamers=6, seed=14, text_share=0.6)]
    with_counts(traffic)
    text_events = traffic + rejected_text_events(now_ms)
    print_events = list(simulate.fingerprinted(copy.deepcopy(text_events[:-1]), SECRET.encode()))
    # The last one's invalid fingerprint stays (text or not, it is rejected).
    print_events.append({k: v for k, v in text_events[-1].items() if k not in ("prompt", "output")})
    assert sum("fingerprint" in e for e in print_events) > 1000
    assert not any("prompt" in e or "output" in e for e in print_events)

    text = run(kafka_brokers, topic("fp-text"), tmp_path / "text", text_events)
    prints = run(kafka_brokers, topic("fp-prints"), tmp_path / "prints", print_events)

    for view in ("waste_weekly", "leaderboard_weekly", "usage_hourly", "value_weekly"):
        assert prints["views"][view] == text["views"][view], view
    verdicts = {k: [(e["event_id"], e["wasted_tokens"], e["waste_reason"]) for e in r["views"]["events"]]
                for k, r in (("text", text), ("prints", prints))}  # fmt: skip
    assert verdicts["prints"] == verdicts["text"]
    reasons = Counter(r for _, w, r in verdicts["text"] if w)
    assert len(reasons) >= 3, f"the traffic exercises several waste rules: {reasons}"
    assert sorted(r["reason"] for r in text["views"]["rejected"]) == sorted(
        r["reason"] for r in prints["views"]["rejected"]
    )
    assert len(text["views"]["rejected"]) == 5

    # No text at rest: neither the marker of the rejected events nor any
    # stretch of an accepted event's prompt or output, in any table or view.
    stored = orjson.dumps(text["all"], default=str).decode()
    assert "_rejected" in text["all"] and "_events" in text["all"], sorted(text["all"])
    assert MARK not in stored and "nightingale" not in stored
    for ev in traffic[::50]:
        for side in ("prompt", "output"):
            t = ev.get(side, "")
            for i in range(0, max(0, len(t) - 40), max(1, len(t) // 4)):
                assert t[i : i + 40] not in stored, (side, t[i : i + 40])
