#!/usr/bin/env bash
# lab/libvirtd.sh start|stop|status
# Makes libvirtd answer on qemu:///system. On a host where systemd runs libvirtd it only
# checks (and asks systemd to start it); without systemd as PID 1 it prepares what Debian's
# libvirtd needs (docs/LAB.md "libvirtd without systemd") and starts virtlogd and libvirtd itself.
# `stop` stops only daemons this script started.
set -eu
. "$(dirname "$0")/lib.sh"

# libvirtd takes ~1-3 s to load its drivers here; 30 s covers a loaded 2-core host.
START_TIMEOUT=${VMG_LAB_LIBVIRTD_TIMEOUT:-30}
LIBVIRTD_LOG=/var/log/libvirt/libvirtd.log
LIBVIRTD_PID=/var/run/libvirtd.pid
VIRTLOGD_PID=/var/run/virtlogd.pid
QEMU_CONF=/etc/libvirt/qemu.conf
MARK="$VMG_LAB_RUN/libvirtd.started-by-lab"

usage() { echo "usage: $0 start|stop|status" >&2; exit 2; }

systemd_host() { [ -d /run/systemd/system ]; }

pid_alive() { # PIDFILE COMM
	local pid
	[ -s "$1" ] || return 1
	pid=$(cat "$1")
	[ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$2" ]
}

wait_answer() {
	local deadline=$((SECONDS + START_TIMEOUT))
	while [ $SECONDS -lt $deadline ]; do
		libvirt_answers && return 0
		sleep 0.5
	done
	return 1
}

fail_with_log() {
	echo "$vmg_prog: error: libvirtd does not answer on $VMG_LAB_URI after ${START_TIMEOUT}s" >&2
	if [ -r "$LIBVIRTD_LOG" ]; then
		echo "--- last lines of $LIBVIRTD_LOG (D-Bus, dmidecode and /dev/kvm errors are harmless here) ---" >&2
		tail -n 25 "$LIBVIRTD_LOG" >&2
	else
		echo "(no $LIBVIRTD_LOG)" >&2
	fi
	exit 1
}

# Debian's QEMU driver refuses to load unless both a user and a group libvirt-qemu exist,
# even when qemu.conf runs QEMU as root ("Failed to parse user 'libvirt-qemu'").
ensure_qemu_user() {
	getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
	getent passwd libvirt-qemu >/dev/null ||
		useradd -r -g libvirt-qemu -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
}

# QEMU as root reads kernels and disk images wherever tests put them (0700 mkdtemp dirs).
# Only appended when qemu.conf sets no user: a deliberate setting is left alone.
ensure_qemu_conf() {
	mkdir -p "$(dirname "$QEMU_CONF")"
	touch "$QEMU_CONF"
	if grep -Eq '^[[:space:]]*user[[:space:]]*=' "$QEMU_CONF"; then
		grep -Eq '^[[:space:]]*user[[:space:]]*=[[:space:]]*"root"' "$QEMU_CONF" ||
			log "warning: $QEMU_CONF sets a QEMU user other than root; left as is (images in 0700 dirs may be unreadable)"
		return 0
	fi
	{
		echo '# Added by vmguard lab/libvirtd.sh: QEMU must read lab images in 0700 dirs.'
		echo 'user = "root"'
		echo 'group = "root"'
	} >>"$QEMU_CONF"
	log "set user/group \"root\" in $QEMU_CONF"
}

start() {
	need_root
	if libvirt_answers; then
		log "libvirtd already answers on $VMG_LAB_URI"
		return 0
	fi
	if systemd_host; then
		need_cmd systemctl
		log "systemd host: asking systemd to start libvirtd"
		systemctl start libvirtd.socket libvirtd.service 2>/dev/null || systemctl start libvirtd ||
			die "systemctl start libvirtd failed (journalctl -u libvirtd)"
		wait_answer || { journalctl -u libvirtd -n 25 --no-pager >&2 || true; die "libvirtd does not answer"; }
		log "libvirtd answers (managed by systemd)"
		return 0
	fi
	need_cmd libvirtd virtlogd virsh qemu-system-x86_64
	mkdir -p /var/log/libvirt /var/run/libvirt /var/lib/libvirt/qemu /var/cache/libvirt/qemu "$VMG_LAB_RUN"
	ensure_qemu_user
	ensure_qemu_conf
	local started=""
	if ! pid_alive "$VIRTLOGD_PID" virtlogd; then
		virtlogd -d
		started="$started virtlogd"
	fi
	if ! pid_alive "$LIBVIRTD_PID" libvirtd; then
		# A libvirtd stuck from an earlier run holds its pid file; it is not ours to kill.
		libvirtd -d
		started="$started libvirtd"
	fi
	[ -n "$started" ] && echo "$started" >>"$MARK"
	wait_answer || fail_with_log
	log "libvirtd answers on $VMG_LAB_URI (started:${started:- nothing, already running})"
}

stop() {
	need_root
	if systemd_host; then
		log "systemd host: libvirtd is systemd's; not stopping it"
		return 0
	fi
	if [ ! -e "$MARK" ]; then
		log "libvirtd/virtlogd were not started by the lab; not stopping them"
		return 0
	fi
	grep -qw libvirtd "$MARK" && kill_pidfile "$LIBVIRTD_PID" libvirtd
	grep -qw virtlogd "$MARK" && kill_pidfile "$VIRTLOGD_PID" virtlogd
	rm -f "$MARK"
	log "stopped"
}

status() {
	if libvirt_answers; then
		echo "libvirtd: answers on $VMG_LAB_URI"
		return 0
	fi
	echo "libvirtd: not answering on $VMG_LAB_URI"
	return 3
}

[ $# -eq 1 ] || usage
case $1 in
start) start ;;
stop) stop ;;
status) status ;;
*) usage ;;
esac
