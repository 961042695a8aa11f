# Allocation-failure injection (issue #9): test_enomem fails the k-th allocation of every
# operation of vmguard's own code. failmalloc.c replaces malloc in the test executable, which
# ASan also does: with SANITIZE=1 the test is not built (make valgrind runs it instead).
# Included by the Makefile after controller/programs.mk, which defines MONITOR_SRCS.
ifneq ($(SANITIZE),1)
ENOMEM_TEST_SRCS := tests/unit/test_enomem.c tests/tools/failmalloc.c $(MONITOR_SRCS) \
	$(POLICY_SRCS) controller/engine.c controller/metrics.c controller/journal.c \
	$(CTLSOCK_SRCS) $(COMMON_SRCS)
$(eval $(call unit_test,test_enomem,$(ENOMEM_TEST_SRCS)))
endif
