"""Plain-Python reference implementation of docs/semantics.md.

Slow and simple on purpose: every rule of the normative spec is written out
once, in the order the spec gives it, with no caching or cleverness, so the
Rust core (``tokenlord._core``) can be checked against it on random and
hostile streams. Only the standard library is used.

Choices where docs/semantics.md leaves room (keep in sync with the core):

- RFC 3339: ``YYYY-MM-DD``, separator ``T``, ``t`` or one space, ``HH:MM:SS``,
  optional ``.`` + 1 or more ASCII digits (truncated, never rounded, to ms),
  then ``Z``, ``z`` or ``±HH:MM`` (``-00:00`` is accepted as UTC). Only ASCII
  digits; no surrounding whitespace; no leap second (``:60``); years
  ``0000`` to ``9999`` with proleptic-Gregorian calendar validation (``0000`` is
  a leap year). A syntactically valid, calendar-valid time outside
  ``[1970-01-01T00:00:00.000Z, 9999-12-31T23:59:59.999Z]`` (after applying the
  offset) is ``out_of_range:ts``; anything else malformed is ``invalid_field:ts``.
- JSON: strict UTF-8 (``bytes.decode("utf-8")``, so encoded surrogates and
  overlongs are invalid); RFC 8259 grammar (Python's C scanner); NaN/Infinity
  rejected; lone UTF-16 surrogate escapes anywhere (keys, values, and values
  that a later duplicate key overrides) make the text unparsable; nesting depth
  (arrays + objects) of at most 127 is fine, 128 is unparsable (serde_json's
  limit) — also when the deep part sits in a value a later duplicate key overrides.
- Numbers: a literal without fraction and exponent is an integer literal (but
  ``-0`` reads as a float, as in serde_json); in ``[-2^63, 2^64-1]`` it is a JSON integer, otherwise a
  non-integer number (unparsable if it does not fit an f64). Any literal with
  a fraction or exponent is a float (``1.0``, ``1e2``); one that overflows f64
  (``1e309``) makes the text unparsable.
- ``raw`` of a rejection: whole-message rejections (``too_large``, whole
  ``invalid_json``, a top-level scalar's ``not_an_object``) and every rejection
  of a single-object message carry the original value, BOM and surrounding
  whitespace included. Rejections of an array item (``not_an_object`` or any
  validation/stream reason) carry that item's exact source text; of an NDJSON
  line, the line's bytes as split (after the BOM was skipped; ``\\r`` kept).
- Missing optional strings (team, app, provider, session_id, finish_reason)
  are ``""`` in the events output; a missing ``latency_ms`` is ``None``.
- A weekly cell with no non-empty team has ``team = ""`` and ``team_ts = 0``.
- ``finish_reason`` / ``gen_ai.response.finish_reasons``: the first key whose
  value is not null is used; if that is ``[]`` the finish reason is missing
  (``""``): we do not fall through to the alias.
- Aliases are flat keys (``"enduser.id"``), never nested objects.
- ``tokens_estimated`` is 1 whenever the fallback encoding was asked for a
  count, even of an empty ``prompt``; text next to a reported count is never
  tokenized.
- ``status: "error"`` with 0 tokens: ``wasted_tokens = 0`` but ``waste_reason =
  "failed_request"`` on the event; no waste cell (it needs wasted > 0).
- Closing a week re-emits only its weekly cells (``final = 1``); hourly and
  waste cells of that week are dropped without another row. The ``final`` flag
  on ``waste()`` cells is this reference's own bookkeeping (no such column).
- ``process`` returns a ``RefBatch`` like ``Core.process`` (no ``version``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tokenlord.time_utils import DAY_MS, HOUR_MS, WEEK_MS

TS_MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
TOKENS_MAX = 10**9
LATENCY_MAX = 2**31 - 1
MAX_DEPTH = 127
BOM = b"\xef\xbb\xbf"
JSON_WS = " \t\r\n"

CountTokens = Callable[[str, str], tuple[int, bool]]
Rejection = tuple[int, int, int, str, bytes]


# --------------------------------------------------------------------------- JSON


class _Unparsable(Exception):
    """The JSON text is not acceptable under the strict rules."""


class NonInteger:
    """A JSON integer literal outside the 64-bit range: a number, not an integer."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"NonInteger({self.text})"


def _parse_int(text: str) -> int | NonInteger:
    try:
        n = int(text)
    except ValueError:  # more digits than Python converts: far beyond f64 anyway
        raise _Unparsable(f"integer literal too long: {text[:20]}...") from None
    if text.startswith("-0"):  # "-0" reads as a float (-0.0), like the core's serde_json
        return NonInteger(text)
    if -(2**63) <= n <= 2**64 - 1:
        return n
    if float(text) in (float("inf"), float("-inf")):  # float(str) never raises on overflow
        raise _Unparsable(f"integer literal too large for f64: {text[:20]}...")
    return NonInteger(text)


def _parse_float(text: str) -> float:
    f = float(text)
    if f in (float("inf"), float("-inf")):
        raise _Unparsable(f"number too large for f64: {text}")
    return f


def _parse_constant(name: str) -> Any:
    raise _Unparsable(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)

# A JSON string literal (in text that is already known to be valid JSON).
_STRING_RE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_BRACKET_RE = re.compile(r"[\[\]{}]")


def _max_depth(text: str) -> int:
    """Max nesting of arrays/objects, string contents ignored (text may be invalid)."""
    depth = best = 0
    for m in _BRACKET_RE.finditer(_STRING_RE.sub('""', text)):
        if m.group() in "[{":
            depth += 1
            best = max(best, depth)
        else:
            depth -= 1
    return best


def _has_lone_surrogate(text: str) -> bool:
    """Whether any string literal (key or value) decodes to a lone surrogate."""
    if "\\u" not in text:
        return False
    return any(_SURROGATE_RE.search(json.loads(m.group())) for m in _STRING_RE.finditer(text))


def parse_json(data: bytes) -> Any:
    """One JSON value from ``data`` under the strict rules; raises ``_Unparsable``."""
    try:
        text = data.decode("utf-8")  # strict: invalid UTF-8 -> unparsable
    except UnicodeDecodeError as exc:
        raise _Unparsable("invalid UTF-8") from exc
    if _max_depth(text) > MAX_DEPTH:
        raise _Unparsable("nesting too deep")
    try:
        value = _DECODER.decode(text)  # json's whitespace is exactly JSON's: space, tab, CR, LF
    except (ValueError, RecursionError) as exc:
        raise _Unparsable(str(exc)) from exc
    if _has_lone_surrogate(text):
        raise _Unparsable("lone surrogate escape")
    return value


def _array_item_texts(text: str) -> list[str]:
    """Source text of each item of the (valid) top-level JSON array ``text``."""
    i = 0
    n = len(text)

    def skip_ws(j: int) -> int:
        while j < n and text[j] in JSON_WS:
            j += 1
        return j

    i = skip_ws(i)
    assert text[i] == "["
    i = skip_ws(i + 1)
    items: list[str] = []
    if text[i] == "]":
        return items
    while True:
        _, end = _DECODER.raw_decode(text, i)
        items.append(text[i:end])
        i = skip_ws(end)
        if text[i] == "]":
            return items
        assert text[i] == ","
        i = skip_ws(i + 1)


# --------------------------------------------------------------------------- RFC 3339

# Separator: 'T', 't' or a single space, as RFC 3339 section 5.6 (NOTE) allows.
_RFC3339_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)
_EPOCH = dt.datetime(1970, 1, 1)


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if _is_leap(year) else 28
    return 30 if month in (4, 6, 9, 11) else 31


class _OutOfRange(Exception):
    pass


def parse_rfc3339(s: str) -> int:
    """Epoch ms of a strict RFC 3339 string.

    Raises ValueError if malformed, _OutOfRange if valid but outside 1970..9999."""
    m = _RFC3339_RE.fullmatch(s)
    if m is None:
        raise ValueError(f"not RFC 3339: {s!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    frac, zulu, sign, off_h, off_m = m.group(7, 8, 9, 10, 11)
    if not 1 <= month <= 12 or not 1 <= day <= _days_in_month(year, month):
        raise ValueError(f"no such date: {s!r}")
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"no such time: {s!r}")
    offset_ms = 0
    if not zulu:
        oh, om = int(off_h), int(off_m)
        if oh > 23 or om > 59:
            raise ValueError(f"bad offset: {s!r}")
        offset_ms = (oh * 60 + om) * 60_000 * (1 if sign == "+" else -1)
    if year == 0:  # valid date, but far before 1970 whatever the offset (datetime has no year 0)
        raise _OutOfRange(s)
    local = dt.datetime(year, month, day, hour, minute, second)
    ms = (local - _EPOCH) // dt.timedelta(milliseconds=1)
    ms += int((frac or "0")[:3].ljust(3, "0"))  # truncate to milliseconds
    ms -= offset_ms  # local = UTC + offset
    if not 0 <= ms <= TS_MAX_MS:
        raise _OutOfRange(s)
    return ms


# --------------------------------------------------------------------------- windows


def hour_of(ts: int) -> int:
    return ts // HOUR_MS * HOUR_MS


def week_start_of(ts: int) -> int:
    day = ts // DAY_MS
    return (day - (day + 3) % 7) * DAY_MS


# --------------------------------------------------------------------------- validation


class Reject(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _is_int(v: Any) -> bool:
    return type(v) is int  # bool is not an integer; NonInteger / float are not


def _lookup(obj: dict[str, Any], *keys: str) -> Any:
    """Value of the first key whose value is not null; None if all missing/null."""
    for k in keys:
        v = obj.get(k)
        if v is not None:
            return v
    return None


def _string(obj: dict[str, Any], name: str, keys: tuple[str, ...], min_len: int, required: bool) -> str | None:
    v = _lookup(obj, *keys)
    if v is None:
        if required:
            raise Reject(f"missing_field:{name}")
        return None
    max_len = 128 if name == "event_id" else 256
    if not isinstance(v, str) or not min_len <= len(v) <= max_len:
        raise Reject(f"invalid_field:{name}")
    return v


def _count(obj: dict[str, Any], name: str, keys: tuple[str, ...]) -> int | None:
    v = _lookup(obj, *keys)
    if v is None:
        return None
    if not _is_int(v):
        raise Reject(f"invalid_field:{name}")
    if not 0 <= v <= TOKENS_MAX:
        raise Reject(f"out_of_range:{name}")
    assert isinstance(v, int)
    return v


@dataclass
class Event:
    event_id: str
    ts: int
    user: str
    model: str
    team: str
    app: str
    provider: str
    session_id: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    reasoning_tokens: int
    tokens_estimated: int
    status: str
    finish_reason: str
    latency_ms: int | None
    prompt: str | None = None  # for waste fingerprints only, never output
    output: str | None = None
    fingerprint: tuple[str, Fingerprint] | None = None  # (key id, print) sent instead of text


def validate(obj: dict[str, Any], count_tokens: CountTokens) -> Event:
    """The event of one element, or ``Reject`` with the first failing check's reason."""
    event_id = _string(obj, "event_id", ("event_id",), 1, True)
    assert event_id is not None

    raw_ts = _lookup(obj, "ts")
    if raw_ts is None:
        raise Reject("missing_field:ts")
    if _is_int(raw_ts):
        if not 0 <= raw_ts <= TS_MAX_MS:
            raise Reject("out_of_range:ts")
        ts = int(raw_ts)
    elif isinstance(raw_ts, str):
        try:
            ts = parse_rfc3339(raw_ts)
        except _OutOfRange:
            raise Reject("out_of_range:ts") from None
        except ValueError:
            raise Reject("invalid_field:ts") from None
    else:
        raise Reject("invalid_field:ts")

    user = _string(obj, "user", ("user", "user_id", "enduser.id"), 1, True)
    model = _string(obj, "model", ("model", "gen_ai.request.model", "gen_ai.response.model"), 1, True)
    team = _string(obj, "team", ("team",), 0, False)
    app = _string(obj, "app", ("app",), 0, False)
    provider = _string(obj, "provider", ("provider", "gen_ai.provider.name"), 0, False)
    session_id = _string(obj, "session_id", ("session_id", "gen_ai.conversation.id"), 0, False)
    assert user is not None and model is not None

    input_tokens = _count(obj, "input_tokens", ("input_tokens", "gen_ai.usage.input_tokens"))
    output_tokens = _count(obj, "output_tokens", ("output_tokens", "gen_ai.usage.output_tokens"))

    prompt = _lookup(obj, "prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise Reject("invalid_field:prompt")
    output = _lookup(obj, "output")
    if output is not None and not isinstance(output, str):
        raise Reject("invalid_field:output")
    sent = _lookup(obj, "fingerprint")
    sent_fp = decode_fingerprint(sent) if sent is not None else None

    cached = _count(obj, "cached_input_tokens", ("cached_input_tokens", "gen_ai.usage.cache_read.input_tokens"))
    reasoning = _count(obj, "reasoning_tokens", ("reasoning_tokens",))

    status = _lookup(obj, "status")
    if status is None:
        status = "ok"
    elif status not in ("ok", "error"):  # also catches non-strings
        raise Reject("invalid_field:status")

    fr = _lookup(obj, "finish_reason", "gen_ai.response.finish_reasons")
    if fr is None:
        finish_reason = ""
    elif isinstance(fr, str):
        finish_reason = fr
    elif isinstance(fr, list):
        if not fr:
            finish_reason = ""
        elif isinstance(fr[0], str):
            finish_reason = fr[0]
        else:
            raise Reject("invalid_field:finish_reason")
    else:
        raise Reject("invalid_field:finish_reason")

    latency = _lookup(obj, "latency_ms")
    if latency is not None:
        if not _is_int(latency):
            raise Reject("invalid_field:latency_ms")
        if not 0 <= latency <= LATENCY_MAX:
            raise Reject("out_of_range:latency_ms")

    if input_tokens is None and output_tokens is None and prompt is None and output is None:
        raise Reject("missing_usage")

    estimated = False
    if input_tokens is None:
        if prompt is not None:
            input_tokens, est = count_tokens(prompt, model)
            estimated = estimated or est
        else:
            input_tokens = 0
    if output_tokens is None:
        if output is not None:
            output_tokens, est = count_tokens(output, model)
            estimated = estimated or est
        else:
            output_tokens = 0

    cached = 0 if cached is None else cached
    reasoning = 0 if reasoning is None else reasoning
    if cached > input_tokens:
        raise Reject("out_of_range:cached_input_tokens")
    if reasoning > output_tokens:
        raise Reject("out_of_range:reasoning_tokens")

    return Event(
        event_id=event_id,
        ts=ts,
        user=user,
        model=model,
        team=team or "",
        app=app or "",
        provider=provider or "",
        session_id=session_id or "",
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_input_tokens=cached,
        reasoning_tokens=reasoning,
        tokens_estimated=int(estimated),
        status=status,
        finish_reason=finish_reason,
        latency_ms=latency,
        prompt=prompt,
        output=output,
        fingerprint=sent_fp,
    )


# --------------------------------------------------------------------------- splitting


@dataclass
class Element:
    idx: int
    raw: bytes
    obj: dict[str, Any] | None  # None: rejected while splitting, see reason
    reason: str = ""


def split_message(value: bytes, max_message_bytes: int) -> list[Element]:
    """The elements (and splitting rejections) of one message, in order."""
    if len(value) > max_message_bytes:
        return [Element(0, value, None, "too_large")]
    body = value[3:] if value.startswith(BOM) else value
    try:
        whole = parse_json(body)
    except _Unparsable:
        pass
    else:
        if isinstance(whole, dict):
            return [Element(0, value, whole)]  # raw: the original bytes, BOM included
        if isinstance(whole, list):
            texts = _array_item_texts(body.decode("utf-8"))
            assert len(texts) == len(whole)
            out = []
            for i, (item, text) in enumerate(zip(whole, texts, strict=True)):
                raw = text.encode("utf-8")
                if isinstance(item, dict):
                    out.append(Element(i, raw, item))
                else:
                    out.append(Element(i, raw, None, "not_an_object"))
            return out
        return [Element(0, value, None, "not_an_object")]

    # NDJSON
    lines = [ln for ln in body.split(b"\n") if ln.strip(b" \t\r")]
    if len(lines) <= 1:
        return [Element(0, value, None, "invalid_json")]
    out = []
    for i, line in enumerate(lines):
        try:
            item = parse_json(line)
        except _Unparsable:
            out.append(Element(i, line, None, "invalid_json"))
            continue
        if isinstance(item, dict):
            out.append(Element(i, line, item))
        else:
            out.append(Element(i, line, None, "not_an_object"))
    if all(e.reason == "invalid_json" for e in out):
        return [Element(0, value, None, "invalid_json")]
    return out


def element_starts(value: bytes, elements: list[Element]) -> list[int]:
    """Where each element's raw bytes start in ``value`` (elements are in order
    and separated by whitespace, commas or newlines only)."""
    starts, pos = [], 0
    for el in elements:
        at = value.find(el.raw, pos) if el.raw is not value else 0
        assert at >= 0
        starts.append(at)
        pos = at + len(el.raw)
    return starts


def cap_elements(value: bytes, elements: list[Element], max_elements: int) -> list[Element]:
    """docs/semantics.md "Fan-out limits": the rest past ``max_elements`` is one rejection."""
    if len(elements) <= max_elements:
        return elements
    start = element_starts(value, elements)[max_elements]
    return [*elements[:max_elements], Element(max_elements, value[start:], None, "too_many_elements")]


# --------------------------------------------------------------------------- the reference


def _zero_hourly() -> dict[str, Any]:
    return {
        "requests": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "cached_input_tokens": 0,
        "total_tokens": 0,
        "wasted_tokens": 0,
        "cost_usd": 0.0,
    }


def _zero_weekly() -> dict[str, Any]:
    return {
        "requests": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "total_tokens": 0,
        "wasted_tokens": 0,
        "cost_usd": 0.0,
        "team": "",
        "team_ts": 0,
        "final": False,
    }


def _zero_waste() -> dict[str, Any]:
    return {"requests": 0, "wasted_tokens": 0, "final": False}


@dataclass
class RefBatch:
    """What one ``process`` call produced (rows are cumulative cell values)."""

    events: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    hourly: dict[tuple[int, int, str, str], dict[str, Any]] = field(default_factory=dict)
    weekly: dict[tuple[int, int, str], dict[str, Any]] = field(default_factory=dict)
    waste: dict[tuple[int, int, str, str], dict[str, Any]] = field(default_factory=dict)
    duplicates: int = 0
    watermarks: dict[int, int] = field(default_factory=dict)


# --------------------------------------------------------------------------- waste


@dataclass(frozen=True)
class WasteConfig:
    min_prompt_tokens: int = 32
    duplicate_window_ms: int = 3_600_000
    free_repeats: int = 1
    storm_window_ms: int = 10_000
    storm_min: int = 3
    loop_window_ms: int = 600_000
    loop_min: int = 1
    loop_bits: int = 3
    repeat_pct: int = 50
    resend_window_ms: int = 86_400_000
    resend_free: int = 2
    reask_free: int = 3
    reask_prompt_pct: int = 10
    reask_output_pct: int = 20
    short_repeat_pct: int = 40
    loop_answer_pct: int = 50

    @property
    def memory_ms(self) -> int:
        return max(
            self.duplicate_window_ms,
            self.storm_window_ms,
            self.loop_window_ms,
            self.resend_window_ms,
        )

    @property
    def kept_per_prompt(self) -> int:
        return min(max(self.storm_min - 1, self.free_repeats + 1, self.resend_free + 1), 64)


_MASK64 = (1 << 64) - 1
_ASCII_SPACE = re.compile(rb"[ \t\n\r\x0b\x0c]+")


def _xxh3(data: bytes) -> int:
    import xxhash

    return int(xxhash.xxh3_64_intdigest(data))


# --------------------------------------------------------------------------- fingerprints
# docs/semantics.md "Fingerprints", written out the obvious way: SipHash-2-4
# byte by byte, SimHash votes as 64 integers, repetition with a list of marks.

FINGERPRINT_VERSION = 2
SKETCH_MIN_WORDS = 50
SKETCH_BYTES = 64


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _MASK64


def siphash24(key: tuple[int, int], data: bytes) -> int:
    """SipHash-2-4 (Aumasson & Bernstein) with the 128-bit key (k0, k1)."""
    k0, k1 = key
    v = [k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D, k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573]

    def sipround() -> None:
        v[0] = (v[0] + v[1]) & _MASK64
        v[1] = _rotl(v[1], 13) ^ v[0]
        v[0] = _rotl(v[0], 32)
        v[2] = (v[2] + v[3]) & _MASK64
        v[3] = _rotl(v[3], 16) ^ v[2]
        v[0] = (v[0] + v[3]) & _MASK64
        v[3] = _rotl(v[3], 21) ^ v[0]
        v[2] = (v[2] + v[1]) & _MASK64
        v[1] = _rotl(v[1], 17) ^ v[2]
        v[2] = _rotl(v[2], 32)

    def compress(m: int) -> None:
        v[3] ^= m
        sipround()
        sipround()
        v[0] ^= m

    full = len(data) - len(data) % 8
    for i in range(0, full, 8):
        compress(int.from_bytes(data[i : i + 8], "little"))
    compress(int.from_bytes(data[full:], "little") | (len(data) & 0xFF) << 56)
    v[2] ^= 0xFF
    for _ in range(4):
        sipround()
    return v[0] ^ v[1] ^ v[2] ^ v[3]


@dataclass(frozen=True)
class FingerprintKey:
    k0: int
    k1: int
    id: str  # 8 hex digits


def fingerprint_key(secret: bytes) -> FingerprintKey:
    d = hashlib.sha256(b"tokenlord fingerprint v1\0" + secret).digest()
    return FingerprintKey(int.from_bytes(d[0:8], "little"), int.from_bytes(d[8:16], "little"), d[16:20].hex())


def _mix(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def waste_words(text: str) -> list[bytes]:
    return [w.lower() for w in _ASCII_SPACE.split(text.encode("utf-8", "surrogatepass")) if w]


def _lower_ascii(w: bytes) -> bytes:
    return bytes(b + 32 if 65 <= b <= 90 else b for b in w)


def simhash(hashes: list[int]) -> int:
    votes = [0] * 64
    for h in hashes:
        for bit in range(64):
            votes[bit] += 1 if h >> bit & 1 else -1
    return sum(1 << bit for bit in range(64) if votes[bit] > 0)


def _repeated(hashes: list[int], lens: list[int], n: int) -> tuple[int, int]:
    """(bytes of units inside a window of n units seen before, bytes of all units)."""
    seen: set[int] = set()
    marked = [False] * len(hashes)
    for j in range(max(0, len(hashes) - n + 1)):
        h = 0
        for u in hashes[j : j + n]:
            h = u ^ _rotl(h, 7)
        if h in seen:
            for k in range(j, j + n):
                marked[k] = True
        else:
            seen.add(h)
    return sum(n for n, m in zip(lens, marked, strict=True) if m), sum(lens)


@dataclass(frozen=True)
class Side:
    hash: int
    sim: int
    bag: int
    repeat: tuple[int, int]
    words: int
    bytes: int
    repeat3: tuple[int, int] = (0, 0)
    mh: bytes | None = None  # 64 bytes


def minhash(shingles: list[int]) -> bytes:
    """One-permutation MinHash: bucket s >> 58 keeps its smallest s; an empty bucket
    takes the next non-empty one's (cyclically); each bucket is its value's low byte."""
    mins: dict[int, int] = {}
    for s in shingles:
        b = s >> 58
        mins[b] = min(mins.get(b, s), s)
    out = []
    for i in range(SKETCH_BYTES):
        j = next((i + d) % SKETCH_BYTES for d in range(SKETCH_BYTES) if (i + d) % SKETCH_BYTES in mins)
        out.append(mins[j] & 0xFF)
    return bytes(out)


def side(key: FingerprintKey, text: str, with_hash: bool) -> Side | None:
    raw = text.encode("utf-8", "surrogatepass")
    words = [_lower_ascii(w) for w in _ASCII_SPACE.split(raw) if w]
    if not words:
        return None
    k = (key.k0, key.k1)
    w = [siphash24(k, x) for x in words]
    padded = [*w, 0, 0]
    shingles = [_mix(padded[0] ^ _rotl(padded[1], 21))] if len(w) < 3 else []
    shingles += [_mix(w[i] ^ _rotl(w[i + 1], 21) ^ _rotl(w[i + 2], 42)) for i in range(len(w) - 2)]
    if len(w) >= 50:
        repeat = _repeated(w, [len(x) for x in words], 10)
    else:
        joined = b" ".join(words)
        if len(joined) < 2000:
            repeat = (0, 0)
        else:
            chunks = [joined[i : i + 16] for i in range(0, len(joined), 16)]
            repeat = _repeated([siphash24(k, c) for c in chunks], [len(c) for c in chunks], 4)
    whole = siphash24(k, b"".join(x.to_bytes(8, "little") for x in w)) | 1 if with_hash else 0
    sketched = len(w) >= SKETCH_MIN_WORDS
    repeat3 = _repeated(w, [len(x) for x in words], 3) if sketched and with_hash else (0, 0)
    mh = minhash(shingles) if sketched else None
    return Side(whole, simhash(shingles), simhash(w), repeat, len(w), len(raw), repeat3, mh)


@dataclass(frozen=True)
class Fingerprint:
    prompt: Side | None = None
    output: Side | None = None


def fingerprint(key: FingerprintKey, prompt: str | None, output: str | None) -> Fingerprint:
    return Fingerprint(
        side(key, prompt, True) if prompt is not None else None,
        side(key, output, False) if output is not None else None,
    )


def fingerprint_wire(key: FingerprintKey, fp: Fingerprint) -> dict[str, Any]:
    """The ``fingerprint`` field a gateway sends for ``fp``."""
    out: dict[str, Any] = {"v": FINGERPRINT_VERSION, "key": key.id}
    for name, s in (("prompt", fp.prompt), ("output", fp.output)):
        if s is not None:
            d: dict[str, Any] = {"hash": f"{s.hash:016x}"} if name == "prompt" else {}
            d.update(sim=f"{s.sim:016x}", bag=f"{s.bag:016x}", rep=list(s.repeat))
            if name == "prompt":
                d["rep3"] = list(s.repeat3)
            if s.mh is not None:
                d["mh"] = s.mh.hex()
            d.update(words=s.words, bytes=s.bytes)
            out[name] = d
    return out


_HEX16 = re.compile(r"[0-9a-fA-F]{16}")
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")


def decode_fingerprint(value: Any) -> tuple[str, Fingerprint]:
    """(key id, print) of a ``fingerprint`` field, or ``Reject("invalid_field:fingerprint")``."""
    bad = Reject("invalid_field:fingerprint")
    if not isinstance(value, dict) or not _is_int(value.get("v")) or value.get("v") not in (1, 2):
        raise bad
    version = value["v"]
    kid = value.get("key")
    if not isinstance(kid, str) or not _HEX8.fullmatch(kid):
        raise bad

    def hex16(v: Any) -> int:
        if not isinstance(v, str) or not _HEX16.fullmatch(v):
            raise bad
        return int(v, 16)

    def nat(v: Any) -> int:
        if not _is_int(v) or not 0 <= v < 2**64:
            raise bad
        return int(v)

    def one(d: Any, is_prompt: bool) -> Side | None:
        if d is None:
            return None
        if not isinstance(d, dict):
            raise bad

        def pair(v: Any) -> tuple[int, int]:
            if not isinstance(v, list) or len(v) != 2:
                raise bad
            return nat(v[0]), nat(v[1])

        (r, t), words, size = pair(d.get("rep")), nat(d.get("words")), nat(d.get("bytes"))
        h = hex16(d.get("hash")) | 1 if is_prompt else 0
        sim, bag = hex16(d.get("sim")), hex16(d.get("bag"))
        if words == 0 or r > t or t > size or words > size:
            raise bad
        repeat3, mh = (0, 0), None
        if version == 2:
            if is_prompt:
                repeat3 = pair(d.get("rep3"))
                if repeat3[0] > repeat3[1] or repeat3[1] > size:
                    raise bad
            if ("mh" in d) != (words >= SKETCH_MIN_WORDS):
                raise bad
            if "mh" in d:
                m = d["mh"]
                if not isinstance(m, str) or not re.fullmatch(r"[0-9a-fA-F]{128}", m):
                    raise bad
                mh = bytes.fromhex(m)
        return Side(h, sim, bag, (r, t), words, size, repeat3, mh)

    return kid.lower(), Fingerprint(one(value.get("prompt"), True), one(value.get("output"), False))


def _share(tokens: int, rep: tuple[int, int], pct: int) -> int:
    repeated, total = rep
    if total == 0 or repeated * 100 < pct * total:
        return 0
    return tokens * repeated // total


# (ts, prompt sim, output sim, has output text, output tokens, input tokens,
#  prompt sketch, output sketch) — b"" for no sketch (orders like the core's None)
Recent = tuple[int, int, int, bool, int, int, bytes, bytes]
RECENT_MAX = 256


@dataclass
class UserWaste:
    prompts: dict[int, list[int]] = field(default_factory=dict)
    recent: list[Recent] = field(default_factory=list)

    def judge(
        self, cfg: WasteConfig, ts: int, since: int, model: str, is_error: bool, inp: int, out: int, fp: Fingerprint
    ) -> tuple[int, str]:
        total = inp + out
        if fp.prompt is not None:
            prompt = fp.prompt.hash
        elif inp >= cfg.min_prompt_tokens:
            prompt = _xxh3(f"\0counts\0{model}\0{inp}".encode()) | 1
        else:
            prompt = 0
        repeatable = prompt != 0 and inp >= cfg.min_prompt_tokens

        def within(t: int, span: int) -> bool:
            return t >= since and abs(ts - t) <= span

        def near(a: int, b: int, bits: int) -> bool:
            return bin(a ^ b).count("1") <= bits

        def alike(a: bytes, b: bytes, pct: int) -> bool:
            return sum(x == y for x, y in zip(a, b, strict=True)) * 100 >= pct * SKETCH_BYTES

        def same_answer(x: Recent) -> bool:
            if x[3] and fp.output is not None:
                o_mh = fp.output.mh
                sketches_agree = not (x[7] and o_mh) or alike(x[7], o_mh, cfg.loop_answer_pct)
                return near(x[2], fp.output.sim, cfg.loop_bits) and sketches_agree
            if not x[3] and fp.output is None:
                return abs(x[4] - out) * 10 <= max(x[4], out)
            return False

        if is_error:
            verdict = (total, "failed_request")
        else:
            times = self.prompts.get(prompt, []) if repeatable else []
            storm = sum(within(t, cfg.storm_window_ms) for t in times)
            dups = sum(within(t, cfg.duplicate_window_ms) for t in times)
            resent = sum(within(t, cfg.resend_window_ms) for t in times) if fp.prompt is not None else 0
            looped = looped_slowly = reasked = 0
            if repeatable and fp.prompt is not None:
                p = fp.prompt
                o_mh = fp.output.mh if fp.output is not None else None
                for x in self.recent:
                    in_loop, in_day = within(x[0], cfg.loop_window_ms), within(x[0], cfg.resend_window_ms)
                    if near(x[1], p.sim, cfg.loop_bits) and same_answer(x):
                        looped += in_loop
                        looped_slowly += in_day
                    if in_day and p.mh is not None and o_mh is not None and x[6] and x[7]:
                        # a prompt that grew by the earlier answer continues that conversation
                        reasked += (
                            inp < x[5] + x[4]
                            and alike(p.mh, x[6], cfg.reask_prompt_pct)
                            and alike(o_mh, x[7], cfg.reask_output_pct)
                        )
            if storm + 1 >= cfg.storm_min:
                verdict = (total, "retry_storm")
            elif looped >= cfg.loop_min or looped_slowly > cfg.resend_free:
                verdict = (total, "agent_loop")
            elif dups > cfg.free_repeats or resent > cfg.resend_free:
                verdict = (total, "duplicate_prompt")
            elif reasked > cfg.reask_free:
                verdict = (total, "near_duplicate")
            else:
                padded = max(
                    _share(inp, fp.prompt.repeat if fp.prompt else (0, 0), cfg.repeat_pct),
                    _share(inp, fp.prompt.repeat3 if fp.prompt else (0, 0), cfg.short_repeat_pct),
                )
                repetitive = _share(out, fp.output.repeat if fp.output else (0, 0), cfg.repeat_pct)
                if padded == 0 and repetitive == 0:
                    verdict = (0, "")
                elif padded >= repetitive:
                    verdict = (padded + repetitive, "padded_prompt")
                else:  # the request bought mostly repetition: its prompt is spent too
                    verdict = (inp + repetitive, "repetitive_output")
        if repeatable:
            kept = sorted([*self.prompts.get(prompt, []), ts], reverse=True)[: cfg.kept_per_prompt]
            self.prompts[prompt] = kept
            if fp.prompt is not None:
                o = fp.output
                p_mh, o_mh = fp.prompt.mh or b"", (o.mh if o else None) or b""
                self.recent.append((ts, fp.prompt.sim, o.sim if o else 0, o is not None, out, inp, p_mh, o_mh))
                if len(self.recent) > RECENT_MAX:
                    self.recent.remove(min(self.recent))
        return verdict


class Reference:
    """docs/semantics.md, literally. Keeps every cell ever created (closed ones with final=True)."""

    def __init__(
        self,
        *,
        grace_ms: int = 3_600_000,
        dedupe_horizon_ms: int = 86_400_000,
        future_tolerance_ms: int = 600_000,
        max_message_bytes: int = 1_048_576,
        prices: dict[str, tuple[float, float, float]] | None = None,
        count_tokens: CountTokens,
        waste: WasteConfig | None = None,
        fingerprint_secret: bytes = b"",
        max_elements_per_message: int = 10_000,
        max_rejections_per_message: int = 100,
        max_rejections_per_batch: int = 10_000,
    ) -> None:
        self.max_elements_per_message = max_elements_per_message
        self.max_rejections_per_message = max_rejections_per_message
        self.max_rejections_per_batch = max_rejections_per_batch
        self.waste_cfg = waste or WasteConfig()
        self.fingerprint_key = fingerprint_key(fingerprint_secret)
        self._user_waste: dict[tuple[int, str], UserWaste] = {}
        self.grace_ms = grace_ms
        self.dedupe_horizon_ms = dedupe_horizon_ms
        self.future_tolerance_ms = future_tolerance_ms
        self.max_message_bytes = max_message_bytes
        self.prices = dict(prices or {})
        self.count_tokens = count_tokens
        self.watermarks: dict[int, int] = {}
        self.duplicates = 0
        self._seen: dict[int, dict[str, int]] = {}  # partition -> event_id -> ts of the accepted copy
        self._events: list[dict[str, Any]] = []
        self._rejected: list[Rejection] = []
        self._hourly: dict[tuple[int, int, str, str], dict[str, Any]] = {}
        self._weekly: dict[tuple[int, int, str], dict[str, Any]] = {}
        self._waste: dict[tuple[int, int, str, str], dict[str, Any]] = {}
        # Keys of the cells of still-open weeks, per partition (an index to keep closing cheap).
        self._open_weekly: dict[int, set[tuple[int, int, str]]] = {}
        self._open_waste: dict[int, set[tuple[int, int, str, str]]] = {}
        self._seen_prune_at: dict[int, int] = {}

    # ---- rules

    def price(self, model: str) -> tuple[float, float, float]:
        best = ""
        for prefix in self.prices:
            if model.startswith(prefix) and len(prefix) > len(best):
                best = prefix
        return self.prices[best] if best else (0.0, 0.0, 0.0)

    def cost(self, ev: Event) -> float:
        p_in, p_cached, p_out = self.price(ev.model)
        uncached = ev.input_tokens - ev.cached_input_tokens
        return (uncached * p_in + ev.cached_input_tokens * p_cached + ev.output_tokens * p_out) / 1_000_000

    def week_closed(self, partition: int, week_start: int) -> bool:
        wm = self.watermarks.get(partition)
        return wm is not None and wm >= week_start + WEEK_MS + self.grace_ms

    # ---- processing

    def process(
        self,
        partitions: Sequence[int],
        offsets: Sequence[int],
        values: Sequence[bytes],
        now_ms: int,
    ) -> RefBatch:
        if not len(partitions) == len(offsets) == len(values):
            raise ValueError("partitions, offsets and values differ in length")
        batch = RefBatch()
        touched_h: set[tuple[int, int, str, str]] = set()
        touched_w: set[tuple[int, int, str]] = set()
        touched_x: set[tuple[int, int, str, str]] = set()
        for p, off, value in zip(partitions, offsets, values, strict=True):
            value = bytes(value)
            elements = cap_elements(value, split_message(value, self.max_message_bytes), self.max_elements_per_message)
            in_message = 0
            for n, el in enumerate(elements):
                reason = el.reason
                if el.obj is not None:
                    reason = self._element(p, off, el, now_ms, batch, touched_h, touched_w, touched_x)
                if not reason:
                    continue
                full = (
                    in_message >= self.max_rejections_per_message
                    or len(batch.rejected) >= self.max_rejections_per_batch
                )
                if full and n < len(elements) - 1:
                    rest = value[element_starts(value, elements)[n] :]
                    batch.rejected.append((p, off, el.idx, "too_many_rejections", rest))
                    break
                in_message += 1
                batch.rejected.append((p, off, el.idx, reason, el.raw))
        # Close weeks on every partition the batch touched; forget ids beyond the horizon.
        for p in set(partitions):
            for key in sorted(self._open_weekly.get(p, ())):
                if self.week_closed(p, key[1]):
                    self._weekly[key]["final"] = True
                    self._open_weekly[p].discard(key)
                    touched_w.add(key)
            for xkey in sorted(self._open_waste.get(p, ())):
                if self.week_closed(p, xkey[1]):
                    self._waste[xkey]["final"] = True
                    self._open_waste[p].discard(xkey)
            self._forget(p)
        self._events += batch.events
        self._rejected += batch.rejected
        self.duplicates += batch.duplicates
        batch.hourly = {k: dict(self._hourly[k]) for k in sorted(touched_h)}
        batch.weekly = {k: dict(self._weekly[k]) for k in sorted(touched_w)}
        batch.waste = {k: dict(self._waste[k]) for k in sorted(touched_x)}
        batch.watermarks = {p: self.watermarks[p] for p in sorted(set(partitions)) if p in self.watermarks}
        return batch

    def _element(
        self,
        p: int,
        off: int,
        el: Element,
        now_ms: int,
        batch: RefBatch,
        touched_h: set[tuple[int, int, str, str]],
        touched_w: set[tuple[int, int, str]],
        touched_x: set[tuple[int, int, str, str]],
    ) -> str:
        """Validate and apply one element; the rejection reason, "" if accepted or a duplicate."""
        assert el.obj is not None
        try:
            ev = validate(el.obj, self.count_tokens)
        except Reject as r:
            return r.reason
        # Text wins, side by side; a print under another key matches nothing.
        fp = fingerprint(self.fingerprint_key, ev.prompt, ev.output)
        if ev.fingerprint is not None:
            kid, sent = ev.fingerprint
            if kid != self.fingerprint_key.id:
                return "invalid_field:fingerprint"
            fp = Fingerprint(
                fp.prompt if ev.prompt is not None else sent.prompt,
                fp.output if ev.output is not None else sent.output,
            )
        # 1. future
        if ev.ts > now_ms + self.future_tolerance_ms:
            return "future_timestamp"
        # 2. duplicate
        wm = self.watermarks.get(p)
        seen = self._seen.setdefault(p, {})
        if ev.event_id in seen and wm is not None and seen[ev.event_id] >= wm - self.dedupe_horizon_ms:
            batch.duplicates += 1
            return ""
        # 3. late
        week = week_start_of(ev.ts)
        if self.week_closed(p, week):
            return "late"
        # 4. accepted
        seen[ev.event_id] = ev.ts
        self.watermarks[p] = ev.ts if wm is None else max(wm, ev.ts)

        total = ev.input_tokens + ev.output_tokens
        wasted, waste_reason = self._user_waste.setdefault((p, ev.user), UserWaste()).judge(
            self.waste_cfg,
            ev.ts,
            self.watermarks[p] - max(self.waste_cfg.memory_ms, self.dedupe_horizon_ms),
            ev.model,
            ev.status == "error",
            ev.input_tokens,
            ev.output_tokens,
            fp,
        )
        cost = self.cost(ev)
        batch.events.append(
            {
                "event_id": ev.event_id,
                "ts": ev.ts,
                "user": ev.user,
                "team": ev.team,
                "app": ev.app,
                "model": ev.model,
                "provider": ev.provider,
                "session_id": ev.session_id,
                "input_tokens": ev.input_tokens,
                "output_tokens": ev.output_tokens,
                "cached_input_tokens": ev.cached_input_tokens,
                "reasoning_tokens": ev.reasoning_tokens,
                "total_tokens": total,
                "tokens_estimated": ev.tokens_estimated,
                "status": ev.status,
                "finish_reason": ev.finish_reason,
                "latency_ms": ev.latency_ms,
                "cost_usd": cost,
                "wasted_tokens": wasted,
                "waste_reason": waste_reason,
                "src_partition": p,
                "src_offset": off,
            }
        )

        hkey = (p, hour_of(ev.ts), ev.user, ev.model)
        h = self._hourly.setdefault(hkey, _zero_hourly())
        h["requests"] += 1
        h["input_tokens"] += ev.input_tokens
        h["output_tokens"] += ev.output_tokens
        h["cached_input_tokens"] += ev.cached_input_tokens
        h["total_tokens"] += total
        h["wasted_tokens"] += wasted
        h["cost_usd"] += cost
        touched_h.add(hkey)

        wkey = (p, week, ev.user)
        w = self._weekly.setdefault(wkey, _zero_weekly())
        assert not w["final"]
        w["requests"] += 1
        w["input_tokens"] += ev.input_tokens
        w["output_tokens"] += ev.output_tokens
        w["total_tokens"] += total
        w["wasted_tokens"] += wasted
        w["cost_usd"] += cost
        if ev.team and (not w["team"] or (ev.ts, ev.team) > (w["team_ts"], w["team"])):
            w["team"], w["team_ts"] = ev.team, ev.ts
        touched_w.add(wkey)
        self._open_weekly.setdefault(p, set()).add(wkey)

        if wasted > 0:
            xkey = (p, week, ev.user, waste_reason)
            x = self._waste.setdefault(xkey, _zero_waste())
            x["requests"] += 1
            x["wasted_tokens"] += wasted
            touched_x.add(xkey)
            self._open_waste.setdefault(p, set()).add(xkey)
        return ""

    def _forget(self, p: int) -> None:
        """Drop remembered ids below the horizon (the duplicate rule ignores them anyway).

        Only to bound memory; done when the map has doubled since the last pass."""
        seen = self._seen.get(p)
        wm = self.watermarks.get(p)
        if not seen or wm is None or len(seen) < 2 * self._seen_prune_at.get(p, 512):
            return
        floor = wm - self.dedupe_horizon_ms
        for k in [k for k, t in seen.items() if t < floor]:
            del seen[k]
        self._seen_prune_at[p] = len(seen)

    # ---- final state after all batches

    def events(self) -> list[dict[str, Any]]:
        return [dict(e) for e in self._events]

    def hourly(self) -> dict[tuple[int, int, str, str], dict[str, Any]]:
        return {k: dict(v) for k, v in self._hourly.items()}

    def weekly(self) -> dict[tuple[int, int, str], dict[str, Any]]:
        return {k: dict(v) for k, v in self._weekly.items()}

    def waste(self) -> dict[tuple[int, int, str, str], dict[str, Any]]:
        return {k: dict(v) for k, v in self._waste.items()}

    def rejected(self) -> list[Rejection]:
        return list(self._rejected)
