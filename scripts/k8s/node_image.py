"""Build the images a real node needs: the pause image and the node image (make k8s-up).

Why: no image can be pulled here (ENVIRONMENT.md). containerd needs a sandbox ("pause") image,
so it is compiled from pause.c of the Kubernetes module, as Kubernetes' own build/pause does,
into a FROM-scratch image. The node image (scripts/k8s/node-image/Dockerfile) gets kubelet and
kube-proxy from the binary cache. CoreDNS gets a FROM-scratch image around its cached binary.
Each image carries a label with the hash of what it was built from; an image whose label
matches is reused, so a warm run builds nothing.

    python3 scripts/k8s/node_image.py          # build what is missing, print the tags
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from control_plane import cache_dir, read_versions

HERE = Path(__file__).resolve().parent
NODE_CONTEXT = HERE / "node-image"
HASH_LABEL = "k8sn.source-hash"
# CPU-heavy steps yield to the lead's timing-sensitive tests on this 2-core machine.
NICE = ["nice", "-n", "19"]


def go_mod_cache() -> Path:
    out = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def source_hash(files: list[Path], extra: str = "") -> str:
    digest = hashlib.sha256(extra.encode())
    for path in sorted(files):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def image_label(tag: str) -> str | None:
    """The source-hash label of a local image; None when the image is not there."""
    result = subprocess.run(
        [
            "docker",
            "image",
            "inspect",
            "--format",
            f'{{{{index .Config.Labels "{HASH_LABEL}"}}}}',
            tag,
        ],
        capture_output=True,
        text=True,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def build(tag: str, context: Path, files: list[Path], extra_hash: str = "") -> str:
    """docker build `context` as `tag` unless an image with the same source hash exists."""
    wanted = source_hash(files, extra_hash)
    if image_label(tag) == wanted:
        print(f"{tag}: cached ({HASH_LABEL}={wanted})", flush=True)
        return tag
    print(f"{tag}: building", flush=True)
    subprocess.run(
        [
            *NICE,
            "docker",
            "build",
            "-q",
            "--label",
            f"{HASH_LABEL}={wanted}",
            "-t",
            tag,
            str(context),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return tag


def scratch_image(tag: str, binary: Path, argv: list[str], extra_hash: str = "") -> str:
    """A FROM-scratch image holding one static binary at /<name>."""
    with tempfile.TemporaryDirectory(prefix="k8sn-image-") as tmp:
        context = Path(tmp)
        shutil.copy2(binary, context / binary.name)
        entry = ", ".join(f'"{a}"' for a in [f"/{binary.name}", *argv])
        (context / "Dockerfile").write_text(
            f"FROM scratch\nCOPY {binary.name} /{binary.name}\nENTRYPOINT [{entry}]\n"
        )
        return build(tag, context, [context / binary.name, context / "Dockerfile"], extra_hash)


def pause_image(versions: dict[str, str]) -> str:
    """pause.c compiled static (Kubernetes' build/pause/Makefile CFLAGS) into k8sn-pause."""
    version = versions["PAUSE_VERSION"]
    source = (
        go_mod_cache() / f"k8s.io/kubernetes@{versions['K8S_VERSION']}/build/pause/linux/pause.c"
    )
    if not source.is_file():
        subprocess.run(
            ["go", "mod", "download", f"k8s.io/kubernetes@{versions['K8S_VERSION']}"], check=True
        )
    tag = f"k8sn-pause:{version}"
    with tempfile.TemporaryDirectory(prefix="k8sn-pause-") as tmp:
        binary = Path(tmp) / "pause"
        subprocess.run(
            [*NICE, "gcc", "-Os", "-Wall", "-Werror", "-static", f"-DVERSION=v{version}",
             "-o", str(binary), str(source)],
            check=True,
        )  # fmt: skip
        # The binary differs per compiler run only in build ids: hash the source instead.
        return scratch_image(tag, binary, [], extra_hash=source.read_text() + version)


def coredns_image(versions: dict[str, str]) -> str:
    version = versions["COREDNS_VERSION"]
    binary = cache_dir() / f"coredns-{version}" / "coredns"
    return scratch_image(f"k8sn-coredns:{version}", binary, [])


def node_image(versions: dict[str, str]) -> str:
    """scripts/k8s/node-image plus the cached kubelet and kube-proxy."""
    k8s = cache_dir() / f"kubernetes-{versions['K8S_VERSION']}"
    tag = f"k8sn-node:{versions['K8S_VERSION']}"
    with tempfile.TemporaryDirectory(prefix="k8sn-node-") as tmp:
        context = Path(tmp)
        shutil.copytree(NODE_CONTEXT, context, dirs_exist_ok=True)
        for name in ("kubelet", "kube-proxy"):
            shutil.copy2(k8s / name, context / name)
        return build(tag, context, [p for p in context.iterdir() if p.is_file()])


def build_all() -> dict[str, str]:
    versions = read_versions()
    return {
        "pause": pause_image(versions),
        "coredns": coredns_image(versions),
        "node": node_image(versions),
    }


if __name__ == "__main__":
    for role, tag in build_all().items():
        print(f"{role}: {tag}")
    sys.exit(0)
