"""Traefik label drift between the compose model and running replicas (hactl.stack.label_drift)."""

from __future__ import annotations

from hactl.stack.label_drift import traefik_label_drift


def test_traefik_label_drift_ignores_other_labels() -> None:
    running = {"traefik.enable": "true", "traefik.x.timeout": "800ms", "other": "1"}
    model = {
        "traefik.enable": "true",
        "traefik.x.timeout": "1500ms",
        "other": "2",
        "traefik.y": "new",
    }
    assert traefik_label_drift(model, running) == [
        "traefik.x.timeout: '800ms' -> '1500ms'",
        "traefik.y: '<unset>' -> 'new'",
    ]
    assert traefik_label_drift(running, dict(running, other="3")) == []
