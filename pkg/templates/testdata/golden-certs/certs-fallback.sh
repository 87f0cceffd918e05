#!/bin/sh
# Managed by k4t (`k4t certs schedule --node-fallback`): the node-side fallback for when
# the bastion stays off. When kubeadm's certificates on this master expire within
# 14d, renew them with kubeadm and restart the control plane's static pods.
# k4t's etcd certificates are not renewed here: the etcd CA key stays on the bastion.
set -u
log() { echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $*"; }
command -v openssl >/dev/null || { log "openssl is missing: cannot check expiry"; exit 1; }
if openssl x509 -checkend 1209600 -noout -in /etc/kubernetes/pki/apiserver.crt >/dev/null 2>&1; then
    log "nothing expires within 14d"
    exit 0
fi
log "kubeadm's certificates expire within 14d: renewing"
kubeadm certs renew all || exit 1
pods="kube-apiserver kube-controller-manager kube-scheduler"
mkdir -p /etc/kubernetes/k4t/paused-manifests
for p in $pods; do mv /etc/kubernetes/manifests/$p.yaml /etc/kubernetes/k4t/paused-manifests/; done
i=0
while [ -n "$(crictl --runtime-endpoint unix:///run/containerd/containerd.sock ps -q --name '^kube-(apiserver|controller-manager|scheduler)$')" ] && [ $i -lt 120 ]; do
    sleep 1; i=$((i+1))
done
for p in $pods; do mv -n /etc/kubernetes/k4t/paused-manifests/$p.yaml /etc/kubernetes/manifests/; done
i=0
until curl -skf https://127.0.0.1:6443/readyz >/dev/null; do
    [ $i -ge 300 ] && { log "kube-apiserver not ready 300s after its restart"; exit 1; }
    sleep 1; i=$((i+1))
done
log "renewed; kube-apiserver is ready again"
