"""The create request for a replacement replica, copied from a running sibling's inspect data.

Compose is not asked to do it: `up --scale` never refills number gaps and needs the whole Docker
API (networks, volumes, images, builds), which the controller's socket proxy does not allow.
A sibling already carries everything Compose derived from the model (image, env, labels with the
config hash, mounts, limits, security options, network and aliases), so a copy with a new name
and number is what Compose itself would have created; a later `up` sees a matching config hash
and leaves it alone.

Engine API 1.41 takes one network in the create call: the others are connected afterwards.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

LABEL_NUMBER = "com.docker.compose.container-number"
LABEL_CLONED_FROM = "io.compose-ha.selfheal.cloned-from"
# Per-container values of the sibling that must not be copied.
CONFIG_DROP = ("Hostname",)
# Values the engine filled in by default rather than Compose: left to the engine again. The
# cgroup namespace mode is "host" by default on cgroup v1 hosts, and the socket proxy refuses any
# create that asks for a host namespace.
HOST_CONFIG_DEFAULTS = ("CgroupnsMode",)


@dataclass(frozen=True)
class ClonePlan:
    name: str
    body: dict[str, Any]
    # network name -> endpoint settings to connect after create (all but the primary one)
    extra_networks: dict[str, dict[str, Any]]


def _endpoint(settings: dict[str, Any], template_names: set[str], name: str) -> dict[str, Any]:
    """Aliases kept except the sibling's own (its name, its short id); the new name added."""
    aliases = [a for a in settings.get("Aliases") or [] if a not in template_names]
    if name not in aliases:
        aliases.append(name)
    return {"Aliases": aliases}


def clone_request(template: dict[str, Any], name: str, number: int) -> ClonePlan:
    """`template` is the inspect result of a running replica of the same service."""
    config = copy.deepcopy(template["Config"])
    for key in CONFIG_DROP:
        config.pop(key, None)
    labels = dict(config.get("Labels") or {})
    labels[LABEL_NUMBER] = str(number)
    labels[LABEL_CLONED_FROM] = template["Name"].lstrip("/")
    config["Labels"] = labels
    host_config = copy.deepcopy(template["HostConfig"])
    for key in HOST_CONFIG_DEFAULTS:
        host_config.pop(key, None)
    template_names = {template["Name"].lstrip("/"), template["Id"][:12], template["Id"]}
    networks: dict[str, Any] = template.get("NetworkSettings", {}).get("Networks") or {}
    primary = host_config.get("NetworkMode") or next(iter(networks), "")
    endpoints = {net: _endpoint(s, template_names, name) for net, s in networks.items()}
    body = {
        **config,
        "HostConfig": host_config,
        "NetworkingConfig": {
            "EndpointsConfig": {primary: endpoints[primary]} if primary in endpoints else {}
        },
    }
    extra = {net: ep for net, ep in endpoints.items() if net != primary}
    return ClonePlan(name, body, extra)
