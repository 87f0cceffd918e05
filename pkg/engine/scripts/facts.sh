# k4t facts: one key=value per line; read-only. $1 = the host's internal address.
for osr in /etc/os-release /usr/lib/os-release; do [ -r $osr ] && { . $osr; break; }; done; echo "os=$ID"; echo "os_version=$VERSION_ID"; echo "os_like=$ID_LIKE"; echo "os_name=$PRETTY_NAME"
echo "arch=$(uname -m)"; echo "kernel=$(uname -r)"; echo "hostname=$(hostname)"
echo "init=$(cat /proc/1/comm)"; echo "cgroup=$(stat -fc %T /sys/fs/cgroup)"
awk '/^MemTotal|^MemAvailable/{print tolower($1) $2}' /proc/meminfo | sed 's/:/=/'
echo "disk_free_kb=$(df -Pk /var | awk 'NR==2{print $4}')"
echo "swap=$(awk 'NR>1' /proc/swaps | wc -l)"
echo "time=$(date +%s.%N)"
echo "ports_hex=$(awk 'NR>1 && $4=="0A"{split($2,a,":"); printf "%s,", a[2]}' /proc/net/tcp /proc/net/tcp6 2>/dev/null)"
echo "iface=$(ip -o -4 addr show | awk -v a="$1" '{split($4,p,"/"); if (p[1]==a) print $2}')"
echo "br_netfilter=$(test -d /proc/sys/net/bridge && echo yes || echo no)"
echo "overlay=$(grep -qw overlay /proc/filesystems && echo yes || echo no)"
# Running in any state (etcd is "activating" until it has joined its cluster).
for u in etcd haproxy keepalived kube-apiserver kubelet containerd; do case $(systemctl is-active $u 2>/dev/null) in active | activating | reloading | deactivating) echo "active=$u" ;; esac; done
for c in systemctl sha256sum ip iptables sysctl mount tar; do command -v $c >/dev/null || echo "missing=$c"; done
for p in apt-get dnf yum apk; do command -v $p >/dev/null && { echo "pkg=$p"; break; }; done
# The live value of each key k4t's sysctl file sets (the file is the list).
for k in $(sed -n 's/^ *\([a-z0-9_.-]*\) *=.*/\1/p' /etc/sysctl.d/99-k4t.conf 2>/dev/null); do echo "sysctl=$k=$(cat /proc/sys/$(echo $k | tr . /) 2>/dev/null)"; done
# A host firewall that would drop k4t's ports, and SELinux's mode.
systemctl is-active -q firewalld 2>/dev/null && echo "firewall=firewalld"
grep -qs '^ENABLED=yes' /etc/ufw/ufw.conf && echo "firewall=ufw"
[ "$(cat /sys/fs/selinux/enforce 2>/dev/null)" = 1 ] && echo "selinux=enforcing"
true
