"""Does the compose model give new `web` containers other Traefik labels than the running ones?

Traefik merges the containers of one service only when their labels define the same service.
If a new replica's `traefik.*` labels differ (someone edited docker-compose.ha.yml since the
stack started), Traefik logs "HTTP service defined multiple times with different
configurations" and drops the service: every request 404s until the mix is gone (measured here
with a changed health-check timeout). So scale-up and rollout refuse to start replicas whose
Traefik labels differ from the running ones; a label change needs `make up-ha` (recreates all).
"""

from __future__ import annotations

from collections.abc import Mapping

TRAEFIK_PREFIX = "traefik."


def traefik_labels(labels: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k.startswith(TRAEFIK_PREFIX)}


def traefik_label_drift(model: Mapping[str, str], running: Mapping[str, str]) -> list[str]:
    """Human-readable differences of the traefik.* labels, sorted by key; empty if none."""
    new, old = traefik_labels(model), traefik_labels(running)
    changes = []
    for key in sorted(set(new) | set(old)):
        if new.get(key) != old.get(key):
            changes.append(f"{key}: {old.get(key, '<unset>')!r} -> {new.get(key, '<unset>')!r}")
    return changes
