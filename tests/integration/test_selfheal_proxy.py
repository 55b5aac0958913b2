"""The self-healing controller's socket proxy (compose/selfheal.yml, service selfheal-proxy)
against the real engine: the calls the controller makes pass, everything else is 403, and a
create passes only for a container of this project's web service without host privileges.

Only the proxy is started, exactly as compose defines it; requests come from a throwaway container
on its internal network (python3 urllib in the python-base image).
"""

from __future__ import annotations

import json
import secrets
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from python_on_whales import Container, DockerClient

from hactl.stack.envfile import read_env_file
from tests.support.stack import IMAGES_ENV, REPO, Stack, ha_files

pytestmark = pytest.mark.integration

PROXY = "http://selfheal-proxy:2375"
SELFHEAL_FILE = REPO / "compose" / "selfheal.yml"

PROBE = textwrap.dedent(
    """
    import json, sys, urllib.request, urllib.error
    out = []
    for method, path, body in json.loads(sys.argv[1]):
        data = json.dumps(body).encode() if body is not None else None
        data = b"" if data is None and method in ("POST", "PUT") else data
        req = urllib.request.Request(sys.argv[2] + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                out.append(r.status)
        except urllib.error.HTTPError as e:
            out.append(e.code)
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def proxy_stack(docker_engine: DockerClient) -> Iterator[Stack]:
    stack = Stack("healproxy", [*ha_files(), SELFHEAL_FILE])
    try:
        stack.docker.compose.up(["selfheal-proxy"], detach=True, wait=True, wait_timeout=60)
        yield stack
    finally:
        stack.down()


def python_image() -> str:
    return read_env_file(IMAGES_ENV)["PYTHON_BASE_IMAGE"]


def probe(stack: Stack, requests: list[tuple[str, str, Any]]) -> list[int]:
    out = stack.docker.run(
        python_image(),
        ["python3", "-c", PROBE, json.dumps(requests), PROXY],
        remove=True,
        networks=[f"{stack.project}_selfheal-api"],
    )
    return json.loads(str(out))


@pytest.fixture
def target(proxy_stack: Stack, docker_engine: DockerClient) -> Iterator[Container]:
    """A stopped throwaway container to start, restart and attempt everything else on."""
    container = docker_engine.container.create(
        python_image(),
        ["sleep", "300"],
        name=f"chatest-healproxy-target-{secrets.token_hex(3)}",
        labels={"com.docker.compose.project": proxy_stack.project},
    )
    try:
        yield container
    finally:
        container.remove(force=True)


def replica_body(stack: Stack, **host_config: Any) -> dict[str, Any]:
    return {
        "Image": python_image(),
        "Cmd": ["sleep", "300"],
        "Labels": {
            "com.docker.compose.project": stack.project,
            "com.docker.compose.service": "web",
        },
        "HostConfig": {"ReadonlyRootfs": True, "CapDrop": ["ALL"], **host_config},
    }


def test_the_controllers_calls_pass(proxy_stack: Stack, target: Container) -> None:
    network = f"{proxy_stack.project}_selfheal-api"
    statuses = probe(
        proxy_stack,
        [
            ("GET", "/_ping", None),
            ("GET", "/containers/json?all=1", None),
            ("GET", f"/containers/{target.id}/json", None),
            ("POST", f"/containers/{target.id}/start", None),
            ("POST", f"/v1.41/containers/{target.id}/restart?t=1", None),
            ("POST", f"/networks/{network}/connect", {"Container": target.id}),
        ],
    )
    assert statuses == [200, 200, 200, 204, 204, 200]
    target.reload()
    assert target.state.running
    assert network in target.network_settings.networks


def test_everything_else_is_403(proxy_stack: Stack, target: Container) -> None:
    t = target.id
    denied = [
        ("DELETE", f"/containers/{t}?force=1", None),
        ("POST", f"/containers/{t}/stop", None),
        ("POST", f"/containers/{t}/kill", None),
        ("POST", f"/containers/{t}/pause", None),
        ("POST", f"/containers/{t}/update", {"Memory": 0}),
        ("POST", f"/containers/{t}/rename?name=x", None),
        ("POST", f"/containers/{t}/exec", {"Cmd": ["id"]}),
        ("POST", f"/containers/{t}/attach?stream=1", None),
        ("GET", f"/containers/{t}/logs?stdout=1", None),
        ("GET", f"/containers/{t}/archive?path=/", None),
        ("PUT", f"/containers/{t}/archive?path=/", None),
        ("GET", f"/containers/{t}/export", None),
        ("POST", "/containers/prune", None),
        ("GET", "/events", None),
        ("GET", "/info", None),
        ("GET", "/version", None),
        ("GET", "/images/json", None),
        ("POST", "/images/create?fromImage=x", None),
        ("POST", "/build", None),
        ("GET", "/volumes", None),
        ("GET", "/networks", None),
        ("POST", "/networks/create", {"Name": "x"}),
        ("GET", "/secrets", None),
        ("GET", "/containers/../images/json", None),
    ]
    assert probe(proxy_stack, denied) == [403] * len(denied)
    target.reload()
    assert target.state.status == "created"  # none of it touched the container


def test_create_passes_only_for_this_projects_web_without_host_privileges(
    proxy_stack: Stack, docker_engine: DockerClient
) -> None:
    stack = proxy_stack
    other = replica_body(stack)
    other["Labels"]["com.docker.compose.project"] = "someone-else"
    unlabelled = replica_body(stack)
    del unlabelled["Labels"]
    db = replica_body(stack)
    db["Labels"]["com.docker.compose.service"] = "postgres"
    huge = replica_body(stack)
    huge["Env"] = ["PAD=" + "x" * 70_000]
    refused = {
        "no labels": unlabelled,
        "another project": other,
        "another service": db,
        "privileged": replica_body(stack, Privileged=True),
        "capability": replica_body(stack, CapAdd=["SYS_ADMIN"]),
        "docker socket": replica_body(stack, Binds=["/var/run/docker.sock:/s"]),
        "host root bind": replica_body(stack, Binds=["/:/host"]),
        "host etc mount": replica_body(
            stack, Mounts=[{"Type": "bind", "Source": "/etc", "Target": "/h"}]
        ),
        "host pid": replica_body(stack, PidMode="host"),
        "host network": replica_body(stack, NetworkMode="host"),
        "device": replica_body(
            stack,
            Devices=[{"PathOnHost": "/dev/sda", "PathInContainer": "/d", "CgroupPermissions": "r"}],
        ),
        "unconfined": replica_body(stack, SecurityOpt=["seccomp=unconfined"]),
        "over 60000 bytes": huge,
    }
    names = {why: f"chatest-healproxy-refused-{secrets.token_hex(3)}" for why in refused}
    requests = [("POST", f"/containers/create?name={names[w]}", b) for w, b in refused.items()]
    allowed_name = f"chatest-healproxy-replica-{secrets.token_hex(3)}"
    requests.append(("POST", f"/containers/create?name={allowed_name}", replica_body(stack)))
    try:
        statuses = probe(stack, requests)
        assert dict(zip([*refused, "replica"], statuses, strict=True)) == {
            **dict.fromkeys(refused, 403),
            "replica": 201,
        }
        assert docker_engine.container.exists(allowed_name)
        assert not [n for n in names.values() if docker_engine.container.exists(n)]
    finally:
        for name in [allowed_name, *names.values()]:
            if docker_engine.container.exists(name):
                docker_engine.container.remove(name, force=True)


def test_proxy_is_unpublished_internal_read_only_and_unprivileged(
    proxy_stack: Stack, docker_engine: DockerClient
) -> None:
    (proxy,) = proxy_stack.containers("selfheal-proxy")
    network = f"{proxy_stack.project}_selfheal-api"
    assert not proxy.host_config.port_bindings
    assert set(proxy.network_settings.networks) == {network}
    assert docker_engine.network.inspect(network).internal is True
    assert proxy.host_config.readonly_rootfs is True
    assert [c.removeprefix("CAP_") for c in proxy.host_config.cap_drop] == ["ALL"]
    status = docker_engine.execute(proxy, ["cat", "/proc/1/status"])
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    assert all(u != "0" for u in fields["Uid"].split()), fields["Uid"]
    assert int(fields["CapEff"].strip(), 16) == 0, fields["CapEff"]
