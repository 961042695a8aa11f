/* jansson 2.14 does not report every failed allocation: json_dumps() skips a key it could
 * not append and goes on, and its lexer drops a character it could not save (a policy's
 * "/usr/sbin/dnsmasq" came back as "/usr/sbin/dnsmsq" with one failed allocation, found by
 * test_enomem; a journal's "write_bps_device" as "write_bps_devie"). So every allocation
 * jansson makes is counted, and a caller compares the count before and after a load or a
 * dump: any increase means the result cannot be trusted (-ENOMEM), whatever jansson said.
 * jansson's hook takes no user data, hence one process-wide counter; nothing else may call
 * json_set_alloc_funcs(). */
#pragma once

/* Installs the counting hook on first use; returns the number of failed allocations so far. */
unsigned long vmg_json_alloc_failures(void);
