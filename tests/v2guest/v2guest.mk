# The cgroup v2 selftest run inside a lab guest (tests/integration/test_cgroup_v2_guest.sh).
# Linked statically (the guest initramfs has no libc) and never with sanitizers (ASan does
# not link statically), so it has its own objects and flags, whatever BUILD is.
# The top Makefile includes */*.mk only; until it includes this file too, the test script
# builds with `make -f Makefile -f tests/v2guest/v2guest.mk v2guest`.
ifndef V2GUEST_MK
V2GUEST_MK := 1

V2GUEST_DIR := build/v2guest
V2GUEST_BIN := $(V2GUEST_DIR)/v2_selftest
V2GUEST_SRCS := tests/v2guest/v2_selftest.c tests/v2guest/journal_shim.c \
	probes/cgroup.c probes/procfs.c probes/rates.c \
	controller/actuator.c controller/journal.c common/log.c
V2GUEST_CFLAGS := -std=gnu11 $(WARN) -O2 -g -I. -MMD -MP
# Debian ships libjansson.a but no libsystemd.a: journal_shim.c stands in for the one
# libsystemd symbol log.c uses.
V2GUEST_LIBS := /usr/lib/x86_64-linux-gnu/libjansson.a -lm

$(V2GUEST_DIR)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(V2GUEST_CFLAGS) -c -o $@ $<

$(V2GUEST_BIN): $(patsubst %.c,$(V2GUEST_DIR)/%.o,$(V2GUEST_SRCS))
	$(CC) -static -o $@ $^ $(V2GUEST_LIBS)

v2guest: $(V2GUEST_BIN)
run-tests: $(V2GUEST_BIN)
.PHONY: v2guest

-include $(patsubst %.c,$(V2GUEST_DIR)/%.d,$(V2GUEST_SRCS))
endif
