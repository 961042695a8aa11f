#!/usr/bin/env bash
# tests/tools/capture-trace.sh: record an engine trace (docs/ENGINE.md "Trace format") from a
# real host. Runs ./build/vmguardd --dry-run with the given policy, takes every tick's
# status.json once (by its "ticks" counter), and writes the policy translated to trace lines
# plus one `tick` line per tick carrying every field, so test_engine replays exactly what the
# daemon's engine saw.
#
#   capture-trace.sh --host HOST.json --tenants DIR --out FILE.trace [options] [-- CMD ARGS...]
#       --ticks N        ticks to record (default 90)
#       --tick SEC       daemon tick (default: the host policy's)
#       --daemon PATH    vmguardd to run (default ./build/vmguardd)
#       --title TEXT     first comment line of the trace
#       --keep DIR       keep the raw status.json of every tick and the daemon log in DIR
#       --from DIR       no daemon: translate the ticks a --keep DIR holds again
#     CMD (the scenario) starts after the daemon's first recorded tick, in its own process
#     group; it is sent SIGTERM if still running when the last tick is taken.
#
# Needs root (the daemon reads every guest's cgroups and /proc) and jq. Exit 0 when the trace
# is written; 1 on any failure (policy refused, daemon died, no tick within 10 s, more than 16
# guests: test_engine's MAX_VMS).
#
# What a trace cannot carry, because status.json does not show it: the rates' exact interval
# (the tick is written), and a VM's `reset` flag (a reset interval shows as invalid figures,
# written `-`). A VM the daemon had no fresh rates for (first tick, vanished) is `gone=1`, as
# the daemon leaves it out of the engine's input. An unmanaged VM (no tenant) gets only
# `steal=` and `gone=`: the engine never limits it and uses nothing else of it, and
# test_engine reads at most 64 words a line (the script refuses a longer one).
set -eu

die() { echo "capture-trace: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -eu/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//' >&2; exit 2; }

HOST="" TENANTS="" OUT="" TICKS=90 TICK="" DAEMON=./build/vmguardd TITLE="" KEEP="" FROM=""
while [ $# -gt 0 ]; do
	case $1 in
	--host) HOST=$2; shift 2 ;;
	--tenants) TENANTS=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--ticks) TICKS=$2; shift 2 ;;
	--tick) TICK=$2; shift 2 ;;
	--daemon) DAEMON=$2; shift 2 ;;
	--title) TITLE=$2; shift 2 ;;
	--keep) KEEP=$2; shift 2 ;;
	--from) FROM=$2; shift 2 ;;
	--) shift; break ;;
	-h | --help) usage ;;
	*) echo "capture-trace: unknown option '$1'" >&2; usage ;;
	esac
done
[ -n "$HOST" ] && [ -n "$TENANTS" ] && [ -n "$OUT" ] || usage
case $TICKS in '' | *[!0-9]*) die "--ticks wants a number, got '$TICKS'" ;; esac
command -v jq >/dev/null || die "jq is needed (apt-get install jq)"
[ -x "$DAEMON" ] || die "no daemon at $DAEMON (make all)"
CLI=$(dirname "$DAEMON")/vmguard
[ -x "$CLI" ] || die "no $CLI (make all)"

# The daemon would refuse a bad policy anyway; checking first gives the file:line message.
"$CLI" policy check --host "$HOST" --tenants "$TENANTS" >/dev/null || die "policy refused by vmguard policy check"

WORK=$(mktemp -d /tmp/capture-trace.XXXXXX)
DPID="" SPID=""
cleanup() {
	[ -n "$SPID" ] && kill -TERM -- "-$SPID" 2>/dev/null || true
	[ -n "$DPID" ] && kill -TERM "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null || true
	if [ -n "$KEEP" ]; then
		mkdir -p "$KEEP" && cp -r "$WORK"/. "$KEEP"/
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
mkdir -p "$WORK/state" "$WORK/ticks"

# Policy JSON -> trace lines. Units as policies/README.md; the policy check above already
# refused anything malformed, so these parsers only convert. Defaults are the policy
# module's: an unset floor is throttle_to (never tighten beyond it), for 10s, calm_for 30s.
policy_lines() {
	local f
	jq -r '
	def num: if type == "number" then . else tonumber end;
	def secs: if type == "number" then . else
		capture("^(?<n>[0-9.]+) *(?<u>ns|us|ms|s|min|m|h)$")
		| (.n | tonumber) * ({ns: 1e-9, us: 1e-6, ms: 1e-3, s: 1, m: 60, min: 60, h: 3600}[.u]) end;
	def frac: if type == "string" and endswith("%") then (rtrimstr("%") | tonumber) / 100 else num end;
	def t: tostring + "s";
	"host tick=\((.tick // "1s") | secs | t)"
	+ " psi_io_some=\(.contention.psi_io_some // "10%" | frac)"
	+ " psi_cpu_some=\(.contention.psi_cpu_some // "20%" | frac)"
	+ " vm_steal=\(.contention.vm_steal // "20%" | frac)"
	+ " min_hold=\(.damping.min_hold // "5s" | secs | t)"
	+ " step_down=\(.damping.step_down // 0.5 | frac)"
	+ " step_up=\(.damping.step_up // 1.5 | frac)",
	(.services // [] | .[] | "service \(.name)"
		+ (if .max_run_delay then " max_run_delay_ms=\(.max_run_delay | secs * 1000)" else "" end)
		+ (if .max_io_delay then " max_io_delay_frac=\(.max_io_delay | frac)" else "" end)
		+ (if .max_probe_latency then " max_probe_latency_ms=\(.max_probe_latency | secs * 1000)" else "" end))
	' "$HOST"
	for f in "$TENANTS"/*.json; do
		case $(basename "$f") in .*) continue ;; esac
		[ -e "$f" ] || continue
		jq -r '
		def num: if type == "number" then . else tonumber end;
		def secs: capture("^(?<n>[0-9.]+) *(?<u>ns|us|ms|s|min|m|h)$")
			| (.n | tonumber) * ({ns: 1e-9, us: 1e-6, ms: 1e-3, s: 1, m: 60, min: 60, h: 3600}[.u]);
		def cpu: if type == "number" then .
			elif endswith("%") then (rtrimstr("%") | tonumber) / 100
			else (capture("^(?<n>[0-9.]+) *(cores?)?$").n | tonumber) end;
		def bytes: capture("^(?<n>[0-9.]+) *(?<u>B|kB|MB|GB|TB|KiB|MiB|GiB|TiB)/s$")
			| (.n | tonumber) * ({B: 1, kB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KiB: 1024,
			                      MiB: 1048576, GiB: 1073741824, TiB: 1099511627776}[.u]);
		def iops: if type == "number" then . else (capture("^(?<n>[0-9.]+) *(iops|IOPS)?$").n | tonumber) end;
		def bits: capture("^(?<n>[0-9.]+) *(?<u>bit/s|kbit/s|Mbit/s|Gbit/s|Tbit/s|bps|kbps|Mbps|Gbps)$")
			| (.n | tonumber) * ({"bit/s": 1, "kbit/s": 1e3, "Mbit/s": 1e6, "Gbit/s": 1e9, "Tbit/s": 1e12,
			                      bps: 1, kbps: 1e3, Mbps: 1e6, Gbps: 1e9}[.u]);
		def val($res): if $res == "cpu" then cpu
			elif ($res | endswith("_iops")) then iops
			elif ($res | startswith("disk_")) then bytes else bits end;
		.tenant as $t | (.limits // {}) | to_entries[] | .key as $res | .value as $r
		| "rule \($t) \($res)"
		+ (if $r.cap then " cap=\($r.cap | val($res))" else "" end)
		+ (if $r.noisy_above then
			" noisy_above=\($r.noisy_above | val($res))"
			+ " noisy_for=\($r["for"] // "10s" | secs)s"
			+ " throttle_to=\($r.throttle_to | val($res))"
			+ " floor=\($r.floor // $r.throttle_to | val($res))"
			+ " calm_for=\($r.calm_for // "30s" | secs)s"
		  else "" end)
		' "$f"
	done
}

# Numbers with k/M/G from 1e3 up so the file stays readable. Rates get 6 significant digits
# (finer than any threshold a policy states); policy figures stay exact, because a floor
# rounded apart from throttle_to * step_down makes the replay take one more 20 B/s tighten
# than the daemon did.
format_numbers() {
	awk '
	function fmt(v, p,   a) {
		a = v < 0 ? -v : v
		if (a >= 1e9) return sprintf("%." p "gG", v / 1e9)
		if (a >= 1e6) return sprintf("%." p "gM", v / 1e6)
		if (a >= 1e3) return sprintf("%." p "gk", v / 1e3)
		return sprintf("%." p "g", v)
	}
	/^#/ { print; next }
	{
		p = $1 == "tick" ? 6 : 15
		for (i = 1; i <= NF; i++)
			if (match($i, /=[-+]?[0-9.]+([eE][-+]?[0-9]+)?$/)) {
				k = substr($i, 1, RSTART)
				$i = k fmt(substr($i, RSTART + 1) + 0, p)
			}
		print
	}'
}

if [ -n "$FROM" ]; then
	[ -d "$FROM/ticks" ] || die "no $FROM/ticks"
	cp "$FROM"/ticks/*.json "$WORK/ticks/"
	TICKS=$(find "$WORK/ticks" -name '*.json' | wc -l)
	[ -f "$FROM/scenario.cmd" ] && set -- "$(cat "$FROM/scenario.cmd")"
	missed=$(cat "$FROM/missed" 2>/dev/null || echo 0)
else
	args=(--dry-run --host "$HOST" --tenants "$TENANTS" --state-dir "$WORK/state")
	[ -n "$TICK" ] && args+=(--tick "$TICK")
	"$DAEMON" "${args[@]}" >"$WORK/daemon.log" 2>&1 &
	DPID=$!
	echo "capture-trace: daemon pid $DPID, state $WORK/state, $TICKS ticks" >&2

	STATUS=$WORK/state/status.json
	last=0 taken=0 waited=0 missed=0
	while [ "$taken" -lt "$TICKS" ]; do
		kill -0 "$DPID" 2>/dev/null || { tail -5 "$WORK/daemon.log" >&2; die "daemon exited"; }
		# The daemon renames a complete file into place, so a read sees one whole tick.
		n=$(jq -r '.daemon.ticks' "$STATUS" 2>/dev/null || echo 0)
		if [ "$n" -gt "$last" ]; then
			[ "$last" -gt 0 ] && [ "$n" -gt $((last + 1)) ] && missed=$((missed + n - last - 1))
			cp "$STATUS" "$WORK/ticks/$(printf %08d "$n").json"
			last=$n taken=$((taken + 1)) waited=0
			if [ "$taken" = 1 ] && [ $# -gt 0 ]; then
				setsid "$@" </dev/null >"$WORK/scenario.log" 2>&1 &
				SPID=$!
				echo "capture-trace: scenario pid $SPID: $*" >&2
			fi
			[ $((taken % 10)) = 0 ] && echo "capture-trace: $taken/$TICKS ticks" >&2
		fi
		sleep 0.1
		waited=$((waited + 1))
		[ "$waited" -lt 100 ] || die "no new tick for 10 s (last ${last})"
	done
	if [ -n "$SPID" ] && kill -0 "$SPID" 2>/dev/null; then
		echo "capture-trace: scenario still running: terminating it" >&2
		kill -TERM -- "-$SPID" 2>/dev/null || true
	fi
	SPID=""
	kill -TERM "$DPID" 2>/dev/null || true
	wait "$DPID" 2>/dev/null || true
	DPID=""
	echo "$missed" >"$WORK/missed"
	[ $# -gt 0 ] && echo "$*" >"$WORK/scenario.cmd"
fi

# One object per tick, in tick order; every VM ever seen gets a trace name (its domain name,
# made unique if a name came back with a new uuid) and is written on every line.
jq -s '
	(.[0].daemon.tick_seconds) as $tick
	| [.[] | .vms[] | {uuid, name, tenant}] as $all
	| (reduce $all[] as $v ({order: [], seen: {}};
		if .seen[$v.uuid] then . else .order += [$v] | .seen[$v.uuid] = true end)).order as $vms
	| (reduce $vms[] as $v ({names: {}, out: []};
		(.names[$v.name] // 0) as $k
		| .names[$v.name] = $k + 1
		| .out += [$v + {tname: (if $k == 0 then $v.name else "\($v.name)-\($k + 1)" end),
		                 tenant: ([$all[] | select(.uuid == $v.uuid) | .tenant | select(. != null)][0])}])).out as $vms
	| {tick: $tick, vms: $vms, services: [.[0].services[].name],
	   ticks: [.[] | {n: .daemon.ticks, host, services, vms: (.vms | map({key: .uuid, value: .}) | from_entries)}]}
' "$WORK"/ticks/*.json >"$WORK/all.json"

nvms=$(jq '.vms | length' "$WORK/all.json")
[ "$nvms" -le 16 ] || die "$nvms guests seen: test_engine replays at most 16 (MAX_VMS)"

{
	echo "# ${TITLE:-captured trace}"
	echo "# Captured $(date -u +%Y-%m-%dT%H:%M:%SZ) by tests/tools/capture-trace.sh from vmguardd --dry-run"
	echo "# on $(uname -n) ($(nproc) CPUs, kernel $(uname -r)); $TICKS ticks, $missed missed."
	[ $# -gt 0 ] && echo "# Scenario: $*"
	echo "# Policy: $HOST and $TENANTS/*.json, translated below. Each tick line's comment"
	echo "# before it is the daemon's own verdict that tick. The policy files, as given:"
	echo "#   $(basename "$HOST"): $(jq -c 'del(.description, ."$schema")' "$HOST")"
	for f in "$TENANTS"/*.json; do
		case $(basename "$f") in .*) continue ;; esac
		[ -e "$f" ] && echo "#   $(basename "$f"): $(jq -c 'del(.description, ."$schema")' "$f")"
	done
	echo "#"
	policy_lines
	jq -r '.vms[] | "vm \(.tname) \(.tenant // "-") uuid=\(.uuid)"' "$WORK/all.json"
	jq -r '
	def v($x): if $x == null then "-" else $x end;
	.tick as $tick | .vms as $vms | .services as $svcs
	| .ticks[]
	| . as $t
	| "# daemon tick \(.n): " + (if .host.contended then "contended: \(.host.contention)" else "not contended" end),
	  ("tick \(.n * $tick)s interval=\($tick) psi_io=\(v(.host.psi_io_some)) psi_cpu=\(v(.host.psi_cpu_some))"
	  + ([$svcs | to_entries[] | .value as $name | ($t.services[.key]) as $s
	      | if $s == null or $s.run_delay_avg_ms == null then
	          " \($name).run_delay_ms=- \($name).io_delay=- \($name).probe_ms=- \($name).valid=0"
	        else
	          " \($name).run_delay_ms=\($s.run_delay_avg_ms) \($name).io_delay=\(v($s.blkio_delay_frac))"
	          + " \($name).probe_ms=\(v($s.probe_latency_ms)) \($name).valid=1"
	        end] | join(""))
	  + ([$vms[] | .tname as $n | .tenant as $tenant | ($t.vms[.uuid].usage) as $u
	      | ($u == null or ([$u.cpu_cores, $u.disk_write_bytes_per_s, $u.net_tx_bits_per_s,
	                         $u.vcpu_delay_frac] | all(. == null))) as $gone
	      | if $tenant == null then
	          # Unmanaged: only its steal (contention for others) and presence reach the engine.
	          if $gone then " \($n).steal=- \($n).gone=1" else " \($n).steal=\(v($u.vcpu_delay_frac)) \($n).gone=0" end
	        elif $gone then
	          " \($n).cpu=- \($n).disk_read=- \($n).disk_write=- \($n).disk_read_iops=- \($n).disk_write_iops=-"
	          + " \($n).net_rx=- \($n).net_tx=- \($n).steal=- \($n).reset=0 \($n).gone=1"
	        else
	          " \($n).cpu=\(v($u.cpu_cores)) \($n).disk_read=\(v($u.disk_read_bytes_per_s))"
	          + " \($n).disk_write=\(v($u.disk_write_bytes_per_s)) \($n).disk_read_iops=\(v($u.disk_read_iops))"
	          + " \($n).disk_write_iops=\(v($u.disk_write_iops)) \($n).net_rx=\(v($u.net_rx_bits_per_s))"
	          + " \($n).net_tx=\(v($u.net_tx_bits_per_s)) \($n).steal=\(v($u.vcpu_delay_frac))"
	          + " \($n).reset=0 \($n).gone=0"
	        end] | join("")))
	' "$WORK/all.json"
} | format_numbers >"$WORK/out.trace"

# test_engine reads at most 64 words a line and drops the rest without a word: refuse a
# trace it would replay wrong.
maxw=$(awk '!/^#/ && NF > m { m = NF } END { print m + 0 }' "$WORK/out.trace")
[ "$maxw" -le 64 ] || die "a line of $maxw words: test_engine reads 64 (too many managed guests)"
mv "$WORK/out.trace" "$OUT"
grep -c '^tick ' "$OUT" | xargs -I{} echo "capture-trace: wrote $OUT ({} ticks, $nvms guests, $missed ticks missed)" >&2
