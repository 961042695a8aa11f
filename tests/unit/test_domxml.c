/* domxml: live domain XML fixtures (tests/fixtures/domxml) to the discovery struct; then
 * libvirt.c end to end on libvirt's in-process test driver (test:///default: one running
 * domain "test"), which needs no libvirtd and so always runs. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libvirt/libvirt.h>

#include "common/log.h"
#include "common/macros.h"
#include "probes/domxml.h"
#include "probes/libvirt.h"
#include "tests/harness.h"

#define FIX "tests/fixtures/domxml/"

static int slurp(const char *path, char **ret, size_t *len) {
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f)
                return -errno;
        char *buf = NULL;
        size_t size = 0;
        FILE *m = open_memstream(&buf, &size);
        if (!m)
                return -ENOMEM;
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
                fwrite(chunk, 1, n, m);
        fclose(m);
        *ret = buf;
        *len = size;
        return 0;
}

struct want_disk {
        const char *target, *source, *cache, *io, *bus;
        enum vmg_disk_type type;
};
struct want_iface {
        const char *type, *tap, *mac, *source, *model;
};

static const struct {
        const char *file;
        int r;
        const char *name, *uuid, *tenant, *partition;
        int id;
        unsigned n_vcpus, max_vcpus;
        size_t n_disks;
        struct want_disk disks[3];
        size_t n_ifaces;
        struct want_iface ifaces[3];
} cases[] = {
        { "file-disk.xml", 0, "web1", "3f1d2a4e-8b6c-4d2e-9f10-2a3b4c5d6e7f", "acme", "/machine",
          7, 2, 4,
          1, { { "vda", "/var/lib/libvirt/images/web1.qcow2", "none", "native", "virtio",
                 VMG_DISK_FILE } },
          1, { { "ethernet", "vmgtap0", "52:54:00:12:34:56", "", "virtio" } } },
        { "block-lv.xml", 0, "db-primary", "a8c1e6f2-0d3b-4b7a-8e21-5f6a7b8c9d0e", "globex", NULL,
          12, 8, 8,
          2, { { "vda", "/dev/vg0/db-primary", "none", "io_uring", "virtio", VMG_DISK_BLOCK },
               { "sda", "/dev/sdb1", "writeback", "", "scsi", VMG_DISK_BLOCK } },
          3, { { "bridge", "vnet3", "52:54:00:aa:00:01", "br-tenant", "virtio" },
               { "network", "vnet4", "52:54:00:aa:00:02", "default", "e1000" },
               { "direct", "macvtap0", "52:54:00:aa:00:03", "eth0", "virtio" } } },
        { "network-disk.xml", 0, "ceph-guest", "0b9e7d6c-5a4f-4e3d-8c2b-1a0f9e8d7c6b", NULL, NULL,
          3, 1, 1,
          2, { { "vda", "rbd:rbd/ceph-guest-root", "writeback", "", "virtio", VMG_DISK_NETWORK },
               { "vdb", "/srv/images/ceph-guest-scratch.qcow2", "writeback", "threads",
                 "virtio", VMG_DISK_FILE } },
          1, { { "user", "", "52:54:00:bb:00:01", "", "virtio" } } },
        { "test-driver.xml", 0, "test", "6695eb01-f6a4-8304-79aa-97f2502e193f", NULL, NULL,
          1, 2, 2,
          1, { { "vda", "/guest/diskimage1", "", "", "virtio", VMG_DISK_FILE } },
          1, { { "network", "testnet0", "aa:bb:cc:dd:ee:ff", "default", "" } } },
        { "truncated.xml", -EBADMSG, NULL, NULL, NULL, NULL, 0, 0, 0, 0, {}, 0, {} },
        { "not-domain.xml", -EBADMSG, NULL, NULL, NULL, NULL, 0, 0, 0, 0, {}, 0, {} },
        { "no-uuid.xml", -EBADMSG, NULL, NULL, NULL, NULL, 0, 0, 0, 0, {}, 0, {} },
};

static void check_str_or_null(const char *got, const char *want) {
        if (want)
                CHECK_STR(got, want);
        else
                CHECK_MSG(got == NULL, "got \"%s\", expected NULL", got);
}

static void test_fixtures(void) {
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                T_CASE(cases[i].file);
                char path[256];
                snprintf(path, sizeof path, FIX "%s", cases[i].file);
                _cleanup_free_ char *xml = NULL;
                size_t len = 0;
                int r = slurp(path, &xml, &len);
                CHECK_MSG(r == 0, "cannot read %s: %s", path, strerror(-r));
                if (r < 0)
                        continue;
                struct vmg_domxml *d = (struct vmg_domxml *) 0x1;
                r = vmg_domxml_parse(xml, len, &d);
                CHECK_INT(r, cases[i].r);
                if (r < 0) {
                        CHECK(d == (struct vmg_domxml *) 0x1); /* untouched on error */
                        continue;
                }
                CHECK_STR(d->name, cases[i].name);
                CHECK_STR(d->uuid, cases[i].uuid);
                check_str_or_null(d->tenant, cases[i].tenant);
                check_str_or_null(d->partition, cases[i].partition);
                CHECK_INT(d->id, cases[i].id);
                CHECK_INT(d->n_vcpus, cases[i].n_vcpus);
                CHECK_INT(d->max_vcpus, cases[i].max_vcpus);
                CHECK_INT(d->n_disks, cases[i].n_disks);
                for (size_t k = 0; k < d->n_disks && k < cases[i].n_disks; k++) {
                        const struct want_disk *w = &cases[i].disks[k];
                        CHECK_STR(d->disks[k].target, w->target);
                        CHECK_STR(d->disks[k].source, w->source);
                        CHECK_STR(d->disks[k].cache, w->cache);
                        CHECK_STR(d->disks[k].io, w->io);
                        CHECK_STR(d->disks[k].bus, w->bus);
                        CHECK_INT(d->disks[k].type, w->type);
                        CHECK_INT(d->disks[k].dev_error, 0);
                        CHECK_INT(d->disks[k].dev.major, 0);
                }
                CHECK_INT(d->n_ifaces, cases[i].n_ifaces);
                for (size_t k = 0; k < d->n_ifaces && k < cases[i].n_ifaces; k++) {
                        const struct want_iface *w = &cases[i].ifaces[k];
                        CHECK_STR(d->ifaces[k].type, w->type);
                        CHECK_STR(d->ifaces[k].tap, w->tap);
                        CHECK_STR(d->ifaces[k].mac, w->mac);
                        CHECK_STR(d->ifaces[k].source, w->source);
                        CHECK_STR(d->ifaces[k].model, w->model);
                }
                CHECK(vmg_domxml_free(d) == NULL);
        }
}

/* Inline edge cases: each a small variation on a valid domain. */
static void test_inline(void) {
        static const struct {
                const char *name, *xml;
                int r;
                const char *tenant;
                unsigned n_vcpus;
        } t[] = {
                { "empty", "", -EBADMSG, NULL, 0 },
                { "garbage", "\x01\x02not xml at all", -EBADMSG, NULL, 0 },
                { "unclosed metadata",
                  "<domain><name>a</name><uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid>"
                  "<metadata><t:tenant xmlns:t='urn:vmguard:tenant:1'>x</domain>",
                  -EBADMSG, NULL, 0 },
                { "tenant prefix bound to another URI",
                  "<domain><name>a</name><uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid>"
                  "<metadata><vmguard:tenant xmlns:vmguard='urn:vmguard:tenant:2'>x"
                  "</vmguard:tenant></metadata></domain>",
                  0, NULL, 1 },
                { "tenant in default namespace",
                  "<domain><name>a</name><uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid>"
                  "<vcpu current='1'>2</vcpu><metadata><tenant xmlns='urn:vmguard:tenant:1'>"
                  "initech</tenant></metadata></domain>",
                  0, "initech", 1 },
                { "un-namespaced tenant ignored",
                  "<domain><name>a</name><uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid>"
                  "<metadata><tenant>x</tenant></metadata></domain>",
                  0, NULL, 1 },
                { "vcpu current above max", 
                  "<domain><name>a</name><uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid>"
                  "<vcpu current='4'>2</vcpu></domain>",
                  -EBADMSG, NULL, 0 },
                { "vcpu not a number",
                  "<domain><name>a</name><uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid>"
                  "<vcpu>two</vcpu></domain>",
                  -EBADMSG, NULL, 0 },
                { "external entity not fetched",
                  "<!DOCTYPE domain [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>"
                  "<domain><name>a</name><uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid>"
                  "<metadata><t:tenant xmlns:t='urn:vmguard:tenant:1'>&x;</t:tenant>"
                  "</metadata></domain>",
                  0, NULL, 1 },
        };
        for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
                T_CASE(t[i].name);
                struct vmg_domxml *d = NULL;
                int r = vmg_domxml_parse(t[i].xml, strlen(t[i].xml), &d);
                CHECK_INT(r, t[i].r);
                if (r < 0) {
                        CHECK(d == NULL);
                        continue;
                }
                check_str_or_null(d->tenant, t[i].tenant);
                CHECK_INT(d->n_vcpus, t[i].n_vcpus);
                vmg_domxml_free(d);
        }
}

static int write_file(const char *dir, const char *name, const char *content) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, name);
        FILE *f = fopen(p, "we");
        if (!f)
                return -errno;
        fputs(content, f);
        return fclose(f) == 0 ? 0 : -errno;
}

static void test_pidfile(const char *dir) {
        static const struct {
                const char *name, *content;
                int r;
                pid_t pid;
        } t[] = {
                { "libvirt-style", "12345", 0, 12345 }, /* libvirt writes no newline */
                { "newline", "678\n", 0, 678 },
                { "zero", "0", -EBADMSG, 0 },
                { "negative", "-5", -EBADMSG, 0 },
                { "garbage", "qemu", -EBADMSG, 0 },
                { "trailing junk", "12x", -EBADMSG, 0 },
                { "empty", "", -EBADMSG, 0 },
        };
        for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
                T_CASE(t[i].name);
                CHECK_INT(write_file(dir, "dom.pid", t[i].content), 0);
                pid_t pid = -1;
                CHECK_INT(vmg_libvirt_read_pidfile(dir, "dom", &pid), t[i].r);
                CHECK_INT(pid, t[i].r == 0 ? t[i].pid : -1);
        }
        T_CASE("missing pidfile");
        CHECK_INT(vmg_libvirt_read_pidfile(dir, "nosuchdomain", &(pid_t) { 0 }), -ENOENT);
}

struct seen {
        int n;
        enum vmg_libvirt_event_type last;
        char last_name[128];
};

static void on_event(const struct vmg_libvirt_event *ev, void *userdata) {
        struct seen *s = userdata;
        s->n++;
        s->last = ev->type;
        snprintf(s->last_name, sizeof s->last_name, "%s", ev->name);
}

/* Waits (bounded) for the event fd and drains it: a wait, not a timing assertion. */
static void wait_event(struct vmg_libvirt *l, struct seen *s) {
        *s = (struct seen) { .last = -1 };
        struct pollfd p = { .fd = vmg_libvirt_event_fd(l), .events = POLLIN };
        CHECK_INT(poll(&p, 1, 10000), 1);
        CHECK(vmg_libvirt_drain_events(l, on_event, s) >= 1);
}

static void test_libvirt_testdriver(const char *run_dir) {
        T_CASE("test driver: start");
        CHECK_INT(write_file(run_dir, "test.pid", "4242"), 0);
        struct vmg_libvirt_config cfg = { .uri = "test:///default", .run_dir = run_dir,
                                          .sys_root = "tests/fixtures/sys" };
        struct vmg_libvirt *l = NULL;
        CHECK_INT(vmg_libvirt_new(&cfg, &l), 0);
        if (!l)
                return;
        CHECK_INT(vmg_libvirt_start(l), 1);
        CHECK(vmg_libvirt_connected(l));

        T_CASE("test driver: list");
        struct vmg_domain *doms = NULL;
        size_t n = 0;
        CHECK_INT(vmg_libvirt_list(l, &doms, &n), 0);
        CHECK_INT(n, 1);
        if (n == 1) {
                CHECK_STR(doms[0].def->name, "test");
                CHECK_STR(doms[0].def->uuid, "6695eb01-f6a4-8304-79aa-97f2502e193f");
                CHECK_INT(doms[0].def->n_vcpus, 2);
                CHECK_INT(doms[0].qemu_pid, 4242);
                CHECK_INT(doms[0].state, VMG_DOM_RUNNING);
                CHECK_INT(doms[0].def->n_disks, 1);
                if (doms[0].def->n_disks == 1) /* /guest/diskimage1 exists nowhere */
                        CHECK_INT(doms[0].def->disks[0].dev_error, -ENOENT);
                CHECK_INT(doms[0].def->n_ifaces, 1);
                if (doms[0].def->n_ifaces == 1)
                        CHECK_STR(doms[0].def->ifaces[0].tap, "testnet0");
        }
        vmg_domains_free(doms, n);

        /* Lifecycle: a second, read-write connection changes the shared default test
         * driver state; our read-only connection must hear of it through the pipe. */
        virConnectPtr rw = virConnectOpen("test:///default");
        CHECK(rw != NULL);
        virDomainPtr dom = rw ? virDomainLookupByName(rw, "test") : NULL;
        CHECK(dom != NULL);
        if (dom) {
                struct seen s;
                T_CASE("test driver: suspend event");
                CHECK_INT(virDomainSuspend(dom), 0);
                wait_event(l, &s);
                CHECK_INT(s.last, VMG_LV_DOMAIN_SUSPENDED);
                CHECK_STR(s.last_name, "test");
                CHECK_INT(vmg_libvirt_list(l, &doms, &n), 0);
                CHECK_INT(n, 1); /* paused domains are listed */
                if (n == 1)
                        CHECK_INT(doms[0].state, VMG_DOM_PAUSED);
                vmg_domains_free(doms, n);

                T_CASE("test driver: resume event");
                CHECK_INT(virDomainResume(dom), 0);
                wait_event(l, &s);
                CHECK_INT(s.last, VMG_LV_DOMAIN_RESUMED);

                T_CASE("test driver: stop event");
                CHECK_INT(virDomainDestroy(dom), 0);
                wait_event(l, &s);
                CHECK_INT(s.last, VMG_LV_DOMAIN_STOPPED);
                CHECK_INT(vmg_libvirt_list(l, &doms, &n), 0);
                CHECK_INT(n, 0);
                vmg_domains_free(doms, n);

                T_CASE("test driver: start event");
                CHECK_INT(virDomainCreate(dom), 0);
                wait_event(l, &s);
                CHECK_INT(s.last, VMG_LV_DOMAIN_STARTED);
                virDomainFree(dom);
        }
        if (rw)
                virConnectClose(rw);
        CHECK(vmg_libvirt_free(l) == NULL);
}

static void test_libvirt_unreachable(void) {
        T_CASE("unreachable libvirtd");
        struct vmg_libvirt_config cfg = {
                .uri = "qemu+unix:///system?socket=/nonexistent/vmguard/libvirt-sock",
        };
        struct vmg_libvirt *l = NULL;
        CHECK_INT(vmg_libvirt_new(&cfg, &l), 0);
        if (!l)
                return;
        CHECK_INT(vmg_libvirt_start(l), 0); /* not connected, retrying in the background */
        CHECK(!vmg_libvirt_connected(l));
        struct vmg_domain *doms = NULL;
        size_t n = 0;
        CHECK_INT(vmg_libvirt_list(l, &doms, &n), -ENOTCONN);
        CHECK(vmg_libvirt_free(l) == NULL);
}

int main(void) {
        log_set_max_level(LOG_ERR);
        test_fixtures();
        test_inline();

        char tmp[] = "/tmp/vmg-domxml-XXXXXX";
        if (!mkdtemp(tmp)) {
                CHECK_MSG(0, "mkdtemp: %m");
                return t_summary();
        }
        test_pidfile(tmp);
        test_libvirt_testdriver(tmp);
        test_libvirt_unreachable();
        char p[600];
        snprintf(p, sizeof p, "%s/dom.pid", tmp);
        unlink(p);
        snprintf(p, sizeof p, "%s/test.pid", tmp);
        unlink(p);
        rmdir(tmp);
        return t_summary();
}
