#!/bin/sh
# Rendered by k4t, run once over SSH before a kubeadm init/join is retried.
# It undoes an attempt that did not finish, and it is NOT `kubeadm reset`:
# only what kubeadm writes for node worker1 goes. etcd's data dir
# and the CAs, keys and etcd client certificate that k4t put here stay.
set -u
# A kubeadm left running by a killed k4t must not race the retry.
if pkill -x kubeadm; then sleep 2; pkill -9 -x kubeadm; fi
# A half-registered Node would fail the retry's "Node already exists" check.
if [ -s /etc/kubernetes/kubelet.conf ]; then
	timeout 20 kubectl --kubeconfig /etc/kubernetes/kubelet.conf delete node worker1 --ignore-not-found --wait=false >/dev/null 2>&1
fi
systemctl stop kubelet
# Static pods outlive the kubelet; k4t's etcd is a systemd unit, not a pod.
crictl --runtime-endpoint unix:///run/containerd/containerd.sock rmp --force --all >/dev/null 2>&1
cd /etc/kubernetes || exit 1
rm -f manifests/kube-apiserver.yaml manifests/kube-controller-manager.yaml manifests/kube-scheduler.yaml \
	admin.conf super-admin.conf kubelet.conf bootstrap-kubelet.conf controller-manager.conf scheduler.conf \
	pki/apiserver.crt pki/apiserver.key pki/apiserver-kubelet-client.crt pki/apiserver-kubelet-client.key \
	pki/front-proxy-client.crt pki/front-proxy-client.key
rm -rf /var/lib/kubelet/pki /var/lib/kubelet/config.yaml /var/lib/kubelet/kubeadm-flags.env /var/lib/kubelet/instance-config.yaml
# A worker's cluster CA certificate is kubeadm's (from discovery), not k4t's;
# its join refuses to start while one is there.
rm -f pki/ca.crt
