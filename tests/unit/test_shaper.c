/* The shaper's pure parts: tbf sizing, ifb naming, netns paths, and the argument and
 * namespace checks that fail before any netlink request (on a fake netns directory). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macros.h"
#include "controller/act/shaper.h"
#include "tests/harness.h"

static void test_tbf_params(void) {
        static const struct {
                const char *name;
                double bps;
                uint32_t mtu;
                int ret;
                uint32_t rate, burst, limit;
        } cases[] = {
                /* burst floor: 10 full frames (1500 + 22) beats rate/100 = 12500 */
                { "10 Mbit, mtu 1500", 10e6, 1500, 0, 1250000, 15220, 62500 + 15220 },
                { "mtu 0 means 1500", 10e6, 0, 0, 1250000, 15220, 62500 + 15220 },
                /* rate/100 wins at high rates */
                { "1 Gbit", 1e9, 1500, 0, 125000000, 1250000, 6250000 + 1250000 },
                { "100 Mbit, jumbo", 100e6, 9000, 0, 12500000, 125000, 625000 + 125000 },
                { "10 Mbit, jumbo floor", 10e6, 9000, 0, 1250000, 90220, 62500 + 90220 },
                { "bits round down to bytes", 10000007, 1500, 0, 1250000, 15220, 62500 + 15220 },
                { "minimum", VMG_SHAPER_MIN_BPS, 1500, 0, 1000, 15220, 50 + 15220 },
                { "maximum", VMG_SHAPER_MAX_BPS, 1500, 0, 2147483647u, 21474836,
                  107374182 + 21474836 },
                { "mtu above 64k is clamped", 8000, 100000, 0, 1000, 10 * (65535 + 22),
                  50 + 10 * (65535 + 22) },
                { "zero", 0, 1500, -EINVAL, 0, 0, 0 },
                { "negative", -5e6, 1500, -EINVAL, 0, 0, 0 },
                { "NaN", NAN, 1500, -EINVAL, 0, 0, 0 },
                { "below minimum", 7999, 1500, -ERANGE, 0, 0, 0 },
                { "above maximum", VMG_SHAPER_MAX_BPS * 2, 1500, -ERANGE, 0, 0, 0 },
                { "infinite", INFINITY, 1500, -ERANGE, 0, 0, 0 },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                struct vmg_tbf_params p = { 1, 2, 3 };
                T_CASE(cases[i].name);
                CHECK_INT(vmg_shaper_tbf_params(cases[i].bps, cases[i].mtu, &p), cases[i].ret);
                if (cases[i].ret < 0) {
                        CHECK_U64(p.rate_Bps, 1); /* output untouched on failure */
                        continue;
                }
                CHECK_U64(p.rate_Bps, cases[i].rate);
                CHECK_U64(p.burst, cases[i].burst);
                CHECK_U64(p.limit, cases[i].limit);
                /* tbf needs at least one full frame in the bucket or it drops every frame */
                CHECK(p.burst >= (cases[i].mtu ? (cases[i].mtu > 65535 ? 65535 : cases[i].mtu) : 1500));
                CHECK(p.limit > p.burst);
        }
}

static void test_ifb_name(void) {
        static const struct {
                const char *tap;
                int ret;
                const char *ifb;
        } cases[] = {
                { "tap0", 0, "vgi-tap0" },
                { "vnet12345ab", 0, "vgi-vnet12345ab" },      /* 11 chars: still fits */
                { "vnet12345abc", 0, "vgi-vned0f2b951" },     /* 12: prefix + FNV-1a */
                { "tap-tenant-0001", 0, "vgi-tap688a7c23" },  /* 15: longest tap name */
                { "tap-tenant-0002", 0, "vgi-tap698a7db6" },  /* differs only at the end */
                { "", -EINVAL, NULL },
                { NULL, -EINVAL, NULL },
                { "tap-tenant-00001", -EINVAL, NULL },        /* 16: not a valid name */
                { "a/b", -EINVAL, NULL },
                { "a b", -EINVAL, NULL },
                { "a:1", -EINVAL, NULL },
                { ".", -EINVAL, NULL },
                { "..", -EINVAL, NULL },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                char ifb[IF_NAMESIZE] = "untouched";
                T_CASE(cases[i].tap ? cases[i].tap : "(null)");
                CHECK_INT(vmg_shaper_ifb_name(cases[i].tap, ifb), cases[i].ret);
                if (cases[i].ret < 0) {
                        CHECK_STR(ifb, "untouched");
                        continue;
                }
                CHECK_STR(ifb, cases[i].ifb);
                CHECK(strlen(ifb) < IF_NAMESIZE);
        }
}

static void test_netns_path(void) {
        static const struct {
                const char *dir, *ns;
                size_t size;
                int ret;
                const char *path;
        } cases[] = {
                { NULL, "vmglab", 256, 0, "/run/netns/vmglab" },
                { "/tmp/fake", "ns1", 256, 0, "/tmp/fake/ns1" },
                { NULL, "/proc/1/ns/net", 256, 0, "/proc/1/ns/net" },
                { NULL, "a/b", 256, -EINVAL, NULL },
                { NULL, "..", 256, -EINVAL, NULL },
                { NULL, ".", 256, -EINVAL, NULL },
                { NULL, "", 256, -EINVAL, NULL },
                { NULL, NULL, 256, -EINVAL, NULL },
                { NULL, "vmglab", 17, -ENAMETOOLONG, NULL }, /* needs 18 with the NUL */
                { NULL, "vmglab", 18, 0, "/run/netns/vmglab" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                char buf[256];
                T_CASE(cases[i].ns ? cases[i].ns : "(null)");
                CHECK_INT(vmg_shaper_netns_path(cases[i].dir, cases[i].ns, buf, cases[i].size),
                          cases[i].ret);
                if (cases[i].ret == 0)
                        CHECK_STR(buf, cases[i].path);
        }
}

/* Failures that must come back before any netlink request, on a fake netns directory:
 * an absent namespace file, a file that is not a namespace, bad names and rates. */
static void test_early_errors(void) {
        char dir[] = "/tmp/vmg-shaper-XXXXXX";
        char path[PATH_MAX];
        struct vmg_shaper *s = NULL;

        T_CASE("fake netns dir");
        CHECK(mkdtemp(dir) != NULL);
        snprintf(path, sizeof path, "%s/notans", dir);
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        CHECK(fd >= 0);
        if (fd >= 0)
                close(fd);

        CHECK_INT(vmg_shaper_new(&(struct vmg_shaper_config) { .netns_dir = dir }, &s), 0);
        if (!s)
                return;
        struct vmg_shaper_state st = { .guest_tx_bps = 42 };
        static const struct {
                const char *name, *ns, *tap;
                double tx, rx;
                int set, clear, get;
        } cases[] = {
                { "absent netns", "gone", "tap0", 10e6, 0, -ENOENT, -ENOENT, -ENOENT },
                { "not a netns file", "notans", "tap0", 10e6, 0, -EINVAL, -EINVAL, -EINVAL },
                { "netns name with slash", "a/b", "tap0", 10e6, 0, -EINVAL, -EINVAL, -EINVAL },
                { "tap name too long", "gone", "tap-tenant-00001", 0, 0, -EINVAL, -EINVAL, -EINVAL },
                { "negative rate", "gone", "tap0", -1, 0, -EINVAL, -ENOENT, -ENOENT },
                { "NaN rate", "gone", "tap0", 0, NAN, -EINVAL, -ENOENT, -ENOENT },
                { "rate too small", "gone", "tap0", 0, 100, -ERANGE, -ENOENT, -ENOENT },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                T_CASE(cases[i].name);
                CHECK_INT(vmg_shaper_set(s, cases[i].ns, cases[i].tap, cases[i].tx, cases[i].rx),
                          cases[i].set);
                CHECK_INT(vmg_shaper_clear(s, cases[i].ns, cases[i].tap), cases[i].clear);
                CHECK_INT(vmg_shaper_get(s, cases[i].ns, cases[i].tap, &st), cases[i].get);
                CHECK_NEAR(st.guest_tx_bps, 42, 0); /* untouched on failure */
        }
        CHECK(vmg_shaper_free(s) == NULL);
        CHECK(vmg_shaper_free(NULL) == NULL);
        unlink(path);
        rmdir(dir);
}

int main(void) {
        log_set_max_level(LOG_EMERG); /* the error cases log by design */
        test_tbf_params();
        test_ifb_name();
        test_netns_path();
        test_early_errors();
        return t_summary();
}
