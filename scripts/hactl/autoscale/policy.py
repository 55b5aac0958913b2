"""The autoscaler's policy file: an HPA spec in YAML, checked before anything starts.

Keys follow the Kubernetes `autoscaling/v2` HorizontalPodAutoscaler (`minReplicas`, `metrics`,
`behavior.scaleUp.policies`, ...); `compose/autoscale-policy.yml` holds the diagrams' defaults.
Every mistake (min > max, a negative number, an unknown metric or key) is an `InvalidInputError`
naming the key, so `hactl autoscale` exits non-zero before it touches the stack.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hactl.autoscale.hpa import (
    HpaSpec,
    MetricTarget,
    PolicyType,
    RatePolicy,
    ScalingRules,
    SelectPolicy,
    TargetType,
)
from hactl.errors import InvalidInputError

DEFAULT_POLICY_FILE = Path("compose/autoscale-policy.yml")
# metric name -> the one target type it takes
METRICS = {
    "cpu": TargetType.UTILIZATION,
    "memory": TargetType.UTILIZATION,
    "requests_per_second": TargetType.AVERAGE_VALUE,
}
DEFAULT_RPS_QUERY = 'sum(rate(http_requests_total{job="web", handler!~"/healthz|/readyz"}[1m]))'
MAX_WINDOW_SECONDS = 3600  # Kubernetes' limit for stabilizationWindowSeconds
MAX_PERIOD_SECONDS = 1800  # ... and for periodSeconds
_BYTES = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTkmgt][iI]?[bB]?|[bB])?\s*$")
_UNITS = {
    "": 1,
    "B": 1,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "KI": 2**10,
    "MI": 2**20,
    "GI": 2**30,
    "TI": 2**40,
}


@dataclass(frozen=True)
class Limits:
    """Limits assumed for replicas that have none in Docker (0: none assumed)."""

    cpu: float = 0.0  # cores
    memory: int = 0  # bytes


@dataclass(frozen=True)
class AutoscalePolicy:
    spec: HpaSpec
    sync_period_seconds: float
    limits: Limits
    prometheus_url: str | None
    rps_query: str
    scale_timeout_seconds: float
    source: str


def _bad(where: str, message: str) -> InvalidInputError:
    return InvalidInputError(
        f"autoscale policy: {where}: {message}",
        "fix the policy file; compose/autoscale-policy.yml shows every key",
    )


def _mapping(value: Any, where: str, allowed: set[str]) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _bad(where, f"expected a mapping, got {type(value).__name__}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise _bad(
            where,
            f"unknown key(s) {', '.join(map(str, unknown))} (known: {', '.join(sorted(allowed))})",
        )
    return value


def _number(
    data: Mapping[str, Any],
    key: str,
    where: str,
    default: float | None = None,
    minimum: float = 0,
    maximum: float | None = None,
    integer: bool = False,
) -> float:
    value = data.get(key, default)
    if value is None:
        raise _bad(where, f"`{key}` is required")
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (integer and not isinstance(value, int))
    ):
        kind = "a whole number" if integer else "a number"
        raise _bad(where, f"`{key}` must be {kind}, got {value!r}")
    if value < minimum:
        raise _bad(where, f"`{key}` must be at least {minimum:g}, got {value!r}")
    if maximum is not None and value > maximum:
        raise _bad(where, f"`{key}` must be at most {maximum:g}, got {value!r}")
    return value


def parse_bytes(value: Any, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _BYTES.match(str(value))
    if not match:
        raise _bad(where, f"not a size: {value!r} (use e.g. 512Mi, 1Gi or a number of bytes)")
    unit = (match.group(2) or "").upper()
    if unit not in ("", "B"):
        unit = unit.removesuffix("B")
    return int(float(match.group(1)) * _UNITS[unit])


def _rules(data: Any, where: str) -> ScalingRules:
    body = _mapping(data, where, {"stabilizationWindowSeconds", "selectPolicy", "policies"})
    window = int(
        _number(body, "stabilizationWindowSeconds", where, maximum=MAX_WINDOW_SECONDS, integer=True)
    )
    raw_select = body.get("selectPolicy", "Max")
    try:
        select = SelectPolicy(raw_select)
    except ValueError as error:
        raise _bad(
            where, f"`selectPolicy` must be Max, Min or Disabled, got {raw_select!r}"
        ) from error
    raw_policies = body.get("policies") or []
    if not isinstance(raw_policies, list):
        raise _bad(where, "`policies` must be a list")
    policies = []
    for index, item in enumerate(raw_policies):
        at = f"{where}.policies[{index}]"
        policy = _mapping(item, at, {"type", "value", "periodSeconds"})
        try:
            kind = PolicyType(policy.get("type"))
        except ValueError as error:
            raise _bad(at, f"`type` must be Pods or Percent, got {policy.get('type')!r}") from error
        value = int(_number(policy, "value", at, minimum=1, integer=True))
        period = int(
            _number(
                policy, "periodSeconds", at, minimum=1, maximum=MAX_PERIOD_SECONDS, integer=True
            )
        )
        policies.append(RatePolicy(kind, value, period))
    if not policies and select is not SelectPolicy.DISABLED:
        raise _bad(where, "needs at least one policy (or selectPolicy: Disabled)")
    return ScalingRules(window, select, tuple(policies))


def _metric(item: Any, index: int) -> MetricTarget:
    where = f"metrics[{index}]"
    body = _mapping(item, where, {"name", "target"})
    name = body.get("name")
    if name not in METRICS:
        raise _bad(where, f"unknown metric {name!r} (known: {', '.join(METRICS)})")
    target = _mapping(
        body.get("target"), f"{where}.target", {"type", "averageUtilization", "averageValue"}
    )
    expected = METRICS[name]
    if target.get("type", expected.value) != expected.value:
        raise _bad(
            f"{where}.target", f"{name} takes type {expected.value}, got {target.get('type')!r}"
        )
    if expected is TargetType.UTILIZATION:
        value = _number(target, "averageUtilization", f"{where}.target", minimum=1, integer=True)
    else:
        value = _number(target, "averageValue", f"{where}.target", minimum=0.001)
    return MetricTarget(name, expected, float(value))


def parse_policy(data: Any, source: str = "<policy>") -> AutoscalePolicy:
    top = _mapping(
        data,
        "top level",
        {
            "minReplicas",
            "maxReplicas",
            "metrics",
            "behavior",
            "tolerance",
            "syncPeriodSeconds",
            "limits",
            "prometheus",
            "scaleTimeoutSeconds",
        },
    )
    min_replicas = int(_number(top, "minReplicas", "top level", minimum=1, integer=True))
    max_replicas = int(_number(top, "maxReplicas", "top level", minimum=1, integer=True))
    if min_replicas > max_replicas:
        raise _bad("top level", f"minReplicas {min_replicas} is above maxReplicas {max_replicas}")
    raw_metrics = top.get("metrics")
    if not isinstance(raw_metrics, list) or not raw_metrics:
        raise _bad("metrics", "needs a list with at least one metric")
    metrics = tuple(_metric(item, i) for i, item in enumerate(raw_metrics))
    names = [m.name for m in metrics]
    if len(set(names)) != len(names):
        raise _bad("metrics", f"a metric is listed twice: {names}")
    behavior = _mapping(top.get("behavior"), "behavior", {"scaleUp", "scaleDown"})
    if "scaleUp" not in behavior or "scaleDown" not in behavior:
        raise _bad("behavior", "needs both scaleUp and scaleDown")
    tolerance = float(_number(top, "tolerance", "top level", default=0.1, maximum=1))
    sync = float(_number(top, "syncPeriodSeconds", "top level", default=15, minimum=0.1))
    scale_timeout = float(_number(top, "scaleTimeoutSeconds", "top level", default=180, minimum=1))
    raw_limits = _mapping(top.get("limits"), "limits", {"cpu", "memory"})
    limits = Limits(
        cpu=float(_number(raw_limits, "cpu", "limits", default=0)),
        memory=parse_bytes(raw_limits.get("memory", 0), "limits.memory"),
    )
    prometheus = _mapping(top.get("prometheus"), "prometheus", {"url", "query"})
    url = prometheus.get("url")
    query = prometheus.get("query", DEFAULT_RPS_QUERY)
    if not isinstance(query, str) or not query.strip():
        raise _bad("prometheus", "`query` must be a PromQL expression")
    spec = HpaSpec(
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        metrics=metrics,
        scale_up=_rules(behavior["scaleUp"], "behavior.scaleUp"),
        scale_down=_rules(behavior["scaleDown"], "behavior.scaleDown"),
        tolerance=tolerance,
    )
    return AutoscalePolicy(
        spec, sync, limits, str(url) if url else None, query, scale_timeout, source
    )


def load_policy(path: Path) -> AutoscalePolicy:
    try:
        text = path.read_text()
    except OSError as error:
        raise InvalidInputError(
            f"autoscale policy {path}: cannot read it: {error.strerror}",
            "pass --policy with an existing file",
        ) from error
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise InvalidInputError(f"autoscale policy {path}: not valid YAML: {error}") from error
    return parse_policy(data, str(path))
