"""Security hardening of the HA stack, end to end (issue 9), on the default settings.

Socket proxy in front of Docker, least privilege in `web`, secrets only as files, the dashboard
on 127.0.0.1 behind basic auth, TLS with HSTS and security headers, and `make audit` agreeing.
Traffic goes only to the 127.0.0.1 ports the stack publishes or into its own containers.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys

import httpx
import pytest
from python_on_whales import Container
from python_on_whales.exceptions import DockerException

from tests.support.stack import REPO, SECRETS_DIR, Stack

pytestmark = pytest.mark.e2e

WHOAMI = "/api/v1/whoami"


def one(stack: Stack, service: str) -> Container:
    (container,) = stack.containers(service)
    return container


def no_caps(container: Container) -> bool:
    return [c.removeprefix("CAP_") for c in container.host_config.cap_drop or []] == ["ALL"]


def https_url(stack: Stack) -> str:
    return f"https://127.0.0.1:{stack.port('HTTPS_PORT')}"


# --- Docker API only through the socket proxy ---------------------------------------------------
def test_traefik_reaches_docker_only_through_the_internal_socket_proxy(ha_stack: Stack) -> None:
    proxy, edge = one(ha_stack, "socket-proxy"), one(ha_stack, "traefik-net")
    for traefik in (one(ha_stack, "traefik"), one(ha_stack, "traefik-b")):
        assert not [m for m in traefik.mounts if "docker.sock" in (m.source or "")], traefik.mounts
        env = dict(e.split("=", 1) for e in traefik.config.env)
        assert env["DOCKER_ENDPOINT"] == "tcp://socket-proxy:2375"
        # No network of its own: the two instances live in traefik-net's namespace.
        assert traefik.host_config.network_mode == f"container:{edge.id}"
    # The proxy's network is internal and holds exactly the Traefik namespace and the proxy;
    # nothing published.
    net = ha_stack.docker.network.inspect(f"{ha_stack.project}_docker-api")
    assert net.internal is True
    assert {c.name for c in net.containers.values()} == {edge.name, proxy.name}
    assert not proxy.host_config.port_bindings
    # And Traefik does see the replicas through it: all 3 are in rotation (the fixture waited).
    assert len([u for u, s in ha_stack.traefik_servers().items() if s == "UP"]) == 3


# --- least privilege in web -------------------------------------------------------------------
def test_web_is_non_root_with_a_read_only_root_and_no_capabilities(ha_stack: Stack) -> None:
    for web in ha_stack.containers("web"):
        assert ha_stack.docker.execute(web, ["id", "-u"]).strip() != "0"
        with pytest.raises(DockerException) as denied:
            ha_stack.docker.execute(web, ["sh", "-c", "touch /x"])
        assert "Read-only file system" in str(denied.value)
        ha_stack.docker.execute(web, ["sh", "-c", "touch /tmp/x && rm /tmp/x"])  # tmpfs works
        assert web.host_config.readonly_rootfs is True
        assert no_caps(web)
        assert "no-new-privileges:true" in (web.host_config.security_opt or [])
        status = ha_stack.docker.execute(web, ["cat", "/proc/1/status"])
        cap_eff = next(ln for ln in status.splitlines() if ln.startswith("CapEff:"))
        assert int(cap_eff.split()[1], 16) == 0, cap_eff


def test_postgres_runs_unprivileged_with_a_read_only_root(ha_stack: Stack) -> None:
    postgres = one(ha_stack, "postgres")
    status = ha_stack.docker.execute(postgres, ["cat", "/proc/1/status"])
    fields = dict(ln.split(":", 1) for ln in status.splitlines() if ":" in ln)
    assert "0" not in fields["Uid"].split(), fields["Uid"]
    assert int(fields["CapEff"].strip(), 16) == 0, fields["CapEff"]
    with pytest.raises(DockerException) as denied:
        ha_stack.docker.execute(postgres, ["sh", "-c", "touch /x"])
    assert "Read-only file system" in str(denied.value)
    assert postgres.host_config.readonly_rootfs is True and no_caps(postgres)
    # And it works: the replicas are ready, which needs the database.
    assert httpx.get(ha_stack.base_url + "/readyz", timeout=5).status_code == 200


# --- secrets only as files ----------------------------------------------------------------------
def secret_values() -> dict[str, str]:
    values = {}
    for name in ("postgres_password", "api_tokens", "dashboard_password", "dashboard_htpasswd"):
        for i, line in enumerate((SECRETS_DIR / name).read_text().splitlines()):
            if line.strip():
                values[f"{name}[{i}]"] = line.strip()
    assert values["postgres_password[0]"] and values["api_tokens[0]"]
    return values


def test_docker_inspect_shows_no_secret_value(ha_stack: Stack) -> None:
    values = secret_values()
    web, postgres = ha_stack.containers("web"), one(ha_stack, "postgres")
    inspected = [*web, postgres, one(ha_stack, "traefik"), one(ha_stack, "traefik-b")]
    raw = subprocess.run(
        ["docker", "inspect", *(c.id for c in inspected)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert len(json.loads(raw)) == len(inspected)
    leaked = [name for name, value in values.items() if value in raw]
    assert leaked == [], f"secret values visible in docker inspect: {leaked}"
    # Positive control: the values do reach the services, as files.
    password = values["postgres_password[0]"]
    assert ha_stack.docker.execute(web[0], ["cat", "/run/secrets/postgres_password"]).strip() == (
        password
    )
    assert (
        ha_stack.docker.execute(postgres, ["cat", "/run/secrets/postgres_password"]).strip()
        == password
    )


# --- dashboard and API --------------------------------------------------------------------------
def test_dashboard_only_on_loopback_and_only_with_basic_auth(ha_stack: Stack) -> None:
    traefik = one(ha_stack, "traefik-net")  # publishes the ports the two instances share
    (binding,) = traefik.network_settings.ports["8080/tcp"]
    assert binding["HostIp"] == "127.0.0.1"
    assert int(binding["HostPort"]) == ha_stack.port("TRAEFIK_API_PORT")
    # /metrics: Traefik's own counters, which `hactl rollout --canary` reads (metrics-api.yml).
    for path in ("/api/overview", "/api/http/routers", "/dashboard/", "/metrics"):
        url = ha_stack.api_url + path
        assert httpx.get(url, timeout=5).status_code == 401, path
        assert httpx.get(url, auth=("admin", "not-the-password"), timeout=5).status_code == 401
        assert httpx.get(url, auth=ha_stack.dashboard_auth, timeout=5).status_code == 200, path
    # The API is not reachable through the public entrypoints either.
    assert httpx.get(ha_stack.base_url + "/api/overview", timeout=5).status_code != 200
    # By default (PUBLIC_BIND unset) every published Traefik port is on 127.0.0.1.
    for port, bindings in traefik.network_settings.ports.items():
        assert {b["HostIp"] for b in bindings or []} <= {"127.0.0.1"}, port


# --- TLS and headers ----------------------------------------------------------------------------
def test_tls_handshake_verified_against_the_generated_certificate(ha_stack: Stack) -> None:
    ctx = ssl.create_default_context(cafile=str(SECRETS_DIR / "tls.crt"))
    port = ha_stack.port("HTTPS_PORT")
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        served = tls.getpeercert(binary_form=True)
        version = tls.version()
    expected = ssl.PEM_cert_to_DER_cert((SECRETS_DIR / "tls.crt").read_text())
    assert served == expected
    assert version in {"TLSv1.2", "TLSv1.3"}
    # A client that does not trust the certificate is refused: the check above means something.
    with pytest.raises(httpx.ConnectError):
        httpx.get(https_url(ha_stack) + WHOAMI, timeout=5)


def test_hsts_and_security_headers_on_https(ha_stack: Stack) -> None:
    r = httpx.get(
        https_url(ha_stack) + WHOAMI,
        verify=ssl.create_default_context(cafile=SECRETS_DIR / "tls.crt"),
        timeout=5,
    )
    assert r.status_code == 200
    hsts = r.headers["strict-transport-security"]
    assert "max-age=31536000" in hsts and "includeSubDomains" in hsts
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-xss-protection"].startswith("1")
    assert "server" not in r.headers


def test_plain_http_is_served_without_redirect_by_default(ha_stack: Stack) -> None:
    r = httpx.get(ha_stack.base_url + WHOAMI, timeout=5, follow_redirects=False)
    assert r.status_code == 200
    assert r.headers["x-frame-options"] == "DENY"


# --- make audit -----------------------------------------------------------------------------------
def run_audit(project: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PROJECT": project, "SECRETS_DIR": str(SECRETS_DIR)}
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "audit.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )


def test_audit_passes_every_check_on_the_hardened_stack(ha_stack: Stack) -> None:
    result = run_audit(ha_stack.project)
    lines = [ln for ln in result.stdout.splitlines() if ln[:4] in {"PASS", "FAIL"}]
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(lines) >= 9 and all(ln.startswith("PASS") for ln in lines), result.stdout


def test_audit_fails_when_there_is_no_stack(docker_engine: object) -> None:
    result = run_audit("chatest-no-such-project")
    assert result.returncode == 1
    assert "FAIL" in result.stdout and "0 passed" in result.stdout
