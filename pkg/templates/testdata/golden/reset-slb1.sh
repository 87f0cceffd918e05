#!/bin/sh
# Rendered by k4t for `k4t reset` of slb1: takes away what k4t set up
# here (load balancer), run with `sh -s` over SSH. Running it again is harmless.
set -u
# Load balancer: keepalived gives up the VIP when it stops; HAProxy stops.
systemctl disable --now keepalived haproxy >/dev/null 2>&1
ip -o addr show | awk '$4 ~ "^10.77.0.100/" {print $2, $4}' | while read -r dev addr; do ip addr del "$addr" dev "$dev"; done
rm -f /etc/keepalived/keepalived.conf /etc/keepalived/check_haproxy.sh /etc/haproxy/haproxy.cfg
# k4t's cache of file checksums (written by its stat, in /run: gone at boot anyway).
rm -rf /run/k4t
systemctl daemon-reload
systemctl reset-failed >/dev/null 2>&1
exit 0
