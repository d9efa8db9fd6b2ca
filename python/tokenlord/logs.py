"""Log formats: ``TOKENLORD_LOG_FORMAT=text`` (one line per record) or ``json``
(one JSON object per line: ``ts``, ``level``, ``logger``, ``msg``, and
``exc`` when there is an exception), for log shippers."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import orjson

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record; never raises on odd arguments."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


def logging_config(level: str, fmt: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` document: records at ``level`` and up to
    stderr, as ``fmt`` (text or json)."""
    formatter: dict[str, Any] = {"()": f"{__name__}.JsonFormatter"} if fmt == "json" else {"format": TEXT_FORMAT}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"tokenlord": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "tokenlord",
                "stream": "ext://sys.stderr",
                "level": level.upper(),
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
    }
