"""docker-compose.yml, Prometheus and Grafana files checked against each other and against the code."""

from __future__ import annotations

import dataclasses
import json

import yaml

from newsflow.settings import KafkaSettings
from tests.e2e.deploy_helpers import (
    DASHBOARDS,
    DEPLOY,
    PROMETHEUS_CONFIG,
    RULE_TESTS,
    code_env_vars,
    compose_config,
    run,
)

SERVICES_WITH_CODE = ("topic-init", "producer", "worker")


def test_compose_file_is_valid_and_has_the_stack():
    services = compose_config()["services"]
    assert set(services) == {"kafka", "topic-init", "producer", "worker", "prometheus", "grafana"}
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "healthcheck" in services["kafka"]
    assert "container_name" not in services["worker"] and "ports" not in services["worker"]  # --scale works


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
    assert targets == {"worker": 9101, "producer": 9102}
    for service, port in targets.items():
        env = services[service]["environment"]
        assert int(env[f"NEWSFLOW_{service.upper()}_METRICS_PORT"]) == port
        assert str(port) in [str(p) for p in services[service]["expose"]]


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
