/* The policy language's unit parsers and formatters (policies/resources.c): every accepted
 * spelling gives the right base-unit value, and junk, signs, NaN, exponents, empty strings and
 * wrong units are refused. */
#include <errno.h>
#include <stdint.h>

#include "policies/policy.h"
#include "tests/harness.h"

enum kind { CPU, BYTES, IOPS, BITS, FRACTION, DURATION };

struct unit_case {
        enum kind kind;
        const char *in;
        int ret;
        double want; /* base unit: cores, bytes/s, ops/s, bits/s, fraction, nanoseconds */
};

static const struct unit_case cases[] = {
        /* CPU: cores, percent of one core, bare number = cores */
        { CPU, "1.5 cores", 0, 1.5 },
        { CPU, "2 cores", 0, 2 },
        { CPU, "1 core", 0, 1 },
        { CPU, "0.8cores", 0, 0.8 },
        { CPU, "150%", 0, 1.5 },
        { CPU, "50 %", 0, 0.5 },
        { CPU, "1.5", 0, 1.5 },
        { CPU, "0", 0, 0 },
        { CPU, "", -EINVAL, 0 },
        { CPU, "-1", -EINVAL, 0 },
        { CPU, "+1", -EINVAL, 0 },
        { CPU, "nan", -EINVAL, 0 },
        { CPU, "inf", -EINVAL, 0 },
        { CPU, "1e3", -EINVAL, 0 },
        { CPU, "0x10", -EINVAL, 0 },
        { CPU, " 1", -EINVAL, 0 },
        { CPU, "1 ", -EINVAL, 0 },
        { CPU, "1.", -EINVAL, 0 },
        { CPU, ".5", -EINVAL, 0 },
        { CPU, "1,5", -EINVAL, 0 },
        { CPU, "2 cores please", -EINVAL, 0 },
        { CPU, "2 CPUs", -EINVAL, 0 },
        { CPU, "1.5.2", -EINVAL, 0 },
        /* bytes/s: SI and binary prefixes, no bare numbers */
        { BYTES, "50MB/s", 0, 50e6 },
        { BYTES, "50MiB/s", 0, 50.0 * 1048576 },
        { BYTES, "1.5GB/s", 0, 1.5e9 },
        { BYTES, "512kB/s", 0, 512e3 },
        { BYTES, "512KiB/s", 0, 512.0 * 1024 },
        { BYTES, "20 MiB/s", 0, 20.0 * 1048576 },
        { BYTES, "100B/s", 0, 100 },
        { BYTES, "1TB/s", 0, 1e12 },
        { BYTES, "2GiB/s", 0, 2.0 * 1073741824 },
        { BYTES, "50", -EINVAL, 0 },
        { BYTES, "50MB", -EINVAL, 0 },
        { BYTES, "50mb/s", -EINVAL, 0 },
        { BYTES, "50KB/s", -EINVAL, 0 },
        { BYTES, "50Mbit/s", -EINVAL, 0 },
        { BYTES, "-5MB/s", -EINVAL, 0 },
        { BYTES, "MB/s", -EINVAL, 0 },
        { BYTES, "50MB/sec", -EINVAL, 0 },
        { BYTES, "", -EINVAL, 0 },
        /* iops */
        { IOPS, "200iops", 0, 200 },
        { IOPS, "200 iops", 0, 200 },
        { IOPS, "1500IOPS", 0, 1500 },
        { IOPS, "200", 0, 200 },
        { IOPS, "200ops", -EINVAL, 0 },
        { IOPS, "200iops/s", -EINVAL, 0 },
        { IOPS, "-3iops", -EINVAL, 0 },
        /* bits/s */
        { BITS, "100Mbit/s", 0, 100e6 },
        { BITS, "1Gbit/s", 0, 1e9 },
        { BITS, "500kbit/s", 0, 500e3 },
        { BITS, "1.5 Gbit/s", 0, 1.5e9 },
        { BITS, "64bit/s", 0, 64 },
        { BITS, "100Mbps", 0, 100e6 },
        { BITS, "100", -EINVAL, 0 },
        { BITS, "100MB/s", -EINVAL, 0 },
        { BITS, "100mbit/s", -EINVAL, 0 },
        { BITS, "100Mbit", -EINVAL, 0 },
        /* fractions */
        { FRACTION, "80%", 0, 0.8 },
        { FRACTION, "0.8", 0, 0.8 },
        { FRACTION, "12.5%", 0, 0.125 },
        { FRACTION, "0%", 0, 0 },
        { FRACTION, "80 percent", -EINVAL, 0 },
        { FRACTION, "-10%", -EINVAL, 0 },
        { FRACTION, "%", -EINVAL, 0 },
        { FRACTION, "NaN%", -EINVAL, 0 },
        /* durations */
        { DURATION, "30s", 0, 30e9 },
        { DURATION, "500ms", 0, 500e6 },
        { DURATION, "2m", 0, 120e9 },
        { DURATION, "2min", 0, 120e9 },
        { DURATION, "1h", 0, 3600e9 },
        { DURATION, "1.5s", 0, 1.5e9 },
        { DURATION, "250us", 0, 250e3 },
        { DURATION, "10 s", 0, 10e9 },
        { DURATION, "0s", 0, 0 },
        { DURATION, "30", -EINVAL, 0 },
        { DURATION, "30sec", -EINVAL, 0 },
        { DURATION, "1d", -EINVAL, 0 },
        { DURATION, "-1s", -EINVAL, 0 },
        { DURATION, "s", -EINVAL, 0 },
        { DURATION, "99999999999999h", -EINVAL, 0 },
        { DURATION, "", -EINVAL, 0 },
};

static const char *kind_name(enum kind k) {
        static const char *const n[] = { "cpu", "bytes", "iops", "bits", "fraction", "duration" };
        return n[k];
}

static void test_parsers(void) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                const struct unit_case *c = &cases[i];
                char label[96];
                double v = -12345;
                uint64_t ns = 12345;
                int r;
                snprintf(label, sizeof label, "%s \"%s\"", kind_name(c->kind), c->in);
                T_CASE(label);
                switch (c->kind) {
                case CPU: r = vmg_parse_cpu(c->in, &v); break;
                case BYTES: r = vmg_parse_bytes_rate(c->in, &v); break;
                case IOPS: r = vmg_parse_iops(c->in, &v); break;
                case BITS: r = vmg_parse_bits_rate(c->in, &v); break;
                case FRACTION: r = vmg_parse_fraction(c->in, &v); break;
                default: r = vmg_parse_duration(c->in, &ns); v = (double) ns; break;
                }
                CHECK_INT(r, c->ret);
                if (c->ret == 0)
                        CHECK_NEAR(v, c->want, c->want * 1e-12);
                else if (c->kind == DURATION) /* outputs written only on success */
                        CHECK_U64(ns, 12345);
                else
                        CHECK_NEAR(v, -12345, 0);
        }
        T_CASE("NULL input");
        double v;
        uint64_t ns;
        CHECK_INT(vmg_parse_cpu(NULL, &v), -EINVAL);
        CHECK_INT(vmg_parse_duration(NULL, &ns), -EINVAL);
}

struct format_case {
        enum vmg_resource res;
        double value;
        const char *want;
};

static const struct format_case formats[] = {
        { VMG_RES_CPU, 1.5, "1.50 cores" },
        { VMG_RES_CPU, 0, "0.00 cores" },
        { VMG_RES_DISK_WRITE_BPS, 40e6, "40.0MB/s" },
        { VMG_RES_DISK_READ_BPS, 512e3, "512.0kB/s" },
        { VMG_RES_DISK_READ_BPS, 1.5e9, "1.5GB/s" },
        { VMG_RES_DISK_READ_BPS, 999, "999.0B/s" },
        { VMG_RES_DISK_WRITE_BPS, 20.0 * 1048576, "21.0MB/s" },
        { VMG_RES_DISK_READ_IOPS, 200, "200iops" },
        { VMG_RES_DISK_WRITE_IOPS, 1500, "1500iops" },
        { VMG_RES_NET_TX_BPS, 100e6, "100.0Mbit/s" },
        { VMG_RES_NET_RX_BPS, 1e9, "1.0Gbit/s" },
        { VMG_RES_NET_RX_BPS, 500e3, "500.0kbit/s" },
};

static void test_format(void) {
        for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
                char buf[64];
                T_CASE(formats[i].want);
                CHECK_STR(vmg_resource_format(formats[i].res, formats[i].value, buf, sizeof buf),
                          formats[i].want);
        }
        T_CASE("resource names");
        static const char *const names[VMG_RES_COUNT] = {
                "cpu", "disk_read", "disk_write", "disk_read_iops", "disk_write_iops",
                "net_rx", "net_tx",
        };
        for (int r = 0; r < VMG_RES_COUNT; r++)
                CHECK_STR(vmg_resource_name(r), names[r]);
        CHECK_STR(vmg_resource_name(VMG_RES_COUNT), "unknown");
}

int main(void) {
        test_parsers();
        test_format();
        return t_summary();
}
