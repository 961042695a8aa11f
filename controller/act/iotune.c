#include "controller/act/iotune.h"

#include <errno.h>
#include <libvirt/libvirt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* In enum vmg_iotune_field order. */
static const char *const field_names[VMG_IOTUNE_N] = {
        VIR_DOMAIN_BLOCK_IOTUNE_TOTAL_BYTES_SEC, VIR_DOMAIN_BLOCK_IOTUNE_READ_BYTES_SEC,
        VIR_DOMAIN_BLOCK_IOTUNE_WRITE_BYTES_SEC, VIR_DOMAIN_BLOCK_IOTUNE_TOTAL_IOPS_SEC,
        VIR_DOMAIN_BLOCK_IOTUNE_READ_IOPS_SEC, VIR_DOMAIN_BLOCK_IOTUNE_WRITE_IOPS_SEC,
};

/* ---- the set, pure ---- */

const char *vmg_iotune_name(enum vmg_iotune_field f) {
        return f < VMG_IOTUNE_N ? field_names[f] : NULL;
}

int vmg_iotune_field_of(const char *name) {
        for (int i = 0; i < VMG_IOTUNE_N; i++)
                if (strcmp(name, field_names[i]) == 0)
                        return i;
        return -EINVAL;
}

int vmg_iotune_format(const struct vmg_iotune *s, char *buf, size_t n) {
        size_t len = 0;
        for (int i = 0; i < VMG_IOTUNE_N; i++) {
                int w = snprintf(buf + len, n - len, "%s%s=%llu", i ? " " : "", field_names[i], s->v[i]);
                if (w < 0 || (size_t) w >= n - len)
                        return -ENOBUFS;
                len += (size_t) w;
        }
        return (int) len;
}

int vmg_iotune_parse(const char *text, struct vmg_iotune *ret) {
        struct vmg_iotune s = {};
        const char *p = text;
        for (int i = 0; i < VMG_IOTUNE_N; i++) {
                size_t nl = strlen(field_names[i]);
                if (i && *p++ != ' ')
                        return -EINVAL;
                if (strncmp(p, field_names[i], nl) != 0 || p[nl] != '=' || p[nl + 1] < '0' || p[nl + 1] > '9')
                        return -EINVAL;
                char *end;
                errno = 0;
                s.v[i] = strtoull(p + nl + 1, &end, 10);
                if (errno)
                        return -EINVAL;
                p = end;
        }
        if (*p)
                return -EINVAL;
        *ret = s;
        return 0;
}

bool vmg_iotune_equal(const struct vmg_iotune *a, const struct vmg_iotune *b) {
        return memcmp(a->v, b->v, sizeof a->v) == 0;
}

/* The stricter of two limits where 0 means none. */
static unsigned long long min_limit(unsigned long long a, unsigned long long b) {
        if (!a || !b)
                return a ? a : b;
        return a < b ? a : b;
}

bool vmg_iotune_empty(const struct vmg_iotune *w) {
        for (int i = 0; i < VMG_IOTUNE_N; i++)
                if (w->v[i])
                        return false;
        return true;
}

/* One group: [0] total, [1] read, [2] write. */
static void compose_group(const unsigned long long *op, const unsigned long long *want,
                          unsigned long long *out) {
        unsigned long long t = op[0], rd = op[1], wr = op[2];
        if (!want[0] && !want[1] && !want[2]) {
                memcpy(out, op, 3 * sizeof *out);
                return;
        }
        unsigned long long eff_r = min_limit(min_limit(rd ? rd : t, want[1]), want[0]);
        unsigned long long eff_w = min_limit(min_limit(wr ? wr : t, want[2]), want[0]);
        if (!rd && !wr && ((!want[1] && !want[2]) || (t && eff_r == t && eff_w == t))) {
                /* Only totals in play, or the operator's total already bounds each
                 * direction at least as tightly as vmguard wants: one total says it. */
                out[0] = min_limit(t, want[0]);
                out[1] = out[2] = 0;
                return;
        }
        out[0] = 0;
        out[1] = eff_r;
        out[2] = eff_w;
}

void vmg_iotune_compose(const struct vmg_iotune *operator_set, const struct vmg_iotune *want,
                        struct vmg_iotune *ret) {
        struct vmg_iotune s;
        compose_group(&operator_set->v[VMG_IOTUNE_TOTAL_BYTES], &want->v[VMG_IOTUNE_TOTAL_BYTES],
                      &s.v[VMG_IOTUNE_TOTAL_BYTES]);
        compose_group(&operator_set->v[VMG_IOTUNE_TOTAL_IOPS], &want->v[VMG_IOTUNE_TOTAL_IOPS],
                      &s.v[VMG_IOTUNE_TOTAL_IOPS]);
        *ret = s;
}

/* ---- libvirt, on the worker thread only ---- */

