# shellcheck shell=bash disable=SC2034
# bench/lib.sh: what bench/reaction.sh and bench/conservation.sh share (sourced, not run):
# option parsing, the lab preflight, a private vmguardd copy, stopping the daemon, the
# cleanup trap, and reading a guest's cgroup files.
#
# The caller sets B_NAME (the prefix of its messages) before sourcing, and may define
# b_cleanup_extra (run by the EXIT trap after the daemon is stopped and before the work dir
# goes: destroy guests, kill helpers). Variables shared with the caller: work (the private
# dir), dpid (the daemon's pid, "" when none), drc (its exit status after b_stop_daemon),
# keep (--keep-logs DIR: where the daemon logs are copied on exit), val (see read_val).

: "${B_NAME:?set B_NAME before sourcing bench/lib.sh}"
work="" dpid="" drc=0 keep="" val=""

# The comment block at the top of the running script, up to `set -eu`, is its --help.
b_usage() { sed -n '2,/^set -eu/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; }

# b_parse "SPEC" "$@": each word of SPEC is --OPTION=VAR (`--OPTION VALUE` sets $VAR) or
# --OPTION=!FUNC (`--OPTION VALUE` runs FUNC VALUE and exits 0, e.g. --summary FILE).
# -h/--help prints the usage; anything else is exit 2.
b_parse() {
	local spec=$1 w hit
	shift
	while [ $# -gt 0 ]; do
		case $1 in -h | --help) b_usage; exit 0 ;; esac
		hit=""
		for w in $spec; do
			[ "$1" = "${w%%=*}" ] || continue
			[ $# -ge 2 ] || { echo "$B_NAME: $1 needs a value" >&2; exit 2; }
			case ${w#*=} in
			!*) "${w#*=!}" "$2"; exit 0 ;;
			*) printf -v "${w#*=}" '%s' "$2" ;;
			esac
			hit=1
			shift
			break
		done
		[ -n "$hit" ] || { echo "$B_NAME: unknown option $1" >&2; exit 2; }
		shift
	done
}

# Root and an answering libvirtd, or exit 77 (skip) with the reason.
b_require_lab() {
	[ "$(id -u)" -eq 0 ] || { echo "$B_NAME: must run as root (libvirt, cgroups)" >&2; exit 77; }
	timeout 10 virsh -q -c "${VMG_LAB_URI:-qemu:///system}" list >/dev/null 2>&1 ||
		{ echo "$B_NAME: libvirtd does not answer (lab/libvirtd.sh start)" >&2; exit 77; }
}

# b_tsv_init FILE HEADER: FILE's directory made, HEADER written when FILE is empty or new
# (an existing file is appended to: more rows of the same benchmark).
b_tsv_init() {
	mkdir -p "$(dirname "$1")"
	[ -s "$1" ] || printf '%s\n' "$2" >"$1"
}

# b_workdir ROOT BUILD: $work, a private dir holding a copy of vmguardd. A copy, because
# other engineers rebuild build/ while a benchmark runs for minutes.
b_workdir() {
	work=$(mktemp -d "/tmp/vmg-$B_NAME.XXXXXX")
	make -C "$1" --no-print-directory "$2/vmguardd" >&2
	cp "$1/$2/vmguardd" "$work/vmguardd"
}

# SIGTERM to $dpid, up to 10 s for it to put every limit back and exit, then SIGKILL.
# Its exit status goes to $drc.
b_stop_daemon() {
	[ -n "$dpid" ] || return 0
	kill -TERM "$dpid" 2>/dev/null || true
	local i
	for i in $(seq 100); do
		kill -0 "$dpid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$dpid" 2>/dev/null && { echo "$B_NAME: vmguardd $dpid ignored SIGTERM for 10 s" >&2; kill -KILL "$dpid"; }
	drc=0
	wait "$dpid" 2>/dev/null || drc=$?
	dpid=""
}

b_cleanup() {
	local rc=$?
	b_stop_daemon
	if declare -F b_cleanup_extra >/dev/null; then b_cleanup_extra; fi
	if [ -n "$work" ]; then
		if [ -n "$keep" ]; then mkdir -p "$keep" && cp "$work"/*.log "$keep"/ 2>/dev/null || true; fi
		rm -rf "$work"
	fi
	exit $rc
}

b_traps() {
	trap b_cleanup EXIT
	trap 'exit 130' INT TERM
}

# A v1 controller's directory for a QEMU process, from /proc/PID/cgroup and /proc/mounts
# (no layout assumed); libvirt puts QEMU's main thread in the domain's emulator/ child.
cgdir_of() { # PID CONTROLLER
	local rel mnt
	rel=$(awk -F: -v c="$2" '{ n = split($2, a, ","); for (i = 1; i <= n; i++) if (a[i] == c) print $3 }' "/proc/$1/cgroup")
	mnt=$(awk -v c="$2" '$3 == "cgroup" { n = split($4, a, ","); for (i = 1; i <= n; i++) if (a[i] == c) { print $2; exit } }' /proc/mounts)
	[ -n "$rel" ] && [ -n "$mnt" ] || return 1
	rel=${rel%/emulator}
	echo "$mnt$rel"
}

# A file's whole content on one line ("" when empty) into $val, with builtins only: a
# command substitution forks, which a 10 ms poll loop cannot afford.
read_val() { # FILE
	local l
	val=""
	while IFS= read -r l || [ -n "$l" ]; do val="$val${val:+;}$l"; done <"$1"
}
file_val() { read_val "$1"; printf '%s' "$val"; }

# b_newest DIR KIND: the newest DIR/KIND-YYYY-MM-DD.tsv (by the date in its name; nothing
# when there is none). Only that exact pattern: variants such as conservation-abba-DATE.tsv
# are runs described by hand in BENCHMARKS.md, not "the" result of their kind.
b_newest() {
	local f best=""
	for f in "$1/$2"-[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9].tsv; do
		[ -s "$f" ] || continue
		[[ $f > $best ]] && best=$f
	done
	[ -n "$best" ] && echo "$best"
	return 0
}
