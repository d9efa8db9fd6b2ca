"""Shared helpers of the benchmark scripts: the event generator and machine info.

The generator makes counts-only usage events the way an LLM gateway sends
them (no prompt/output text): ~5k users with a skewed activity, 6 models,
teams, OTel-style alias keys on part of the traffic, RFC 3339 and epoch-ms
timestamps, gateway retries (duplicates) and a few invalid events. It is
deterministic for a given seed, so separate processes get byte-identical
input (checked through :func:`digest`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import platform
import random
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from tokenlord.time_utils import DAY_MS, HOUR_MS

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

#: The generated week: Thursday 2025-01-09 00:00 UTC + 7 days, so it crosses the
#: Monday 2025-01-13 boundary (the first week closes during the run).
SPAN_START_MS = int(dt.datetime(2025, 1, 9, tzinfo=dt.UTC).timestamp() * 1000)
SPAN_MS = 7 * DAY_MS
#: The "worker clock" of the core benchmark: one hour after the span (no event
#: is in the future). The end-to-end benchmark uses the real clock instead.
NOW_MS = SPAN_START_MS + SPAN_MS + HOUR_MS

PARTITIONS = 3
USERS = 5_000
TEAMS = 60
MODELS = (  # (model name, provider, share of requests)
    ("gpt-4o-mini", "openai", 0.30),
    ("gpt-4o", "openai", 0.20),
    ("claude-sonnet-4-20250514", "anthropic", 0.20),
    ("gpt-5", "openai", 0.12),
    ("o4-mini", "openai", 0.10),
    ("llama-3.3-70b-instruct", "meta", 0.08),
)
APPS = ("ide", "chat", "ci-review", "agent", "search")
DUPLICATE_SHARE = 0.01  # gateway retries: same event re-sent a little later
INVALID_SHARE = 0.001  # malformed events (rejected by both contenders)


@dataclass
class Stream:
    """One generated stream, in Kafka order, ready for the contenders."""

    events: int  # number of event objects (duplicates and invalid ones included)
    per_message: int
    partitions: list[int]
    offsets: list[int]
    values: list[bytes]
    keys: list[bytes]

    @property
    def messages(self) -> int:
        return len(self.values)

    @property
    def bytes(self) -> int:
        return sum(len(v) for v in self.values)


def _user_partition(user: str) -> int:
    # Kafka hashes the key with murmur2; any stable hash gives the same picture.
    return zlib.crc32(user.encode()) % PARTITIONS


def _rfc3339(ts_ms: int, rng: random.Random) -> str:
    offset_min = rng.choice((0, 0, 0, 60, 120, -300, 330))
    t = dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC) + dt.timedelta(minutes=offset_min)
    frac = ts_ms % 1000
    base = t.strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:03d}"
    if offset_min == 0:
        return base + "Z"
    sign = "+" if offset_min > 0 else "-"
    h, m = divmod(abs(offset_min), 60)
    return f"{base}{sign}{h:02d}:{m:02d}"


def _invalid(ev: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    kind = rng.randrange(5)
    ev = dict(ev)
    if kind == 0:
        for k in ("model", "gen_ai.request.model"):
            ev.pop(k, None)
    elif kind == 1:
        ev["input_tokens"] = -5
        ev.pop("gen_ai.usage.input_tokens", None)
    elif kind == 2:
        ev["status"] = "timeout"
    elif kind == 3:
        ev["ts"] = "yesterday at noon"
    else:
        ev["cached_input_tokens"] = 10**8
        ev["input_tokens"] = 10
        ev.pop("gen_ai.usage.cache_read.input_tokens", None)
        ev.pop("gen_ai.usage.input_tokens", None)
    return ev


def generate_events(n: int, seed: int) -> list[tuple[str, dict[str, Any]]]:
    """``n`` event objects as (user, event) in arrival order (duplicates included)."""
    rng = random.Random(seed)
    users = [f"user{i:05d}@corp.example" for i in range(USERS)]
    # Skewed activity: a few heavy users, a long tail (Zipf-like, s = 0.9).
    weights = [1.0 / (rank + 1) ** 0.9 for rank in range(USERS)]
    rng.shuffle(weights)
    team_of = {u: f"team-{rng.randrange(TEAMS):02d}" for u in users}
    app_of = {u: rng.choice(APPS) for u in users}
    model_names = [m for m, _, _ in MODELS]
    provider_of = {m: p for m, p, _ in MODELS}
    model_weights = [w for _, _, w in MODELS]

    n_dup = int(n * DUPLICATE_SHARE)
    n_base = n - n_dup
    picked_users = rng.choices(users, weights=weights, k=n_base)
    picked_models = rng.choices(model_names, weights=model_weights, k=n_base)
    step = SPAN_MS / n_base
    gauss, rnd, exp = rng.gauss, rng.random, math.exp
    keyed: list[tuple[float, str, dict[str, Any]]] = []
    for i in range(n_base):
        user = picked_users[i]
        model = picked_models[i]
        # Arrival roughly in event-time order, a few minutes of jitter.
        ts = SPAN_START_MS + int(i * step) + int(rnd() * 600_000) - 300_000
        ts = max(SPAN_START_MS, min(SPAN_START_MS + SPAN_MS - 1, ts))
        event_id = "%08x-%04x-4%03x-%04x-%012x" % (  # noqa: UP031 - uuid-ish, fast
            rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(12),
            0x8000 | rng.getrandbits(14), rng.getrandbits(48),
        )  # fmt: skip
        inp = min(int(exp(gauss(7.3, 1.2))), 400_000)
        out = min(int(exp(gauss(5.6, 1.0))), 64_000)
        cached = int(inp * rnd() * 0.9) if rnd() < 0.4 else 0
        error = rnd() < 0.02
        otel = rnd() < 0.2
        ts_val: int | str = _rfc3339(ts, rng) if rnd() < 0.15 else ts
        latency = int(exp(gauss(6.5, 0.8)))
        if otel:
            ev: dict[str, Any] = {
                "event_id": event_id,
                "ts": ts_val,
                "enduser.id": user,
                "team": team_of[user],
                "gen_ai.request.model": model,
                "gen_ai.provider.name": provider_of[model],
                "gen_ai.conversation.id": f"s-{rng.getrandbits(40):010x}",
                "gen_ai.usage.input_tokens": inp,
                "gen_ai.usage.output_tokens": out,
                "gen_ai.usage.cache_read.input_tokens": cached,
                "gen_ai.response.finish_reasons": ["error" if error else "stop"],
                "status": "error" if error else "ok",
                "latency_ms": latency,
            }
        else:
            ev = {
                "event_id": event_id,
                "ts": ts_val,
                "user_id" if rnd() < 0.05 else "user": user,
                "team": team_of[user],
                "app": app_of[user],
                "provider": provider_of[model],
                "model": model,
                "input_tokens": inp,
                "output_tokens": out,
                "cached_input_tokens": cached,
                "status": "error" if error else "ok",
                "finish_reason": "error" if error else "stop",
                "latency_ms": latency,
            }
            if model in ("gpt-5", "o4-mini"):
                ev["reasoning_tokens"] = int(out * rnd())
        if rnd() < INVALID_SHARE:
            ev = _invalid(ev, rng)
        keyed.append((float(i), user, ev))
    for _ in range(n_dup):
        i = rng.randrange(n_base)
        _, user, ev = keyed[i]
        keyed.append((i + rng.uniform(1, 2000), user, ev))  # a retry, a bit later
    keyed.sort(key=lambda k: k[0])
    return [(u, e) for _, u, e in keyed]


def build_stream(events: list[tuple[str, dict[str, Any]]], per_message: int) -> Stream:
    """Encode the events as Kafka messages keyed by user (``per_message`` > 1: JSON
    arrays of consecutive events of one partition, keyed by the first event's user)."""
    partitions: list[int] = []
    offsets: list[int] = []
    values: list[bytes] = []
    keys: list[bytes] = []
    next_offset = [0] * PARTITIONS
    if per_message == 1:
        for user, ev in events:
            p = _user_partition(user)
            partitions.append(p)
            offsets.append(next_offset[p])
            next_offset[p] += 1
            values.append(orjson.dumps(ev))
            keys.append(user.encode())
        return Stream(len(events), 1, partitions, offsets, values, keys)
    # Per partition, chunk its events in order; interleave the chunks by position
    # of their first event, so each partition sees its events in the same order
    # as in the one-per-message stream (same dedupe and lateness outcome).
    pending: list[list[tuple[int, str, dict[str, Any]]]] = [[] for _ in range(PARTITIONS)]
    chunks: list[tuple[int, int, str, list[dict[str, Any]]]] = []
    for pos, (user, ev) in enumerate(events):
        p = _user_partition(user)
        pending[p].append((pos, user, ev))
        if len(pending[p]) == per_message:
            first = pending[p][0]
            chunks.append((first[0], p, first[1], [e for _, _, e in pending[p]]))
            pending[p] = []
    for p, rest in enumerate(pending):
        if rest:
            chunks.append((rest[0][0], p, rest[0][1], [e for _, _, e in rest]))
    chunks.sort(key=lambda c: c[0])
    for _, p, user, evs in chunks:
        partitions.append(p)
        offsets.append(next_offset[p])
        next_offset[p] += 1
        values.append(orjson.dumps(evs))
        keys.append(user.encode())
    return Stream(len(events), per_message, partitions, offsets, values, keys)


#: Keys of reported counts; a text event carries none of them.
COUNT_KEYS = (
    "input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens",
    "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.usage.cache_read.input_tokens",
)  # fmt: skip
#: Characters of the text of one text event (about 4 per token): short, so that
#: a 100-event message stays far below 1 MiB and a run stays short.
PROMPT_CHARS_MAX = 2_000
OUTPUT_CHARS_MAX = 1_000


def _valid(ev: dict[str, Any]) -> bool:
    """Whether the worker accepts ``ev`` (py_baseline's rules)."""
    from py_baseline import Reject, validate

    try:
        validate(ev)
    except Reject:
        return False
    return True


def _each_new(
    events: list[tuple[str, dict[str, Any]]], convert: Callable[[dict[str, Any]], dict[str, Any]]
) -> list[tuple[str, dict[str, Any]]]:
    """The same events, each replaced by ``convert(event)``, called once per event
    object in stream order: a gateway retry (the same object twice) stays the
    same event."""
    converted: dict[int, dict[str, Any]] = {}
    out: list[tuple[str, dict[str, Any]]] = []
    for user, ev in events:
        new = converted.get(id(ev))
        if new is None:
            new = converted[id(ev)] = convert(ev)
        out.append((user, new))
    return out


def with_text(events: list[tuple[str, dict[str, Any]]], share: float, seed: int) -> list[tuple[str, dict[str, Any]]]:
    """The same events, ``share`` of the valid ones carrying ``prompt``/``output``
    text instead of counts (about 4 characters per original token, at most
    PROMPT_CHARS_MAX / OUTPUT_CHARS_MAX), sliced from the simulator's text pool
    (``tokenlord.simulate``). A gateway retry stays the same event; invalid
    events are kept."""
    from tokenlord.simulate import _TextPool  # the simulator's seeded pseudo-text

    rng = random.Random(seed ^ 0x7E57)
    pool = _TextPool(rng)

    def convert(ev: dict[str, Any]) -> dict[str, Any]:
        if not (rng.random() < share and _valid(ev)):
            return ev
        inp = ev.get("input_tokens", ev.get("gen_ai.usage.input_tokens", 0))
        outp = ev.get("output_tokens", ev.get("gen_ai.usage.output_tokens", 0))
        new = {k: v for k, v in ev.items() if k not in COUNT_KEYS}
        new["prompt"] = pool.slice(rng.getrandbits(30), min(4 * inp, PROMPT_CHARS_MAX))
        if outp:
            new["output"] = pool.slice(rng.getrandbits(30), min(4 * outp, OUTPUT_CHARS_MAX))
        return new

    return _each_new(events, convert)


#: The text path of issue 18: every valid event carries a prompt of 2-16 KB and
#: an output of 0.3-4 KB of real text (the tokenizer benchmark's corpus: Python
#: sources, multilingual prose, chat).
PROSE_PROMPT = (2_000, 16_000)
PROSE_OUTPUT = (300, 4_000)


def with_prose(events: list[tuple[str, dict[str, Any]]], counts: bool, seed: int) -> list[tuple[str, dict[str, Any]]]:
    """The same events, every valid one carrying ``prompt`` and ``output`` text of
    the sizes above; with ``counts`` its reported counts are kept (the worker
    fingerprints the text), without them it has none (the worker also
    tokenizes). A gateway retry stays the same event; invalid events are kept."""
    from tokenize_bench import corpus

    rng = random.Random(seed ^ 0x9205E)
    pool = "\n".join(corpus(4, seed))

    def piece(lo: int, hi: int) -> str:
        n = rng.randrange(lo, hi)
        at = rng.randrange(0, len(pool) - n)
        return pool[at : at + n]

    def convert(ev: dict[str, Any]) -> dict[str, Any]:
        if not _valid(ev):
            return ev
        kept = ev if counts else {k: v for k, v in ev.items() if k not in COUNT_KEYS}
        return {**kept, "prompt": piece(*PROSE_PROMPT), "output": piece(*PROSE_OUTPUT)}

    return _each_new(events, convert)


def max_lateness_ms(events: list[tuple[str, dict[str, Any]]]) -> int:
    """How far behind its partition's watermark (max event time seen before it) the
    latest first copy of a valid event arrives: a stream window with a grace
    above this drops nothing (duplicates are dropped before the windows)."""
    from py_baseline import Reject, validate

    wm = [-(2**62)] * PARTITIONS
    seen: set[str] = set()
    worst = 0
    for user, ev in events:
        try:
            f = validate(ev, lambda _m, _t: (0, False))
        except Reject:
            continue
        if f[0] in seen:
            continue
        seen.add(f[0])
        p = _user_partition(user)
        worst = max(worst, wm[p] - f[1])
        wm[p] = max(wm[p], f[1])
    return worst


def digest(values: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for v in values:
        h.update(len(v).to_bytes(4, "little"))
        h.update(v)
    return h.hexdigest()[:16]


# ---- machine info ---------------------------------------------------------------


def _cmd(args: list[str]) -> str | None:
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    import tokenlord

    dirty = _cmd(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"])
    return {
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "os": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "mem_total_mb": _mem_total_mb(),
        "loadavg_at_start": list(os.getloadavg()),
        "python": sys.version.split()[0],
        "rustc": _cmd(["rustc", "--version"]),
        "tokenlord": tokenlord.__version__,
        "orjson": orjson.__version__,
        "git_commit": _cmd(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
        "git_dirty": bool(dirty),
    }


def _mem_total_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def write_json(name: str, doc: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    return path


def table(headers: list[str], rows: list[list[str]], left: int = 1) -> str:
    """A GitHub-flavoured markdown table (prints well in a terminal too); the
    first ``left`` columns are left-aligned, the others right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        padded = [c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "| " + " | ".join(padded) + " |"

    sep = [":" + "-" * (w + 1) if i < left else "-" * (w + 1) + ":" for i, w in enumerate(widths)]
    return "\n".join([line(headers), "|" + "|".join(sep) + "|", *(line(r) for r in rows)])


def fmt_rate(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.2f} M/s"
    if x >= 1e3:
        return f"{x / 1e3:.0f} k/s"
    return f"{x:.0f} /s"
