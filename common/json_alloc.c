#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>

#include "common/json_alloc.h"

static unsigned long json_alloc_failures;

static void *json_counting_malloc(size_t n) {
        void *p = malloc(n);
        if (!p)
                __atomic_fetch_add(&json_alloc_failures, 1, __ATOMIC_RELAXED);
        return p;
}

unsigned long vmg_json_alloc_failures(void) {
        static bool hooked;
        if (!hooked) {
                json_set_alloc_funcs(json_counting_malloc, free);
                hooked = true;
        }
        return __atomic_load_n(&json_alloc_failures, __ATOMIC_RELAXED);
}
