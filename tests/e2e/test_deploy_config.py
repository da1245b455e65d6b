"""docker-compose.yml, Prometheus and Grafana files checked against each other and against the code."""

from __future__ import annotations

import dataclasses
import json
import re

import yaml

from newsflow.settings import KafkaSettings
from tests.e2e.deploy_helpers import (
    DASHBOARDS,
    DEPLOY,
    PROMETHEUS_CONFIG,
    REQUIRED_SECRETS,
    RULE_TESTS,
    code_env_vars,
    compose_config,
    compose_run,
    run,
)

SERVICES_WITH_CODE = ("topic-init", "producer", "worker", "web")


LONG_RUNNING = ("kafka", "producer", "worker", "web", "prometheus", "alertmanager", "grafana")


def test_compose_file_is_valid_and_has_the_stack():
    services = compose_config()["services"]
    assert set(services) == {*LONG_RUNNING, "topic-init"}
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "container_name" not in services["worker"] and "ports" not in services["worker"]  # --scale works


def test_every_long_running_service_is_healthchecked_limited_and_restarted():
    services = compose_config()["services"]
    for name in LONG_RUNNING:
        service = services[name]
        assert service["healthcheck"]["test"], name
        assert service.get("mem_limit") and service.get("cpus"), f"{name} has no resource limits"
        assert service["restart"] == "unless-stopped", name


def _bytes(size: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kmg]?)b?", size.lower()).groups()  # type: ignore[union-attr]
    return int(number) * 1024 ** "_kmg".index(unit or "_")


def test_the_brokers_heap_leaves_room_in_its_memory_limit():
    # The image's start script would take a 1 GiB heap: the whole default limit, an OOM kill.
    kafka = compose_config()["services"]["kafka"]
    heap = re.search(r"-Xmx(\w+)", kafka["environment"]["KAFKA_HEAP_OPTS"]).group(1)  # type: ignore[union-attr]
    assert _bytes(kafka["mem_limit"]) - _bytes(heap) >= 400 * 1024**2
    # The health check's JVM is not given the broker's heap.
    assert "KAFKA_HEAP_OPTS=-Xmx64m" in kafka["healthcheck"]["test"][1]


def test_grafana_keeps_its_data_and_reads_dashboards_where_provisioning_says():
    grafana = compose_config()["services"]["grafana"]
    assert any(v.startswith("grafana-data:/var/lib/grafana") for v in grafana["volumes"])
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/newsflow.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert any(v.endswith(f"deploy/grafana/dashboards:{path}:ro") for v in grafana["volumes"])
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(path + "/") and home.rsplit("/", 1)[1] in {d.name for d in DASHBOARDS}


def test_published_ports_bind_to_localhost_unless_configured():
    services = compose_config()["services"]
    published = {name: port for name, service in services.items() for port in service.get("ports", [])}
    assert set(published) == {"kafka", "web", "prometheus", "alertmanager", "grafana"}
    for name, port in published.items():  # host_ip:published:target/protocol
        assert port.startswith("127.0.0.1:"), (name, port)


def test_grafana_needs_a_password_and_is_not_open_to_anonymous_viewers():
    missing = compose_run()
    assert missing.returncode != 0 and "set GRAFANA_ADMIN_PASSWORD in .env" in missing.stderr
    env = compose_config()["services"]["grafana"]["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == REQUIRED_SECRETS["GRAFANA_ADMIN_PASSWORD"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


def test_host_consumers_reach_kafka_on_its_external_listener():
    kafka = compose_config()["services"]["kafka"]
    env = kafka["environment"]
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert advertised == {"PLAINTEXT": "kafka:9092", "EXTERNAL": "localhost:9094"}
    assert "EXTERNAL:PLAINTEXT" in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
    assert kafka["ports"] == ["127.0.0.1:9094:9094/tcp"]


def test_prometheus_sends_alerts_to_the_alertmanager_and_it_has_a_receiver():
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    targets = [
        t for am in config["alerting"]["alertmanagers"] for sc in am["static_configs"] for t in sc["targets"]
    ]
    assert targets == ["alertmanager:9093"]
    am = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    receivers = {r["name"]: r for r in am["receivers"]}
    assert am["route"]["receiver"] in receivers
    hook = receivers[am["route"]["receiver"]]["webhook_configs"][0]
    mounts = " ".join(compose_config()["services"]["alertmanager"]["volumes"])
    assert hook["url_file"] in mounts


def test_every_variable_compose_sets_is_read_by_the_code():
    known = code_env_vars()
    for name in SERVICES_WITH_CODE:
        env = compose_config()["services"][name]["environment"]
        unknown = sorted(k for k in env if k.startswith("NEWSFLOW_") and k not in known)
        assert unknown == [], f"{name} sets variables no settings class reads: {unknown}"


def test_compose_topics_are_the_code_defaults():
    defaults = KafkaSettings()
    env = compose_config()["services"]["worker"]["environment"]
    # every topic the code knows, so that a new one cannot be left out of the stack
    for field in (f.name for f in dataclasses.fields(KafkaSettings) if f.name.startswith("topic_")):
        assert env[f"NEWSFLOW_{field.upper()}"] == getattr(defaults, field)


def test_prometheus_scrapes_compose_services_on_their_metrics_ports():
    services = compose_config()["services"]
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    targets: dict[str, int] = {}
    for job in config["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            for name in sd["names"]:
                targets[name] = int(sd["port"])
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.split(":")
                if host != "localhost":
                    targets[host] = int(port)
    # The Alertmanager too: its failed deliveries to the webhook are an alert of their own.
    assert targets.pop("alertmanager") == 9093
    assert targets == {"worker": 9101, "producer": 9102, "web": 8080}
    for service, port in targets.items():
        env = services[service]["environment"]
        # The stories view serves /metrics beside its API, on its one port.
        setting = "NEWSFLOW_WEB_PORT" if service == "web" else f"NEWSFLOW_{service.upper()}_METRICS_PORT"
        assert int(env[setting]) == port
        assert str(port) in [str(p) for p in services[service]["expose"]]
        # Each service listens on loopback unless told otherwise: in a container, Prometheus
        # reaches it from another one, so the compose file must say so.
        host = {"web": "NEWSFLOW_WEB_HOST", "producer": "NEWSFLOW_PRODUCER_HOST"}.get(
            service, "NEWSFLOW_WORKER_METRICS_HOST"
        )
        assert env[host] == "0.0.0.0", service


def test_grafana_mounts_provisioning_and_dashboards_use_the_provisioned_datasource():
    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    assert DASHBOARDS
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == uid, panel["title"]
            assert panel["targets"], panel["title"]
    volumes = " ".join(compose_config()["services"]["grafana"]["volumes"])
    assert "deploy/grafana/provisioning" in volumes and "deploy/grafana/dashboards" in volumes


def test_promtool_accepts_the_config_and_the_rules_pass_their_tests():
    checked = run(["promtool", "check", "config", str(PROMETHEUS_CONFIG)])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = run(["promtool", "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_dashboard_query_is_valid_promql(tmp_path):
    # promtool parses PromQL in rule files: each panel's query as a recording rule.
    exprs = [
        t["expr"] for path in DASHBOARDS for p in json.loads(path.read_text())["panels"] for t in p["targets"]
    ]
    rules = {
        "groups": [
            {"name": "panels", "rules": [{"record": f"panel:q{i}", "expr": e} for i, e in enumerate(exprs)]}
        ]
    }
    (tmp_path / "panels.yml").write_text(yaml.safe_dump(rules))
    checked = run(["promtool", "check", "rules", str(tmp_path / "panels.yml")])
    assert checked.returncode == 0 and f"SUCCESS: {len(exprs)} rules found" in checked.stdout, (
        checked.stdout + checked.stderr
    )


def test_env_example_values_are_the_code_defaults():
    # `cp .env.example .env` must give the behaviour the README documents, not an old tuning.
    defaults = code_env_vars()
    example = {}
    for line in (DEPLOY.parent / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            example[name.strip()] = value.strip()
    checked = {name: value for name, value in example.items() if name in defaults}
    assert checked, "no variable of the code in .env.example"
    for name, value in checked.items():
        default = defaults[name]
        assert type(default)(value) == default, f"{name}={value} in .env.example, {default!r} in the code"


def test_every_variable_the_compose_file_reads_is_in_env_example_with_its_default():
    import re

    compose = (DEPLOY.parent / "docker-compose.yml").read_text()
    used = dict(re.findall(r"\$\{([A-Z_]+)(?::-([^}]*))?\}", compose))
    example = dict(
        line.split("=", 1)
        for line in (DEPLOY.parent / ".env.example").read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    )
    assert sorted(set(used) - set(example)) == []
    assert {k: v for k, v in used.items() if v and example[k] != v} == {}


def test_the_wheel_carries_the_schemas_and_the_commands(tmp_path):
    # What the image installs: the output contract must ship in the package, not stay in the checkout.
    import subprocess
    import sys
    import zipfile

    from tests.conftest import ROOT

    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("newsflow-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        for schema in (ROOT / "schemas").glob("*.schema.json"):
            assert zf.read(f"newsflow/schemas/{schema.name}") == schema.read_bytes()
        assert b'"openapi": "3.1.0"' in zf.read("newsflow/web/openapi.json")
        entry_points = next(n for n in zf.namelist() if n.endswith("entry_points.txt"))
        commands = zf.read(entry_points).decode()
    for command in (
        "newsflow-worker",
        "newsflow-producer",
        "newsflow-tail",
        "newsflow-schema",
        "newsflow-web",
    ):
        assert f"{command} = " in commands


def _lock_pins(text: str) -> dict[str, tuple[str, int]]:
    """requirements.lock as {normalized name: (version, number of hashes)}."""
    pins: dict[str, tuple[str, int]] = {}
    name = ""
    for line in text.splitlines():
        if re.match(r"^[A-Za-z0-9_.-]+==", line):
            name, version = line.split(" ")[0].split("==")
            name = re.sub(r"[-_.]+", "-", name).lower()
            pins[name] = (version, 0)
        elif line.strip().startswith("--hash=sha256:") and name:
            version, hashes = pins[name]
            pins[name] = (version, hashes + 1)
    return pins


def test_the_lock_pins_every_dependency_by_version_and_hash():
    import tomllib

    from tests.conftest import ROOT

    pins = _lock_pins((ROOT / "requirements.lock").read_text())
    assert len(pins) > 50
    unhashed = [name for name, (_, hashes) in pins.items() if not hashes]
    assert not unhashed, f"pinned without a hash: {unhashed}"
    direct = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for requirement in direct:
        name, version = requirement.split("==")
        name = re.sub(r"[-_.]+", "-", name).lower()
        assert pins.get(name, ("missing",))[0] == version, f"{requirement} is not what the lock pins"
    # The image builds the package without build isolation: its build backend must be locked too.
    assert "setuptools" in pins


def test_the_image_installs_only_hash_checked_files_on_a_digest_pinned_base():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    (base,) = re.findall(r"^ARG BASE=(\S+)$", dockerfile, re.M)
    assert re.fullmatch(r"python:3\.11[\w.-]*@sha256:[0-9a-f]{64}", base), base
    froms = re.findall(r"^FROM (\S+)", dockerfile, re.M)
    assert froms and all(f == "${BASE}" for f in froms), froms
    installs = re.findall(r"pip install ([^\n&]+)", dockerfile)
    assert len(installs) == 3
    for args in installs:
        assert "--require-hashes" in args or "--no-index" in args, args


def test_the_build_context_holds_what_the_image_copies_and_no_secrets_or_local_data():
    """.dockerignore lets in every path the Dockerfile copies from the context and keeps out what a
    working checkout holds besides (the compose .env with the Grafana password, the venv, Kafka's
    data, the inbox); git ignores the same secrets."""
    from pathlib import Path

    root = DEPLOY.parent
    rules = [
        ln.strip()
        for ln in (root / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]

    def in_context(path: str) -> bool:
        # Docker's reading: the last rule that matches decides; "!" lets a path back in.
        kept = True
        for rule in rules:
            pattern = rule.removeprefix("!").rstrip("/")
            if Path(path).match(pattern) or Path(path).parts[0] == pattern or pattern == "*":
                kept = rule.startswith("!")
        return kept

    dockerfile = (DEPLOY / "Dockerfile").read_text()
    copied = [
        src for line in re.findall(r"^COPY (?!--from)(.+)$", dockerfile, re.M) for src in line.split()[:-1]
    ]
    assert copied and all((root / src).exists() and in_context(src) for src in copied), copied
    for local in (
        ".env",
        ".venv",
        ".cache",
        "inbox",
        "out",
        "build",
        "secrets",
        "tests",
        "deploy/alertmanager/webhook_url",
    ):
        assert not in_context(local), local
    ignored = run(["git", "check-ignore", ".env", "secrets/url", "deploy/alertmanager/webhook_url"], cwd=root)
    assert ignored.stdout.split() == [".env", "secrets/url", "deploy/alertmanager/webhook_url"]
