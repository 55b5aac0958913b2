#!/usr/bin/env bash
# Build the Kubernetes control-plane binaries the k8s tests run, from the Go module proxy.
#
# Why: no release download and no image pull works here (see docs/kubernetes.md), but every
# component builds from its Go module. Builds are long (20-35 min on a fresh 2-core machine), so
# each binary is cached outside the repository, keyed by component and version:
#   ${K8S_CACHE_DIR:-~/.cache/compose-ha/k8s}/<component>-<version>/<binary>
# A warm run only checks that the files exist (seconds). Safe to run twice at once (flock).
#
# Usage: scripts/k8s/build-binaries.sh [--print-dir]
#   K8S_BUILD_NICE (default 19), K8S_BUILD_PROCS (GOMAXPROCS and go -p, default 1).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/k8s/versions.env
. "$HERE/versions.env"

CACHE=${K8S_CACHE_DIR:-$HOME/.cache/compose-ha/k8s}
NICE=${K8S_BUILD_NICE:-19}
PROCS=${K8S_BUILD_PROCS:-1}
export GOMAXPROCS=$PROCS GOFLAGS="-p=$PROCS" CGO_ENABLED=0 GOTOOLCHAIN=local

if [ "${1:-}" = "--print-dir" ]; then echo "$CACHE"; exit 0; fi

command -v go >/dev/null || { echo "build-binaries: go is not on PATH" >&2; exit 1; }
# nice orders processes only inside one autogroup (kernel.sched_autogroup_enabled: one group per
# session), and groups share the CPU equally: a build inside CI's session takes that whole
# session's share from the test stacks' containers. Started in a session of its own (.ci/run uses
# setsid), the build puts its group at the same nice, so it gets only CPU nobody else wants.
if [ "$(ps -o sid= -p $$ | tr -d ' ')" = "$$" ] && [ -w /proc/self/autogroup ]; then
	echo "$NICE" >/proc/self/autogroup || true
fi
mkdir -p "$CACHE"
exec 9>"$CACHE/.build.lock"
if ! flock -n 9; then
	echo "build-binaries: another build holds $CACHE/.build.lock; waiting for it"
	flock 9
fi

log() { printf '[k8s-build %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
run() { nice -n "$NICE" "$@"; }

# done_or_build DIR BIN: true when DIR/BIN is already built (the cache hit path).
have() { [ -x "$CACHE/$1/$2" ]; }

# go_install DIR BIN PKG@VER: plain `go install` into a temporary GOBIN, then move into the cache.
go_install() {
	local dir=$1 bin=$2 pkg=$3 tmp start
	have "$dir" "$bin" && { log "$bin: cached ($CACHE/$dir)"; return; }
	log "$bin: building $pkg (go install)"
	start=$(date +%s)
	tmp=$(mktemp -d "$CACHE/.tmp-$bin.XXXX")
	trap 'rm -rf "$tmp"' EXIT
	GOBIN=$tmp run go install -trimpath -ldflags '-s -w' "$pkg"
	mkdir -p "$CACHE/$dir"
	# The binary is named after the package's last path element (e.g. "v3" -> "server").
	mv "$(find "$tmp" -maxdepth 1 -type f | head -1)" "$CACHE/$dir/$bin"
	rm -rf "$tmp"
	trap - EXIT # the trap names a local that is gone when the script exits (set -u)
	log "$bin: built in $(($(date +%s) - start)) s"
}

# etcd's server module has ../ replace directives, which `go install pkg@v` refuses: build it
# from a small wrapper module that requires it (its siblings then resolve by version).
etcd_build() {
	local dir=etcd-$ETCD_VERSION w=$CACHE/.wrapper-etcd-$ETCD_VERSION start
	have "$dir" etcd && { log "etcd: cached ($CACHE/$dir)"; return; }
	log "etcd: building go.etcd.io/etcd/server/v3 $ETCD_VERSION (wrapper module)"
	start=$(date +%s)
	rm -rf "$w" && mkdir -p "$w" "$CACHE/$dir"
	printf 'module example.local/etcdbin\n\ngo 1.26.0\n' >"$w/go.mod"
	(cd "$w" && run go get -tool "go.etcd.io/etcd/server/v3@$ETCD_VERSION" &&
		run go build -trimpath -ldflags '-s -w' -o "$CACHE/$dir/.etcd.tmp" go.etcd.io/etcd/server/v3)
	mv "$CACHE/$dir/.etcd.tmp" "$CACHE/$dir/etcd"
	log "etcd: built in $(($(date +%s) - start)) s"
}

# The kubernetes module replaces its staging modules by ./staging paths, so `go install
# k8s.io/kubernetes/cmd/...@v` fails; a wrapper module that maps them to the published
# k8s.io/<name> v0.<minor>.<patch> modules builds them.
k8s_wrapper() {
	local w=$CACHE/.wrapper-$K8S_VERSION mod staging
	if [ -f "$w/.ready" ]; then echo "$w"; return; fi
	rm -rf "$w" && mkdir -p "$w"
	log "kubernetes: preparing wrapper module in $w" >&2
	run go mod download k8s.io/kubernetes@"$K8S_VERSION" >&2
	mod=$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.mod
	staging=v0.${K8S_VERSION#v1.}
	{
		printf 'module example.local/k8sbins\n\ngo 1.26.0\n\ngodebug default=go1.26\n\n'
		printf 'require k8s.io/kubernetes %s\n\nreplace (\n' "$K8S_VERSION"
		sed -n '/^replace/,/^)/p' "$mod" | awk '/=>/{print $1}' | grep -v sample-c |
			while read -r m; do printf '\t%s => %s %s\n' "$m" "$m" "$staging"; done
		echo ')'
	} >"$w/go.mod"
	(cd "$w" && run go get -tool k8s.io/kubernetes/cmd/kube-apiserver \
		k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler \
		k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy >&2)
	touch "$w/.ready"
	echo "$w"
}

k8s_build() {
	local bin=$1 dir=kubernetes-$K8S_VERSION w start minor
	have "$dir" "$bin" && { log "$bin: cached ($CACHE/$dir)"; return; }
	w=$(k8s_wrapper)
	# A wrapper prepared by an older version of this script may lack this command's tool line.
	grep -q "k8s.io/kubernetes/cmd/$bin\$" "$w/go.mod" ||
		(cd "$w" && run go get -tool "k8s.io/kubernetes/cmd/$bin")
	minor=${K8S_VERSION#v1.}
	minor=${minor%%.*}
	log "$bin: building k8s.io/kubernetes/cmd/$bin $K8S_VERSION"
	start=$(date +%s)
	mkdir -p "$CACHE/$dir"
	(cd "$w" && run go build -trimpath -ldflags "-s -w \
		-X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
		-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" \
		-o "$CACHE/$dir/.$bin.tmp" "k8s.io/kubernetes/cmd/$bin")
	mv "$CACHE/$dir/.$bin.tmp" "$CACHE/$dir/$bin"
	log "$bin: built in $(($(date +%s) - start)) s"
}

# kwok's --config: the upstream Stage objects of the same module version (how simulated nodes,
# pods and volumes change status), its simulation of kubelet's /metrics/resource, and pod CPU and
# memory usage read from the pods' kwok.x-k8s.io/usage-{cpu,memory} annotations. The volume
# stages bind PVCs of the kwok-volume StorageClass (written beside it).
kwok_config() {
	local dir=$CACHE/kwok-$KWOK_VERSION src
	[ -s "$dir/kwok-config.yaml" ] && [ -s "$dir/storage-class.yaml" ] && return
	run go mod download sigs.k8s.io/kwok@"$KWOK_VERSION"
	src=$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION/kustomize
	mkdir -p "$dir"
	for f in "$src"/stage/node/fast/*.yaml "$src"/stage/node/heartbeat/*.yaml \
		"$src"/stage/pod/fast/*.yaml "$src"/stage/volume/fast/p*.yaml \
		"$src"/metrics/resource/metrics-resource.yaml "$src"/metrics/usage/usage-from-annotation.yaml; do
		case $f in */kustomization.yaml) continue ;; esac
		echo '---'
		cat "$f"
	done >"$dir/.config.tmp"
	cp "$src/stage/volume/fast/storage-class.yaml" "$dir/storage-class.yaml"
	mv "$dir/.config.tmp" "$dir/kwok-config.yaml"
	log "kwok: config written to $dir/kwok-config.yaml"
}

total=$(date +%s)
# Order: what the control plane needs first, so a partial cache is already useful.
etcd_build
k8s_build kube-apiserver
k8s_build kube-controller-manager
k8s_build kube-scheduler
go_install "kwok-$KWOK_VERSION" kwok "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
kwok_config
go_install "metrics-server-$METRICS_SERVER_VERSION" metrics-server \
	"sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION"
# The node binaries (make k8s-up's real nodes, scripts/k8s/cluster.py) only when asked: the kwok
# tests do not need them.
if [ "${K8S_BUILD_NODE:-0}" = 1 ]; then
	k8s_build kubelet
	k8s_build kube-proxy
	go_install "coredns-$COREDNS_VERSION" coredns "github.com/coredns/coredns@$COREDNS_VERSION"
fi
log "all binaries ready in $CACHE ($(($(date +%s) - total)) s)"
