"""The Prometheus and Grafana files of docker-compose.yml: they parse, and every metric the dashboard asks for
is one the services define (a renamed metric would leave an empty panel)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SUFFIXES = ("_total", "_bucket", "_count", "_sum")


def defined_metric_names() -> set[str]:
    """Metric names as the code declares them (``Counter("dealwatch_...", ...)`` and collector families)."""
    names: set[str] = set()
    for path in (ROOT / "services").rglob("*.py"):
        names.update(re.findall(r'"(dealwatch_[a-z0-9_]+)"', path.read_text(encoding="utf-8")))
    return names


def base_name(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def test_the_grafana_dashboard_uses_only_metrics_the_services_define() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "dealwatch.json").read_text(encoding="utf-8"))
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {base_name(n) for e in exprs for n in re.findall(r"dealwatch_[a-z0-9_]+", e)}

    assert len(exprs) >= 10
    assert used and used <= defined_metric_names(), used - defined_metric_names()
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} == {"dealwatch-prometheus"}


def test_the_grafana_provisioning_points_at_prometheus_and_the_dashboard_folder() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    providers = yaml.safe_load((provisioning / "dashboards" / "dealwatch.yml").read_text())

    assert sources["datasources"][0]["uid"] == "dealwatch-prometheus"
    assert sources["datasources"][0]["url"] == "http://prometheus:9090"
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_prometheus_scrapes_every_service_of_docker_compose() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    targets = {
        t.split(":")[0]
        for job in config["scrape_configs"]
        for sc in job["static_configs"]
        for t in sc["targets"]
    }

    assert targets == {"ingest", "api", "detector", "recovery", "stats"}
    assert targets <= set(compose["services"])
