#!/bin/bash
# Fault: the policy directory is edited while a reload reads it (RELIABILITY.md, daemon
# faults). The real vmguardd runs on a host file and a tenants dir in a temp dir; a writer
# edits the dir hard (in-place rewrites with a pause mid-file, files renamed in, deleted and
# recreated, a broken file added then fixed, two files rewritten one after the other, editor
# swap/backup/lock files) while another loop sends SIGHUP hundreds of times and a poller
# reads the policy in force from the control socket (`vmguard status --json`, .policy).
# Checks: the daemon never dies; every reload swaps in a policy or is refused with
# file:line:column (or "kept changing", naming the dir); the policy in force is always one
# the writer had complete on disk (the writer logs each valid state it leaves on disk);
# editor files never count; after the writer stops, one SIGHUP loads exactly the final files.
# No guests needed: libvirt's in-process test driver (test:///default) and --dry-run.
# Takes ~35 s.
. "$(dirname "$0")/lib.sh"
require_cmd jq
cd "$T_ROOT"
make -s build/vmguardd build/vmguard >/dev/null || { t_fail "build"; finish; }

DURATION=${RELOAD_RACE_SECONDS:-25}
T=$(mktemp -d "/tmp/vmg_reload_race.$$.XXXXXX")
stop() { kill "$@" 2>/dev/null || true; }
# A sleep without a fork (read on a FIFO nobody writes): on a loaded 2-core host a forked
# `sleep` costs more than the pauses themselves.
mkfifo "$T/nap"
exec 9<>"$T/nap"
nap() { read -r -t "$1" -u 9 _ || true; }
on_exit rm -rf "$T"
D=$T/tenants.d
mkdir -p "$D" "$T/state" "$T/bin"
# Private copies: other engineers relink build/ while this runs ("Text file busy").
cp build/vmguardd build/vmguard "$T/bin/"
chmod 755 "$T" "$D"
echo '{ "tick": "1s" }' >"$T/host.json"
STATES=$T/states   # every valid state the writer left on disk, one signature a line
OBS=$T/observed    # generation and signature of each policy the daemon showed
LOG=$T/daemon.log

# The JSON of tenant $1 at generation $2: its VM glob carries the generation, so the
# policy in force says which version of each file it came from.
tenant_json() { printf '{ "tenant": "%s",\n  "vms": { "names": ["%s-g%s-*"] } }\n' "$1" "$1" "$2"; }

# The writer's view of the disk: tenant -> generation; a signature lists "name=glob" sorted
# by file name, as the daemon loads them.
declare -A GEN
signature() {
	local t out=""
	for t in $(printf '%s\n' "${!GEN[@]}" | sort); do
		out+="$t=$t-g${GEN[$t]}-*;"
	done
	printf '%s\n' "$out"
}
record() { signature >>"$STATES"; }

# Writes tenant $1 at generation $2 in place, not atomically: truncate, half the bytes,
# a pause, the rest (what `cat > file` or a naive editor does).
write_in_place() {
	local f=$D/$1.json c half
	c=$(tenant_json "$1" "$2")
	half=$((${#c} / 2))
	: >"$f"
	printf '%s' "${c:0:half}" >>"$f"
	nap 0.0$((RANDOM % 5))
	printf '%s\n' "${c:half}" >>"$f"
	GEN[$1]=$2
}

writer() {
	local g=1 op end=$((SECONDS + DURATION))
	while [ $SECONDS -lt $end ]; do
		g=$((g + 1))
		op=$((g % 6))
		case $op in
		0) write_in_place alpha $g; record ;;
		1) # a new version renamed in (atomic replace), its temp file hidden
			tenant_json beta $g >"$D/.beta.json.tmp"
			mv "$D/.beta.json.tmp" "$D/beta.json"
			GEN[beta]=$g; record ;;
		2) # delete and recreate
			rm -f "$D/gamma.json"; unset "GEN[gamma]"; record
			nap 0.0$((RANDOM % 3))
			write_in_place gamma $g; record ;;
		3) # a broken file added, then fixed; next time removed
			if [ -n "${GEN[delta]:-}" ]; then
				rm -f "$D/delta.json"; unset "GEN[delta]"; record
			else
				printf '{ "tenant": "delta", "vms": { "names": [\n' >"$D/delta.json"
				nap 0.0$((RANDOM % 5))
				tenant_json delta $g >"$D/delta.json"
				GEN[delta]=$g; record
			fi ;;
		4) # editor leftovers: each would clash with alpha.json or fail to parse if read
			tenant_json alpha "bak$g" >"$D/alpha.json~"
			tenant_json alpha "swp$g" >"$D/.alpha.json.swp"
			printf '{ "tenant": "alpha", "vms' >"$D/#alpha.json#"
			ln -sfn "root@host.$g:1700000000" "$D/.#alpha.json"
			tenant_json alpha "orig$g" >"$D/alpha.json.orig" ;;
		5) # two files, one after the other: each intermediate state is real
			write_in_place alpha $g; record
			write_in_place beta $g; record ;;
		esac
		nap 0.0$((RANDOM % 2))$((RANDOM % 10))
	done
	signature >"$T/final"
}

GEN[alpha]=1; GEN[beta]=1
tenant_json alpha 1 >"$D/alpha.json"
tenant_json beta 1 >"$D/beta.json"
record

"$T/bin/vmguardd" --host "$T/host.json" --tenants "$D" --connect test:///default \
	--state-dir "$T/state" --socket "$T/state/control.sock" --dry-run >"$LOG" 2>&1 &
PID=$!
on_exit stop -TERM "$PID"
for _ in $(seq 50); do [ -S "$T/state/control.sock" ] && break; sleep 0.1; done
check "daemon up with the control socket" test -S "$T/state/control.sock"

status_sig() {
	"$T/bin/vmguard" status --json --socket "$T/state/control.sock" 2>/dev/null |
		jq -r '.policy | "\(.generation) \(.tenants | map("\(.name)=\(.vms | join(","))") | join(";"));"'
}

writer &
WPID=$!
on_exit stop "$WPID"

# SIGHUPs, hundreds: 0-19 ms apart (plus a fork) while the writer runs.
hupper() {
	local n=0
	while kill -0 "$WPID" 2>/dev/null; do
		kill -HUP "$PID" 2>/dev/null || break
		n=$((n + 1))
		nap 0.0$((RANDOM % 2))$((RANDOM % 10))
	done
	echo $n >"$T/hups"
}
hupper &
HPID=$!

# The poller: the policy in force, as often as the CLI can ask.
DIED=0
while kill -0 "$WPID" 2>/dev/null; do
	if ! kill -0 "$PID" 2>/dev/null; then DIED=1; break; fi
	status_sig >>"$OBS"
	nap 0.05
done
wait "$WPID"
wait "$HPID"

check "daemon alive after the edits and SIGHUPs" kill -0 "$PID"
check_num "daemon never died while polled (1 = died)" $DIED -eq 0
HUPS=$(cat "$T/hups" 2>/dev/null || echo 0)
check_num "SIGHUPs sent" "$HUPS" -ge 300
N_OK=$(grep -c 'policy reloaded:' "$LOG")
N_REJ=$(grep -c 'policy rejected:' "$LOG")
check_num "reloads done (signals sent close together coalesce)" $((N_OK + N_REJ)) -ge 150
check_num "reloads that swapped a policy in" "$N_OK" -ge 50
echo "# $HUPS SIGHUPs, $N_OK reloads swapped in, $N_REJ refused, $(wc -l <"$STATES") disk states, $(wc -l <"$OBS") polls"

# Every refusal names a tenant file with line and column, or says the dir kept changing.
BAD_REJ=$(grep 'policy rejected:' "$LOG" |
	grep -Ev "policy rejected: $D/[a-z]+\.json:[0-9]+:[0-9]+: |policy rejected: $D: kept changing while being read" || true)
check "every refusal names file:line:column (or the dir that kept changing)" test -z "$BAD_REJ"
[ -n "$BAD_REJ" ] && printf '%s\n' "$BAD_REJ" | sort | uniq -c | sort -rn | head -5 | sed 's/^/#   /'
N_KEEP=$(grep -c 'reload: keeping the policy in force' "$LOG")
check_num "each refusal kept the policy in force" "$N_KEEP" -eq "$N_REJ"
EDITOR=$(grep -E 'policy rejected:.*(\.swp|~|#|\.orig)' "$LOG" || true)
check "no editor swap/backup/lock file was ever read" test -z "$EDITOR"
echo "# refusal kinds:"
grep -o 'policy rejected: .*' "$LOG" | sed -E "s|$D/||; s|:[0-9]+:[0-9]+:|:L:C:|; s|(invalid JSON: [^:]*).*|\1|" |
	sort | uniq -c | sort -rn | head -6 | sed 's/^/#   /'

# Every policy seen in force was a complete state on disk.
sort -u "$STATES" >"$T/states.u"
cut -d' ' -f2- "$OBS" | sort -u >"$T/obs.u"
NOT_ON_DISK=$(comm -23 "$T/obs.u" "$T/states.u")
check_num "distinct policies seen in force" "$(wc -l <"$T/obs.u")" -ge 20
check "every policy in force was a complete state on disk (no torn mix)" test -z "$NOT_ON_DISK"
[ -n "$NOT_ON_DISK" ] && printf '%s\n' "$NOT_ON_DISK" | head -5 | sed 's/^/#   never on disk: /'
GENS_SORTED=$(cut -d' ' -f1 "$OBS" | sort -n -c 2>&1 && echo yes)
check "policy generation never went backwards" test "$GENS_SORTED" = yes

# Writer stopped: editor leftovers stay; one SIGHUP loads exactly the final files.
G0=$(status_sig | cut -d' ' -f1)
kill -HUP "$PID"
FINAL=""
for _ in $(seq 50); do
	sleep 0.1
	FINAL=$(status_sig)
	[ "${FINAL%% *}" != "$G0" ] && break
done
check "last SIGHUP swapped a policy in" test "${FINAL%% *}" != "$G0"
check "policy in force equals the final files" test "${FINAL#* }" = "$(cat "$T/final")"
echo "# final: ${FINAL#* }"
check "daemon still alive" kill -0 "$PID"
kill -TERM "$PID"
wait "$PID"
check_num "daemon exit status after SIGTERM" $? -eq 0
finish
