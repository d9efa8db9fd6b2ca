"""End to end on real Kafka + chDB: the red team (``tokenlord simulate --red-team``)
through a worker, from gateways that send counts + fingerprints (the recommended,
text-free path), with the outcome events on their topic. Checks the goals of the
red-team benchmark (benchmarks/red_team.py) on one seed, from what ClickHouse holds:

- honest users: at most 1 % of their tokens judged wasted; each look-alike at most 5 %;
- no gamer in any week's value top 10 but by their honest work: gamers do honest
  work too, and its outcomes may rank them; their value tokens must be covered by
  the effective tokens of their honest requests that led to an outcome;
- no gamer in an effective top 10 because of rule-detectable gaming: a gamer there
  either ranks there by their honest work alone, or stays there by gaming no rule can
  see (``RULE_BLIND``: compute theater — long, genuinely different outputs — and the
  distinct junk requests diluting a loop; the value ranking does see them).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from e2e import dump_views, produce, run_worker, user_of, worker_env
from tokenlord import simulate
from tokenlord.settings import Settings
from tokenlord.simulate.profiles import LOOKALIKE_PROFILES, RULE_BLIND
from tokenlord.time_utils import ms_to_datetime, week_start_ms

pytestmark = pytest.mark.integration

SECRET = "red-team-organisation-secret"
TOP = 10


def week_of(ts_ms: int) -> str:
    """The Monday (UTC) of ``ts_ms``, as the views write ``week_start``."""
    return ms_to_datetime(week_start_ms(ts_ms)).date().isoformat()


def top(scores: dict[str, int]) -> set[str]:
    return {u for u, v in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP] if v > 0}


def test_red_team_goals_hold_end_to_end(kafka_brokers: str, topic: Any, tmp_path: Path) -> None:
    # One whole week (last week, Monday to Monday), 100 users of whom 14 gamers.
    today = dt.datetime.now(dt.UTC).date()
    monday = today - dt.timedelta(days=today.weekday() + 7)
    start_ms = int(dt.datetime(monday.year, monday.month, monday.day, tzinfo=dt.UTC).timestamp() * 1000)
    stream = list(
        simulate.generate(users=100, days=7, gamers=14, seed=5, start_ms=start_ms, text_share=1.0, outcomes=True,
                          fingerprints=True, fingerprint_secret=SECRET.encode(), red_team=True)
    )  # fmt: skip
    outcomes = [e for e in stream if simulate.is_outcome(e)]
    events = [e for e in stream if not simulate.is_outcome(e)]
    assert not any("prompt" in e or "output" in e for e in events), "the gateways send no text"
    label = {e["event_id"]: e["_label"] for e in events}
    assert {*simulate.ADAPTIVE_PROFILES, *LOOKALIKE_PROFILES} <= set(label.values())

    events_topic = topic("red-team")
    outcomes_topic = topic("red-team-outcomes")
    produce(kafka_brokers, events_topic, [(user_of(e).encode(), orjson.dumps(e)) for e in events])
    produce(kafka_brokers, outcomes_topic, [(o["user"].encode(), orjson.dumps(o)) for o in outcomes])
    env = worker_env(kafka_brokers, events_topic, tmp_path / "ch", TOKENLORD_FINGERPRINT_KEY=SECRET,
                     TOKENLORD_OUTCOMES_TOPIC=outcomes_topic)  # fmt: skip
    proc = run_worker(env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    s = Settings.from_env(environ=env)
    views = dump_views(s.clickhouse_url, s.database)
    stored = views["events"]
    assert len(stored) == len(events), "every event counted once"

    # The user's honest requests that led to one of the user's counted outcomes (by session or event).
    counted = [o for o in outcomes if o["outcome"] != "rejected"]
    by_session = {(o["user"], o["session_id"]) for o in counted if o.get("session_id")}
    by_event = {(o["user"], o["event_id"]) for o in counted if o.get("event_id")}
    credited: Counter[tuple[str, str]] = Counter()
    # Tokens flagged per profile.
    total: Counter[str] = Counter()
    flagged: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    honest_tokens: dict[str, Counter[str]] = defaultdict(Counter)
    left: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)  # unflagged gaming tokens per profile
    for e in stored:
        lab = label[e["event_id"]]
        total[lab] += e["total_tokens"]
        flagged[lab] += e["wasted_tokens"]
        reasons[e["waste_reason"]] += 1
        week = week_of(e["ts_ms"])
        if simulate.is_gamer_label(lab):
            left[(week, e["user"])][lab] += e["total_tokens"] - e["wasted_tokens"]
        else:
            honest_tokens[week][e["user"]] += e["total_tokens"]
            if (e["user"], e["session_id"]) in by_session or (e["user"], e["event_id"]) in by_event:
                credited[(week, e["user"])] += e["total_tokens"] - e["wasted_tokens"]
    share = {p: flagged[p] / total[p] for p in total}
    assert share["honest"] <= 0.01, share
    for p in LOOKALIKE_PROFILES:
        assert share[p] <= 0.05, (p, share)
    # The adaptive rules fire from fingerprints alone.
    assert reasons["near_duplicate"] > 0 and reasons["agent_loop"] > 0 and reasons["padded_prompt"] > 0, reasons
    for p in ("reworded_reask", "rotating_loop", "varied_filler", "noised_filler", "paced_resend"):
        assert share[p] >= 0.5, (p, share)

    # The rankings, as the views rank them.
    gamers_of_week: dict[str, set[str]] = defaultdict(set)
    for week, user in left:
        gamers_of_week[week].add(user)
    board = views["leaderboard_weekly"]
    value = views["value_weekly"]
    assert board and value
    for week in sorted(gamers_of_week):
        rows = [r for r in board if str(r["week_start"]) == week]
        effective_top = {r["user"] for r in rows if r["effective_rank"] <= TOP and r["effective_tokens"] > 0}
        value_top = {r["user"] for r in value if str(r["week_start"]) == week and r["value_rank"] <= TOP
                     and r["value_tokens"] > 0}  # fmt: skip
        for user in value_top & gamers_of_week[week]:
            row = next(r for r in value if str(r["week_start"]) == week and r["user"] == user)
            honest_value = credited[(week, user)]
            assert row["value_tokens"] <= honest_value, ("a gamer in the value top 10 by gaming", week, user, row)
        earned = top(dict(honest_tokens[week]))
        for user in (effective_top & gamers_of_week[week]) - earned:
            kept_by = left[(week, user)].most_common(1)[0][0]
            assert kept_by in RULE_BLIND, ("a rule-detectable gamer in the effective top 10", week, user,
                                                dict(left[(week, user)]))  # fmt: skip

    # Teams and the organisation (issue 19): a team's row is the sum of its members' rows, the
    # organisation's wasted dollars the sum over the stored events of each one's wasted share.
    members: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in board:
        members[(str(r["week_start"]), r["team"])].append(r)
    teams = views["team_weekly"]
    assert len(teams) == len(members) and len({r["team"] for r in teams}) > 3
    for t in teams:
        mine = members[(str(t["week_start"]), t["team"])]
        assert t["members"] == len(mine)
        for col in ("requests", "total_tokens", "wasted_tokens", "effective_tokens", "outcomes"):
            assert t[col] == sum(m[col] for m in mine), (t["team"], col)
        assert abs(t["cost_usd"] - sum(m["cost_usd"] for m in mine)) <= 1e-9 * max(1.0, t["cost_usd"])
    wasted_usd: Counter[str] = Counter()
    for e in stored:
        if e["total_tokens"]:
            wasted_usd[week_of(e["ts_ms"])] += (
                e["cost_usd"] * min(e["wasted_tokens"], e["total_tokens"]) / e["total_tokens"]
            )
    org = {str(r["week_start"]): r for r in views["org_weekly"]}
    assert set(org) == set(wasted_usd)
    for week, usd in wasted_usd.items():
        assert abs(org[week]["wasted_cost_usd"] - usd) <= 1e-9 * max(1.0, usd) and usd > 0, (week, org[week], usd)
        assert org[week]["total_tokens"] == sum(e["total_tokens"] for e in stored if week_of(e["ts_ms"]) == week)
