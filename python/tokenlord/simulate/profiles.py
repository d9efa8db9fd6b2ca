"""What users do in a session, request by request: the gaming patterns and the red team.

- the blatant gaming patterns of :data:`PATTERNS` (``gamers`` in the default
  traffic): agent loops, retry storms, padded prompts, resent prompts, long
  repetitive outputs;
- with ``red_team``, the ADAPTIVE gamer profiles (:data:`ADAPTIVE_PROFILES`):
  gamers who know the default waste thresholds (``WasteConfig`` in
  rust/src/waste.rs) and work around them: reworded / reordered re-asks, loops
  rotating session, app and model, varied or noised filler, re-sends paced just
  outside the windows, long genuinely different output nobody uses ("compute
  theater"), loops diluted by junk requests;
- and honest LOOK-ALIKES (:data:`LOOKALIKE_PROFILES`) that the rules must leave
  alone: batch jobs with one shared instruction template, edit-and-retry,
  long structured outputs, "continue" prompts, heavy agent users.

Each profile is a generator of :class:`~tokenlord.simulate._base._Req` over the
simulator's random stream; text (when the simulator keeps a text pool) is
built here, and the counts match it (about 4 characters a token).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from tokenlord.simulate._base import (
    _AGENT_MODELS,
    _LONG_CONTEXT_MODELS,
    _MAX_TEXT,
    _WORDS,
    AGENT_LOOP,
    LONG_OUTPUT,
    MODELS,
    PADDED_PROMPT,
    PATTERNS,
    RESENT_PROMPT,
    RETRY_STORM,
    _lognormal_int,
    _Req,
    _TextPool,
    _User,
)
from tokenlord.time_utils import HOUR_MS

if TYPE_CHECKING:
    from tokenlord.simulate import _Sim

# ------------------------------------------------------------------ labels

HOUR = HOUR_MS
MINUTE = 60_000

# Adaptive gamers (red team).
REWORDED_REASK = "reworded_reask"
ROTATING_LOOP = "rotating_loop"
VARIED_FILLER = "varied_filler"
NOISED_FILLER = "noised_filler"
PACED_RESEND = "paced_resend"
COMPUTE_THEATER = "compute_theater"
DILUTED_LOOP = "diluted_loop"
ADAPTIVE_PROFILES = (
    REWORDED_REASK,
    ROTATING_LOOP,
    VARIED_FILLER,
    NOISED_FILLER,
    PACED_RESEND,
    COMPUTE_THEATER,
    DILUTED_LOOP,
)

# The junk requests a DILUTED_LOOP gamer puts between the loop's steps: distinct,
# small and useless. Gaming, but no rule can tell one from an honest small request.
LOOP_DILUTION = "loop_dilution"
# Gaming no rule can see (distinct requests whose output nobody uses): left to the
# value ranking. benchmarks/red_team.py reports them apart.
RULE_BLIND = (COMPUTE_THEATER, LOOP_DILUTION)

# Honest look-alikes (red team): honest work that resembles gaming.
BATCH_TEMPLATE = "batch_template"
EDIT_RETRY = "edit_retry"
STRUCTURED_OUTPUT = "structured_output"
CONTINUE_PROMPT = "continue_prompt"
HEAVY_AGENT = "heavy_agent"
LOOKALIKE_PROFILES = (BATCH_TEMPLATE, EDIT_RETRY, STRUCTURED_OUTPUT, CONTINUE_PROMPT, HEAVY_AGENT)

# Share of a look-alike user's sessions that follow the look-alike.
LOOKALIKE_SHARE = {
    BATCH_TEMPLATE: 0.15,
    EDIT_RETRY: 0.3,
    STRUCTURED_OUTPUT: 0.3,
    CONTINUE_PROMPT: 0.3,
    HEAVY_AGENT: 0.6,
}
HEAVY_AGENT_SESSIONS_PER_DAY = 4.0  # at least, for a heavy agent user

# Chance that a session of a kind ends in an outcome (docs/semantics.md, "Outcomes").
OUTCOME_RATE: dict[str, float] = {
    "honest": 0.35,
    **dict.fromkeys(PATTERNS, 0.03),
    **dict.fromkeys(ADAPTIVE_PROFILES, 0.02),
    COMPUTE_THEATER: 0.0,
    **dict.fromkeys(LOOKALIKE_PROFILES, 0.35),
    BATCH_TEMPLATE: 0.45,
    HEAVY_AGENT: 0.45,
}


def is_gamer_label(label: str) -> bool:
    """Whether an event's ``_label`` names gaming (a blatant pattern or an adaptive profile)."""
    return label in PATTERNS or label in ADAPTIVE_PROFILES or label == LOOP_DILUTION


# ------------------------------------------------------------------ blatant patterns (default traffic)


def _agent_loop(sim: _Sim, u: _User, t: float, sid: str, prompt_at: int) -> Iterator[_Req]:
    rng = sim.rng
    # The same request, again and again: identical prompt and counts.
    model = _AGENT_MODELS[rng.randrange(len(_AGENT_MODELS))]
    inp = _lognormal_int(rng, 6000, 0.5, 2000, 20_000)
    out = _lognormal_int(rng, 400, 0.4, 150, 1200)
    text = sim.pool.slice(rng.getrandbits(30), 4 * out) if sim.pool else None
    for step in range(_lognormal_int(rng, 80, 0.6, 30, 300)):
        yield _Req(
            ts=int(t), model=model, app="agent", session_id=sid, input_tokens=inp,
            output_tokens=out, latency_ms=sim._latency(out), label=AGENT_LOOP,
            finish_reason="tool_calls", prompt_at=prompt_at, prompt_chars=4 * inp,
            output_text=text, prompt_suffix=f"\n[step {step + 1}] tool call failed, retrying",
        )  # fmt: skip
        t += rng.uniform(1500, 8000)


def _retry_storm(sim: _Sim, u: _User, t: float, sid: str, prompt_at: int) -> Iterator[_Req]:
    rng = sim.rng
    # Bursts of identical failing requests, no backoff.
    model = sim._model(u)
    inp = _lognormal_int(rng, 4000, 0.5, 1000, 15_000)
    for _ in range(rng.randint(1, 4)):
        for _ in range(rng.randint(10, 60)):
            yield _Req(
                ts=int(t), model=model, app="cli", session_id=sid, input_tokens=inp,
                output_tokens=0, latency_ms=int(rng.uniform(20, 400)), label=RETRY_STORM,
                status="error", finish_reason="", prompt_at=prompt_at,
                prompt_chars=4 * inp,
            )  # fmt: skip
            t += rng.uniform(50, 1500)
        t += rng.uniform(30_000, 300_000)


def _padded_prompt(sim: _Sim, u: _User, t: float, sid: str, prompt_at: int) -> Iterator[_Req]:
    rng = sim.rng
    # Huge, uncached inputs for a short answer: a question plus filler, repeated.
    model = _LONG_CONTEXT_MODELS[rng.randrange(len(_LONG_CONTEXT_MODELS))]
    for _ in range(rng.randint(3, 20)):
        inp = _lognormal_int(rng, 250_000, 0.5, 80_000, 950_000)
        out = _lognormal_int(rng, 150, 0.6, 20, 600)
        padded = None
        if sim.pool:
            question = sim.pool.slice(rng.getrandbits(30), rng.randint(200, 2000))
            filler = sim.pool.slice(rng.getrandbits(30), rng.randint(300, 3000))
            padded = (question + " " + filler * (_MAX_TEXT // len(filler) + 1))[:_MAX_TEXT]
        yield _Req(
            ts=int(t), model=model, app="chat", session_id=sid, input_tokens=inp,
            output_tokens=out, latency_ms=sim._latency(out) + inp // 200, label=PADDED_PROMPT,
            prompt_at=prompt_at, prompt_chars=4 * inp, prompt_text=padded,
        )  # fmt: skip
        t += rng.uniform(20_000, 120_000)


def _resent_prompt(sim: _Sim, u: _User, t: float, sid: str, prompt_at: int) -> Iterator[_Req]:
    rng = sim.rng
    # The same big prompt every few minutes, for fresh answers nobody reads.
    model = sim._model(u)
    inp = _lognormal_int(rng, 8000, 0.5, 2000, 20_000)
    for _ in range(rng.randint(10, 40)):
        out = _lognormal_int(rng, 600, 0.5, 100, 2000)
        yield _Req(
            ts=int(t), model=model, app="chat", session_id=sid, input_tokens=inp,
            output_tokens=out, latency_ms=sim._latency(out), label=RESENT_PROMPT,
            prompt_at=prompt_at, prompt_chars=4 * inp,
        )  # fmt: skip
        t += rng.uniform(60_000, 600_000)


def _long_output(sim: _Sim, u: _User, t: float, sid: str, prompt_at: int) -> Iterator[_Req]:
    rng = sim.rng
    model = sim._model(u)
    filler = sim.pool.slice(rng.getrandbits(30), rng.randint(20, 200)) if sim.pool else ""
    for _ in range(rng.randint(5, 30)):
        inp = _lognormal_int(rng, 1200, 0.6, 200, 5000)
        out = _lognormal_int(rng, 16_000, 0.4, 8000, 32_000)
        text = None
        if filler:
            text = (filler * (4 * out // len(filler) + 1))[: min(4 * out, _MAX_TEXT)]
        yield _Req(
            ts=int(t), model=model, app="chat", session_id=sid, input_tokens=inp,
            output_tokens=out, latency_ms=sim._latency(out), label=LONG_OUTPUT,
            finish_reason="length", prompt_at=prompt_at, prompt_chars=4 * inp,
            output_text=text,
        )  # fmt: skip
        t += rng.uniform(10_000, 90_000)


_BLATANT: dict[str, Callable[[_Sim, _User, float, str, int], Iterator[_Req]]] = {
    AGENT_LOOP: _agent_loop,
    RETRY_STORM: _retry_storm,
    PADDED_PROMPT: _padded_prompt,
    RESENT_PROMPT: _resent_prompt,
    LONG_OUTPUT: _long_output,
}


def gaming(sim: _Sim, u: _User, t0: float, pattern: str) -> Iterator[_Req]:
    """The requests of one session of a blatant gaming ``pattern`` (:data:`PATTERNS`)."""
    rng = sim.rng
    sid = f"s-{rng.getrandbits(48):012x}"
    prompt_at = rng.getrandbits(30)
    return _BLATANT[pattern](sim, u, t0, sid, prompt_at)


# ------------------------------------------------------------------ text helpers (red team)

_SENTENCE_END = frozenset(".?\n")
_STRIP = ".,?:;\n`'"


def _thesaurus() -> dict[str, str]:
    """A fixed word -> "synonym" map over the vocabulary (another word, consistently)."""
    words = sorted({w for w in _WORDS if w.isalpha()})
    other = words[:]
    random.Random(0x7E5A1125).shuffle(other)
    pairs = enumerate(zip(words, other, strict=True))
    return {w: (o if o != w else words[(i + 1) % len(words)]) for i, (w, o) in pairs}


SYNONYMS = _thesaurus()


def _long_text(pool: _TextPool, start: int, chars: int) -> str:
    """``chars`` characters of the pool from ``start`` (longer than one slice: several)."""
    if chars <= _MAX_TEXT:
        return pool.slice(start, chars)
    parts = []
    while chars > 0:
        n = min(chars, _MAX_TEXT)
        parts.append(pool.slice(start, n))
        start, chars = start + n, chars - n
    return "".join(parts)


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _sentence_spans(words: list[str]) -> list[tuple[int, int]]:
    """(start, end) word ranges of the sentences (a word ending in '.', '?' or a newline ends one)."""
    spans, start = [], 0
    for i, w in enumerate(words):
        if w and w[-1] in _SENTENCE_END:
            spans.append((start, i + 1))
            start = i + 1
    if start < len(words):
        spans.append((start, len(words)))
    return spans


class _Words:
    """A text as words, each word's synonym (:data:`SYNONYMS`; the word itself when it
    has none) and the sentences' word ranges."""

    def __init__(self, text: str) -> None:
        self.words = text.split(" ")
        self.synonyms = []
        for w in self.words:
            core = w.rstrip(_STRIP)
            syn = SYNONYMS.get(core)
            self.synonyms.append(w if syn is None else syn + w[len(core) :])
        self.spans = _sentence_spans(self.words)

    def reword(self, rng: random.Random, swap: float, reorder: bool) -> str:
        """The text with about a ``swap`` share of its words replaced by their synonym
        and, with ``reorder``, its sentences shuffled: the same content, said differently."""
        out, syn = self.words[:], self.synonyms
        if swap > 0:  # two interleaved strides of about 2 / swap words each
            step = max(2, round(2 / swap))
            for s in (step, step + 1):
                at = rng.randrange(s)
                out[at::s] = syn[at::s]
        if not reorder or len(self.spans) < 2:
            return " ".join(out)
        order = self.spans[:]
        rng.shuffle(order)
        return " ".join(" ".join(out[a:b]) for a, b in order)


def _sid(rng: random.Random) -> str:
    return f"s-{rng.getrandbits(48):012x}"


# ------------------------------------------------------------------ adaptive gamers (red team)


def _reworded_reask(sim: _Sim, u: _User, t0: float) -> Iterator[_Req]:
    """One big question re-asked 10-40 times over 1-3 hours, each time reworded
    (10-30 % synonym swaps) and/or with its sentences reordered; the answers are
    the same answer, lightly varied."""
    rng, pool = sim.rng, sim.pool
    model = sim._model(u)
    inp = _lognormal_int(rng, 6000, 0.7, 2000, 20_000)
    out = _lognormal_int(rng, 600, 0.5, 100, 2000)
    n = rng.randint(10, 40)
    step = rng.uniform(HOUR, 3 * HOUR) / n
    question = answer_base = None
    if pool is not None:
        question = _Words(_long_text(pool, rng.getrandbits(30), 4 * inp))
        answer_base = _Words(pool.slice(rng.getrandbits(30), 4 * out))
    sid, t, asked = _sid(rng), t0, set()
    for _ in range(n):
        mode = rng.randrange(3)  # 0: reworded, 1: reordered, 2: both
        prompt = answer = None
        p_tok, o_tok = inp, out
        if question is not None and answer_base is not None:
            for _ in range(8):  # never the very same wording twice
                swap = rng.uniform(0.1, 0.3) if mode != 1 else 0.0
                text = question.reword(rng, swap, mode != 0)
                if text not in asked:
                    break
            asked.add(text)
            prompt, answer = text, answer_base.reword(rng, 0.1, True)
            p_tok, o_tok = _tokens(text), _tokens(answer)
        elif mode != 1:  # counts only: a reworded prompt is rarely the same size to the token
            p_tok = max(1, inp + rng.randint(-inp // 25, inp // 25))
        if rng.random() < 0.6:  # a new chat for most re-asks
            sid = _sid(rng)
        yield _Req(
            ts=int(t), model=model, app="chat", session_id=sid, input_tokens=p_tok, output_tokens=o_tok,
            latency_ms=sim._latency(o_tok), label=REWORDED_REASK, prompt_chars=4 * p_tok,
            prompt_text=prompt, output_text=answer,
        )  # fmt: skip
        t += step * rng.uniform(0.5, 1.5)


_ROTATE_APPS = ("agent", "ide", "cli", "chat", "ci-bot")
_ROTATE_MODELS = (*_AGENT_MODELS, "gpt-4o-mini", "gpt-4.1", "claude-haiku-3.5")


def _rotating_loop(sim: _Sim, u: _User, t0: float) -> Iterator[_Req]:
    """An agent loop (the same prompt with a step counter, the same answer) whose
    every step has a new session id, the next app and the next model."""
    rng, pool = sim.rng, sim.pool
    inp = _lognormal_int(rng, 6000, 0.5, 2000, 15_000)
    out = _lognormal_int(rng, 400, 0.4, 150, 1200)
    prompt_at = rng.getrandbits(30)
    text = pool.slice(rng.getrandbits(30), 4 * out) if pool else None
    a, m = rng.randrange(len(_ROTATE_APPS)), rng.randrange(len(_ROTATE_MODELS))
    t = t0
    for step in range(_lognormal_int(rng, 80, 0.6, 30, 300)):
        yield _Req(
            ts=int(t), model=_ROTATE_MODELS[(m + step) % len(_ROTATE_MODELS)],
            app=_ROTATE_APPS[(a + step) % len(_ROTATE_APPS)], session_id=_sid(rng), input_tokens=inp,
            output_tokens=out, latency_ms=sim._latency(out), label=ROTATING_LOOP, finish_reason="tool_calls",
            prompt_at=prompt_at, prompt_chars=4 * inp, output_text=text,
            prompt_suffix=f"\n[step {step + 1}] tool call failed, retrying",
        )  # fmt: skip
        t += rng.uniform(1500, 8000)


def _filler_sentences(rng: random.Random, pool: _TextPool) -> list[str]:
    """A small pool of filler sentences, 12-25 words each."""
    words = [w for w in (w.strip(_STRIP) for w in pool.slice(rng.getrandbits(30), 4000).split()) if w]
    out, i = [], 0
    for _ in range(rng.randint(6, 20)):
        n = rng.randint(12, 25)
        if i + n > len(words):
            i = 0
        out.append(" ".join(words[i : i + n]) + ".")
        i += n
    return out


def _padded(sim: _Sim, u: _User, t0: float, label: str) -> Iterator[_Req]:
    """A question plus big filler, uncached, for a short answer; the filler differs
    every request (shuffled sentences of a small pool; NOISED_FILLER also replaces
    every 5th word with a random word)."""
    rng, pool = sim.rng, sim.pool
    model = _LONG_CONTEXT_MODELS[rng.randrange(len(_LONG_CONTEXT_MODELS))]
    sentences = _filler_sentences(rng, pool) if pool else []
    sid, t = _sid(rng), t0
    for _ in range(rng.randint(3, 20)):
        inp = _lognormal_int(rng, 12_000, 0.5, 6000, 30_000)
        out = _lognormal_int(rng, 150, 0.6, 20, 600)
        prompt = None
        if pool is not None:
            question = pool.slice(rng.getrandbits(30), rng.randint(200, 2000))
            need = 4 * inp - len(question)
            per = sum(len(s) + 1 for s in sentences) / len(sentences)
            filler = rng.choices(sentences, k=max(1, int(need / per)))
            text = " ".join(filler)
            if label == NOISED_FILLER:
                # every 5th word a random word: no 10 words in a row repeat
                words = text.split(" ")
                at = rng.randrange(5)
                words[at::5] = rng.choices(_WORDS, k=len(range(at, len(words), 5)))
                text = " ".join(words)
            prompt = question + "\n\n" + text
            inp = _tokens(prompt)
        yield _Req(
            ts=int(t), model=model, app="chat", session_id=sid, input_tokens=inp, output_tokens=out,
            latency_ms=sim._latency(out) + inp // 200, label=label, prompt_chars=4 * inp, prompt_text=prompt,
        )  # fmt: skip
        t += rng.uniform(20_000, 120_000)


def _varied_filler(sim: _Sim, u: _User, t0: float) -> Iterator[_Req]:
    return _padded(sim, u, t0, VARIED_FILLER)


def _noised_filler(sim: _Sim, u: _User, t0: float) -> Iterator[_Req]:
    return _padded(sim, u, t0, NOISED_FILLER)


def _paced_resend(sim: _Sim, u: _User, t0: float) -> Iterator[_Req]:
    """Re-sends just outside the default windows, one kind a session: the same prompt
    every 61-80 min over a day (duplicate window 1 h), agent-loop steps every
    11-15 min (loop window 10 min), or identical failing requests every 11-20 s
    (storm window 10 s)."""
    rng, pool = sim.rng, sim.pool
    model = sim._model(u)
    sid, prompt_at, t = _sid(rng), rng.getrandbits(30), t0
    kind = rng.randrange(3)
    if kind == 0:  # hourly
        inp = _lognormal_int(rng, 8000, 0.5, 2000, 15_000)
        for _ in range(rng.randint(14, 22)):
            out = _lognormal_int(rng, 600, 0.5, 100, 2000)
            yield _Req(
                ts=int(t), model=model, app="chat", session_id=sid, input_tokens=inp, output_tokens=out,
                latency_ms=sim._latency(out), label=PACED_RESEND, prompt_at=prompt_at, prompt_chars=4 * inp,
            )  # fmt: skip
            t += rng.uniform(61 * MINUTE, 80 * MINUTE)
    elif kind == 1:  # slow loop
        inp = _lognormal_int(rng, 6000, 0.5, 2000, 15_000)
        out = _lognormal_int(rng, 400, 0.4, 150, 1200)
        text = pool.slice(rng.getrandbits(30), 4 * out) if pool else None
        for step in range(rng.randint(20, 60)):
            yield _Req(
                ts=int(t), model=model, app="agent", session_id=sid, input_tokens=inp, output_tokens=out,
                latency_ms=sim._latency(out), label=PACED_RESEND, finish_reason="tool_calls",
                prompt_at=prompt_at, prompt_chars=4 * inp, output_text=text,
                prompt_suffix=f"\n[step {step + 1}] tool call failed, retrying",
            )  # fmt: skip
            t += rng.uniform(11 * MINUTE, 15 * MINUTE)
    else:  # slow storm
        inp = _lognormal_int(rng, 4000, 0.5, 1000, 15_000)
        for _ in range(rng.randint(30, 120)):
            yield _Req(
                ts=int(t), model=model, app="cli", session_id=sid, input_tokens=inp, output_tokens=0,
                latency_ms=int(rng.uniform(20, 400)), label=PACED_RESEND, status="error", finish_reason="",
                prompt_at=prompt_at, prompt_chars=4 * inp,
            )  # fmt: skip
            t += rng.uniform(11_000, 20_000)


def _compute_theater(sim: _Sim, u: _User, t0: float) -> Iterator[_Req]:
    """Long, genuinely different outputs (8k-32k tokens, finish "stop") to distinct
    prompts; nobody uses them."""
    rng, pool = sim.rng, sim.pool
    model = sim._model(u)
    sid, t = _sid(rng), t0
    for _ in range(rng.randint(5, 30)):
        inp = _lognormal_int(rng, 1500, 0.6, 500, 5000)
        out = _lognormal_int(rng, 14_000, 0.4, 8000, 32_000)
        text = _long_text(pool, rng.getrandbits(30), 4 * out) if pool else None
        yield _Req(
            ts=int(t), model=model, app="chat", session_id=sid, input_tokens=inp, output_tokens=out,
            latency_ms=sim._latency(out), label=COMPUTE_THEATER, prompt_at=rng.getrandbits(30),
            prompt_chars=4 * inp, output_text=text,
        )  # fmt: skip
        t += rng.uniform(30_000, 180_000)


def _diluted_loop(sim: _Sim, u: _User, t0: float) -> Iterator[_Req]:
    """A loop (the same prompt and answer; half of the sessions with a step counter)
    whose repeats are 30-100 distinct small junk requests apart (labelled
    :data:`LOOP_DILUTION`)."""
    rng, pool = sim.rng, sim.pool
    model = _AGENT_MODELS[rng.randrange(len(_AGENT_MODELS))]
    inp = _lognormal_int(rng, 5000, 0.5, 2000, 12_000)
    out = _lognormal_int(rng, 400, 0.4, 150, 1200)
    prompt_at = rng.getrandbits(30)
    text = pool.slice(rng.getrandbits(30), 4 * out) if pool else None
    counter = rng.random() < 0.5
    sid, t = _sid(rng), t0
    for step in range(rng.randint(4, 10)):
        yield _Req(
            ts=int(t), model=model, app="agent", session_id=sid, input_tokens=inp, output_tokens=out,
            latency_ms=sim._latency(out), label=DILUTED_LOOP, finish_reason="tool_calls", prompt_at=prompt_at,
            prompt_chars=4 * inp, output_text=text,
            prompt_suffix=f"\n[step {step + 1}] tool call failed, retrying" if counter else "",
        )  # fmt: skip
        t += rng.uniform(1000, 6000)
        for _ in range(rng.randint(30, 100)):
            small = _lognormal_int(rng, 80, 0.6, 30, 300)
            answer = _lognormal_int(rng, 60, 0.6, 20, 200)
            yield _Req(
                ts=int(t), model=model, app="agent", session_id=sid, input_tokens=small, output_tokens=answer,
                latency_ms=sim._latency(answer), label=LOOP_DILUTION, prompt_at=rng.getrandbits(30),
                prompt_chars=4 * small,
            )  # fmt: skip
            t += rng.uniform(1000, 6000)


# ------------------------------------------------------------------ honest look-alikes (red team)


def _batch_template(sim: _Sim, u: _User, t0: float) -> Iterator[_Req]:
    """A batch job: the user's one long instruction template (2k-6k tokens, the same
    text every request) plus a different file each time, 20-200 requests seconds
    apart; each answer a fresh review or, sometimes, a short structured result."""
    rng, pool = sim.rng, sim.pool
    model = sim._model(u)
    caching = MODELS[model][3]
    # The template is the user's: the same in every job.
    tpl_tokens = 2000 + (u.idx * 7919) % 4001
    template = _long_text(pool, (u.idx * 0x9E3779B1) & 0x3FFFFFFF, 4 * tpl_tokens) if pool else ""
    sid, t = _sid(rng), t0
    for i in range(_lognormal_int(rng, 60, 0.7, 20, 200)):
        file_tokens = _lognormal_int(rng, 1500, 0.7, 300, 5000)
        inp = tpl_tokens + file_tokens + 8
        prompt = output = None
        structured = rng.random() < 0.3
        out = _lognormal_int(rng, 40, 0.4, 15, 120) if structured else _lognormal_int(rng, 450, 0.6, 100, 2000)
        name = f"src/{_WORDS[rng.randrange(len(_WORDS))]}_{i}.py"
        if pool is not None:
            prompt = f"{template}\n\n--- {name}\n{pool.slice(rng.getrandbits(30), 4 * file_tokens)}"
            inp = _tokens(prompt)
            if structured:
                output = (
                    f'{{"file": "{name}", "issues": {rng.randrange(12)}, "severity": '
                    f'"{("none", "low", "medium", "high")[rng.randrange(4)]}", "tests_missing": {rng.randrange(5)}}}'
                )
                out = _tokens(output)
        yield _Req(
            ts=int(t), model=model, app="batch", session_id=sid, input_tokens=inp, output_tokens=out,
            latency_ms=sim._latency(out), label=BATCH_TEMPLATE, cached=tpl_tokens if caching and i else 0,
            prompt_chars=4 * inp, prompt_text=prompt, output_text=output,
        )  # fmt: skip
        t += rng.uniform(2000, 20_000)


def _edit_retry(sim: _Sim, u: _User, t0: float) -> Iterator[_Req]:
    """A prompt, then edited (a few words changed or a sentence added) and re-sent
    2-3 times within minutes; each answer keeps about half of the previous one's
    sentences."""
    rng, pool = sim.rng, sim.pool
    model = sim._model(u)
    app = ("chat", "ide")[rng.randrange(2)]
    inp = _lognormal_int(rng, 1500, 0.8, 200, 8000)
    out = _lognormal_int(rng, 400, 0.7, 80, 2000)
    words: list[str] = []
    answer: list[str] = []
    if pool is not None:
        words = pool.slice(rng.getrandbits(30), 4 * inp).split(" ")
        a = pool.slice(rng.getrandbits(30), 4 * out).split(" ")
        answer = [" ".join(a[i:j]) for i, j in _sentence_spans(a)]
    sid, t = _sid(rng), t0
    for version in range(1 + rng.randint(2, 3)):
        prompt = output = None
        if version:
            if rng.random() < 0.6:  # a few words changed
                for _ in range(rng.randint(2, 6)):
                    if words:
                        words[rng.randrange(len(words))] = _WORDS[rng.randrange(len(_WORDS))]
                if pool is None:  # counts only: the edit changes the size by a few tokens
                    inp = max(1, inp + (1, -1, 2, -2, 3, 4)[rng.randrange(6)])
            else:  # a sentence added
                added = rng.randint(60, 300)
                if pool is not None:
                    words += pool.slice(rng.getrandbits(30), added).split(" ")
                inp += added // 4
            if pool is not None:  # keep about half of the answer's sentences, the rest new
                fresh = pool.slice(rng.getrandbits(30), 4 * out).split(" ")
                new = [" ".join(fresh[i:j]) for i, j in _sentence_spans(fresh)]
                answer = [s if rng.random() < 0.5 or not new else new.pop() for s in answer]
            else:
                out = _lognormal_int(rng, out, 0.2, 50, 2000)
        if pool is not None:
            prompt, output = " ".join(words), " ".join(answer)
            inp, out = _tokens(prompt), _tokens(output)
        yield _Req(
            ts=int(t), model=model, app=app, session_id=sid, input_tokens=inp, output_tokens=out,
            latency_ms=sim._latency(out), label=EDIT_RETRY, prompt_chars=4 * inp, prompt_text=prompt,
            output_text=output,
        )  # fmt: skip
        t += rng.uniform(20_000, 240_000)


_COLUMNS = ("service", "owner", "status", "p50_ms", "p99_ms", "errors", "region", "version", "cost_usd")
_STATUSES = ("ok", "degraded", "down", "unknown")
_FUNCS = ("parse_invoice", "normalize_email", "rank_results", "apply_discount", "split_batch", "retry_delay")


def _table(rng: random.Random, chars: int) -> str:
    cols = rng.sample(_COLUMNS, rng.randint(4, len(_COLUMNS)))
    lines = ["| id | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    n, i = len(lines[0]) * 2, 0
    while n < chars:
        i += 1
        cells = []
        for c in cols:
            if c == "service":
                cells.append(f"{_WORDS[rng.randrange(len(_WORDS))]}-svc-{i}")
            elif c == "owner":
                cells.append(f"team-{rng.randrange(1000)}")
            elif c == "status":
                cells.append(_STATUSES[rng.randrange(4)])
            elif c == "region":
                cells.append(f"eu-{rng.randrange(1, 9)}{'abc'[rng.randrange(3)]}")
            elif c == "version":
                cells.append(f"v{rng.randrange(1, 5)}.{rng.randrange(30)}.{rng.randrange(100)}")
            elif c == "cost_usd":
                cells.append(f"{rng.uniform(0, 5000):.2f}")
            else:
                cells.append(str(rng.randrange(1, 100_000)))
        line = f"| {i} | " + " | ".join(cells) + " |"
        lines.append(line)
        n += len(line) + 1
    return "\n".join(lines)


def _tests(rng: random.Random, chars: int) -> str:
    func = _FUNCS[rng.randrange(len(_FUNCS))]
    parts = [f"import pytest\n\nfrom app.core import {func}\n"]
    n, i = len(parts[0]), 0
    while n < chars:
        i += 1
        arg, want = rng.randrange(1, 10**6), rng.randrange(-(10**4), 10**6)
        case = f"{_WORDS[rng.randrange(len(_WORDS))] if rng.random() < 0.5 else 'case'}_{i}"
        part = (
            f"\ndef test_{func}_{case}():\n    result = {func}({arg}, mode={rng.randrange(8)})\n"
            f"    assert result == {want}\n"
        )
        parts.append(part)
        n += len(part)
    return "".join(parts)


def _structured_output(sim: _Sim, u: _User, t0: float) -> Iterator[_Req]:
    """Long structured outputs (2k-16k tokens): markdown tables with distinct rows, or
    generated test files (many similar functions with distinct names and values)."""
    rng, pool = sim.rng, sim.pool
    model = sim._model(u)
    app = ("chat", "ide")[rng.randrange(2)]
    prompt_at = rng.getrandbits(30)
    context = _lognormal_int(rng, 800, 0.8, 100, 4000)
    sid, t = _sid(rng), t0
    for _ in range(rng.randint(1, 6)):
        out = _lognormal_int(rng, 6000, 0.6, 2000, 16_000)
        text = None
        if pool is not None:
            text = (_table if rng.random() < 0.5 else _tests)(rng, 4 * out)
            out = _tokens(text)
        yield _Req(
            ts=int(t), model=model, app=app, session_id=sid, input_tokens=context, output_tokens=out,
            latency_ms=sim._latency(out), label=STRUCTURED_OUTPUT, finish_reason="stop",
            prompt_at=prompt_at, prompt_chars=4 * context, output_text=text,
        )  # fmt: skip
        context = min(15_000, context + _lognormal_int(rng, 80, 0.8, 5, 1000))
        t += 1000 * _lognormal_int(rng, 60, 0.8, 10, 900)


def _continue_prompt(sim: _Sim, u: _User, t0: float) -> Iterator[_Req]:
    """A chat whose answer hit finish "length": the user sends "continue" (the prompt is
    the conversation so far plus "continue") for a fresh continuation, 1-5 times."""
    rng, pool = sim.rng, sim.pool
    model = sim._model(u)
    limit = (1024, 2048, 4096)[rng.randrange(3)]
    context = _lognormal_int(rng, 800, 0.8, 100, 4000)
    conversation = pool.slice(rng.getrandbits(30), 4 * context) if pool else ""
    sid, t = _sid(rng), t0
    turns = 1 + rng.randint(1, 5)
    for turn in range(turns):
        last = turn == turns - 1
        out = _lognormal_int(rng, limit / 2, 0.4, 50, limit - 1) if last else limit
        prompt = output = None
        if pool is not None:
            if turn:
                conversation = (conversation + "\n\ncontinue")[-4 * 15_000 :]  # the client's sliding window
            prompt = conversation
            output = pool.slice(rng.getrandbits(30), 4 * out)
            context = _tokens(prompt)
            conversation += "\n\n" + output
        elif turn:
            context += 2
        yield _Req(
            ts=int(t), model=model, app="chat", session_id=sid, input_tokens=context, output_tokens=out,
            latency_ms=sim._latency(out), label=CONTINUE_PROMPT, finish_reason="stop" if last else "length",
            prompt_chars=4 * context, prompt_text=prompt, output_text=output,
        )  # fmt: skip
        if pool is None:
            context = min(15_000, context + out)
        t += 1000 * _lognormal_int(rng, 30, 0.8, 3, 600)


def _heavy_agent(sim: _Sim, u: _User, t0: float) -> Iterator[_Req]:
    """A heavy honest agent session: 20-60 tool-call turns, the context growing to
    20k+ tokens and then sliding, a different tool result every turn."""
    rng, pool = sim.rng, sim.pool
    model = _AGENT_MODELS[rng.randrange(len(_AGENT_MODELS))] if rng.random() < 0.7 else sim._model(u)
    caching = MODELS[model][3]
    start = rng.getrandbits(30)  # pool offset of the conversation's first character
    context = _lognormal_int(rng, 3000, 0.5, 1000, 8000)
    cap = rng.randint(20_000, 28_000)
    sid, t, prev, shift = _sid(rng), t0, 0, 0
    turns = rng.randint(20, 60)
    for turn in range(turns):
        last = turn == turns - 1
        out = _lognormal_int(rng, 250, 0.7, 30, 1500)
        prompt = _long_text(pool, start + shift, 4 * context) if pool else None
        yield _Req(
            ts=int(t), model=model, app="agent", session_id=sid, input_tokens=context, output_tokens=out,
            latency_ms=sim._latency(out) + context // 100, label=HEAVY_AGENT,
            cached=min(context, int(prev * 0.9)) if caching else 0, finish_reason="stop" if last else "tool_calls",
            prompt_chars=4 * context, prompt_text=prompt,
        )  # fmt: skip
        prev = context
        context += out + _lognormal_int(rng, 600, 1.0, 20, 6000)  # this turn's tool result
        if context > cap:  # the oldest turns dropped
            keep = cap - rng.randrange(4000)
            shift += 4 * (context - keep)
            context, prev = keep, 0
        t += rng.uniform(2000, 30_000)


RED_TEAM: dict[str, Callable[[_Sim, _User, float], Iterator[_Req]]] = {
    REWORDED_REASK: _reworded_reask,
    ROTATING_LOOP: _rotating_loop,
    VARIED_FILLER: _varied_filler,
    NOISED_FILLER: _noised_filler,
    PACED_RESEND: _paced_resend,
    COMPUTE_THEATER: _compute_theater,
    DILUTED_LOOP: _diluted_loop,
    BATCH_TEMPLATE: _batch_template,
    EDIT_RETRY: _edit_retry,
    STRUCTURED_OUTPUT: _structured_output,
    CONTINUE_PROMPT: _continue_prompt,
    HEAVY_AGENT: _heavy_agent,
}
