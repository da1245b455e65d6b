"""Facts about deploy/ and docker-compose.yml that the e2e tests compare with the code."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from newsflow.settings import documented_settings, env_vars
from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
RULES = DEPLOY / "prometheus" / "rules" / "newsflow.yml"
RULE_TESTS = DEPLOY / "prometheus" / "tests" / "newsflow_test.yml"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
# Ours and the process collectors' (registry.py); the monitoring stack's own (prometheus_, alertmanager_) are not.
METRIC = re.compile(r"\b(?:newsflow|process)_[a-z0-9_]+")


# What an operator must add to .env.example before the stack starts (no default on purpose).
REQUIRED_SECRETS = {"GRAFANA_ADMIN_PASSWORD": "only-for-the-test"}


def compose_run(env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `docker-compose config` on the compose file with .env.example and `env` set."""
    clean = {k: v for k, v in os.environ.items() if k not in REQUIRED_SECRETS}
    return subprocess.run(
        [
            "docker-compose",
            "-f",
            str(ROOT / "docker-compose.yml"),
            "--env-file",
            str(ROOT / ".env.example"),
            "config",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**clean, **(env or {})},
    )


def compose_config() -> dict[str, Any]:
    """Return the compose file as docker-compose itself resolves it (validation included)."""
    out = compose_run(REQUIRED_SECRETS)
    assert out.returncode == 0, out.stderr
    return dict(yaml.safe_load(out.stdout))


def code_env_vars() -> dict[str, Any]:
    """Return {variable: default} for every variable the services read."""
    return {name: default for cls in documented_settings() for name, default, _ in env_vars(cls)}


def dashboard_metric_names() -> set[str]:
    names: set[str] = set()
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                names |= set(METRIC.findall(target["expr"]))
    return names


def rule_metric_names() -> set[str]:
    names: set[str] = set()
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            names |= set(METRIC.findall(rule["expr"]))
    return names


def exported_names(exposition: str) -> set[str]:
    """Return the sample names of a Prometheus text exposition (with _total, _bucket, ... suffixes)."""
    return {
        line.split("{")[0].split(" ")[0]
        for line in exposition.splitlines()
        if line and not line.startswith("#")
    }


def run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
