/* The human units of the policy language. The first byte picks the parser, the rest is the
 * string. Whatever parses must be finite, non-negative and printable. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "policies/policy.h"
#include "tests/fuzz/fuzz.h"

int vmg_fuzz_units(const uint8_t *data, size_t size) {
        static int (*const parsers[])(const char *, double *) = {
                vmg_parse_cpu, vmg_parse_bytes_rate, vmg_parse_iops, vmg_parse_bits_rate,
                vmg_parse_fraction,
        };
        static const enum vmg_resource res[] = {
                VMG_RES_CPU, VMG_RES_DISK_WRITE_BPS, VMG_RES_DISK_READ_IOPS, VMG_RES_NET_TX_BPS,
                VMG_RES_COUNT,
        };
        enum { N = sizeof(parsers) / sizeof(parsers[0]) };
        if (size < 1)
                return 0;
        unsigned which = data[0] % (N + 1);
        char *s = fz_strndup(data + 1, size - 1);
        char out[64];
        int r;

        if (which == N) {
                uint64_t ns = 12345;
                r = vmg_parse_duration(s, &ns);
                FZ_ASSERT(r == 0 || r == -EINVAL);
                if (r < 0)
                        FZ_ASSERT(ns == 12345);
                else
                        FZ_ASSERT(ns <= 1000000000000000000ull);
        } else {
                double v = -42;
                r = parsers[which](s, &v);
                FZ_ASSERT(r == 0 || r == -EINVAL);
                if (r < 0) {
                        FZ_ASSERT(v == -42);
                } else {
                        FZ_ASSERT(isfinite(v) && v >= 0);
                        vmg_resource_format(res[which], v, out, sizeof(out));
                        FZ_ASSERT(memchr(out, 0, sizeof(out)));
                }
        }
        free(s);
        return 0;
}

VMG_FUZZ_ENTRY(vmg_fuzz_units)
