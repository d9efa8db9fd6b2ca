"""The pure-Python contender of ``core_throughput.py``.

What a competent engineer would write in Python for the same job as the Rust
core's ``Core.process``: orjson parsing, the validation rules of
docs/semantics.md (a faithful subset: every rule except tokenizing
``prompt``/``output`` text and the text-based waste signals, which the
benchmark's counts-only events never need), per-partition dedupe on
``event_id`` bounded by the horizon, the future/late checks, cost, the
counts-only waste signals (errors, resent prompts, bursts: an xxh3 of model and
input count per event, the latest two timestamps per user and fingerprint,
swept with the watermark), hourly/weekly/waste cells per partition
with week closing, and per batch the accepted event rows and a restatement of
every touched cell. Plain dicts, lists and tuples, no per-event classes; it is
written for speed where that does not hurt clarity.

Text events (``prompt`` / ``output`` instead of counts) need a tokenizer:
``PyCore(..., tokenize=f)`` with ``f(model, text) -> (count, estimated)`` (the
naive end-to-end contenders pass tiktoken); without one they raise
``NotImplementedError``, as ``core_throughput.py``'s counts-only input never has them.

It is a benchmark contender, not the reference implementation
(tests/reference.py is that): ``core_throughput.py`` checks it against the
core on the benchmark input and aborts if the totals differ.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from tokenlord.time_utils import DAY_MS, HOUR_MS, WEEK_MS
from xxhash import xxh3_64_intdigest

WASTE_WINDOW_MS = 3_600_000  # the longest waste window (duplicate_window)
MAX_TS_MS = 253_402_300_799_999
MAX_COUNT = 1_000_000_000
MAX_LATENCY = 2**31 - 1
BOM = b"\xef\xbb\xbf"

_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?:[Zz]|([+-])(\d\d):(\d\d))\Z",
    re.ASCII,
)
_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class Reject(Exception):
    """An element is rejected; ``args[0]`` is the reason code."""


def _days_from_civil(y: int, m: int, d: int) -> int:
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * ((m + 9) % 12) + 2) // 5 + d - 1
    return era * 146_097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719_468


def parse_rfc3339(s: str) -> int | None:
    """Strict RFC 3339 with an offset → epoch ms (None if it is not one)."""
    m = _RFC3339.match(s)
    if m is None:
        return None
    y, mo, d, hh, mi, ss, frac, sign, oh, om = m.groups()
    year, month, day = int(y), int(mo), int(d)
    if not 1 <= month <= 12 or day < 1:
        return None
    dim = _DAYS_IN_MONTH[month]
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        dim = 29
    if day > dim or int(hh) > 23 or int(mi) > 59 or int(ss) > 59:
        return None
    ms = (_days_from_civil(year, month, day) * 86_400 + int(hh) * 3600 + int(mi) * 60 + int(ss)) * 1000
    if frac:
        ms += int((frac + "00")[:3])
    if sign:
        if int(oh) > 23 or int(om) > 59:
            return None
        off = (int(oh) * 60 + int(om)) * 60_000
        ms += -off if sign == "+" else off
    return ms


def _first(obj: dict[str, Any], names: tuple[str, ...]) -> Any:
    """Value of the first key of ``names`` that is present and not null."""
    v = obj.get(names[0])  # the canonical name: by far the most common case
    if v is not None:
        return v
    for n in names[1:]:
        v = obj.get(n)
        if v is not None:
            return v
    return None


def _opt_str(obj: dict[str, Any], names: tuple[str, ...], fname: str) -> str:
    v = _first(obj, names)
    if v is None:
        return ""
    if type(v) is not str or len(v) > 256:
        raise Reject("invalid_field:" + fname)
    return v


def _count(obj: dict[str, Any], names: tuple[str, ...], fname: str) -> int | None:
    v = _first(obj, names)
    if v is None:
        return None
    if type(v) is not int:
        raise Reject("invalid_field:" + fname)
    if v < 0 or v > MAX_COUNT:
        raise Reject("out_of_range:" + fname)
    return v


_USER = ("user", "user_id", "enduser.id")
_MODEL = ("model", "gen_ai.request.model", "gen_ai.response.model")
_TEAM = ("team",)
_APP = ("app",)
_PROVIDER = ("provider", "gen_ai.provider.name")
_SESSION = ("session_id", "gen_ai.conversation.id")
_INPUT = ("input_tokens", "gen_ai.usage.input_tokens")
_OUTPUT = ("output_tokens", "gen_ai.usage.output_tokens")
_CACHED = ("cached_input_tokens", "gen_ai.usage.cache_read.input_tokens")
_REASONING = ("reasoning_tokens",)
_FINISH = ("finish_reason", "gen_ai.response.finish_reasons")


Tokenize = Callable[[str, str], tuple[int, bool]]


def validate(obj: dict[str, Any], tokenize: Tokenize | None = None) -> tuple[Any, ...]:
    """One event object → its resolved fields (the last one: tokens_estimated 0/1);
    raises :class:`Reject`. ``tokenize(model, text) -> (count, estimated)`` counts
    the text of a missing count."""
    eid = obj.get("event_id")
    if eid is None:
        raise Reject("missing_field:event_id")
    if type(eid) is not str or not 1 <= len(eid) <= 128:
        raise Reject("invalid_field:event_id")

    ts = obj.get("ts")
    if ts is None:
        raise Reject("missing_field:ts")
    if type(ts) is int:
        if not 0 <= ts <= MAX_TS_MS:
            raise Reject("out_of_range:ts")
    elif type(ts) is str:
        parsed = parse_rfc3339(ts)
        if parsed is None:
            raise Reject("invalid_field:ts")
        if not 0 <= parsed <= MAX_TS_MS:
            raise Reject("out_of_range:ts")
        ts = parsed
    else:
        raise Reject("invalid_field:ts")

    user = _first(obj, _USER)
    if user is None:
        raise Reject("missing_field:user")
    if type(user) is not str or not 1 <= len(user) <= 256:
        raise Reject("invalid_field:user")
    model = _first(obj, _MODEL)
    if model is None:
        raise Reject("missing_field:model")
    if type(model) is not str or not 1 <= len(model) <= 256:
        raise Reject("invalid_field:model")

    team = _opt_str(obj, _TEAM, "team")
    app = _opt_str(obj, _APP, "app")
    provider = _opt_str(obj, _PROVIDER, "provider")
    session = _opt_str(obj, _SESSION, "session_id")
    inp = _count(obj, _INPUT, "input_tokens")
    out = _count(obj, _OUTPUT, "output_tokens")
    prompt = obj.get("prompt")
    if prompt is not None and type(prompt) is not str:
        raise Reject("invalid_field:prompt")
    output = obj.get("output")
    if output is not None and type(output) is not str:
        raise Reject("invalid_field:output")
    cached = _count(obj, _CACHED, "cached_input_tokens")
    reasoning = _count(obj, _REASONING, "reasoning_tokens")

    status = obj.get("status")
    if status is None or status == "ok":
        is_error = False
    elif status == "error":
        is_error = True
    else:
        raise Reject("invalid_field:status")
    finish = _first(obj, _FINISH)
    if finish is None:
        finish = ""
    elif type(finish) is list:
        if not finish:
            finish = ""
        elif type(finish[0]) is str:
            finish = finish[0]
        else:
            raise Reject("invalid_field:finish_reason")
    elif type(finish) is not str:
        raise Reject("invalid_field:finish_reason")
    latency = obj.get("latency_ms")
    if latency is not None:
        if type(latency) is not int:
            raise Reject("invalid_field:latency_ms")
        if not 0 <= latency <= MAX_LATENCY:
            raise Reject("out_of_range:latency_ms")

    if inp is None and out is None and prompt is None and output is None:
        raise Reject("missing_usage")
    estimated = False
    if (inp is None and prompt is not None) or (out is None and output is not None):
        if tokenize is None:
            raise NotImplementedError("text events need PyCore(tokenize=...)")
        # A reported count wins; a missing one is the token count of its text.
        if inp is None and prompt is not None:
            inp, est = tokenize(model, prompt)
            estimated = estimated or est
        if out is None and output is not None:
            out, est = tokenize(model, output)
            estimated = estimated or est
    inp = inp or 0
    out = out or 0
    cached = cached or 0
    reasoning = reasoning or 0
    if cached > inp:
        raise Reject("out_of_range:cached_input_tokens")
    if reasoning > out:
        raise Reject("out_of_range:reasoning_tokens")
    return (
        eid, ts, user, team, app, model, provider, session, inp, out, cached, reasoning,
        "error" if is_error else "ok", finish, latency, 1 if estimated else 0,
    )  # fmt: skip


def split_message(value: bytes, max_bytes: int) -> list[Any]:
    """A message value → its elements: dicts, or ``(reason, raw)`` rejections."""
    if len(value) > max_bytes:
        return [("too_large", value)]
    if value.startswith(BOM):
        value = value[3:]
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return _split_ndjson(value)
    if type(doc) is dict:
        return [doc]
    if type(doc) is list:
        return [d if type(d) is dict else ("not_an_object", orjson.dumps(d)) for d in doc]
    return [("not_an_object", value)]


def _split_ndjson(value: bytes) -> list[Any]:
    lines = [ln for ln in value.split(b"\n") if ln.strip(b" \t\r")]
    if len(lines) <= 1:
        return [("invalid_json", value)]
    out: list[Any] = []
    bad = 0
    for ln in lines:
        try:
            doc = orjson.loads(ln)
        except orjson.JSONDecodeError:
            out.append(("invalid_json", ln))
            bad += 1
            continue
        out.append(doc if type(doc) is dict else ("not_an_object", ln))
    if bad == len(lines):
        return [("invalid_json", value)]
    return out


@dataclass
class _Partition:
    watermark: int | None = None
    seen: dict[str, int] = field(default_factory=dict)
    seen_order: deque[tuple[int, str]] = field(default_factory=deque)
    # week_start -> (hourly, weekly, waste) cells; cells are mutable lists.
    weeks: dict[int, tuple[dict[Any, list[Any]], dict[str, list[Any]], dict[Any, list[Any]]]] = field(
        default_factory=dict
    )
    # Waste memory, counts-only events (no text here): user -> prompt fingerprint ->
    # its latest two timestamps; swept as the watermark moves (docs/semantics.md, "Waste").
    prompts: dict[str, dict[int, list[int]]] = field(default_factory=dict)
    swept: int = 0


@dataclass
class PyBatch:
    events: list[tuple[Any, ...]]
    hourly: list[tuple[Any, ...]]
    weekly: list[tuple[Any, ...]]  # (p, week, user, team, team_ts, requests, in, out,
    #                                 total, wasted, cost, final, version)
    waste: list[tuple[Any, ...]]
    rejected: list[tuple[int, int, int, str, bytes]]
    duplicates: int
    accepted: int


class PyCore:
    """``Core.process`` in plain Python (see the module docstring)."""

    def __init__(
        self,
        prices: dict[str, tuple[float, float, float]],
        *,
        grace_ms: int = 3_600_000,
        dedupe_horizon_ms: int = 86_400_000,
        future_tolerance_ms: int = 600_000,
        max_message_bytes: int = 1_048_576,
        tokenize: Tokenize | None = None,
    ) -> None:
        self.tokenize = tokenize
        self.grace = grace_ms
        self.horizon = dedupe_horizon_ms
        self.waste_memory = max(WASTE_WINDOW_MS, dedupe_horizon_ms)
        self.future = future_tolerance_ms
        self.max_bytes = max_message_bytes
        self._prefixes = sorted(prices.items(), key=lambda kv: -len(kv[0]))
        self._price_cache: dict[str, tuple[float, float, float]] = {}
        self.parts: dict[int, _Partition] = {}
        self.version = 0

    def _price(self, model: str) -> tuple[float, float, float]:
        p = self._price_cache.get(model)
        if p is None:
            p = next((v for k, v in self._prefixes if model.startswith(k)), (0.0, 0.0, 0.0))
            self._price_cache[model] = p
        return p

    def process(self, partitions: list[int], offsets: list[int], values: list[bytes], now_ms: int) -> PyBatch:
        self.version += 1
        version = self.version
        limit = now_ms + self.future
        grace, horizon = self.grace, self.horizon
        tokenize = self.tokenize
        events: list[tuple[Any, ...]] = []
        rejected: list[tuple[int, int, int, str, bytes]] = []
        duplicates = 0
        touched: dict[int, tuple[set[Any], set[Any], set[Any]]] = {}
        parts = self.parts
        for p, off, value in zip(partitions, offsets, values, strict=True):
            for idx, el in enumerate(split_message(value, self.max_bytes)):
                if type(el) is tuple:
                    rejected.append((p, off, idx, el[0], el[1]))
                    continue
                try:
                    f = validate(el, tokenize)
                except Reject as r:
                    rejected.append((p, off, idx, r.args[0], orjson.dumps(el)))
                    continue
                eid, ts = f[0], f[1]
                if ts > limit:
                    rejected.append((p, off, idx, "future_timestamp", orjson.dumps(el)))
                    continue
                st = parts.get(p)
                if st is None:
                    st = parts[p] = _Partition()
                wm = st.watermark
                seen_ts = st.seen.get(eid)
                if seen_ts is not None and (wm is None or seen_ts >= wm - horizon):
                    duplicates += 1
                    continue
                day = ts // DAY_MS
                wk = (day - (day + 3) % 7) * DAY_MS
                if wm is not None and wm >= wk + WEEK_MS + grace:
                    rejected.append((p, off, idx, "late", orjson.dumps(el)))
                    continue
                st.seen[eid] = ts
                st.seen_order.append((ts, eid))
                if wm is None or ts > wm:
                    st.watermark = ts
                user, team, model = f[2], f[3], f[5]
                inp, out, cached = f[8], f[9], f[10]
                total = inp + out
                pin, pcached, pout = self._price(model)
                cost = ((inp - cached) * pin + cached * pcached + out * pout) / 1_000_000.0
                fp = xxh3_64_intdigest(f"\0counts\0{model}\0{inp}".encode()) | 1 if inp >= 32 else 0
                since = st.watermark - self.waste_memory  # type: ignore[operator]
                times = st.prompts.setdefault(user, {}).get(fp, []) if fp else []
                if f[12] == "error":
                    wasted, reason = total, "failed_request"
                elif sum(1 for x in times if x >= since and abs(ts - x) <= 10_000) >= 2:
                    wasted, reason = total, "retry_storm"
                elif sum(1 for x in times if x >= since and abs(ts - x) <= WASTE_WINDOW_MS) > 1:
                    wasted, reason = total, "duplicate_prompt"
                else:
                    wasted, reason = 0, ""
                if fp:
                    st.prompts[user][fp] = sorted([*times, ts], reverse=True)[:2]
                cells = st.weeks.get(wk)
                if cells is None:
                    cells = st.weeks[wk] = ({}, {}, {})
                t = touched.get(p)
                if t is None:
                    t = touched[p] = (set(), set(), set())
                hkey = (ts // HOUR_MS * HOUR_MS, user, model)
                h = cells[0].get(hkey)
                if h is None:
                    h = cells[0][hkey] = [0, 0, 0, 0, 0, 0.0]
                h[0] += 1
                h[1] += inp
                h[2] += out
                h[3] += cached
                h[4] += wasted
                h[5] += cost
                t[0].add((wk, hkey))
                w = cells[1].get(user)
                if w is None:
                    w = cells[1][user] = [0, 0, 0, 0, 0.0, "", 0]
                w[0] += 1
                w[1] += inp
                w[2] += out
                w[3] += wasted
                w[4] += cost
                if team and (not w[5] or (ts, team) > (w[6], w[5])):
                    w[5] = team
                    w[6] = ts
                t[1].add((wk, user))
                if wasted:
                    xkey = (user, reason)
                    x = cells[2].get(xkey)
                    if x is None:
                        x = cells[2][xkey] = [0, 0]
                    x[0] += 1
                    x[1] += wasted
                    t[2].add((wk, xkey))
                events.append((*f[:12], total, f[15], f[12], f[13], f[14], cost, wasted, reason, p, off))
        hourly: list[tuple[Any, ...]] = []
        weekly: list[tuple[Any, ...]] = []
        waste: list[tuple[Any, ...]] = []
        for p in sorted(touched):
            self._finish(p, touched[p], version, hourly, weekly, waste)
        return PyBatch(events, hourly, weekly, waste, rejected, duplicates, len(events))

    def _finish(
        self,
        p: int,
        t: tuple[set[Any], set[Any], set[Any]],
        version: int,
        hourly: list[tuple[Any, ...]],
        weekly: list[tuple[Any, ...]],
        waste: list[tuple[Any, ...]],
    ) -> None:
        st = self.parts[p]
        wm = st.watermark
        assert wm is not None
        closed = {wk: cells for wk, cells in st.weeks.items() if wm >= wk + WEEK_MS + self.grace}
        for wk in closed:
            del st.weeks[wk]
        weeks = st.weeks

        def cells_of(wk: int) -> Any:
            c = weeks.get(wk)
            return c if c is not None else closed.get(wk)

        for wk, hkey in t[0]:
            h = cells_of(wk)[0][hkey]
            hourly.append((p, *hkey, h[0], h[1], h[2], h[3], h[1] + h[2], h[4], h[5], version))
        for wk, xkey in t[2]:
            x = cells_of(wk)[2][xkey]
            waste.append((p, wk, *xkey, x[0], x[1], version))
        for wk, user in t[1]:
            if wk in weeks:
                w = weeks[wk][1][user]
                weekly.append((p, wk, user, w[5], w[6], w[0], w[1], w[2], w[1] + w[2], w[3],
                               w[4], 0, version))  # fmt: skip
        for wk in sorted(closed):
            for user, w in sorted(closed[wk][1].items()):
                weekly.append((p, wk, user, w[5], w[6], w[0], w[1], w[2], w[1] + w[2], w[3],
                               w[4], 1, version))  # fmt: skip
        if wm - st.swept >= self.waste_memory // 8:
            before = wm - self.waste_memory
            for user in list(st.prompts):
                fps = st.prompts[user]
                for fp in [fp for fp, times in fps.items() if times[0] < before]:
                    del fps[fp]
                if not fps:
                    del st.prompts[user]
            st.swept = wm
        floor = wm - self.horizon
        order, seen = st.seen_order, st.seen
        while order and order[0][0] < floor:
            ts, eid = order.popleft()
            if seen.get(eid) == ts:
                del seen[eid]
