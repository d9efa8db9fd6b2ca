"""UTC window arithmetic shared by the Python side (same rules as rust/src/time.rs)."""

from __future__ import annotations

import datetime as dt

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS


def week_start_ms(ts_ms: int) -> int:
    """Monday 00:00 UTC of the week containing ``ts_ms`` (epoch milliseconds)."""
    day = ts_ms // DAY_MS
    return (day - (day + 3) % 7) * DAY_MS


def week_start(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def ms_to_datetime(ts_ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts_ms / 1000, tz=dt.UTC)


def now_ms() -> int:
    return int(dt.datetime.now(tz=dt.UTC).timestamp() * 1000)
