"""Webhooks of the weekly digest (``TOKENLORD_DIGEST_WEBHOOKS``): parsed and checked
here, without the worker's dependencies (settings read them on every command)."""

from __future__ import annotations

import dataclasses
import re
from typing import Final, Literal

__all__ = ["KINDS", "Kind", "Webhook", "parse_webhooks"]

Kind = Literal["json", "slack"]
KINDS: Final[tuple[Kind, ...]] = ("json", "slack")
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclasses.dataclass(frozen=True)
class Webhook:
    """``name`` identifies the webhook in ``_digests`` (change the URL, keep the
    name: no second digest); ``url`` is a secret (Slack's carries its token)."""

    name: str
    kind: Kind
    url: str = dataclasses.field(repr=False)

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


def parse_webhooks(text: str) -> tuple[Webhook, ...]:
    """``NAME=KIND:URL,...`` (KIND ``json`` or ``slack``; URL http(s)); empty: none."""
    hooks: list[Webhook] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, eq, rest = part.partition("=")
        kind, colon, url = rest.partition(":")
        if not eq or not colon:
            raise ValueError("expected NAME=KIND:URL entries, comma-separated (e.g. chat=slack:https://hooks...)")
        if not _NAME.match(name):
            raise ValueError(f"webhook name {name!r}: use 1-64 letters, digits, '.', '_' or '-'")
        if kind not in KINDS:
            raise ValueError(f"webhook {name}: kind {kind!r} is not json or slack")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook {name}: the URL must start with http:// or https://")
        if any(h.name == name for h in hooks):
            raise ValueError(f"webhook name {name!r} is given twice")
        hooks.append(Webhook(name, kind, url))
    return tuple(hooks)
