#!/bin/sh
# Rendered by k4t for `k4t status` on master1, run with `sh -s`: it only
# reads. One line per fact, KEY VALUE...; a fact that cannot be read is left out.
echo "time $(date +%s.%N)"
echo "uptime $(cut -d' ' -f1 /proc/uptime)"
echo "load $(cut -d' ' -f1 /proc/loadavg) $(nproc 2>/dev/null || echo 1)"
cpu() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat; }
c0=$(cpu); sleep 0.2; c1=$(cpu)
echo "$c0 $c1" | awk '{d=($3-$1)+($4-$2); printf "cpu_busy %.1f\n", (d > 0 ? 100*($3-$1)/d : 0)}'
awk '/^MemTotal:/{t=$2} /^MemAvailable:/{a=$2} END{print "mem_kb", t, a}' /proc/meminfo
for d in / /var/lib/etcd /var/lib/containerd /var/lib/kubelet; do
	[ -d "$d" ] && df -Pk "$d" | awk -v d="$d" 'NR==2{print "disk", d, $5+0, $4}'
done
for u in etcd containerd kubelet; do echo "unit $u $(systemctl is-active "$u" 2>/dev/null)"; done
e="etcdctl --endpoints=https://10.77.0.12:2379 --cacert=/etc/etcd/pki/ca.crt --cert=/etc/etcd/pki/healthcheck-client.crt --key=/etc/etcd/pki/healthcheck-client.key --command-timeout=3s"
echo "etcd_status $($e endpoint status -w json 2>/dev/null | tr -d '\n')"
echo "etcd_health $($e endpoint health -w json 2>/dev/null | tr -d '\n')"
echo "etcd_alarms $($e alarm list 2>/dev/null | tr '\n' ' ')"
ls -1 /var/lib/k4t/etcd-snapshots 2>/dev/null | grep '^scheduled-.*\.db$' | sort | tail -1 | sed 's/^/snapshot /'
if kubectl --kubeconfig /etc/kubernetes/admin.conf --server https://127.0.0.1:6443 --request-timeout=3s get --raw /readyz >/dev/null 2>&1; then
	echo "readyz ok"
else
	echo "readyz failed"
fi
for f in /etc/kubernetes/pki/*.crt /etc/kubernetes/pki/etcd/*.crt /etc/etcd/pki/*.crt /var/lib/kubelet/pki/kubelet-client-current.pem; do
	[ -f "$f" ] && echo "cert $(openssl x509 -noout -enddate -in "$f" 2>/dev/null | cut -d= -f2) | $f"
done
echo "time_end $(date +%s.%N)"
