#!/bin/sh
# Rendered by k4t for `k4t etcd restore` 20261201T080000Z on master4; run with
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
pause)
	# The control plane stops: its static pods' manifests move aside.
	mkdir -p /etc/kubernetes/k4t/restore-paused
	for p in kube-apiserver kube-controller-manager kube-scheduler; do
		if [ -f /etc/kubernetes/manifests/$p.yaml ]; then mv /etc/kubernetes/manifests/$p.yaml /etc/kubernetes/k4t/restore-paused/; fi
	done
	# Stopped now, not after kube-apiserver's graceful shutdown (up to 30s):
	# what it would still write is lost in the restore anyway.
	running() { crictl --runtime-endpoint unix:///run/containerd/containerd.sock ps -q --name '^kube-(apiserver|controller-manager|scheduler)$'; }
	ids=$(running)
	if [ -n "$ids" ]; then crictl --runtime-endpoint unix:///run/containerd/containerd.sock stop --timeout 1 $ids >/dev/null 2>&1 || true; fi
	i=0
	while [ -n "$(running)" ]; do
		[ $i -ge 120 ] && { echo "the control plane still runs 120s after its manifests moved aside" >&2; exit 1; }
		sleep 1; i=$((i+1))
	done
	;;
resume)
	for p in kube-apiserver kube-controller-manager kube-scheduler; do
		if [ -f /etc/kubernetes/k4t/restore-paused/$p.yaml ]; then mv -f /etc/kubernetes/k4t/restore-paused/$p.yaml /etc/kubernetes/manifests/; fi
	done
	;;
*)
	echo "unknown step: $1" >&2; exit 2
	;;
esac
