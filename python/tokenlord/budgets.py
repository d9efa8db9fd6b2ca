"""Weekly budgets per user and per team (``TOKENLORD_BUDGETS``), in tokens or
dollars, and how much of each a week has used.

Parsing has no dependency (settings check it on every command); :func:`usage`
reads the public views (``leaderboard_weekly`` for users, ``team_weekly`` for
teams: raw tokens and cost, what was spent) with the names as query parameters.
The worker exports the result as Prometheus gauges; the pages mark who is near
(``TOKENLORD_BUDGET_WARN_PCT``) or over.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Sequence
from typing import Any, Final, Literal, Protocol

__all__ = ["Budget", "BudgetUse", "parse_budgets", "state", "usage"]

Kind = Literal["user", "team"]
Unit = Literal["tokens", "usd"]
_ENTRY = re.compile(r"^(user|team):(.*)=\s*(\$)?\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmMgG]|usd|USD)?$")
_SCALE: Final = {"k": 1e3, "m": 1e6, "g": 1e9}


@dataclasses.dataclass(frozen=True)
class Budget:
    kind: Kind
    name: str  # a user or team name as in the events ('' : the users without a team)
    limit: float  # tokens or USD per week
    unit: Unit

    def __str__(self) -> str:
        amount = f"${self.limit:,.2f}" if self.unit == "usd" else f"{self.limit:,.0f} tokens"
        return f"{self.kind} {self.name or '(no team)'}: {amount} a week"


@dataclasses.dataclass(frozen=True)
class BudgetUse:
    budget: Budget
    used: float  # tokens or USD spent this week

    @property
    def ratio(self) -> float:
        return self.used / self.budget.limit


def parse_budgets(text: str) -> tuple[Budget, ...]:
    """``KIND:NAME=AMOUNT`` entries separated by commas or newlines (``#`` starts a
    comment line). KIND ``user`` or ``team``; AMOUNT tokens (``5000000``, ``5M``,
    ``250k``) or dollars (``$200``, ``200usd``). Names may hold any character but
    ``,`` and a newline."""
    budgets: list[Budget] = []
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        for part in (p.strip() for p in line.split(",")):
            if not part:
                continue
            m = _ENTRY.match(part)
            if not m:
                raise ValueError(
                    f"{part!r}: expected KIND:NAME=AMOUNT (e.g. team:platform=50M, user:ann=$200, team:ml=2500usd)"
                )
            kind, name, dollar, number, suffix = m.groups()
            usd = bool(dollar) or (suffix or "").lower() == "usd"
            if dollar and suffix and suffix.lower() != "usd":
                raise ValueError(f"{part!r}: a dollar amount takes no k/M/G suffix")
            limit = float(number) * (_SCALE.get((suffix or "").lower(), 1.0) if not usd else 1.0)
            if limit <= 0:
                raise ValueError(f"{part!r}: the amount must be > 0")
            if any(b.kind == kind and b.name == name for b in budgets):
                raise ValueError(f"{kind}:{name} has two budgets")
            budgets.append(Budget(kind, name, limit, "usd" if usd else "tokens"))  # type: ignore[arg-type]
    return tuple(budgets)


def state(ratio: float, warn_pct: int) -> Literal["over", "near", "ok"]:
    if ratio >= 1:
        return "over"
    return "near" if ratio * 100 >= warn_pct else "ok"


class Reads(Protocol):
    def table(self, name: str) -> str: ...
    def query_rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]: ...


def usage(store: Reads, budgets: Sequence[Budget], week: dt.date) -> list[BudgetUse]:
    """Each budget's use in ``week`` (0 for a user or team without usage), in the order given."""
    spent: dict[tuple[str, str], dict[str, Any]] = {}
    for kind, view, key in (("user", "leaderboard_weekly", "user"), ("team", "team_weekly", "team")):
        names = sorted({b.name for b in budgets if b.kind == kind})
        if not names:
            continue
        for r in store.query_rows(
            f"SELECT `{key}` AS name, total_tokens, cost_usd FROM {store.table(view)} "
            "WHERE week_start = {week:Date} AND has({names:Array(String)}, `" + key + "`)",
            {"week": week, "names": names},
        ):
            spent[(kind, r["name"])] = r
    out = []
    for b in budgets:
        row = spent.get((b.kind, b.name), {})
        used = float(row.get("cost_usd", 0.0)) if b.unit == "usd" else float(row.get("total_tokens", 0))
        out.append(BudgetUse(b, used))
    return out
