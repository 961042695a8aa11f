#!/usr/bin/env bash
# Regenerates the section of BENCHMARKS.md between
#   <!-- bench/run.sh: generated section begin -->   and   <!-- bench/run.sh: generated section end -->
# from the newest result of each kind in bench/results (KIND-YYYY-MM-DD.tsv: synthetic,
# peers-N for each N, reaction, conservation, protection; see b_newest in bench/lib.sh),
# with each table's date, the command that produces it, its raw file, the machine, and the
# plots of bench/plots.sh that exist. No measuring here; everything else in the file is kept.
#
#   bench/update-md.sh [--results DIR] [--md FILE] [--check]
#     --results DIR  where the TSVs and PNGs are           [bench/results]
#     --md FILE      the file to update                    [BENCHMARKS.md]
#     --check        change nothing; exit 1 if FILE is not up to date
# Idempotent: the section depends only on the TSV files and the machine it runs on (no
# clock), so a second run leaves the file as it is. Run bench/plots.sh first to refresh the
# PNGs (bench/run.sh --update-md does both).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
B_NAME=update-md
. "$here/lib.sh"
results=$here/results md=$root/BENCHMARKS.md check=0
args=()
for a in "$@"; do
	# --check takes no value; b_parse handles the rest.
	if [ "$a" = --check ]; then check=1; else args+=("$a"); fi
done
b_parse "--results=results --md=md" ${args[@]+"${args[@]}"}
[ -f "$md" ] || { echo "update-md: no $md" >&2; exit 1; }
results=$(cd "$results" && pwd)
begin='<!-- bench/run.sh: generated section begin -->'
end='<!-- bench/run.sh: generated section end -->'

rel() { realpath -m --relative-to="$(dirname "$md")" "$1"; }
date_of() { local b=${1##*/}; b=${b%.tsv}; echo "${b: -10}"; }

machine() {
	local model deb
	model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
	deb=$(cat /etc/debian_version 2>/dev/null || echo "?")
	echo "$(nproc) CPUs (${model:-unknown model}), kernel $(uname -r), Debian $deb"
}

# A plot line when bench/plots.sh has drawn it.
png() { # NAME CAPTION
	[ -s "$results/$1" ] || return 0
	echo
	echo "![$2]($(rel "$results/$1"))"
}

section() {
	local f n cmd
	echo
	echo "## Latest results (generated)"
	echo
	echo "Written by \`bench/update-md.sh\` (also \`bench/run.sh --update-md\`) from the newest"
	echo "\`$(rel "$results")/KIND-DATE.tsv\` of each kind; edit the scripts, not this section."
	echo "Each table's date is its file's; the discussion of each figure is in the sections above."
	echo
	echo "Machine this section was generated on: $(machine)."

	if f=$(b_newest "$results" synthetic) && [ -n "$f" ]; then
		cmd=$(awk -F'\t' 'NR > 1 { ns = ns sep $3; sep = " "; t = $5; i = $6 } END { printf "bench/run.sh --no-real --synthetic \"%s\" --ticks %s` (for each N: `build/bench/bench_sample --synthetic N --ticks %s --interval-ms %s", ns, t, t, i }' "$f")
		echo
		echo "### Collection overhead: vmguard sampling, synthetic guests ($(date_of "$f"))"
		echo
		echo "Command: \`$cmd\`). Raw rows: \`$(rel "$f")\`."
		echo
		"$here/tables.sh" synthetic "$f"
		png overhead.png "CPU per VM per sample against N, vmguard and its peers"
	fi

	for f in "$results"/peers-*-[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9].tsv; do
		[ -s "$f" ] || continue
		n=${f##*/peers-}; n=${n%%-*}
		echo "$n"
	done | sort -n -u | while read -r n; do
		f=$(b_newest "$results" "peers-$n")
		cmd=$(awk -F'\t' -v n="$n" '$1 == "vmguard" { s = $3 } END { printf "bench/guests.sh up %s && bench/peers.sh vmg-b %s OUT.tsv", n, s ? s : 30 }' "$f")
		echo
		echo "### Collection overhead: vmguard and peers on $n running lab guests ($(date_of "$f"))"
		echo
		echo "Command: \`$cmd\` (also \`bench/run.sh --real $n\`). Raw rows: \`$(rel "$f")\`."
		echo
		"$here/tables.sh" peers "$f"
	done

	if f=$(b_newest "$results" reaction) && [ -n "$f" ]; then
		cmd=$(awk -F'\t' 'NR > 1 { if (!($1 in s)) { s[$1] = 1; t = t sep $1; sep = " " } if ($NF == "0") n[$1]++ } END { m = 0; for (k in n) if (n[k] > m) m = n[k]; printf "bench/reaction.sh --trials %d --ticks \"%s\"", m, t }' "$f")
		echo
		echo "### Reaction time: disk noise start to throttle written ($(date_of "$f"))"
		echo
		echo "Command: \`$cmd\`. Raw rows: \`$(rel "$f")\`."
		echo
		"$here/reaction.sh" --summary "$f"
		png reaction.png "Reaction time distribution per tick"
	fi

	if f=$(b_newest "$results" conservation) && [ -n "$f" ]; then
		cmd=$(awk -F'\t' 'NR > 1 { if ($1 + 0 > r) r = $1 + 0; if (!s) s = $3 } END { printf "bench/conservation.sh --reps %d --seconds %.0f", r, s }' "$f")
		echo
		echo "### Work conservation: one disk guest alone, without and with vmguard ($(date_of "$f"))"
		echo
		echo "Command: \`$cmd\`. Raw rows: \`$(rel "$f")\`."
		echo
		"$here/conservation.sh" --summary "$f"
	fi

	if f=$(b_newest "$results" protection) && [ -n "$f" ]; then
		cmd=$(awk -F'\t' 'NR > 1 { if (!($1 in r)) { r[$1] = 1; n++ } if (!($2 in c)) { c[$2] = 1; cs = cs sep $2; sep = " " } } END { printf "bench/protection.sh --reps %d --cases \"%s\"", n, cs }' "$f")
		echo
		echo "### Protection: the lab scenario, calm / noise / noise + vmguard ($(date_of "$f"))"
		echo
		echo "Command: \`$cmd\` (lab/demo.sh once per repetition). Raw rows: \`$(rel "$f")\`."
		echo "Each figure: mean over the repetitions (min-max)."
		echo
		"$here/protection.sh" --summary "$f"
		png protection.png "Victim DHCP p90 and p99 per case and phase, with spread"
	fi
	echo
}

gen=$(mktemp "$md.gen.XXXXXX")
new=$(mktemp "$md.new.XXXXXX")
trap 'rm -f "$gen" "$new"' EXIT
section >"$gen"
if grep -qxF "$begin" "$md" && grep -qxF "$end" "$md"; then
	awk -v b="$begin" -v e="$end" -v f="$gen" '
		$0 == b { print; while ((getline l < f) > 0) print l; skip = 1; next }
		$0 == e { skip = 0 }
		!skip' "$md" >"$new"
else
	# No markers yet: the section goes at the end, between new markers.
	{ cat "$md"; echo; echo "$begin"; cat "$gen"; echo "$end"; } >"$new"
fi
if cmp -s "$md" "$new"; then
	echo "update-md: $md is up to date" >&2
	exit 0
fi
[ "$check" = 0 ] || { echo "update-md: $md is not up to date (run bench/update-md.sh)" >&2; diff -u "$md" "$new" | head -n 40 >&2; exit 1; }
cat "$new" >"$md"
echo "update-md: updated $md" >&2
