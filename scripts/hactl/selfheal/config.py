"""Settings of the self-healing controller, from environment variables with safe defaults.

The liveness defaults are a Kubernetes liveness probe's (periodSeconds 10, failureThreshold 3,
timeoutSeconds 1), the back-off is the kubelet's crash-loop back-off (10 s doubling to 300 s,
forgotten after 10 min without a restart). Every variable is listed in `.env.example`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class ConfigError(ValueError):
    """A setting that cannot be used (the controller refuses to start)."""


@dataclass(frozen=True)
class SelfHealConfig:
    project: str
    service: str = "web"
    # The record hactl writes (WEB_REPLICAS, SELFHEAL_PAUSED, the operation lease).
    record_file: Path = Path(".env.rollout")
    # Desired count when the record has none: WEB_REPLICAS as compose resolved it at `up`.
    default_replicas: int = 3
    # Nothing is done unless this service of the project runs: after `make down` (or during it)
    # there is no stack to heal, and the controller must not bring anything back.
    guard_service: str = "traefik"
    docker_host: str = "unix:///var/run/docker.sock"
    sync_seconds: float = 1.0
    liveness_path: str = "/healthz"
    liveness_port: int = 8000
    liveness_period: float = 10.0
    liveness_timeout: float = 1.0
    liveness_failure_threshold: int = 3
    # Probes start this long after a replica (re)started: it needs a moment to listen.
    liveness_initial_delay: float = 5.0
    # Grace given to a hung replica on restart before Docker SIGKILLs it.
    restart_stop_timeout: int = 2
    backoff_base: float = 10.0
    backoff_max: float = 300.0
    backoff_reset: float = 600.0
    # A `created` container is Compose's (it starts it a moment later) unless it stays created.
    created_grace: float = 30.0
    metrics_addr: str = "127.0.0.1"
    metrics_port: int = 9109

    def __post_init__(self) -> None:
        if not self.project:
            raise ConfigError("no compose project: set COMPOSE_PROJECT_NAME or --project")
        if self.default_replicas < 0:
            raise ConfigError("WEB_REPLICAS must be >= 0")
        if self.liveness_failure_threshold < 1:
            raise ConfigError("SELFHEAL_LIVENESS_FAILURE_THRESHOLD must be >= 1")
        for name in ("sync_seconds", "liveness_period", "liveness_timeout", "backoff_max"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0")
        if self.backoff_base < 0 or self.backoff_base > self.backoff_max:
            raise ConfigError("SELFHEAL_BACKOFF_BASE must be between 0 and SELFHEAL_BACKOFF_MAX")


# Environment variable -> (field, type). Types are what the dataclass field holds.
ENV_FIELDS: dict[str, tuple[str, type]] = {
    "COMPOSE_PROJECT_NAME": ("project", str),
    "SELFHEAL_SERVICE": ("service", str),
    "SELFHEAL_RECORD": ("record_file", Path),
    "WEB_REPLICAS": ("default_replicas", int),
    "SELFHEAL_GUARD_SERVICE": ("guard_service", str),
    "SELFHEAL_DOCKER_HOST": ("docker_host", str),
    "SELFHEAL_SYNC_SECONDS": ("sync_seconds", float),
    "SELFHEAL_LIVENESS_PATH": ("liveness_path", str),
    "SELFHEAL_LIVENESS_PORT": ("liveness_port", int),
    "SELFHEAL_LIVENESS_PERIOD": ("liveness_period", float),
    "SELFHEAL_LIVENESS_TIMEOUT": ("liveness_timeout", float),
    "SELFHEAL_LIVENESS_FAILURE_THRESHOLD": ("liveness_failure_threshold", int),
    "SELFHEAL_LIVENESS_INITIAL_DELAY": ("liveness_initial_delay", float),
    "SELFHEAL_RESTART_STOP_TIMEOUT": ("restart_stop_timeout", int),
    "SELFHEAL_BACKOFF_BASE": ("backoff_base", float),
    "SELFHEAL_BACKOFF_MAX": ("backoff_max", float),
    "SELFHEAL_BACKOFF_RESET": ("backoff_reset", float),
    "SELFHEAL_CREATED_GRACE": ("created_grace", float),
    "SELFHEAL_METRICS_ADDR": ("metrics_addr", str),
    "SELFHEAL_METRICS_PORT": ("metrics_port", int),
}


def config_from_env(env: Mapping[str, str] | None = None, **overrides: object) -> SelfHealConfig:
    """Settings from `env` (default os.environ); empty values keep the default; `overrides`
    (command-line options) win over both."""
    env = os.environ if env is None else env
    values: dict[str, object] = {"project": ""}
    if env.get("DOCKER_HOST"):  # the operator's own engine when run on the host
        values["docker_host"] = env["DOCKER_HOST"]
    for var, (field, kind) in ENV_FIELDS.items():
        raw = env.get(var, "").strip()
        if not raw:
            continue
        try:
            values[field] = kind(raw)
        except ValueError as error:
            raise ConfigError(f"{var}={raw!r}: not a valid {kind.__name__}") from error
    values.update({k: v for k, v in overrides.items() if v is not None})
    return SelfHealConfig(**values)  # type: ignore[arg-type]
