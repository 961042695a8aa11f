/* Human units of the policy language: parsing ("1.5 cores", "50MiB/s", "30s") and the
 * formatting used by `vmguard policy check` and the logs. */
#include "policies/resources.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"

struct unit {
        const char *suffix;
        double factor;
};

/* Accepts only [0-9]+(.[0-9]+)? so that strtod's extras ("inf", "nan", "0x1p3", "1e9",
 * leading blanks, a sign) never slip into a limit. On success *ret is the number and *end
 * points just past it. */
static int parse_number(const char *s, double *ret, const char **end) {
        const char *p = s;
        if (*p < '0' || *p > '9')
                return -EINVAL;
        while (*p >= '0' && *p <= '9')
                p++;
        if (*p == '.') {
                p++;
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                while (*p >= '0' && *p <= '9')
                        p++;
        }
        /* The number is validated above, so strtod's own syntax cannot widen it. The daemon
         * never calls setlocale(), so the decimal point stays '.'. */
        char buf[64];
        size_t n = (size_t) (p - s);
        if (n >= sizeof buf)
                return -EINVAL;
        memcpy(buf, s, n);
        buf[n] = 0;
        double v = strtod(buf, NULL);
        if (!isfinite(v))
                return -EINVAL;
        *ret = v;
        *end = p;
        return 0;
}

/* number, optional blanks, then exactly one of the suffixes (an empty suffix allows a bare
 * number). */
static int parse_with_units(const char *s, const struct unit *units, size_t n_units,
                            double *ret) {
        double v;
        const char *p;
        if (!s || parse_number(s, &v, &p) < 0)
                return -EINVAL;
        const char *u = p;
        while (*u == ' ')
                u++;
        for (size_t i = 0; i < n_units; i++) {
                if (strcmp(u, units[i].suffix) != 0)
                        continue;
                /* "1.5 " with nothing after the blank is junk, not a bare number */
                if (units[i].suffix[0] == 0 && u != p)
                        return -EINVAL;
                double r = v * units[i].factor;
                if (!isfinite(r))
                        return -EINVAL;
                *ret = r;
                return 0;
        }
        return -EINVAL;
}

int vmg_parse_cpu(const char *s, double *ret) {
        static const struct unit units[] = {
                { "", 1 }, { "cores", 1 }, { "core", 1 }, { "%", 0.01 },
        };
        return parse_with_units(s, units, ARRAY_SIZE(units), ret);
}

int vmg_parse_bytes_rate(const char *s, double *ret) {
        /* A bare number is refused: "50" could be bytes or megabytes, and a limit off by
         * a factor of a million is the worst kind of typo. */
        static const struct unit units[] = {
                { "B/s", 1 },
                { "kB/s", 1e3 }, { "MB/s", 1e6 }, { "GB/s", 1e9 }, { "TB/s", 1e12 },
                { "KiB/s", 1024.0 }, { "MiB/s", 1048576.0 }, { "GiB/s", 1073741824.0 },
                { "TiB/s", 1099511627776.0 },
        };
        return parse_with_units(s, units, ARRAY_SIZE(units), ret);
}

int vmg_parse_iops(const char *s, double *ret) {
        static const struct unit units[] = { { "", 1 }, { "iops", 1 }, { "IOPS", 1 } };
        return parse_with_units(s, units, ARRAY_SIZE(units), ret);
}

int vmg_parse_bits_rate(const char *s, double *ret) {
        static const struct unit units[] = {
                { "bit/s", 1 }, { "kbit/s", 1e3 }, { "Mbit/s", 1e6 }, { "Gbit/s", 1e9 },
                { "Tbit/s", 1e12 },
                { "bps", 1 }, { "kbps", 1e3 }, { "Mbps", 1e6 }, { "Gbps", 1e9 },
        };
        return parse_with_units(s, units, ARRAY_SIZE(units), ret);
}

int vmg_parse_duration(const char *s, uint64_t *ret_ns) {
        static const struct unit units[] = {
                { "ns", 1 }, { "us", 1e3 }, { "ms", 1e6 }, { "s", 1e9 },
                { "m", 60e9 }, { "min", 60e9 }, { "h", 3600e9 },
        };
        double v;
        int r = parse_with_units(s, units, ARRAY_SIZE(units), &v);
        if (r < 0)
                return r;
        /* Far beyond any sensible policy duration, and well inside uint64_t. */
        if (v > 1e18)
                return -EINVAL;
        *ret_ns = (uint64_t) llround(v);
        return 0;
}

int vmg_parse_fraction(const char *s, double *ret) {
        static const struct unit units[] = { { "", 1 }, { "%", 0.01 } };
        return parse_with_units(s, units, ARRAY_SIZE(units), ret);
}

const char *vmg_resource_words(enum vmg_resource r) {
        static const char *const words[VMG_RES_COUNT] = {
                [VMG_RES_CPU] = "CPU",
                [VMG_RES_DISK_READ_BPS] = "disk reads",
                [VMG_RES_DISK_WRITE_BPS] = "disk writes",
                [VMG_RES_DISK_READ_IOPS] = "disk read ops",
                [VMG_RES_DISK_WRITE_IOPS] = "disk write ops",
                [VMG_RES_NET_RX_BPS] = "network receive",
                [VMG_RES_NET_TX_BPS] = "network transmit",
        };
        if ((unsigned) r >= VMG_RES_COUNT)
                return "?";
        return words[r];
}

const char *vmg_resource_name(enum vmg_resource r) {
        static const char *const names[VMG_RES_COUNT] = {
                [VMG_RES_CPU] = "cpu",
                [VMG_RES_DISK_READ_BPS] = "disk_read",
                [VMG_RES_DISK_WRITE_BPS] = "disk_write",
                [VMG_RES_DISK_READ_IOPS] = "disk_read_iops",
                [VMG_RES_DISK_WRITE_IOPS] = "disk_write_iops",
                [VMG_RES_NET_RX_BPS] = "net_rx",
                [VMG_RES_NET_TX_BPS] = "net_tx",
        };
        if ((unsigned) r >= VMG_RES_COUNT)
                return "unknown";
        return names[r];
}

enum vmg_resource vmg_resource_from_name(const char *name) {
        for (int k = 0; k < VMG_RES_COUNT; k++)
                if (strcmp(vmg_resource_name(k), name) == 0)
                        return k;
        return VMG_RES_COUNT;
}

const char *vmg_resource_unit(enum vmg_resource r) {
        static const char *const units[VMG_RES_COUNT] = {
                [VMG_RES_CPU] = "cores",
                [VMG_RES_DISK_READ_BPS] = "bytes/s",  [VMG_RES_DISK_WRITE_BPS] = "bytes/s",
                [VMG_RES_DISK_READ_IOPS] = "ops/s",   [VMG_RES_DISK_WRITE_IOPS] = "ops/s",
                [VMG_RES_NET_RX_BPS] = "bits/s",      [VMG_RES_NET_TX_BPS] = "bits/s",
        };
        return (unsigned) r < VMG_RES_COUNT ? units[r] : "";
}

/* Picks the largest decimal prefix that keeps the value >= 1, so "20MiB/s" prints as
 * "21.0MB/s": one scale for every figure keeps log lines comparable. */
static const char *format_scaled(double v, const char *const units[4], char *buf, size_t len) {
        static const double scale[4] = { 1, 1e3, 1e6, 1e9 };
        int i = 3;
        while (i > 0 && v < scale[i])
                i--;
        snprintf(buf, len, "%.1f%s", v / scale[i], units[i]);
        return buf;
}

const char *vmg_resource_format(enum vmg_resource r, double value, char *buf, size_t len) {
        static const char *const bytes[4] = { "B/s", "kB/s", "MB/s", "GB/s" };
        static const char *const bits[4] = { "bit/s", "kbit/s", "Mbit/s", "Gbit/s" };
        switch (r) {
        case VMG_RES_CPU:
                snprintf(buf, len, "%.2f cores", value);
                return buf;
        case VMG_RES_DISK_READ_BPS:
        case VMG_RES_DISK_WRITE_BPS:
                return format_scaled(value, bytes, buf, len);
        case VMG_RES_DISK_READ_IOPS:
        case VMG_RES_DISK_WRITE_IOPS:
                snprintf(buf, len, "%.0fiops", value);
                return buf;
        case VMG_RES_NET_RX_BPS:
        case VMG_RES_NET_TX_BPS:
                return format_scaled(value, bits, buf, len);
        default:
                snprintf(buf, len, "%g", value);
                return buf;
        }
}
