"""The pure parts of `hactl verify` (hactl.ops.verify)."""

from __future__ import annotations

from collections import Counter

from hactl.ops.verify import prometheus_web_targets, spread_within_tolerance


def test_spread_within_tolerance() -> None:
    ok, _ = spread_within_tolerance(Counter(a=20, b=19, c=21), ["a", "b", "c"], 0.5)
    assert ok
    lopsided, detail = spread_within_tolerance(Counter(a=50, b=5, c=5), ["a", "b", "c"], 0.5)
    assert not lopsided
    assert "a=50" in detail
    missing, _ = spread_within_tolerance(Counter(a=30, b=30), ["a", "b", "c"], 0.5)
    assert not missing
    stranger, detail = spread_within_tolerance(Counter(a=30, z=1), ["a"], 0.5)
    assert not stranger
    assert "unexpected" in detail
    assert spread_within_tolerance(Counter(), ["a"], 0.5)[0] is False


def test_prometheus_targets_keep_replica_port_only() -> None:
    targets = {
        "status": "success",
        "data": {
            "activeTargets": [
                {"labels": {"instance": "172.27.0.4:8000", "job": "web"}, "health": "up"},
                {"labels": {"instance": "172.27.0.5:8000", "job": "web"}, "health": "down"},
                {"labels": {"instance": "traefik:8082", "job": "traefik"}, "health": "up"},
            ]
        },
    }
    assert prometheus_web_targets(targets) == {"172.27.0.4": "up", "172.27.0.5": "down"}
    assert prometheus_web_targets({}) == {}
