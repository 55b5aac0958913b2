"""The plain-Traefik path of `hactl bench`: the same Traefik image over the same replicas with
Traefik's default settings, started beside the stack for one replica count at a time.

The project's Traefik carries an access log, metrics, a rate limit, headers, a retry and a
failover service with body buffering, a sticky cookie and three health-checked services. What
all that costs is only a number next to a Traefik without any of it, measured in the same run
on the same replicas from the same wrk container (issue 18). So this starts a throwaway Traefik
on `<project>_backend` whose file provider lists the replicas' addresses: one router, one
round-robin service, no middleware, no access log, no metrics, no health check. Its port 80 is
published on a free 127.0.0.1 port only so that the bench can see it route before it is used.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import httpx
from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from hactl.errors import HactlError
from hactl.stack.endpoints import HOST, free_port
from hactl.stack.project import LABEL_PROJECT, LABEL_SERVICE, TRAEFIK_SERVICE, project_containers
from hactl.waiting import wait_for

PLAIN_SERVICE = "bench-plain"  # its compose service label: `down --remove-orphans` removes it
DYNAMIC_FILE = "/tmp/plain.yml"
# Written by the container's shell from $PLAIN_DYNAMIC (the image may not hold the file).
SHELL_WRAPPER = 'printf "%s" "$PLAIN_DYNAMIC" > ' + DYNAMIC_FILE + ' && exec traefik "$@"'
STATIC_FLAGS = (
    "--entryPoints.web.address=:80",
    f"--providers.file.filename={DYNAMIC_FILE}",
    "--global.checkNewVersion=false",
    "--global.sendAnonymousUsage=false",
)


def dynamic_config(urls: Sequence[str]) -> str:
    """The file provider's configuration: everything on :80 round robin over `urls` (pure)."""
    if not urls:
        raise ValueError("a plain Traefik needs at least one server")
    servers = "\n".join(f'          - url: "{url}"' for url in urls)
    return (
        "http:\n"
        "  routers:\n"
        "    plain:\n"
        "      entryPoints: [web]\n"
        '      rule: "PathPrefix(`/`)"\n'
        "      service: plain\n"
        "  services:\n"
        "    plain:\n"
        "      loadBalancer:\n"
        "        servers:\n"
        f"{servers}\n"
    )


def container_name(project: str) -> str:
    return f"{project}-{PLAIN_SERVICE}"


def traefik_image(docker: DockerClient, project: str) -> str:
    """The image the stack's own Traefik runs (the same binary on both paths)."""
    containers = project_containers(docker, project, TRAEFIK_SERVICE)
    if not containers:
        raise HactlError(f"{project} runs no Traefik", "start the HA stack: make up-ha")
    return containers[0].config.image


@contextlib.contextmanager
def plain_traefik(
    docker: DockerClient, project: str, urls: Sequence[str], token: str, timeout: float
) -> Iterator[str]:
    """A plain Traefik over `urls` while the block runs; yields its URL on the stack network."""
    name = container_name(project)
    with contextlib.suppress(DockerException):
        docker.container.remove(name, force=True)  # one a crashed bench left behind
    port = free_port()
    try:
        docker.run(
            traefik_image(docker, project),
            ["-c", SHELL_WRAPPER, "sh", *STATIC_FLAGS],
            entrypoint="/bin/sh",
            name=name,
            detach=True,
            networks=[f"{project}_backend"],
            publish=[(f"{HOST}:{port}", 80)],
            envs={"PLAIN_DYNAMIC": dynamic_config(urls)},
            labels={LABEL_PROJECT: project, LABEL_SERVICE: PLAIN_SERVICE},
            pull="never",
        )
    except DockerException as error:
        raise HactlError(
            f"could not start the plain Traefik: {error.stderr or error}",
            "check TRAEFIK_IMAGE (it needs /bin/sh) and the stack's network",
        ) from error
    try:
        wait_for(
            f"the plain Traefik to route to {len(urls)} replicas",
            lambda: _routes(f"http://{HOST}:{port}", token),
            timeout,
            interval=0.2,
        )
        yield f"http://{name}:80"
    finally:
        with contextlib.suppress(DockerException):
            docker.container.remove(name, force=True)


def _routes(url: str, token: str) -> tuple[bool, str]:
    response = httpx.get(
        url + "/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=2
    )
    return response.status_code == 200, f"HTTP {response.status_code}"
