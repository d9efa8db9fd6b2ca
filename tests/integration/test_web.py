"""The worker's web server against real Kafka and embedded ClickHouse: /metrics,
/healthz, /readyz, the leaderboard page and the explain page, over HTTP from a
running ``tokenlord worker``, and the page in headless Chromium (playwright)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_pipeline import free_port, produce
from tokenlord.kafka.admin import delete_topics, ensure_topics

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "var" / "artifacts"
CHROMIUM = os.environ.get("TOKENLORD_TEST_CHROMIUM", "/usr/bin/chromium")
HOSTILE = '<script>alert("x")</script>'
HOSTILE_TEAM = '"><img src=x onerror=alert(1)>'


def stop_worker(proc: subprocess.Popen[bytes], brokers: str, topics: list[str]) -> None:
    """SIGTERM (then SIGKILL) a page-serving worker and delete its test topics."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    try:
        delete_topics(brokers, topics)
    except Exception as exc:  # cleanup only
        print(f"could not delete test topics: {exc}")


@dataclass
class Worker:
    base: str
    proc: subprocess.Popen[bytes]
    log: Path
    messages: int
    week: str
    topic: str


def get(url: str, timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def stream(now_ms: int) -> list[tuple[bytes | None, bytes]]:
    """Raw order: maxxer, honest-0..4, the hostile name; effective: honest-0..4, hostile, maxxer
    (all the maxxer's requests failed, so all of its tokens are waste)."""
    monday = (now_ms // 86_400_000 - (now_ms // 86_400_000 + 3) % 7) * 86_400_000
    msgs: list[tuple[bytes | None, bytes]] = []
    n = 0

    def add(user: str, tokens: int, team: str = "core", **extra: Any) -> None:
        nonlocal n
        n += 1
        ts = max(monday, now_ms - 1000 * n)  # the last minutes, inside this week
        ev = {"event_id": f"ev-{n}", "ts": ts, "user": user, "team": team, "model": "gpt-4o",
              "input_tokens": tokens, "output_tokens": 0, **extra}  # fmt: skip
        msgs.append((user.encode(), orjson.dumps(ev)))

    for _ in range(5):
        add("maxxer", 30_000, status="error")
        for i in range(5):
            add(f"honest-{i}", 10_000 - 1500 * i)
        add(HOSTILE, 3_000, team=HOSTILE_TEAM)
    msgs.append(msgs[1])  # a duplicate of honest-0's first event
    msgs.append((None, b"not json"))
    return msgs


@pytest.fixture(scope="module")
def worker(kafka_brokers: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    tmp = tmp_path_factory.mktemp("web")
    suffix = uuid.uuid4().hex[:10]
    events, outcomes, dlq = f"web-{suffix}", f"web-{suffix}.outcomes", f"web-{suffix}.dlq"
    ensure_topics(kafka_brokers, {events: 3, outcomes: 3, dlq: 3})
    now_ms = int(time.time() * 1000)
    msgs = stream(now_ms)
    produce(kafka_brokers, events, msgs)
    port = free_port()
    env = {
        **os.environ,
        "TOKENLORD_KAFKA_BROKERS": kafka_brokers,
        "TOKENLORD_EVENTS_TOPIC": events,
        "TOKENLORD_OUTCOMES_TOPIC": outcomes,
        "TOKENLORD_DLQ_TOPIC": dlq,
        "TOKENLORD_GROUP_ID": f"web-{suffix}",
        "TOKENLORD_CLICKHOUSE_URL": f"chdb://{tmp / 'ch'}",
        "TOKENLORD_WEB_PORT": str(port),
        "TOKENLORD_FLUSH_INTERVAL": "200ms",
        "TOKENLORD_LOG_FORMAT": "json",
    }
    log = tmp / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(REPO / ".venv/bin/tokenlord"), "worker"], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp
        )
    base = f"http://127.0.0.1:{port}"
    week_ms = (now_ms // 86_400_000 - (now_ms // 86_400_000 + 3) % 7) * 86_400_000
    week = time.strftime("%Y-%m-%d", time.gmtime(week_ms / 1000))
    w = Worker(base, proc, log, len(msgs), week, events)
    try:
        # Wait (with a deadline, no guessing) until every message was written.
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, f"worker exited {proc.returncode}:\n{log.read_text()[-4000:]}"
            try:
                status, _, body = get(f"{base}/metrics", timeout=5)
            except OSError:
                status, body = 0, b""
            if status == 200:
                got = metric_samples(body.decode())
                if got.get(("tokenlord_messages_total", ()), 0) >= len(msgs):
                    break
            assert time.monotonic() < deadline, (
                f"worker did not catch up: /metrics {status}\n{body.decode(errors='replace')[-3000:]}\n"
                f"{log.read_text()[-3000:]}"
            )
            time.sleep(0.3)
        yield w
    finally:
        stop_worker(proc, kafka_brokers, [events, outcomes, dlq])


class Rows(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str | None]] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        a = dict(attrs)
        if tag == "tr" and "data-user" in a:
            self.rows.append(a)


def rows_of(body: bytes) -> Rows:
    r = Rows()
    r.feed(body.decode())
    return r


RAW_ORDER = ["maxxer", *(f"honest-{i}" for i in range(5)), HOSTILE]
EFFECTIVE_ORDER = [*(f"honest-{i}" for i in range(5)), HOSTILE, "maxxer"]


def test_metrics_health_and_readiness(worker: Worker) -> None:
    started = time.perf_counter()
    status, headers, body = get(f"{worker.base}/metrics")
    scrape_ms = 1000 * (time.perf_counter() - started)
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    got = metric_samples(body.decode())
    assert got[("tokenlord_messages_total", ())] == worker.messages
    assert got[("tokenlord_events_accepted_total", ())] == 35
    assert got[("tokenlord_events_duplicate_total", ())] == 1
    assert got[("tokenlord_events_rejected_total", (("reason", "invalid_json"),))] == 1
    # One restore per partition that had messages, at its first batch.
    assert got[("tokenlord_restores_total", ())] == got[("tokenlord_window_state", (("kind", "partitions"),))] >= 2
    assert got[("tokenlord_flush_seconds_count", ())] >= 1
    assert got[("tokenlord_batch_messages_sum", ())] == worker.messages
    assert got[("tokenlord_store_failing", ())] == 0
    assigned = {dict(lb)["topic"]: v for (name, lb), v in got.items() if name == "tokenlord_partitions_assigned"}
    assert assigned == {worker.topic: 3, f"{worker.topic}.outcomes": 3}
    # Lag reaches 0 once everything was processed (the high watermark may be fetched late).
    deadline = time.monotonic() + 30
    while True:
        lags = {k: v for k, v in metric_samples(get(f"{worker.base}/metrics")[2].decode()).items()
                if k[0] == "tokenlord_consumer_lag"}  # fmt: skip
        if len(lags) == 6 and not any(lags.values()):
            break
        assert time.monotonic() < deadline, lags
        time.sleep(0.3)
    print(f"/metrics scrape: {scrape_ms:.1f} ms, {len(body)} bytes")

    status, _, body = get(f"{worker.base}/healthz")
    assert status == 200 and orjson.loads(body) == {"status": "ok"}
    status, _, body = get(f"{worker.base}/readyz")
    assert status == 200 and orjson.loads(body) == {"status": "ready"}, body
    # JSON logs, one object per line.
    lines = [ln for ln in worker.log.read_text().splitlines() if ln.startswith("{")]
    assert any(orjson.loads(ln)["logger"] == "tokenlord.pipeline" for ln in lines), lines[-5:]


def test_leaderboard_page_rows_order_and_escaping(worker: Worker) -> None:
    started = time.perf_counter()
    status, headers, body = get(f"{worker.base}/")
    page_ms = 1000 * (time.perf_counter() - started)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    page = rows_of(body)
    assert [r["data-user"] for r in page.rows] == RAW_ORDER
    assert "script" not in page.tags and "img" not in page.tags
    text = body.decode()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in text
    assert f"Week of {worker.week} (open)" in text
    status, _, body = get(f"{worker.base}/leaderboard?by=effective&week={worker.week}")
    eff = rows_of(body)
    assert status == 200 and [r["data-user"] for r in eff.rows] == EFFECTIVE_ORDER
    assert [r["data-effective-rank"] for r in eff.rows] == [str(i) for i in range(1, 8)]
    assert '<span class="title">Token Lord</span>' in body.decode()
    # No outcomes were reported: nobody has value, so the value board is by name only.
    status, _, body = get(f"{worker.base}/leaderboard?by=value&week={worker.week}")
    val = rows_of(body)
    assert status == 200 and [r["data-user"] for r in val.rows] == sorted(RAW_ORDER)
    assert "ranked by value" in body.decode()
    print(f"leaderboard page: {page_ms:.1f} ms")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("by=sideways", "by=&#x27;sideways&#x27;: use by=raw"),
        ("week=yesterday", "week=&#x27;yesterday&#x27;: use a date"),
    ],
)
def test_bad_query_is_a_400_with_a_clear_message(worker: Worker, query: str, message: str) -> None:
    status, _, body = get(f"{worker.base}/?{query}")
    assert status == 400 and message in body.decode(), body[-600:]
    assert b"Traceback" not in body


def test_empty_week_and_user_pages(worker: Worker) -> None:
    status, _, body = get(f"{worker.base}/?week=2020-01-08")
    assert status == 200 and b"No usage recorded for the week of 2020-01-06" in body
    assert f'href="/?week={worker.week}&amp;by=raw"'.encode() in body  # the picker links to the week with data
    status, _, body = get(f"{worker.base}/user/maxxer?week={worker.week}")
    text = body.decode()
    assert status == 200 and "failed_request: 5 requests, 150,000 tokens wasted (of 150,000)" in text
    assert "rank 1 by raw tokens, 7 by effective tokens" in text
    status, _, body = get(f"{worker.base}/user/{quote(HOSTILE, safe='')}")
    assert status == 200 and b"<script>" not in body and b"&lt;script&gt;alert" in body
    assert b"15,000 tokens, " in body and b"(&quot;&gt;&lt;img src=x onerror=alert(1)&gt;)" in body
    status, _, body = get(f"{worker.base}/user/nobody?week={worker.week}")
    assert status == 200 and f"nobody: no usage in the week of {worker.week}".encode() in body


class TeamRows(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str | None]] = []
        self.tags: set[str] = set()
        self.charts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        a = dict(attrs)
        if tag == "tr" and "data-team" in a:
            self.rows.append(a)
        if tag == "figure" and a.get("class") == "chart":
            self.charts.append(str(a["id"]))


def test_team_board_team_page_and_org_page(worker: Worker) -> None:
    status, _, body = get(f"{worker.base}/teams?week={worker.week}")
    page = TeamRows()
    page.feed(body.decode())
    assert status == 200 and [r["data-team"] for r in page.rows] == ["core", HOSTILE_TEAM]
    assert "script" not in page.tags and "img" not in page.tags
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in body.decode()  # jinja2's escape of '"'
    status, _, body = get(f"{worker.base}/teams?week={worker.week}&by=effective")
    page = TeamRows()
    page.feed(body.decode())
    assert [r["data-effective-rank"] for r in page.rows] == ["1", "2"]
    # The team page: members as on the user board (their sum is the team's row), three trend charts.
    status, _, body = get(f"{worker.base}/team?name=core&week={worker.week}")
    text = body.decode()
    members = rows_of(body)
    page = TeamRows()
    page.feed(text)
    assert status == 200 and [r["data-user"] for r in members.rows] == ["maxxer", *(f"honest-{i}" for i in range(5))]
    core_total = 5 * 30_000 + sum(5 * (10_000 - 1500 * i) for i in range(5))
    summary = re.search(r'id="summary"><h2>(.*?)</h2>', text)
    assert summary and summary[1].startswith(f"core: 6 members, {core_total:,} tokens, "), text
    assert page.charts == ["team-tokens", "team-waste", "team-cost"]
    assert 'data-series="failed_request" data-value="150000"' in text
    status, _, body = get(f"{worker.base}/team?week={worker.week}")
    assert status == 400 and b"name=TEAM is missing" in body
    status, _, body = get(f"{worker.base}/org?week={worker.week}")
    text = body.decode()
    assert status == 200 and 'data-measure="wasted_cost_usd"' in text and 'data-reason="failed_request"' in text
    assert f"{core_total + 15_000:,}" in text  # the organisation: core and the hostile name's team
    # The user page has the user's trend too.
    status, _, body = get(f"{worker.base}/user/maxxer?week={worker.week}")
    page = TeamRows()
    page.feed(body.decode())
    assert page.charts == ["user-tokens", "user-waste", "user-cost"]


def test_browser_effective_toggle_and_screenshot(worker: Worker) -> None:
    if not Path(CHROMIUM).exists():
        reason = "chromium is not installed"
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            pytest.skip(f"{reason} and cannot be: `make test` installs it with apt-get only as root")
        pytest.fail(f"{reason} at {CHROMIUM}: run `make browser` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )  # fmt: skip
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.goto(f"{worker.base}/", wait_until="load")
            users = page.locator("#board tbody tr").evaluate_all("rs => rs.map(r => r.dataset.user)")
            assert users == RAW_ORDER
            assert page.locator("#by-raw").get_attribute("aria-current") == "page"
            page.click("#by-effective")
            page.wait_for_url(re.compile(r".*by=effective.*"))
            users = page.locator("#board tbody tr").evaluate_all("rs => rs.map(r => r.dataset.user)")
            assert users == EFFECTIVE_ORDER
            positions = page.locator("#board tbody td.pos").all_inner_texts()
            assert positions == [str(i) for i in range(1, 8)]
            assert page.locator("#by-effective").get_attribute("aria-current") == "page"
            # The hostile name is text: no dialog opened, no script element came from it.
            assert page.locator("script").count() == 0
            assert page.get_by_text(HOSTILE, exact=True).count() >= 1
            page.screenshot(path=str(ARTIFACTS / "leaderboard-effective.png"), full_page=True)
            # A user's audit trail is one click away.
            page.click("text=maxxer")
            page.wait_for_url(re.compile(r".*/user/maxxer.*"))
            assert "failed_request" in page.inner_text("main")
            page.screenshot(path=str(ARTIFACTS / "explain-maxxer.png"), full_page=True)
            # The team board and a team's trend, from the board's navigation.
            page.goto(f"{worker.base}/", wait_until="load")
            page.click("#nav-teams")
            page.wait_for_url(re.compile(r".*/teams.*"))
            teams = page.locator("#teams tbody tr").evaluate_all("rs => rs.map(r => r.dataset.team)")
            assert teams == ["core", HOSTILE_TEAM]
            page.click("#teams >> text=core")
            page.wait_for_url(re.compile(r".*/team\?name=core.*"))
            assert page.locator("#trends svg").count() == 3
            assert page.locator("#team-waste rect[data-series=failed_request]").count() >= 1
            assert page.locator("script").count() == 0
            page.screenshot(path=str(ARTIFACTS / "team-core.png"), full_page=True)
            page.click("#nav-org")
            page.wait_for_url(re.compile(r".*/org.*"))
            assert "failed_request" in page.inner_text("#waste")
            page.screenshot(path=str(ARTIFACTS / "org.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "leaderboard-effective.png").stat().st_size > 10_000
    assert (ARTIFACTS / "team-core.png").stat().st_size > 10_000
