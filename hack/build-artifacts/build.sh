#!/usr/bin/env bash
# Builds the binaries and images a k4t cluster needs from the Go module proxy
# and Debian packages (the lab has no internet; see docs offline-artifacts.md).
#
#   hack/build-artifacts/build.sh etcd|kubeadm|k8s|containerd|runc|cni|crictl|coredns|pause|images|lab|all ...
#
# Output goes to ${K4T_ARTIFACT_CACHE:-/var/cache/k4t/artifacts}/<version>/ with
# a manifest.yaml (read by pkg/artifacts). Each piece leaves a stamp and is
# skipped when built already; delete <version>/.stamps/<piece> to rebuild it.
# Versions can be overridden: K8S_VERSION, ETCD_VERSION, CONTAINERD_VERSION, ...
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

usage() {
	sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
}

[[ $# -gt 0 ]] || usage
for what in "$@"; do
	case $what in
	etcd | kubeadm | k8s | containerd | runc | cni | crictl | coredns | pause | images | iptables-base) "build_${what//-/_}" ;;
	lab) build_etcd ;;
	all) build_etcd; build_k8s; build_containerd; build_runc; build_cni; build_crictl; build_coredns; build_pause; build_images ;;
	-h | --help | help) usage ;;
	*) echo "build.sh: unknown piece $what" >&2; usage ;;
	esac
done
