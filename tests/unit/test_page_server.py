"""Serving the pages (tokenlord.page_server, tokenlord.page_cache): own-usage scope,
the cache keyed by viewer scope, the bound on pages in flight, reads on their own thread."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import pytest
from tokenlord.page_cache import Limiter, PageCache, cache_key
from tokenlord.page_server import PageServer, Reads
from tokenlord.web_access import Access, Ask, hash_password

WEEK = dt.date(2026, 11, 16)
USERS = {"alice": "alice-password", "bob": "bob-password", "boss": "boss-password"}


def row(user: str, rank: int) -> dict[str, Any]:
    return {
        "week_start": WEEK, "user": user, "team": "core", "requests": 1, "input_tokens": 100 * rank,
        "output_tokens": 0, "total_tokens": 1000 - 100 * rank, "wasted_tokens": 0,
        "effective_tokens": 1000 - 100 * rank, "waste_ratio": 0.0, "cost_usd": 0.01, "outcomes": 0,
        "rank": rank, "effective_rank": rank, "title": "", "final": 0,
    }  # fmt: skip


class Board:
    """The store's page reads over fixed rows (the real query is tested in test_store)."""

    def __init__(self) -> None:
        self.rows = [row("alice", 1), row("bob", 2), row("boss", 3)]
        self.calls: list[tuple[str, Any]] = []
        self.rankings: list[str] = []

    def weeks(self) -> list[dt.date]:
        return [WEEK]

    def leaderboard(
        self, week: dt.date | None = None, top: int = 100, by: Literal["raw", "effective", "value"] = "raw",
        user: str | None = None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        self.calls.append(("leaderboard", user))
        self.rankings.append(by)
        rows = self.rows
        if by == "value":  # the value board turns this one upside down
            rows = [{**r, "value_rank": 4 - r["rank"], "value_tokens": 100 * r["rank"], "credit": 1.0}
                    for r in reversed(rows)]  # fmt: skip
        return [r for r in rows if user is None or r["user"] == user][:top]

    def table(self, name: str) -> str:
        return f"`db`.`{name}`"

    def query_rows(self, sql: str, parameters: Any = None) -> list[dict[str, Any]]:
        return []  # the trends' and the team pages' reads (tested on chDB in test_store)

    def explain(self, user: str, week: dt.date) -> dict[str, Any]:
        self.calls.append(("explain", user))
        mine = [r for r in self.rows if r["user"] == user]
        return {"user": user, "week_start": week, "leaderboard": mine[0] if mine else None,
                "reasons": [], "outcomes": []}  # fmt: skip


async def direct(fn: Any, *args: Any) -> Any:
    return fn(*args)


def basic_access() -> Access:
    users = {u: hash_password(p) for u, p in USERS.items()}
    return Access("basic", users=users, admins=["boss"])


def as_user(user: str, query: dict[str, str] | None = None) -> Ask:
    cred = base64.b64encode(f"{user}:{USERS[user]}".encode()).decode()
    return Ask({"Authorization": f"Basic {cred}"}, query or {})


def server(
    store: Board, *, ttl: float = 60, limit: int = 8, reads: Any = direct, access: Access | None = None
) -> PageServer:
    return PageServer(access or basic_access(), reads, store, cache=PageCache(ttl), limiter=Limiter(limit))


def board_users(body: str) -> list[str]:
    return [part.split('"', 1)[0] for part in body.split('data-user="')[1:]]


def test_cache_key_separates_scopes_and_drops_the_token() -> None:
    assert cache_key("/", {"by": "raw", "week": "2026-11-16"}, "*") == cache_key(
        "/", {"week": "2026-11-16", "by": "raw"}, "*"
    )
    assert cache_key("/", {"by": "raw", "token": "secret"}, "*") == cache_key("/", {"by": "raw"}, "*")
    keys = {cache_key("/", {}, s) for s in ("*", "user:alice", "user:bob")}
    assert len(keys) == 3
    assert cache_key("/user/alice", {}, "*") != cache_key("/", {}, "*")


def test_page_cache_expiry_size_and_off() -> None:
    now = [100.0]
    c = PageCache(5, max_entries=2, clock=lambda: now[0])
    a, b, d = (cache_key(p, {}, "*") for p in ("/a", "/b", "/d"))
    c.put(a, "A")
    assert c.get(a) == "A"
    now[0] = 104.9
    assert c.get(a) == "A"
    now[0] = 105.0
    assert c.get(a) is None and len(c) == 0
    c.put(a, "A"), c.put(b, "B"), c.put(d, "D")
    assert len(c) == 2 and c.get(a) is None and c.get(d) == "D"  # the oldest went first
    off = PageCache(0)
    off.put(a, "A")
    assert off.get(a) is None and len(off) == 0


def test_limiter_refuses_past_its_bound() -> None:
    lim = Limiter(2)
    assert lim.try_enter() and lim.try_enter() and not lim.try_enter()
    assert lim.refused == 1
    lim.leave()
    assert lim.try_enter() and lim.active == 2


def test_a_non_admin_sees_only_their_own_row_and_page() -> None:
    store = Board()
    s = server(store)

    async def go() -> None:
        own = await s.serve("board", "/", as_user("alice"))
        assert own.status == 200 and board_users(own.body) == ["alice"]
        assert "Your own usage only (alice)" in own.body and "bob" not in own.body
        everything = await s.serve("board", "/", as_user("boss"))
        assert everything.status == 200 and board_users(everything.body) == ["alice", "bob", "boss"]
        mine = await s.serve("user", "/user/alice", as_user("alice"), "alice")
        assert mine.status == 200 and "alice" in mine.body
        calls = list(store.calls)
        other = await s.serve("user", "/user/bob", as_user("alice"), "bob")
        assert other.status == 403 and "bob" not in other.body and "/user/alice" in other.body
        assert store.calls == calls  # nothing of bob's was read
        admin = await s.serve("user", "/user/bob", as_user("boss"), "bob")
        assert admin.status == 200

    asyncio.run(go())


def test_team_and_organisation_pages_are_for_admins_only() -> None:
    store = Board()
    s = server(store)

    async def go() -> None:
        for page, path, query in (("teams", "/teams", {}), ("team", "/team", {"name": "core"}), ("org", "/org", {})):
            calls = list(store.calls)
            denied = await s.serve(page, path, as_user("alice", query))  # type: ignore[arg-type]
            assert denied.status == 403 and "for admins" in denied.body and "/user/alice" in denied.body
            assert "core" not in denied.body and store.calls == calls
            shown = await s.serve(page, path, as_user("boss", query))  # type: ignore[arg-type]
            assert shown.status == 200, shown.body
        own = await s.serve("board", "/", as_user("alice"))
        assert 'id="nav-teams"' not in own.body  # no link to what they may not see
        everything = await s.serve("board", "/", as_user("boss"))
        assert 'id="nav-teams" href="/teams?week=2026-11-16"' in everything.body

    asyncio.run(go())


def test_the_value_board_has_the_same_scope_as_the_others() -> None:
    """by=value: an admin sees everyone by value rank; anyone else only their own
    row, with the value rank it has on the whole board; cached apart from by=raw."""
    store = Board()
    s = server(store)

    async def go() -> None:
        everything = await s.serve("board", "/", as_user("boss", {"by": "value"}))
        assert everything.status == 200 and board_users(everything.body) == ["boss", "bob", "alice"]
        assert "Value tokens" in everything.body
        own = await s.serve("board", "/", as_user("alice", {"by": "value"}))
        assert own.status == 200 and board_users(own.body) == ["alice"] and "bob" not in own.body
        assert '<td class="pos">3</td>' in own.body and "Your own usage only (alice)" in own.body
        raw = await s.serve("board", "/", as_user("alice", {"by": "raw"}))
        assert '<td class="pos">1</td>' in raw.body and "Value tokens" not in raw.body
        bad = await s.serve("board", "/", as_user("alice", {"by": "worth"}))
        assert bad.status == 400 and "by=value" in bad.body
        assert store.calls == [("leaderboard", None), ("leaderboard", "alice"), ("leaderboard", "alice")]
        assert store.rankings == ["value", "value", "raw"]

    asyncio.run(go())


def test_denied_requests_carry_no_data_and_read_nothing() -> None:
    store = Board()
    s = server(store)

    async def go() -> None:
        for ask in (Ask({}), Ask({"Authorization": "Basic " + base64.b64encode(b"alice:wrong").decode()})):
            a = await s.serve("board", "/", ask)
            assert a.status == 401 and a.headers["WWW-Authenticate"].startswith("Basic")
            assert not any(u in a.body for u in USERS) and "data-user" not in a.body
            a = await s.serve("user", "/user/alice", ask, "alice")
            assert a.status == 401 and "alice" not in a.body
        assert store.calls == []

    asyncio.run(go())


def test_cached_pages_are_never_served_to_another_scope() -> None:
    store = Board()
    s = server(store)

    async def go() -> None:
        first = await s.serve("board", "/", as_user("alice", {"by": "raw"}))
        assert board_users(first.body) == ["alice"]
        again = await s.serve("board", "/", as_user("alice", {"by": "raw"}))
        assert again.body == first.body and store.calls == [("leaderboard", "alice")]  # from the cache
        bob = await s.serve("board", "/", as_user("bob", {"by": "raw"}))
        assert board_users(bob.body) == ["bob"]
        boss = await s.serve("board", "/", as_user("boss", {"by": "raw"}))
        assert board_users(boss.body) == ["alice", "bob", "boss"]
        assert store.calls == [("leaderboard", "alice"), ("leaderboard", "bob"), ("leaderboard", None)]
        # once the admin's board is cached, a non-admin still gets their own
        again = await s.serve("board", "/", as_user("bob", {"by": "raw"}))
        assert board_users(again.body) == ["bob"]

    asyncio.run(go())


def test_token_in_the_query_becomes_a_cookie_and_leaves_the_url() -> None:
    token = "0123456789abcdef-token"
    s = server(Board(), access=Access("token", token=token))

    async def go() -> None:
        a = await s.serve("board", "/", Ask({}, {"token": token, "by": "effective"}))
        assert a.status == 303 and a.headers["Location"] == "/?by=effective"
        assert a.headers["Set-Cookie"].startswith(f"tokenlord_token={token};") and "HttpOnly" in a.headers["Set-Cookie"]
        b = await s.serve("board", "/", Ask({}, {"by": "effective"}, {"tokenlord_token": token}))
        assert b.status == 200 and board_users(b.body) == ["alice", "bob", "boss"]
        wrong = await s.serve("board", "/", Ask({}, {"token": "x" * 22}))
        assert wrong.status == 401 and "Set-Cookie" not in wrong.headers
        # A link with a wrong token, followed by someone with the good cookie, keeps their cookie.
        link = await s.serve("board", "/", Ask({}, {"token": "x" * 22}, {"tokenlord_token": token}))
        assert link.status == 303 and "Set-Cookie" not in link.headers

    asyncio.run(go())


def test_pages_past_the_bound_get_503_with_retry_after() -> None:
    store = Board()
    release = asyncio.Event()

    async def blocked(fn: Any, *args: Any) -> Any:
        await release.wait()
        return fn(*args)

    s = server(store, ttl=0, limit=2, reads=blocked, access=Access("none"))

    async def go() -> None:
        first = [asyncio.create_task(s.serve("board", "/", Ask({}, {"by": b}))) for b in ("raw", "effective")]
        while s.limiter.active < 2:  # both are waiting for their reads
            await asyncio.sleep(0)
        refused = await s.serve("board", "/", Ask({}))
        assert refused.status == 503 and refused.headers["Retry-After"] == "1"
        assert "data-user" not in refused.body
        release.set()
        assert [a.status for a in await asyncio.gather(*first)] == [200, 200]
        assert s.limiter.active == 0
        assert (await s.serve("board", "/", Ask({}))).status == 200

    asyncio.run(go())


def test_page_reads_run_while_the_store_thread_is_busy() -> None:
    """The pages' reads have their own thread: a store thread stuck in a write does not hold them."""
    store_thread = ThreadPoolExecutor(1, thread_name_prefix="tokenlord-store")
    writing, done = threading.Event(), threading.Event()
    store_thread.submit(lambda: (writing.set(), done.wait(120)))
    writing.wait(120)
    seen: list[str] = []

    class Watched(Board):
        def weeks(self) -> list[dt.date]:
            seen.append(threading.current_thread().name)
            return super().weeks()

    store = Watched()
    reads = Reads(store)
    s = server(store, reads=reads, access=Access("none"))
    try:
        a = asyncio.run(s.serve("board", "/", Ask({})))
        assert a.status == 200 and board_users(a.body) == ["alice", "bob", "boss"]
        assert seen and all(name.startswith("tokenlord-pages") for name in seen)
        assert not done.is_set()  # the write was still in flight all along
    finally:
        done.set()
        reads.close()
        store_thread.shutdown()


@pytest.mark.parametrize("query", [{"by": "loudest"}, {"week": "someday"}])
def test_bad_queries_are_400_after_the_access_check(query: dict[str, str]) -> None:
    s = server(Board())

    async def go() -> None:
        assert (await s.serve("board", "/", Ask({}, query))).status == 401
        assert (await s.serve("board", "/", as_user("alice", query))).status == 400

    asyncio.run(go())


def test_password_checks_run_off_the_event_loop() -> None:
    """scrypt takes tens of ms: on the loop it would stall the consumer's heartbeats too."""
    seen: list[str] = []

    class Watched(Access):
        def decide(self, ask: Ask) -> Any:
            seen.append(threading.current_thread().name)
            return super().decide(ask)

    users = {u: hash_password(p) for u, p in USERS.items()}
    s = server(Board(), access=Watched("basic", users=users))
    assert asyncio.run(s.serve("board", "/", as_user("bob"))).status == 200
    assert seen and all(name.startswith("tokenlord-auth") for name in seen)
