# vmguardd: the event loop and the manager (tick, reload, applying actions, the status
# snapshot), the control socket (server side of the CLI protocol), Prometheus metrics and
# their HTTP endpoint, PSI triggers.
CTLSOCK_SRCS = controller/daemon/ctlsock.c
METRICS_SRCS = controller/daemon/metrics.c controller/daemon/httpd.c
DAEMON_SRCS = controller/daemon/vmguardd.c controller/daemon/manager.c controller/daemon/apply.c \
	controller/daemon/snapshot.c controller/daemon/psitrigger.c controller/daemon/lock.c \
	$(CTLSOCK_SRCS) $(METRICS_SRCS)

PROGRAMS += vmguardd
vmguardd_SRCS = $(DAEMON_SRCS) $(ENGINE_SRCS) $(ACT_SRCS) $(MONITOR_SRCS) $(PROBER_SRCS) \
	$(POLICY_SRCS) $(COMMON_SRCS)

UNIT_TESTS += test_ctlsock test_metrics test_psitrigger
test_ctlsock_SRCS = tests/unit/test_ctlsock.c $(CTLSOCK_SRCS) controller/cli/ctlclient.c \
	$(POLICY_SRCS) $(COMMON_SRCS)
test_metrics_SRCS = tests/unit/test_metrics.c $(METRICS_SRCS) $(COMMON_SRCS)
test_psitrigger_SRCS = tests/unit/test_psitrigger.c controller/daemon/psitrigger.c $(COMMON_SRCS)

# Serves a snapshot JSON file (re-read per scrape) through the real httpd module: used by
# tests/integration/test_prometheus_real.sh and the scrape figures in docs/FLEET.md.
TOOLS += tests/tools/metrics_serve
tests/tools/metrics_serve_SRCS = tests/tools/metrics_serve.c $(METRICS_SRCS) $(COMMON_SRCS)

# Cardinality and render-time benchmark at N synthetic guests (docs/FLEET.md):
#   make build/bench/metrics_cardinality && ./build/bench/metrics_cardinality 1000
BENCHES += bench/metrics_cardinality
bench/metrics_cardinality_SRCS = bench/metrics_cardinality.c controller/daemon/metrics.c $(COMMON_SRCS)

# The manager's start-up order (restore first, one instance per host) on a fake tree.
UNIT_TESTS += test_manager
test_manager_SRCS = tests/unit/test_manager.c controller/daemon/manager.c controller/daemon/apply.c \
	controller/daemon/snapshot.c controller/daemon/lock.c $(ENGINE_SRCS) $(ACT_SRCS) $(MONITOR_SRCS) \
	$(PROBER_SRCS) $(POLICY_SRCS) $(COMMON_SRCS)

# The applier's desired-state reconcile, with the actuator's write seam and fake libvirt calls.
UNIT_TESTS += test_apply
test_apply_SRCS = tests/unit/test_apply.c controller/daemon/apply.c $(ACT_SRCS) $(ENGINE_SRCS) \
	$(MONITOR_SRCS) $(POLICY_SRCS) $(COMMON_SRCS)
