# The cgroup v2 selftest run inside a lab guest (tests/integration/test_cgroup_v2_guest.sh).
# Linked statically (the guest initramfs has no libc), so it has its own objects and flags
# whatever BUILD is; its ASan+UBSan variant (below) is dynamic and shipped with its libs.
# The test script builds with `make v2guest` (v2guest-asan under BUILD=build-asan, i.e.
# `make check SANITIZE=1`). Guarded, so naming it again with -f does no harm.
ifndef V2GUEST_MK
V2GUEST_MK := 1

V2GUEST_DIR := build/v2guest
V2GUEST_BIN := $(V2GUEST_DIR)/v2_selftest
V2GUEST_SRCS := tests/v2guest/v2_selftest.c tests/v2guest/journal_shim.c \
	probes/cgroup.c probes/procfs.c probes/rates.c \
	controller/act/actuator.c controller/act/journal.c common/log.c common/fileio.c common/json_alloc.c
V2GUEST_CFLAGS := -std=gnu11 $(WARN) -O2 -g -I. -MMD -MP
# Debian ships libjansson.a but no libsystemd.a: journal_shim.c stands in for the one
# libsystemd symbol log.c uses.
V2GUEST_LIBS := /usr/lib/x86_64-linux-gnu/libjansson.a -lm

$(V2GUEST_DIR)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(V2GUEST_CFLAGS) -c -o $@ $<

$(V2GUEST_BIN): $(patsubst %.c,$(V2GUEST_DIR)/%.o,$(V2GUEST_SRCS))
	$(CC) -static -o $@ $^ $(V2GUEST_LIBS)

# The ASan+UBSan variant (make check SANITIZE=1): dynamic, since the sanitizer runtimes do
# not link statically; the test script packs it with the shared libraries ldd names.
V2GUEST_ASAN_DIR := build-asan/v2guest
V2GUEST_ASAN_BIN := $(V2GUEST_ASAN_DIR)/v2_selftest
V2GUEST_ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

$(V2GUEST_ASAN_DIR)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(V2GUEST_CFLAGS) $(V2GUEST_ASAN_FLAGS) -c -o $@ $<

$(V2GUEST_ASAN_BIN): $(patsubst %.c,$(V2GUEST_ASAN_DIR)/%.o,$(V2GUEST_SRCS))
	$(CC) $(V2GUEST_ASAN_FLAGS) -o $@ $^ -ljansson -lm

v2guest: $(V2GUEST_BIN)
v2guest-asan: $(V2GUEST_ASAN_BIN)
ifeq ($(SANITIZE),1)
run-tests: $(V2GUEST_ASAN_BIN)
else
run-tests: $(V2GUEST_BIN)
endif
.PHONY: v2guest v2guest-asan

-include $(patsubst %.c,$(V2GUEST_DIR)/%.d,$(V2GUEST_SRCS)) \
	$(patsubst %.c,$(V2GUEST_ASAN_DIR)/%.d,$(V2GUEST_SRCS))
endif
