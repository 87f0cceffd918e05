#!/bin/sh
# configure-base.sh ROOT FILES: turn a fresh debootstrap of bookworm into the
# k4t lab base. Part of the base recipe: any change here rebuilds the cache.
set -eu
R=$1 F=$2
rm -f "$R"/etc/ssh/ssh_host_*
: > "$R/etc/machine-id"
systemctl --root="$R" enable systemd-networkd.service
systemctl --root="$R" mask systemd-networkd-wait-online.service systemd-timesyncd.service \
  apt-daily.timer apt-daily-upgrade.timer fstrim.timer man-db.timer console-getty.service
systemctl --root="$R" disable haproxy.service keepalived.service
rm -f "$R/etc/resolv.conf"
echo "nameserver 10.77.0.1" > "$R/etc/resolv.conf"
install -m 0644 "$F/sshd-k4t-lab.conf" "$R/etc/ssh/sshd_config.d/k4t-lab.conf"
install -m 0755 "$F/k4t-lab-cgroup-rw" "$R/usr/local/sbin/k4t-lab-cgroup-rw"
install -m 0644 "$F/k4t-lab-cgroup-rw.service" "$F/k4t-lab-kmsg.service" "$R/etc/systemd/system/"
systemctl --root="$R" enable k4t-lab-cgroup-rw.service k4t-lab-kmsg.service
install -d -m 0700 "$R/root/.ssh"
rm -rf "$R"/var/cache/apt/archives/*.deb "$R"/var/lib/apt/lists/* "$R"/var/log/*.log
