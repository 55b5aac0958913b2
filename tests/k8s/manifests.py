"""Rendering k8s/ for tests: a copy of the tree with generated secrets, then `kubectl kustomize`.

A copy, so that the tests never write secret files into the repository; the secrets are the
ones scripts/k8s/gen-secrets.sh writes for a user, with a database URL on a `.invalid` host
(RFC 6761: it can never resolve, and no container runs here anyway).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
K8S_DIR = REPO / "k8s"
GEN_SECRETS = REPO / "scripts" / "k8s" / "gen-secrets.sh"
OVERLAYS = ("dev", "prod")
NAMESPACES = {"dev": "jackcwf-dev", "prod": "jackcwf"}
FAKE_DATABASE_URL = "postgresql://app:not-a-secret@db.invalid:5432/app"

sys.path.insert(0, str(REPO / "scripts" / "k8s"))
from control_plane import kubectl_path  # noqa: E402


def prepared_tree(dest: Path) -> Path:
    """k8s/ copied under `dest` with every overlay's secrets generated; the copy's k8s dir."""
    tree = dest / "k8s"
    shutil.copytree(K8S_DIR, tree, ignore=shutil.ignore_patterns("secrets"))
    env = {**os.environ, "DATABASE_URL": FAKE_DATABASE_URL}
    for overlay in OVERLAYS:
        subprocess.run(
            ["bash", str(GEN_SECRETS), str(tree / "overlays" / overlay)],
            env=env,
            check=True,
            capture_output=True,
        )
    return tree


def render(overlay_dir: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        [kubectl_path(), "kustomize", str(overlay_dir)], capture_output=True, text=True
    )
    assert out.returncode == 0, f"kubectl kustomize {overlay_dir}: {out.stderr}"
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d
        for d in docs
        if d["kind"] == kind and (name is None or d["metadata"]["name"].startswith(name))
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def seconds(value: str) -> float:
    """Compose/Docker durations as used here: '30s', '1s', '500ms'."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", value.strip())
    assert match, f"not a duration: {value!r}"
    number, unit = float(match.group(1)), match.group(2)
    return number * {"ms": 0.001, "s": 1, "m": 60}[unit]
