"""The deployment files describe the topology the README promises."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.support import ROOT

K8S = ROOT / "deploy" / "k8s"


def k8s_documents() -> list[dict]:
    documents: list[dict] = []
    for path in sorted(K8S.glob("*.yaml")):
        documents.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return documents


def by_kind(kind: str) -> list[dict]:
    return [doc for doc in k8s_documents() if doc["kind"] == kind]


def test_compose_runs_two_web_two_workers_and_the_services():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ("web1", "web2", "worker1", "worker2", "postgres", "redis", "nginx"):
        assert name in services, name
    assert "rqworker" in services["worker1"]["command"]


def test_compose_loads_the_registry_that_switchyard_config_names():
    # docs/operations.md: "mount your own TOML file and point SWITCHYARD_CONFIG at it".
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    migrate = compose["services"]["migrate"]
    assert migrate["environment"]["SWITCHYARD_CONFIG"]
    script = migrate["command"][-1]
    assert "llmconfig load" in script
    assert '"$$SWITCHYARD_CONFIG"' in script  # compose turns $$ into $ for the shell


def test_compose_config_is_valid_where_docker_compose_is_installed(tmp_path: Path):
    tool = shutil.which("docker-compose")
    if tool is None:
        return  # the YAML structure is still checked by the test above
    result = subprocess.run(
        [tool, "config", "-q"], cwd=ROOT, env={"SECRET_KEY": "x", "PATH": "/usr/bin:/bin"}, capture_output=True
    )
    assert result.returncode == 0, result.stderr.decode()


def test_web_pods_are_ready_only_when_readyz_says_so():
    web = next(d for d in by_kind("Deployment") if d["metadata"]["name"] == "switchyard-web")
    container = web["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_kubernetes_has_workers_service_ingress_autoscaler_and_disruption_budgets():
    names = {d["metadata"]["name"] for d in by_kind("Deployment")}
    assert names == {"switchyard-web", "switchyard-worker"}
    assert by_kind("Service")
    ingress = by_kind("Ingress")[0]
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert by_kind("HorizontalPodAutoscaler")
    assert len(by_kind("PodDisruptionBudget")) == 2


def test_nginx_streams_sse_unbuffered_and_upgrades_websockets():
    conf = (ROOT / "deploy" / "nginx" / "switchyard.conf").read_text()
    assert "proxy_buffering off;" in conf
    assert "proxy_set_header Upgrade $http_upgrade;" in conf
    # The proxy waits longer between reads than the SSE keep-alive (15 s) and the
    # completion deadline (30 s).
    assert "proxy_read_timeout 90s;" in conf


def test_the_image_runs_as_a_non_root_user():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.count("FROM ") >= 2
    assert "USER switchyard" in dockerfile
