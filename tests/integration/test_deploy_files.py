"""What deploy/ ships works as an operator would use it: the alert rules and the scrape
config pass promtool, the alerts fire on synthetic series, every query of the rules and the
dashboard names a metric TokenForge registers, every command the systemd units, the
Procfile and the launcher run is a real ``tokenforge`` command line, Prometheus scrapes the
ports the launcher assigns, and the launcher stops its processes on Ctrl-C / SIGTERM."""

from __future__ import annotations

import configparser
import importlib
import json
import os
import re
import selectors
import shlex
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import typer
import yaml
from dotenv import dotenv_values
from prometheus_client import REGISTRY

from tests.conftest import require_tool
from tests.support.server import free_port
from tokenforge.cli.main import app
from tokenforge.config import Settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
SYSTEMD = DEPLOY / "systemd"
PROCFILE = DEPLOY / "cluster" / "Procfile"
RUN_SH = DEPLOY / "cluster" / "run.sh"
DASHBOARD = DEPLOY / "grafana" / "tokenforge.json"
ENV_EXAMPLE = SYSTEMD / "tokenforge.env.example"
UNITS = sorted(SYSTEMD.glob("*.service"))
#: Modules that create TokenForge's Prometheus metrics.
METRIC_MODULES = (
    "tokenforge.observability.metrics",
    "tokenforge.jobs.worker",
    "tokenforge.jobs.sweeper",
    "tokenforge.chains.evm.keeper",
    "tokenforge.chains.evm.key_pool",
)
#: Series Prometheus itself writes for every target.
PROMETHEUS_SERIES = {"up"}


def promtool() -> str:
    path = shutil.which("promtool")
    require_tool("promtool", path, "apt-get install -y prometheus")
    assert path is not None
    return path


def run_tool(*args: str | Path, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=120)


# -- Prometheus and Grafana ---------------------------------------------------------------


def alert_rules() -> list[dict]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_panels() -> list[dict]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects (not functions, keywords or labels)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)  # label matchers, ranges
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)  # label lists
    names = set()
    for match in re.finditer(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*", expr):
        is_function = expr[match.end() :].lstrip().startswith("(")
        if not is_function and match.group().lower() not in _KEYWORDS:
            names.add(match.group())
    return names


def registered_series() -> set[str]:
    """Every series name TokenForge's metrics expose (counters ``_total``, histograms
    ``_bucket``/``_sum``/``_count``, ...), read from the prometheus-client registry."""
    for module in METRIC_MODULES:
        importlib.import_module(module)
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
    suffixes["summary"] = ("", "_sum", "_count")
    return {
        family.name + suffix
        for family in REGISTRY.collect()
        if family.name.startswith("tokenforge_")
        for suffix in suffixes.get(family.type, ("",))
    }


def dashboard_exprs() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every dashboard query, template variables included."""
    queries = [(p["title"], t["expr"]) for p in dashboard_panels() for t in p["targets"]]
    for var in json.loads(DASHBOARD.read_text())["templating"]["list"]:
        if var["type"] == "query":
            inner = re.fullmatch(r"label_values\((.+),\s*\w+\)", var["definition"])
            assert inner, var["definition"]
            queries.append((f"variable {var['name']}", inner.group(1)))
    return queries


def test_alert_rules_and_scrape_config_pass_promtool():
    tool = promtool()
    rules = run_tool(tool, "check", "rules", "alerts.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in rules.stdout
    config = run_tool(tool, "check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr
    assert "SUCCESS: 1 rule files found" in config.stdout  # prometheus.yml loads alerts.yml


def test_alerts_fire_on_synthetic_series():
    tool = promtool()
    result = run_tool(tool, "test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    tested = {
        case["alertname"]
        for test in yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert {"TokenForgeLaunchErrorRateHigh", "TokenForgeOutboxLagHigh"} <= tested


def test_every_alert_waits_has_a_severity_and_tells_the_operator_where_to_look():
    rules = alert_rules()
    for metric in ("launches_total", "job_state_seconds", "queue_depth", "outbox_lag_seconds", "rpc_breaker_open"):
        assert any(f"tokenforge_{metric}" in r["expr"] for r in rules), metric
    assert any("tokenforge_deployer_low_balance" in r["expr"] for r in rules)
    assert any("tokenforge_dependency_up" in r["expr"] for r in rules)
    assert any(re.search(r"\bup\{", r["expr"]) for r in rules)
    hints = ("tokenforge jobs dead", "tokenforge jobs retry", "/readyz", "/healthz", "/v1/chains", "tokenforge worker")
    for rule in rules:
        assert re.fullmatch(r"\d+m", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert any(h in rule["annotations"]["description"] for h in hints), rule["alert"]


def test_alert_and_dashboard_queries_name_only_registered_metrics():
    known = registered_series() | PROMETHEUS_SERIES
    used = [("alerts.yml " + r["alert"], r["expr"]) for r in alert_rules()] + dashboard_exprs()
    series_tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    used += [("alerts_test.yml", s["series"]) for t in series_tests for s in t["input_series"]]
    unknown = sorted({(where, name) for where, expr in used for name in metric_names(expr) if name not in known})
    assert not unknown, f"metrics TokenForge does not register: {unknown}"
    assert all(metric_names(expr) for _, expr in used), "a query selects no metric"


def test_the_dashboard_shows_every_metric_tokenforge_registers():
    shown = {name for _, expr in dashboard_exprs() for name in metric_names(expr)}
    families = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in registered_series()}
    missing = sorted(f for f in families if not any(re.sub(r"_(total|bucket)$", "", s) == f for s in shown))
    assert not missing, f"registered but not on the dashboard: {missing}"


def test_dashboard_queries_are_valid_promql(tmp_path):
    tool = promtool()
    rules = [
        {"record": f"dashboard:query_{i}", "expr": expr.replace("$__rate_interval", "5m").replace("$chain", ".*")}
        for i, (_, expr) in enumerate(dashboard_exprs())
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run_tool(tool, "check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_panels_use_the_datasource_variable_and_do_not_overlap():
    dashboard = json.loads(DASHBOARD.read_text())
    assert {v["name"] for v in dashboard["templating"]["list"]} >= {"datasource", "chain"}
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        g = panel["gridPos"]
        area = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not area & cells, f"{panel['title']} overlaps another panel"
        assert g["x"] + g["w"] <= 24
        cells |= area
    for panel in dashboard_panels():
        assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}", panel["title"]


# -- commands the units, the Procfile and the launcher run ------------------------------


def env_example() -> dict[str, str]:
    return {k: v or "" for k, v in dotenv_values(ENV_EXAMPLE).items()}


def read_unit(path: Path) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    unit.read(path)
    return unit


def procfile() -> dict[str, str]:
    lines = (line.partition(":") for line in PROCFILE.read_text().splitlines() if re.match(r"^[\w-]+:", line))
    return {name: command.strip() for name, _, command in lines}


def tokenforge_args(command: str, instance: str = "9111") -> list[str]:
    """The arguments after ``tokenforge`` in a command line, with systemd's ``%i`` and the
    environment file's ``${VAR}`` filled in as systemd would."""
    env = env_example()
    command = command.replace("%i", instance)
    command = re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], command)
    argv = shlex.split(command.lstrip("-@+!:"))
    assert Path(argv[0]).name == "tokenforge", command
    return argv[1:]


def cli_problem(args: list[str]) -> str | None:
    """Why ``tokenforge ARGS`` would not parse (unknown subcommand or option, bad value), or None."""
    command = typer.main.get_command(app)
    path = ["tokenforge"]
    while hasattr(command, "commands"):
        if not args or args[0] not in command.commands:
            return f"{' '.join(path)} has no subcommand {args[:1]}"
        path.append(args[0])
        command, args = command.commands[args[0]], args[1:]
    try:
        command.make_context(" ".join(path), list(args))
    except typer.TyperException as exc:  # click's usage errors, as Typer ships click
        return f"{' '.join(path)}: {exc}"
    return None


def launched_commands() -> list[tuple[str, str]]:
    """(where, command line) of every ``tokenforge`` command deploy/ runs."""
    found = []
    for path in UNITS:
        found += [(path.name, line) for line in read_unit(path)["Service"]["ExecStart"].splitlines()]
    found += [(f"Procfile {name}", command) for name, command in procfile().items()]
    found += [("run.sh", line.strip()) for line in RUN_SH.read_text().splitlines() if line.startswith("tokenforge ")]
    return found


def test_every_command_deploy_runs_exists_with_its_options():
    commands = launched_commands()
    problems = [f"{where}: {problem}" for where, line in commands if (problem := cli_problem(tokenforge_args(line)))]
    assert not problems, "\n".join(problems)
    run = {" ".join(tokenforge_args(line)[:1]) for _, line in commands}
    assert run >= {"migrate", "api", "relay", "worker", "sweeper", "devnet"}


def test_a_wrong_option_would_be_caught():
    assert cli_problem(["worker", "--health-port", "9111", "--no-sweeper"]) is None
    assert "--concurency" in (cli_problem(["worker", "--concurency", "8"]) or "")
    assert cli_problem(["jobs", "resurrect"])
    assert cli_problem(["relay", "--health-port", "not-a-port"])


def test_the_procfile_runs_the_cluster_and_prometheus_scrapes_its_ports():
    processes = procfile()
    assert "--workers 2" in processes["api"]
    roles = [tokenforge_args(c)[0] for c in processes.values()]
    assert sorted(roles) == ["api", "devnet", "relay", "relay", "worker", "worker"]

    def port_of(command: str) -> str:
        match = re.search(r"--(?:health-)?port[ =](\d+)", command)
        assert match, command
        return match.group(1)

    launched: dict[str, set[str]] = {}
    for command in processes.values():
        role = tokenforge_args(command)[0]
        if role != "devnet":
            launched.setdefault(f"tokenforge-{role}", set()).add(f"127.0.0.1:{port_of(command)}")
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    scraped = {
        job["job_name"]: {t for static in job["static_configs"] for t in static["targets"]}
        for job in config["scrape_configs"]
    }
    assert scraped == launched
    assert config["rule_files"] == ["alerts.yml"]
    assert all(job["relabel_configs"][0]["target_label"] == "host" for job in config["scrape_configs"])


# -- systemd --------------------------------------------------------------------------------


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)\s*(s|min)?", value.strip())
    assert match, value
    return int(match.group(1)) * (60 if match.group(2) == "min" else 1)


def test_units_drain_restart_and_run_hardened_after_the_migration():
    names = {p.name for p in UNITS}
    assert names == {
        "tokenforge-migrate.service",
        "tokenforge-api.service",
        "tokenforge-relay@.service",
        "tokenforge-worker@.service",
        "tokenforge-sweeper.service",
    }
    env = env_example()
    drain_s = float(env.get("TOKENFORGE_DRAIN_TIMEOUT_S") or Settings.model_fields["drain_timeout_s"].default)
    for path in UNITS:
        unit = read_unit(path)
        service = unit["Service"]
        assert service["EnvironmentFile"] == "/etc/tokenforge/tokenforge.env", path.name
        assert service.get("User") == "tokenforge" or service.get("DynamicUser") == "yes", path.name
        assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict", path.name
        writable = service["ReadWritePaths"].split()
        for directory in (env["TOKENFORGE_DATA_DIR"], env["TOKENFORGE_METRICS_DIR"]):
            assert any(directory.startswith(w) for w in writable), f"{path.name}: {directory} is read-only"
        if path.name == "tokenforge-migrate.service":
            assert service["Type"] == "oneshot" and service["RemainAfterExit"] == "yes"
            continue
        assert "tokenforge-migrate.service" in unit["Unit"]["Requires"].split(), path.name
        assert "tokenforge-migrate.service" in unit["Unit"]["After"].split(), path.name
        assert service["Restart"] == "on-failure" and service["KillSignal"] == "SIGTERM", path.name
        assert _seconds(service["TimeoutStopSec"]) > drain_s + 10, f"{path.name} kills before the drain ends"


def test_units_pass_systemd_analyze_verify(tmp_path):
    tool = shutil.which("systemd-analyze")
    require_tool("systemd-analyze", tool, "apt-get install -y systemd")
    assert tool is not None
    fake = tmp_path / "tokenforge"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    for path in UNITS:  # verify checks that ExecStart's program exists: point it at a stand-in
        text = re.sub(r"(?m)^(ExecStart=)\S*tokenforge\b", rf"\g<1>{fake}", path.read_text())
        (tmp_path / path.name).write_text(text)
    instances = [p.name.replace("@.", "@9111.") for p in UNITS]
    result = run_tool(tool, "verify", "--man=no", *[f"./{name}" for name in instances], cwd=tmp_path)
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr


def test_the_environment_example_is_valid_and_holds_placeholders_only(monkeypatch):
    for key in list(os.environ):
        if key.startswith("TOKENFORGE_"):
            monkeypatch.delenv(key)
    env = env_example()
    settings = Settings(_env_file=ENV_EXAMPLE)
    assert settings.broker_url.startswith("amqp://") and settings.cache_url.startswith("redis://")
    assert settings.resolved_database_url.startswith("postgresql+asyncpg://")
    used_by_units = {v for p in UNITS for v in re.findall(r"\$\{(\w+)\}", p.read_text())}
    assert used_by_units <= set(env)
    fields = {f"TOKENFORGE_{name.upper()}" for name in Settings.model_fields}
    assert set(env) - used_by_units <= fields, "the example sets variables TokenForge does not read"
    for key, value in env.items():
        for password in re.findall(r"://[^/@\s]*:([^@/\s]*)@", value):
            assert password.startswith("change-me"), key
        if re.search(r"TOKEN|SECRET|PASSWORD|KEY$", key.removeprefix("TOKENFORGE_")):
            assert "change-me" in value, key
        for host in re.findall(r"https?://([^/:\"]+)", value):
            assert host.endswith((".invalid", ".internal")), f"{key}: {host} is not a placeholder host"


# -- the launcher -----------------------------------------------------------------------------

FAKE_PROCESS = """\
import signal, socket, sys, os
name, port, exit_code = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if port:
    listener = socket.create_server(("127.0.0.1", port))
signal.signal(signal.SIGTERM, lambda *_: (print("drained", flush=True), sys.exit(0)))
print(f"ready pid={os.getpid()}", flush=True)
if exit_code:
    sys.exit(exit_code)
while True:
    signal.pause()
"""


@pytest.fixture
def launcher(tmp_path):
    """run.sh in a copy of the tree whose Procfile starts stand-ins and whose ``tokenforge``
    only answers ``migrate``; services "answer" on a socket this test holds open."""

    def make(procfile_lines: list[str]) -> tuple[list[str], dict[str, str]]:
        tree = tmp_path / "tree"
        (tree / "deploy" / "cluster").mkdir(parents=True)
        shutil.copy(RUN_SH, tree / "deploy" / "cluster" / "run.sh")
        (tree / "fake.py").write_text(FAKE_PROCESS)
        (tree / "deploy" / "cluster" / "Procfile").write_text("\n".join(procfile_lines) + "\n")
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (bin_dir / "tokenforge").write_text('#!/bin/sh\necho "tokenforge $*: done"\n')
        (bin_dir / "tokenforge").chmod(0o755)
        service = f"127.0.0.1:{held.getsockname()[1]}"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TOKENFORGE_")},
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "TOKENFORGE_DATA_DIR": str(tmp_path / "data"),
            "TOKENFORGE_DATABASE_URL": f"postgresql+asyncpg://postgres@{service}/x",
            "TOKENFORGE_BROKER_URL": f"amqp://guest:secret@{service}/",
            "TOKENFORGE_CACHE_URL": f"redis://{service}/0",
        }
        return ["bash", str(tree / "deploy" / "cluster" / "run.sh")], env

    held = socket.create_server(("127.0.0.1", 0))
    yield make
    held.close()


def _read_until(proc: subprocess.Popen, done, timeout_s: float = 30) -> list[str]:
    """Complete lines of ``proc``'s output until ``done(lines)`` holds or it ends."""
    assert proc.stdout is not None
    fd, buffer = proc.stdout.fileno(), b""
    selector = selectors.DefaultSelector()
    selector.register(fd, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout_s
    while not done(buffer.decode().splitlines()) and time.monotonic() < deadline:
        if selector.select(timeout=deadline - time.monotonic()):
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buffer += chunk
    return buffer.decode().splitlines()


def _pids(lines: list[str]) -> list[int]:
    return [int(m.group(1)) for line in lines if (m := re.search(r"ready pid=(\d+)", line))]


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_the_launcher_migrates_prefixes_output_and_stops_everything_on_a_signal(launcher, sig, status):
    devnet_port = free_port()
    argv, env = launcher(
        [
            f"devnet: python3 fake.py devnet {devnet_port} 0 --port {devnet_port}",
            "relay1: python3 fake.py relay1 0 0",
            "worker1: python3 fake.py worker1 0 0",
        ]
    )
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        lines = _read_until(proc, lambda seen: len(_pids(seen)) == 3)
        assert len(_pids(lines)) == 3, lines
        assert lines[0] == "tokenforge migrate: done"  # before any process starts
        assert {line.split("|")[0].strip() for line in lines[1:]} == {"devnet", "relay1", "worker1"}
        proc.send_signal(sig)
        lines += proc.communicate(timeout=30)[0].decode().splitlines()
    finally:
        proc.kill()
    assert proc.returncode == status
    assert sorted(line for line in lines if line.endswith("drained")) == [
        "devnet  | drained",
        "relay1  | drained",
        "worker1 | drained",
    ]
    for pid in _pids(lines):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert "secret" not in "\n".join(lines)


def test_the_launcher_stops_the_others_when_one_process_exits(launcher):
    devnet_port = free_port()
    argv, env = launcher(
        [f"devnet: python3 fake.py devnet {devnet_port} 0 --port {devnet_port}", "worker1: python3 fake.py w 0 3"]
    )
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 3
    assert "run.sh: worker1 exited with status 3; stopping the others" in result.stderr
    assert "devnet  | drained" in result.stdout


def test_the_launcher_names_a_service_that_does_not_answer(launcher):
    argv, env = launcher(["devnet: python3 fake.py devnet 0 0 --port 1"])
    env["TOKENFORGE_BROKER_URL"] = f"amqp://guest:secret@127.0.0.1:{free_port()}/"
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "RabbitMQ does not answer on 127.0.0.1:" in result.stderr
    assert "secret" not in result.stderr and "migrate" not in result.stdout
