#!/usr/bin/env bash
# Installs the Debian packages the lab and the tests need, only those
# missing (one dpkg query, no apt-get when nothing is), so `make demo` and
# `make test` work on a fresh Debian or Ubuntu machine with nothing else
# to prepare. Root only; elsewhere it names what is missing and stops.
set -euo pipefail
pkgs=(debootstrap systemd-container zstd sshpass openssh-server openssh-client iproute2 iptables
	libseccomp-dev haproxy keepalived openssl make git cron socat mmdebstrap)
installed=" $(dpkg-query -W -f='${Package} ${Status}\n' "${pkgs[@]}" 2>/dev/null | awk '/ ok installed$/ {printf "%s ", $1}' || true)"
missing=()
for p in "${pkgs[@]}"; do [[ $installed == *" $p "* ]] || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: missing Debian packages: ${missing[*]}; run as root (the lab needs root anyway)" >&2
	exit 1
fi
echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
