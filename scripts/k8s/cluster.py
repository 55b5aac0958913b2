"""A real three-node Kubernetes cluster in Docker containers: `make k8s-up` / `make k8s-down`.

Why: kwok (control_plane.py) proves the API objects; only running pods prove the deployment.
The design is kind's: every node is a privileged container (k8sn-node-N, image
scripts/k8s/node-image) with its own containerd, runc, CNI plugins, kubelet and kube-proxy.
The control plane is control_plane.py itself in a container of the same image (k8sn-control-plane):
the nodes reach it by a fixed address on the k8sn network, the `kubernetes` Service points at
it, and `docker rm` ends it (a host process would have to bind a host bridge address and outlive
`make`). The host sees only 127.0.0.1 ports: the API server and the ingress.

Pod network: each node gets a /24 from the controller-manager (node.spec.podCIDR); the CNI
`ptp` plugin wires pods to their node, and every node holds a route to every other node's /24
(kindnetd's arrangement, without an overlay). Services: kube-proxy (iptables) in every node;
names: CoreDNS. Nothing on the host is routed or filtered; the only host change is kubelet's
kernel sysctls (not namespaced), recorded before the first node starts and restored by `down`.

    python3 scripts/k8s/cluster.py up | down | status
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import node_image
from control_plane import (
    cache_dir,
    kubectl_path,
    read_versions,
    wait_for,
    write_kubeconfig,
)
from node_config import CLUSTER_CIDR, cni_config, write_node_config

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PREFIX = "k8sn"
NETWORK = PREFIX
SUBNET = os.environ.get("K8SN_SUBNET", "172.29.250.0/24")
CONTROL_PLANE = f"{PREFIX}-control-plane"
NODE_COUNT = 3
API_PORT = int(os.environ.get("K8SN_API_PORT", "16443"))
INGRESS_PORT = int(os.environ.get("K8SN_INGRESS_PORT", "18080"))
STATE = Path(os.environ.get("K8SN_STATE_DIR", "/tmp/k8sn-cluster"))
# kubelet's kernel tunables (pkg/kubelet/cm: setupKernelTunables): global, so a node container
# changes them on the host. Recorded before, restored by `down`.
HOST_SYSCTLS = (
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
)
INFRA_LABEL = "compose-ha/infra"
# Every node runs backend pods; only the infra node runs PostgreSQL, Traefik and CoreDNS (their
# manifests pin them there), so only it gets their images: 1.2 GB less to import twice.
BACKEND_IMAGES = ("compose-ha/web:latest",)
INFRA_IMAGES = ("compose-ha/postgres:15", "compose-ha/traefik:3.7.15")
PG_VOLUME = "/var/lib/k8sn-volumes/postgres"
REPO_TOKENS = "k8s/overlays/dev/secrets/api_tokens"
SERVICEMONITOR_CRD = REPO / "tests/k8s/data/crds/monitoring.coreos.com_servicemonitors.yaml"


def log(message: str) -> None:
    print(f"[k8s-cluster {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(*argv: str, input: bytes | None = None, check: bool = True) -> str:
    result = subprocess.run(argv, input=input, capture_output=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout.decode(errors="replace")


def address(index: int) -> str:
    """Fixed addresses on the k8sn network: .2 the control plane, .11.. the nodes."""
    base = SUBNET.split("/")[0].rsplit(".", 1)[0]
    return f"{base}.{index}"


@dataclass(frozen=True)
class Node:
    index: int

    @property
    def name(self) -> str:
        return f"{PREFIX}-node-{self.index}"

    @property
    def ip(self) -> str:
        return address(10 + self.index)

    @property
    def infra(self) -> bool:
        """Node 1 holds the ingress, DNS and PostgreSQL (kind's control-plane role)."""
        return self.index == 1

    @property
    def config_dir(self) -> Path:
        return STATE / "nodes" / self.name

    def exec(self, *argv: str, input: bytes | None = None, check: bool = True) -> str:
        return run("docker", "exec", "-i", self.name, *argv, input=input, check=check)


NODES = [Node(i) for i in range(1, NODE_COUNT + 1)]


def kubectl(*args: str, input: str | None = None, check: bool = True) -> str:
    result = subprocess.run(
        [kubectl_path(), f"--kubeconfig={STATE / 'kubeconfig'}", *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


# --- host sysctls -------------------------------------------------------------------------------
def record_sysctls() -> None:
    """Write the host's values once; a second `up` after a failed one keeps the first record."""
    record = STATE.parent / f"{STATE.name}-host-sysctls.json"
    if record.exists():
        return
    values = {name: run("sysctl", "-n", name).strip() for name in HOST_SYSCTLS}
    record.write_text(json.dumps(values, indent=2))
    log(f"host sysctls recorded in {record}: {values}")


def restore_sysctls() -> None:
    record = STATE.parent / f"{STATE.name}-host-sysctls.json"
    if not record.exists():
        return
    values = json.loads(record.read_text())
    for name, value in values.items():
        run("sysctl", "-qw", f"{name}={value}")
    record.unlink()
    log(f"host sysctls restored: {values}")


# --- containers ---------------------------------------------------------------------------------
def container_exists(name: str) -> bool:
    return bool(run("docker", "ps", "-aq", "--filter", f"name=^{name}$").strip())


def start_control_plane(image: str) -> None:
    workdir = STATE / "control-plane"
    run(
        "docker", "run", "-d", "--name", CONTROL_PLANE, "--hostname", CONTROL_PLANE,
        "--network", NETWORK, "--ip", address(2),
        "-p", f"127.0.0.1:{API_PORT}:6443",
        "-v", f"{cache_dir()}:/opt/k8s-cache:ro", "-e", "K8S_CACHE_DIR=/opt/k8s-cache",
        "-v", f"{HERE}:/opt/k8s-scripts:ro",
        "-v", f"{kubectl_path()}:/usr/local/bin/kubectl:ro",
        "-v", f"{workdir}:/state",
        image,
        "python3", "/opt/k8s-scripts/control_plane.py", "up", "--workdir", "/state",
        "--no-kwok", "--bind-address", "0.0.0.0", "--apiserver-port", "6443",
        "--advertise-address", address(2), "--san", address(2), "--san", CONTROL_PLANE,
        "--cluster-cidr", CLUSTER_CIDR,
    )  # fmt: skip
    pki = workdir / "pki"
    # The admin kubeconfig for the host: the published port on 127.0.0.1.
    # sa.pub is the last file make_pki writes.
    wait_for("control-plane PKI", lambda: (pki / "sa.pub").exists(), 120)
    write_kubeconfig(STATE / "kubeconfig", pki, API_PORT)

    def ready() -> bool:
        if not run("docker", "ps", "-q", "--filter", f"name=^{CONTROL_PLANE}$").strip():
            raise RuntimeError(run("docker", "logs", "--tail", "50", CONTROL_PLANE))
        return kubectl("get", "--raw", "/readyz", check=False) == "ok"

    wait_for("API server /readyz on 127.0.0.1", ready, 180, interval=0.5)


def start_node(node: Node, image: str) -> None:
    ports = ["-p", f"127.0.0.1:{INGRESS_PORT}:80"] if node.infra else []
    run(
        "docker", "run", "-d", "--name", node.name, "--hostname", node.name,
        "--network", NETWORK, "--ip", node.ip,
        # kind's node is --privileged, which fails here: the engine's capability bounding set
        # lacks CAP_SYS_RESOURCE, and --privileged asks for every capability ("unable to apply
        # caps: operation not permitted"). The same powers one by one: every capability but
        # that one, all devices, unmasked /proc and /sys (the entrypoint remounts the cgroup
        # hierarchies read-write), no seccomp or AppArmor profile. Its own cgroup namespace:
        # kubelet sees its cgroup as the root. A real filesystem for containerd's overlay
        # snapshots (overlay on the container's overlay root fails).
        "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
        "--device-cgroup-rule", "a *:* rwm", "--device", "/dev/kmsg",
        "--security-opt", "systempaths=unconfined", "--cgroupns=private",
        "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
        "--tmpfs", "/run", "--tmpfs", "/tmp",
        "-v", "/lib/modules:/lib/modules:ro",
        "-v", f"{node.name}-containerd:/var/lib/containerd",
        "-v", f"{node.config_dir}:/etc/kubernetes:ro",
        *ports,
        image, "node",
    )  # fmt: skip


def image_archive(tag: str) -> Path:
    """`docker save` of a local image, cached by image id: saved once, imported into 3 nodes."""
    image_id = run("docker", "image", "inspect", "--format", "{{.Id}}", tag).strip()
    archive = cache_dir() / "images" / f"{image_id.split(':')[-1][:16]}.tar"
    if not archive.exists():
        archive.parent.mkdir(parents=True, exist_ok=True)
        tmp = archive.with_suffix(".part")
        run("docker", "save", "-o", str(tmp), tag)
        tmp.rename(archive)
    return archive


def import_images(node: Node, tags: list[str]) -> None:
    wait_for(f"{node.name} containerd", lambda: bool(node.exec("ctr", "version")), 60)
    have = node.exec("ctr", "-n", "k8s.io", "images", "ls", "-q")
    for tag in tags:
        ref = tag if "/" in tag else f"docker.io/library/{tag}"
        ref = ref if ref.startswith("docker.io/") else f"docker.io/{ref}"
        if ref in have.split():
            continue
        with image_archive(tag).open("rb") as archive:
            subprocess.run(
                ["docker", "exec", "-i", node.name, "ctr", "-n", "k8s.io", "images", "import", "-"],
                stdin=archive,
                check=True,
                capture_output=True,
            )


def node_objects() -> dict[str, dict]:
    return {
        n["metadata"]["name"]: n for n in json.loads(kubectl("get", "nodes", "-o", "json"))["items"]
    }


def ready_nodes() -> list[str]:
    ready = []
    for name, node in node_objects().items():
        conditions = {c["type"]: c["status"] for c in node["status"].get("conditions", [])}
        if conditions.get("Ready") == "True":
            ready.append(name)
    return ready


def wire_pod_network() -> None:
    """CNI config per node from its podCIDR, and routes to every other node's pod range."""
    wait_for(
        f"{NODE_COUNT} nodes registered with a podCIDR",
        lambda: sum(bool(n["spec"].get("podCIDR")) for n in node_objects().values()) == NODE_COUNT,
        180,
        interval=1,
    )
    cidrs = {name: n["spec"]["podCIDR"] for name, n in node_objects().items()}
    for node in NODES:
        node.exec(
            "sh", "-c", "cat > /etc/cni/net.d/10-k8sn.conflist",
            input=cni_config(cidrs[node.name]).encode(),
        )  # fmt: skip
        for other in NODES:
            if other is not node:
                node.exec("ip", "route", "replace", cidrs[other.name], "via", other.ip)
    log(f"pod network: {cidrs}")


# --- up / down ----------------------------------------------------------------------------------
def up() -> None:
    t0 = time.monotonic()
    versions = read_versions()
    log("binaries (scripts/k8s/build-binaries.sh, K8S_BUILD_NODE=1)")
    subprocess.run(
        ["bash", str(HERE / "build-binaries.sh")],
        env={**os.environ, "K8S_BUILD_NODE": "1"},
        check=True,
    )
    images = node_image.build_all()
    if container_exists(CONTROL_PLANE) or any(container_exists(n.name) for n in NODES):
        log("an earlier cluster is there: removing it first")
        down(restore=False)
    shutil.rmtree(STATE, ignore_errors=True)
    STATE.mkdir(parents=True)
    record_sysctls()
    run("docker", "network", "create", "--subnet", SUBNET, NETWORK)
    log("control plane")
    start_control_plane(images["node"])
    pki = STATE / "control-plane" / "pki"
    log(f"control plane ready at {time.monotonic() - t0:.1f} s")
    for node in NODES:
        write_node_config(node.config_dir, node.name, node.ip, address(2), pki)
        start_node(node, images["node"])
    for node in NODES:
        tags = [images["pause"], *BACKEND_IMAGES]
        if node.infra:
            tags += [images["coredns"], *INFRA_IMAGES]
        import_images(node, tags)
        if node.infra:
            # PostgreSQL's data (k8s/cluster/postgres-volume.yaml), owned by the image's
            # postgres user (k8s/overlays/local).
            node.exec("sh", "-c", f"mkdir -p {PG_VOLUME} && chown 100:102 {PG_VOLUME}")
    log(f"images imported at {time.monotonic() - t0:.1f} s")
    wire_pod_network()
    wait_for(f"{NODE_COUNT} nodes Ready", lambda: len(ready_nodes()) == NODE_COUNT, 180, interval=1)
    kubectl("label", "node", NODES[0].name, f"{INFRA_LABEL}=true", "--overwrite")
    # Zones as the base's topology spread expects them: one node per zone.
    for node in NODES:
        kubectl(
            "label",
            "node",
            node.name,
            f"topology.kubernetes.io/zone=zone-{'abc'[node.index - 1]}",
            "--overwrite",
        )
    log(f"nodes Ready at {time.monotonic() - t0:.1f} s")
    kubectl("apply", "--server-side", "-f", str(SERVICEMONITOR_CRD))
    kubectl(
        "wait",
        "--for=condition=Established",
        "crd/servicemonitors.monitoring.coreos.com",
        "--timeout=60s",
    )
    kubectl("apply", "-k", str(REPO / "k8s/cluster"))
    gen = REPO / "scripts/k8s/gen-secrets.sh"
    run("bash", str(gen), str(REPO / "k8s/overlays/dev"))
    kubectl("apply", "-k", str(REPO / "k8s/overlays/local"))
    for kind, name, ns in (
        ("deployment", "coredns", "kube-system"),
        ("deployment", "traefik", "ingress-traefik"),
        ("statefulset", "postgres", "jackcwf-dev"),
        ("deployment", "jackcwf-backend", "jackcwf-dev"),
    ):
        kubectl("-n", ns, "rollout", "status", f"{kind}/{name}", "--timeout=300s")
    log(f"cluster up in {time.monotonic() - t0:.1f} s; versions {versions['K8S_VERSION']}")
    print(f"export KUBECONFIG={STATE / 'kubeconfig'}")
    print(f"ingress: http://127.0.0.1:{INGRESS_PORT}/api/ (token: {REPO_TOKENS})")


def down(restore: bool = True) -> None:
    """Remove every k8sn- container, volume and the network; restore the host sysctls."""
    t0 = time.monotonic()
    names = [CONTROL_PLANE, *(n.name for n in NODES)]
    present = [n for n in names if container_exists(n)]
    if present:
        run("docker", "rm", "-f", "-v", *present)
    volumes = [f"{n.name}-containerd" for n in NODES]
    run("docker", "volume", "rm", *volumes, check=False)
    with contextlib.suppress(RuntimeError):
        if run("docker", "network", "ls", "-q", "--filter", f"name=^{NETWORK}$").strip():
            run("docker", "network", "rm", NETWORK)
    shutil.rmtree(STATE, ignore_errors=True)
    if restore:
        restore_sysctls()
    log(f"down in {time.monotonic() - t0:.1f} s (removed: {', '.join(present) or 'nothing'})")


def status() -> int:
    for name in [CONTROL_PLANE, *(n.name for n in NODES)]:
        state = run("docker", "inspect", "--format", "{{.State.Status}}", name, check=False).strip()
        print(f"{name}: {state or 'absent'}")
    if (STATE / "kubeconfig").exists():
        print(kubectl("get", "nodes,pods", "-A", "-o", "wide", check=False))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args()
    if args.command == "up":
        up()
    elif args.command == "down":
        down()
    else:
        return status()
    return 0


if __name__ == "__main__":
    sys.exit(main())
