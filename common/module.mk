# Logging, file I/O helpers (atomic write, safe open) and default paths (paths.h), which
# every other module links.
COMMON_SRCS = common/log.c common/fileio.c common/json_alloc.c

UNIT_TESTS += test_log test_fileio
test_log_SRCS = tests/unit/test_log.c $(COMMON_SRCS)
test_fileio_SRCS = tests/unit/test_fileio.c $(COMMON_SRCS)
