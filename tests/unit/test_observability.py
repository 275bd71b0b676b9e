"""The alert rules and the dashboard hold together: promtool accepts them, the alerts fire
when they should, and every metric they use is one the services really export."""

import importlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "sotong.json"
BUILTIN = {"up"}
METRIC = re.compile(r"\b((?:sotong|faststream)_[a-zA-Z0-9_:]+)")


def promtool(*args: str, cwd: Path = PROMETHEUS) -> str:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: apt-get install prometheus (.ci/run installs it)"
    done = subprocess.run([tool, *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def exported() -> set[str]:
    """Every sample name the four services' registries can expose."""
    names: set[str] = set()
    for service in ("intake", "routing", "tracker", "notifier"):
        app = importlib.import_module(f"{service}.app").create_app()
        registry: CollectorRegistry = app.state.runtime.registry
        for family in registry.collect():
            suffixes = {
                "counter": ("_total",),
                "histogram": ("_bucket", "_sum", "_count"),
                "gauge": ("",),
                "summary": ("_sum", "_count", ""),
            }.get(family.type, ("",))
            names |= {family.name + suffix for suffix in suffixes}
    return names


def expressions() -> list[str]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    exprs = [str(rule["expr"]) for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    exprs += [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    return exprs


@pytest.mark.service  # runs promtool
def test_promtool_accepts_the_config_and_the_rules() -> None:
    assert "SUCCESS" in promtool("check", "config", "prometheus.yml")
    assert "7 rules found" in promtool("check", "rules", "alerts.yml")


@pytest.mark.service  # runs promtool
def test_the_alerts_fire_when_they_should() -> None:
    assert "SUCCESS" in promtool("test", "rules", "alerts.test.yml")


def test_every_metric_an_alert_or_panel_uses_is_exported() -> None:
    names = exported()
    used = {m for expr in expressions() for m in METRIC.findall(expr)}
    assert used, "no metric found in the rules and panels"
    assert used - names == set(), f"not exported by any service: {sorted(used - names)}"


@pytest.mark.parametrize(
    "label", ["complaint_id", "phone", "name", "address", "resident", "receipt_number"]
)
def test_no_metric_label_can_carry_personal_data_or_ids(label: str) -> None:
    for service in ("intake", "routing", "tracker", "notifier"):
        app = importlib.import_module(f"{service}.app").create_app()
        for collector in list(app.state.runtime.registry._collector_to_names):
            labels = getattr(collector, "_labelnames", ())
            assert label not in labels, (service, collector)


def test_the_dashboard_is_provisioned_from_its_folder() -> None:
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/sotong.yml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    datasource = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    uid = datasource["datasources"][0]["uid"]
    dashboard = json.loads(DASHBOARD.read_text())
    assert all(p["datasource"]["uid"] == uid for p in dashboard["panels"] if p["type"] != "row")
