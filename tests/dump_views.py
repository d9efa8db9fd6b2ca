"""Prints the public views of a tokenlord database as JSON (used by tests).

Runs in its own process: chDB allows one data directory per process, and a
BI tool reading the views is another process too.
usage: python tests/dump_views.py CLICKHOUSE_URL DATABASE [--all]

With ``--all``: every row of every table and view of the database, internal
``_`` tables included, bytes decoded as UTF-8 (to search them for text).
"""

from __future__ import annotations

import base64
import sys
from typing import Any

import orjson
from tokenlord.store import Store
from tokenlord.store.schema import EVENTS_VIEW_COLUMNS

# The events view's columns but app, ts as epoch ms.
_EVENTS = ", ".join(
    "toUnixTimestamp64Milli(ts) AS ts_ms" if c == "ts" else c for c in EVENTS_VIEW_COLUMNS if c != "app"
)
QUERIES = {
    "leaderboard_weekly": "SELECT * FROM {db}.leaderboard_weekly ORDER BY week_start, `rank`",
    "usage_hourly": "SELECT * FROM {db}.usage_hourly ORDER BY hour, user, model",
    "waste_weekly": "SELECT * FROM {db}.waste_weekly ORDER BY week_start, user, reason",
    "value_weekly": "SELECT * FROM {db}.value_weekly ORDER BY week_start, user",
    "team_weekly": "SELECT * FROM {db}.team_weekly ORDER BY week_start, `rank`",
    "org_weekly": "SELECT * FROM {db}.org_weekly ORDER BY week_start",
    "waste_cost_weekly": "SELECT * FROM {db}.waste_cost_weekly ORDER BY week_start, user, reason",
    "rejected": "SELECT reason, src_topic, src_partition, src_offset, raw FROM {db}.rejected "
    "ORDER BY src_partition, src_offset",
    "events": f"SELECT {_EVENTS} FROM {{db}}.events ORDER BY event_id",
}


def _plain(v: Any) -> Any:
    if isinstance(v, bytes | bytearray):
        return {"b64": base64.b64encode(bytes(v)).decode()}
    return v


def everything(client: Any, db: str) -> dict[str, list[dict[str, Any]]]:
    names = client.query("SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name",
                         parameters={"db": db}).result_rows  # fmt: skip
    out = {}
    for (name,) in names:
        quoted = "`" + name.replace("`", "``") + "`"
        cols = client.query(f"DESCRIBE TABLE {db}.{quoted}").result_rows
        formats = {c[0]: "bytes" for c in cols if "String" in c[1]}
        rows = client.query(f"SELECT * FROM {db}.{quoted}", column_formats=formats).named_results()
        out[name] = [
            {k: bytes(v).decode("utf-8", "replace") if isinstance(v, bytes | bytearray) else v for k, v in r.items()}
            for r in rows
        ]
    return out


def main() -> None:
    url, db = sys.argv[1], sys.argv[2]
    store = Store.connect(url, db)
    client = store.client
    if sys.argv[3:] == ["--all"]:
        sys.stdout.buffer.write(orjson.dumps(everything(client, db), default=str))
        return
    out = {}
    for name, sql in QUERIES.items():
        formats = {"raw": "bytes"} if name == "rejected" else None
        result = client.query(sql.format(db=db), column_formats=formats)
        out[name] = [{k: _plain(v) for k, v in row.items()} for row in result.named_results()]
    sys.stdout.buffer.write(orjson.dumps(out, default=str))


if __name__ == "__main__":
    main()
