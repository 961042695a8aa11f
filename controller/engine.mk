ENGINE_SRCS := controller/engine.c
$(eval $(call unit_test,test_engine,tests/unit/test_engine.c $(ENGINE_SRCS)))
$(eval $(call unit_test,test_engine_props,tests/unit/test_engine_props.c $(ENGINE_SRCS)))
