"""The waste rules and the value ranking against gamers who adapt (issue 17).

``benchmarks/waste_quality.py`` on the red-team traffic (``tokenlord simulate
--red-team``): the gamers run adaptive profiles that work around the default
waste thresholds (reworded re-asks, loops rotating session / app / model,
varied or noised filler, re-sends paced outside the windows, compute theater,
loops diluted with other requests), and about 30 % of the honest users do
honest work that resembles gaming (batch jobs on one template, edit-and-retry,
long structured output, "continue" prompts, heavy agent use). Each event's
``_label`` names its profile; outcome events come with the traffic (honest
sessions end in one at realistic rates, gamers' rarely).

The events go through the Rust core exactly as in waste_quality.py (the
worker's ``Core.process``, keyed by user over three partitions) as text, text
+ counts, fingerprint + counts and counts only; the value ranking is computed
from the core's verdicts and the outcomes with the rule of ``value_weekly``
(docs/semantics.md, "Value ranking": value_tokens = min(effective tokens
attributed to the user's own outcomes, ⌊credit * 500,000⌋)). Scored per
profile, over every seed and week:

- **tokens flagged**: the share of the profile's tokens judged wasted (for a
  gamer profile its recall; for honest users and look-alikes the false
  flags: goals ≤ 1 % honest, ≤ 5 % each look-alike);
- per gamer profile, the user-weeks of its users in the **raw top 10**, in the
  **effective top 10**, of those how many are **not earned** by the user's
  honest work alone (a user whose honest events alone rank them in the top 10
  rightly stays; goal: none for gaming a rule can see), and in the **value
  top 10**, of those how many not earned (the value ranking of the user's
  honest events and outcomes alone would not place them there; goal: none).
  Gamers do honest work too: its outcomes can rank them by value.

A gamer-week counts for the profile with most of its gaming tokens (raw and
value columns), and for the profile with most of its gaming tokens left
unflagged in the effective column (what kept the user there).

The fingerprint events must get exactly the verdicts of the text + counts
events (the run aborts otherwise).

    .venv/bin/python benchmarks/red_team.py [--seeds 1 2 3] [--users 200] [--days 14]

Writes ``benchmarks/results/red_team.json``.
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from _common import machine_info, table, write_json
from tokenlord.simulate import (
    ADAPTIVE_PROFILES,
    HONEST,
    LOOKALIKE_PROFILES,
    LOOP_DILUTION,
    PATTERNS,
    RULE_BLIND,
    fingerprinted,
    generate,
    is_gamer_label,
    is_outcome,
)
from tokenlord.store.schema import VALUE_TOKENS_PER_CREDIT
from tokenlord.time_utils import week_start_ms as week_of
from waste_quality import DAY_MS, SECRET, START_MS, TOP, arguments, run_core, user_of

MODES = ("text", "fingerprint + counts", "counts only")
GOALS = {"honest flagged": 0.01, "look-alike flagged": 0.05}


def streams_of(users: int, days: float, gamers: int, seed: int) -> dict[str, Callable[[], list[dict[str, Any]]]]:
    """``waste_quality.streams`` of the red team with their outcome events, each made when asked
    (one text stream in memory at a time). A stream's outcomes name its own sessions and events:
    the counts-only stream draws other ids than the text one."""
    counted = generate(users, days, gamers, seed, START_MS, 1.0, fingerprints=True, fingerprint_secret=b"-",
                       red_team=True)  # fmt: skip
    counts = {ev["event_id"]: {k: v for k, v in ev.items() if k.endswith("_tokens")} for ev in counted}

    def text() -> Iterator[dict[str, Any]]:
        return generate(users, days, gamers, seed, START_MS, 1.0, outcomes=True, red_team=True)

    def with_counts() -> Iterator[dict[str, Any]]:
        return (ev if is_outcome(ev) else {**ev, **counts[ev["event_id"]]} for ev in text())

    def printed() -> Iterator[dict[str, Any]]:
        evs = list(with_counts())
        usage = fingerprinted((ev for ev in evs if not is_outcome(ev)), SECRET.encode())
        return iter([*usage, *(ev for ev in evs if is_outcome(ev))])

    return {
        "text": lambda: list(text()),
        "text + counts": lambda: list(with_counts()),
        "fingerprint + counts": lambda: list(printed()),
        "counts only": lambda: list(generate(users, days, gamers, seed, START_MS, 0.0, outcomes=True, red_team=True)),
    }


def top(scores: dict[str, int], n: int = TOP) -> set[str]:
    return {u for u, v in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:n] if v > 0}


def value_tokens(
    cols: dict[str, list[Any]], outcomes: Iterable[dict[str, Any]], per_credit: int = VALUE_TOKENS_PER_CREDIT
) -> dict[int, dict[str, tuple[int, float]]]:
    """(value_tokens, credit) per week and user: the rule of ``value_weekly``."""
    counted = [o for o in outcomes if o["outcome"] != "rejected"]
    by_event: dict[tuple[str, str], list[int]] = defaultdict(list)
    by_session: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, o in enumerate(counted):
        if o.get("event_id"):
            by_event[(o["user"], o["event_id"])].append(i)
        if o.get("session_id"):
            by_session[(o["user"], o["session_id"])].append(i)
    effective: dict[tuple[int, str], int] = defaultdict(int)
    crediting: dict[tuple[int, str], set[int]] = defaultdict(set)
    for eid, user, sid, ts, total, wasted in zip(
        cols["event_id"], cols["user"], cols["session_id"], cols["ts"], cols["total_tokens"], cols["wasted_tokens"],
        strict=True,
    ):  # fmt: skip
        by = by_event.get((user, eid), []) + (by_session.get((user, sid), []) if sid else [])
        if by:
            key = (week_of(ts), user)
            effective[key] += total - min(wasted, total)
            crediting[key].update(by)
    out: dict[int, dict[str, tuple[int, float]]] = defaultdict(dict)
    for (week, user), eff in effective.items():
        credit = sum(max(1.0 if counted[i].get("value") is None else counted[i]["value"], 0.0)
                     for i in crediting[(week, user)])  # fmt: skip
        out[week][user] = (min(eff, math.floor(credit * per_credit)), credit)
    return out


def value_top(ranks: dict[str, tuple[int, float]]) -> set[str]:
    ranked = sorted((kv for kv in ranks.items() if kv[1][0] > 0), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))
    return {u for u, _ in ranked[:TOP]}


def score(events: list[dict[str, Any]], cols: dict[str, list[Any]], outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    """Per profile: tokens and flagged tokens; per gamer profile: the places of the user-weeks it drives.

    A gamer may run two profiles: a user-week counts for the profile with most of the week's
    gaming tokens in the raw and value rankings, and in the effective ranking for the profile
    with most of the week's gaming tokens left unflagged (what kept the user there)."""
    label = {ev["event_id"]: ev["_label"] for ev in events}
    lookalike_users: dict[str, str] = {}
    for ev in events:
        if ev["_label"] in LOOKALIKE_PROFILES:
            lookalike_users[ev["user"]] = ev["_label"]
    total: Counter[str] = Counter()
    flagged: Counter[str] = Counter()
    raw: dict[int, Counter[str]] = defaultdict(Counter)
    eff: dict[int, Counter[str]] = defaultdict(Counter)
    truth: dict[int, Counter[str]] = defaultdict(Counter)
    gaming: dict[tuple[int, str], Counter[str]] = defaultdict(Counter)  # (week, user) -> profile -> tokens
    left: dict[tuple[int, str], Counter[str]] = defaultdict(Counter)  # ... unflagged tokens
    for eid, user, ts, tot, wasted in zip(
        cols["event_id"], cols["user"], cols["ts"], cols["total_tokens"], cols["wasted_tokens"], strict=True
    ):
        lab = label[eid]
        total[lab] += tot
        flagged[lab] += wasted
        week = week_of(ts)
        raw[week][user] += tot
        eff[week][user] += tot - wasted
        if is_gamer_label(lab):
            gaming[(week, user)][lab] += tot
            left[(week, user)][lab] += tot - wasted
        else:
            truth[week][user] += tot
    value = value_tokens(cols, outcomes)
    # The value ranking of honest work alone: a gamer whose honest sessions' outcomes
    # rank them in the value top 10 anyway has earned that place.
    honest_rows = [i for i, eid in enumerate(cols["event_id"]) if not is_gamer_label(label[eid])]
    value_true = value_tokens({k: [v[i] for i in honest_rows] for k, v in cols.items()}, outcomes)
    places: dict[str, Counter[str]] = defaultdict(Counter)
    gamers: set[str] = set()
    for week in raw:
        top_raw, top_eff, top_true = top(raw[week]), top(eff[week]), top(truth[week])
        top_value, true_value = value_top(value.get(week, {})), value_top(value_true.get(week, {}))
        for (wk, user), by_profile in gaming.items():
            if wk != week:
                continue
            gamers.add(user)
            main = by_profile.most_common(1)[0][0]
            rest = left[(wk, user)]
            kept = rest.most_common(1)[0][0] if rest and rest.most_common(1)[0][1] > 0 else main
            places[main]["user_weeks"] += 1
            places[main]["raw_top"] += user in top_raw
            places[kept]["effective_top"] += user in top_eff
            places[kept]["effective_top_unearned"] += user in top_eff and user not in top_true
            places[main]["value_top"] += user in top_value
            places[main]["value_top_unearned"] += user in top_value and user not in true_value
        week_gamers = {u for (wk, u) in gaming if wk == week}
        for user in top_value - week_gamers:
            places[lookalike_users.get(user, HONEST)]["value_top"] += 1
    return {
        "tokens": dict(total),
        "flagged_tokens": dict(flagged),
        "places": {k: dict(v) for k, v in places.items()},
        "gamers": len(gamers),
    }


def merge(runs: list[dict[str, Any]]) -> dict[str, Any]:
    tokens: Counter[str] = Counter()
    flagged: Counter[str] = Counter()
    places: dict[str, Counter[str]] = defaultdict(Counter)
    for r in runs:
        tokens.update(r["tokens"])
        flagged.update(r["flagged_tokens"])
        for k, v in r["places"].items():
            places[k].update(v)
    return {"tokens": dict(tokens), "flagged_tokens": dict(flagged), "places": {k: dict(v) for k, v in places.items()}}


def rows_of(merged: dict[str, Any]) -> list[list[str]]:
    rows = []
    tokens, flagged, places = merged["tokens"], merged["flagged_tokens"], merged["places"]
    kinds = [("adaptive gamer", p) for p in (*ADAPTIVE_PROFILES, LOOP_DILUTION)]
    kinds += [("blatant gamer", p) for p in PATTERNS]
    kinds += [("look-alike", p) for p in LOOKALIKE_PROFILES] + [("honest", HONEST)]
    for kind, p in kinds:
        if not tokens.get(p):
            continue
        share = flagged.get(p, 0) / tokens[p]
        pl = places.get(p, {})
        if kind.endswith("gamer"):
            name = f"{p} (no rule sees it)" if p in RULE_BLIND else p
            rows.append([kind, name, f"{100 * share:.1f} %", str(pl.get("raw_top", 0)),
                         f"{pl.get('effective_top', 0)} ({pl.get('effective_top_unearned', 0)})",
                         f"{pl.get('value_top', 0)} ({pl.get('value_top_unearned', 0)})"])  # fmt: skip
        else:
            goal = GOALS["honest flagged" if kind == "honest" else "look-alike flagged"]
            mark = "" if share <= goal else "  (over the goal)"
            rows.append([kind, p, f"{100 * share:.2f} %{mark}", "", "", str(pl.get("value_top", 0))])
    return rows


def main() -> None:
    args = arguments(__doc__, gamers=14)
    now_ms = START_MS + int(args.days * DAY_MS) + 3_600_000
    per_mode: dict[str, list[dict[str, Any]]] = defaultdict(list)
    results: dict[str, Any] = {}
    for seed in args.seeds:
        verdicts: dict[str, list[Any]] = {}
        for mode, make in streams_of(args.users, args.days, args.gamers, seed).items():
            t0 = time.perf_counter()
            stream = make()
            events = [ev for ev in stream if not is_outcome(ev)]
            outcomes = [ev for ev in stream if is_outcome(ev)]
            del stream
            gen_secs = time.perf_counter() - t0
            t0 = time.perf_counter()
            cols = run_core(events, now_ms)
            secs = time.perf_counter() - t0
            if mode in ("text + counts", "fingerprint + counts"):
                verdicts[mode] = list(zip(cols["event_id"], cols["wasted_tokens"], cols["waste_reason"], strict=True))
            if mode in MODES:
                for ev in events:  # the canonical user name (OTel aliases) as the core reports it
                    ev["user"] = user_of(ev)
                r = score(events, cols, outcomes)
                r["events"], r["outcomes"], r["seconds"] = len(events), len(outcomes), secs
                results[f"{mode} / seed {seed}"] = r
                per_mode[mode].append(r)
            print(f"{mode}, seed {seed}: {len(events):,} events and {len(outcomes):,} outcomes generated in "
                  f"{gen_secs:.0f} s, judged in {secs:.1f} s", file=sys.stderr)  # fmt: skip
            del events, outcomes, cols
        if verdicts["fingerprint + counts"] != verdicts["text + counts"]:
            raise SystemExit(f"seed {seed}: fingerprint verdicts differ from the text + counts ones — benchmark void")
    head = ["kind", "profile", "tokens flagged", "user-weeks in raw top 10",
            "in effective top 10 (not earned)", "in value top 10 (not earned)"]  # fmt: skip
    totals = {}
    for mode in MODES:
        merged = merge(per_mode[mode])
        totals[mode] = merged
        print(f"\n{mode} — seeds {' '.join(map(str, args.seeds))}, {args.users} users, {args.days:g} days")
        print(table(head, rows_of(merged), left=3))
    path = write_json(
        "red_team.json",
        {
            "benchmark": "red_team",
            "machine": machine_info(),
            "parameters": {"seeds": args.seeds, "users": args.users, "gamers": args.gamers, "days": args.days,
                           "start_ms": START_MS, "top": TOP, "value_tokens_per_credit": VALUE_TOKENS_PER_CREDIT},
            "goals": GOALS,
            "results": results,
            "totals": totals,
            "fingerprint_verdicts_equal_text_counts": True,
        },
    )  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
