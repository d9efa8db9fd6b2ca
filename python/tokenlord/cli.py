"""``tokenlord`` command line (README, "Command line"). ``tokenlord --help`` lists commands.

Every command accepts every setting as a flag (``--kafka-brokers``...) on top
of the ``TOKENLORD_*`` environment. Errors print one line saying what is wrong
and how to fix it, and exit with status 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import io
import logging
import logging.config
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from tokenlord import report as fmt
from tokenlord.errors import ConfigError, StoreError, TokenlordError
from tokenlord.report import RANKINGS, WASTE_RULES
from tokenlord.settings import FIELDS, Settings, configuration_markdown

__all__ = ["WASTE_RULES", "format_explain", "format_table", "main", "resolve_week"]


class _Parser(argparse.ArgumentParser):
    """No abbreviated flags: one must never pick another flag (--kafka-password is not ...-file)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


def _settings_parent() -> _Parser:
    parent = _Parser(add_help=False)
    group = parent.add_argument_group("settings (each also TOKENLORD_<NAME>; see `tokenlord config`)")
    for f in (f for f in FIELDS if f.has_flag):
        group.add_argument(
            f.flag, dest=f"setting_{f.name}", metavar=f.name.upper(), default=None, help=argparse.SUPPRESS
        )
    return parent


def _parser() -> argparse.ArgumentParser:
    from tokenlord import __version__

    parent = _settings_parent()
    p = _Parser(
        prog="tokenlord",
        description="The honest LLM token leaderboard: Kafka -> Faust -> Rust core -> ClickHouse.",
        parents=[parent],
    )
    p.add_argument("--version", action="version", version=f"tokenlord {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)

    w = sub.add_parser("worker", parents=[parent], help="run a Faust worker on the events topic")
    w.add_argument(
        "--stop-at-end", action="store_true", help="consume up to the end offsets seen at start, flush, commit, exit 0"
    )

    pr = sub.add_parser("produce", parents=[parent], help="send JSONL / JSONL.gz events to Kafka ('-' = stdin)")
    pr.add_argument("files", nargs="+", metavar="FILE")
    pr.add_argument("--topic", help="target topic (default: the events topic)")
    pr.add_argument(
        "--per-message",
        type=_positive,
        default=1,
        metavar="N",
        help="pack N events per Kafka message as a JSON array (default 1)",
    )
    pr.add_argument("--rate", type=_positive, default=None, metavar="EVENTS_PER_S", help="limit the send rate")
    pr.add_argument("--quiet", action="store_true", help="no progress bar")

    sm = sub.add_parser(
        "simulate", parents=[parent], help="generate realistic traffic (honest users and token-maxxers)"
    )
    sm.add_argument("--users", type=_positive, required=True)
    sm.add_argument("--days", type=_positive_float, required=True)
    sm.add_argument("--gamers", type=_non_negative, default=0)
    sm.add_argument("--seed", type=int, default=42)
    sm.add_argument("--text-share", type=_fraction, default=0.0, help="share of events carrying text instead of counts")
    sm.add_argument(
        "--fingerprints",
        action="store_true",
        help="the --text-share events carry counts and a fingerprint of their text instead of the text, as a gateway"
        " that sends no text (keyed with TOKENLORD_FINGERPRINT_KEY)",
    )
    sm.add_argument(
        "--red-team",
        action="store_true",
        help="the --gamers adapt to the waste rules (reworded re-asks, rotating loops, varied filler, paced"
        " re-sends, compute theater, diluted loops) and about 30%% of the honest users do honest work that looks"
        " like gaming (batch templates, edit-and-retry, structured outputs, continue, heavy agents); every event's"
        " _label names its profile",
    )
    sm.add_argument("--out", help="write JSONL(.gz) here instead of producing to Kafka")
    sm.add_argument(
        "--outcomes-out", metavar="FILE", help="with --out: also write the sessions' outcome events (JSONL) here"
    )
    sm.add_argument("--no-outcomes", action="store_true", help="do not produce outcome events to the outcomes topic")
    sm.add_argument("--per-message", type=_positive, default=1, metavar="N")
    sm.add_argument(
        "--format",
        choices=("events", "otlp-proto", "otlp-json"),
        default="events",
        help="events: usage events (JSON) to the events topic; otlp-proto / otlp-json: one OpenTelemetry trace "
        "record per event (a GenAI span and a plain server span) to TOKENLORD_OTLP_TOPIC, or with --out "
        "OTLP/JSON lines (otlp-json only)",
    )
    sm.add_argument("--quiet", action="store_true")

    lb = sub.add_parser("leaderboard", parents=[parent], help="print a week's ranking")
    lb.add_argument("--week", default="current", help="current | last | YYYY-MM-DD (any day of the week)")
    lb.add_argument("--top", type=_positive, default=100)
    lb.add_argument("--by", choices=RANKINGS, default="raw", help="raw | effective | value (docs/semantics.md)")
    lb.add_argument("--format", choices=("table", "json", "csv"), default="table")
    lb.add_argument(
        "--group",
        choices=("user", "team"),
        default="user",
        help="user: the leaderboard_weekly board; team: the team_weekly board (a team = the sum of its members)",
    )

    og = sub.add_parser(
        "org", parents=[parent], help="the organisation's week: tokens, cost, waste by reason in tokens and dollars"
    )
    og.add_argument("--week", default="current", help="current | last | YYYY-MM-DD (any day of the week)")
    og.add_argument("--weeks", type=_positive, default=8, help="weeks to compare with, this one included")
    og.add_argument("--format", choices=("table", "json"), default="table")

    bg = sub.add_parser("budgets", parents=[parent], help="what each weekly budget (TOKENLORD_BUDGETS) has used")
    bg.add_argument("--week", default="current", help="current | last | YYYY-MM-DD (any day of the week)")
    bg.add_argument("--format", choices=("table", "json"), default="table")

    ex = sub.add_parser("explain", parents=[parent], help="why a user's tokens were discounted (audit trail)")
    ex.add_argument("user")
    ex.add_argument("--week", default="current", help="current | last | YYYY-MM-DD (any day of the week)")
    ex.add_argument("--format", choices=("table", "json"), default="table")

    tk = sub.add_parser("tokens", parents=[parent], help="count the tokens of text files with a model's tokenizer")
    tk.add_argument("--model", required=True, help="model name, e.g. gpt-4o (see TOKENLORD_MODEL_ENCODINGS)")
    tk.add_argument("files", nargs="+", metavar="FILE", help="text files ('-' = stdin)")

    sub.add_parser(
        "init-db",
        parents=[parent],
        help="create the ClickHouse database, tables and views (--bi-user NAME: also a read-only user for BI tools; "
        "--worker-user NAME: an insert/select user for workers)",
    )

    kl = sub.add_parser("kafka-local", parents=[parent], help="a real single-node Kafka on 127.0.0.1 for dev and tests")
    kl.add_argument("action", choices=("start", "stop", "status"))

    cf = sub.add_parser("config", parents=[parent], help="print the effective settings (secrets masked)")
    cf.add_argument("--markdown", action="store_true", help="print docs/configuration.md")

    wu = sub.add_parser(
        "web-user",
        parents=[parent],
        help="print a TOKENLORD_WEB_USERS_FILE line (user:scrypt hash); the password is read from stdin",
    )
    wu.add_argument("name", help="the user name as it appears on the leaderboard")
    return p


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return v


def _non_negative(text: str) -> int:
    return 0 if text.strip() == "0" else _positive(text)


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return v


def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 1")
    return v


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {f.name: getattr(args, f"setting_{f.name}", None) for f in FIELDS if f.has_flag}
    return Settings.from_env(overrides)


def _setup_logging(settings: Settings) -> None:
    from tokenlord.logs import logging_config

    logging.config.dictConfig(logging_config(settings.log_level, settings.log_format))


#: Top-level modules of the ``worker`` extra's dependencies (the CLI's commands
#: beyond ``config``, ``tokens`` and ``explain`` need them).
_WORKER_MODULES = frozenset(
    {"faust", "mode", "aiokafka", "clickhouse_connect", "chdb", "cramjam", "prometheus_client"}
    | {"confluent_kafka", "orjson"}
)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
        return int(_dispatch(args, settings) or 0)
    except TokenlordError as exc:
        print(f"tokenlord {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in _WORKER_MODULES:
            raise
        print(
            f"tokenlord {args.command}: error: this command needs {exc.name!r}, which is not installed"
            " (a gateway-only install); install the worker's dependencies: pip install 'tokenlord[worker]'",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace, settings: Settings) -> int | None:
    cmd = args.command
    if cmd == "config":
        return _cmd_config(args, settings)
    if cmd == "web-user":
        return _cmd_web_user(args)
    if cmd == "kafka-local":
        return _cmd_kafka_local(args, settings)
    if cmd == "init-db":
        return _cmd_init_db(settings)
    if cmd == "leaderboard":
        return _cmd_team_board(args, settings) if args.group == "team" else _cmd_leaderboard(args, settings)
    if cmd == "org":
        return _cmd_org(args, settings)
    if cmd == "budgets":
        return _cmd_budgets(args, settings)
    if cmd == "produce":
        from tokenlord.kafka.produce import produce_files

        produce_files(
            settings,
            args.files,
            topic=args.topic or settings.events_topic,
            per_message=args.per_message,
            rate=args.rate,
            progress=not args.quiet,
        )
        return 0
    if cmd == "simulate":
        return _cmd_simulate(args, settings)
    if cmd == "tokens":
        return _cmd_tokens(args, settings)
    if cmd == "explain":
        return _cmd_explain(args, settings)
    if cmd == "worker":
        from streams.worker import run_worker

        _setup_logging(settings)
        return run_worker(settings, stop_at_end=args.stop_at_end)
    raise AssertionError(cmd)


def _cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    if args.markdown:
        sys.stdout.write(configuration_markdown())
        return 0
    rows = settings.effective()
    width = max(len(env) for env, _, _ in rows)
    for env, value, _ in rows:
        print(f"{env.ljust(width)}  {value}")
    return 0


def _cmd_web_user(args: argparse.Namespace) -> int:
    """``user:HASH`` for the basic-auth users file; the password never goes on the command line."""
    import getpass

    from tokenlord.web_access import hash_password

    name = str(args.name)
    if not name or ":" in name or name != name.strip() or "\n" in name:
        raise ConfigError(f"web-user {name!r}: a user name has no ':', newline or surrounding spaces.")
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {name}: ")
        if getpass.getpass("again: ") != password:
            raise ConfigError("web-user: the two passwords differ.")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 8:
        raise ConfigError("web-user: the password has fewer than 8 characters.")
    print(f"{name}:{hash_password(password)}")
    return 0


def _cmd_init_db(settings: Settings) -> int:
    from tokenlord.settings import mask

    url = settings.clickhouse_url
    where = url if url.startswith("chdb:") else mask(url)
    passwords: dict[str, str] = {}
    for flag, user, secret in (
        ("--bi-user", settings.bi_user, settings.bi_secret),
        ("--worker-user", settings.worker_user, settings.worker_secret),
    ):
        if user:  # checked before anything is created
            if url.startswith("chdb:"):
                raise ConfigError(
                    f"{flag} needs a ClickHouse server (TOKENLORD_CLICKHOUSE_URL=http(s)://...): "
                    f"embedded chDB ({where}) has no users to create"
                )
            passwords[flag] = secret()
    from tokenlord.store import access, open_store

    store = open_store(settings)
    store.init_db(settings.title_list(), settings.value_tokens_per_credit)
    print(f"database {settings.database!r} ready at {where}")
    if settings.bi_user:
        _create_user(access.create_bi_user, "BI", store.client, settings, settings.bi_user, passwords["--bi-user"])
        print(f"BI user {settings.bi_user!r}: SELECT on the views of {settings.database!r} only, readonly")
    if settings.worker_user:
        user = settings.worker_user
        _create_user(access.create_worker_user, "worker", store.client, settings, user, passwords["--worker-user"])
        print(f"worker user {user!r}: INSERT and SELECT on the worker's tables of {settings.database!r}, no DDL")
    return 0


def _create_user(create: Any, kind: str, client: Any, settings: Settings, user: str, password: str) -> None:
    from clickhouse_connect.driver.exceptions import ClickHouseError

    try:
        create(client, settings.database, user, password)
    except ClickHouseError as exc:  # the server's own words, first line, never the password
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].replace(password, "***")
        raise StoreError(f"cannot create or update the {kind} user {user!r}: {first}") from None


def _cmd_kafka_local(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from tokenlord.kafka import local

    home = Path(settings.kafka_home)
    port = settings.kafka_port
    if args.action == "start":
        print(local.start(home, port=port))
    elif args.action == "stop":
        print(local.stop(home))
    else:
        running, message = local.status(home, port=port)
        print(message)
        return 0 if running else 1
    return 0


def resolve_week(text: str, today: dt.date | None = None) -> dt.date:
    """``current`` (this UTC week), ``last``, or the Monday of a date's week."""
    from tokenlord.time_utils import week_start

    today = today or dt.datetime.now(tz=dt.UTC).date()
    if text == "current":
        return week_start(today)
    if text == "last":
        return week_start(today) - dt.timedelta(days=7)
    try:
        return week_start(dt.date.fromisoformat(text))
    except ValueError:
        raise TokenlordError(f"--week {text!r}: use current, last or a date like 2026-11-16") from None


def _cmd_leaderboard(args: argparse.Namespace, settings: Settings) -> int:
    from tokenlord.store import open_store
    from tokenlord.store.schema import LEADERBOARD_VIEW_COLUMNS, VALUE_RANK_COLUMNS

    store = open_store(settings)
    rows = store.leaderboard(resolve_week(args.week), args.top, args.by)
    names = [*LEADERBOARD_VIEW_COLUMNS, *(VALUE_RANK_COLUMNS if args.by == "value" else ())]
    return _print_rows(rows, args.format, names, lambda: format_table(rows, args.by))


def _print_rows(rows: list[dict[str, Any]], form: str, names: Sequence[str], table: Callable[[], str]) -> int:
    """A board as JSON (row objects), CSV (``names``; no cell a spreadsheet would run) or ``table()``."""
    import orjson

    if form == "json":
        sys.stdout.write(orjson.dumps(rows, default=str, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif form == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=names, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: fmt.csv_cell(v) for k, v in r.items()})
        sys.stdout.write(out.getvalue())
    else:
        sys.stdout.write(table())
    return 0


def _cmd_team_board(args: argparse.Namespace, settings: Settings) -> int:
    from tokenlord.org_report import team_table
    from tokenlord.store import boards, open_store
    from tokenlord.store.schema import TEAM_VIEW_COLUMNS

    rows = boards.team_board(open_store(settings), resolve_week(args.week), args.top, args.by)
    return _print_rows(rows, args.format, TEAM_VIEW_COLUMNS, lambda: team_table(rows, args.by))


def _cmd_org(args: argparse.Namespace, settings: Settings) -> int:
    import orjson

    from tokenlord.org_report import org_text
    from tokenlord.store import boards, open_store

    summary = boards.org_summary(open_store(settings), resolve_week(args.week), args.weeks)
    if args.format == "json":
        sys.stdout.write(orjson.dumps(summary, default=str, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(org_text(summary))
    return 0


def _cmd_budgets(args: argparse.Namespace, settings: Settings) -> int:
    import orjson

    from tokenlord.budgets import state, usage
    from tokenlord.store import open_store

    budgets = settings.budget_list()
    if not budgets:
        raise ConfigError("no budgets: set TOKENLORD_BUDGETS (e.g. team:platform=50M,user:ann=$200) or its _FILE")
    week = resolve_week(args.week)
    uses = usage(open_store(settings), budgets, week)
    rows: list[dict[str, Any]] = [
        {"kind": u.budget.kind, "name": u.budget.name, "unit": u.budget.unit, "limit": u.budget.limit,
         "used": u.used, "ratio": u.ratio, "state": state(u.ratio, settings.budget_warn_pct)}
        for u in uses
    ]  # fmt: skip
    if args.format == "json":
        sys.stdout.write(orjson.dumps({"week_start": week, "budgets": rows}, default=str).decode() + "\n")
        return 0
    lines = [f"Budgets — week of {week}", f"{'':<6}{'name':<24}{'used':>16}{'budget':>16}{'used %':>9}  state"]
    for u in uses:

        def show(v: float, usd: bool = u.budget.unit == "usd") -> str:
            return f"${v:,.2f}" if usd else f"{v:,.0f}"

        lines.append(
            f"{u.budget.kind:<6}{fmt.printable(u.budget.name or '(no team)')[:24]:<24}{show(u.used):>16}"
            f"{show(u.budget.limit):>16}{100 * u.ratio:>8.1f}%  {state(u.ratio, settings.budget_warn_pct)}"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def format_table(rows: Sequence[dict[str, Any]], by: str) -> str:
    if not rows:
        return fmt.NO_WEEK_DATA
    head = fmt.board_heading("Leaderboard", rows, by)
    cols = [
        ("#", 4),
        ("user", 24),
        ("team", 14),
        ("tokens", 14),
        ("effective", 14),
        ("waste", 7),
        ("cost $", 10),
        ("eff#", 5),
        ("title", 16),
    ]
    if by == "value":  # what the value rank orders by, before the spending columns' waste
        cols[5:5] = [("value", 14), ("credit", 7)]
    lines = [
        head,
        "  ".join(name.rjust(w) if name not in ("user", "team", "title") else name.ljust(w) for name, w in cols),
    ]
    for r in rows:
        cells = [
            str(fmt.position(r, by)).rjust(4),
            fmt.printable(r["user"])[:24].ljust(24),
            fmt.printable(r["team"])[:14].ljust(14),
            fmt.tokens(r["total_tokens"]).rjust(14),
            fmt.tokens(r["effective_tokens"]).rjust(14),
            fmt.percent(r["waste_ratio"]).rjust(7),
            fmt.money(r["cost_usd"]).rjust(10),
            str(r["effective_rank"]).rjust(5),
            fmt.printable(r["title"])[:16].ljust(16),
        ]
        if by == "value":
            cells[5:5] = [fmt.tokens(r["value_tokens"]).rjust(14), fmt.credit(r["credit"]).rjust(7)]
        lines.append("  ".join(cells))
    return "\n".join(lines) + "\n"


def _cmd_explain(args: argparse.Namespace, settings: Settings) -> int:
    import orjson

    from tokenlord.store import open_store

    report = open_store(settings).explain(args.user, resolve_week(args.week))
    if args.format == "json":
        sys.stdout.write(orjson.dumps(report, default=str, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(format_explain(report))
    return 0


def format_explain(report: dict[str, Any]) -> str:
    user, week, row = report["user"], report["week_start"], report["leaderboard"]
    if row is None:
        return fmt.printable(f"{fmt.no_usage(user, week)} (try --week last or a date)") + "\n"
    head, *rest = fmt.explain_headline(user, week, row)
    lines = [head, *(f"  {line}" for line in rest)]
    if not report["reasons"]:
        lines.append("  nothing was discounted.")
    for r in report["reasons"]:
        lines.append("")
        lines.append(f"  {fmt.reason_line(r)}")
        lines.append(f"    rule: {fmt.rule(r['reason'])}")
        for e in r["examples"]:
            lines.append(f"    e.g. {fmt.example_line(e)}")
    kinds = fmt.outcome_kinds(report["outcomes"])
    note = fmt.rejected_outcomes_note(report["outcomes"])
    lines += ["", f"  outcomes: {', '.join(kinds) or 'none reported'}{'  ' + note if note else ''}"]
    return fmt.printable("\n".join(lines), keep="\n") + "\n"


def _cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from tokenlord import simulate

    if args.outcomes_out and not args.out:
        raise TokenlordError("--outcomes-out needs --out (without --out, outcomes go to the outcomes topic)")
    otlp = args.format != "events"
    if args.fingerprints and not args.text_share:
        raise TokenlordError(
            "--fingerprints fingerprints the text of the --text-share events: add e.g. --text-share 0.5"
        )
    if otlp:
        if args.text_share:
            raise TokenlordError("--format otlp-*: spans carry token counts, not text; drop --text-share")
        if args.per_message != 1:
            raise TokenlordError("--format otlp-*: one trace per record; drop --per-message")
        if args.out and args.format != "otlp-json":
            raise TokenlordError("--out takes --format otlp-json (JSON lines); otlp-proto goes to Kafka")
        if not args.out and not settings.otlp_topic:
            raise TokenlordError(
                f"--format {args.format} produces to TOKENLORD_OTLP_TOPIC, which is empty: set it "
                "(e.g. TOKENLORD_OTLP_TOPIC=otlp_spans, the same for the worker) or pass --otlp-topic"
            )
    with_outcomes = bool(args.outcomes_out) if args.out else not args.no_outcomes
    stream = simulate.generate(
        users=args.users, days=args.days, gamers=args.gamers, seed=args.seed, text_share=args.text_share,
        outcomes=with_outcomes, fingerprints=args.fingerprints,
        fingerprint_secret=settings.fingerprint_secret() if args.fingerprints else None, red_team=args.red_team,
    )  # fmt: skip
    outcomes: list[dict[str, Any]] = []

    def usage() -> Iterator[dict[str, Any]]:
        for ev in stream:
            if simulate.is_outcome(ev):
                outcomes.append(ev)
            else:
                yield ev

    if otlp:
        from tokenlord import otlp as otlp_records

        if args.out:
            n = _write_lines((rec for rec, _ in otlp_records.records(usage(), args.format)), args.out)
            print(f"wrote {n:,} OTLP/JSON records to {args.out}", file=sys.stderr)
            if args.outcomes_out:
                n = simulate.write_jsonl(outcomes, args.outcomes_out)
                print(f"wrote {n:,} outcome events to {args.outcomes_out}", file=sys.stderr)
            return 0
        from tokenlord.kafka.produce import produce_events, produce_records

        produce_records(
            settings, otlp_records.records(usage(), args.format), topic=settings.otlp_topic, progress=not args.quiet
        )
        if outcomes:
            produce_events(settings, outcomes, topic=settings.outcomes_topic, progress=not args.quiet)
        return 0
    if args.out:
        n = simulate.write_jsonl(usage(), args.out)
        print(f"wrote {n:,} events to {args.out}", file=sys.stderr)
        if args.outcomes_out:
            n = simulate.write_jsonl(outcomes, args.outcomes_out)
            print(f"wrote {n:,} outcome events to {args.outcomes_out}", file=sys.stderr)
        return 0
    from tokenlord.kafka.produce import produce_events

    quiet = args.quiet
    produce_events(settings, usage(), topic=settings.events_topic, per_message=args.per_message, progress=not quiet)
    if outcomes:
        produce_events(settings, outcomes, topic=settings.outcomes_topic, progress=not quiet)
    return 0


def _write_lines(lines: Iterator[bytes], path: str) -> int:
    """One record per line to ``path`` (gzip if it ends with ``.gz``; ``-``: stdout)."""
    import gzip

    with (
        contextlib.nullcontext(sys.stdout.buffer) if path == "-"
        else gzip.open(path, "wb", compresslevel=3) if path.endswith(".gz")
        else open(path, "wb")
    ) as f:  # fmt: skip
        n = 0
        for line in lines:
            f.write(line + b"\n")
            n += 1
    return n


def _cmd_tokens(args: argparse.Namespace, settings: Settings) -> int:
    """Prints ``count<TAB>file`` per file (text read as UTF-8, invalid bytes replaced)."""
    from pathlib import Path

    from tokenlord import _core

    encoding, estimated = _core.encoding_for(args.model, **settings.encoding_kwargs())
    texts = []
    for path in args.files:
        try:
            data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
        except OSError as exc:
            raise TokenlordError(f"cannot read {path!r}: {exc.strerror}") from None
        texts.append(data.decode("utf-8", errors="replace"))
    counts = _core.count_tokens(texts, encoding, settings.tokenizer_dir or None)
    note = (
        " (fallback: no TOKENLORD_MODEL_ENCODINGS rule, or its vocabulary is not in TOKENLORD_TOKENIZER_DIR;"
        " counts are estimates)"
        if estimated
        else ""
    )
    print(f"# {args.model}: {encoding}{note}", file=sys.stderr)
    for path, n in zip(args.files, counts, strict=True):
        print(f"{n}\t{path}")
    return 0
