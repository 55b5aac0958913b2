#!/bin/bash
# Node container entrypoint: `entrypoint.sh node` runs containerd, kubelet and kube-proxy (no
# systemd here: this script supervises them); anything else is exec'd (the control-plane
# container runs scripts/k8s/control_plane.py). Configuration comes from /etc/kubernetes, a
# per-node directory scripts/k8s/cluster.py writes on the host and mounts read-only.
set -euo pipefail
[ "${1:-}" = node ] || exec "$@"

log() { printf '[node %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

# Mounts made inside the node (pod volumes) must reach containerd's shims (kind: fix_mount).
mount --make-rshared /

# cgroup v1 with a private cgroup namespace (docker run --cgroupns=private): the container's
# cgroup is the root here. kubelet (cgroupfs driver) puts the pods under /kubelet, which must
# exist in every hierarchy (kind: mount_kubelet_cgroup_root); the host sees it below the
# container's own cgroup, so removing the container removes it.
# Without --privileged (see cluster.py) Docker mounts the hierarchies read-only: remount them.
mount -o remount,rw /sys
for hierarchy in /sys/fs/cgroup/*/; do
	mount -o remount,bind,rw "$hierarchy"
	case $hierarchy in */unified/) continue ;; esac
	mkdir -p "${hierarchy}kubelet"
done

# Pods reach addresses outside the pod network (the API server's container, the host) from the
# node's address; pod-to-pod traffic between nodes keeps the pod addresses (routes, no overlay).
cluster_cidr=$(cat /etc/kubernetes/cluster-cidr)
iptables -t nat -C POSTROUTING -s "$cluster_cidr" ! -d "$cluster_cidr" -j MASQUERADE 2>/dev/null ||
	iptables -t nat -A POSTROUTING -s "$cluster_cidr" ! -d "$cluster_cidr" -j MASQUERADE

children=()
stop() {
	log "stopping"
	kill "${children[@]}" 2>/dev/null || true
	wait
	exit 0
}
trap stop TERM INT

# supervise NAME CMD...: restart CMD when it exits (as systemd's Restart=always would).
supervise() {
	local name=$1
	shift
	(
		trap 'kill $pid 2>/dev/null; wait $pid; exit 0' TERM
		while true; do
			"$@" >>"/var/log/$name.log" 2>&1 &
			pid=$!
			wait $pid || true
			log "$name exited ($?), restarting in 1 s" >>"/var/log/$name.log"
			sleep 1
		done
	) &
	children+=($!)
}

supervise containerd containerd --config /etc/containerd/config.toml
until ctr version >/dev/null 2>&1; do sleep 0.2; done
log "containerd ready"

node_ip=$(cat /etc/kubernetes/node-ip)
supervise kubelet kubelet --config=/etc/kubernetes/kubelet.yaml \
	--kubeconfig=/etc/kubernetes/kubelet.kubeconfig --node-ip="$node_ip" \
	--hostname-override="$(hostname)" --v=1
supervise kube-proxy kube-proxy --config=/etc/kubernetes/kube-proxy.yaml --v=1
log "kubelet and kube-proxy started"
wait
