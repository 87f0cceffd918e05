#!/bin/sh
# Managed by k4t (`k4t etcd backup --schedule`; `--remove` takes it away): a
# snapshot of this member, master2, into /var/lib/k4t/etcd-snapshots, checked with
# etcdutl, with its sha256 beside it; the newest 24 are kept. Each run's
# result goes to /var/lib/k4t/etcd-snapshots/last-run.json.
set -u
dir=/var/lib/k4t/etcd-snapshots
start=$(date -u +%Y-%m-%dT%H:%M:%SZ)
name=scheduled-master2-$(date -u +%Y%m%dT%H%M%SZ).db
result() {
	printf '{"start":"%s","end":"%s","exitCode":%d,"file":"%s"}\n' "$start" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" "$2" >"$dir/.last-run" &&
		mv "$dir/.last-run" "$dir/last-run.json"
	exit "$1"
}
mkdir -p "$dir" && chmod 700 "$dir" || exit 1
rm -f "$dir/.partial"
ETCDCTL_API=3 etcdctl --endpoints=https://10.77.0.13:2379 --cacert=/etc/etcd/pki/ca.crt --cert=/etc/etcd/pki/healthcheck-client.crt --key=/etc/etcd/pki/healthcheck-client.key \
	--command-timeout=5m snapshot save "$dir/.partial" >/dev/null || result 1 ""
etcdutl snapshot status "$dir/.partial" >/dev/null || { rm -f "$dir/.partial"; result 1 ""; }
cd "$dir" && mv .partial "$name" && sha256sum "$name" >"$name.sha256" || result 1 ""
ls -1 scheduled-*.db | sort | head -n -24 | while read -r f; do rm -f "$f" "$f.sha256"; done
echo "snapshot $dir/$name"
result 0 "$name"
