#!/usr/bin/env bash
# Protection (issue 8): the noisy-neighbour lab scenario (lab/demo.sh: calm, noise without
# vmguard, the same noise with vmguardd, for each case) repeated R times, with the mean and
# the spread (min-max) of each figure per case and phase.
#
#   bench/protection.sh [--reps R] [--cases "wb none bcast"] [--tsv FILE] [--work DIR]
#                       [--calm S] [--noise S] [--guard S]
#   bench/protection.sh --from "DIR..." [--tsv FILE]   rows from demo runs already made
#                       (a demo output dir, or a --work dir: its rep-N dirs)
#   bench/protection.sh --summary FILE.tsv             only the table of an earlier run
#
# Each repetition runs lab/demo.sh with its own output dir (DIR/rep-N, default DIR
# build/bench/protection-STAMP, kept: logs, table.txt, victim-latency.png), a namespace
# and guest names of this run's own (D_NS=vmgpPID, D_PREFIX=pPID: guests vmg-pPID-*), and a
# private copy of vmguardd and vmguard (other engineers rebuild build/ meanwhile). Phase
# lengths default to lab/demo.sh's (D_CALM_S, D_NOISE_S, D_GUARD_S); one repetition of the
# three cases is about 8-10 minutes on this 2-core machine, so R = 3 is about half an hour.
# The figures are lab/victim-report.sh's, which demo.sh writes to DIR/rep-N/report.txt
# ("CASE PHASE KEY=VALUE..."), and vmguardd's reaction from lab/demo/events.sh. One TSV row
# per repetition, case and phase (calm, noise, guard; default FILE
# bench/results/protection-DATE.tsv, appended to, repetitions numbered on):
#   rep case phase ok dhcp_n dhcp_pct dhcp_p50 dhcp_p90 dhcp_p99 dns_p50 dns_p99
#   rundelay_ms iodelay_pct psi_io_pct noisy_mbs noisy_mbit throttle_s release_s load1 dir
# ("-" where the phase has no such figure; ok "no" when the case did not get through all
# three phases, e.g. a guest vanished: such rows are kept but left out of the summary;
# throttle_s and release_s are on the guard row only.)
# The summary (stdout, markdown) gives per case and phase: repetitions, then each figure as
# mean (min-max).
#
# VMG_BENCH_DEMO names the program run per repetition instead of lab/demo.sh (tests: a fake
# that writes a demo output dir without guests).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
BUILD=${BUILD:-build}
reps=3 cases="wb none bcast" tsv="" workdir="" from="" calm="" noise="" guard=""
demo=${VMG_BENCH_DEMO:-$root/lab/demo.sh}
HEADER='rep	case	phase	ok	dhcp_n	dhcp_pct	dhcp_p50	dhcp_p90	dhcp_p99	dns_p50	dns_p99	rundelay_ms	iodelay_pct	psi_io_pct	noisy_mbs	noisy_mbit	throttle_s	release_s	load1	dir'

summary() { # TSV
	awk -F'\t' '
	function add(k, x) {
		if (x == "-" || x == "") return
		x += 0; n[k]++; s[k] += x
		if (!((k) in lo) || x < lo[k]) lo[k] = x
		if (!((k) in hi) || x > hi[k]) hi[k] = x
	}
	# 3 significant digits or so, trailing zeros dropped: 1512, 151, 15.1, 1.51, 0.35, 2.
	function num(x,    r) {
		r = (x >= 100) ? sprintf("%.0f", x) : (x >= 10) ? sprintf("%.1f", x) : sprintf("%.2f", x)
		if (r ~ /\./) { sub(/0+$/, "", r); sub(/\.$/, "", r) }
		return r
	}
	function f(k) {
		if (!n[k]) return "-"
		if (n[k] == 1 || lo[k] == hi[k]) return num(s[k] / n[k])
		return num(s[k] / n[k]) " (" num(lo[k]) "-" num(hi[k]) ")"
	}
	NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
	{
		c = $col["case"]; p = $col["phase"]
		if (!(c in seenc)) { seenc[c] = 1; order[++nc] = c }
		if ($col["ok"] != "yes") { bad[c]++; next }
		reps[c, p]++
		for (m in col) add(c SUBSEP p SUBSEP m, $col[m])
	}
	END {
		print "| case | phase | reps | DHCP success | DHCP p50 (ms) | DHCP p90 (ms) | DHCP p99 (ms) | DNS p50 (ms) | DNS p99 (ms) | dnsmasq run-queue delay (ms) | dnsmasq I/O delay | host PSI io | noisy guest throughput |"
		print "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
		split("calm noise guard", ph, " ")
		split("1 calm|2 noise|3 noise + vmguard", lab, "|")
		for (o = 1; o <= nc; o++) {
			c = order[o]
			for (i = 1; i <= 3; i++) {
				p = ph[i]; k = c SUBSEP p SUBSEP
				if (!reps[c, p]) continue
				thr = (c == "bcast") ? (n[k "noisy_mbit"] ? f(k "noisy_mbit") " Mbit/s" : "-") : (n[k "noisy_mbs"] ? f(k "noisy_mbs") " MB/s" : "-")
				printf "| %s | %s | %d | %s%% | %s | %s | %s | %s | %s | %s | %s%% | %s%% | %s |\n", c, lab[i], reps[c, p],
					f(k "dhcp_pct"), f(k "dhcp_p50"), f(k "dhcp_p90"), f(k "dhcp_p99"), f(k "dns_p50"), f(k "dns_p99"),
					f(k "rundelay_ms"), f(k "iodelay_pct"), f(k "psi_io_pct"), thr
			}
		}
		print ""
		for (o = 1; o <= nc; o++) {
			c = order[o]; g = c SUBSEP "guard" SUBSEP; z = c SUBSEP "noise" SUBSEP; a = c SUBSEP "calm" SUBSEP
			if (!reps[c, "guard"]) { printf "- %s: no complete run (%d row(s) left out)\n", c, bad[c]; continue }
			line = sprintf("- %s: vmguardd throttled %s s after the noise started, released %s s after it stopped", c, f(g "throttle_s"), f(g "release_s"))
			if (n[a "dhcp_p90"] && n[z "dhcp_p90"] && n[g "dhcp_p90"] && s[a "dhcp_p90"] > 0 && s[g "dhcp_p90"] > 0)
				line = line sprintf("; DHCP p90 (means) noise %.2fx calm, with vmguard %.2fx calm", \
					(s[z "dhcp_p90"] / n[z "dhcp_p90"]) / (s[a "dhcp_p90"] / n[a "dhcp_p90"]), \
					(s[g "dhcp_p90"] / n[g "dhcp_p90"]) / (s[a "dhcp_p90"] / n[a "dhcp_p90"]))
			if (bad[c]) line = line sprintf("; %d row(s) of runs that did not complete left out", bad[c])
			print line
		}
	}' "$1"
}

while [ $# -gt 0 ]; do
	case $1 in
	--reps) reps=$2; shift ;;
	--cases) cases=$2; shift ;;
	--tsv) tsv=$2; shift ;;
	--work) workdir=$2; shift ;;
	--from) from=$2; shift ;;
	--calm) calm=$2; shift ;;
	--noise) noise=$2; shift ;;
	--guard) guard=$2; shift ;;
	--summary) summary "$2"; exit 0 ;;
	-h | --help) sed -n '2,/^set -eu/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "protection: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
[ -n "$tsv" ] || tsv="$here/results/protection-$(date -u +%F).tsv"
mkdir -p "$(dirname "$tsv")"
[ -s "$tsv" ] || printf '%s\n' "$HEADER" >"$tsv"
head -n 1 "$tsv" | cmp -s - <(printf '%s\n' "$HEADER") ||
	{ echo "protection: $tsv has other columns than this script writes" >&2; exit 1; }

# The rows of one demo output dir, as repetition REP. LOAD: the load average when it ended.
rows() { # DIR REP LOAD
	local d=$1 rep=$2 load=$3 c p ok line ev ts rs pts prs
	[ -s "$d/report.txt" ] || { echo "protection: no $d/report.txt (the demo did not get to its report)" >&2; return 1; }
	for c in $(awk '{print $1}' "$d/report.txt" | uniq); do
		ok=yes
		for p in calm noise guard; do
			awk -v c="$c" -v p="$p" '$1 == c && $2 == p { f = 1 } END { exit !f }' "$d/phases.tsv" 2>/dev/null || ok=no
		done
		ev=$("$root/lab/demo/events.sh" "$d" "$c" 2>/dev/null || true)
		ts=$(sed -n 's/.*throttle_s=\([^ ]*\).*/\1/p' <<<"$ev")
		rs=$(sed -n 's/.*release_s=\([^ ]*\).*/\1/p' <<<"$ev")
		for p in calm noise guard; do
			line=$(awk -v c="$c" -v p="$p" '$1 == c && $2 == p' "$d/report.txt" | tail -n 1)
			[ -n "$line" ] || continue
			pts=- prs=-
			[ "$p" != guard ] || pts=${ts:--} prs=${rs:--}
			awk -v rep="$rep" -v ok="$ok" -v ts="$pts" -v rs="$prs" -v load="$load" -v dir="$d" '{
				for (i = 3; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
				split("dhcp_n dhcp_pct dhcp_p50 dhcp_p90 dhcp_p99 dns_p50 dns_p99 rundelay_ms iodelay_pct psi_io_pct noisy_mbs noisy_mbit", keys, " ")
				printf "%s\t%s\t%s\t%s", rep, $1, $2, ok
				for (i = 1; i <= 12; i++) printf "\t%s", (keys[i] in v && v[keys[i]] != "") ? v[keys[i]] : "-"
				printf "\t%s\t%s\t%s\t%s\n", ts, rs, load, dir
			}' <<<"$line"
		done
	done
}

# Repetitions go on from the highest already in the file.
next=$(awk -F'\t' 'NR > 1 && $1 + 0 > m { m = $1 + 0 } END { print m + 1 }' "$tsv")

if [ -n "$from" ]; then
	# A --work dir of an earlier run stands for its rep-N dirs.
	dirs=""
	for d in $from; do
		if [ ! -e "$d/report.txt" ] && compgen -G "$d/rep-*/" >/dev/null; then
			dirs="$dirs $(ls -d "$d"/rep-* | sort -t- -k2 -n | tr '\n' ' ')"
		else
			dirs="$dirs $d"
		fi
	done
	for d in $dirs; do
		rows "$d" "$next" - >>"$tsv"
		next=$((next + 1))
	done
	summary "$tsv"
	echo "protection: rows in $tsv" >&2
	exit 0
fi

[ "$(id -u)" -eq 0 ] || { echo "protection: must run as root (libvirtd, namespaces, cgroups)" >&2; exit 77; }
[ -n "$workdir" ] || workdir="$root/$BUILD/bench/protection-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$workdir/bin"
make -C "$root" --no-print-directory "$BUILD/vmguardd" "$BUILD/vmguard" >&2
cp "$root/$BUILD/vmguardd" "$root/$BUILD/vmguard" "$workdir/bin/"

failed=0 demo_pid="" stop=""
trap 'stop=1; [ -z "$demo_pid" ] || kill -TERM "$demo_pid" 2>/dev/null' INT TERM
for i in $(seq 1 "$reps"); do
	d="$workdir/rep-$i"
	echo "protection: repetition $i of $reps (cases $cases) into $d" >&2
	rc=0
	# In the background so that a signal to this script reaches it: demo.sh tears down what
	# it made on SIGTERM (an async child of a script ignores SIGINT, so Ctrl-C is passed on
	# as SIGTERM too), and this waits for that teardown before exiting.
	env BUILD="$workdir/bin" D_OUT="$d" D_NS="vmgp$$" D_PREFIX="p$$" D_CASES="$cases" \
		${calm:+D_CALM_S=$calm} ${noise:+D_NOISE_S=$noise} ${guard:+D_GUARD_S=$guard} \
		"$demo" >"$workdir/demo-$i.out" 2>"$workdir/demo-$i.err" &
	demo_pid=$!
	while :; do
		rc=0
		wait "$demo_pid" || rc=$?
		kill -0 "$demo_pid" 2>/dev/null || break
	done
	[ "$rc" = 0 ] || { echo "protection: repetition $i: demo exited $rc (tail of $workdir/demo-$i.err:)" >&2; tail -n 5 "$workdir/demo-$i.err" >&2; }
	[ -z "$stop" ] || { echo "protection: interrupted in repetition $i" >&2; exit 130; }
	rows "$d" "$next" "$(cut -d' ' -f1 /proc/loadavg)" >>"$tsv" || failed=$((failed + 1))
	next=$((next + 1))
done
summary "$tsv"
echo "protection: rows in $tsv; demo output in $workdir" >&2
[ "$failed" = 0 ]
