# vmguard build. `make` builds, `make check` installs what is missing (apt) and runs every
# test, `make check SANITIZE=1` (or `make asan`) runs them under ASan+UBSan, `make demo`
# runs the noisy-neighbour lab. Modules add their programs and tests in */module.mk.

PREFIX ?= /usr/local
DESTDIR ?=
SBINDIR ?= $(PREFIX)/sbin
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
UNITDIR ?= /lib/systemd/system
PLUGINDIR ?= $(PREFIX)/lib/nagios/plugins

CC ?= gcc
PKGS := libvirt jansson libsystemd libproc2 libnl-route-3.0 libnl-3.0 libcgroup libmicrohttpd libxml-2.0

ifeq ($(SANITIZE),1)
BUILD := build-asan
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
else
BUILD := build
SAN_FLAGS :=
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes -Werror
CFLAGS ?= -O2 -g
override CFLAGS += -std=gnu11 $(WARN) $(SAN_FLAGS) -I. $(PKG_CFLAGS) -MMD -MP
override LDFLAGS += $(SAN_FLAGS)
LDLIBS := $(PKG_LIBS) -lm

PROGRAMS :=
UNIT_TESTS :=

# $(call program,NAME,SOURCES): a binary $(BUILD)/NAME linked from SOURCES.
define program
PROGRAMS += $(BUILD)/$(1)
$(BUILD)/$(1): $(patsubst %.c,$(BUILD)/%.o,$(2))
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef

# $(call unit_test,NAME,SOURCES): a test binary linking only the module under test + fakes.
define unit_test
UNIT_TESTS += $(BUILD)/tests/$(1)
$(BUILD)/tests/$(1): $(patsubst %.c,$(BUILD)/%.o,$(2))
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef

# Module fragments first; controller/programs.mk last, since programs link objects from
# every module.
include $(filter-out controller/programs.mk,$(sort $(wildcard */*.mk)))
-include controller/programs.mk
# Real cgroup v2 inside a lab guest: a static selftest, built by its own rules.
-include tests/v2guest/v2guest.mk
# libFuzzer harnesses (make fuzz), their regression replayer, make valgrind.
-include tests/fuzz/fuzz.mk
# Domain churn tool and `make soak` (issue 9).
-include tests/tools/churn.mk
# Allocation-failure injection, test_enomem (issue #9); not with SANITIZE=1.
-include tests/tools/failmalloc.mk
# LD_PRELOAD shim stepping the wall clock, for test_clock.sh (issue #9).
-include tests/tools/clockshift.mk

all: $(PROGRAMS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# Every test, unit and integration (real cgroups, libvirtd, QEMU guests). Installs missing
# packages first, then re-reads this Makefile so pkg-config sees them.
check:
	./lab/deps.sh
	$(MAKE) --no-print-directory run-tests

# `make run-tests BUILD_ONLY=1` builds what the tests need and runs none: an integration test
# run alone (bash tests/integration/test_X.sh) calls it through tests/integration/lib.sh.
run-tests: $(PROGRAMS) $(UNIT_TESTS)
	$(if $(BUILD_ONLY),@true,BUILD=$(BUILD) VMG_TEST_PREPARED=1 ./tests/run.sh $(UNIT_TESTS))

unit: $(PROGRAMS) $(UNIT_TESTS)
	BUILD=$(BUILD) ./tests/run.sh --unit-only $(UNIT_TESTS)

asan:
	$(MAKE) --no-print-directory check SANITIZE=1

deps:
	./lab/deps.sh

demo:
	./lab/deps.sh
	$(MAKE) --no-print-directory all
	BUILD=$(BUILD) ./lab/demo.sh

bench:
	./lab/deps.sh bench
	$(MAKE) --no-print-directory all
	BUILD=$(BUILD) ./bench/run.sh $(BENCH_ARGS)

install: $(PROGRAMS)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSCONFDIR)/vmguard/tenants.d
	for p in $(PROGRAMS); do \
		case $$(basename $$p) in \
		vmguardd) install -m 0755 $$p $(DESTDIR)$(SBINDIR)/ ;; \
		check_*) install -d $(DESTDIR)$(PLUGINDIR) && install -m 0755 $$p $(DESTDIR)$(PLUGINDIR)/ ;; \
		*) install -m 0755 $$p $(DESTDIR)$(BINDIR)/ ;; \
		esac; \
	done
	if [ -d man ]; then install -d $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5; \
		for m in man/*.8; do [ -e "$$m" ] && install -m 0644 $$m $(DESTDIR)$(MANDIR)/man8/; done; \
		for m in man/*.5; do [ -e "$$m" ] && install -m 0644 $$m $(DESTDIR)$(MANDIR)/man5/; done; true; fi
	install -d $(DESTDIR)$(UNITDIR) && sed "s|/usr/local|$(PREFIX)|g" systemd/vmguardd.service >$(DESTDIR)$(UNITDIR)/vmguardd.service
	install -d $(DESTDIR)$(PREFIX)/share/vmguard && cp -r monitoring policies/examples policies/vmguard-policy.schema.json $(DESTDIR)$(PREFIX)/share/vmguard/
	if [ -f policies/examples/host.json ] && [ ! -e $(DESTDIR)$(SYSCONFDIR)/vmguard/host.json ]; then \
		install -m 0644 policies/examples/host.json $(DESTDIR)$(SYSCONFDIR)/vmguard/host.json; fi

clean:
	rm -rf build build-asan

.PHONY: all check run-tests unit asan deps demo bench install clean
.DEFAULT_GOAL := all

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
