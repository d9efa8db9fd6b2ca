"""Who may see the pages (tokenlord.web_access): every mode's decision, admins vs
own usage, the proxy header from untrusted addresses, and unusable settings."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from tokenlord.cli import main
from tokenlord.errors import ConfigError
from tokenlord.settings import Settings
from tokenlord.web_access import Access, Ask, Denied, Viewer, hash_password, verify_password

TOKEN = "0123456789abcdef-token"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def pbkdf2_line(user: str, password: str, iterations: int = 100_000) -> str:
    salt = b"0123456789abcdef"
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations, 32)
    b64 = lambda b: base64.b64encode(b).decode().rstrip("=")  # noqa: E731
    return f"{user}:$pbkdf2-sha256${iterations}${b64(salt)}${b64(digest)}"


@pytest.fixture(scope="module")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("web") / "users"
    path.write_text(
        "# users of the pages\n\n"
        f"alice:{hash_password('alice-password')}\n"
        f"{pbkdf2_line('bob', 'bob-password')}\n"
        f"boss:{hash_password('boss-password')}\n"
    )
    return path


def settings(**env: str) -> Settings:
    return Settings.from_env(environ={f"TOKENLORD_{k.upper()}": v for k, v in env.items()})


def access(**env: str) -> Access:
    return Access.from_settings(settings(**env))


def test_none_lets_everyone_see_everything() -> None:
    a = access()
    assert a.mode == "none"
    assert a.decide(Ask({})) == Viewer(None, True)


def test_token_from_header_query_or_cookie(tmp_path: Path) -> None:
    a = access(web_auth="token", web_token=TOKEN)
    everything = Viewer(None, True)
    assert a.decide(Ask({"authorization": f"Bearer {TOKEN}"})) == everything
    assert a.decide(Ask({}, query={"token": TOKEN})) == everything
    assert a.decide(Ask({}, cookies={"tokenlord_token": TOKEN})) == everything
    for ask in (Ask({}), Ask({"Authorization": "Bearer wrong"}), Ask({}, query={"token": TOKEN[:-1]})):
        d = a.decide(ask)
        assert isinstance(d, Denied) and d.status == 401 and "WWW-Authenticate" in d.headers
    # from a file, like the other secrets
    f = tmp_path / "token"
    f.write_text(TOKEN + "\n")
    assert access(web_auth="token", web_token_file=str(f)).decide(Ask({}, query={"token": TOKEN})) == everything


def test_basic_users_scrypt_and_pbkdf2(users_file: Path) -> None:
    a = access(web_auth="basic", web_users_file=str(users_file), web_admins="boss")
    assert a.decide(Ask(basic("alice", "alice-password"))) == Viewer("alice", False)
    assert a.decide(Ask(basic("alice", "alice-password"))) == Viewer("alice", False)  # remembered login
    assert a.decide(Ask(basic("bob", "bob-password"))) == Viewer("bob", False)
    assert a.decide(Ask(basic("boss", "boss-password"))) == Viewer("boss", True)
    wrong = [
        {},
        basic("alice", "bob-password"),
        basic("mallory", "alice-password"),
        basic("alice", ""),
        {"Authorization": "Basic !!!"},
        {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
        {"Authorization": f"Bearer {TOKEN}"},
    ]
    for headers in wrong:
        d = a.decide(Ask(headers))
        assert isinstance(d, Denied) and d.status == 401, headers
        assert d.headers["WWW-Authenticate"].startswith("Basic realm=")


def test_proxy_header_only_from_trusted_addresses() -> None:
    a = access(web_auth="proxy", web_trusted_proxies="10.0.0.5, 192.168.1.0/24", web_admins="boss@corp")
    named = {"X-Forwarded-User": "alice@corp"}
    assert a.decide(Ask(named, peer="10.0.0.5")) == Viewer("alice@corp", False)
    assert a.decide(Ask({"x-forwarded-user": "boss@corp"}, peer="192.168.1.77")) == Viewer("boss@corp", True)
    assert a.decide(Ask(named, peer="::ffff:10.0.0.5")) == Viewer("alice@corp", False)
    # The same header from anywhere else is ignored: a client can type any header.
    for peer in ("10.0.0.6", "127.0.0.1", None, "not-an-address"):
        d = a.decide(Ask({"X-Forwarded-User": "boss@corp"}, peer=peer))
        assert isinstance(d, Denied) and d.status == 403, peer
    d = a.decide(Ask({}, peer="10.0.0.5"))
    assert isinstance(d, Denied) and d.status == 401
    # oauth2-proxy behind nginx auth_request names the user in another header
    b = access(web_auth="proxy", web_trusted_proxies="10.0.0.5", web_user_header="X-Auth-Request-User")
    assert b.decide(Ask({"X-Auth-Request-User": "carol"}, peer="10.0.0.5")) == Viewer("carol", False)
    d = b.decide(Ask(named, peer="10.0.0.5"))
    assert isinstance(d, Denied) and d.status == 401


def test_a_viewer_sees_their_own_usage_an_admin_everyones() -> None:
    alice, boss = Viewer("alice", False), Viewer("boss", True)
    assert alice.sees("alice") and not alice.sees("bob") and not alice.sees("Alice")
    assert boss.sees("alice") and boss.sees("boss")
    assert alice.scope == "user:alice" and boss.scope == "*" and Viewer(None, True).scope == "*"


def test_password_hashes() -> None:
    h = hash_password("correct horse")
    assert h.startswith("$scrypt$n=16384,r=8,p=1$") and h != hash_password("correct horse")  # salted
    assert verify_password("correct horse", h) and not verify_password("correct horsf", h)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"web_auth": "tokens"}, "must be none, token, basic or proxy"),
        ({"web_auth": "token"}, "needs TOKENLORD_WEB_TOKEN"),
        ({"web_auth": "token", "web_token": "short"}, r"at least 16 characters \(got 5\)"),
        ({"web_auth": "basic"}, "needs TOKENLORD_WEB_USERS_FILE"),
        ({"web_auth": "basic", "web_users_file": "/nonexistent/users"}, "no such file"),
        ({"web_auth": "proxy"}, "needs TOKENLORD_WEB_TRUSTED_PROXIES"),
        ({"web_auth": "proxy", "web_trusted_proxies": "10.0.0.300"}, "not an IP address or network"),
        ({"web_user_header": "X Forwarded User"}, "HTTP header name"),
        ({"web_admins": "boss"}, "no effect with TOKENLORD_WEB_AUTH=none"),
        ({"web_max_requests": "0"}, "must be > 0"),
    ],
)
def test_unusable_settings_say_what_is_wrong(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings(**env)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "lists no user"),
        ("alice\n", "line 1: expected user:HASH"),
        ("alice:plaintext\n", "line 1 .user 'alice'.: not \\$scrypt"),
        (pbkdf2_line("bob", "pw", iterations=1000), "at least 100000 iterations"),
        (f"alice:{hash_password('a')}\nalice:{hash_password('b')}\n", "line 2: user 'alice' is listed twice"),
    ],
)
def test_bad_users_files(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "users"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message):
        settings(web_auth="basic", web_users_file=str(f))


def test_cli_exits_2_on_bad_access_settings_and_masks_the_token(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKENLORD_WEB_AUTH", "token")
    assert main(["config"]) == 2
    err = capsys.readouterr().err
    assert "TOKENLORD_WEB_AUTH=token needs TOKENLORD_WEB_TOKEN" in err and "Traceback" not in err
    monkeypatch.setenv("TOKENLORD_WEB_TOKEN", TOKEN)
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert TOKEN not in out and any(line.split() == ["TOKENLORD_WEB_TOKEN", "***"] for line in out.splitlines())
    monkeypatch.setenv("TOKENLORD_WEB_TOKEN_FILE", __file__)
    assert main(["config"]) == 2
    assert "not both" in capsys.readouterr().err


def test_web_user_prints_a_line_the_users_file_takes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
    assert main(["web-user", "dana"]) == 0
    line = capsys.readouterr().out.strip()
    f = tmp_path / "users"
    f.write_text(line + "\n")
    a = access(web_auth="basic", web_users_file=str(f))
    assert a.decide(Ask(basic("dana", "a long password"))) == Viewer("dana", False)
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["web-user", "dana"]) == 2
    assert "fewer than 8 characters" in capsys.readouterr().err
