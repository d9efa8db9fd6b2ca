"""tokenlord — the honest LLM token leaderboard.

Kafka → Faust → Rust core → ClickHouse. The public Python API is small:

- :func:`count_tokens` — token counts of many texts for a model, in one call
  (GIL released, parallel for large batches);
- :func:`encoding_for` — which encoding tokenlord counts a model's text with;
- :func:`fingerprint` / :func:`fingerprints` — the gateway API: an event's
  ``fingerprint`` field, sent instead of prompt and output text.

Importing it needs only the native core (no Faust, no ClickHouse client):
gateways install ``tokenlord`` (or ``tokenlord[gateway]`` for the Kafka
producer and the LiteLLM logger), workers ``tokenlord[worker]``.
"""

from __future__ import annotations

from collections.abc import Sequence

from tokenlord import _core
from tokenlord.errors import ConfigError, StoreError, TokenlordError
from tokenlord.gateway import fingerprint, fingerprint_key_id, fingerprints

__version__: str = _core.__version__

__all__ = [
    "ConfigError",
    "StoreError",
    "TokenlordError",
    "__version__",
    "count_tokens",
    "encoding_for",
    "fingerprint",
    "fingerprint_key_id",
    "fingerprints",
]


def encoding_for(model: str) -> str:
    """The encoding used for ``model`` (see ``TOKENLORD_MODEL_ENCODINGS``)."""
    from tokenlord.settings import Settings

    return _core.encoding_for(model, **Settings.from_env().encoding_kwargs())[0]


def count_tokens(texts: Sequence[str], model: str) -> list[int]:
    """Token counts of ``texts`` with ``model``'s tokenizer, as ordinary text."""
    from tokenlord.settings import Settings

    s = Settings.from_env()
    encoding = _core.encoding_for(model, **s.encoding_kwargs())[0]
    return _core.count_tokens(list(texts), encoding, s.tokenizer_dir or None)
