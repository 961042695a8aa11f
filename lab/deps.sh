#!/usr/bin/env bash
# Installs (apt) whatever vmguard's build, tests, lab and benchmarks need and is missing.
# Quick when everything is there: one dpkg-query.
set -eu
pkgs=(
        build-essential pkg-config clang libclang-rt-14-dev
        libvirt-dev libcgroup-dev libsystemd-dev libproc2-dev libjansson-dev
        libmicrohttpd-dev libnl-route-3-dev libnl-3-dev libmnl-dev libxml2-dev
        libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86
        dnsmasq-base busybox-static cpio iproute2 kmod procps gnuplot-nox jq prometheus curl valgrind
)
# `lab/deps.sh bench`: also the peers that bench/ measures vmguard against.
if [ "${1:-}" = bench ]; then
        pkgs+=(collectd-core prometheus-libvirt-exporter linux-perf valgrind)
fi
# `lab/deps.sh deb`: also what `make deb` builds and checks the Debian package with
# (dpkg-buildpackage, dh, lintian; no fakeroot: debian/control says Rules-Requires-Root: no).
if [ "${1:-}" = deb ]; then
        pkgs+=(debhelper dpkg-dev lintian)
fi
missing=()
for p in "${pkgs[@]}"; do
        st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
        [ "$st" = "installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
        echo "vmguard: missing packages: ${missing[*]}; run as root or: apt-get install ${missing[*]}" >&2
        exit 1
fi
echo "vmguard: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
