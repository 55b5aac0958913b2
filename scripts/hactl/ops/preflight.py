"""Checks that must pass before hactl changes anything: the stack runs, the image exists."""

from __future__ import annotations

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from hactl.errors import HactlError, InvalidInputError
from hactl.stack.label_drift import traefik_label_drift
from hactl.stack.project import WEB_SERVICE, process_env
from hactl.stack.replicas import web_containers
from hactl.stack.running import RunningStack
from hactl.stack.traefik_api import TraefikApiError


def require_engine(docker: DockerClient) -> None:
    try:
        docker.system.info()
    except DockerException as error:
        raise HactlError(
            "the Docker engine does not answer", "start dockerd (see scripts/bootstrap.sh)"
        ) from error


def require_running(running: RunningStack) -> None:
    """At least one running `web` replica and a Traefik API that answers."""
    require_engine(running.docker)
    if not [c for c in web_containers(running) if c.state.running]:
        raise HactlError(
            f"stack {running.project!r} is not running: no running `web` container",
            "start it with `make up-ha` (or pass --project for another stack)",
        )
    try:
        running.traefik.http_services()
    except TraefikApiError as error:
        raise HactlError(
            f"stack {running.project!r}: {error}",
            "is traefik running? check TRAEFIK_API_PORT and SECRETS_DIR",
        ) from error


def require_image(docker: DockerClient, image: str) -> None:
    if not docker.image.exists(image):
        raise InvalidInputError(
            f"image {image!r} does not exist on this engine",
            "build it first (e.g. `hactl rollout --build`) or check the tag with `docker images`",
        )


def require_no_label_drift(running: RunningStack, image: str | None = None) -> None:
    """Refuse to start replicas that Traefik could not merge with the running ones."""
    serving = [c for c in web_containers(running) if c.state.running]
    if not serving:
        return
    with process_env({"WEB_IMAGE": image} if image else {}):
        model = running.docker.compose.config(return_json=True)
    service = model.get("services", {}).get(WEB_SERVICE, {}) if isinstance(model, dict) else {}
    labels = service.get("labels") or {}
    if isinstance(labels, list):  # compose may give ["key=value", ...]
        labels = dict(item.split("=", 1) for item in labels if "=" in item)
    drift = traefik_label_drift(labels, serving[0].config.labels or {})
    if drift:
        raise HactlError(
            "the compose files give new replicas other Traefik labels than the running ones; "
            "Traefik would drop the `web` service (every request 404s) while both run: "
            + "; ".join(drift),
            "apply label changes with `make up-ha` (recreates the replicas), or restore the "
            "compose files, then retry",
        )
