"""tokenlord's exceptions: one base class, a few precise kinds.

The native core's errors (``tokenlord._core.TokenlordError`` and subclasses)
are the hierarchy: ``ConfigError`` *is* the core's (a bad setting, whether
Python or the core finds it, is caught by one ``except ConfigError``), and
the kinds only Python raises derive from the core's base class.
"""

from __future__ import annotations

from tokenlord._core import ConfigError as CoreConfigError
from tokenlord._core import InputError as CoreInputError
from tokenlord._core import TokenlordError

__all__ = [
    "ConfigError",
    "CoreConfigError",
    "CoreInputError",
    "InputError",
    "KafkaLocalError",
    "StoreError",
    "TokenlordError",
]


#: A setting or flag is wrong; the message says which and how to fix it.
ConfigError = CoreConfigError
#: Arguments of one call into the core do not fit together.
InputError = CoreInputError


class StoreError(TokenlordError):
    """ClickHouse could not be reached or refused a write."""


class KafkaLocalError(TokenlordError):
    """The local Kafka could not be fetched, started, stopped or inspected."""
