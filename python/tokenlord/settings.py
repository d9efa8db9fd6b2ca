"""One settings object for every command and the worker.

Each field comes from a ``TOKENLORD_*`` environment variable or the matching
command-line flag (``--kafka-brokers`` for ``TOKENLORD_KAFKA_BROKERS``); a
flag wins over the environment. ``tokenlord config`` prints the effective
values with secrets masked. Each setting is declared once, as a
:class:`Settings` attribute made by :func:`setting` (text default, doc,
parser); :data:`FIELDS` is read back from them, and docs/configuration.md is
generated from it (``tokenlord config --markdown``; a test keeps it in sync).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final, TypeVar, overload
from urllib.parse import urlsplit

from tokenlord import _core
from tokenlord.budgets import Budget, parse_budgets
from tokenlord.errors import ConfigError
from tokenlord.faults import parse_crash_at, parse_fail_writes
from tokenlord.time_utils import DAY_MS, HOUR_MS, WEEK_MS
from tokenlord.webhooks import Webhook, parse_webhooks

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": HOUR_MS, "d": DAY_MS, "w": WEEK_MS}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")

# The core's built-in rules (rust/src/tokenize.rs DEFAULT_RULES): one source of truth.
DEFAULT_MODEL_ENCODINGS = _core.DEFAULT_MODEL_ENCODINGS


def _session_timeout(text: str) -> int:
    ms = parse_duration_ms(text)
    if not 6_000 <= ms <= 1_800_000:
        raise ValueError("must be between 6s and 30m (the broker's group.min/max.session.timeout.ms defaults)")
    return ms


def parse_duration_ms(text: str) -> int:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"2d"``, ``"500ms"``; a bare number is seconds."""
    m = _DURATION.match(str(text))
    if not m:
        raise ValueError("not a duration (examples: 500ms, 90s, 15m, 1h, 2d)")
    return int(float(m.group(1)) * _UNIT_MS[m.group(2) or "s"])


def _positive_int(text: str) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise ValueError("not an integer") from None
    if value <= 0:
        raise ValueError("must be > 0")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise ValueError("not an integer") from None
    if value < 0:
        raise ValueError("must be >= 0")
    return value


def _tokens_per_credit(text: str) -> int:
    value = _positive_int(text)
    if value > 10**12:
        raise ValueError("must be at most 1000000000000 (a trillion tokens per credit is no cap at all)")
    return value


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise ValueError("not a TCP port (1-65535)")
    return value


def _identifier(text: str) -> str:
    if not _IDENT.match(text):
        raise ValueError("must be letters, digits and _ (not starting with a digit), at most 64")
    return text


def _optional_identifier(text: str) -> str:
    return _identifier(text) if text else text


def _topic(text: str) -> str:
    if not _TOPIC.match(text):
        raise ValueError("not a Kafka topic name (letters, digits, '.', '_', '-'; 1-249 chars)")
    return text


def _optional_topic(text: str) -> str:
    return _topic(text) if text else text


def _clickhouse_url(text: str) -> str:
    scheme = urlsplit(text).scheme
    if scheme not in ("chdb", "http", "https"):
        raise ValueError(
            "must start with chdb:// (embedded, e.g. chdb://./var/tokenlord) "
            "or http(s):// (a ClickHouse server, e.g. http://user:pass@host:8123)"
        )
    return text


def _brokers(text: str) -> str:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or any(not re.match(r"^[\w.\-\[\]:]+:\d+$", p) for p in parts):
        raise ValueError("must be host:port[,host:port...] (e.g. localhost:9092)")
    return ",".join(parts)


def _level(text: str) -> str:
    value = text.strip().lower()
    if value not in ("debug", "info", "warning", "error"):
        raise ValueError("must be one of debug, info, warning, error")
    return value


def _encoding_rules(text: str) -> str:
    for item in (i.strip() for i in text.split(",") if i.strip()):
        if "=" not in item:
            raise ValueError("must be prefix=encoding[,prefix=encoding...]")
    return text


def _directory(text: str) -> str:
    if text and not Path(text).is_dir():
        raise ValueError("not a directory (it should hold NAME.tiktoken or NAME/tokenizer.model files)")
    return text


def _readable_file(text: str) -> str:
    if text and not Path(text).is_file():
        raise ValueError("no such file")
    return text


def _security_protocol(text: str) -> str:
    value = text.strip().upper()
    if value not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
        raise ValueError("must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
    return value


def _sasl_mechanism(text: str) -> str:
    value = text.strip().upper()
    if value not in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        raise ValueError("must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
    return value


def _log_format(text: str) -> str:
    value = text.strip().lower()
    if value not in ("text", "json"):
        raise ValueError("must be text or json")
    return value


def _bind(text: str) -> str:
    value = text.strip()
    if not re.match(r"^[A-Za-z0-9.\-:\[\]]+$", value):
        raise ValueError("must be an IP address or host name (127.0.0.1 local only, 0.0.0.0 all interfaces)")
    return value


def _web_auth(text: str) -> str:
    value = text.strip().lower()
    if value not in ("none", "token", "basic", "proxy"):
        raise ValueError("must be none, token, basic or proxy")
    return value


def _header_name(text: str) -> str:
    value = text.strip()
    if not re.match(r"^[A-Za-z0-9-]{1,64}$", value):
        raise ValueError("must be an HTTP header name (letters, digits, '-'), e.g. X-Forwarded-User")
    return value


def _proxies(text: str) -> str:
    from tokenlord.web_access import parse_proxies

    parse_proxies(text)
    return text


def masked_webhooks(text: str) -> str:
    """``NAME=KIND:https://host/***`` per entry: a webhook's path (Slack's token) is never shown."""
    shown = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, _, rest = part.partition("=")
        kind, _, url = rest.partition(":")
        try:
            parts = urlsplit(url)
            where = f"{parts.scheme}://{parts.hostname}/***" if parts.hostname else ""
        except ValueError:
            where = ""
        shown.append(f"{name}={kind}:{where}" if where else f"{name}=***")
    return ",".join(shown)


def _webhooks(text: str) -> str:
    parse_webhooks(text)
    return text.strip()


def _budgets(text: str) -> str:
    parse_budgets(text)
    return text.strip()


def _percent(text: str) -> int:
    value = _positive_int(text)
    if value > 100:
        raise ValueError("must be a percentage, 1-100")
    return value


def _public_url(text: str) -> str:
    text = text.strip()
    if text and not text.startswith(("http://", "https://")):
        raise ValueError("not an http(s) URL (example: https://tokens.example.com)")
    return text


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


def _str(text: str) -> str:
    return text


_SPEC: Final = "tokenlord.setting"
T = TypeVar("T")


@dataclass(frozen=True)
class Field:
    name: str
    default: str
    doc: str
    parse: Callable[[str], Any] = _str
    secret: bool = False
    has_flag: bool = True  # False: environment only (a password never goes on a command line)
    shown: Callable[[str], str] | None = None  # a secret's masked form, when not the default

    @property
    def env(self) -> str:
        return "TOKENLORD_" + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@overload
def setting(
    default: str, doc: str, *, secret: bool = ..., has_flag: bool = ..., shown: Callable[[str], str] | None = ...
) -> str: ...
@overload
def setting(
    default: str,
    doc: str,
    parse: Callable[[str], T],
    *,
    secret: bool = ...,
    has_flag: bool = ...,
    shown: Callable[[str], str] | None = ...,
) -> T: ...
def setting(
    default: str,
    doc: str,
    parse: Callable[[str], Any] = _str,
    *,
    secret: bool = False,
    has_flag: bool = True,
    shown: Callable[[str], str] | None = None,
) -> Any:
    """A :class:`Settings` attribute declared once: its text ``default`` (as a user
    would write it; parsed for the attribute's default), its ``doc`` (the
    configuration reference), its parser, whether it is a secret (masked) and
    whether it has a flag. :data:`FIELDS` is read back from these."""
    spec = {"default": default, "doc": doc, "parse": parse, "secret": secret, "has_flag": has_flag, "shown": shown}
    return dataclasses.field(default=parse(default), metadata={_SPEC: spec})


def _user_secret(kind: str, flag: str, user: str, password: str, password_file: str) -> str:
    """A ClickHouse user's password for `init-db`: TOKENLORD_<kind>_PASSWORD or its _FILE; never empty."""
    if password_file:
        try:
            secret = Path(password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"TOKENLORD_{kind}_PASSWORD_FILE={password_file!r}: cannot read it ({exc.strerror})."
            ) from None
        if not secret:
            raise ConfigError(f"TOKENLORD_{kind}_PASSWORD_FILE={password_file!r} is empty.")
        return secret
    if not password:
        raise ConfigError(
            f"{flag} {user} needs a password: set TOKENLORD_{kind}_PASSWORD or "
            f"TOKENLORD_{kind}_PASSWORD_FILE (never a flag)."
        )
    return password


@dataclass(frozen=True)
class Settings:
    kafka_brokers: str = setting("localhost:9092", "Kafka bootstrap servers, comma-separated.", _brokers)
    kafka_security_protocol: str = setting(
        "PLAINTEXT",
        "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, for every Kafka client (worker, produce, admin).",
        _security_protocol,
    )
    kafka_sasl_mechanism: str = setting(
        "PLAIN",
        "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_* protocols).",
        _sasl_mechanism,
    )
    kafka_username: str = setting("", "SASL user name.")
    kafka_password: str = setting(
        "",
        "SASL password: environment only (no flag), masked; or use TOKENLORD_KAFKA_PASSWORD_FILE.",
        secret=True,
        has_flag=False,
    )
    kafka_password_file: str = setting("", "File holding the SASL password (e.g. a mounted secret).", _readable_file)
    kafka_ca_file: str = setting(
        "",
        "PEM file of the CA that signed the brokers' certificates (SSL, SASL_SSL).",
        _readable_file,
    )
    kafka_cert_file: str = setting("", "PEM client certificate, for brokers that require mutual TLS.", _readable_file)
    kafka_key_file: str = setting("", "PEM private key of the client certificate.", _readable_file)
    clickhouse_url: str = setting(
        "chdb://./var/tokenlord",
        "Where results go: `chdb://DIR` (embedded ClickHouse, one process per DIR) or "
        "`http(s)://user:pass@host:8123[/db]` (a ClickHouse server; https takes "
        "`?ca_cert=PEM&client_cert=PEM&client_cert_key=PEM&verify=true|false`). The password is masked; "
        "a URL with a password is refused as a flag (environment only).",
        _clickhouse_url,
        secret=True,
    )
    database: str = setting("tokenlord", "ClickHouse database of the tables and views.", _identifier)
    bi_user: str = setting(
        "",
        "`init-db` also creates (or resets) this ClickHouse user for BI tools: SELECT on the public views "
        "only, readonly. Needs a ClickHouse server (not chdb://). Empty: no BI user.",
        _optional_identifier,
    )
    bi_password: str = setting(
        "",
        "The BI user's password: environment only (no flag), masked; or use TOKENLORD_BI_PASSWORD_FILE.",
        secret=True,
        has_flag=False,
    )
    bi_password_file: str = setting("", "File holding the BI user's password (e.g. a mounted secret).", _readable_file)
    worker_user: str = setting(
        "",
        "`init-db` also creates (or resets) this ClickHouse user for workers: INSERT and SELECT on the tables a "
        "worker writes and reads, SELECT on the public views, nothing else (no DDL). Run the worker with it and "
        "TOKENLORD_WORKER_INIT_DB=false. Needs a ClickHouse server (not chdb://). Empty: no worker user.",
        _optional_identifier,
    )
    worker_password: str = setting(
        "",
        "The worker user's password (for `init-db`): environment only (no flag), masked; or use "
        "TOKENLORD_WORKER_PASSWORD_FILE.",
        secret=True,
        has_flag=False,
    )
    worker_password_file: str = setting(
        "",
        "File holding the worker user's password (e.g. a mounted secret).",
        _readable_file,
    )
    worker_init_db: bool = setting(
        "true",
        "true: the worker runs `init-db` at start (creates what is missing, refreshes views and titles). "
        "false: the schema must already exist (a separate `tokenlord init-db` with an admin user, as in "
        "docker-compose.yml), so the worker needs no DDL rights; it checks its tables are there and says so.",
        _bool,
    )
    fingerprint_key: str = setting(
        "",
        "The organisation's secret that keys text fingerprints (`tokenlord.fingerprint`): the same on every "
        "gateway and worker. Environment only (no flag), masked; or use TOKENLORD_FINGERPRINT_KEY_FILE. "
        "Empty: fingerprints are unkeyed and a stored hash of a short prompt can be matched by guessing.",
        secret=True,
        has_flag=False,
    )
    fingerprint_key_file: str = setting(
        "",
        "File holding the fingerprint secret (e.g. a mounted secret).",
        _readable_file,
    )
    events_topic: str = setting("tokenlord.events", "Topic of usage events.", _topic)
    dlq_topic: str = setting("tokenlord.events.dlq", "Dead-letter topic for rejected input.", _topic)
    outcomes_topic: str = setting("tokenlord.outcomes", "Topic of outcome events.", _topic)
    otlp_topic: str = setting(
        "",
        "Topic of OpenTelemetry trace records (the Collector's kafka exporter, e.g. `otlp_spans`): GenAI spans "
        "become usage events (docs/gateways.md). Empty: off.",
        _optional_topic,
    )
    group_id: str = setting("tokenlord", "Kafka consumer group (and Faust app id) of the workers.", _topic)
    partitions: int = setting("3", "Partitions of the topics tokenlord creates.", _positive_int)
    grace: int = setting("1h", "How long after its end a week still takes late events.", parse_duration_ms)
    dedupe_horizon: int = setting(
        "24h",
        "Event-time horizon within which a repeated event_id is counted once.",
        parse_duration_ms,
    )
    future_tolerance: int = setting(
        "10m",
        "Events further ahead of the worker's clock are rejected (future_timestamp).",
        parse_duration_ms,
    )
    batch_size: int = setting("20000", "Max Kafka messages per core call and store write.", _positive_int)
    batch_bytes: int = setting(
        "8388608",
        "Max bytes of message values per core call and store write (a batch ends at whichever comes first).",
        _positive_int,
    )
    flush_interval: int = setting("1s", "Max time a message waits for its batch to fill.", parse_duration_ms)
    restore_chunk: int = setting(
        "20000",
        "Stored events read per step when a worker rebuilds a partition's state (its memory for that is one step).",
        _positive_int,
    )
    max_message_bytes: int = setting("1048576", "Larger message values are rejected (too_large).", _positive_int)
    # Fan-out limits (docs/semantics.md, "Fan-out limits"): what one message may cost.
    max_elements_per_message: int = setting(
        "10000",
        "Events (array items, NDJSON lines) read from one message; the rest of it is one rejection "
        "(too_many_elements).",
        _positive_int,
    )
    max_rejections_per_message: int = setting(
        "100",
        "Rejections of one message; past it the rest of the message is one rejection (too_many_rejections).",
        _positive_int,
    )
    max_rejections_per_batch: int = setting(
        "10000",
        "Rejections of one batch; past it each further message gives at most one rejection.",
        _positive_int,
    )
    dlq_max_key_bytes: int = setting(
        "256",
        "Dead letters carry at most this many bytes of the source message's key (header tokenlord.key_truncated).",
        _positive_int,
    )
    # Waste signals (docs/semantics.md, "Waste")
    waste_min_prompt_tokens: int = setting(
        "32",
        "Prompts with fewer input tokens never count as repeats (a legitimately repeated 'continue').",
        _non_negative_int,
    )
    waste_duplicate_window: int = setting(
        "1h",
        "The same prompt from a user again within this span is a repeat (duplicate_prompt).",
        parse_duration_ms,
    )
    waste_free_repeats: int = setting(
        "1",
        "Repeats of a prompt that are not waste (a regeneration); later ones are.",
        _non_negative_int,
    )
    waste_storm_window: int = setting(
        "10s",
        "Identical requests this close together form a burst (retry_storm)...",
        parse_duration_ms,
    )
    waste_storm_min: int = setting("3", "...from this many requests on (the first is never waste).", _positive_int)
    waste_loop_window: int = setting(
        "10m",
        "Near-identical prompt and answer repeated within this span is a loop (agent_loop)...",
        parse_duration_ms,
    )
    waste_loop_min: int = setting("1", "...once this many earlier near-identical requests are seen.", _positive_int)
    waste_loop_bits: int = setting(
        "3",
        "SimHash bits (of 64) two near-identical texts may differ in.",
        _non_negative_int,
    )
    waste_repeat_pct: int = setting(
        "50",
        "A prompt (padded_prompt) or output (repetitive_output) counts its repeated share as waste "
        "once at least this percentage of it repeats (10-word windows seen before).",
        _positive_int,
    )
    waste_resend_window: int = setting(
        "24h",
        "The same prompt (by its text or fingerprint) sent again within this span, however the re-sends "
        "are paced, is a repeat (duplicate_prompt)...",
        parse_duration_ms,
    )
    waste_resend_free: int = setting(
        "2",
        "...after this many free re-sends; likewise a loop step (agent_loop) repeated more often than this "
        "within the span, however slowly paced.",
        _non_negative_int,
    )
    waste_loop_answer_pct: int = setting(
        "50",
        "Answers of 50+ words are the same answer (agent_loop) only when their MinHash sketches also "
        "agree in at least this percentage of buckets (two different tables can share a SimHash).",
        _positive_int,
    )
    waste_reask_free: int = setting(
        "3",
        "Re-asks of one question (reworded or reordered, answered alike) within the resend window that "
        "are not waste (an edit and two retries); later ones are (near_duplicate)...",
        _non_negative_int,
    )
    waste_reask_prompt_pct: int = setting(
        "10",
        "...where a prompt is a re-ask when its MinHash sketch agrees with an earlier prompt's in at least "
        "this percentage of its 64 buckets...",
        _positive_int,
    )
    waste_reask_output_pct: int = setting(
        "20",
        "...and the answers' sketches agree in at least this percentage.",
        _positive_int,
    )
    waste_short_repeat_pct: int = setting(
        "40",
        "A prompt also counts as padded_prompt once at least this percentage of it repeats in 3-word "
        "windows (filler with every few words changed).",
        _positive_int,
    )
    titles: str = setting(
        "Token Lord,AI Grandmaster,Token Overlord",
        "Titles by effective rank, comma-separated (rank 1 first).",
    )
    value_tokens_per_credit: int = setting(
        "500000",
        "The value ranking (`leaderboard --by value`) counts at most this many effective attributed tokens per "
        "credit of a user's outcomes (docs/semantics.md, section Value ranking). Part of the value_weekly view: "
        "after a change, rerun `tokenlord init-db`.",
        _tokens_per_credit,
    )
    prices_file: str = setting("", "JSON price table (USD per 1M tokens per model prefix); empty = the bundled table.")
    model_encodings: str = setting(
        DEFAULT_MODEL_ENCODINGS,
        "Model-name prefix → encoding rules (longest prefix wins).",
        _encoding_rules,
    )
    fallback_encoding: str = setting(
        "o200k_base",
        "Encoding for models no rule matches; such counts are marked tokens_estimated.",
    )
    tokenizer_dir: str = setting(
        "",
        "Directory of tiktoken-format vocabularies (NAME.tiktoken or NAME/tokenizer.model, e.g. "
        "llama_models' llama3/ and llama4/); each becomes encoding NAME. Empty: llama models "
        "count with the fallback encoding, marked tokens_estimated.",
        _directory,
    )
    # Gateway integrations (tokenlord.integrations.litellm; docs/gateways.md): read where the gateway runs
    gateway_send_text: bool = setting(
        "false",
        "true: a gateway integration sends the prompt and output text in its events instead of their "
        "fingerprint (the worker tokenizes and fingerprints them; never stored either way).",
        _bool,
        has_flag=False,
    )
    gateway_queue_size: int = setting(
        "10000",
        "Events a gateway integration holds for its Kafka producer thread; when full, new events are "
        "dropped and counted (the request path never waits on Kafka).",
        _positive_int,
        has_flag=False,
    )
    # The weekly digest (tokenlord.digest; docs/operations.md, "The weekly digest")
    digest_webhooks: str = setting(
        "",
        "Where the worker posts the weekly digest when a week becomes final: NAME=KIND:URL entries, comma-separated "
        "(KIND json or slack; NAME keys the once-per-week record). Environment only (no flag), masked; or use "
        "TOKENLORD_DIGEST_WEBHOOKS_FILE. Empty: no digest.",
        _webhooks,
        secret=True,
        has_flag=False,
        shown=masked_webhooks,
    )
    digest_webhooks_file: str = setting(
        "",
        "File holding TOKENLORD_DIGEST_WEBHOOKS (e.g. a mounted secret).",
        _readable_file,
    )
    digest_interval: int = setting("1m", "How often the worker looks for weeks whose digest is due.", parse_duration_ms)
    digest_lookback: int = setting(
        "14d",
        "Digests are posted for weeks that ended at most this long ago (enabling a webhook does not post history).",
        parse_duration_ms,
    )
    web_public_url: str = setting(
        "",
        "The pages' address as readers reach it (e.g. https://tokens.example.com), for links in the digest.",
        _public_url,
    )
    # Budgets (tokenlord.budgets; docs/operations.md, "Budgets")
    budgets: str = setting(
        "",
        "Weekly budgets: KIND:NAME=AMOUNT entries, comma-separated (KIND user or team; AMOUNT tokens like 50M or "
        "dollars like $200). Exported as tokenlord_budget_* metrics; the pages mark who is near or over.",
        _budgets,
    )
    budgets_file: str = setting("", "File of budgets (as TOKENLORD_BUDGETS, one per line; # comments).", _readable_file)
    budget_warn_pct: int = setting("80", "A budget used to this percentage or more is 'near' on the pages.", _percent)
    budget_interval: int = setting("1m", "How often a worker refreshes the budget metrics.", parse_duration_ms)
    kafka_home: str = setting("./var/kafka", "Data, logs and pid of `tokenlord kafka-local`.")
    kafka_port: int = setting("9092", "PLAINTEXT port of `tokenlord kafka-local`.", _port)
    web_port: int = setting(
        "6066",
        "Port of the worker's web server (Faust): leaderboard page, /metrics, /healthz, /readyz.",
        _port,
    )
    web_bind: str = setting(
        "127.0.0.1",
        "Address the worker's web server listens on; 0.0.0.0 for all interfaces (containers).",
        _bind,
    )
    # Access to the pages (tokenlord.web_access; docs/operations.md, "Access to the pages")
    web_auth: str = setting(
        "none",
        "Who may see the leaderboard pages (/, /user/...): `none` (everyone; the local demo), `token` (a shared "
        "TOKENLORD_WEB_TOKEN), `basic` (users of TOKENLORD_WEB_USERS_FILE) or `proxy` (the user an authenticating "
        "proxy names in TOKENLORD_WEB_USER_HEADER). /metrics, /healthz and /readyz are never checked.",
        _web_auth,
    )
    web_token: str = setting(
        "",
        "The pages' access token (web_auth=token, at least 16 characters): environment only (no flag), masked; "
        "or use TOKENLORD_WEB_TOKEN_FILE.",
        secret=True,
        has_flag=False,
    )
    web_token_file: str = setting("", "File holding the pages' access token (e.g. a mounted secret).", _readable_file)
    web_users_file: str = setting(
        "",
        "web_auth=basic: lines `user:HASH` (scrypt or pbkdf2-sha256; `tokenlord web-user NAME` prints one).",
        _readable_file,
    )
    web_user_header: str = setting(
        "X-Forwarded-User",
        "web_auth=proxy: the header naming the user (oauth2-proxy: X-Forwarded-User; behind nginx auth_request: "
        "X-Auth-Request-User).",
        _header_name,
    )
    web_trusted_proxies: str = setting(
        "",
        "web_auth=proxy: addresses or networks (comma-separated, e.g. 10.0.0.5,10.1.0.0/16) whose user header is "
        "believed; requests from anywhere else are refused.",
        _proxies,
    )
    web_admins: str = setting(
        "",
        "Users (comma-separated) who see everyone's usage; any other signed-in user sees only their own.",
    )
    web_cache: int = setting(
        "5s",
        "How long a rendered page is reused (per page, query and viewer scope); 0: no cache.",
        parse_duration_ms,
    )
    web_max_requests: int = setting(
        "8",
        "Page requests served at once; more are answered 503 with Retry-After (/metrics and health not counted).",
        _positive_int,
    )
    session_timeout: int = setting(
        "15s",
        "Kafka consumer-group session timeout: how soon the group moves a crashed worker's partitions "
        "(heartbeats every third of it, at most 3 s).",
        _session_timeout,
    )
    store_retry_max: int = setting("60s", "Longest backoff between retries of a failed store write.", parse_duration_ms)
    log_level: str = setting("info", "debug, info, warning or error.", _level)
    log_format: str = setting("text", "text (one line per record) or json (one JSON object per line).", _log_format)
    fault_crash_at: str = setting(
        "",
        "Testing only: POINT[:N] kills the worker (SIGKILL) the N-th time it reaches POINT "
        "(start, dlq, _rejected, _outcomes, _events, _hourly, _weekly, _waste, _progress).",
        parse_crash_at,
    )
    fault_fail_writes: str = setting(
        "",
        "Testing only: N[@POINT] makes the first N store writes reaching POINT (default start) fail.",
        parse_fail_writes,
    )
    fault_poison: str = setting(
        "",
        "Testing only: the core fails (panics) on any message whose value contains this text; "
        "the message becomes one poison rejection.",
    )
    raw: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_env(
        cls, overrides: Mapping[str, str | None] | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Settings from ``environ`` (default ``os.environ``), then ``overrides`` (flags)."""
        env = os.environ if environ is None else environ
        raw: dict[str, str] = {}
        values: dict[str, Any] = {}
        for f in FIELDS:
            text, source = f.default, "default"
            if f.env in env:
                text, source = env[f.env], f.env
            if f.has_flag and overrides and overrides.get(f.name) is not None:
                text, source = str(overrides[f.name]), f.flag
                if f.secret and url_password(text):
                    # A command line is readable by every user of the machine (ps, /proc, shell history).
                    raise ConfigError(
                        f"{f.flag}={mask_field(f, text)!r} carries a password: a command line is visible to "
                        f"other users (ps). Put the URL in {f.env} instead (environment only)."
                    )
            try:
                values[f.name] = f.parse(text)
            except ValueError as exc:
                shown = mask_field(f, text)
                how = f"Set {f.env} or pass {f.flag}" if f.has_flag else f"Set {f.env}"
                raise ConfigError(f"{source}={shown!r}: {exc}. {how} (default: {f.default!r}).") from None
            raw[f.name] = text
        settings = cls(**values, raw=raw)
        settings._check_kafka_security()
        if settings.otlp_topic in (settings.events_topic, settings.outcomes_topic, settings.dlq_topic):
            raise ConfigError(
                f"TOKENLORD_OTLP_TOPIC={settings.otlp_topic!r} is already the events, outcomes or dead-letter topic: "
                "give the OpenTelemetry traces their own topic (e.g. otlp_spans), or leave it empty."
            )
        if settings.bi_password and settings.bi_password_file:
            raise ConfigError("set TOKENLORD_BI_PASSWORD or TOKENLORD_BI_PASSWORD_FILE, not both.")
        if settings.worker_password and settings.worker_password_file:
            raise ConfigError("set TOKENLORD_WORKER_PASSWORD or TOKENLORD_WORKER_PASSWORD_FILE, not both.")
        if settings.fingerprint_key and settings.fingerprint_key_file:
            raise ConfigError("set TOKENLORD_FINGERPRINT_KEY or TOKENLORD_FINGERPRINT_KEY_FILE, not both.")
        if settings.digest_webhooks and settings.digest_webhooks_file:
            raise ConfigError("set TOKENLORD_DIGEST_WEBHOOKS or TOKENLORD_DIGEST_WEBHOOKS_FILE, not both.")
        if settings.web_token and settings.web_token_file:
            raise ConfigError("set TOKENLORD_WEB_TOKEN or TOKENLORD_WEB_TOKEN_FILE, not both.")
        from tokenlord.web_access import Access

        Access.from_settings(settings)  # every command refuses unusable page-access settings
        return settings

    def _check_kafka_security(self) -> None:
        """The Kafka security settings that only make sense together."""
        proto = self.kafka_security_protocol
        if self.kafka_password and self.kafka_password_file:
            raise ConfigError("set TOKENLORD_KAFKA_PASSWORD or TOKENLORD_KAFKA_PASSWORD_FILE, not both.")
        has_secret = bool(self.kafka_password or self.kafka_password_file)
        if proto.startswith("SASL_") and not (self.kafka_username and has_secret):
            raise ConfigError(
                f"TOKENLORD_KAFKA_SECURITY_PROTOCOL={proto} needs TOKENLORD_KAFKA_USERNAME and "
                "TOKENLORD_KAFKA_PASSWORD (or TOKENLORD_KAFKA_PASSWORD_FILE)."
            )
        if bool(self.kafka_cert_file) != bool(self.kafka_key_file):
            raise ConfigError("TOKENLORD_KAFKA_CERT_FILE and TOKENLORD_KAFKA_KEY_FILE go together: set both or none.")
        tls_files = [f for f in ("kafka_ca_file", "kafka_cert_file") if getattr(self, f)]
        if tls_files and not proto.endswith("SSL"):
            raise ConfigError(
                f"TOKENLORD_{tls_files[0].upper()} is only used with TLS: set "
                "TOKENLORD_KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL."
            )

    def kafka_secret(self) -> str:
        """The SASL password, from the environment or the password file."""
        if self.kafka_password_file:
            try:
                return Path(self.kafka_password_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"TOKENLORD_KAFKA_PASSWORD_FILE={self.kafka_password_file!r}: cannot read it ({exc.strerror})."
                ) from None
        return self.kafka_password

    def bi_secret(self) -> str:
        """The BI user's password (environment or file); an error when there is none."""
        return _user_secret("BI", "--bi-user", self.bi_user, self.bi_password, self.bi_password_file)

    def worker_secret(self) -> str:
        """The worker user's password (environment or file); an error when there is none."""
        return _user_secret(
            "WORKER", "--worker-user", self.worker_user, self.worker_password, self.worker_password_file
        )

    def fingerprint_secret(self) -> bytes:
        """The fingerprint secret (environment or file; empty when unset)."""
        if self.fingerprint_key_file:
            try:
                return Path(self.fingerprint_key_file).read_bytes().strip()
            except OSError as exc:
                raise ConfigError(
                    f"TOKENLORD_FINGERPRINT_KEY_FILE={self.fingerprint_key_file!r}: cannot read it ({exc.strerror})."
                ) from None
        return self.fingerprint_key.encode("utf-8")

    def web_secret(self) -> str:
        """The pages' access token (environment or file; empty when unset)."""
        if self.web_token_file:
            try:
                return Path(self.web_token_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"TOKENLORD_WEB_TOKEN_FILE={self.web_token_file!r}: cannot read it ({exc.strerror})."
                ) from None
        return self.web_token

    def budget_list(self) -> tuple[Budget, ...]:
        """The weekly budgets of TOKENLORD_BUDGETS and TOKENLORD_BUDGETS_FILE (both may be set)."""
        text = self.budgets
        if self.budgets_file:
            name = f"TOKENLORD_BUDGETS_FILE={self.budgets_file!r}"
            try:
                text += "\n" + Path(self.budgets_file).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"{name}: cannot read it ({exc.strerror}).") from None
            try:
                return parse_budgets(text)
            except ValueError as exc:
                raise ConfigError(f"{name}: {exc}.") from None
        return parse_budgets(text)

    def digest_hooks(self) -> tuple[Webhook, ...]:
        """The digest's webhooks (environment or file; none when unset)."""
        text, name = self.digest_webhooks, "TOKENLORD_DIGEST_WEBHOOKS"
        if self.digest_webhooks_file:
            name = f"TOKENLORD_DIGEST_WEBHOOKS_FILE={self.digest_webhooks_file!r}"
            try:
                text = Path(self.digest_webhooks_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"{name}: cannot read it ({exc.strerror}).") from None
        try:
            return parse_webhooks(text)
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}.") from None

    # Derived views of the settings ------------------------------------------------

    def title_list(self) -> list[str]:
        return [t.strip() for t in self.titles.split(",") if t.strip()]

    def model_encodings_list(self) -> list[tuple[str, str]]:
        rules = []
        for item in (i.strip() for i in self.model_encodings.split(",") if i.strip()):
            prefix, _, enc = item.partition("=")
            rules.append((prefix.strip(), enc.strip()))
        return rules

    def prices(self) -> dict[str, tuple[float, float, float]]:
        """The price table: model prefix → (input, cached input, output) USD per 1M tokens."""
        if self.prices_file:
            path = Path(self.prices_file)
            try:
                text = path.read_text()
            except OSError as exc:
                raise ConfigError(
                    f"TOKENLORD_PRICES_FILE={self.prices_file!r}: cannot read it ({exc.strerror})."
                ) from None
            where = str(path)
        else:
            text = resources.files("tokenlord").joinpath("data/prices.json").read_text()
            where = "bundled prices.json"
        try:
            doc = json.loads(text)
            return {
                model: (float(p["input"]), float(p.get("cached_input", p["input"])), float(p["output"]))
                for model, p in doc.items()
                if not model.startswith("_")
            }
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(
                f"{where}: not a price table ({exc!r}); expected "
                '{"model-prefix": {"input": 2.5, "cached_input": 1.25, "output": 10.0}, ...}'
            ) from None

    def core_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``tokenlord._core.Core``."""
        return {
            "grace_ms": self.grace,
            "dedupe_horizon_ms": self.dedupe_horizon,
            "future_tolerance_ms": self.future_tolerance,
            "max_message_bytes": self.max_message_bytes,
            "prices": self.prices(),
            **self.encoding_kwargs(),
            "waste": self.waste_thresholds(),
            "fingerprint_secret": self.fingerprint_secret(),
            "max_elements_per_message": self.max_elements_per_message,
            "max_rejections_per_message": self.max_rejections_per_message,
            "max_rejections_per_batch": self.max_rejections_per_batch,
            "fault_poison": self.fault_poison.encode() or None,
        }

    def waste_thresholds(self) -> dict[str, int]:
        """The core's waste thresholds (``WasteConfig`` in rust/src/waste.rs)."""
        return {
            "min_prompt_tokens": self.waste_min_prompt_tokens,
            "duplicate_window_ms": self.waste_duplicate_window,
            "free_repeats": self.waste_free_repeats,
            "storm_window_ms": self.waste_storm_window,
            "storm_min": self.waste_storm_min,
            "loop_window_ms": self.waste_loop_window,
            "loop_min": self.waste_loop_min,
            "loop_bits": self.waste_loop_bits,
            "repeat_pct": self.waste_repeat_pct,
            "resend_window_ms": self.waste_resend_window,
            "resend_free": self.waste_resend_free,
            "loop_answer_pct": self.waste_loop_answer_pct,
            "reask_free": self.waste_reask_free,
            "reask_prompt_pct": self.waste_reask_prompt_pct,
            "reask_output_pct": self.waste_reask_output_pct,
            "short_repeat_pct": self.waste_short_repeat_pct,
        }

    def encoding_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the core's encoding functions (rules, fallback, vocabularies)."""
        return {
            "model_encodings": self.model_encodings_list(),
            "fallback_encoding": self.fallback_encoding,
            "tokenizer_dir": self.tokenizer_dir or None,
        }

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def effective(self, *, masked: bool = True) -> list[tuple[str, str, str]]:
        """``(env var, value, doc)`` for every field, secrets masked."""
        rows = []
        for f in FIELDS:
            value = self.raw.get(f.name, f.default)
            rows.append((f.env, mask_field(f, value) if masked else value, f.doc))
        return rows


def mask_field(f: Field, value: str) -> str:
    """A field's value as it may be shown: a password as ``***``, a URL's password hidden."""
    if not f.secret or not value:
        return value
    if f.shown is not None:
        return f.shown(value)
    return mask(value) if "://" in value else "***"


def _userinfo(value: str) -> tuple[str | None, str]:
    """``(user info or None, the rest after it)`` of a URL, found by hand (see :func:`mask`)."""
    _, sep, rest = value.partition("://")
    first_at = rest.find("@") if sep else -1
    if first_at < 0:
        return None, rest
    ends = [i for i in (rest.find(c, first_at) for c in "/?#") if i >= 0]
    last_at = rest.rfind("@", 0, min(ends, default=len(rest)))
    return rest[:last_at], rest[last_at + 1 :]


def url_password(value: str) -> bool:
    """Whether a URL carries a password (``user:pass@``)."""
    userinfo, _ = _userinfo(value)
    return userinfo is not None and ":" in userinfo


def mask(value: str) -> str:
    """Hides the password of a URL (``http://u:***@host``) and any ``password=`` query.

    The user info is found by hand, not by ``urlsplit``: a password holding
    ``/``, ``#`` or ``?`` (not percent-encoded) would end urlsplit's netloc
    early and be shown as a path, fragment or query.
    """
    scheme, sep, _ = value.partition("://")
    if not sep:
        return "***"
    userinfo, rest = _userinfo(value)
    if userinfo is not None:
        user = userinfo.split(":", 1)[0]
        rest = (f"{user}:***@" if ":" in userinfo else f"{user}@") + rest
    return f"{scheme}://" + re.sub(r"(?i)(password|secret|token)=[^&#]*", r"\1=***", rest)


# Every setting, in the order of docs/configuration.md: read back from the Settings attributes.
FIELDS: Final[tuple[Field, ...]] = tuple(
    Field(f.name, **f.metadata[_SPEC]) for f in dataclasses.fields(Settings) if _SPEC in f.metadata
)


def configuration_markdown() -> str:
    """docs/configuration.md, generated from :data:`FIELDS`."""
    lines = [
        "# Configuration",
        "",
        "Generated from `python/tokenlord/settings.py` by `tokenlord config --markdown`;",
        "a test fails when this file and the code disagree.",
        "",
        "Every setting is an environment variable or the matching flag of any",
        "`tokenlord` command (flags win). Durations take `ms`, `s`, `m`, `h`, `d`, `w`",
        "(a bare number is seconds). `tokenlord config` prints the effective values,",
        "secrets masked.",
        "",
        "| variable | flag | default | meaning |",
        "|---|---|---|---|",
    ]
    for f in FIELDS:
        default = f.default.replace(",", ", ") if len(f.default) > 60 else f.default
        flag = f"`{f.flag}`" if f.has_flag else "(env only)"
        lines.append(f"| `{f.env}` | {flag} | `{default}` | {f.doc} |")
    return "\n".join(lines) + "\n"
