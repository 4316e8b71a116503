"""The Grafana dashboard and the Prometheus alert rules of ``deploy/``, checked with their own tools:
a JSON schema for the dashboard, ``promtool`` (Debian's prometheus package) for the rules and
for every query of the dashboard. CI installs promtool; without it those tests are skipped here."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.orchestration.test_metrics_live import DOCUMENTED
from tests.support import ROOT

GRAFANA = ROOT / "deploy" / "grafana"
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "switchyard-alerts.yml"
# What Grafana puts in a query before it reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$model": ".*"}
METRIC = re.compile(r"\b(?:llm|switchyard)_[a-z_]+\b|\bswitchyard:[a-z_]+\b")


def dashboard() -> dict[str, Any]:
    return json.loads((GRAFANA / "switchyard-dashboard.json").read_text())


def queries() -> list[str]:
    return [target["expr"] for panel in dashboard()["panels"] for target in panel.get("targets", [])]


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: .ci/run installs Debian's prometheus package")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_the_dashboard_follows_its_schema() -> None:
    schema = json.loads((GRAFANA / "dashboard.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(dashboard(), schema, cls=jsonschema.Draft202012Validator)


def test_the_panels_tile_the_grid_without_overlapping() -> None:
    taken: dict[tuple[int, int], str] = {}
    panels = dashboard()["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        for cell in (
            (x, y) for x in range(box["x"], box["x"] + box["w"]) for y in range(box["y"], box["y"] + box["h"])
        ):
            assert cell not in taken, f"{panel['title']!r} overlaps {taken[cell]!r}"
            taken[cell] = panel["title"]


def test_the_dashboard_shows_what_operators_watch() -> None:
    read = " ".join(queries())
    for metric in (
        "llm_requests_total",  # request rate and errors
        "llm_request_duration_seconds_bucket",  # p50/p95 latency
        "llm_time_to_first_token_seconds_bucket",
        "llm_tokens_total",
        "llm_cost_usd_total",
        "llm_cache_requests_total",
        "llm_circuit_breaker_state",
        "llm_fallbacks_total",
        "switchyard_queue_jobs",
        "switchyard_queue_oldest_job_age_seconds",
    ):
        assert metric in read, metric


def test_the_dashboard_and_the_rules_read_only_what_switchyard_serves() -> None:
    served = {re.sub(r"_(count|sum|bucket)$", "", name) for name in DOCUMENTED}
    recorded = {rule["record"] for rule in alert_rules() if "record" in rule}
    exprs = [*queries(), *(rule["expr"] for rule in alert_rules())]
    read = {re.sub(r"_(count|sum|bucket)$", "", name) for expr in exprs for name in METRIC.findall(expr)}
    assert read - served - recorded == set()


def test_the_alerts_cover_breakers_errors_spend_queue_age_and_workers() -> None:
    names = {rule["alert"] for rule in alert_rules() if "alert" in rule}
    assert names == {
        "SwitchyardBreakerOpen",
        "SwitchyardErrorRate",
        "SwitchyardSpendAboveBudgetPace",
        "SwitchyardTaskQueueStuck",
        "SwitchyardNoWorkers",
    }


def test_the_rules_pass_promtool_check_and_their_unit_tests() -> None:
    checked = promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", "switchyard-alerts.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query as the expression of a recording rule."""
    rules = []
    for number, expr in enumerate(queries()):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"dashboard:query_{number}", "expr": expr})
    (tmp_path / "queries.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = promtool("check", "rules", "queries.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
