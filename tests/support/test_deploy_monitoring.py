"""The Prometheus and Grafana files in deploy/monitoring/ refer to what really exists:
metrics this code base registers and services of the compose deployment."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

import cityos.app
import cityos_kernel.bus.consumer
import cityos_support.layer

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
#: Metrics another layer or an exporter provides (not registered by this process).
EXTERNAL = {"up"}


def registered_metric_names() -> set[str]:
    assert cityos.app and cityos_kernel.bus.consumer and cityos_support.layer  # registrations
    # Every name each collector exposes (counters' _total, histograms' _bucket, ...).
    names: set[str] = set().union(*REGISTRY._collector_to_names.values())
    return names


def metric_names_in(expression: str) -> set[str]:
    without_labels = re.sub(r"\{[^}]*\}", "", expression)
    words = set(re.findall(r"\b(cityos_[a-z_]+|up)\b", without_labels))
    return words


def test_every_dashboard_and_alert_expression_uses_real_metrics() -> None:
    known = registered_metric_names() | EXTERNAL
    dashboard = json.loads((MONITORING / "grafana/dashboards/cityos-overview.json").read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    alerts = yaml.safe_load((MONITORING / "cityos-alerts.yml").read_text())
    expressions += [rule["expr"] for group in alerts["groups"] for rule in group["rules"]]
    assert len(expressions) > 10
    unknown = {name for expr in expressions for name in metric_names_in(expr)} - known
    assert not unknown, f"metrics nobody registers: {sorted(unknown)}"


def test_prometheus_scrapes_every_layer_of_the_compose_deployment() -> None:
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    targets = {
        target.split(":")[0]
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    compose = yaml.safe_load((ROOT / "deploy/compose/compose.yaml").read_text())
    assert {"support", "knowledge", "acquisition", "interoperability"} <= set(compose["services"])
    assert {"support", "knowledge", "acquisition", "interoperability"} <= targets
    assert all(job["metrics_path"] == "/metrics" for job in config["scrape_configs"])
