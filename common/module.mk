COMMON_SRCS := common/log.c common/fileio.c
$(eval $(call unit_test,test_log,tests/unit/test_log.c $(COMMON_SRCS)))
