"""k8s/ offline: both overlays render, pass a strict schema check, carry the diagrams' numbers,
and agree with the Compose deployment on every setting the two share.

Fast and without a cluster; the real API server's verdict is tests/k8s/test_k8s_control_plane.py.
Where a value exists on both sides (probe paths and timings, drain seconds, workers, limits, HPA
policy, rate limit, body size, sticky cookie, scrape interval), the test reads it from the Compose
files so that neither side can drift alone.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.k8s.manifests import (
    K8S_DIR,
    NAMESPACES,
    OVERLAYS,
    REPO,
    kubectl_path,
    one,
    prepared_tree,
    render,
    seconds,
)
from tests.support.compose import compose_default, load_compose

DIAGRAM_DB_ADDRESS = "47.79.87.199"
SERVICEMONITOR_CRD = REPO / "tests/k8s/data/crds/monitoring.coreos.com_servicemonitors.yaml"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    tree = prepared_tree(tmp_path_factory.mktemp("k8s"))
    return {name: render(tree / "overlays" / name) for name in OVERLAYS}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return {
        "base": load_compose(REPO / "docker-compose.yml"),
        "ha": load_compose(REPO / "docker-compose.ha.yml"),
    }


@pytest.fixture(scope="module")
def policy() -> dict[str, Any]:
    return yaml.safe_load((REPO / "compose/autoscale-policy.yml").read_text())


def _backend(docs: list[dict[str, Any]]) -> dict[str, Any]:
    pod = one(docs, "Deployment", "jackcwf-backend")["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] if c["name"] == "backend")


def _config(docs: list[dict[str, Any]]) -> dict[str, str]:
    return one(docs, "ConfigMap", "jackcwf-backend-config")["data"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_resource_of_the_diagrams_is_rendered(rendered, overlay: str) -> None:
    docs = rendered[overlay]
    kinds = {d["kind"] for d in docs}
    assert {
        "Namespace", "Deployment", "Service", "Ingress", "HorizontalPodAutoscaler",
        "PodDisruptionBudget", "ServiceMonitor", "ConfigMap", "Secret", "ResourceQuota",
        "LimitRange", "NetworkPolicy",
    } <= kinds  # fmt: skip
    namespace = NAMESPACES[overlay]
    assert one(docs, "Namespace")["metadata"]["name"] == namespace
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {namespace}
    if overlay == "dev":
        statefulset = one(docs, "StatefulSet", "postgres")
        assert statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["accessModes"] == [
            "ReadWriteOnce"
        ]
    else:
        assert "StatefulSet" not in kinds, "prod uses the external database"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_strict_schema_check_passes(rendered, overlay: str) -> None:
    crd = yaml.safe_load(SERVICEMONITOR_CRD.read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for doc in rendered[overlay]:
        if doc["kind"] == "ServiceMonitor":
            # kubernetes-validate knows no CRDs: the operator's own schema instead.
            jsonschema.validate(doc, schema)
        else:
            kubernetes_validate.validate(doc, "1.37.0", strict=True)


def test_strict_schema_check_catches_an_unknown_field(rendered) -> None:
    """The offline check is not blind: it does catch what a schema can (see the server tests
    for what only the server catches)."""
    deployment = one(rendered["prod"], "Deployment")
    bad = {**deployment, "spec": {**deployment["spec"], "replica": 3}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, "1.37.0", strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_diagram_numbers(rendered, overlay: str) -> None:
    docs = rendered[overlay]
    assert one(docs, "Deployment")["spec"]["replicas"] == 3
    hpa = one(docs, "HorizontalPodAutoscaler")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 10)
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "jackcwf-backend",
    }
    up, down = hpa["behavior"]["scaleUp"], hpa["behavior"]["scaleDown"]
    assert up["stabilizationWindowSeconds"] == 0 and up["selectPolicy"] == "Max"
    assert {(p["type"], p["value"], p["periodSeconds"]) for p in up["policies"]} == {
        ("Percent", 100, 15),
        ("Pods", 4, 15),
    }
    assert down["stabilizationWindowSeconds"] == 300 and down["selectPolicy"] == "Min"
    assert {(p["type"], p["value"], p["periodSeconds"]) for p in down["policies"]} == {
        ("Percent", 50, 60),
        ("Pods", 2, 60),
    }
    assert one(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 2
    service = one(docs, "Service", "jackcwf-backend-service")["spec"]
    assert service["type"] == "ClusterIP" and service["sessionAffinity"] == "ClientIP"
    assert service["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] == 3600
    assert service["ports"][0]["port"] == 80


def test_hpa_is_the_compose_autoscale_policy(rendered, policy) -> None:
    """One HPA policy for both deployments: hactl autoscale reads compose/autoscale-policy.yml."""
    for overlay in OVERLAYS:
        hpa = one(rendered[overlay], "HorizontalPodAutoscaler")["spec"]
        assert hpa["minReplicas"] == policy["minReplicas"]
        assert hpa["maxReplicas"] == policy["maxReplicas"]
        assert hpa["behavior"] == policy["behavior"]
        k8s_metrics = [(m["resource"]["name"], m["resource"]["target"]) for m in hpa["metrics"]]
        assert k8s_metrics == [(m["name"], m["target"]) for m in policy["metrics"]]
    assert policy["syncPeriodSeconds"] == 15, "the controller-manager's default HPA sync period"


def test_settings_shared_with_compose_agree(rendered, compose) -> None:
    web = compose["base"]["services"]["web"]
    ha_web = compose["ha"]["services"]["web"]
    labels = ha_web["labels"]
    for overlay in OVERLAYS:
        docs = rendered[overlay]
        config = _config(docs)
        for name in ("WEB_WORKERS", "DRAIN_SECONDS", "GRACEFUL_TIMEOUT", "LOG_LEVEL"):
            assert config[name] == compose_default(web["environment"][name]), name
        pod = one(docs, "Deployment")["spec"]["template"]["spec"]
        grace = pod["terminationGracePeriodSeconds"]
        assert grace == seconds(web["stop_grace_period"])
        assert grace > float(config["DRAIN_SECONDS"]) + float(config["GRACEFUL_TIMEOUT"])
        backend = _backend(docs)
        assert backend["ports"][0]["containerPort"] == int(
            labels["traefik.http.services.web.loadbalancer.server.port"]
        )
        assert backend["image"] == compose_default(web["image"])
        limits = ha_web["deploy"]["resources"]["limits"]
        cpu, memory = compose_default(limits["cpus"]), compose_default(limits["memory"])
        assert float(backend["resources"]["limits"]["cpu"]) == float(cpu)
        # Docker's "M" is MiB.
        assert backend["resources"]["limits"]["memory"] == memory.removesuffix("M") + "Mi"
        assert backend["resources"]["requests"] == backend["resources"]["limits"]
        migrate = next(c for c in pod["initContainers"] if c["name"] == "migrate")
        assert migrate["command"] == compose["base"]["services"]["migrate"]["command"]
        assert migrate["image"] == backend["image"]


def test_probes_mean_what_they_mean_in_compose(rendered, compose) -> None:
    """Readiness = Traefik's health check path with the Dockerfile HEALTHCHECK's timings;
    liveness and startup only ask whether the process answers."""
    labels = compose["ha"]["services"]["web"]["labels"]
    healthcheck = next(
        line
        for line in (REPO / "backend/Dockerfile").read_text().splitlines()
        if line.startswith("HEALTHCHECK")
    )
    options = dict(part.lstrip("-").split("=", 1) for part in healthcheck.split() if "=" in part)
    for overlay in OVERLAYS:
        backend = _backend(rendered[overlay])
        ready = backend["readinessProbe"]
        assert (
            ready["httpGet"]["path"]
            == labels["traefik.http.services.web.loadbalancer.healthcheck.path"]
        )
        assert ready["periodSeconds"] == seconds(options["interval"])
        assert ready["timeoutSeconds"] == seconds(options["timeout"])
        assert ready["failureThreshold"] == int(options["retries"])
        for probe in ("livenessProbe", "startupProbe"):
            assert backend[probe]["httpGet"] == {"path": "/healthz", "port": "http"}


def test_pods_run_non_root_read_only(rendered) -> None:
    uid = next(
        line.split()[1].split(":")[0]
        for line in (REPO / "backend/Dockerfile").read_text().splitlines()
        if line.startswith("USER ")
    )
    for overlay in OVERLAYS:
        pod = one(rendered[overlay], "Deployment")["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == int(uid)
        for container in pod["containers"] + pod["initContainers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
        assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} >= {
            "kubernetes.io/hostname"
        }


def test_ingress_matches_traefik_settings(rendered, compose) -> None:
    traefik_env = compose["ha"]["services"]["traefik"]["environment"]
    labels = compose["ha"]["services"]["web"]["labels"]
    for overlay in OVERLAYS:
        ingress = one(rendered[overlay], "Ingress")
        notes = ingress["metadata"]["annotations"]
        rps = int(notes["nginx.ingress.kubernetes.io/limit-rps"])
        assert rps == int(compose_default(traefik_env["RATE_LIMIT_AVERAGE"]))
        burst = rps * int(notes["nginx.ingress.kubernetes.io/limit-burst-multiplier"])
        assert burst == int(compose_default(traefik_env["RATE_LIMIT_BURST"]))
        body = notes["nginx.ingress.kubernetes.io/proxy-body-size"]
        assert int(body.removesuffix("k")) * 1024 == int(
            _config(rendered[overlay])["MAX_BODY_BYTES"]
        )
        assert int(_config(rendered[overlay])["MAX_BODY_BYTES"]) == int(
            compose_default(traefik_env["MAX_BODY_BYTES"])
        )
        assert notes["nginx.ingress.kubernetes.io/affinity"] == "cookie"
        assert (
            notes["nginx.ingress.kubernetes.io/session-cookie-name"]
            == labels["traefik.http.services.web.loadbalancer.sticky.cookie.name"]
        )
        assert notes["nginx.ingress.kubernetes.io/enable-cors"] == "true"
        assert ingress["spec"]["ingressClassName"] == "nginx"
        assert ingress["spec"]["tls"][0]["secretName"]
        paths = [p["path"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]]
        assert paths == ["/api"], "/metrics and the probes stay private, as in Compose"


def test_servicemonitor_scrapes_like_compose_prometheus(rendered) -> None:
    scrape = yaml.safe_load((REPO / "prometheus/prometheus.yml").read_text())
    web_job = next(j for j in scrape["scrape_configs"] if j["job_name"] == "web")
    for overlay in OVERLAYS:
        endpoint = one(rendered[overlay], "ServiceMonitor")["spec"]["endpoints"][0]
        assert endpoint["interval"] == web_job["scrape_interval"]
        assert endpoint["path"] == web_job.get("metrics_path", "/metrics")


def test_network_policies_allow_only_ingress_dns_and_database(rendered) -> None:
    for overlay in OVERLAYS:
        policies = [d for d in rendered[overlay] if d["kind"] == "NetworkPolicy"]
        deny = next(p for p in policies if p["metadata"]["name"] == "default-deny")
        assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
        egress_ports = {
            port["port"]
            for p in policies
            if p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name")
            == "jackcwf-backend"
            for rule in p["spec"].get("egress", [])
            for port in rule.get("ports", [])
        }
        assert egress_ports == {53, 5432}


def test_no_credential_and_no_diagram_database_address_in_the_repository() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "k8s"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    assert tracked and not [f for f in tracked if "/secrets/" in f]
    for name in tracked:
        assert DIAGRAM_DB_ADDRESS not in (REPO / name).read_text(), name


def test_an_overlay_without_generated_secrets_does_not_render(tmp_path: Path) -> None:
    """The secrets are the user's: without gen-secrets.sh the install stops, it never falls
    back to a committed value."""
    shutil.copytree(K8S_DIR, tmp_path / "k8s", ignore=shutil.ignore_patterns("secrets"))
    out = subprocess.run(
        [kubectl_path(), "kustomize", str(tmp_path / "k8s/overlays/prod")],
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0 and "secrets/" in out.stderr
