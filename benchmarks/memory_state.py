"""Memory of the core's per-partition state: what it costs and what it grows with.

    .venv/bin/python benchmarks/memory_state.py [--users 2000 8000 32000]   # ~1-2 min

Feeds ``Core(**Settings().core_kwargs()).process(...)`` generated counts-only
events (3 models, a team and an app per user, token counts, 2 % failed
requests, uuid event ids, epoch-ms timestamps in event-time order; three
partitions keyed by user) in batches of 20,000 messages. Every run is a fresh
child process (runs share no heap) that first generates all its messages,
creates the core, and reads memory ("before"); then feeds the batches and
reads it again ("after"). Three readings, each as after - before:

- ``RSS``: ``VmRSS`` of ``/proc/self/status``, what the worker's process shows;
- ``RSS trimmed``: the same after ``malloc_trim(0)`` handed malloc's free pages
  back to the kernel: the pages the state itself pins, fragmentation included;
- ``heap``: the bytes malloc has handed out and not got back (glibc
  ``mallinfo2``: ``uordblks + hblkhd``).

and ``core.state_size()``. Activity is given per user and day: ``hours``
distinct active hours (of 24), ``models`` models in each active hour,
``per_cell`` events per user x hour x model, every day from Monday
2025-01-13 00:00 UTC.

Series:

- **users**: one working week (Mon-Fri, the week stays open) of a light user
  (4 hours/day x 2 models x 1 event) for each ``--users`` count: memory per
  active user-week, and whether it is linear (slope and intercept of a fit).
- **components**: one Monday, 8,000 users (``--component-users``), variants
  of one base (4 hours x 2 models x 4 events per user) that each change one
  count of the state: 2x the events per cell (more remembered ids and waste
  fingerprints, same cells); the same with waste fingerprints off
  (``waste_min_prompt_tokens`` above any count, so the difference is the
  fingerprints alone); the same events over 4x the hours (more hourly cells);
  the same events and hourly cells from 4x the users (more weekly cells).
  Bytes per unit = difference of memory / difference of the count (solved
  exactly for the five runs, so the small changes of the other counts are
  accounted for). Every reading of every series is then compared with this
  formula.
- **plateau**: 4,000 users at a constant rate for 15 days, memory and state
  after every day: ids plateau at one dedupe horizon's worth after day 1,
  hourly cells grow through the week and fall back when it closes (its end +
  1 h grace), so memory after day 14 is that after day 7.
- **small batch**: the middle users run again with 5,000 messages per call
  (``--small-batch``): the part of RSS that is freed batch buffers, not state.

No assertion on any number; the script only aborts if an event it generated
was rejected or counted as a duplicate (the counts above would be wrong).
Writes ``benchmarks/results/memory_state.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import gc
import json
import math
import os
import random
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import DAY_MS, HOUR_MS, machine_info, table, write_json

START_MS = 1_736_726_400_000  # Monday 2025-01-13 00:00 UTC
PARTITIONS = 3
TEAMS = 60
MODELS = (("gpt-4o-mini", "openai"), ("claude-sonnet-4-20250514", "anthropic"), ("llama-3.3-70b-instruct", "meta"))
APPS = ("ide", "chat", "ci-review", "agent", "search")
EVENT = (
    '{"event_id":"%08x-%04x-4%03x-%04x-%012x","ts":%d,%s,%s,"input_tokens":%d,"output_tokens":%d,'
    '"cached_input_tokens":%d,"status":"%s","latency_ms":%d}'
)
STATE_KEYS = ("open_weeks", "weekly_cells", "hourly_cells", "waste_cells", "dedupe_ids", "waste_users", "waste_entries")
MB = 2**20
MEASURES = ("rss", "rss_trimmed", "heap")


@dataclass(frozen=True)
class Profile:
    name: str
    users: int
    days: int
    hours: int  # distinct active hours per user and day (of 24)
    models: int  # models per active hour (of 3)
    per_cell: int  # events per user x hour x model
    fingerprints: bool = True  # False: waste_min_prompt_tokens above any count
    daily: bool = False  # record memory and state after every day

    @property
    def events(self) -> int:
        return self.users * self.days * self.hours * self.models * self.per_cell


# ---- measuring (in the child) ----------------------------------------------------------


def proc_status() -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of this process, in bytes."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(rest.split()[0]) * 1024
    return out


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


class Meter:
    """Reads VmRSS, malloc's bytes in use (glibc ``mallinfo2``) and the core's state."""

    def __init__(self) -> None:
        try:
            libc = ctypes.CDLL(None)
            self.mallinfo2: Any = libc.mallinfo2
            self.mallinfo2.restype = _MallInfo2
            self.malloc_trim: Any = libc.malloc_trim
        except (AttributeError, OSError):  # not glibc
            self.mallinfo2 = self.malloc_trim = None

    def trim(self) -> None:
        if self.malloc_trim is not None:
            self.malloc_trim(0)

    def snapshot(self, core: Any, trim: bool = False) -> dict[str, Any]:
        """``rss`` as the process has it; with ``trim``, also ``rss_trimmed``
        after malloc returned its free pages to the kernel (``malloc_trim(0)``):
        what the state itself pins, fragmentation included."""
        gc.collect()
        st = proc_status()
        snap: dict[str, Any] = {"rss": st["VmRSS"], "hwm": st["VmHWM"]}
        if self.mallinfo2 is not None:
            m = self.mallinfo2()
            snap["heap"] = m.uordblks + m.hblkhd  # in use: heap chunks + mmapped ones
        if trim and self.malloc_trim is not None:
            self.trim()
            snap["rss_trimmed"] = proc_status()["VmRSS"]
        if core is not None:
            size = core.state_size()
            snap.update({k: size[k] for k in STATE_KEYS})
        return snap


@dataclass
class Messages:
    """A profile's messages in Kafka order, cut into the batches of the run."""

    parts: list[int]
    offsets: list[int]
    values: list[bytes]
    cuts: list[tuple[int, int]]  # (end index of a batch, now_ms of its call)
    day_ends: list[int]  # index of the first message of the next day


def generate(p: Profile, seed: int, batch: int) -> Messages:
    """Every message of the run, generated before the core starts (so the
    generator's own memory is in the "before" reading, not in the difference)."""
    rng = random.Random(seed)
    users = [f"user{i:06d}@corp.example" for i in range(p.users)]
    fixed = [f'"user":"{u}","team":"team-{rng.randrange(TEAMS):02d}","app":"{rng.choice(APPS)}"' for u in users]
    part_of = [zlib.crc32(u.encode()) % PARTITIONS for u in users]
    model_part = [f'"provider":"{prov}","model":"{m}"' for m, prov in MODELS]
    gb, gauss, rand, randrange, exp = rng.getrandbits, rng.gauss, rng.random, rng.randrange, math.exp
    hours_of_day = list(range(24))
    model_ids = list(range(len(MODELS)))
    msgs = Messages([], [], [], [], [])
    values, parts, offsets = msgs.values, msgs.parts, msgs.offsets
    next_offset = [0] * PARTITIONS
    for day in range(p.days):
        by_hour: list[list[int]] = [[] for _ in range(24)]
        for u in range(p.users):
            for h in rng.sample(hours_of_day, p.hours):
                by_hour[h].append(u)
        for h in range(24):
            base = START_MS + day * DAY_MS + h * HOUR_MS
            evs = [
                (base + randrange(HOUR_MS), u, m)
                for u in by_hour[h]
                for m in rng.sample(model_ids, p.models)
                for _ in range(p.per_cell)
            ]
            evs.sort()
            for ts, u, m in evs:
                x = gb(128)
                inp = min(int(exp(gauss(7.3, 1.2))), 400_000)
                status = "error" if rand() < 0.02 else "ok"
                cached = inp // 2 if (x >> 30) & 3 == 0 else 0
                uuid = (
                    x >> 96,
                    (x >> 80) & 0xFFFF,
                    (x >> 68) & 0xFFF,
                    0x8000 | (x >> 54) & 0x3FFF,
                    x & 0xFFFF_FFFF_FFFF,
                )
                tail = (inp, 20 + (x >> 40) % 1500, cached, status, 150 + (x >> 20) % 3000)
                values.append((EVENT % (*uuid, ts, fixed[u], model_part[m], *tail)).encode())
                pu = part_of[u]
                parts.append(pu)
                offsets.append(next_offset[pu])
                next_offset[pu] += 1
            # The worker's clock: a minute after the hour being sent (no event is in the future).
            now_ms = base + HOUR_MS + 60_000
            last = msgs.cuts[-1][0] if msgs.cuts else 0
            while len(values) - last >= batch:
                last += batch
                msgs.cuts.append((last, now_ms))
            if (p.daily or day == p.days - 1) and h == 23:
                if len(values) > last:  # a partial batch (the worker's flush interval) at the checkpoint
                    msgs.cuts.append((len(values), now_ms))
                msgs.day_ends.append(len(values))
    return msgs


def run_child(p: Profile, seed: int, batch: int) -> dict[str, Any]:
    from tokenlord._core import Core
    from tokenlord.settings import Settings

    settings = Settings()
    if not p.fingerprints:
        settings = dataclasses.replace(settings, waste_min_prompt_tokens=10**12)
    meter = Meter()
    start = meter.snapshot(None)
    t0 = time.perf_counter()
    msgs = generate(p, seed, batch)
    t_gen = time.perf_counter() - t0
    core = Core(**settings.core_kwargs())
    meter.trim()  # start from no free pages: the generator's garbage is not counted either way
    before = meter.snapshot(core, trim=True)
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM: the peak RSS from here on, not the generator's
    totals = {"events": len(msgs.values), "accepted": 0, "duplicates": 0, "rejected": 0, "batches": 0}
    daily: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    first = 0
    ends = iter(msgs.day_ends)
    day_end = next(ends)
    for end, now_ms in msgs.cuts:
        out = core.process(msgs.parts[first:end], msgs.offsets[first:end], msgs.values[first:end], now_ms)
        totals["accepted"] += out.accepted
        totals["duplicates"] += out.duplicates
        totals["rejected"] += len(out.rejected["reason"])
        totals["batches"] += 1
        del out
        first = end
        if end == day_end:
            day = p.days if not p.daily else len(daily) + 1
            daily.append({"day": day, "events": end, **meter.snapshot(core, trim=end == len(msgs.values))})
            state = {k: daily[-1][k] for k in STATE_KEYS}
            print(f"  {p.name} day {day}: rss {daily[-1]['rss'] / MB:.1f} MiB, {state}", file=sys.stderr)
            day_end = next(ends, -1)
    seconds = time.perf_counter() - t0
    if totals["rejected"] or totals["duplicates"] or totals["accepted"] != totals["events"]:
        sys.exit(f"{p.name}: the core did not accept every generated event: {totals}")
    return {
        "profile": dataclasses.asdict(p),
        "seconds_generate": round(t_gen, 2),
        "seconds_process": round(seconds, 2),
        **totals,
        "start": start,
        "before": before,
        "after": daily[-1],
        "daily": daily,
    }


# ---- the parent -------------------------------------------------------------------------


def run(p: Profile, seed: int, batch: int) -> dict[str, Any]:
    load = list(os.getloadavg())
    spec = json.dumps(dataclasses.asdict(p))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", spec, "--seed", str(seed), "--batch", str(batch)]
    print(f"{p.name}: {p.users:,} users, {p.events:,} events ...", file=sys.stderr)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"{p.name}: child failed (exit {proc.returncode})")
    res: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    res["loadavg_before"] = load
    res["delta"] = {k: res["after"][k] - res["before"][k] for k in MEASURES if k in res["after"]}
    return res


def fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares slope and intercept."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    return slope, my - slope * mx


UNITS = {
    "weekly_cell": "weekly cell = active user-week (+ interned name, waste record)",
    "hourly_cell": "hourly cell (user x model x hour)",
    "dedupe_id": "remembered dedupe id (36-char uuid)",
    "waste_entry": "waste fingerprint (counts-only prompt)",
    "dedupe_id_with_fingerprint": "remembered id + its fingerprint",
}


def solve(rows: list[list[float]], rhs: list[float]) -> list[float]:
    """Solve the square linear system ``rows @ x = rhs`` (Gaussian elimination, partial pivoting)."""
    n = len(rows)
    m = [[*row, y] for row, y in zip(rows, rhs, strict=True)]
    for col in range(n):
        piv = max(range(col, n), key=lambda r: abs(m[r][col]))
        m[col], m[piv] = m[piv], m[col]
        for r in range(n):
            if r != col and m[r][col]:
                f = m[r][col] / m[col][col]
                m[r] = [x - f * y for x, y in zip(m[r], m[col], strict=True)]
    return [m[i][n] / m[i][i] for i in range(n)]


COUNTS = ("weekly_cells", "hourly_cells", "dedupe_ids", "waste_entries")


def per_unit(runs: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Bytes per unit of state from the component variants, per memory measure.

    Five runs, five unknowns (a fixed part and the four counts): the exact
    solution is each variant's difference to the base divided by the count it
    changes, corrected for the small changes of the other counts (a variant
    with 4x the users keeps a few more waste fingerprints, ...)."""
    rows = [[1.0, *(float(r["after"][k]) for k in COUNTS)] for r in runs.values()]
    out: dict[str, dict[str, float]] = {}
    for mem in MEASURES:
        if not all(mem in r["delta"] for r in runs.values()):
            continue
        fixed, w, h, i, f = solve(rows, [float(r["delta"][mem]) for r in runs.values()])
        out[mem] = {
            "weekly_cell": w,
            "hourly_cell": h,
            "dedupe_id": i,
            "waste_entry": f,
            "dedupe_id_with_fingerprint": i + f,
            "fixed": fixed,
        }
    return out


def predict(coef: dict[str, float], s: dict[str, Any]) -> float:
    """The sizing formula: bytes per unit x the state's counts."""
    units = ("weekly_cell", "hourly_cell", "dedupe_id", "waste_entry")
    return sum(coef[u] * float(s[k]) for u, k in zip(units, COUNTS, strict=True))


def mb(x: float) -> str:
    return f"{x / MB:,.1f} MiB"


def counts(s: dict[str, Any]) -> list[str]:
    return [f"{s[k]:,}" for k in COUNTS]


COUNT_HEAD = ["weekly cells (user-weeks)", "hourly cells", "dedupe ids", "waste fps"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, nargs="+", default=[2_000, 8_000, 32_000], help="active users, one run each")
    ap.add_argument("--component-users", type=int, default=8_000, help="users of the component variants' base")
    ap.add_argument("--plateau-users", type=int, default=4_000)
    ap.add_argument("--plateau-days", type=int, default=15)
    ap.add_argument("--batch", type=int, default=20_000, help="messages per Core.process call")
    ap.add_argument("--small-batch", type=int, default=5_000, help="the middle users run again with this batch size")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_child(Profile(**json.loads(args.child)), args.seed, args.batch)))
        return

    machine = machine_info()
    t_start = time.perf_counter()
    users_runs = [run(Profile(f"users-{u}", u, 5, 4, 2, 1), args.seed, args.batch) for u in args.users]
    cu = args.component_users
    variants = {
        "base: 4 h x 2 models x 4 events per user": Profile("c-base", cu, 1, 4, 2, 4),
        "2x events per cell": Profile("c-ids", cu, 1, 4, 2, 8),
        "2x events per cell, no waste fingerprints": Profile("c-ids-nofp", cu, 1, 4, 2, 8, fingerprints=False),
        "same events over 4x hours": Profile("c-hours", cu, 1, 16, 2, 1),
        "same events and hourly cells, 4x users": Profile("c-users", cu * 4, 1, 1, 2, 4),
    }
    comp = {p.name: run(p, args.seed, args.batch) | {"what": what} for what, p in variants.items()}
    plateau = run(Profile("plateau", args.plateau_users, args.plateau_days, 4, 2, 2, daily=True), args.seed, args.batch)
    mid = users_runs[len(users_runs) // 2]
    small = run(Profile(**{**mid["profile"], "name": "small-batch"}), args.seed, args.small_batch)
    coef = per_unit(comp)
    ref = "heap" if "heap" in coef else "rss"  # the formula's bytes per unit

    ux = [float(r["profile"]["users"]) for r in users_runs]
    fits = {}
    for mem in MEASURES:
        if all(mem in r["delta"] for r in users_runs) and len(ux) > 1:
            slope, icpt = fit(ux, [float(r["delta"][mem]) for r in users_runs])
            fits[mem] = {"bytes_per_user_week": slope, "intercept_bytes": icpt}
    users_head = ["active users", "events", *COUNT_HEAD, "ΔRSS", "ΔRSS trimmed", "Δheap", "formula",
                  "ΔRSS / user", "ΔRSS trimmed / user", "Δheap / user"]  # fmt: skip
    users_rows = []
    for r in users_runs:
        a, d, u = r["after"], r["delta"], r["profile"]["users"]
        users_rows.append(
            [f"{u:,}", f"{r['events']:,}", *counts(a), mb(d["rss"]), mb(d.get("rss_trimmed", 0)),
             mb(d.get("heap", 0)), mb(predict(coef[ref], a)), f"{d['rss'] / u:,.0f}",
             f"{d.get('rss_trimmed', 0) / u:,.0f}", f"{d.get('heap', 0) / u:,.0f}"]
        )  # fmt: skip

    comp_head = ["variant", "what changes", "users", "events", *COUNT_HEAD, "ΔRSS", "ΔRSS trimmed", "Δheap"]
    comp_rows = [
        [name, r["what"], f"{r['profile']['users']:,}", f"{r['events']:,}", *counts(r["after"]),
         mb(r["delta"]["rss"]), mb(r["delta"].get("rss_trimmed", 0)), mb(r["delta"].get("heap", 0))]
        for name, r in comp.items()
    ]  # fmt: skip
    unit_head = ["bytes per", "heap in use", "RSS trimmed", "RSS"]
    unit_rows = [[UNITS[k], *(f"{coef[m][k]:,.0f}" if m in coef else "" for m in ("heap", "rss_trimmed", "rss"))]
                 for k in UNITS]  # fmt: skip

    b = plateau["before"]
    plat_head = [
        "day",
        "events so far",
        "open weeks (Σ partitions)",
        *COUNT_HEAD,
        "ΔRSS",
        "Δheap",
        "formula",
        "Δpeak RSS",
    ]
    plat_rows = [
        [str(d["day"]), f"{d['events']:,}", str(d["open_weeks"]), *counts(d), mb(d["rss"] - b["rss"]),
         mb(d.get("heap", 0) - b.get("heap", 0)), mb(predict(coef[ref], d)),
         mb(max(max(x["hwm"], x["rss"]) for x in plateau["daily"][: i + 1]) - b["rss"])]
        for i, d in enumerate(plateau["daily"])
    ]  # fmt: skip

    print()
    print(table(users_head, users_rows, left=0))
    for mem, f in fits.items():
        print(f"fit of Δ{mem} over users: {f['bytes_per_user_week']:,.0f} bytes per active user-week "
              f"+ {mb(f['intercept_bytes'])}")  # fmt: skip
    print()
    print(table(comp_head, comp_rows, left=2))
    print()
    print(table(unit_head, unit_rows, left=1))
    print()
    print(table(plat_head, plat_rows, left=0))
    readings = [(r["profile"]["name"], r["after"], r["delta"]) for r in [*users_runs, *comp.values()]]
    readings += [(f"plateau day {d['day']}", d, {m: d[m] - b[m] for m in MEASURES if m in d})
                 for d in plateau["daily"]]  # fmt: skip
    check = [{"reading": name, "measured": delta[ref], "formula": predict(coef[ref], a),
              "ratio": delta[ref] / predict(coef[ref], a)} for name, a, delta in readings if ref in delta]  # fmt: skip
    lo, hi = min(check, key=lambda c: c["ratio"]), max(check, key=lambda c: c["ratio"])
    print(f"\nmeasured {ref} / formula over {len(check)} readings: {lo['ratio']:.2f} ({lo['reading']}) "
          f"to {hi['ratio']:.2f} ({hi['reading']})")  # fmt: skip
    print()
    batch_rows = [
        [f"{r['profile']['users']:,}", f"{bs:,}", mb(r["delta"]["rss"]), mb(r["delta"].get("rss_trimmed", 0)),
         mb(r["delta"].get("heap", 0)), mb(r["delta"]["rss"] - r["delta"].get("heap", 0))]
        for r, bs in ((small, args.small_batch), (mid, args.batch))
    ]  # fmt: skip
    print(table(["active users", "messages / call", "ΔRSS", "ΔRSS trimmed", "Δheap", "ΔRSS - Δheap"], batch_rows))
    path = write_json(
        "memory_state.json",
        {
            "benchmark": "memory_state",
            "machine": machine,
            "parameters": {
                "users": args.users,
                "component_users": cu,
                "plateau_users": args.plateau_users,
                "plateau_days": args.plateau_days,
                "batch": args.batch,
                "small_batch": args.small_batch,
                "seed": args.seed,
                "start_ms": START_MS,
                "partitions": PARTITIONS,
            },
            "bytes_per": coef,
            "formula_measure": ref,
            "formula_check": check,
            "users_fit": fits,
            "users": users_runs,
            "components": comp,
            "plateau": plateau,
            "small_batch": small,
            "seconds": round(time.perf_counter() - t_start, 1),
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
