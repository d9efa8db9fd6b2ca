"""docker-compose.yml, Prometheus and Grafana provisioning, checked without Docker:
services, mounted files, scrape targets vs the workers' web settings, and every
dashboard query (ClickHouse SQL run against the real schema in embedded chDB;
PromQL names checked against the metrics a worker exports)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tokenlord import metrics

yaml = pytest.importorskip("yaml", reason="PyYAML (dev extra) is needed to read docker-compose.yml")

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy/grafana/dashboards/tokenlord.json"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = load(REPO / "docker-compose.yml")
    return doc


def test_services_and_mounted_files(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"kafka", "clickhouse", "init-db", "worker", "prometheus", "grafana"} <= set(services)
    named = set(compose.get("volumes") or {})
    for name, svc in services.items():
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0]
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name} mounts {source}, which is not in the repository"
            else:
                assert source in named, f"{name} uses volume {source!r}, not declared under volumes:"
        for dep in svc.get("depends_on", []):
            assert dep in services, f"{name} depends on unknown service {dep}"
    assert "grafana-clickhouse-datasource" in services["grafana"]["environment"]["GF_INSTALL_PLUGINS"]


# ---- locked down: loopback ports, required passwords, a ClickHouse user per job -----------------

COMPOSE_TEXT = (REPO / "docker-compose.yml").read_text()
ENV_EXAMPLE = REPO / ".env.example"
REQUIRED = (
    "CLICKHOUSE_ADMIN_PASSWORD", "CLICKHOUSE_WORKER_PASSWORD", "CLICKHOUSE_BI_PASSWORD", "GRAFANA_ADMIN_PASSWORD",
)  # fmt: skip


def test_every_port_is_published_on_loopback_only(compose: dict[str, Any]) -> None:
    published = [(name, str(p)) for name, svc in compose["services"].items() for p in svc.get("ports", [])]
    assert {n for n, _ in published} == {"kafka", "clickhouse", "worker", "prometheus", "grafana"}
    for name, port in published:
        assert port.startswith("127.0.0.1:") and port.count(":") == 2, f"{name} publishes {port} beyond loopback"


def test_passwords_are_required_never_defaulted(compose: dict[str, Any]) -> None:
    variables = re.findall(r"\$\{([A-Z_]+)([^}]*)\}", COMPOSE_TEXT)
    assert {v for v, _ in variables} == set(REQUIRED)
    for var, rest in variables:
        assert rest.startswith(":?") and var in rest, f"${{{var}{rest}}}: a password must be required with a message"
    assert ":-" not in COMPOSE_TEXT.replace("# ", "")
    lines = [line for line in ENV_EXAMPLE.read_text().splitlines() if "=" in line and not line.startswith("#")]
    example = dict(line.split("=", 1) for line in lines)
    assert set(example) == set(REQUIRED) and all(v.startswith("replace-me") for v in example.values())
    assert "/.env" in (REPO / ".gitignore").read_text().splitlines()


def clickhouse_url_user(env: dict[str, str]) -> tuple[str, str]:
    m = re.fullmatch(r"http://(\w+):\$\{(\w+):\?[^}]+\}@clickhouse:8123", env["TOKENLORD_CLICKHOUSE_URL"])
    assert m, env["TOKENLORD_CLICKHOUSE_URL"]
    return m.group(1), m.group(2)


def test_a_clickhouse_user_per_job(compose: dict[str, Any]) -> None:
    services = compose["services"]
    admin = services["clickhouse"]["environment"]
    assert admin["CLICKHOUSE_PASSWORD"].startswith("${CLICKHOUSE_ADMIN_PASSWORD:?")
    assert str(admin["CLICKHOUSE_DEFAULT_ACCESS_MANAGEMENT"]) == "1"  # the admin creates the other users
    init = services["init-db"]["environment"]
    assert clickhouse_url_user(init) == (admin["CLICKHOUSE_USER"], "CLICKHOUSE_ADMIN_PASSWORD")
    worker = services["worker"]["environment"]
    assert clickhouse_url_user(worker) == (init["TOKENLORD_WORKER_USER"], "CLICKHOUSE_WORKER_PASSWORD")
    assert init["TOKENLORD_WORKER_PASSWORD"].startswith("${CLICKHOUSE_WORKER_PASSWORD:?")
    assert worker["TOKENLORD_WORKER_INIT_DB"] == "false", "the worker user has no DDL rights: init-db owns the schema"
    ds = load(REPO / "deploy/grafana/provisioning/datasources/tokenlord.yml")["datasources"]
    ch = next(d for d in ds if d["type"] == "grafana-clickhouse-datasource")
    assert ch["jsonData"]["username"] == init["TOKENLORD_BI_USER"] != admin["CLICKHOUSE_USER"]
    assert init["TOKENLORD_BI_PASSWORD"].startswith("${CLICKHOUSE_BI_PASSWORD:?")
    assert services["grafana"]["environment"]["CLICKHOUSE_BI_PASSWORD"].startswith("${CLICKHOUSE_BI_PASSWORD:?")
    # The admin password reaches the ClickHouse server and the one-shot init-db only.
    for name, svc in services.items():
        if name not in ("clickhouse", "init-db"):
            assert "CLICKHOUSE_ADMIN_PASSWORD" not in json.dumps(svc), name
    # Each setting init-db and the worker get is one the CLI knows.
    from tokenlord.settings import FIELDS

    known = {f.env for f in FIELDS}
    for name in ("init-db", "worker"):
        assert set(services[name]["environment"]) <= known, name


def test_init_db_is_a_one_shot_the_worker_and_grafana_wait_for(compose: dict[str, Any]) -> None:
    services = compose["services"]
    init = services["init-db"]
    assert init["command"] == ["init-db"] and init["restart"] == "no" and "ports" not in init
    assert init["depends_on"]["clickhouse"] == {"condition": "service_healthy"}
    for name in ("worker", "grafana"):
        assert services[name]["depends_on"]["init-db"] == {"condition": "service_completed_successfully"}, name
    # /ping: the server's image replaces the default user, so an unauthenticated client query would fail.
    assert "http://127.0.0.1:8123/ping" in services["clickhouse"]["healthcheck"]["test"]


def test_prometheus_scrapes_the_workers_web_port(compose: dict[str, Any]) -> None:
    env = compose["services"]["worker"]["environment"]
    assert env["TOKENLORD_WEB_BIND"] == "0.0.0.0", "inside a container the web server must listen on all interfaces"
    port = int(env["TOKENLORD_WEB_PORT"])
    prom = load(REPO / "deploy/prometheus/prometheus.yml")
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    job = jobs["tokenlord-worker"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = [(name, sd["port"]) for sd in job["dns_sd_configs"] for name in sd["names"]]
    assert targets == [("worker", port)]
    # The worker's healthcheck asks the same port.
    assert f"127.0.0.1:{port}/readyz" in " ".join(compose["services"]["worker"]["healthcheck"]["test"])


def test_datasources_and_dashboard_refer_to_each_other(compose: dict[str, Any]) -> None:
    ds = load(REPO / "deploy/grafana/provisioning/datasources/tokenlord.yml")["datasources"]
    uids = {d["uid"]: d["type"] for d in ds}
    assert set(uids.values()) == {"prometheus", "grafana-clickhouse-datasource"}
    ch = next(d for d in ds if d["type"] == "grafana-clickhouse-datasource")
    assert ch["jsonData"]["host"] == "clickhouse" and ch["jsonData"]["protocol"] == "http"
    assert ch["secureJsonData"]["password"] == "$CLICKHOUSE_BI_PASSWORD"  # from the environment, never in the file
    assert "CLICKHOUSE_BI_PASSWORD" in compose["services"]["grafana"]["environment"]
    providers = load(REPO / "deploy/grafana/provisioning/dashboards/tokenlord.yml")["providers"]
    mounts = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"] if v.startswith("./"))
    assert mounts["./deploy/grafana/dashboards"] == providers[0]["options"]["path"]
    dash = json.loads(DASHBOARD.read_text())
    for panel in dash["panels"]:
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in uids, panel["title"]
            assert uids[target["datasource"]["uid"]] == target["datasource"]["type"]


def panels_of(kind: str) -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    return [
        (p["title"], t["rawSql"] if kind == "sql" else t["expr"])
        for p in dash["panels"]
        for t in p["targets"]
        if ("rawSql" in t) == (kind == "sql")
    ]


def test_dashboard_covers_the_issue() -> None:
    titles = " | ".join(t for t, _ in panels_of("sql") + panels_of("promql")).lower()
    for wanted in ("raw", "effective", "waste by reason", "hourly tokens", "cost", "lag", "flush latency", "rejected"):
        assert wanted in titles, wanted


def test_promql_uses_only_exported_metrics() -> None:
    exported = set()
    for name, (kind, _) in metrics.METRICS.items():
        exported |= {
            "counter": {f"{name}_total"},
            "histogram": {f"{name}_bucket", f"{name}_sum", f"{name}_count"},
            "gauge": {name},
            "info": {f"{name}_info"},
        }[kind]
    exprs = panels_of("promql")
    assert exprs
    for title, expr in exprs:
        used = set(re.findall(r"\btokenlord_[a-z_]+", expr))
        assert used and used <= exported, (title, used - exported)


# Grafana ClickHouse macros, replaced by what they expand to over a fixed range.
MACROS = [
    (re.compile(r"\$__timeFilter\((\w+)\)"), r"\1 >= toDateTime(1790000000) AND \1 <= toDateTime(1800000000)"),
    (re.compile(r"\$__toTime"), "toDateTime(1800000000)"),
    (re.compile(r"\$__fromTime"), "toDateTime(1790000000)"),
]

RUN_SQL = """
import json, sys
from tokenlord.store import Store
store = Store.connect("chdb://memory", "tokenlord")
store.init_db()
for sql in json.load(sys.stdin):
    store.query_rows(sql)
print("ok")
"""


def test_dashboard_sql_runs_against_the_schema() -> None:
    queries = []
    for title, sql in panels_of("sql"):
        for pattern, repl in MACROS:
            sql = pattern.sub(repl, sql)
        assert "$" not in sql, f"{title}: unexpanded macro in {sql}"
        assert re.search(r"\btokenlord\.(_\w+)", sql) is None, f"{title}: reads an internal table"
        queries.append(sql)
    # In a child process: chDB allows one data directory per process, and other tests hold theirs.
    out = subprocess.run(
        [sys.executable, "-c", RUN_SQL], input=json.dumps(queries), capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


# ---- `docker compose config` (the real compose CLI) ----------------------------------------------
# `make compose-check` (part of `make lint`) builds the compose plugin once into the cache when
# the docker CLI has none; this test uses whichever exists and skips when neither does.
COMPOSE_VERSION = next(
    line.split(":-", 1)[1].rstrip("}")
    for line in (REPO / "scripts/compose-check.sh").read_text().splitlines()
    if line.startswith("COMPOSE_VERSION=")
)


def compose_env() -> dict[str, str] | None:
    """Environment under which `docker compose` works, or None (no docker CLI / no plugin)."""
    import os
    import shutil

    if shutil.which("docker") is None:
        return None
    env = dict(os.environ)
    if subprocess.run(["docker", "compose", "version"], env=env, capture_output=True).returncode == 0:
        return env
    cache = Path(os.environ.get("TOKENLORD_CACHE_DIR") or Path.home() / ".cache/tokenlord").expanduser()
    config = cache / f"compose-{COMPOSE_VERSION}" / "docker-config"
    if (config / "cli-plugins/docker-compose").is_file():
        return {**env, "DOCKER_CONFIG": str(config)}
    return None


def compose_config(path: Path, env: dict[str, str], env_file: Path = ENV_EXAMPLE) -> subprocess.CompletedProcess[str]:
    """`docker compose config` with the passwords of ``env_file`` only (never a developer's .env)."""
    env = {k: v for k, v in env.items() if k not in REQUIRED}
    return subprocess.run(
        ["docker", "compose", "--env-file", str(env_file), "-f", str(path), "config", "-q"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def compose_cli() -> dict[str, str]:
    env = compose_env()
    if env is None:
        pytest.skip("no docker CLI with a compose plugin: `make compose-check` builds one (needs go)")
    return env


def test_docker_compose_config_accepts_the_file(compose_cli: dict[str, str]) -> None:
    out = compose_config(REPO / "docker-compose.yml", compose_cli)
    assert out.returncode == 0 and not (out.stdout + out.stderr).strip(), out.stdout + out.stderr


def test_docker_compose_config_is_a_real_check(compose_cli: dict[str, str], tmp_path: Path) -> None:
    """The same check rejects broken copies: an unknown key, a dependency on a missing service."""
    for src in ("deploy", "Dockerfile"):  # relative paths resolve against the file's directory
        (tmp_path / src).symlink_to(REPO / src)
    original = (REPO / "docker-compose.yml").read_text()
    for old, new, wanted in (
        ('command: ["worker"]\n', 'command: ["worker"]\n    restart_policy: always\n', "restart_policy"),
        ("depends_on: [worker]", "depends_on: [wrker]", "wrker"),
    ):
        assert old in original
        broken = tmp_path / "docker-compose.yml"
        broken.write_text(original.replace(old, new, 1))
        out = compose_config(broken, compose_cli)
        assert out.returncode != 0 and wanted in out.stderr, (new, out.stderr)


def test_docker_compose_config_refuses_a_missing_password(compose_cli: dict[str, str], tmp_path: Path) -> None:
    for var in REQUIRED:
        env_file = tmp_path / f"without-{var}.env"
        env_file.write_text("".join(f"{v}=x{i}\n" for i, v in enumerate(REQUIRED) if v != var))
        out = compose_config(REPO / "docker-compose.yml", compose_cli, env_file)
        assert out.returncode != 0, var
        assert f"required variable {var} is missing a value: set {var} (see .env.example)" in out.stderr, out.stderr


def test_alert_rules_are_loaded_and_use_only_exported_metrics(compose: dict[str, Any]) -> None:
    prom = load(REPO / "deploy/prometheus/prometheus.yml")
    assert prom["rule_files"] == ["alerts.yml"]
    mounts = dict(v.split(":")[:2] for v in compose["services"]["prometheus"]["volumes"] if v.startswith("./"))
    assert mounts["./deploy/prometheus/alerts.yml"] == "/etc/prometheus/alerts.yml"
    rules = [r for g in load(REPO / "deploy/prometheus/alerts.yml")["groups"] for r in g["rules"]]
    assert {"TokenlordBudgetNear", "TokenlordBudgetOver"} <= {r["alert"] for r in rules}
    exported = {n if k == "gauge" else f"{n}_total" for n, (k, _) in metrics.METRICS.items()}
    for r in rules:
        used = set(re.findall(r"\btokenlord_[a-z_]+", r["expr"]))
        assert used and used <= exported, (r["alert"], used - exported)
