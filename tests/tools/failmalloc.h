/* Allocation-failure injection for test executables: failmalloc.c defines malloc, calloc,
 * realloc, free and the aligned allocators in the executable itself, so every allocation of
 * the process (vmguard's code, libc's strdup/fopen/opendir, jansson, libxml2, libnl) goes
 * through it and on to glibc's __libc_* functions (glibc documents replacing malloc this
 * way). Not usable under ASan, which replaces malloc itself: link it only into plain builds.
 * Single-threaded tests only (plain counters). */
#pragma once
#include <stdbool.h>

/* Fails the n-th allocation from now (n >= 1; 1 = the very next one) with NULL and
 * errno ENOMEM. With sticky, every allocation after it fails too, as on a host that stays
 * out of memory. Re-arming resets the count and the fired flag. */
void failmalloc_arm(unsigned long n, bool sticky);
/* No more injected failures; the counters keep running. */
void failmalloc_disarm(void);
/* Allocations (malloc, calloc, realloc, aligned) attempted since the last arm. */
unsigned long failmalloc_count(void);
/* Injected failures since the last arm: 0 means the operation never reached the armed one. */
unsigned long failmalloc_fired(void);
/* Live blocks: successful allocations minus frees of non-NULL pointers, since start. Take it
 * before an operation and compare after releasing what it returned to catch a leak. */
long failmalloc_live(void);
