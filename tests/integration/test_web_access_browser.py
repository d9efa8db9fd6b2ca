"""Access to the pages of a running ``tokenlord worker`` (real Kafka, embedded
ClickHouse) with ``TOKENLORD_WEB_AUTH=basic``, over HTTP and in headless Chromium:
denied without credentials, allowed with them, a non-admin sees only their own
usage, /metrics and health stay open."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from e2e import free_port, produce
from test_web import CHROMIUM, get, metric_samples, stop_worker
from tokenlord.kafka.admin import ensure_topics
from tokenlord.web_access import hash_password

pytestmark = pytest.mark.integration
PASSWORDS = {"alice": "alice-password", "bob": "bob-password", "boss": "boss-password"}
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


@dataclass
class Worker:
    base: str
    week: str


def auth(user: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{PASSWORDS[user]}".encode()).decode()}


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    return get(urllib.request.Request(url, headers=headers or {}))  # type: ignore[arg-type]  # urlopen takes both


@pytest.fixture(scope="module")
def worker(kafka_brokers: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    tmp = tmp_path_factory.mktemp("web-access")
    suffix = uuid.uuid4().hex[:10]
    events, outcomes, dlq = f"webacc-{suffix}", f"webacc-{suffix}.outcomes", f"webacc-{suffix}.dlq"
    ensure_topics(kafka_brokers, {events: 3, outcomes: 3, dlq: 3})
    now_ms = int(time.time() * 1000)
    week_ms = (now_ms // 86_400_000 - (now_ms // 86_400_000 + 3) % 7) * 86_400_000
    msgs = []
    for n, (user, tokens) in enumerate([("alice", 3000), ("bob", 2000), ("boss", 1000)] * 2):
        ev = {"event_id": f"acc-{n}", "ts": max(week_ms, now_ms - 1000 * (n + 1)), "user": user, "team": "core",
              "model": "gpt-4o", "input_tokens": tokens, "output_tokens": 0}  # fmt: skip
        msgs.append((user.encode(), orjson.dumps(ev)))
    produce(kafka_brokers, events, msgs)
    users = tmp / "users"
    users.write_text("".join(f"{u}:{hash_password(p)}\n" for u, p in PASSWORDS.items()))
    port = free_port()
    env = {
        **os.environ,
        "TOKENLORD_KAFKA_BROKERS": kafka_brokers,
        "TOKENLORD_EVENTS_TOPIC": events,
        "TOKENLORD_OUTCOMES_TOPIC": outcomes,
        "TOKENLORD_DLQ_TOPIC": dlq,
        "TOKENLORD_GROUP_ID": f"webacc-{suffix}",
        "TOKENLORD_CLICKHOUSE_URL": f"chdb://{tmp / 'ch'}",
        "TOKENLORD_WEB_PORT": str(port),
        "TOKENLORD_FLUSH_INTERVAL": "200ms",
        "TOKENLORD_WEB_AUTH": "basic",
        "TOKENLORD_WEB_USERS_FILE": str(users),
        "TOKENLORD_WEB_ADMINS": "boss",
    }
    log = tmp / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tokenlord", "worker"], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:  # until every message was written (a deadline, not a timed assertion)
            assert proc.poll() is None, f"worker exited {proc.returncode}:\n{log.read_text()[-4000:]}"
            try:
                status, _, body = get(f"{base}/metrics", timeout=5)
            except OSError:
                status, body = 0, b""
            if status == 200 and metric_samples(body.decode()).get(("tokenlord_messages_total", ()), 0) >= len(msgs):
                break
            assert time.monotonic() < deadline, f"worker did not catch up:\n{log.read_text()[-3000:]}"
            time.sleep(0.3)
        yield Worker(base, time.strftime("%Y-%m-%d", time.gmtime(week_ms / 1000)))
    finally:
        stop_worker(proc, kafka_brokers, [events, outcomes, dlq])


def test_over_http_denied_without_credentials_metrics_and_health_open(worker: Worker) -> None:
    for path in ("/", "/leaderboard", "/user/alice", f"/?week={worker.week}"):
        status, headers, body = fetch(worker.base + path)
        assert status == 401, path
        assert headers["WWW-Authenticate"].startswith('Basic realm="tokenlord"')
        assert not any(u.encode() in body for u in PASSWORDS) and b"data-user" not in body
    status, _, body = fetch(worker.base + "/", {"Authorization": "Basic " + base64.b64encode(b"alice:x").decode()})
    assert status == 401 and b"data-user" not in body
    for path in ("/metrics", "/healthz"):
        assert fetch(worker.base + path)[0] == 200, path
    status, _, body = fetch(worker.base + "/", auth("boss"))
    assert status == 200 and all(f'data-user="{u}"'.encode() in body for u in PASSWORDS)
    status, _, body = fetch(worker.base + "/user/bob", auth("alice"))
    assert status == 403 and b"3,000" not in body and b"4,000" not in body


def test_browser_denied_then_own_usage_then_everything(worker: Worker) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium is not installed at {CHROMIUM} (test_web.py says how)")
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
        try:
            # No or wrong credentials: the server's 401 Basic challenge, which headless Chromium
            # (no login dialog) shows as the 401 page or a failed navigation; never the board.
            for creds in (None, {"username": "alice", "password": "wrong"}):
                denied = browser.new_context(http_credentials=creds).new_page()  # type: ignore[arg-type]
                statuses: list[int] = []
                denied.on("response", lambda r, seen=statuses: seen.append(r.status))
                try:
                    response = denied.goto(f"{worker.base}/", wait_until="load")
                    assert response is not None and response.status == 401
                except PlaywrightError as exc:
                    assert "ERR_INVALID_AUTH_CREDENTIALS" in str(exc)
                assert statuses and set(statuses) == {401}, (creds, statuses)
                assert denied.locator("#board").count() == 0 and "alice-password" not in denied.content()

            alice = browser.new_context(http_credentials={"username": "alice", "password": PASSWORDS["alice"]})
            page = alice.new_page()
            response = page.goto(f"{worker.base}/", wait_until="load")
            assert response is not None and response.status == 200
            users = page.locator("#board tbody tr").evaluate_all("rs => rs.map(r => r.dataset.user)")
            assert users == ["alice"]
            assert "Your own usage only (alice)" in page.inner_text("#scope")
            assert "bob" not in page.content() and "boss" not in page.content()
            page.click("#board a:text('alice')")
            page.wait_for_url("**/user/alice**")
            assert "alice" in page.inner_text("#summary")
            response = page.goto(f"{worker.base}/user/bob?week={worker.week}", wait_until="load")
            assert response is not None and response.status == 403
            assert "your own usage only" in page.inner_text("#error") and 'id="summary"' not in page.content()

            boss = browser.new_context(http_credentials={"username": "boss", "password": PASSWORDS["boss"]})
            page = boss.new_page()
            response = page.goto(f"{worker.base}/", wait_until="load")
            assert response is not None and response.status == 200
            users = page.locator("#board tbody tr").evaluate_all("rs => rs.map(r => r.dataset.user)")
            assert users == ["alice", "bob", "boss"]
            assert page.locator("#scope").count() == 0
        finally:
            browser.close()
