#!/bin/sh
# Rendered by k4t for `k4t reset` of master1: takes away what k4t set up
# here (kubernetes, etcd), run with `sh -s` over SSH. Running it again is harmless.
set -u
# Kubernetes: kubeadm's own reset first (static pods, kubelet's state and
# /etc/kubernetes; it leaves k4t's etcd alone, which is not kubeadm's), then
# what kubeadm leaves: the units, the runtime's state and the pod network.
if pkill -x kubeadm; then sleep 2; pkill -9 -x kubeadm; fi
# No kubeconfig: kubeadm would read its configuration through the API, which
# the masters being reset no longer serve (a minute's wait each); k4t's paths
# are kubeadm's defaults, and k4t's etcd is not kubeadm's to remove.
if command -v kubeadm >/dev/null; then kubeadm reset --force --cleanup-tmp-dir --kubeconfig /dev/null >/dev/null 2>&1; fi
crictl --runtime-endpoint unix:///run/containerd/containerd.sock rmp --force --all >/dev/null 2>&1
systemctl disable --now kubelet containerd k4t-pod-routes k4t-certs-fallback.timer >/dev/null 2>&1
pkill -f containerd-shim 2>/dev/null
if [ -f /etc/k4t/pod-routes ]; then
	while read -r dst gw; do case "$dst" in ""|"#"*) continue;; esac; ip route del "$dst" via "$gw" 2>/dev/null; done < /etc/k4t/pod-routes
fi
ip link delete cni0 2>/dev/null
for t in iptables ip6tables; do
	command -v $t-save >/dev/null && $t-save | grep -v -e KUBE -e CNI | $t-restore
done
awk 'index($2, "/var/lib/kubelet/") == 1 {print $2}' /proc/mounts | sort -r | xargs -r umount -l
for d in /run/containerd /var/lib/containerd; do
	awk -v d="$d" 'index($2, d "/") == 1 {print $2}' /proc/mounts | sort -r | xargs -r umount -l
done
# The runtime's state dir may be a mount point itself: emptied, not removed.
find /var/lib/containerd -mindepth 1 -maxdepth 1 -exec rm -rf {} + 2>/dev/null
rm -rf /etc/kubernetes /var/lib/kubelet /var/lib/k4t /etc/containerd /run/containerd \
	/etc/cni/net.d/10-k4t-bridge.conflist /var/lib/cni /etc/k4t /etc/systemd/system/kubelet.service /etc/systemd/system/kubelet.service.d \
	/etc/systemd/system/containerd.service /etc/systemd/system/k4t-pod-routes.service \
	/etc/systemd/system/k4t-certs-fallback.service /etc/systemd/system/k4t-certs-fallback.timer
# etcd: the unit k4t runs, its configuration, certificates and data (with
# what restores moved aside), and the scheduled snapshots' timer and files.
systemctl disable --now etcd k4t-etcd-snapshot.timer >/dev/null 2>&1
rm -rf /var/lib/etcd /var/lib/etcd.before-restore-* /var/lib/etcd.restore-* /etc/etcd /etc/systemd/system/etcd.service /etc/systemd/system/k4t-etcd-snapshot.service \
	/etc/systemd/system/k4t-etcd-snapshot.timer /var/lib/k4t/etcd-snapshots
# k4t's cache of file checksums (written by its stat, in /run: gone at boot anyway).
rm -rf /run/k4t
systemctl daemon-reload
systemctl reset-failed >/dev/null 2>&1
exit 0
