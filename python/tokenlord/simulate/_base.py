"""The simulator's building blocks: constants, seeded random helpers, the text pool, users and requests."""

from __future__ import annotations

import bisect
import datetime as dt
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from tokenlord.time_utils import DAY_MS

HONEST = "honest"
AGENT_LOOP = "agent_loop"
RETRY_STORM = "retry_storm"
PADDED_PROMPT = "padded_prompt"
LONG_OUTPUT = "long_output"
RESENT_PROMPT = "resent_prompt"
PATTERNS = (AGENT_LOOP, RETRY_STORM, PADDED_PROMPT, LONG_OUTPUT, RESENT_PROMPT)
LABELS = (HONEST, *PATTERNS)

# outcome -> (share, value); "rejected" (the work was turned down) has no value.
OUTCOMES: dict[str, tuple[float, float | None]] = {
    "merged": (0.35, 1.0),
    "resolved": (0.25, 1.0),
    "accepted": (0.30, 0.5),
    "rejected": (0.10, None),
}
_OUTCOME_NAMES = tuple(OUTCOMES)

TEAMS = ("platform", "payments", "search", "mobile", "data", "infra", "growth", "security")
_TEAM_WEIGHTS = (22, 15, 14, 12, 11, 10, 9, 7)

# model -> (share of requests, provider, reasoning model, prompt caching)
MODELS: dict[str, tuple[float, str, bool, bool]] = {
    "gpt-4o": (0.20, "openai", False, True),
    "gpt-4.1-mini": (0.16, "openai", False, True),
    "claude-sonnet-4": (0.17, "anthropic", False, True),
    "gpt-4o-mini": (0.09, "openai", False, True),
    "gpt-4.1": (0.08, "openai", False, True),
    "o3": (0.06, "openai", True, True),
    "o4-mini": (0.04, "openai", True, True),
    "gpt-5": (0.04, "openai", True, True),
    "claude-haiku-3.5": (0.05, "anthropic", False, True),
    "llama-3.1-70b": (0.06, "meta", False, False),
    "llama-3.1-8b": (0.03, "meta", False, False),
    "mistral-large": (0.02, "mistral", False, False),  # no price, fallback tokenizer
}
_MODEL_NAMES = tuple(MODELS)


def _cumulative(weights: Iterable[float]) -> list[float]:
    out: list[float] = []
    total = 0.0
    for w in weights:
        total += w
        out.append(total)
    return out


_MODEL_CUM = tuple(_cumulative(m[0] for m in MODELS.values()))
_TEAM_CUM = tuple(_cumulative(_TEAM_WEIGHTS))
_APPS = ("ide", "chat", "cli", "docs-search", "ci-bot")
_APP_CUM = tuple(_cumulative((0.42, 0.3, 0.12, 0.1, 0.06)))
_OUTCOME_CUM = tuple(_cumulative(v[0] for v in OUTCOMES.values()))
_LONG_CONTEXT_MODELS = ("gpt-4.1", "gpt-4.1-mini", "claude-sonnet-4", "gpt-5")
_AGENT_MODELS = ("gpt-4.1-mini", "claude-sonnet-4", "gpt-4o", "o4-mini")

# (UTC offset in minutes, share of users)
_ZONES = (
    (-480, 0.12),
    (-300, 0.2),
    (0, 0.14),
    (60, 0.2),
    (120, 0.08),
    (330, 0.12),
    (480, 0.06),
    (540, 0.08),
)
_ZONE_CUM = tuple(_cumulative(z[1] for z in _ZONES))

# Relative request intensity by local hour of day (business hours, lunch dip).
_DIURNAL = (
    0.04, 0.03, 0.02, 0.02, 0.02, 0.04, 0.1, 0.3, 0.75, 1.0, 1.0, 0.95,
    0.6, 0.85, 1.0, 1.0, 0.9, 0.7, 0.4, 0.25, 0.2, 0.15, 0.1, 0.06,
)  # fmt: skip
_WEEKDAY = (1.0, 1.0, 1.0, 1.0, 0.85, 0.15, 0.1)  # Monday .. Sunday

_FIRST = tuple(
    (
        "ada alan amara anya ben carla chen dana diego elif emma farah felix grace hana ivan "
        "jonas julia kai kofi lara leo lina marco maya mei nia noah omar priya raj rosa sam "
        "sofia tariq tom uma vera wei yuki zoe liam"
    ).split()
)
_LAST = tuple(
    (
        "abe ali berg costa diaz evans fischer garcia haas ito jensen khan kim lopez meyer "
        "moreau nakamura nguyen okafor park patel quinn rossi sato schmidt silva singh smith "
        "tanaka varga wang weber yilmaz zhou"
    ).split()
)
_WORDS = tuple(
    (
        "the a to of and in is for that with on it this be as function return value error "
        "test data user request response model please refactor explain why does fails when "
        "list config deploy query table index cache latency token budget review merge branch "
        "kubernetes pod timeout retry null pointer exception stack trace customer invoice "
        "payment search ranking feature flag metric dashboard summarize document meeting "
        "notes draft email translate optimize sql schema migration async await thread lock "
        "memory leak benchmark def class import self None True { } ( ) => :: -> == const let "
        "fn impl pub struct 0 1 42 200 404 500 2024 über naïve café résumé 日本 数据 сервер "
        "ошибка 🙂 ✅"
    ).split()
)
_PUNCT = (".", ",", "?", ":", ";", "\n", "\n\n", "`", "'")


# ------------------------------------------------------------------ small helpers


def _index(rng: random.Random, cum: Sequence[float]) -> int:
    """A random index, drawn with the weights whose running sums are ``cum``."""
    return min(len(cum) - 1, bisect.bisect_right(cum, rng.random() * cum[-1]))


def _pick(rng: random.Random, items: tuple[Any, ...], cum: Sequence[float]) -> Any:
    return items[_index(rng, cum)]


# Standard normal quantiles at 2^14 evenly spaced probabilities: a table lookup with a
# random index is a (finely discretized, tails cut at ~4 sigma) normal sample, and far
# cheaper than random.gauss, which dominated the generator's profile.
_Z_BITS = 14
_Z = tuple(NormalDist().inv_cdf((i + 0.5) / (1 << _Z_BITS)) for i in range(1 << _Z_BITS))


def _normal(rng: random.Random, sigma: float) -> float:
    return _Z[rng.getrandbits(_Z_BITS)] * sigma


def _lognormal_int(rng: random.Random, median: float, sigma: float, lo: int, hi: int) -> int:
    v = int(median * math.exp(_Z[rng.getrandbits(_Z_BITS)] * sigma))
    return lo if v < lo else hi if v > hi else v


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean > 50:
        return max(0, round(mean + _normal(rng, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _uuid4(rng: random.Random) -> str:
    n = rng.getrandbits(128)
    n = (n & ~(0xF << 76)) | (0x4 << 76)  # version 4
    n = (n & ~(0xC << 60)) | (0x8 << 60)  # RFC 4122 variant
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_EPOCH_DATE = dt.date(1970, 1, 1)
_DATES: dict[int, str] = {}


def _rfc3339(ts: int, offset_min: int, frac: int, zulu: bool) -> str:
    """``ts`` (epoch ms) in local time at ``offset_min``; ``frac`` fraction digits (0, 3 or 6)."""
    day, rem = divmod(ts + offset_min * 60_000, DAY_MS)
    date = _DATES.get(day)
    if date is None:
        date = _DATES[day] = (_EPOCH_DATE + dt.timedelta(days=day)).isoformat()
    secs, ms = divmod(rem, 1000)
    mins, sec = divmod(secs, 60)
    s = f"{date}T{mins // 60:02d}:{mins % 60:02d}:{sec:02d}"
    if frac == 3:
        s += f".{ms:03d}"
    elif frac == 6:
        s += f".{ms:03d}000"
    if offset_min == 0 and zulu:
        return s + "Z"
    sign = "+" if offset_min >= 0 else "-"
    a = abs(offset_min)
    return f"{s}{sign}{a // 60:02d}:{a % 60:02d}"


_MAX_TEXT = 60_000  # characters of one prompt / output (messages stay far below 1 MiB)


class _TextPool:
    """A long seeded pseudo-text; prompts and outputs are slices of it (fast, varied).

    Slices with the same ``start`` share their beginning, so a session's prompts
    (same start, more characters each turn) grow like a real conversation."""

    def __init__(self, rng: random.Random, chars: int = 10 * _MAX_TEXT) -> None:
        parts: list[str] = []
        n = 0
        words, punct = _WORDS, _PUNCT
        while n < chars:
            w = words[int(len(words) * rng.random() ** 1.6)]  # skewed toward common words
            if rng.random() < 0.08:
                w += punct[rng.randrange(len(punct))]
            parts.append(w)
            n += len(w) + 1
        self.text = " ".join(parts)

    def slice(self, start: int, chars: int) -> str:
        start %= len(self.text) - _MAX_TEXT
        return self.text[start : start + max(1, min(chars, _MAX_TEXT))]


@dataclass
class _User:
    idx: int
    name: str
    team: str
    team_after: str  # team from `switch_ms` on ("" = no switch)
    switch_ms: int
    zone: int  # UTC offset, minutes
    sessions_per_day: float
    primary_model: str
    otel: bool  # gateway emits gen_ai.* names
    user_key: str  # "user", "user_id" or "enduser.id"
    epoch_ts: bool
    frac: int
    zulu: bool
    sends_team: bool
    patterns: tuple[str, ...] = ()
    gaming_per_day: float = 0.0
    lookalike: str = ""  # a red-team honest look-alike profile, for a share of the sessions


@dataclass
class _Req:
    """One request of a session before it is rendered in the user's gateway style."""

    ts: int
    model: str
    app: str
    session_id: str
    input_tokens: int
    output_tokens: int
    latency_ms: int
    label: str
    cached: int = 0
    reasoning: int = 0
    status: str = "ok"
    finish_reason: str = "stop"
    prompt_at: int = 0  # text pool offset of the prompt (text events)
    prompt_chars: int = 0
    output_text: str | None = None  # fixed output text (text events); None: any slice
    prompt_text: str | None = None  # fixed prompt text (text events); None: the pool slice
    prompt_suffix: str = ""  # appended to the prompt (text events), e.g. an agent's step
