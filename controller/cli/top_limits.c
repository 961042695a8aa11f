/* Limits in force for `vmguard top`; see top.h for the contracts. */
#include <stdio.h>
#include <string.h>

#include "common/macros.h"
#include "controller/cli/top.h"
#include "policies/policy.h"

/* Short labels: the column has to fit next to the usage figures in a terminal. */
static const struct {
        enum vmg_resource res;
        const char *label, *suffix;
} shown[] = {
        { VMG_RES_CPU, "cpu", "" },
        { VMG_RES_DISK_READ_BPS, "rd", "B/s" },
        { VMG_RES_DISK_WRITE_BPS, "wr", "B/s" },
        { VMG_RES_DISK_READ_IOPS, "rdio", "/s" },
        { VMG_RES_DISK_WRITE_IOPS, "wrio", "/s" },
        { VMG_RES_NET_RX_BPS, "rx", "bit/s" },
        { VMG_RES_NET_TX_BPS, "tx", "bit/s" },
};

static double limit_of(const json_t *r) {
        json_t *l = json_object_get(r, "limit");
        return json_is_number(l) ? json_number_value(l) : 0;
}

/* 3 significant digits with an SI prefix: 5242880 -> "5.24M", 800 -> "800". */
static void fmt_si(double v, char *buf, size_t len) {
        static const char prefix[] = { 0, 'k', 'M', 'G', 'T' };
        size_t i = 0;
        while (i + 1 < sizeof prefix && v >= 999.5) {
                v /= 1000;
                i++;
        }
        /* %g would switch to an exponent past the largest prefix. */
        snprintf(buf, len, v >= 999.5 ? "%.0f%s" : "%.3g%s", v, (char[2]){ prefix[i], 0 });
}

static void append(char *buf, size_t len, const char *label, const char *value, const char *suffix,
                   bool throttled) {
        size_t used = strnlen(buf, len);
        if (used + 1 >= len)
                return;
        snprintf(buf + used, len - used, "%s%s %s%s%s", used ? " " : "", label, value, suffix,
                 throttled ? VMG_TOP_THROTTLED_MARK : "");
}

static bool known(const char *name) {
        return vmg_resource_from_name(name) != VMG_RES_COUNT;
}

const char *vmg_top_format_limits(const json_t *vm, char *buf, size_t len) {
        json_t *res = json_object_get(vm, "resources"), *r;
        const char *k;
        char v[32];
        buf[0] = '\0';
        for (size_t i = 0; i < ARRAY_SIZE(shown); i++) {
                r = json_object_get(res, vmg_resource_name(shown[i].res));
                double limit = limit_of(r);
                if (!(limit > 0))
                        continue;
                if (shown[i].res == VMG_RES_CPU)
                        snprintf(v, sizeof v, "%.2f", limit);
                else
                        fmt_si(limit, v, sizeof v);
                append(buf, len, shown[i].label, v, shown[i].suffix,
                       json_is_true(json_object_get(r, "throttled")));
        }
        /* A newer daemon's resource must still show, if plainly. */
        json_object_foreach(res, k, r) {
                double limit = limit_of(r);
                if (known(k) || !(limit > 0))
                        continue;
                snprintf(v, sizeof v, "%g", limit);
                append(buf, len, k, v, "", json_is_true(json_object_get(r, "throttled")));
        }
        if (!buf[0])
                snprintf(buf, len, "-");
        return buf;
}

json_t *vmg_top_limits_json(const json_t *vm) {
        json_t *out = json_object(), *r;
        const char *k;
        if (!out)
                return NULL;
        json_object_foreach(json_object_get(vm, "resources"), k, r) {
                double limit = limit_of(r);
                if (!(limit > 0))
                        continue;
                const char *unit = vmg_resource_unit(vmg_resource_from_name(k));
                json_t *o = json_pack("{s:f, s:s, s:b}", "limit", limit, "unit", unit, "throttled",
                                      json_is_true(json_object_get(r, "throttled")));
                if (!o || json_object_set_new(out, k, o) < 0) {
                        json_decref(out);
                        return NULL;
                }
        }
        return out;
}
