# The decision engine: samples + policy + state + now in, actions out; no I/O, no clock.
# resources.c: the resource words and units of its reasons (engine -> policies is allowed).
ENGINE_SRCS = controller/engine/engine.c controller/engine/service_health.c $(RESOURCES_SRCS)

UNIT_TESTS += test_engine test_engine_props test_engine_quota test_service_health
test_engine_SRCS = tests/unit/test_engine.c $(ENGINE_SRCS)
test_engine_props_SRCS = tests/unit/test_engine_props.c $(ENGINE_SRCS)
test_engine_quota_SRCS = tests/unit/test_engine_quota.c $(ENGINE_SRCS) $(COMMON_SRCS)
test_service_health_SRCS = tests/unit/test_service_health.c controller/engine/service_health.c
