"""How well the waste signals separate token-maxxers from honest work.

The simulator (``tokenlord simulate``) labels every event with the behaviour
that produced it: ``honest`` (including occasional regenerations) or a gaming
pattern (agent loops, retry storms, resent prompts, padded prompts, long
repetitive outputs). This script runs several seeds through the Rust core —
the same ``Core.process`` the worker calls, messages keyed by user over three
partitions, in time order — with every event carrying its text (the worker
counts its tokens), with text and the provider's counts, with the provider's
counts and a fingerprint of the text instead of the text (a gateway that
sends no text: ``tokenlord.fingerprint``), and counts-only — and scores the
verdicts against the labels:

- wasted-token **precision** (tokens judged wasted that belong to gaming
  events) and **recall** (tokens of gaming events judged wasted);
- **honest tokens flagged**: the share of honest users' tokens judged wasted
  (goal ≤ 1 %);
- per week, the token-maxxers in the **raw top 10** and how many of them stay
  in the **effective top 10** (goal: none), and of those how many do **not**
  belong there by their honest work alone (ranking users by the tokens of
  their honest events: the ranking deserved). A maxxer who also does the most
  real work rightly stays.

Peer in the same run: ``errors only`` — the earlier rule (failed requests are
waste, nothing else) on the same events.

The fingerprint events must get exactly the verdicts of the text + counts
events (the run aborts otherwise). Also measured: the bytes per event on the
wire (the JSON of the message value) of each kind.

    .venv/bin/python benchmarks/waste_quality.py [--seeds 1 2 3] [--users 200] [--days 14]

Writes ``benchmarks/results/waste_quality.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import zlib
from collections import Counter, defaultdict
from typing import Any

import orjson
from _common import machine_info, table, write_json
from tokenlord import _core
from tokenlord.settings import Settings
from tokenlord.simulate import HONEST, fingerprinted, generate
from tokenlord.time_utils import DAY_MS

PARTITIONS = 3
START_MS = 1_767_571_200_000  # 2026-01-05T00:00:00Z, a Monday

BATCH = 5000
TOP = 10


def user_of(ev: dict[str, Any]) -> str:
    """The event's user under any of its names (canonical, ``user_id``, OTel ``enduser.id``)."""
    return str(ev.get("user") or ev.get("user_id") or ev.get("enduser.id"))


SECRET = "waste-quality-benchmark-secret"


def streams(users: int, days: float, gamers: int, seed: int) -> dict[str, list[dict[str, Any]]]:
    """The same simulated traffic as each kind of gateway sends it (same event ids)."""
    text = list(generate(users, days, gamers, seed, START_MS, 1.0))
    counted = list(generate(users, days, gamers, seed, START_MS, 1.0, fingerprints=True, fingerprint_secret=b"-"))
    counts = {ev["event_id"]: {k: v for k, v in ev.items() if k.endswith("_tokens")} for ev in counted}
    with_counts = [{**ev, **counts[ev["event_id"]]} for ev in text]
    return {
        "text": text,
        "text + counts": with_counts,
        "fingerprint + counts": list(fingerprinted([dict(ev) for ev in with_counts], SECRET.encode())),
        "counts only": list(generate(users, days, gamers, seed, START_MS, 0.0)),
    }


def waste_env() -> dict[str, str]:
    """The ``TOKENLORD_WASTE_*`` settings of this process's environment (thresholds to try); the rest default."""
    return {k: v for k, v in os.environ.items() if k.startswith("TOKENLORD_WASTE_")}


def run_core(events: list[dict[str, Any]], now_ms: int) -> dict[str, list[Any]]:
    """The core's accepted events (columns) for the simulated stream."""
    core = _core.Core(**Settings.from_env(environ={**waste_env(), "TOKENLORD_FINGERPRINT_KEY": SECRET}).core_kwargs())
    parts = [zlib.crc32(user_of(ev).encode()) % PARTITIONS for ev in events]
    offsets = list(range(len(events)))
    cols: dict[str, list[Any]] = defaultdict(list)
    for i in range(0, len(events), BATCH):
        values = [orjson.dumps(ev) for ev in events[i : i + BATCH]]  # a batch at a time: text is big
        out = core.process(parts[i : i + BATCH], offsets[i : i + BATCH], values, now_ms)
        for k in ("event_id", "user", "session_id", "ts", "total_tokens", "wasted_tokens", "waste_reason"):
            cols[k] += out.events[k]
    return cols


def score(events: list[dict[str, Any]], cols: dict[str, list[Any]], errors_only: bool) -> dict[str, Any]:
    label = {ev["event_id"]: ev["_label"] for ev in events}
    gamers = {user_of(ev) for ev in events if ev["_label"] != HONEST}
    tp = fp = fn = honest_total = 0
    by_reason: Counter[str] = Counter()
    by_label_flagged: Counter[str] = Counter()
    by_label_total: Counter[str] = Counter()
    raw: dict[int, Counter[str]] = defaultdict(Counter)
    eff: dict[int, Counter[str]] = defaultdict(Counter)
    truth: dict[int, Counter[str]] = defaultdict(Counter)  # honest tokens only: the ranking deserved
    for eid, user, ts, total, wasted, reason in zip(
        cols["event_id"], cols["user"], cols["ts"], cols["total_tokens"], cols["wasted_tokens"],
        cols["waste_reason"], strict=True,
    ):  # fmt: skip
        if errors_only and reason != "failed_request":
            wasted, reason = 0, ""
        lab = label[eid]
        by_label_total[lab] += total
        by_label_flagged[lab] += wasted
        if reason:
            by_reason[reason] += wasted
        if lab == HONEST:
            fp += wasted
            honest_total += total
        else:
            tp += wasted
            fn += total - wasted
        day = ts // DAY_MS
        week = (day - (day + 3) % 7) * DAY_MS
        raw[week][user] += total
        eff[week][user] += total - wasted
        truth[week][user] += total if lab == HONEST else 0
    weeks = []
    for week in sorted(raw):
        top_raw = [u for u, _ in sorted(raw[week].items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]]
        top_eff = {u for u, _ in sorted(eff[week].items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]}
        top_true = {u for u, _ in sorted(truth[week].items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]}
        maxxers = [u for u in top_raw if u in gamers]
        still = sorted(u for u in maxxers if u in top_eff)
        weeks.append({"week_start_ms": week, "maxxers_in_raw_top": len(maxxers), "still_in_effective_top": still,
                      # their honest work alone puts them in the top: staying there is right
                      "still_and_earned": sorted(u for u in still if u in top_true)})  # fmt: skip
    return {
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "honest_flagged_share": fp / honest_total if honest_total else 0.0,
        "wasted_by_reason": dict(by_reason.most_common()),
        "flagged_share_by_label": {k: by_label_flagged[k] / v for k, v in sorted(by_label_total.items()) if v},
        "weeks": weeks,
        "maxxers_in_raw_top": sum(w["maxxers_in_raw_top"] for w in weeks),
        "maxxers_left_in_effective_top": sum(len(w["still_in_effective_top"]) for w in weeks),
        "maxxers_left_unearned": sum(len(w["still_in_effective_top"]) - len(w["still_and_earned"]) for w in weeks),
    }


def arguments(doc: str | None, gamers: int) -> argparse.Namespace:
    """The command line of a waste benchmark: seeds, users, gamers, days."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--gamers", type=int, default=gamers)
    ap.add_argument("--days", type=float, default=14)
    return ap.parse_args()


def main() -> None:
    args = arguments(__doc__, gamers=12)
    now_ms = START_MS + int(args.days * DAY_MS) + 3_600_000
    results: dict[str, Any] = {}
    rows: list[list[str]] = []
    wire: dict[str, list[int]] = defaultdict(list)
    for seed in args.seeds:
        kinds = streams(args.users, args.days, args.gamers, seed)
        verdicts: dict[str, list[Any]] = {}
        for mode, events in kinds.items():
            t0 = time.perf_counter()
            cols = run_core(events, now_ms)
            secs = time.perf_counter() - t0
            wire[mode].append(sum(len(orjson.dumps({k: v for k, v in ev.items() if k != "_label"})) for ev in events))
            wire[mode].append(len(events))
            verdicts[mode] = list(zip(cols["event_id"], cols["wasted_tokens"], cols["waste_reason"], strict=True))
            for contender, errors_only in (("tokenlord", False), ("errors only", True)):
                r = score(events, cols, errors_only)
                r["events"] = len(events)
                r["seconds"] = secs
                results[f"{mode} / seed {seed} / {contender}"] = r
                rows.append(
                    [
                        mode,
                        str(seed),
                        contender,
                        f"{len(events):,}",
                        f"{r['precision']:.3f}",
                        f"{r['recall']:.3f}",
                        f"{100 * r['honest_flagged_share']:.2f} %",
                        f"{r['maxxers_left_in_effective_top']} of {r['maxxers_in_raw_top']}",
                        str(r["maxxers_left_unearned"]),
                    ]
                )
            print(f"{mode}, seed {seed}: {len(events):,} events in {secs:.1f} s", file=sys.stderr)
        if verdicts["fingerprint + counts"] != verdicts["text + counts"]:
            raise SystemExit(f"seed {seed}: fingerprint verdicts differ from the text + counts ones — benchmark void")
    bytes_per_event = {m: sum(v[0::2]) / sum(v[1::2]) for m, v in wire.items()}
    print(table(["events", "bytes per event on the wire (JSON)"],
                [[m, f"{b:,.0f}"] for m, b in bytes_per_event.items()]))  # fmt: skip
    head = ["events", "seed", "contender", "n", "precision", "recall", "honest flagged",
            "maxxers still in effective top 10 (of those in raw top 10, all weeks)",
            "of them not earned by honest work alone"]  # fmt: skip
    print(table(head, rows, left=3))
    path = write_json(
        "waste_quality.json",
        {
            "benchmark": "waste_quality",
            "machine": machine_info(),
            "parameters": {
                "seeds": args.seeds,
                "users": args.users,
                "gamers": args.gamers,
                "days": args.days,
                "partitions": PARTITIONS,
                "start_ms": START_MS,
                "top": TOP,
            },
            "results": results,
            "bytes_per_event": bytes_per_event,
            "fingerprint_verdicts_equal_text_counts": True,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
