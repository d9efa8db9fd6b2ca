"""ClickHouse DDL of the ``tokenlord`` database (see docs/schema.md).

Internal tables are prefixed ``_`` and hold the raw rows written by the
worker, possibly several times (replays) and possibly several versions of an
aggregate cell (restatements). They are all ``ReplacingMergeTree``: a row
with the same sorting key replaces an older one (the highest ``version``, or
the last inserted when there is no version column).

The public objects (``events``, ``usage_hourly``, ``leaderboard_weekly``,
``waste_weekly``, ``rejected``) are plain views that read the internal
tables ``FINAL`` and, for the aggregates, sum the per-Kafka-partition rows,
so a plain ``SELECT`` from a BI tool gets correct, deduplicated numbers.
They run with their definer's rights (``SQL SECURITY DEFINER``): a user
granted ``SELECT`` on the views alone can read them (``init-db --bi-user``).

Every identifier that is not a literal of this module (the database name
comes from settings) goes through :func:`quote_ident`, which only accepts
``[A-Za-z_][A-Za-z0-9_]*``. No value is ever formatted into SQL: values are
bound as query parameters or sent through ``client.insert``.
"""

from __future__ import annotations

import re
from typing import Final

IDENT_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")

DEFAULT_DATABASE: Final = "tokenlord"
DEFAULT_TITLES: Final = ("Token Lord", "AI Grandmaster", "Token Overlord")

# (column, ClickHouse type) in table order. The insert path sends exactly these
# columns with these type names, so no DESCRIBE round trip is needed per insert.
Columns = tuple[tuple[str, str], ...]

# Waste-signal fingerprints (keyed hashes and SimHashes of the text, never it), kept
# internal so that a restarted worker judges the next events like the last one.
FINGERPRINT_COLUMNS: Final[Columns] = (
    ("fp_prompt", "UInt64"),
    ("fp_prompt_sim", "UInt64"),
    ("fp_output_sim", "UInt64"),
    ("fp_flags", "UInt8"),
    # MinHash sketches (128 hex digits; '' for none) for near-duplicate re-asks.
    ("fp_prompt_mh", "String"),
    ("fp_output_mh", "String"),
)

EVENTS_COLUMNS: Final[Columns] = (
    ("event_id", "String"),
    ("ts", "DateTime64(3, 'UTC')"),
    ("user", "String"),
    ("team", "LowCardinality(String)"),
    ("app", "LowCardinality(String)"),
    ("model", "LowCardinality(String)"),
    ("provider", "LowCardinality(String)"),
    ("session_id", "String"),
    ("input_tokens", "UInt64"),
    ("output_tokens", "UInt64"),
    ("cached_input_tokens", "UInt64"),
    ("reasoning_tokens", "UInt64"),
    ("total_tokens", "UInt64"),
    ("tokens_estimated", "UInt8"),
    ("status", "LowCardinality(String)"),
    ("finish_reason", "LowCardinality(String)"),
    ("latency_ms", "Nullable(UInt32)"),
    ("cost_usd", "Float64"),
    ("wasted_tokens", "UInt64"),
    ("waste_reason", "LowCardinality(String)"),
    ("src_partition", "Int32"),
    ("src_offset", "Int64"),
    *FINGERPRINT_COLUMNS,
)

HOURLY_COLUMNS: Final[Columns] = (
    ("src_partition", "Int32"),
    ("hour", "DateTime('UTC')"),
    ("user", "String"),
    ("model", "LowCardinality(String)"),
    ("requests", "UInt64"),
    ("input_tokens", "UInt64"),
    ("output_tokens", "UInt64"),
    ("cached_input_tokens", "UInt64"),
    ("total_tokens", "UInt64"),
    ("wasted_tokens", "UInt64"),
    ("cost_usd", "Float64"),
    ("version", "UInt64"),
)

WEEKLY_COLUMNS: Final[Columns] = (
    ("src_partition", "Int32"),
    ("week_start", "Date"),
    ("user", "String"),
    ("team", "LowCardinality(String)"),
    ("team_ts", "DateTime64(3, 'UTC')"),
    ("requests", "UInt64"),
    ("input_tokens", "UInt64"),
    ("output_tokens", "UInt64"),
    ("total_tokens", "UInt64"),
    ("wasted_tokens", "UInt64"),
    ("cost_usd", "Float64"),
    ("final", "UInt8"),
    ("version", "UInt64"),
)

WASTE_COLUMNS: Final[Columns] = (
    ("src_partition", "Int32"),
    ("week_start", "Date"),
    ("user", "String"),
    ("reason", "LowCardinality(String)"),
    ("requests", "UInt64"),
    ("wasted_tokens", "UInt64"),
    ("version", "UInt64"),
)

REJECTED_COLUMNS: Final[Columns] = (
    ("at", "DateTime64(3, 'UTC')"),
    ("reason", "LowCardinality(String)"),
    ("src_topic", "String"),
    ("src_partition", "Int32"),
    ("src_offset", "Int64"),
    ("idx", "UInt32"),
    ("raw", "String"),
)

OUTCOMES_COLUMNS: Final[Columns] = (
    ("event_id", "String"),
    ("session_id", "String"),
    ("ts", "DateTime64(3, 'UTC')"),
    ("user", "String"),
    ("outcome", "LowCardinality(String)"),
    ("value", "Nullable(Float64)"),
    ("src_partition", "Int32"),
    ("src_offset", "Int64"),
    ("idx", "UInt32"),
)

PROGRESS_COLUMNS: Final[Columns] = (
    ("src_topic", "LowCardinality(String)"),
    ("src_partition", "Int32"),
    ("next_offset", "Int64"),
    ("at", "DateTime64(3, 'UTC')"),
    ("version", "UInt64"),
)

# One row per weekly digest posted (tokenlord.digest): the record that makes it once per week and webhook.
DIGESTS_COLUMNS: Final[Columns] = (
    ("week_start", "Date"),
    ("webhook", "String"),
    ("digest_id", "String"),
    ("sent_at", "DateTime64(3, 'UTC')"),
    ("status", "UInt16"),
)

TITLES_COLUMNS: Final[Columns] = (
    ("rank", "UInt32"),
    ("title", "String"),
)

# Public column lists, in the order of docs/schema.md, "Public views".
EVENTS_VIEW_COLUMNS: Final = tuple(name for name, _ in EVENTS_COLUMNS if (name, _) not in FINGERPRINT_COLUMNS)
USAGE_HOURLY_VIEW_COLUMNS: Final = (
    "hour", "user", "model", "requests", "input_tokens", "output_tokens",
    "cached_input_tokens", "total_tokens", "wasted_tokens", "cost_usd",
)  # fmt: skip
LEADERBOARD_VIEW_COLUMNS: Final = (
    "week_start", "user", "team", "requests", "input_tokens", "output_tokens",
    "total_tokens", "wasted_tokens", "effective_tokens", "waste_ratio", "cost_usd",
    "outcomes", "rank", "effective_rank", "title", "final",
)  # fmt: skip
WASTE_VIEW_COLUMNS: Final = ("week_start", "user", "reason", "requests", "wasted_tokens")
# What `leaderboard --by value` adds to the leaderboard_weekly columns (from value_weekly).
VALUE_RANK_COLUMNS: Final = ("credit", "value_tokens", "value_rank")
# One outcome's credit buys at most this many value tokens (docs/semantics.md "Value
# ranking"): the default of TOKENLORD_VALUE_TOKENS_PER_CREDIT, baked into value_weekly.
VALUE_TOKENS_PER_CREDIT: Final = 500_000
REJECTED_VIEW_COLUMNS: Final = ("at", "reason", "src_topic", "src_partition", "src_offset", "raw")
# What the wasted requests cost: waste_weekly's rows plus their dollars (an event's
# cost times its wasted share of its tokens).
WASTE_COST_VIEW_COLUMNS: Final = ("week_start", "user", "reason", "requests", "wasted_tokens", "wasted_cost_usd")
# The team board: a team's members are the users whose leaderboard_weekly row names it
# (their latest team of the week); every number is the sum over its members' rows.
TEAM_VIEW_COLUMNS: Final = (
    "week_start", "team", "members", "requests", "input_tokens", "output_tokens",
    "total_tokens", "wasted_tokens", "effective_tokens", "waste_ratio", "cost_usd",
    "wasted_cost_usd", "outcomes", "value", "credit", "value_tokens",
    "rank", "effective_rank", "value_rank", "final",
)  # fmt: skip
# The organisation's week: the sum over every user (teams and users without one).
ORG_VIEW_COLUMNS: Final = (
    "week_start", "users", "teams", "requests", "total_tokens", "wasted_tokens",
    "effective_tokens", "waste_ratio", "cost_usd", "wasted_cost_usd", "outcomes",
    "value", "value_per_1m_tokens", "final",
)  # fmt: skip

# The public views read the internal tables with the rights of the user who ran
# init-db (their definer), so a user granted SELECT on the views alone (the BI
# user, store/access.py) can read them; ClickHouse's default for a plain view is
# SQL SECURITY INVOKER, which would need grants on every internal table too.
VIEW_SECURITY: Final = "DEFINER = CURRENT_USER SQL SECURITY DEFINER"

PUBLIC_VIEWS: Final = (
    "events", "usage_hourly", "leaderboard_weekly", "waste_weekly", "rejected", "value_weekly",
    "waste_cost_weekly", "team_weekly", "org_weekly",
)  # fmt: skip
INTERNAL_TABLES: Final = (
    "_events", "_hourly", "_weekly", "_waste", "_rejected", "_titles", "_outcomes", "_progress", "_digests",
)  # fmt: skip


def check_ident(name: str) -> str:
    """Return ``name`` if it is a plain identifier, else raise ``ValueError``."""
    if not isinstance(name, str) or IDENT_RE.fullmatch(name) is None:
        raise ValueError(f"invalid ClickHouse identifier: {name!r} (want [A-Za-z_][A-Za-z0-9_]*)")
    return name


def quote_ident(name: str) -> str:
    """Validate and backtick-quote one identifier."""
    return f"`{check_ident(name)}`"


def _cols(columns: Columns) -> str:
    return ",\n    ".join(f"{quote_ident(name)} {type_}" for name, type_ in columns)


def _q(names: tuple[str, ...]) -> str:
    return ", ".join(quote_ident(n) for n in names)


def ddl(database: str, value_tokens_per_credit: int = VALUE_TOKENS_PER_CREDIT) -> list[str]:
    """Every statement of ``init_db``, in order; each one is idempotent.

    ``value_tokens_per_credit`` (TOKENLORD_VALUE_TOKENS_PER_CREDIT) is written
    into the value_weekly view as an integer literal: a change takes effect
    when ``init_db`` runs again."""
    if type(value_tokens_per_credit) is not int or not 0 < value_tokens_per_credit <= 10**12:
        raise ValueError(f"value_tokens_per_credit must be an integer in 1..10**12, not {value_tokens_per_credit!r}")
    db = quote_ident(database)

    def t(name: str) -> str:
        return f"{db}.{quote_ident(name)}"

    stmts = [f"CREATE DATABASE IF NOT EXISTS {db}"]

    # One row per accepted event occurrence. The key is the Kafka position plus
    # the id: a replay of the same offsets rewrites the same keys (collapsed by
    # FINAL), while an event_id the core accepted twice (a resend after the
    # dedupe horizon) stays twice, like it is counted in the aggregates.
    # Duplicates always have the same ts, hence the same partition, so FINAL
    # never needs to merge across partitions.
    stmts.append(
        f"""CREATE TABLE IF NOT EXISTS {t("_events")} (
    {_cols(EVENTS_COLUMNS)},
    INDEX idx_event_id event_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_user `user` TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toMonday(ts, 'UTC')
ORDER BY (src_partition, src_offset, event_id)"""
    )
    # Tables created before the fingerprints existed get them (idempotent).
    stmts.extend(
        f"ALTER TABLE {t('_events')} ADD COLUMN IF NOT EXISTS {quote_ident(name)} {type_}"
        for name, type_ in FINGERPRINT_COLUMNS
    )
    stmts.append(
        f"""CREATE TABLE IF NOT EXISTS {t("_hourly")} (
    {_cols(HOURLY_COLUMNS)}
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toMonday(hour, 'UTC')
ORDER BY (hour, `user`, model, src_partition)"""
    )
    stmts.append(
        f"""CREATE TABLE IF NOT EXISTS {t("_weekly")} (
    {_cols(WEEKLY_COLUMNS)}
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY week_start
ORDER BY (week_start, `user`, src_partition)"""
    )
    stmts.append(
        f"""CREATE TABLE IF NOT EXISTS {t("_waste")} (
    {_cols(WASTE_COLUMNS)}
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY week_start
ORDER BY (week_start, `user`, reason, src_partition)"""
    )
    # Not partitioned by `at`: a replay writes the same keys with a later `at`,
    # and both copies must land in the same partition to be collapsed.
    stmts.append(
        f"""CREATE TABLE IF NOT EXISTS {t("_rejected")} (
    {_cols(REJECTED_COLUMNS)}
)
ENGINE = ReplacingMergeTree
ORDER BY (src_topic, src_partition, src_offset, idx)"""
    )
    # Outcomes: one row per outcome; the same outcome of the same request sent
    # again (same user, target, outcome and ts) collapses, so does a replay.
    stmts.append(
        f"""CREATE TABLE IF NOT EXISTS {t("_outcomes")} (
    {_cols(OUTCOMES_COLUMNS)}
)
ENGINE = ReplacingMergeTree
PARTITION BY toMonday(ts, 'UTC')
ORDER BY (`user`, event_id, session_id, outcome, ts)"""
    )
    # Per source partition: the offset after the last message whose rows are all
    # written (the batch's last insert). A restore resumes there and rebuilds its
    # state from the events below it, so a replay never applies a message twice.
    stmts.append(
        f"""CREATE TABLE IF NOT EXISTS {t("_progress")} (
    {_cols(PROGRESS_COLUMNS)}
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (src_topic, src_partition)"""
    )
    # A digest posted twice (a worker killed between the post and this row) keeps one row.
    stmts.append(
        f"""CREATE TABLE IF NOT EXISTS {t("_digests")} (
    {_cols(DIGESTS_COLUMNS)}
)
ENGINE = ReplacingMergeTree
ORDER BY (week_start, webhook)"""
    )
    stmts.append(
        f"""CREATE TABLE IF NOT EXISTS {t("_titles")} (
    {_cols(TITLES_COLUMNS)}
)
ENGINE = MergeTree
ORDER BY `rank`"""
    )

    # ---- views ------------------------------------------------------------
    # Aggregating views compute into distinct inner names (x_*) and rename only
    # in the outermost SELECT: an alias that equals a column name (e.g.
    # `sum(total_tokens) AS total_tokens`, `... AS rank`) can shadow the column
    # in other expressions of the same query.
    stmts.append(
        f"""CREATE OR REPLACE VIEW {t("events")}
{VIEW_SECURITY}
AS
SELECT {_q(EVENTS_VIEW_COLUMNS)}
FROM {t("_events")} FINAL"""
    )
    stmts.append(
        f"""CREATE OR REPLACE VIEW {t("usage_hourly")}
{VIEW_SECURITY}
AS
SELECT
    x_hour AS hour,
    x_user AS `user`,
    x_model AS model,
    x_requests AS requests,
    x_input AS input_tokens,
    x_output AS output_tokens,
    x_cached AS cached_input_tokens,
    x_total AS total_tokens,
    x_wasted AS wasted_tokens,
    x_cost AS cost_usd
FROM (
    SELECT
        h.hour AS x_hour,
        h.`user` AS x_user,
        h.model AS x_model,
        sum(h.requests) AS x_requests,
        sum(h.input_tokens) AS x_input,
        sum(h.output_tokens) AS x_output,
        sum(h.cached_input_tokens) AS x_cached,
        sum(h.total_tokens) AS x_total,
        sum(h.wasted_tokens) AS x_wasted,
        sum(h.cost_usd) AS x_cost
    FROM {t("_hourly")} AS h FINAL
    GROUP BY x_hour, x_user, x_model
)"""
    )
    stmts.append(
        f"""CREATE OR REPLACE VIEW {t("leaderboard_weekly")}
{VIEW_SECURITY}
AS
SELECT
    x_week AS week_start,
    x_user AS `user`,
    x_team AS team,
    x_requests AS requests,
    x_input AS input_tokens,
    x_output AS output_tokens,
    x_total AS total_tokens,
    x_wasted AS wasted_tokens,
    x_effective AS effective_tokens,
    x_waste_ratio AS waste_ratio,
    x_cost AS cost_usd,
    x_outcomes AS outcomes,
    x_rank AS `rank`,
    x_effective_rank AS effective_rank,
    x_title AS title,
    x_final AS `final`
FROM (
    SELECT
        r.*,
        ifNull(tt.x_title_name, '') AS x_title
    FROM (
        SELECT
            e.*,
            row_number() OVER (PARTITION BY e.x_week ORDER BY e.x_total DESC, e.x_user ASC)
                AS x_rank,
            row_number() OVER (PARTITION BY e.x_week ORDER BY e.x_effective DESC, e.x_user ASC)
                AS x_effective_rank
        FROM (
            SELECT
                a.*,
                toUInt64(a.x_total - least(a.x_wasted, a.x_total)) AS x_effective,
                if(a.x_total = 0, 0., a.x_wasted / a.x_total) AS x_waste_ratio,
                toUInt64(oc.x_n) AS x_outcomes
            FROM (
                SELECT
                    w.week_start AS x_week,
                    w.`user` AS x_user,
                    toString(argMaxIf(w.team, (w.team_ts, w.team), w.team != '')) AS x_team,
                    sum(w.requests) AS x_requests,
                    sum(w.input_tokens) AS x_input,
                    sum(w.output_tokens) AS x_output,
                    sum(w.total_tokens) AS x_total,
                    sum(w.wasted_tokens) AS x_wasted,
                    sum(w.cost_usd) AS x_cost,
                    min(w.`final`) AS x_final
                FROM {t("_weekly")} AS w FINAL
                GROUP BY x_week, x_user
            ) AS a
            LEFT JOIN (
                SELECT toMonday(o.ts, 'UTC') AS x_o_week, o.`user` AS x_o_user, countIf(o.outcome != 'rejected') AS x_n
                FROM {t("_outcomes")} AS o FINAL
                GROUP BY x_o_week, x_o_user
            ) AS oc ON oc.x_o_week = a.x_week AND oc.x_o_user = a.x_user
        ) AS e
    ) AS r
    LEFT JOIN (
        SELECT toUInt64(`rank`) AS x_title_rank, any(title) AS x_title_name
        FROM {t("_titles")}
        GROUP BY x_title_rank
    ) AS tt ON tt.x_title_rank = r.x_effective_rank
)
ORDER BY week_start DESC, `rank` ASC"""
    )
    stmts.append(
        f"""CREATE OR REPLACE VIEW {t("waste_weekly")}
{VIEW_SECURITY}
AS
SELECT
    x_week AS week_start,
    x_user AS `user`,
    x_reason AS reason,
    x_requests AS requests,
    x_wasted AS wasted_tokens
FROM (
    SELECT
        w.week_start AS x_week,
        w.`user` AS x_user,
        w.reason AS x_reason,
        sum(w.requests) AS x_requests,
        sum(w.wasted_tokens) AS x_wasted
    FROM {t("_waste")} AS w FINAL
    GROUP BY x_week, x_user, x_reason
)"""
    )
    # What the tokens achieved: outcomes joined to usage by event_id or
    # session_id (attributed tokens: usage of the requests and sessions that led
    # to an outcome), per user and week; sum by team for team figures. An
    # outcome attributes only its own user's events: one naming another user's
    # event or session (a colliding session id, or someone claiming credit for
    # a colleague's request) attributes nothing to either. An
    # outcome "rejected" (the work was turned down) is kept in _outcomes but
    # counts as no outcome and attributes nothing.
    # The value ranking (`leaderboard --by value`, docs/semantics.md "Value"):
    # value_tokens = min(effective tokens of the week's attributed events,
    # credit x value_tokens_per_credit), credit = the summed value (1 when
    # none is given) of the distinct non-rejected outcomes that attribute at
    # least one of the week's events. Users without value_tokens rank after
    # everyone with some, by name only: spending cannot climb among them.
    outcome_events = f"""SELECT o.`user` AS x_user, o.event_id AS x_oe, o.session_id AS x_os, o.outcome AS x_oo,
               o.ts AS x_ots, o.x_credit AS x_credit, toMonday(e.ts, 'UTC') AS x_week
        FROM (SELECT `user`, event_id, session_id, outcome, ts, greatest(ifNull(value, 1.), 0.) AS x_credit
              FROM {t("_outcomes")} FINAL WHERE outcome != 'rejected' AND {{key}} != '') AS o
        INNER JOIN (SELECT `user`, {{key}}, ts FROM {t("_events")} FINAL WHERE {{key}} != '') AS e
            ON e.`user` = o.`user` AND e.{{key}} = o.{{key}}"""
    stmts.append(
        f"""CREATE OR REPLACE VIEW {t("value_weekly")}
{VIEW_SECURITY}
AS
SELECT
    v.*,
    row_number() OVER (
        PARTITION BY v.week_start
        ORDER BY v.value_tokens > 0 DESC, v.value_tokens DESC, if(v.value_tokens > 0, v.credit, 0.) DESC, v.`user` ASC
    ) AS value_rank
FROM (
SELECT
    l.week_start AS week_start,
    l.`user` AS `user`,
    l.team AS team,
    l.total_tokens AS total_tokens,
    l.effective_tokens AS effective_tokens,
    l.cost_usd AS cost_usd,
    l.outcomes AS outcomes,
    ov.x_value AS value,
    toUInt64(at.x_attributed) AS attributed_tokens,
    if(l.outcomes = 0, NULL, l.total_tokens / l.outcomes) AS tokens_per_outcome,
    if(l.outcomes = 0, NULL, l.cost_usd / l.outcomes) AS cost_per_outcome,
    if(l.total_tokens = 0, 0., ov.x_value * 1000000 / l.total_tokens) AS value_per_1m_tokens,
    toFloat64(cr.x_credit) AS credit,
    toUInt64(least(toFloat64(at.x_attributed_effective), floor(cr.x_credit * {value_tokens_per_credit:d})))
        AS value_tokens
FROM {t("leaderboard_weekly")} AS l
LEFT JOIN (
    SELECT toMonday(o.ts, 'UTC') AS x_week, o.`user` AS x_user, sum(ifNull(o.value, 0)) AS x_value
    FROM {t("_outcomes")} AS o FINAL
    WHERE o.outcome != 'rejected'
    GROUP BY x_week, x_user
) AS ov ON ov.x_week = l.week_start AND ov.x_user = l.`user`
LEFT JOIN (
    SELECT toMonday(e.ts, 'UTC') AS x_week, e.`user` AS x_user, sum(e.total_tokens) AS x_attributed,
           sum(e.total_tokens - least(e.wasted_tokens, e.total_tokens)) AS x_attributed_effective
    FROM {t("_events")} AS e FINAL
    WHERE (e.`user`, e.event_id) IN (
           SELECT `user`, event_id FROM {t("_outcomes")} WHERE event_id != '' AND outcome != 'rejected')
       OR (e.session_id != '' AND (e.`user`, e.session_id) IN (
           SELECT `user`, session_id FROM {t("_outcomes")} WHERE session_id != '' AND outcome != 'rejected'))
    GROUP BY x_week, x_user
) AS at ON at.x_week = l.week_start AND at.x_user = l.`user`
LEFT JOIN (
    SELECT x_week, x_user, sum(x_credit) AS x_credit
    FROM (
        SELECT x_week, x_user, x_oe, x_os, x_oo, x_ots, any(x_credit) AS x_credit
        FROM (
        {outcome_events.format(key="event_id")}
        UNION ALL
        {outcome_events.format(key="session_id")}
        )
        GROUP BY x_week, x_user, x_oe, x_os, x_oo, x_ots
    )
    GROUP BY x_week, x_user
) AS cr ON cr.x_week = l.week_start AND cr.x_user = l.`user`
) AS v"""
    )
    stmts.append(
        f"""CREATE OR REPLACE VIEW {t("waste_cost_weekly")}
{VIEW_SECURITY}
AS
SELECT
    x_week AS week_start,
    x_user AS `user`,
    x_reason AS reason,
    x_requests AS requests,
    x_wasted AS wasted_tokens,
    x_wasted_cost AS wasted_cost_usd
FROM (
    SELECT
        toMonday(e.ts, 'UTC') AS x_week,
        e.`user` AS x_user,
        e.waste_reason AS x_reason,
        count() AS x_requests,
        sum(e.wasted_tokens) AS x_wasted,
        sum(if(e.total_tokens = 0, 0., e.cost_usd * least(e.wasted_tokens, e.total_tokens) / e.total_tokens))
            AS x_wasted_cost
    FROM {t("_events")} AS e FINAL
    WHERE e.waste_reason != ''
    GROUP BY x_week, x_user, x_reason
)"""
    )
    stmts.append(
        f"""CREATE OR REPLACE VIEW {t("team_weekly")}
{VIEW_SECURITY}
AS
SELECT
    x_week AS week_start,
    x_team AS team,
    x_members AS members,
    x_requests AS requests,
    x_input AS input_tokens,
    x_output AS output_tokens,
    x_total AS total_tokens,
    x_wasted AS wasted_tokens,
    x_effective AS effective_tokens,
    if(x_total = 0, 0., x_wasted / x_total) AS waste_ratio,
    x_cost AS cost_usd,
    x_wasted_cost AS wasted_cost_usd,
    x_outcomes AS outcomes,
    x_value AS value,
    x_credit AS credit,
    x_value_tokens AS value_tokens,
    x_rank AS `rank`,
    x_effective_rank AS effective_rank,
    x_value_rank AS value_rank,
    x_final AS `final`
FROM (
    SELECT
        g.*,
        row_number() OVER (PARTITION BY g.x_week ORDER BY g.x_total DESC, g.x_team ASC) AS x_rank,
        row_number() OVER (PARTITION BY g.x_week ORDER BY g.x_effective DESC, g.x_team ASC) AS x_effective_rank,
        row_number() OVER (
            PARTITION BY g.x_week
            ORDER BY g.x_value_tokens > 0 DESC, g.x_value_tokens DESC, if(g.x_value_tokens > 0, g.x_credit, 0.) DESC,
                g.x_team ASC
        ) AS x_value_rank
    FROM (
        SELECT
            l.week_start AS x_week,
            l.team AS x_team,
            toUInt64(count()) AS x_members,
            sum(l.requests) AS x_requests,
            sum(l.input_tokens) AS x_input,
            sum(l.output_tokens) AS x_output,
            sum(l.total_tokens) AS x_total,
            sum(l.wasted_tokens) AS x_wasted,
            sum(l.effective_tokens) AS x_effective,
            sum(l.cost_usd) AS x_cost,
            sum(wc.x_user_wasted_cost) AS x_wasted_cost,
            sum(l.outcomes) AS x_outcomes,
            sum(ifNull(v.value, 0.)) AS x_value,
            sum(v.credit) AS x_credit,
            sum(v.value_tokens) AS x_value_tokens,
            min(l.`final`) AS x_final
        FROM {t("leaderboard_weekly")} AS l
        LEFT JOIN (
            SELECT week_start, `user`, value, credit, value_tokens FROM {t("value_weekly")}
        ) AS v ON v.week_start = l.week_start AND v.`user` = l.`user`
        LEFT JOIN (
            SELECT week_start AS x_wc_week, `user` AS x_wc_user, sum(wasted_cost_usd) AS x_user_wasted_cost
            FROM {t("waste_cost_weekly")}
            GROUP BY x_wc_week, x_wc_user
        ) AS wc ON wc.x_wc_week = l.week_start AND wc.x_wc_user = l.`user`
        GROUP BY x_week, x_team
    ) AS g
)"""
    )
    stmts.append(
        f"""CREATE OR REPLACE VIEW {t("org_weekly")}
{VIEW_SECURITY}
AS
SELECT
    x_week AS week_start,
    x_users AS users,
    x_teams AS teams,
    x_requests AS requests,
    x_total AS total_tokens,
    x_wasted AS wasted_tokens,
    x_effective AS effective_tokens,
    if(x_total = 0, 0., x_wasted / x_total) AS waste_ratio,
    x_cost AS cost_usd,
    x_wasted_cost AS wasted_cost_usd,
    x_outcomes AS outcomes,
    x_value AS value,
    if(x_total = 0, 0., x_value * 1000000 / x_total) AS value_per_1m_tokens,
    x_final AS `final`
FROM (
    SELECT
        week_start AS x_week,
        sum(members) AS x_users,
        toUInt64(countIf(team != '')) AS x_teams,
        sum(requests) AS x_requests,
        sum(total_tokens) AS x_total,
        sum(wasted_tokens) AS x_wasted,
        sum(effective_tokens) AS x_effective,
        sum(cost_usd) AS x_cost,
        sum(wasted_cost_usd) AS x_wasted_cost,
        sum(outcomes) AS x_outcomes,
        sum(value) AS x_value,
        min(`final`) AS x_final
    FROM {t("team_weekly")}
    GROUP BY x_week
)"""
    )
    stmts.append(
        f"""CREATE OR REPLACE VIEW {t("rejected")}
{VIEW_SECURITY}
AS
SELECT {_q(REJECTED_VIEW_COLUMNS)}
FROM {t("_rejected")} FINAL"""
    )
    return stmts
