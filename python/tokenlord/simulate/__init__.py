"""Realistic LLM usage traffic: honest users and token-maxxers.

:func:`generate` yields usage events (docs/semantics.md) in time order over a period:

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

With ``red_team=True`` (``tokenlord simulate --red-team``) the gamers adapt
instead: each runs one of the :data:`ADAPTIVE_PROFILES` (round-robin, so every
profile is present once there are as many gamers; a quarter of them a second
one) that work around the default waste thresholds, and about 30 % of the
honest users do, for a share of their sessions, honest work that resembles
gaming (:data:`LOOKALIKE_PROFILES`: batch templates, edit-and-retry, structured
outputs, "continue", heavy agents). The profiles are in
:mod:`tokenlord.simulate.profiles`. Without ``red_team`` nothing of it is drawn:
the default traffic is the same as before it existed.

Every event carries ``_label``: ``"honest"``, the gaming pattern or the
red-team profile that produced it (the pipeline ignores unknown fields;
:func:`is_gamer_label` tells gaming from honest work). Output is deterministic for a seed
and ``start_ms``; without ``start_ms`` the period ends now.

With ``outcomes=True`` the stream also holds outcome events (docs/semantics.md, "Outcomes"; they
have an ``outcome`` key; :func:`is_outcome`): about a third of honest sessions
end in a diff merged, a ticket resolved, an answer accepted (or, one in ten, a
rejected diff) minutes to days later, by ``session_id`` (by the last request's
``event_id`` when the session has none); gaming sessions rarely achieve
anything. Outcomes draw from their own random stream: the usage events are the
same with or without them.
"""

from __future__ import annotations

import datetime as dt
import gzip
import heapq
import json
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from typing import IO, Any

from tokenlord.simulate import profiles
from tokenlord.simulate._base import (
    _APP_CUM,
    _APPS,
    _DIURNAL,
    _FIRST,
    _LAST,
    _MAX_TEXT,
    _MODEL_CUM,
    _MODEL_NAMES,
    _OUTCOME_CUM,
    _OUTCOME_NAMES,
    _TEAM_CUM,
    _WEEKDAY,
    _ZONE_CUM,
    _ZONES,
    AGENT_LOOP,
    HONEST,
    LABELS,
    LONG_OUTPUT,
    MODELS,
    OUTCOMES,
    PADDED_PROMPT,
    PATTERNS,
    RESENT_PROMPT,
    RETRY_STORM,
    TEAMS,
    _cumulative,
    _index,
    _lognormal_int,
    _normal,
    _pick,
    _poisson,
    _Req,
    _rfc3339,
    _TextPool,
    _User,
    _uuid4,
)
from tokenlord.simulate.profiles import (
    ADAPTIVE_PROFILES,
    LOOKALIKE_PROFILES,
    LOOP_DILUTION,
    OUTCOME_RATE,
    RULE_BLIND,
    is_gamer_label,
)
from tokenlord.time_utils import DAY_MS, HOUR_MS

RED_TEAM_LABELS = (HONEST, *ADAPTIVE_PROFILES, LOOP_DILUTION, *LOOKALIKE_PROFILES)
ALL_LABELS = (*LABELS, *ADAPTIVE_PROFILES, LOOP_DILUTION, *LOOKALIKE_PROFILES)

__all__ = [
    "ADAPTIVE_PROFILES",
    "AGENT_LOOP",
    "ALL_LABELS",
    "DAY_MS",
    "HONEST",
    "HOUR_MS",
    "LABELS",
    "LONG_OUTPUT",
    "LOOKALIKE_PROFILES",
    "LOOP_DILUTION",
    "MODELS",
    "OUTCOMES",
    "PADDED_PROMPT",
    "PATTERNS",
    "RED_TEAM_LABELS",
    "RESENT_PROMPT",
    "RETRY_STORM",
    "RULE_BLIND",
    "TEAMS",
    "event_ts_ms",
    "fingerprinted",
    "generate",
    "is_gamer_label",
    "is_outcome",
    "summary",
    "write_jsonl",
]

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
        red_team: bool = False,
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
        self.red_team = red_team
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
        kinds = ADAPTIVE_PROFILES if self.red_team else PATTERNS
        for j, u in enumerate(rng.sample(users, gamers)):
            first = kinds[j % len(kinds)]
            extra = tuple(p for p in kinds if p != first and rng.random() < 0.25)
            if self.red_team:  # one primary adaptive profile, maybe one more
                extra = extra[:1]
            u.patterns = (first, *extra)
            u.gaming_per_day = 2.0 * math.exp(_normal(rng, 0.5))
            u.sessions_per_day = max(u.sessions_per_day, 2.0)
        if self.red_team:
            self._lookalikes(users)
        return users

    def _lookalikes(self, users: list[_User]) -> None:
        """About 30 % of the honest users (at least one per look-alike profile, if there
        are enough) do honest work that resembles gaming for a share of their sessions."""
        rng = self.rng
        honest = [u for u in users if not u.patterns]
        k = min(len(honest), max(len(LOOKALIKE_PROFILES), round(0.3 * len(honest))))
        for j, u in enumerate(rng.sample(honest, k)):
            u.lookalike = LOOKALIKE_PROFILES[j % len(LOOKALIKE_PROFILES)]
            if u.lookalike == profiles.HEAVY_AGENT:
                u.sessions_per_day = max(u.sessions_per_day, profiles.HEAVY_AGENT_SESSIONS_PER_DAY)

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
            if u.lookalike:
                share = profiles.LOOKALIKE_SHARE[u.lookalike]
                out += ((t, u.idx, u.lookalike if rng.random() < share else HONEST) for t in self._times(cum, n))
            else:
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
        if last.status != "ok" or rng.random() >= OUTCOME_RATE[kind]:
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
            if kind == HONEST:
                reqs = self.honest(u, start)
            elif kind in profiles.RED_TEAM:
                reqs = profiles.RED_TEAM[kind](self, u, start)
            else:
                reqs = profiles.gaming(self, u, start, kind)
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
    red_team: bool = False,
) -> Iterator[dict[str, Any]]:
    """Usage events of ``users`` people (``gamers`` of them token-maxxers) over ``days``,
    and with ``outcomes`` the outcome events of their sessions.

    The period is ``[start_ms, start_ms + days)``, or the ``days`` ending now when
    ``start_ms`` is None; events come in time order. Deterministic for
    ``(users, days, gamers, seed, start_ms, text_share, outcomes, fingerprints,
    red_team)`` (and the secret). With ``fingerprints`` the ``text_share`` events
    carry counts and a fingerprint (keyed with ``fingerprint_secret``, default
    ``TOKENLORD_FINGERPRINT_KEY``) instead of text. With ``red_team`` the gamers
    run the adaptive profiles and some honest users the look-alikes
    (:mod:`tokenlord.simulate.profiles`); without it the stream is the default
    traffic, unchanged.
    """
    sim = _Sim(users, days, gamers, seed, start_ms, text_share, outcomes, fingerprints, red_team)
    events = sim.events()
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
        if is_gamer_label(label):
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
