#!/usr/bin/env python3
"""Security audit of a running compose-ha stack: one PASS/FAIL line per check, exit 1 on any FAIL.

    make audit                      # the stack of PROJECT (default compose-ha)
    PROJECT=x SECRETS_DIR=./secrets python3 scripts/audit.py

Standard library and the docker CLI only. Traffic goes to the 127.0.0.1 ports the stack publishes,
and into the stack's own network through one throwaway container (the web image) that tries the
socket proxy.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

PROJECT = os.environ.get("PROJECT") or os.environ.get("COMPOSE_PROJECT_NAME") or "compose-ha"
REPO = Path(__file__).resolve().parents[1]
SECRETS_DIR = Path(os.environ.get("SECRETS_DIR") or REPO / "secrets")
if not SECRETS_DIR.is_absolute():
    SECRETS_DIR = REPO / SECRETS_DIR
PROXY_PROBE = """
import json, sys, urllib.request, urllib.error
out = {}
for method, path in json.loads(sys.argv[1]):
    req = urllib.request.Request("http://socket-proxy:2375" + path, method=method,
                                 data=b"{}" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            out[method + " " + path] = r.status
    except urllib.error.HTTPError as e:
        out[method + " " + path] = e.code
print(json.dumps(out))
"""

results: list[bool] = []


def check(name: str, fn: Callable[[], tuple[bool, str]]) -> None:
    try:
        ok, detail = fn()
    except Exception as exc:  # a check that cannot run is a failed check
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    results.append(ok)
    print(f"{'PASS' if ok else 'FAIL'}  {name}" + (f"  ({detail})" if detail else ""), flush=True)


def docker(*args: str, check_rc: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=60, check=check_rc
    )


def containers(service: str | None = None, all_states: bool = False) -> list[dict]:
    filters = ["--filter", f"label=com.docker.compose.project={PROJECT}"]
    if service:
        filters += ["--filter", f"label=com.docker.compose.service={service}"]
    ids = docker("ps", "-q", *(["-a"] if all_states else []), *filters).stdout.split()
    return json.loads(docker("inspect", *ids).stdout) if ids else []


# The two Traefik instances and the network namespace they share, which publishes the ports and
# is the only member of the docker-api network besides the proxy (docker-compose.ha.yml).
TRAEFIK_INSTANCES = ("traefik", "traefik-b")
EDGE = "traefik-net"


def one(service: str) -> dict:
    found = containers(service)
    if not found:
        raise RuntimeError(f"no running {service} container in project {PROJECT}")
    return found[0]


def published(container: dict, port: str) -> tuple[str, int]:
    binding = (container["NetworkSettings"]["Ports"] or {}).get(port) or []
    if not binding:
        raise RuntimeError(f"{port} is not published")
    return binding[0]["HostIp"], int(binding[0]["HostPort"])


def http(url: str, auth: tuple[str, str] | None = None, context: ssl.SSLContext | None = None):
    req = urllib.request.Request(url)
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), b""


def secret_values() -> dict[str, str]:
    values: dict[str, str] = {}
    for name in ("postgres_password", "api_tokens", "dashboard_password", "dashboard_htpasswd"):
        path = SECRETS_DIR / name
        if path.exists():
            for i, line in enumerate(path.read_text().splitlines()):
                if len(line.strip()) >= 8:
                    values[f"{name}[{i}]"] = line.strip()
    key = SECRETS_DIR / "tls.key"
    if key.exists():
        body = [ln for ln in key.read_text().splitlines() if ln and not ln.startswith("-----")]
        if body:
            values["tls.key"] = body[len(body) // 2]
    return values


def dashboard_auth() -> tuple[str, str]:
    return ("admin", (SECRETS_DIR / "dashboard_password").read_text().strip())


# --- checks ---------------------------------------------------------------------------------
def traefik_without_socket() -> tuple[bool, str]:
    details, ok = [], True
    for service in TRAEFIK_INSTANCES:
        t = one(service)
        mounts = [m["Source"] for m in t["Mounts"] if m["Source"].endswith("docker.sock")]
        env = dict(e.split("=", 1) for e in t["Config"]["Env"])
        endpoint = env.get("DOCKER_ENDPOINT", "")
        ok = ok and not mounts and endpoint == "tcp://socket-proxy:2375"
        details.append(
            f"{service}: docker.sock mounts {mounts or 'none'}, "
            f"DOCKER_ENDPOINT={endpoint or 'unset'}"
        )
    return ok, "; ".join(details)


def proxy_isolated() -> tuple[bool, str]:
    p = one("socket-proxy")
    ports = {k: v for k, v in (p["NetworkSettings"]["Ports"] or {}).items() if v}
    nets = list(p["NetworkSettings"]["Networks"])
    problems = []
    if ports:
        problems.append(f"published {ports}")
    for net in nets:
        info = json.loads(docker("network", "inspect", net).stdout)[0]
        members = {c["Name"] for c in (info.get("Containers") or {}).values()}
        others = {
            m for m in members if m not in {p["Name"].lstrip("/"), one(EDGE)["Name"].lstrip("/")}
        }
        if not info.get("Internal"):
            problems.append(f"{net} is not internal")
        if others:
            problems.append(f"{net} also holds {sorted(others)}")
    hc = p["HostConfig"]
    if not hc.get("ReadonlyRootfs"):
        problems.append("root filesystem writable")
    if [c.removeprefix("CAP_") for c in hc.get("CapDrop") or []] != ["ALL"]:
        problems.append(f"cap_drop {hc.get('CapDrop')}")
    uid = docker("exec", p["Id"], "cat", "/proc/1/status").stdout
    uid_line = next(ln for ln in uid.splitlines() if ln.startswith("Uid:"))
    if any(u == "0" for u in uid_line.split()[1:]):
        problems.append("HAProxy runs as root")
    return not problems, "; ".join(problems) or f"networks {nets}, not published, non-root"


def proxy_rules() -> tuple[bool, str]:
    web = one("web")
    net = next(n for n in one("socket-proxy")["NetworkSettings"]["Networks"])
    wanted = {
        "GET /containers/json": 200,
        "GET /v1.41/version": 200,
        "POST /containers/create": 403,
        f"DELETE /containers/{web['Id']}": 403,
        f"POST /containers/{web['Id']}/exec": 403,
        "GET /images/json": 403,
    }
    requests = [k.split(" ", 1) for k in wanted]
    out = docker(
        "run",
        "--rm",
        "--network",
        net,
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges:true",
        "--user",
        "65534",
        "--entrypoint",
        "python3",
        web["Config"]["Image"],
        "-c",
        PROXY_PROBE,
        json.dumps(requests),
    ).stdout
    got = json.loads(out)
    shown = ", ".join(f"{k.replace(web['Id'], '{id}')} {v}" for k, v in got.items())
    return got == wanted, shown


def least_privilege(service: str) -> Callable[[], tuple[bool, str]]:
    """Main process non-root with no effective capability, read-only root, /tmp writable."""

    def run() -> tuple[bool, str]:
        found = containers(service)
        if not found:
            return False, f"no running {service} container"
        problems = []
        for c in found:
            name, hc = c["Name"].lstrip("/"), c["HostConfig"]
            status = docker("exec", c["Id"], "cat", "/proc/1/status").stdout
            fields = dict(ln.split(":", 1) for ln in status.splitlines() if ":" in ln)
            root_write = docker("exec", c["Id"], "sh", "-c", "touch /audit-probe", check_rc=False)
            tmp_write = docker(
                "exec", c["Id"], "sh", "-c", "touch /tmp/audit-probe && rm /tmp/audit-probe",
                check_rc=False,
            )  # fmt: skip
            if "0" in fields["Uid"].split():
                problems.append(f"{name} runs as root")
            if int(fields["CapEff"].strip(), 16) != 0:
                problems.append(f"{name} has capabilities {fields['CapEff'].strip()}")
            if root_write.returncode == 0:
                problems.append(f"{name}: / is writable")
            if tmp_write.returncode != 0:
                problems.append(f"{name}: /tmp is not writable")
            if [x.removeprefix("CAP_") for x in hc.get("CapDrop") or []] != ["ALL"]:
                problems.append(f"{name}: cap_drop {hc.get('CapDrop')}")
            if "no-new-privileges:true" not in (hc.get("SecurityOpt") or []):
                problems.append(f"{name}: no no-new-privileges")
        detail = f"{len(found)} container(s): uid != 0, no capabilities, read-only /, /tmp writable"
        return not problems, "; ".join(problems) or detail

    return run


def no_secret_in_inspect() -> tuple[bool, str]:
    values = secret_values()
    if not values:
        return False, f"no secret files in {SECRETS_DIR}"
    leaks = []
    inspected = containers(all_states=True)
    for c in inspected:
        text = json.dumps(c)
        leaks += [f"{c['Name'].lstrip('/')}: {name}" for name, v in values.items() if v in text]
    services = sorted(
        {c["Config"]["Labels"].get("com.docker.compose.service", "?") for c in inspected}
    )
    if not {"web", "postgres"} <= set(services):
        return False, f"web and postgres not both found (services {services})"
    return not leaks, "; ".join(leaks) or f"{len(values)} values absent from {', '.join(services)}"


def dashboard_protected() -> tuple[bool, str]:
    host_ip, port = published(one(EDGE), "8080/tcp")
    url = f"http://127.0.0.1:{port}/api/overview"
    without, _, _ = http(url)
    wrong, _, _ = http(url, auth=("admin", "wrong-password"))
    with_auth, _, _ = http(url, auth=dashboard_auth())
    ok = host_ip == "127.0.0.1" and without == 401 and wrong == 401 and with_auth == 200
    return (
        ok,
        f"bound to {host_ip}:{port}; without auth {without}, wrong password {wrong}, "
        f"with auth {with_auth}",
    )


def tls_and_headers() -> tuple[bool, str]:
    _, port = published(one(EDGE), "443/tcp")
    ctx = ssl.create_default_context(cafile=str(SECRETS_DIR / "tls.crt"))
    status, headers, _ = http(f"https://127.0.0.1:{port}/healthz", context=ctx)
    h = {k.lower(): v for k, v in headers.items()}
    wanted = {
        "strict-transport-security": "max-age=",
        "x-content-type-options": "nosniff",
        "x-frame-options": "DENY",
        "referrer-policy": "no-referrer",
    }
    missing = [k for k, v in wanted.items() if v not in h.get(k, "")]
    ok = status == 200 and not missing
    return ok, f"handshake verified against tls.crt, status {status}" + (
        f", missing headers {missing}" if missing else ", HSTS and security headers present"
    )


def rate_limited_routers() -> tuple[bool, str]:
    _, port = published(one(EDGE), "8080/tcp")
    status, _, body = http(f"http://127.0.0.1:{port}/api/http/routers", auth=dashboard_auth())
    routers = {r["name"]: r for r in json.loads(body)} if status == 200 else {}
    problems = [
        name
        for name in ("web@docker", "web-secure@docker", "frontend@docker", "frontend-secure@docker")
        if "ratelimit@file" not in (routers.get(name, {}).get("middlewares") or [])
    ]
    _, _, mw = http(
        f"http://127.0.0.1:{port}/api/http/middlewares/ratelimit@file", auth=dashboard_auth()
    )
    limit = json.loads(mw).get("rateLimit", {}) if mw else {}
    return not problems, (
        f"without ratelimit@file: {problems}"
        if problems
        else f"web, frontend and their HTTPS routers limited per client (average "
        f"{limit.get('average')}, "
        f"burst {limit.get('burst')})"
    )


def only_labelled_routed() -> tuple[bool, str]:
    _, port = published(one(EDGE), "8080/tcp")
    _, _, body = http(f"http://127.0.0.1:{port}/api/http/services", auth=dashboard_auth())
    servers = {
        s["url"].split("//", 1)[1].rsplit(":", 1)[0]
        for svc in json.loads(body)
        if svc.get("provider") == "docker"
        for s in (svc.get("loadBalancer") or {}).get("servers") or []
    }
    enabled: set[str] = set()
    for c in containers():
        if c["Config"]["Labels"].get("traefik.enable") == "true":
            enabled |= {n["IPAddress"] for n in c["NetworkSettings"]["Networks"].values()}
    stray = servers - enabled
    return not stray and bool(servers), (
        f"routed without traefik.enable=true: {sorted(stray)}"
        if stray
        else f"{len(servers)} routed servers, all labelled traefik.enable=true"
    )


def main() -> int:
    print(f"security audit of project {PROJECT} (secrets in {SECRETS_DIR})")
    check("traefik reaches Docker only through the socket proxy", traefik_without_socket)
    check("socket proxy: internal network, unpublished, read-only, non-root", proxy_isolated)
    check("socket proxy: GET containers 200, create/delete/exec/images 403", proxy_rules)
    check("web: non-root, read-only root filesystem, no capabilities", least_privilege("web"))
    check(
        "postgres: non-root, read-only root filesystem, no capabilities",
        least_privilege("postgres"),
    )
    check(
        "frontend: non-root, read-only root filesystem, no capabilities",
        least_privilege("frontend"),
    )
    check("no secret value in docker inspect", no_secret_in_inspect)
    check("dashboard/API: 127.0.0.1 only, basic auth", dashboard_protected)
    check("TLS on websecure, HSTS and security headers", tls_and_headers)
    check("rate limit per client on every router", rate_limited_routers)
    check("only containers with traefik.enable=true are routed", only_labelled_routed)
    failed = results.count(False)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
