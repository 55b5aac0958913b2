"""What one real node is told: kubelet's and kube-proxy's configuration, its certificates and
kubeconfigs, and the CNI configuration of its pod range (scripts/k8s/cluster.py mounts the
directory at /etc/kubernetes in the node container and writes the CNI file once the
controller-manager has given the node its podCIDR). Each setting says which fact of these
machines (cgroup v1, no systemd, shared kernel) it answers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from control_plane import _cert, write_kubeconfig

CLUSTER_CIDR = "10.244.0.0/16"
CLUSTER_DNS = "10.0.0.10"


def kubelet_config() -> dict:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # The host is cgroup v1 without systemd (KUBERNETES.md): kubelet 1.37 refuses v1 unless
        # told, and the cgroupfs driver matches containerd's runc options.
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        # Pods under /kubelet of the node container's own cgroup (kind: cgroup-root).
        "cgroupRoot": "/kubelet",
        "containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": "/etc/kubernetes/ca.crt"},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDNS": [CLUSTER_DNS],
        "clusterDomain": "cluster.local",
        "failSwapOn": False,
        # kind's settings: the nodes share the host's disk; no eviction or image GC because
        # of the other nodes' usage (the images are imported once and cannot be pulled again).
        "evictionHard": {
            "imagefs.available": "0%",
            "nodefs.available": "0%",
            "nodefs.inodesFree": "0%",
        },
        "imageGCHighThresholdPercent": 100,
        # Faster node-status updates than the 10 s default do not change what the tests
        # measure; the defaults stay (node-monitor-grace-period is the controller's).
    }


def kube_proxy_config(node_name: str) -> dict:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": "/etc/kubernetes/kube-proxy.kubeconfig"},
        "mode": "iptables",
        "clusterCIDR": CLUSTER_CIDR,
        "hostnameOverride": node_name,
        # Zero: do not write the conntrack sysctls, which are the host's (kind does the same).
        "conntrack": {
            "maxPerCore": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
    }


def write_node_config(
    directory: Path, node_name: str, node_ip: str, api_server: str, pki: Path
) -> None:
    """Certificates, kubeconfigs and component configs of one node, mounted at /etc/kubernetes."""
    d = directory
    d.mkdir(parents=True, exist_ok=True)
    shutil.copy2(pki / "ca.crt", d / "ca.crt")
    client = "extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\n"
    # The Node authorizer's identity: system:node:<name> in system:nodes.
    _cert(pki, f"kubelet-{node_name}", "ca", f"/O=system:nodes/CN=system:node:{node_name}", client)
    # The built-in system:node-proxier binding names the user system:kube-proxy.
    if not (pki / "kube-proxy.crt").exists():
        _cert(pki, "kube-proxy", "ca", "/CN=system:kube-proxy", client)
    for src, dst in ((f"kubelet-{node_name}", "kubelet"), ("kube-proxy", "kube-proxy")):
        for ext in ("crt", "key"):
            shutil.copy2(pki / f"{src}.{ext}", d / f"{dst}.{ext}")
        # Paths as the node sees them; the API server by its fixed address on the network.
        write_kubeconfig(
            d / f"{dst}.kubeconfig", Path("/etc/kubernetes"), 6443, api_server, user=dst
        )
    (d / "kubelet.yaml").write_text(json.dumps(kubelet_config(), indent=2))
    (d / "kube-proxy.yaml").write_text(json.dumps(kube_proxy_config(node_name), indent=2))
    (d / "node-ip").write_text(node_ip)
    (d / "cluster-cidr").write_text(CLUSTER_CIDR)


def cni_config(pod_cidr: str) -> str:
    """ptp + host-local (kindnetd's CNI config) and portmap for the ingress's hostPort."""
    return json.dumps(
        {
            "cniVersion": "0.4.0",
            "name": "k8sn",
            "plugins": [
                {
                    "type": "ptp",
                    "ipMasq": False,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": "/run/cni-ipam-state",
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "ranges": [[{"subnet": pod_cidr}]],
                    },
                    "mtu": 1500,
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        },
        indent=2,
    )
