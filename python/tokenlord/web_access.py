"""Who may see the leaderboard pages (``TOKENLORD_WEB_AUTH``), decided per request.

Modes:

- ``none`` — no check (the local demo); everyone sees everything.
- ``token`` — a shared secret (``TOKENLORD_WEB_TOKEN`` or ``_FILE``) as
  ``Authorization: Bearer``, ``?token=`` (then kept in a cookie, so the page's
  links work) or the ``tokenlord_token`` cookie. A token names no one, so it
  sees everything.
- ``basic`` — HTTP basic auth against ``TOKENLORD_WEB_USERS_FILE``: lines
  ``user:HASH`` with HASH from :func:`hash_password` (scrypt) or
  ``$pbkdf2-sha256$ITER$SALT$HASH``; compared in constant time.
- ``proxy`` — an authenticating proxy (oauth2-proxy, an OIDC gateway) names
  the user in ``TOKENLORD_WEB_USER_HEADER``; the header is believed only from
  ``TOKENLORD_WEB_TRUSTED_PROXIES`` addresses.

Users in ``TOKENLORD_WEB_ADMINS`` see everything; any other authenticated user
sees their own usage only (:class:`Viewer.sees`). ``/metrics`` and the health
endpoints are not pages and are never checked here.

The decisions are pure functions of the request's parts (:class:`Ask`), so
they are tested without a server; ``streams/web.py`` applies them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from tokenlord.errors import ConfigError

if TYPE_CHECKING:
    from tokenlord.settings import Settings

__all__ = [
    "COOKIE",
    "MODES",
    "Access",
    "Ask",
    "Denied",
    "Viewer",
    "hash_password",
    "parse_proxies",
    "parse_users",
    "verify_password",
]

Mode = Literal["none", "token", "basic", "proxy"]
MODES: Final = ("none", "token", "basic", "proxy")
COOKIE: Final = "tokenlord_token"
MIN_TOKEN_CHARS: Final = 16
_SCRYPT: Final = {"n": 2**14, "r": 8, "p": 1}
_MAX_VERIFIED: Final = 1024


@dataclass(frozen=True)
class Viewer:
    """Who is looking: ``user`` None for an anonymous or token viewer (then an admin)."""

    user: str | None
    admin: bool

    @property
    def scope(self) -> str:
        """What this viewer may see, as a cache key part: ``*`` (all) or ``user:NAME``."""
        return "*" if self.admin else f"user:{self.user}"

    def sees(self, user: str) -> bool:
        return self.admin or user == self.user


@dataclass(frozen=True)
class Denied:
    status: int  # 401: no (valid) credentials; 403: known but not allowed
    message: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Ask:
    """The parts of a request the decision reads (header names case-insensitive)."""

    headers: Mapping[str, str]
    query: Mapping[str, str] = field(default_factory=dict)
    cookies: Mapping[str, str] = field(default_factory=dict)
    peer: str | None = None

    def header(self, name: str) -> str | None:
        low = name.lower()
        for k, v in self.headers.items():
            if k.lower() == low:
                return v
        return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``$scrypt$n=16384,r=8,p=1$SALT$HASH`` (base64) of ``password``: a users-file hash."""
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, dklen=32, **_SCRYPT)
    params = ",".join(f"{k}={v}" for k, v in _SCRYPT.items())
    return f"$scrypt${params}${_b64(salt)}${_b64(digest)}"


def _check_hash(encoded: str) -> None:
    """Raises ValueError unless ``encoded`` is a hash :func:`verify_password` reads."""
    parts = encoded.split("$")
    try:
        if len(parts) == 5 and parts[1] == "scrypt":
            params = dict(p.split("=", 1) for p in parts[2].split(","))
            if set(params) != {"n", "r", "p"} or not all(v.isdigit() for v in params.values()):
                raise ValueError("scrypt parameters must be n=..,r=..,p=..")
        elif len(parts) == 5 and parts[1] == "pbkdf2-sha256":
            if not parts[2].isdigit() or int(parts[2]) < 100_000:
                raise ValueError("pbkdf2-sha256 needs at least 100000 iterations")
        else:
            raise ValueError("not $scrypt$n=..,r=..,p=..$SALT$HASH or $pbkdf2-sha256$ITERATIONS$SALT$HASH")
        _unb64(parts[3])
        if len(_unb64(parts[4])) < 16:
            raise ValueError("the hash is shorter than 16 bytes")
    except (binascii.Error, ValueError) as exc:
        raise ValueError(str(exc) if isinstance(exc, ValueError) and str(exc) else "bad base64") from None


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches ``encoded`` (scrypt or pbkdf2-sha256), in constant time."""
    parts = encoded.split("$")
    salt, want = _unb64(parts[3]), _unb64(parts[4])
    if parts[1] == "scrypt":
        params = {k: int(v) for k, v in (p.split("=", 1) for p in parts[2].split(","))}
        got = hashlib.scrypt(
            password.encode("utf-8"), salt=salt, n=params["n"], r=params["r"], p=params["p"], dklen=len(want),
            maxmem=256 * 1024 * 1024,
        )  # fmt: skip
    else:
        got = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, int(parts[2]), len(want))
    return hmac.compare_digest(got, want)


def parse_users(text: str, where: str) -> dict[str, str]:
    """``user:HASH`` lines (``#`` comments and blank lines skipped) → user → hash."""
    users: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, encoded = line.partition(":")
        user = user.strip()
        if not sep or not user:
            raise ConfigError(f"{where} line {n}: expected user:HASH (make a line with `tokenlord web-user NAME`).")
        try:
            _check_hash(encoded.strip())
        except ValueError as exc:
            raise ConfigError(
                f"{where} line {n} (user {user!r}): {exc}. Make the line with `tokenlord web-user {user}`."
            ) from None
        if user in users:
            raise ConfigError(f"{where} line {n}: user {user!r} is listed twice.")
        users[user] = encoded.strip()
    if not users:
        raise ConfigError(f"{where} lists no user: add user:HASH lines (`tokenlord web-user NAME`).")
    return users


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_proxies(text: str) -> tuple[Network, ...]:
    """``10.0.0.5,10.1.0.0/16,::1`` → networks; ValueError names the bad item."""
    out = []
    for item in (i.strip() for i in text.split(",") if i.strip()):
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network (e.g. 10.0.0.5 or 10.0.0.0/24)") from None
    return tuple(out)


def _in(peer: str | None, nets: Sequence[Network]) -> bool:
    if not peer:
        return False
    try:
        addr = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr in n for n in nets)


class Access:
    """The access decision of one worker (built once from the settings)."""

    def __init__(
        self,
        mode: Mode,
        *,
        token: str = "",
        users: Mapping[str, str] | None = None,
        user_header: str = "X-Forwarded-User",
        proxies: Sequence[Network] = (),
        admins: Sequence[str] = (),
    ) -> None:
        self.mode = mode
        self._token = token.encode("utf-8")
        self._users = dict(users or {})
        self.user_header = user_header
        self._proxies = tuple(proxies)
        self.admins = frozenset(admins)
        # Successful basic logins (a keyed digest of user and password): scrypt runs once per
        # credential, not on every page view. Bounded; cleared when full.
        self._verified: set[bytes] = set()
        self._key = os.urandom(32)
        self._dummy = ""  # made on first use: an unknown user's login costs one real hash too

    @classmethod
    def from_settings(cls, s: Settings) -> Access:
        """Raises ConfigError (what is wrong, how to fix it) for unusable settings."""
        mode = s.web_auth
        assert mode in MODES  # checked by settings
        admins = [a.strip() for a in s.web_admins.split(",") if a.strip()]
        if mode == "token":
            token = s.web_secret()
            if len(token) < MIN_TOKEN_CHARS:
                raise ConfigError(
                    f"TOKENLORD_WEB_AUTH=token needs TOKENLORD_WEB_TOKEN (or TOKENLORD_WEB_TOKEN_FILE) of at least "
                    f"{MIN_TOKEN_CHARS} characters (got {len(token)}); e.g. `openssl rand -hex 24`."
                )
            return cls("token", token=token, admins=admins)
        if mode == "basic":
            path = s.web_users_file
            if not path:
                raise ConfigError(
                    "TOKENLORD_WEB_AUTH=basic needs TOKENLORD_WEB_USERS_FILE: a file of user:HASH lines "
                    "(`tokenlord web-user NAME` prints one)."
                )
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"TOKENLORD_WEB_USERS_FILE={path!r}: cannot read it ({exc.strerror}).") from None
            return cls("basic", users=parse_users(text, f"TOKENLORD_WEB_USERS_FILE={path!r}"), admins=admins)
        if mode == "proxy":
            proxies = parse_proxies(s.web_trusted_proxies)
            if not proxies:
                raise ConfigError(
                    "TOKENLORD_WEB_AUTH=proxy needs TOKENLORD_WEB_TRUSTED_PROXIES: the address(es) of the "
                    "authenticating proxy (e.g. 10.0.0.5 or 10.0.0.0/24); the user header is believed from "
                    "them only."
                )
            return cls("proxy", user_header=s.web_user_header, proxies=proxies, admins=admins)
        if admins:
            raise ConfigError(
                "TOKENLORD_WEB_ADMINS has no effect with TOKENLORD_WEB_AUTH=none (everyone sees everything): "
                "set TOKENLORD_WEB_AUTH=basic, proxy or token, or unset TOKENLORD_WEB_ADMINS."
            )
        return cls("none")

    def _user(self, user: str) -> Viewer:
        return Viewer(user, user in self.admins)

    def decide(self, ask: Ask) -> Viewer | Denied:
        if self.mode == "none":
            return Viewer(None, True)
        if self.mode == "token":
            return self._by_token(ask)
        if self.mode == "basic":
            return self._by_basic(ask)
        return self._by_proxy(ask)

    def is_token(self, candidate: str) -> bool:
        """Whether ``candidate`` is the access token (constant time)."""
        return bool(self._token) and hmac.compare_digest(candidate.encode("utf-8"), self._token)

    def _by_token(self, ask: Ask) -> Viewer | Denied:
        auth = ask.header("Authorization") or ""
        given = [auth[7:].strip()] if auth[:7].lower() == "bearer " else []
        given += [t for t in (ask.query.get("token"), ask.cookies.get(COOKIE)) if t]
        if not given:
            return Denied(
                401,
                "this page needs the access token: Authorization: Bearer TOKEN, or open it once with ?token=TOKEN",
                {"WWW-Authenticate": 'Bearer realm="tokenlord"'},
            )
        # Every candidate compared (constant time each): which one matched is not observable.
        ok = [hmac.compare_digest(t.encode("utf-8"), self._token) for t in given]
        if any(ok):
            return Viewer(None, True)
        return Denied(401, "the access token is wrong", {"WWW-Authenticate": 'Bearer realm="tokenlord"'})

    def _by_basic(self, ask: Ask) -> Viewer | Denied:
        challenge = {"WWW-Authenticate": 'Basic realm="tokenlord", charset="UTF-8"'}
        auth = ask.header("Authorization") or ""
        if auth[:6].lower() != "basic ":
            return Denied(401, "log in to see the leaderboard", challenge)
        try:
            user, sep, password = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return Denied(401, "the Authorization header is not basic credentials", challenge)
        if not sep:
            return Denied(401, "the Authorization header is not basic credentials", challenge)
        seen = hmac.new(self._key, f"{user}\0{password}".encode(), hashlib.sha256).digest()
        if seen in self._verified:
            return self._user(user)
        encoded = self._users.get(user)
        if encoded is None and not self._dummy:
            self._dummy = hash_password(os.urandom(8).hex())
        # An unknown user costs the same hash: no user enumeration by timing.
        ok = verify_password(password, encoded or self._dummy) and encoded is not None
        if not ok:
            return Denied(401, "wrong user name or password", challenge)
        if len(self._verified) >= _MAX_VERIFIED:
            self._verified.clear()
        self._verified.add(seen)
        return self._user(user)

    def _by_proxy(self, ask: Ask) -> Viewer | Denied:
        if not _in(ask.peer, self._proxies):
            # A header from anyone else is ignored: it could be typed by the client.
            return Denied(403, "this page is served through the authenticating proxy only")
        user = (ask.header(self.user_header) or "").strip()
        if not user:
            return Denied(401, f"the authenticating proxy sent no {self.user_header} header")
        return self._user(user)
