#!/bin/sh
# Rendered by k4t for `k4t etcd restore` 20261201T080000Z on etcd1; run with
# `sh -s -- STEP` over SSH. Every step may run again after a kill: /var/lib/k4t/etcd-restore-id
# names the restore whose data this member runs, and data is moved aside,
# never deleted.
set -eu
# One step at a time: a step of a killed run may still be running here (its
# SSH session gone), and the re-run's step waits for it.
mkdir -p /var/lib/k4t
exec 9>/var/lib/k4t/etcd-restore-id.lock
flock 9
restored() { [ "$(cat /var/lib/k4t/etcd-restore-id 2>/dev/null)" = "20261201T080000Z" ]; }
case "$1" in
prepare)
	# Before anything stops: the snapshot is restored beside the data dir
	# (etcdutl checks the snapshot's own hash as it reads it).
	restored && exit 0
	etcdutl snapshot status /var/lib/k4t/snapshots/restore.db >/dev/null
	rm -rf /data/etcd.restore-20261201T080000Z
	etcdutl snapshot restore /var/lib/k4t/snapshots/restore.db --data-dir /data/etcd.restore-20261201T080000Z --name etcd1 \
		--initial-cluster etcd1=https://10.77.0.21:2380 --initial-cluster-token k4t-lab-restore-20261201T080000Z \
		--initial-advertise-peer-urls https://10.77.0.21:2380 \
		--bump-revision 5000 --mark-compacted >/dev/null
	;;
swap)
	# etcd stops; its data dir goes aside; the restored one takes its place.
	restored && exit 0
	[ -d /data/etcd.restore-20261201T080000Z/member ] || { echo "/data/etcd.restore-20261201T080000Z is missing: run k4t etcd restore again" >&2; exit 1; }
	systemctl stop etcd
	rm -f /var/lib/k4t/etcd-restore-id
	if [ -e /data/etcd ]; then
		aside=/data/etcd.before-restore-20261201T080000Z; n=1
		while [ -e "$aside" ]; do aside=/data/etcd.before-restore-20261201T080000Z.$n; n=$((n+1)); done
		mv /data/etcd "$aside"
		echo "moved aside: $aside"
	fi
	mv /data/etcd.restore-20261201T080000Z /data/etcd
	echo "20261201T080000Z" > /var/lib/k4t/etcd-restore-id
	;;
*)
	echo "unknown step: $1" >&2; exit 2
	;;
esac
