# Logging and file I/O helpers every other module links.
COMMON_SRCS = common/log.c common/fileio.c

UNIT_TESTS += test_log
test_log_SRCS = tests/unit/test_log.c $(COMMON_SRCS)
