"""The gateway API: what a gateway needs to send waste signals without text.

A gateway computes an event's ``fingerprint`` field (docs/semantics.md, "Fingerprints") from
the prompt and output it will not send, with the same Rust code the worker
runs on text events, so both get the same waste verdicts. Fingerprints are
keyed with the organisation's secret (``TOKENLORD_FINGERPRINT_KEY`` or
``TOKENLORD_FINGERPRINT_KEY_FILE``, the same on gateways and workers): hashes,
SimHashes and sizes, nothing the text can be read back from
(docs/semantics.md, "Fingerprints").

This module needs only the native core: no Faust, no ClickHouse client.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from tokenlord import _core

#: The version of the ``fingerprint`` field this code makes (``"v"``).
FINGERPRINT_VERSION: int = _core.FINGERPRINT_VERSION

Pair = tuple[str | None, str | None]


@lru_cache(maxsize=4)
def _secret_from(key: str | None, key_file: str | None) -> bytes:
    from tokenlord.settings import Settings

    env = {k: v for k, v in (("TOKENLORD_FINGERPRINT_KEY", key), ("TOKENLORD_FINGERPRINT_KEY_FILE", key_file)) if v}
    return Settings.from_env(environ=env).fingerprint_secret()


def fingerprint_secret() -> bytes:
    """The organisation's fingerprint secret from the environment (empty when unset)."""
    return _secret_from(os.environ.get("TOKENLORD_FINGERPRINT_KEY"), os.environ.get("TOKENLORD_FINGERPRINT_KEY_FILE"))


def _key(secret: bytes | str | None) -> bytes:
    if secret is None:
        return fingerprint_secret()
    return secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)


def fingerprint(prompt: str | None, output: str | None, *, secret: bytes | str | None = None) -> dict[str, Any]:
    """The JSON-ready value of an event's ``fingerprint`` field for this text.

    ``secret`` overrides ``TOKENLORD_FINGERPRINT_KEY`` (a gateway with its own
    configuration). Text that is ``None`` or only whitespace leaves its side out.
    """
    return json.loads(_core.fingerprints([(prompt, output)], _key(secret))[0])  # type: ignore[no-any-return]


def fingerprints(pairs: Iterable[Pair], *, secret: bytes | str | None = None) -> list[dict[str, Any]]:
    """:func:`fingerprint` of many (prompt, output) pairs in one call (GIL released, parallel)."""
    return [json.loads(j) for j in fingerprints_json(pairs, secret=secret)]


def fingerprints_json(pairs: Iterable[Pair], *, secret: bytes | str | None = None) -> list[str]:
    """The same as JSON text, for gateways that write the event's bytes themselves."""
    pairs = list(pairs)
    key = _key(secret)
    try:
        return _core.fingerprints(pairs, key)
    except UnicodeEncodeError:
        # A lone surrogate (e.g. from "\ud800" in a client's JSON) is no UTF-8: it is
        # fingerprinted as "?", and one such text costs nothing to the others.
        return _core.fingerprints([(utf8(p), utf8(o)) for p, o in pairs], key)


def utf8(text: str | None) -> str | None:
    """``text`` with lone surrogates replaced by ``?`` (what can be encoded as UTF-8)."""
    return None if text is None else text.encode("utf-8", "replace").decode("utf-8")


def fingerprint_key_id(*, secret: bytes | str | None = None) -> str:
    """The public id of the key (the fingerprints' ``"key"``): tells which secret made them."""
    return _core.fingerprint_key_id(_key(secret))
