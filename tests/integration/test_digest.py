"""The weekly digest from a real worker (real Kafka, embedded ClickHouse) to a
local webhook: posted once for a week that became final, also when the worker
is killed between the webhook's 2xx and the record and then restarted."""

from __future__ import annotations

import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from e2e import produce, start_worker, worker_env
from tokenlord.time_utils import DAY_MS as DAY
from webhook_server import Hooks

pytestmark = pytest.mark.integration


def monday_ms(ms: int) -> int:
    days = ms // DAY
    return (days - (days + 3) % 7) * DAY  # 1970-01-01 was a Thursday


def wait_for(what: str, ok: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        assert proc.poll() is None or what == "exit", f"worker exited {proc.returncode}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)


def metric(port: str, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return -1
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m[1]) if m else -1


def test_the_digest_reaches_the_webhook_once_across_a_kill_after_the_post(
    kafka_brokers: str, topic: Callable[..., str], tmp_path: Path
) -> None:
    events = topic("digest")
    now = int(time.time() * 1000)
    old = monday_ms(now) - 14 * DAY  # a week that ended 7+ days ago: final once each partition moves past it
    msgs = []
    for j, when in enumerate((old + DAY, now - 60_000)):  # the old week first: after the new one it is late
        for i in range(6):
            user = f"user-{i}"
            ev = {"event_id": f"{user}-{j}", "ts": when + i, "user": user, "team": "red" if i % 2 else "blue",
                  "model": "gpt-4o", "input_tokens": 1000 * (i + 1), "output_tokens": 10,
                  "status": "error" if i == 5 else "ok"}  # fmt: skip
            msgs.append((user.encode(), orjson.dumps(ev)))
    produce(kafka_brokers, events, msgs)
    hooks = Hooks()
    log = tmp_path / "worker.log"
    try:
        base = worker_env(
            kafka_brokers, events, tmp_path / "ch", TOKENLORD_DIGEST_WEBHOOKS=f"bi=json:{hooks.url}/bi",
            TOKENLORD_DIGEST_INTERVAL="300ms",
        )  # fmt: skip
        # Life 1: killed right after the webhook's 2xx, before the record.
        proc = start_worker({**base, "TOKENLORD_FAULT_CRASH_AT": "digest"}, log, stop_at_end=False)
        wait_for("exit", lambda: proc.poll() is not None, proc, log)
        assert proc.returncode == -signal.SIGKILL and len(hooks.posts) == 1, log.read_text()[-3000:]
        # Life 2: nothing recorded, so it posts again, with the same key, and records it.
        proc = start_worker(base, log, stop_at_end=False)
        try:
            wait_for("the record", lambda: "posted to bi (json)" in log.read_text(), proc, log)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        # Life 3: the record is there: three looks, no post.
        proc = start_worker(base, log, stop_at_end=False)
        try:
            port = base["TOKENLORD_WEB_PORT"]
            wait_for("3 digest checks", lambda: metric(port, "tokenlord_digest_checks_total") >= 3, proc, log)
            assert metric(port, "tokenlord_digests_sent_total") == 0
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    finally:
        hooks.close()
    keys = [headers["Idempotency-Key"] for _, headers, _ in hooks.posts]
    week = time.strftime("%Y-%m-%d", time.gmtime(old / 1000))
    assert keys == [f"tokenlord-digest-{week}-bi"] * 2  # one digest: the kill's gap re-posts it with its key
    first, second = (orjson.loads(body) for _, _, body in hooks.posts)
    assert first == second and first["week_start"] == week
    assert [r["user"] for r in first["top_raw"]] == [f"user-{i}" for i in range(5, -1, -1)]
    assert first["top_effective"][-1]["user"] == "user-5"  # its requests failed: all waste
    assert first["waste"][0]["reason"] == "failed_request" and first["waste"][0]["wasted_cost_usd"] > 0
