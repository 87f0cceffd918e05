#!/bin/sh
# Rendered by k4t for `k4t status` on slb1, run with `sh -s`: it only
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
for u in haproxy keepalived; do echo "unit $u $(systemctl is-active "$u" 2>/dev/null)"; done
ip -o -4 addr show | grep -q " 10.77.0.100/" && echo "vip held"
echo "show stat" | socat stdio /run/haproxy/admin.sock 2>/dev/null |
	awk -F, '$1=="kube-apiserver" && $2!="BACKEND" && $2!="FRONTEND" {print "backend", $2, $18}'
for f in /etc/kubernetes/pki/*.crt /etc/kubernetes/pki/etcd/*.crt /etc/etcd/pki/*.crt /var/lib/kubelet/pki/kubelet-client-current.pem; do
	[ -f "$f" ] && echo "cert $(openssl x509 -noout -enddate -in "$f" 2>/dev/null | cut -d= -f2) | $f"
done
echo "time_end $(date +%s.%N)"
