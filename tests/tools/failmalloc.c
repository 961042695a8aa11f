/* See failmalloc.h. These definitions in the executable win over libc's in symbol
 * resolution (the executable comes first in the lookup scope), so shared libraries' calls
 * land here too; the __libc_* entry points are glibc's own allocator, exported for exactly
 * this use. */
#define _GNU_SOURCE
#include "tests/tools/failmalloc.h"

#include <errno.h>
#include <malloc.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);
extern void *__libc_memalign(size_t align, size_t n);

/* Test-process state by design: the allocator has no context to carry it in. */
static unsigned long fail_at;  /* 0 = disarmed; else the ordinal (from the arm) to fail */
static bool fail_sticky;
static unsigned long n_attempts, n_fired;
static long n_live;

void failmalloc_arm(unsigned long n, bool sticky) {
        n_attempts = 0;
        n_fired = 0;
        fail_sticky = sticky;
        fail_at = n ? n : 1;
}

void failmalloc_disarm(void) { fail_at = 0; }
unsigned long failmalloc_count(void) { return n_attempts; }
unsigned long failmalloc_fired(void) { return n_fired; }
long failmalloc_live(void) { return n_live; }

/* Counts one attempt; true when it must fail. */
static bool should_fail(void) {
        n_attempts++;
        if (fail_at == 0)
                return false;
        if (n_attempts == fail_at || (fail_sticky && n_attempts > fail_at)) {
                n_fired++;
                return true;
        }
        return false;
}

static void *counted(void *p) {
        if (p)
                n_live++;
        return p;
}

void *malloc(size_t n) {
        if (should_fail()) {
                errno = ENOMEM;
                return NULL;
        }
        return counted(__libc_malloc(n));
}

void *calloc(size_t n, size_t size) {
        if (should_fail()) {
                errno = ENOMEM;
                return NULL;
        }
        return counted(__libc_calloc(n, size));
}

void *realloc(void *p, size_t n) {
        if (!p)
                return malloc(n);
        if (n == 0) { /* glibc frees and returns NULL */
                free(p);
                return NULL;
        }
        /* A failed realloc leaves p allocated: the live count does not move either way. */
        if (should_fail()) {
                errno = ENOMEM;
                return NULL;
        }
        return __libc_realloc(p, n);
}

void free(void *p) {
        if (!p)
                return;
        n_live--;
        __libc_free(p);
}

void *memalign(size_t align, size_t n) {
        if (should_fail()) {
                errno = ENOMEM;
                return NULL;
        }
        return counted(__libc_memalign(align, n));
}

void *aligned_alloc(size_t align, size_t n) { return memalign(align, n); }

int posix_memalign(void **ret, size_t align, size_t n) {
        if (align < sizeof(void *) || (align & (align - 1)))
                return EINVAL;
        void *p = memalign(align, n);
        if (!p)
                return ENOMEM;
        *ret = p;
        return 0;
}

void *valloc(size_t n) { return memalign(4096, n); }
