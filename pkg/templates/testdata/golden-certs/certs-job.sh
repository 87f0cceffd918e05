#!/bin/sh
# Managed by k4t (`k4t certs schedule`): checks every certificate of cluster lab and, when one expires within 30d,
# renews them one master at a time.
# Output goes to /root/.k4t/clusters/lab/logs/certs-renew.log, the last result to /root/.k4t/clusters/lab/certs-renew.status.json.
exec 9>>'/root/.k4t/clusters/lab/certs-renew.lock'
if command -v flock >/dev/null && ! flock -n 9; then
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) an earlier run still holds /root/.k4t/clusters/lab/certs-renew.lock: skipped" >>'/root/.k4t/clusters/lab/logs/certs-renew.log'
    exit 0
fi
start=$(date -u +%Y-%m-%dT%H:%M:%SZ)
echo "== $start k4t certs renew --if-expiring-within 30d" >>'/root/.k4t/clusters/lab/logs/certs-renew.log'
'/usr/local/bin/k4t' --state-dir '/root/.k4t' certs renew --if-expiring-within 30d -f '/root/hosts.yaml' >>'/root/.k4t/clusters/lab/logs/certs-renew.log' 2>&1
rc=$?
end=$(date -u +%Y-%m-%dT%H:%M:%SZ)
echo "== $end exit $rc" >>'/root/.k4t/clusters/lab/logs/certs-renew.log'
printf '{"start":"%s","end":"%s","exitCode":%d}\n' "$start" "$end" "$rc" >'/root/.k4t/clusters/lab/certs-renew.status.json.tmp' && mv -f '/root/.k4t/clusters/lab/certs-renew.status.json.tmp' '/root/.k4t/clusters/lab/certs-renew.status.json'
exit $rc
