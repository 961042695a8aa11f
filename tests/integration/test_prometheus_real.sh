#!/usr/bin/env bash
# Issue "Prometheus metrics ...", for real: vmguardd (dry run) serves /metrics, a real
# Prometheus server (Debian package prometheus, a plain process on 127.0.0.1 with a temp
# config and TSDB, scrape interval 1s) scrapes it and evaluates monitoring/*.yml, and its
# HTTP API must answer vmguard_build_info with a value. Also: promtool checks of the
# scraped text, the textfile output and the alert/recording rules (promtool test rules),
# the endpoint's 404/405/Content-Type, and `up` falling to 0 when vmguard stops.
#
# Until vmguardd has --metrics, the endpoint is tests/tools/metrics_serve (the same httpd
# and metrics modules) serving the status.json a running vmguardd rewrites every tick.
# VMG_KEEP_TMP=1 keeps the temp dir (logs, config, scrape) for a look after a failure.
. "$(dirname "$0")/lib.sh"
require_cmd curl jq promtool prometheus ss
cd "$T_ROOT"
BUILD=${BUILD:-build}
tmp=$(mktemp -d /tmp/vmg-prom.XXXXXX)
[ -n "${VMG_KEEP_TMP:-}" ] || on_exit rm -rf "$tmp"

# --- rules: static checks and unit tests (no root needed) -------------------------------
check "promtool check rules" promtool check rules monitoring/vmguard-alerts.yml monitoring/vmguard-recording.yml
sed "s|@ROOT@|$T_ROOT|g" >"$tmp/rules-test.yml" <<'YAML'
rule_files:
  - @ROOT@/monitoring/vmguard-alerts.yml
  - @ROOT@/monitoring/vmguard-recording.yml
evaluation_interval: 30s
tests:
  - interval: 30s
    input_series:
      - series: 'up{job="vmguard",instance="h1:9877"}'
        values: '1 1 0 0 0 0 0 0'
      - series: 'vmguard_service_up{job="vmguard",instance="h1:9877",service="dnsmasq"}'
        values: '1x10'
      - series: 'vmguard_service_healthy{job="vmguard",instance="h1:9877",service="dnsmasq"}'
        values: '1 0 0 0 0 0 0 0'
      - series: 'vmguard_vm_throttled_for_seconds{job="vmguard",instance="h1:9877",domain="web-3",uuid="u3",tenant="acme"}'
        values: '1790+30x4'
      - series: 'vmguard_errors_total{job="vmguard",instance="h1:9877"}'
        values: '0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0'
      - series: 'vmguard_errors_total{job="vmguard",instance="h2:9877"}'
        values: '0+1x50'
      - series: 'vmguard_last_tick_age_seconds{job="vmguard",instance="h1:9877"}'
        values: '0.2 0.3 10 40 70 100 130 160'
      - series: 'vmguard_tick_interval_seconds{job="vmguard",instance="h1:9877"}'
        values: '1x10'
      - series: 'vmguard_vm_cpu_seconds_total{job="vmguard",instance="h1:9877",domain="web-3",uuid="u3",tenant="acme"}'
        values: '0+60x20'
      - series: 'vmguard_vm_cpu_seconds_total{job="vmguard",instance="h1:9877",domain="web-4",uuid="u4",tenant="acme"}'
        values: '0+30x20'
      - series: 'vmguard_vm_throttled{job="vmguard",instance="h1:9877",domain="web-3",uuid="u3",tenant="acme",resource="cpu"}'
        values: '1x20'
      - series: 'vmguard_vm_throttled{job="vmguard",instance="h1:9877",domain="web-3",uuid="u3",tenant="acme",resource="disk_write"}'
        values: '1x20'
      - series: 'vmguard_vm_throttled{job="vmguard",instance="h1:9877",domain="web-4",uuid="u4",tenant="acme",resource="cpu"}'
        values: '0x20'
    alert_rule_test:
      - eval_time: 1m
        alertname: VmguardDown
        exp_alerts: []
      - eval_time: 3m
        alertname: VmguardDown
        exp_alerts:
          - exp_labels: {severity: critical, team: hosts, job: vmguard, instance: "h1:9877"}
            exp_annotations:
              summary: "vmguard on h1:9877 is not answering"
              description: "Prometheus could not scrape vmguard's /metrics on h1:9877 for 2 minutes: noisy guests are not being throttled, and limits in force stay in force until it restarts."
      - eval_time: 2m
        alertname: VmguardServiceUnhealthy
        exp_alerts: []
      - eval_time: 3m
        alertname: VmguardServiceUnhealthy
        exp_alerts:
          - exp_labels: {severity: warning, team: hosts, job: vmguard, instance: "h1:9877", service: dnsmasq}
            exp_annotations:
              summary: "protected service dnsmasq on h1:9877 is over its thresholds"
              description: "dnsmasq has waited longer than its policy allows (run-queue or I/O delay) for 2 minutes, throttling or not. Check which guests are throttled: `vmguard explain` on the host."
      - eval_time: 0m
        alertname: VmguardVmThrottledLong
        exp_alerts: []
      - eval_time: 1m
        alertname: VmguardVmThrottledLong
        exp_alerts:
          - exp_labels: {severity: info, team: tenants, job: vmguard, instance: "h1:9877", domain: web-3, uuid: u3, tenant: acme}
            exp_annotations:
              summary: "guest web-3 of tenant acme throttled for 30m 50s"
              description: "vmguard has limited guest web-3 (u3) on h1:9877 for over 30 minutes because it hurts other guests or host services. `vmguard explain web-3` on the host says why."
      - eval_time: 20m
        alertname: VmguardErrorsIncreasing
        exp_alerts:
          - exp_labels: {severity: warning, team: hosts, job: vmguard, instance: "h2:9877"}
            exp_annotations:
              summary: "vmguard on h2:9877 keeps failing (20 errors in 10m)"
              description: "Probe failures or refused writes for over 10 minutes; see `journalctl -u vmguard` on the host."
      - eval_time: 1m30s
        alertname: VmguardTickStale
        exp_alerts: []
      - eval_time: 2m
        alertname: VmguardTickStale
        exp_alerts:
          - exp_labels: {severity: critical, team: hosts, job: vmguard, instance: "h1:9877"}
            exp_annotations:
              summary: "vmguard on h1:9877 has not ticked for 1m 10s"
              description: "The daemon answers but its sample/decide/act tick is stale (more than 3 intervals)."
    promql_expr_test:
      - expr: tenant:vmguard_vm_cpu_seconds:rate5m
        eval_time: 10m
        exp_samples:
          - labels: 'tenant:vmguard_vm_cpu_seconds:rate5m{instance="h1:9877",tenant="acme"}'
            value: 3
      - expr: tenant:vmguard_vms_throttled:count
        eval_time: 5m
        exp_samples:
          - labels: 'tenant:vmguard_vms_throttled:count{instance="h1:9877",tenant="acme"}'
            value: 1
YAML
check "promtool test rules (alerts fire when due, recording rules sum per tenant)" promtool test rules "$tmp/rules-test.yml"
check "Grafana dashboard is valid JSON" jq -e '.panels | length > 0' monitoring/grafana-vmguard.json

require_root
D=$BUILD/vmguardd
SERVE=$BUILD/tests/tools/metrics_serve
for b in "$D" "$SERVE"; do
	[ -x "$b" ] || { t_fail "$b built (make $b)"; finish; }
done

mport=$(free_port) && pport=$(free_port) || { t_fail "free ports on 127.0.0.1"; finish; }
[ "$mport" != "$pport" ] || pport=$((mport + 1))

need_libvirtd
mkdir -p "$tmp/state"
dargs=(--dry-run --state-dir "$tmp/state" --host policies/examples/host.json --tenants policies/examples/tenants.d)
if "$D" --help 2>&1 | grep -q -- '--metrics'; then
	mode="vmguardd --metrics"
	"$D" "${dargs[@]}" --metrics "127.0.0.1:$mport" >"$tmp/vmguardd.log" 2>&1 &
	dpid=$!
	on_exit stop_pid "$dpid"
	target_pid=$dpid
else
	mode="metrics_serve over vmguardd's status.json (vmguardd has no --metrics yet)"
	"$D" "${dargs[@]}" >"$tmp/vmguardd.log" 2>&1 &
	dpid=$!
	on_exit stop_pid "$dpid"
	check "vmguardd writes status.json" wait_for 20 test -s "$tmp/state/status.json"
	"$SERVE" --listen "127.0.0.1:$mport" --snapshot "$tmp/state/status.json" >"$tmp/serve.log" 2>&1 &
	spid=$!
	on_exit stop_pid "$spid"
	target_pid=$spid
fi
echo "# endpoint: $mode on 127.0.0.1:$mport; prometheus on 127.0.0.1:$pport"
url="http://127.0.0.1:$mport/metrics"
check "/metrics answers" wait_for 20 curl -sf -o /dev/null "$url"

# --- the endpoint itself ----------------------------------------------------------------
curl -s -D "$tmp/headers" -o "$tmp/scrape.txt" "$url"
check "HTTP 200" grep -q '^HTTP/1.1 200' "$tmp/headers"
check "Content-Type is text/plain; version=0.0.4; charset=utf-8" \
	grep -qi '^Content-Type: text/plain; version=0.0.4; charset=utf-8' "$tmp/headers"
check "promtool check metrics on the scrape" sh -c "promtool check metrics < '$tmp/scrape.txt'"
check "vmguard_build_info in the scrape" grep -q '^vmguard_build_info{version="[^"]\+"} 1$' "$tmp/scrape.txt"
check "vmguard_dry_run 1 (started with --dry-run)" grep -qx 'vmguard_dry_run 1' "$tmp/scrape.txt"
check_num "POST /metrics status" "$(curl -s -o /dev/null -w '%{http_code}' -X POST -d x=1 "$url")" -eq 405
check_num "GET / status" "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$mport/")" -eq 404
check_num "HEAD /metrics status" "$(curl -s -o /dev/null -w '%{http_code}' -I "$url")" -eq 200
check "textfile for node_exporter passes promtool" sh -c \
	"'$SERVE' --snapshot '$tmp/state/status.json' --textfile '$tmp/vmguard.prom' && promtool check metrics < '$tmp/vmguard.prom'"

# --- a real Prometheus ------------------------------------------------------------------
cat >"$tmp/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $T_ROOT/monitoring/vmguard-recording.yml
  - $T_ROOT/monitoring/vmguard-alerts.yml
scrape_configs:
  - job_name: vmguard
    static_configs:
      - targets: ['127.0.0.1:$mport']
YAML
check "promtool check config" promtool check config "$tmp/prometheus.yml"
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/tsdb" \
	--web.listen-address="127.0.0.1:$pport" --log.level=warn >"$tmp/prometheus.log" 2>&1 &
ppid_=$!
on_exit stop_pid "$ppid_"
api="http://127.0.0.1:$pport/api/v1"
# jget URL...: the body of a successful GET, or failure (jq -e reads an empty input as
# success, so a failed curl must never reach it).
jget() {
	local out
	out=$(curl -sf "$@") && [ -n "$out" ] || return 1
	printf '%s\n' "$out"
}
q() { jget --get --data-urlencode "query=$1" "$api/query"; }
# has_value QUERY: the instant query returns at least one sample.
has_value() {
	local out
	out=$(q "$1") || return 1
	jq -e '.status == "success" and (.data.result | length > 0)' <<<"$out" >/dev/null
}
# value QUERY: the first sample's value, or nothing.
value() {
	local out
	out=$(q "$1") || return 1
	jq -r '.data.result[0].value[1] // empty' <<<"$out"
}
# api_check PATH JQ: GET /api/v1/PATH and test it with jq (prints what it tested).
api_check() {
	local out
	out=$(jget "$api/$1") || { echo "GET $api/$1 failed"; return 1; }
	jq -ce "$2" <<<"$out"
}
check "Prometheus answers vmguard_build_info with a value" wait_for 60 has_value vmguard_build_info
check_num "vmguard_build_info value" "$(value vmguard_build_info)" -eq 1
check "build_info carries version and job labels" api_check "query?query=vmguard_build_info" \
	'.data.result[0].metric | ., ((.version | length > 0) and .job == "vmguard")'
check_num "up{job=vmguard}" "$(value 'up{job="vmguard"}')" -eq 1
check_num "vmguard_* series in Prometheus" "$(value 'count({__name__=~"vmguard_.+"})')" -ge 20
check "target healthy, no scrape error" api_check targets \
	'.data.activeTargets[0] | {health, lastError} | (., .health == "up" and .lastError == "")'
# The daemon ticks once a second: the counter must grow between scrapes.
check "vmguard_ticks_total grows (rate > 0)" wait_for 20 has_value 'rate(vmguard_ticks_total[5s]) > 0'
check "rules loaded and evaluating without error" wait_for 20 api_check rules \
	'[.data.groups[].rules[]] | length == 23 and all(.health == "ok")'

# Every query of the dashboard must parse and run (template variables as "match all").
bad=0 n_queries=0
while IFS= read -r e; do
	n_queries=$((n_queries + 1))
	e=${e//\$__rate_interval/5s}
	e=${e//\$instance/.*}
	e=${e//\$tenant/.*}
	e=${e//\$domain/.*}
	out=$(q "$e") && jq -e '.status == "success"' <<<"$out" >/dev/null || {
		bad=$((bad + 1))
		echo "#   dashboard query fails: $e"
	}
done < <(jq -r '.. | .expr? // empty' monitoring/grafana-vmguard.json)
check_num "dashboard queries found (an empty list would pass the next check)" "$n_queries" -ge 10
check_num "dashboard queries Prometheus rejects (of $n_queries)" "$bad" -eq 0

# --- vmguard gone: up drops to 0, VmguardDown becomes pending ---------------------------
stop_pid "$target_pid"
check "up{job=vmguard} falls to 0 after vmguard stops" wait_for 20 has_value 'up{job="vmguard"} == 0'
check "VmguardDown alert pending" wait_for 20 api_check alerts \
	'[.data.alerts[] | select(.labels.alertname == "VmguardDown")] | length == 1'
if grep -qiE 'panic|runtime error' "$tmp/vmguardd.log" "$tmp/prometheus.log" 2>/dev/null; then
	t_fail "no crash in the logs"
	tail -n 20 "$tmp/vmguardd.log" "$tmp/prometheus.log" | sed 's/^/#   /'
fi
finish
