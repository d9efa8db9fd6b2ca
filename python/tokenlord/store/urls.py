"""``TOKENLORD_CLICKHOUSE_URL``: embedded chDB (``chdb://PATH``, ``chdb://memory``) or a
ClickHouse server (``http(s)://user:pass@host:port[/db]``, TLS options in the query)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from tokenlord.errors import StoreError

from .schema import check_ident

__all__ = ["ChdbTarget", "HttpTarget", "parse_url"]


@dataclass(frozen=True)
class ChdbTarget:
    path: str  # absolute, symlinks resolved; or ":memory:"


@dataclass(frozen=True)
class HttpTarget:
    host: str
    port: int
    secure: bool
    username: str | None
    password: str
    database: str | None
    # TLS (https only), from the URL's query: ?ca_cert=PATH&client_cert=PATH&client_cert_key=PATH&verify=false
    tls: tuple[tuple[str, str | bool], ...] = ()


def parse_url(url: str) -> ChdbTarget | HttpTarget:
    """Parse a ``chdb://`` or ``http(s)://`` URL (see the module docstring)."""
    if url.startswith("chdb:"):
        rest = url[len("chdb:") :]
        if rest.startswith("//"):
            rest = rest[2:]
        if "?" in rest or "#" in rest:
            raise StoreError(f"chdb URL takes no query or fragment: {url!r}")
        if rest in ("", "memory", ":memory:"):
            return ChdbTarget(":memory:")
        return ChdbTarget(os.path.realpath(os.path.abspath(unquote(rest))))
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise StoreError(f"unsupported ClickHouse URL scheme {parts.scheme!r} (chdb, http, https)")
    if parts.fragment:
        raise StoreError("ClickHouse URL takes no fragment")
    tls = _tls_options(parts.query, parts.scheme == "https")
    if not parts.hostname:
        raise StoreError("ClickHouse URL has no host")
    secure = parts.scheme == "https"
    try:
        port = parts.port or (8443 if secure else 8123)
    except ValueError as exc:
        raise StoreError(f"bad port in ClickHouse URL: {exc}") from None
    path = parts.path.strip("/")
    database = unquote(path) if path else None
    if database is not None:
        check_ident(database)
    return HttpTarget(
        host=parts.hostname,
        port=port,
        secure=secure,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else "",
        database=database,
        tls=tls,
    )


_TLS_FILES = ("ca_cert", "client_cert", "client_cert_key")


def _tls_options(query: str, secure: bool) -> tuple[tuple[str, str | bool], ...]:
    """TLS options of an https URL's query; files must exist, verify is true/false."""
    if not query:
        return ()
    if not secure:
        raise StoreError("ClickHouse URL: TLS options (?ca_cert=..., ?verify=...) need https://")
    out: list[tuple[str, str | bool]] = []
    for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if key in _TLS_FILES:
            if not os.path.isfile(value):
                raise StoreError(f"ClickHouse URL: {key}={value!r}: no such file")
            out.append((key, value))
        elif key == "verify" and value.lower() in ("true", "false", "1", "0"):
            out.append((key, value.lower() in ("true", "1")))
        else:
            raise StoreError(
                f"ClickHouse URL: unknown option {key!r} (ca_cert, client_cert, client_cert_key, verify=true|false)"
            )
    return tuple(out)
