# clockshift.so: LD_PRELOAD shim that steps CLOCK_REALTIME for one process
# (tests/integration/test_clock.sh). Built without the sanitizers: an ASan runtime cannot be
# preloaded after the program's own.
CLOCKSHIFT := $(BUILD)/tests/tools/clockshift.so
$(CLOCKSHIFT): tests/tools/clockshift.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) -O2 -g -fPIC -shared -o $@ $< -ldl -lpthread
run-tests: $(CLOCKSHIFT)
