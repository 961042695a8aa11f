#!/usr/bin/env bash
# Markdown tables from the TSV files bench/run.sh collects (no measuring here).
#   bench/tables.sh synthetic FILE.tsv      bench_sample rows
#   bench/tables.sh peers FILE.tsv          bench/peers.sh rows, with vmguard/peer ratios
set -eu
kind=$1 f=$2
case $kind in
synthetic)
	echo "| label | N | sampled ok | ticks | CPU per VM per sample (us) | user / sys (us) | CPU per tick median / max (ms) | peak RSS (KiB) | fds | monitor open per VM (us) |"
	echo "|---|---|---|---|---|---|---|---|---|---|"
	awk -F'\t' 'NR > 1 { printf "| %s | %s | %s | %s | **%.1f** | %.1f / %.1f | %.2f / %.2f | %s | %s | %.0f |\n",
		$1, $3, $4, $5, $7, $8, $9, $10, $11, $12, $13, $14 }' "$f"
	;;
peers)
	# libvirtd works for everyone on this shared host: its CPU while nothing of ours ran
	# (the "idle" rows, averaged per second) is subtracted from each collector's window.
	awk -F'\t' '
	NR == 1 { next }
	$1 == "idle" { idle_s += $5; idle_t += $3; next }
	{ name[++k] = $1; n[k] = $2; s[k] = $3; c[k] = $4; l[k] = $5 }
	END {
		base = idle_t > 0 ? idle_s / idle_t : 0
		printf "libvirtd baseline (nothing of ours running): %.1f ms CPU per second\n\n", base * 1000
		print "| collector | domains | samples | collector CPU per VM-sample (us) | libvirtd CPU per VM-sample, net of baseline (us) | collector + libvirtd (us) | peer / vmguard, collector alone | peer / vmguard, with libvirtd |"
		print "|---|---|---|---|---|---|---|---|"
		for (i = 1; i <= k; i++) {
			vs = n[i] * s[i]
			if (vs == 0) { printf "| %s | %d | %d | - | - | - | - | - |\n", name[i], n[i], s[i]; continue }
			cu[i] = c[i] / vs * 1e6
			lu[i] = (l[i] - base * s[i]) / vs * 1e6
			if (lu[i] < 0) lu[i] = 0
			if (name[i] == "vmguard") { vc = cu[i]; vt = cu[i] + lu[i] }
		}
		for (i = 1; i <= k; i++) {
			vs = n[i] * s[i]
			if (vs == 0) continue
			r1 = (vc > 0 && name[i] != "vmguard") ? sprintf("%.0fx", cu[i] / vc) : "-"
			r2 = (vt > 0 && name[i] != "vmguard") ? sprintf("%.0fx", (cu[i] + lu[i]) / vt) : "-"
			printf "| %s | %d | %d | %.1f | %.1f | %.1f | %s | %s |\n", name[i], n[i], s[i], cu[i], lu[i], cu[i] + lu[i], r1, r2
		}
	}' "$f"
	;;
*) echo "usage: $0 synthetic|peers FILE.tsv" >&2; exit 2 ;;
esac
