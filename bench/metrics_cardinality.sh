#!/usr/bin/env bash
# The cost of vmguard's /metrics at N guests, every figure of docs/FLEET.md in one run:
#   1. exposition size, series count, render time (bench/metrics_cardinality.c);
#   2. gzip size (what a remote Prometheus would transfer if the endpoint compressed);
#   3. scrape time through the real HTTP server (tests/tools/metrics_serve), curl, median;
#   4. with --prometheus SECONDS: a real Prometheus scrapes it every 5 s for SECONDS and
#      reports its scrape duration, samples per scrape, head series and resident memory.
#
#   bench/metrics_cardinality.sh [N=1000] [--prometheus SECONDS]
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
N=1000
PROM_S=0
while [ $# -gt 0 ]; do
	case $1 in
	--prometheus) PROM_S=$2; shift 2 ;;
	*) N=$1; shift ;;
	esac
done
RUNS=31
make -s --no-print-directory "$BUILD/bench/metrics_cardinality" "$BUILD/tests/tools/metrics_serve"

tmp=$(mktemp -d /tmp/vmg-bench-metrics.XXXXXX)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "== render ($BUILD/bench/metrics_cardinality $N $RUNS)"
"$BUILD/bench/metrics_cardinality" "$N" "$RUNS" --snapshot-out "$tmp/snap.json" --metrics-out "$tmp/metrics.txt"
echo "gzip -6 of the exposition: $(gzip -6c "$tmp/metrics.txt" | wc -c) bytes"
if command -v promtool >/dev/null; then
	echo "promtool check metrics: $(promtool check metrics <"$tmp/metrics.txt" >/dev/null 2>&1 && echo ok || echo FAILED)"
fi

echo "== scrape through the HTTP server (metrics_serve, curl, $RUNS runs)"
"$BUILD/tests/tools/metrics_serve" --listen 127.0.0.1:0 --snapshot "$tmp/snap.json" >"$tmp/serve.out" 2>"$tmp/serve.err" &
pids+=($!)
for _ in $(seq 50); do grep -q '^port ' "$tmp/serve.out" && break; sleep 0.1; done
port=$(awk '/^port/ {print $2}' "$tmp/serve.out")
url="http://127.0.0.1:$port/metrics"
for _ in $(seq "$RUNS"); do
	curl -s -o /dev/null -w '%{time_total} %{size_download}\n' "$url"
done >"$tmp/scrapes"
echo "scrape: median $(awk '{print $1 * 1000}' "$tmp/scrapes" | median) ms (min $(awk '{print $1 * 1000}' "$tmp/scrapes" | sort -g | head -1) ms), $(awk 'NR == 1 {print $2}' "$tmp/scrapes") bytes; includes parsing the snapshot file, which vmguardd does not do"

[ "$PROM_S" -gt 0 ] || exit 0
command -v prometheus >/dev/null || { echo "prometheus not installed (apt-get install prometheus)"; exit 1; }
echo "== a real Prometheus, scrape interval 5s, for ${PROM_S}s"
pport=$((20000 + RANDOM % 30000))
cat >"$tmp/prometheus.yml" <<YAML
global: {scrape_interval: 5s, scrape_timeout: 5s}
scrape_configs:
  - job_name: vmguard
    static_configs: [{targets: ['127.0.0.1:$port']}]
  - job_name: prometheus
    static_configs: [{targets: ['127.0.0.1:$pport']}]
YAML
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/tsdb" \
	--web.listen-address="127.0.0.1:$pport" --log.level=warn >"$tmp/prometheus.log" 2>&1 &
pids+=($!)
sleep "$PROM_S"
q() {
	curl -sf --get --data-urlencode "query=$1" "http://127.0.0.1:$pport/api/v1/query" |
		jq -r '.data.result[0].value[1] // "n/a"'
}
echo "scrape_duration_seconds (avg over the run): $(q "avg_over_time(scrape_duration_seconds{job=\"vmguard\"}[${PROM_S}s])")"
echo "scrape_samples_scraped: $(q 'scrape_samples_scraped{job="vmguard"}')"
echo "prometheus_tsdb_head_series (incl. Prometheus' own): $(q prometheus_tsdb_head_series)"
echo "Prometheus resident memory (bytes): $(q 'process_resident_memory_bytes{job="prometheus"}')"
