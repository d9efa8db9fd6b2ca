"""tokenlord's exceptions: one base class, a few precise kinds.

The native core's errors (``tokenlord._core.TokenlordError`` and subclasses)
are re-exported here so callers catch one hierarchy.
"""

from __future__ import annotations

from tokenlord._core import ConfigError as CoreConfigError
from tokenlord._core import InputError as CoreInputError
from tokenlord._core import TokenlordError

__all__ = [
    "ConfigError",
    "CoreConfigError",
    "CoreInputError",
    "KafkaLocalError",
    "StoreError",
    "TokenlordError",
]


class ConfigError(TokenlordError):
    """A setting or flag is wrong; the message says which and how to fix it."""


class StoreError(TokenlordError):
    """ClickHouse could not be reached or refused a write."""


class KafkaLocalError(TokenlordError):
    """The local Kafka could not be fetched, started, stopped or inspected."""
