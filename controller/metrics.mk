# Prometheus exposition of the daemon snapshot and the /metrics HTTP endpoint.
METRICS_SRCS := controller/metrics.c controller/httpd.c

$(eval $(call unit_test,test_metrics,tests/unit/test_metrics.c $(METRICS_SRCS) $(COMMON_SRCS)))

# Serves a snapshot JSON file (re-read per scrape) through the real httpd module: used by
# tests/integration/test_prometheus_real.sh and the scrape figures in docs/FLEET.md. Not a
# $(call program): `make install` must not ship a test tool.
METRICS_SERVE := $(BUILD)/tests/tools/metrics_serve
$(METRICS_SERVE): $(patsubst %.c,$(BUILD)/%.o,tests/tools/metrics_serve.c $(METRICS_SRCS) $(COMMON_SRCS))
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
run-tests: $(METRICS_SERVE)

# Cardinality and render-time benchmark at N synthetic guests (docs/FLEET.md):
#   make build/bench/metrics_cardinality && ./build/bench/metrics_cardinality 1000
METRICS_BENCH := $(BUILD)/bench/metrics_cardinality
$(METRICS_BENCH): $(patsubst %.c,$(BUILD)/%.o,bench/metrics_cardinality.c controller/metrics.c $(COMMON_SRCS))
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
