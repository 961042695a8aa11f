# vmguard build. `make` builds, `make check` installs what is missing (apt) and runs every
# test, `make check SANITIZE=1` (or `make asan`) runs them under ASan+UBSan, `make demo`
# runs the noisy-neighbour lab. Each folder lists its programs and tests in its module.mk.

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

# Each folder's module.mk lists its own sources, programs and unit tests by appending a name
# to one of these lists and defining NAME_SRCS with `=`. `=` is expanded when used, so a
# module may name another module's sources whatever order the fragments are read in; the
# rules are made below, after every fragment is read.
#   PROGRAMS    $(BUILD)/NAME, installed by `make install`
#   UNIT_TESTS  $(BUILD)/tests/NAME, linking only the module under test + fakes
#   TOOLS       $(BUILD)/PATH, test aids the integration tests run; never installed
#   BENCHES     $(BUILD)/PATH, benchmarks; built by `make bench` only
PROGRAMS :=
UNIT_TESTS :=
TOOLS :=
BENCHES :=

include $(sort $(wildcard */module.mk */*/module.mk))

# $(call link,OUTPUT,SOURCES): a binary OUTPUT linked from SOURCES.
define link
$(1): $(patsubst %.c,$(BUILD)/%.o,$(2))
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach p,$(PROGRAMS),$(eval $(call link,$(BUILD)/$(p),$($(p)_SRCS))))
$(foreach t,$(UNIT_TESTS),$(eval $(call link,$(BUILD)/tests/$(t),$($(t)_SRCS))))
$(foreach t,$(TOOLS) $(BENCHES),$(eval $(call link,$(BUILD)/$(t),$($(t)_SRCS))))
PROGRAM_BINS := $(addprefix $(BUILD)/,$(PROGRAMS))
UNIT_TEST_BINS := $(addprefix $(BUILD)/tests/,$(UNIT_TESTS))
run-tests: $(addprefix $(BUILD)/,$(TOOLS))

all: $(PROGRAM_BINS)

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
run-tests: $(PROGRAM_BINS) $(UNIT_TEST_BINS)
	$(if $(BUILD_ONLY),@true,BUILD=$(BUILD) VMG_TEST_PREPARED=1 ./tests/run.sh $(UNIT_TEST_BINS))

unit: $(PROGRAM_BINS) $(UNIT_TEST_BINS)
	BUILD=$(BUILD) ./tests/run.sh --unit-only $(UNIT_TEST_BINS)

# The suite as a fresh machine runs it: removes the lab's state, runs .ci/run in a new clone.
fresh:
	./tests/fresh.sh

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

install: $(PROGRAM_BINS)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSCONFDIR)/vmguard/tenants.d
	for p in $(PROGRAM_BINS); do \
		case $$(basename $$p) in \
		vmguardd) install -m 0755 $$p $(DESTDIR)$(SBINDIR)/ ;; \
		check_*) install -d $(DESTDIR)$(PLUGINDIR) && install -m 0755 $$p $(DESTDIR)$(PLUGINDIR)/ ;; \
		*) install -m 0755 $$p $(DESTDIR)$(BINDIR)/ ;; \
		esac; \
	done
	if [ -d man ]; then install -d $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5; \
		for m in man/*.8; do [ -e "$$m" ] && install -m 0644 $$m $(DESTDIR)$(MANDIR)/man8/; done; \
		for m in man/*.5; do [ -e "$$m" ] && install -m 0644 $$m $(DESTDIR)$(MANDIR)/man5/; done; true; fi
	install -D -m 0644 systemd/50-vmguard.conf $(DESTDIR)$(PREFIX)/lib/sysctl.d/50-vmguard.conf
	install -d $(DESTDIR)$(UNITDIR) && sed "s|/usr/local|$(PREFIX)|g" systemd/vmguardd.service >$(DESTDIR)$(UNITDIR)/vmguardd.service
	install -d $(DESTDIR)$(PREFIX)/share/vmguard && cp -r monitoring policies/examples policies/vmguard-policy.schema.json $(DESTDIR)$(PREFIX)/share/vmguard/
	if [ -f policies/examples/host.json ] && [ ! -e $(DESTDIR)$(SYSCONFDIR)/vmguard/host.json ]; then \
		install -m 0644 policies/examples/host.json $(DESTDIR)$(SYSCONFDIR)/vmguard/host.json; fi

# `make deb`: the Debian package (debian/), built by dpkg-buildpackage in a copy of this tree
# under build/deb/, so the build, its clean step and the .deb/.changes/.buildinfo it writes
# to the parent directory all stay inside build/deb/; then lintian (errors fail the target).
DEB_DIR := build/deb
deb:
	./lab/deps.sh deb
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/src
	tar -c --exclude-vcs --exclude=./build --exclude=./build-asan --exclude=./build-fuzz \
		--exclude=./lab/out --exclude=./bench/out . | tar -x -C $(DEB_DIR)/src
	cd $(DEB_DIR)/src && dpkg-buildpackage -b -uc -us
	lintian --fail-on error --info $(DEB_DIR)/vmguard_*_$$(dpkg --print-architecture).deb
	@ls -l $(DEB_DIR)/*.deb

clean:
	rm -rf build build-asan

.PHONY: fresh all check run-tests unit asan deps demo bench install deb clean
.DEFAULT_GOAL := all

# Not under build/deb (`make deb`'s copy of the tree has its own build/ and a tenants.d).
-include $(shell find $(BUILD) -path $(DEB_DIR) -prune -o -type f -name '*.d' -print 2>/dev/null)
