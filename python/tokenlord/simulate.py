"""Realistic LLM usage traffic: honest users and token-maxxers.

:func:`generate` yields usage events (CONTRACT §1) in time order over a period:

- users with a heavy-tailed (lognormal) activity level, a home team (8 teams,
  uneven sizes; a few users change team, a few events carry none), a time zone
  and a business-hours / weekday rhythm in it;
- sessions of several requests on one model, the input context growing with
  each turn, prompt caching, reasoning tokens on reasoning models, ~1% failed
  requests;
- gateway styles: canonical field names or OpenTelemetry ``gen_ai.*`` names;
  ``ts`` as epoch milliseconds or RFC 3339 strings in the user's UTC offset;
- with ``text_share > 0``, that share of events carries ``prompt`` / ``output``
  text instead of counts (the pipeline tokenizes it), or, with
  ``fingerprints=True``, the provider's counts and the text's ``fingerprint``
  (a gateway that sends no text; :func:`fingerprinted`);
- honest users sometimes regenerate an answer (the same request once more);
- ``gamers`` token-maxxers who, besides honest work, run agent loops (one
  prompt resent over and over with a step counter, the same answer, identical
  counts), retry storms (bursts of identical failing requests), resent prompts
  (the same big prompt every few minutes for fresh answers), padded prompts
  (huge inputs: a question plus repeated filler) and long repetitive outputs.

Every event carries ``_label``: ``"honest"`` or the gaming pattern that produced
it (the pipeline ignores unknown fields). Output is deterministic for a seed
and ``start_ms``; without ``start_ms`` the period ends now.

With ``outcomes=True`` the stream also holds outcome events (CONTRACT §2, they
have an ``outcome`` key; :func:`is_outcome`): about a third of honest sessions
end in a diff merged, a ticket resolved, an answer accepted (or, one in ten, a
rejected diff) minutes to days later, by ``session_id`` (by the last request's
``event_id`` when the session has none); gaming sessions rarely achieve
anything. Outcomes draw from their own random stream: the usage events are the
same with or without them.
"""

from __future__ import annotations

import bisect
import datetime as dt
import gzip
import heapq
import json
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from statistics import NormalDist
from typing import IO, Any

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

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


# ------------------------------------------------------------------ the generator


class _Sim:
    def __init__(
        self,
        users: int,
        days: float,
        gamers: int,
        seed: int,
        start_ms: int | None,
        text_share: float,
        outcomes: bool = False,
        fingerprints: bool = False,
    ) -> None:
        if users < 1:
            raise ValueError("users must be >= 1")
        if days <= 0:
            raise ValueError("days must be > 0")
        if not 0 <= gamers <= users:
            raise ValueError(f"gamers must be between 0 and users ({users})")
        if not 0.0 <= text_share <= 1.0:
            raise ValueError("text_share must be between 0 and 1")
        self.rng = random.Random(seed)
        self.text_share = text_share
        # A gateway that fingerprints its text also has the provider's counts.
        self.counts_with_text = fingerprints
        self.outcome_rng = random.Random(seed ^ 0x0C7C0E) if outcomes else None
        if start_ms is None:
            self.end = int(time.time() * 1000)
            self.start = self.end - int(days * DAY_MS)
        else:
            self.start = start_ms
            self.end = start_ms + int(days * DAY_MS)
        if self.end <= self.start:
            raise ValueError("days is shorter than a millisecond")
        self.pool = _TextPool(random.Random(seed ^ 0x5EED)) if text_share > 0 else None
        self.users = self._make_users(users, gamers)
        self.zone_cum = {z: self._intensity(z) for z, _ in _ZONES}
        self.flat_cum = _cumulative(min(HOUR_MS, self.end - h) for h in range(self.start, self.end, HOUR_MS))

    # ---- population

    def _make_users(self, n: int, gamers: int) -> list[_User]:
        rng = self.rng
        names: set[str] = set()
        users: list[_User] = []
        for i in range(n):
            base = f"{_FIRST[rng.randrange(len(_FIRST))]}.{_LAST[rng.randrange(len(_LAST))]}"
            name, k = base, 1
            while name in names:
                k += 1
                name = f"{base}{k}"
            names.add(name)
            team = _pick(rng, TEAMS, _TEAM_CUM)
            switch = rng.random() < 0.03
            team_after = _pick(rng, TEAMS, _TEAM_CUM) if switch else ""
            otel = rng.random() < 0.2
            users.append(
                _User(
                    idx=i,
                    name=name,
                    team=team,
                    team_after=team_after if team_after != team else "",
                    switch_ms=self.start + int(rng.random() * (self.end - self.start)),
                    zone=_pick(rng, tuple(z for z, _ in _ZONES), _ZONE_CUM),
                    sessions_per_day=min(40.0, 1.6 * math.exp(_normal(rng, 1.0))),
                    primary_model=_pick(rng, _MODEL_NAMES, _MODEL_CUM),
                    otel=otel,
                    user_key=("enduser.id" if rng.random() < 0.6 else "user_id") if otel else "user",
                    epoch_ts=rng.random() < 0.35,
                    frac=(0, 3, 3, 6)[rng.randrange(4)],
                    zulu=rng.random() < 0.5,
                    sends_team=rng.random() > 0.03,
                )
            )
        for j, u in enumerate(rng.sample(users, gamers)):
            first = PATTERNS[j % len(PATTERNS)]
            extra = tuple(p for p in PATTERNS if p != first and rng.random() < 0.25)
            u.patterns = (first, *extra)
            u.gaming_per_day = 2.0 * math.exp(_normal(rng, 0.5))
            u.sessions_per_day = max(u.sessions_per_day, 2.0)
        return users

    def _intensity(self, zone_min: int) -> list[float]:
        """Cumulative request intensity over the period's hours, in a zone's local time."""
        weights = []
        for h in range(self.start, self.end, HOUR_MS):
            local = h + HOUR_MS // 2 + zone_min * 60_000
            w = _DIURNAL[(local // HOUR_MS) % 24] * _WEEKDAY[((local // DAY_MS) + 3) % 7]
            weights.append(w * min(HOUR_MS, self.end - h) / HOUR_MS)
        return _cumulative(weights)

    def _times(self, cum: list[float], n: int) -> list[float]:
        rng, out = self.rng, []
        for _ in range(n):
            b = _index(rng, cum)
            lo = self.start + b * HOUR_MS
            out.append(lo + rng.random() * (min(lo + HOUR_MS, self.end) - lo))
        return out

    def sessions(self) -> list[tuple[float, int, str]]:
        rng = self.rng
        days = (self.end - self.start) / DAY_MS
        # `sessions_per_day` is per full working day: scale by how many of those the
        # period's intensity (in the user's zone) amounts to.
        workday = sum(_DIURNAL)
        out: list[tuple[float, int, str]] = []
        for u in self.users:
            cum = self.zone_cum[u.zone]
            n = _poisson(rng, u.sessions_per_day * cum[-1] / workday)
            out += ((t, u.idx, HONEST) for t in self._times(cum, n))
            for pattern in u.patterns:
                n = _poisson(rng, u.gaming_per_day * days / len(u.patterns))
                # Scripts run at any hour; people at their desks.
                times = self._times(cum, n - n // 2) + self._times(self.flat_cum, n // 2)
                out += ((t, u.idx, pattern) for t in times)
        out.sort()
        return out

    # ---- sessions -> requests

    def _model(self, u: _User) -> str:
        if self.rng.random() < 0.7:
            return u.primary_model
        return str(_pick(self.rng, _MODEL_NAMES, _MODEL_CUM))

    def _latency(self, output: int) -> int:
        return int(200 + output * 14 * math.exp(_normal(self.rng, 0.35)))

    def honest(self, u: _User, t0: float) -> Iterator[_Req]:
        rng = self.rng
        model = self._model(u)
        _, _, reasoning_model, caching = MODELS[model]
        app = _pick(rng, _APPS, _APP_CUM)
        sid = "" if app == "ci-bot" else f"s-{rng.getrandbits(48):012x}"
        n = 1 + min(39, int(rng.expovariate(1 / 5.0)))
        context = _lognormal_int(rng, 1200, 0.9, 200, 20_000)
        prompt_at = rng.getrandbits(30)
        t, prev_input = t0, 0
        for i in range(n):
            output = _lognormal_int(rng, 320, 0.8, 50, 2000)
            status, finish = "ok", "stop"
            if rng.random() < 0.01:
                status, finish, output = "error", "", 0
            elif output == 2000:
                finish = "length"
            cached = int(prev_input * (0.5 + 0.45 * rng.random())) if caching and i else 0
            reasoning = int(output * (0.3 + 0.5 * rng.random())) if reasoning_model else 0
            yield _Req(
                ts=int(t), model=model, app=app, session_id=sid, input_tokens=context,
                output_tokens=output, latency_ms=self._latency(output), label=HONEST,
                cached=min(cached, context), reasoning=reasoning, status=status,
                finish_reason=finish, prompt_at=prompt_at, prompt_chars=4 * context,
            )  # fmt: skip
            if status == "ok" and rng.random() < 0.04:
                # A regeneration: the same request again a little later, a new answer.
                t += 1000 * _lognormal_int(rng, 20, 0.8, 2, 600)
                again = _lognormal_int(rng, 320, 0.8, 50, 2000)
                yield _Req(
                    ts=int(t), model=model, app=app, session_id=sid, input_tokens=context,
                    output_tokens=again, latency_ms=self._latency(again), label=HONEST,
                    cached=min(context, int(context * 0.9)) if caching else 0,
                    reasoning=int(again * 0.5) if reasoning_model else 0,
                    prompt_at=prompt_at, prompt_chars=4 * context,
                )  # fmt: skip
            prev_input = context
            context += output + _lognormal_int(rng, 150, 1.0, 5, 4000)
            if context > 20_000:  # the client drops the oldest turns: a sliding window
                context = 20_000 - rng.randrange(3000)
            t += 1000 * _lognormal_int(rng, 40, 0.9, 3, 1800)

    def gaming(self, u: _User, t0: float, pattern: str) -> Iterator[_Req]:
        rng = self.rng
        sid = f"s-{rng.getrandbits(48):012x}"
        prompt_at = rng.getrandbits(30)
        t = t0
        if pattern == AGENT_LOOP:
            # The same request, again and again: identical prompt and counts.
            model = _AGENT_MODELS[rng.randrange(len(_AGENT_MODELS))]
            inp = _lognormal_int(rng, 6000, 0.5, 2000, 20_000)
            out = _lognormal_int(rng, 400, 0.4, 150, 1200)
            text = self.pool.slice(rng.getrandbits(30), 4 * out) if self.pool else None
            for step in range(_lognormal_int(rng, 80, 0.6, 30, 300)):
                yield _Req(
                    ts=int(t), model=model, app="agent", session_id=sid, input_tokens=inp,
                    output_tokens=out, latency_ms=self._latency(out), label=pattern,
                    finish_reason="tool_calls", prompt_at=prompt_at, prompt_chars=4 * inp,
                    output_text=text, prompt_suffix=f"\n[step {step + 1}] tool call failed, retrying",
                )  # fmt: skip
                t += rng.uniform(1500, 8000)
        elif pattern == RETRY_STORM:
            # Bursts of identical failing requests, no backoff.
            model = self._model(u)
            inp = _lognormal_int(rng, 4000, 0.5, 1000, 15_000)
            for _ in range(rng.randint(1, 4)):
                for _ in range(rng.randint(10, 60)):
                    yield _Req(
                        ts=int(t), model=model, app="cli", session_id=sid, input_tokens=inp,
                        output_tokens=0, latency_ms=int(rng.uniform(20, 400)), label=pattern,
                        status="error", finish_reason="", prompt_at=prompt_at,
                        prompt_chars=4 * inp,
                    )  # fmt: skip
                    t += rng.uniform(50, 1500)
                t += rng.uniform(30_000, 300_000)
        elif pattern == PADDED_PROMPT:
            # Huge, uncached inputs for a short answer: a question plus filler, repeated.
            model = _LONG_CONTEXT_MODELS[rng.randrange(len(_LONG_CONTEXT_MODELS))]
            for _ in range(rng.randint(3, 20)):
                inp = _lognormal_int(rng, 250_000, 0.5, 80_000, 950_000)
                out = _lognormal_int(rng, 150, 0.6, 20, 600)
                padded = None
                if self.pool:
                    question = self.pool.slice(rng.getrandbits(30), rng.randint(200, 2000))
                    filler = self.pool.slice(rng.getrandbits(30), rng.randint(300, 3000))
                    padded = (question + " " + filler * (_MAX_TEXT // len(filler) + 1))[:_MAX_TEXT]
                yield _Req(
                    ts=int(t), model=model, app="chat", session_id=sid, input_tokens=inp,
                    output_tokens=out, latency_ms=self._latency(out) + inp // 200, label=pattern,
                    prompt_at=prompt_at, prompt_chars=4 * inp, prompt_text=padded,
                )  # fmt: skip
                t += rng.uniform(20_000, 120_000)
        elif pattern == RESENT_PROMPT:
            # The same big prompt every few minutes, for fresh answers nobody reads.
            model = self._model(u)
            inp = _lognormal_int(rng, 8000, 0.5, 2000, 20_000)
            for _ in range(rng.randint(10, 40)):
                out = _lognormal_int(rng, 600, 0.5, 100, 2000)
                yield _Req(
                    ts=int(t), model=model, app="chat", session_id=sid, input_tokens=inp,
                    output_tokens=out, latency_ms=self._latency(out), label=pattern,
                    prompt_at=prompt_at, prompt_chars=4 * inp,
                )  # fmt: skip
                t += rng.uniform(60_000, 600_000)
        else:  # LONG_OUTPUT: one phrase repeated up to the output limit
            model = self._model(u)
            filler = self.pool.slice(rng.getrandbits(30), rng.randint(20, 200)) if self.pool else ""
            for _ in range(rng.randint(5, 30)):
                inp = _lognormal_int(rng, 1200, 0.6, 200, 5000)
                out = _lognormal_int(rng, 16_000, 0.4, 8000, 32_000)
                text = None
                if filler:
                    text = (filler * (4 * out // len(filler) + 1))[: min(4 * out, _MAX_TEXT)]
                yield _Req(
                    ts=int(t), model=model, app="chat", session_id=sid, input_tokens=inp,
                    output_tokens=out, latency_ms=self._latency(out), label=pattern,
                    finish_reason="length", prompt_at=prompt_at, prompt_chars=4 * inp,
                    output_text=text,
                )  # fmt: skip
                t += rng.uniform(10_000, 90_000)

    # ---- requests -> event dicts

    def render(self, u: _User, r: _Req) -> dict[str, Any]:
        rng = self.rng
        ev: dict[str, Any] = {"event_id": _uuid4(rng)}
        ev["ts"] = r.ts if u.epoch_ts else _rfc3339(r.ts, u.zone, u.frac, u.zulu)
        ev[u.user_key] = u.name
        team = u.team_after if u.team_after and r.ts >= u.switch_ms else u.team
        if u.sends_team and rng.random() > 0.04:
            ev["team"] = team
        provider = MODELS[r.model][1]
        text = self.pool is not None and rng.random() < self.text_share
        counts = not text or self.counts_with_text
        if u.otel:
            ev["gen_ai.request.model"] = r.model
            ev["gen_ai.provider.name"] = provider
            ev["app"] = r.app
            if r.session_id:
                ev["gen_ai.conversation.id"] = r.session_id
            if counts:
                ev["gen_ai.usage.input_tokens"] = r.input_tokens
                ev["gen_ai.usage.output_tokens"] = r.output_tokens
                if r.cached:
                    ev["gen_ai.usage.cache_read.input_tokens"] = r.cached
            if r.finish_reason:
                ev["gen_ai.response.finish_reasons"] = [r.finish_reason]
        else:
            ev["model"] = r.model
            ev["provider"] = provider
            ev["app"] = r.app
            if r.session_id:
                ev["session_id"] = r.session_id
            if counts:
                ev["input_tokens"] = r.input_tokens
                ev["output_tokens"] = r.output_tokens
                if r.cached:
                    ev["cached_input_tokens"] = r.cached
            if r.finish_reason:
                ev["finish_reason"] = r.finish_reason
        if r.reasoning and counts:
            ev["reasoning_tokens"] = r.reasoning
        if text:
            assert self.pool is not None
            # Same session, same prompt start: the context grows turn by turn.
            # A long conversation keeps its latest part (the client's sliding window).
            at = r.prompt_at + max(0, r.prompt_chars - _MAX_TEXT)
            prompt = r.prompt_text if r.prompt_text is not None else self.pool.slice(at, r.prompt_chars)
            ev["prompt"] = prompt + r.prompt_suffix
            if r.output_tokens:
                ev["output"] = (
                    r.output_text
                    if r.output_text is not None
                    else self.pool.slice(rng.getrandbits(30), 4 * r.output_tokens)
                )
        if r.status != "ok" or rng.random() < 0.3:
            ev["status"] = r.status
        ev["latency_ms"] = r.latency_ms
        ev["_label"] = r.label
        return ev

    def outcome(self, u: _User, kind: str, last: _Req, ev: dict[str, Any]) -> dict[str, Any] | None:
        """What a session achieved, if anything: an outcome event after its last request."""
        rng = self.outcome_rng
        assert rng is not None
        if last.status != "ok" or rng.random() >= (0.35 if kind == HONEST else 0.03):
            return None
        name = str(_pick(rng, _OUTCOME_NAMES, _OUTCOME_CUM))
        oc: dict[str, Any] = {"ts": last.ts + 1000 * _lognormal_int(rng, 900, 1.5, 30, 3 * 86_400), "user": u.name}
        if last.session_id:
            oc["session_id"] = last.session_id
        else:
            oc["event_id"] = ev["event_id"]
        oc["outcome"] = name
        value = OUTCOMES[name][1]
        if value is not None:
            oc["value"] = value
        oc["_label"] = kind
        return oc

    def events(self) -> Iterator[dict[str, Any]]:
        heap: list[tuple[int, int, dict[str, Any]]] = []
        seq = 0
        end = self.end
        for start, user, kind in self.sessions():
            # Later sessions start later; their events' ts (maybe cut to whole seconds) are
            # > start - 1000, so everything up to there is final.
            while heap and heap[0][0] <= start - 1000:
                yield heapq.heappop(heap)[2]
            u = self.users[user]
            whole_seconds = not u.epoch_ts and u.frac == 0
            reqs = self.honest(u, start) if kind == HONEST else self.gaming(u, start, kind)
            last: tuple[_Req, dict[str, Any]] | None = None
            for r in reqs:
                if whole_seconds and r.ts % 1000:  # the ts this user's gateway can express
                    r.ts -= r.ts % 1000
                    if r.ts < self.start:
                        r.ts += 1000
                if r.ts >= end:
                    break
                seq += 1
                ev = self.render(u, r)
                heapq.heappush(heap, (r.ts, seq, ev))
                last = (r, ev)
            if last is not None and self.outcome_rng is not None:
                oc = self.outcome(u, kind, *last)
                if oc is not None and oc["ts"] < end:
                    seq += 1
                    heapq.heappush(heap, (oc["ts"], seq, oc))
        while heap:
            yield heapq.heappop(heap)[2]


def generate(
    users: int,
    days: float,
    gamers: int,
    seed: int,
    start_ms: int | None = None,
    text_share: float = 0.0,
    outcomes: bool = False,
    fingerprints: bool = False,
    fingerprint_secret: bytes | None = None,
) -> Iterator[dict[str, Any]]:
    """Usage events of ``users`` people (``gamers`` of them token-maxxers) over ``days``,
    and with ``outcomes`` the outcome events of their sessions.

    The period is ``[start_ms, start_ms + days)``, or the ``days`` ending now when
    ``start_ms`` is None; events come in time order. Deterministic for
    ``(users, days, gamers, seed, start_ms, text_share, outcomes, fingerprints)``
    (and the secret). With ``fingerprints`` the ``text_share`` events carry
    counts and a fingerprint (keyed with ``fingerprint_secret``, default
    ``TOKENLORD_FINGERPRINT_KEY``) instead of text.
    """
    events = _Sim(users, days, gamers, seed, start_ms, text_share, outcomes, fingerprints).events()
    return fingerprinted(events, fingerprint_secret) if fingerprints else events


def fingerprinted(
    events: Iterable[dict[str, Any]], secret: bytes | None = None, batch: int = 1024
) -> Iterator[dict[str, Any]]:
    """``events`` with each ``prompt`` / ``output`` replaced by the text's ``fingerprint``,
    as a gateway that sends no text sends them (one native call per ``batch`` events).
    Counts are left as they are: an event without them gets none."""
    from tokenlord.gateway import fingerprints_json

    def flush(buf: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        with_text = [e for e in buf if "prompt" in e or "output" in e]
        prints = fingerprints_json([(e.pop("prompt", None), e.pop("output", None)) for e in with_text], secret=secret)
        for e, fp in zip(with_text, prints, strict=True):
            e["fingerprint"] = json.loads(fp)
        yield from buf

    buf: list[dict[str, Any]] = []
    for ev in events:
        buf.append(ev)
        if len(buf) >= batch:
            yield from flush(buf)
            buf = []
    yield from flush(buf)


def is_outcome(ev: dict[str, Any]) -> bool:
    """Whether a generated record is an outcome event (for ``tokenlord.outcomes``)."""
    return "outcome" in ev


# ------------------------------------------------------------------ output helpers


def write_jsonl(events: Iterable[dict[str, Any]], path: str) -> int:
    """Write one JSON object per line to ``path`` (gzip if it ends with ``.gz``; ``-``: stdout).

    Returns the number of events written."""
    try:
        import orjson

        def dumps(e: dict[str, Any]) -> bytes:
            return orjson.dumps(e)
    except ImportError:  # pragma: no cover - orjson is a dependency
        import json

        def dumps(e: dict[str, Any]) -> bytes:
            return json.dumps(e, ensure_ascii=False, separators=(",", ":")).encode()

    n = 0
    ctx: Any
    if path == "-":
        ctx = nullcontext(sys.stdout.buffer)
    elif path.endswith(".gz"):
        ctx = gzip.open(path, "wb", compresslevel=3)
    else:
        ctx = open(path, "wb")
    with ctx as f:
        out: IO[bytes] = f
        buf: list[bytes] = []
        for e in events:
            buf.append(dumps(e))
            n += 1
            if len(buf) >= 10_000:
                out.write(b"\n".join(buf) + b"\n")
                buf.clear()
        if buf:
            out.write(b"\n".join(buf) + b"\n")
    return n


def event_ts_ms(ev: dict[str, Any]) -> int:
    """Epoch ms of a generated event's ``ts`` (integer or RFC 3339 string)."""
    ts = ev["ts"]
    if isinstance(ts, int):
        return ts
    return int(dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000 // 1)


def _tokens(ev: dict[str, Any]) -> int:
    inp = ev.get("input_tokens", ev.get("gen_ai.usage.input_tokens", 0))
    out = ev.get("output_tokens", ev.get("gen_ai.usage.output_tokens", 0))
    return int(inp) + int(out)


def summary(events: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Counts of a generated stream: events, users, labels, models, reported tokens."""
    labels: Counter[str] = Counter()
    label_tokens: Counter[str] = Counter()
    models: Counter[str] = Counter()
    users: set[str] = set()
    gamers: set[str] = set()
    user_tokens: Counter[str] = Counter()
    n = errors = text = otel = epoch = 0
    outcomes: Counter[str] = Counter()
    first = last = None
    for ev in events:
        if is_outcome(ev):
            outcomes[ev["outcome"]] += 1
            continue
        n += 1
        user = str(ev.get("user") or ev.get("user_id") or ev.get("enduser.id"))
        users.add(user)
        label = ev.get("_label", HONEST)
        labels[label] += 1
        tokens = _tokens(ev)
        label_tokens[label] += tokens
        user_tokens[user] += tokens
        if label != HONEST:
            gamers.add(user)
        models[str(ev.get("model") or ev.get("gen_ai.request.model"))] += 1
        errors += ev.get("status") == "error"
        text += "prompt" in ev or "output" in ev
        otel += "gen_ai.request.model" in ev
        if isinstance(ev["ts"], int):
            epoch += 1
        ts = event_ts_ms(ev)
        first = ts if first is None else min(first, ts)
        last = ts if last is None else max(last, ts)
    return {
        "events": n,
        "outcomes": dict(outcomes.most_common()),
        "users": len(users),
        "gamers": sorted(gamers),
        "labels": dict(labels.most_common()),
        "tokens_by_label": dict(label_tokens.most_common()),
        "models": dict(models.most_common()),
        "top_users": user_tokens.most_common(10),
        "error_share": errors / n if n else 0.0,
        "text_share": text / n if n else 0.0,
        "otel_share": otel / n if n else 0.0,
        "epoch_ts_share": epoch / n if n else 0.0,
        "first_ts": first,
        "last_ts": last,
    }


if __name__ == "__main__":  # pragma: no cover - quick look: python -m tokenlord.simulate
    import json

    t0 = time.perf_counter()
    s = summary(generate(users=200, days=7, gamers=4, seed=1))
    print(json.dumps(s, indent=2, default=str))
    print(f"{s['events']:,} events in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
