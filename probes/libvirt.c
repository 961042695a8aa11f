#define _GNU_SOURCE 1 /* pipe2 */
#include "probes/libvirt.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "common/log.h"
#include "common/macros.h"

/* Reconnect backoff: a restarting libvirtd is back within seconds; 30 s caps the cost
 * of a long outage at a handful of failed connects per minute. */
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 30000
/* Keepalive: 5 s interval, 3 misses: a hung libvirtd is noticed in ~20 s. */
#define KEEPALIVE_INTERVAL_S 5
#define KEEPALIVE_COUNT 3

struct vmg_libvirt {
        char *uri, *run_dir, *sys_root;
        int pipe_r, pipe_w;

        pthread_mutex_t lock; /* guards conn and the callback ids */
        virConnectPtr conn;
        int lifecycle_id;
        int device_ids[2]; /* DEVICE_ADDED, DEVICE_REMOVED; -1 when not registered */
        bool close_cb;

        pthread_t thread;
        bool thread_started;
        int timer; /* reconnect timer in libvirt's loop; also used to wake it for stop */
        int backoff_ms;
        atomic_bool stop;
        atomic_bool lost;           /* close callback fired: tear down in the thread */
        atomic_bool want_reconnect; /* timer fired: connect in the thread, not a callback */
        atomic_bool overflow;

        /* The domains listed last, parsed with their disks resolved, sorted by uuid; touched
         * only by the caller's thread (list and drain). Under churn each listing would
         * otherwise fetch every domain's XML and state again (two RPCs per domain: 1000
         * domains made one listing cost ~2000 round trips to libvirtd), parse it and resolve
         * its disks, although only the few domains named in the events changed. An entry is
         * dropped when an event names its domain, and all of them on (re)connect and when
         * events were lost. Parsed rather than raw XML: ~300 bytes a domain, not 5-10 KiB. */
        struct lv_cached *cache;
        size_t n_cache;
};

struct lv_cached {
        char uuid[VIR_UUID_STRING_BUFLEN];
        int id;                  /* a restarted domain keeps its uuid but gets a new id */
        enum vmg_domain_state state;
        struct vmg_domxml *def;  /* disks resolved once: again per listing cost ~10 syscalls
                                  * a disk and repeated a missing disk's warning each time */
};

/* A deep copy, for the caller (who owns and frees what it is given). A field added to
 * struct vmg_domxml or vmg_dom_disk must be copied here: the sizes below catch it (LP64). */
_Static_assert(sizeof(void *) != 8 || sizeof(struct vmg_domxml) == 112, "update domxml_dup()");
_Static_assert(sizeof(void *) != 8 || sizeof(struct vmg_dom_disk) == 296, "update domxml_dup()");
static struct vmg_domxml *domxml_dup(const struct vmg_domxml *d) {
        struct vmg_domxml *n = calloc(1, sizeof *n);
        if (!n)
                return NULL;
        *n = *d;
        n->name = n->tenant = n->partition = NULL;
        n->disks = NULL;
        n->ifaces = NULL;
        n->n_disks = n->n_ifaces = 0;
        n->name = strdup(d->name);
        if (!n->name || (d->tenant && !(n->tenant = strdup(d->tenant))) ||
            (d->partition && !(n->partition = strdup(d->partition))))
                return vmg_domxml_free(n);
        if (d->n_ifaces) {
                n->ifaces = malloc(d->n_ifaces * sizeof *n->ifaces);
                if (!n->ifaces)
                        return vmg_domxml_free(n);
                memcpy(n->ifaces, d->ifaces, d->n_ifaces * sizeof *n->ifaces);
                n->n_ifaces = d->n_ifaces;
        }
        if (d->n_disks) {
                n->disks = calloc(d->n_disks, sizeof *n->disks);
                if (!n->disks)
                        return vmg_domxml_free(n);
                for (size_t i = 0; i < d->n_disks; i++) {
                        n->disks[i] = d->disks[i];
                        n->disks[i].source = NULL;
                        n->n_disks = i + 1;
                        if (d->disks[i].source && !(n->disks[i].source = strdup(d->disks[i].source)))
                                return vmg_domxml_free(n);
                }
        }
        return n;
}

static int cached_cmp(const void *a, const void *b) {
        return strcmp(((const struct lv_cached *) a)->uuid, ((const struct lv_cached *) b)->uuid);
}

static struct lv_cached *cache_find(struct vmg_libvirt *l, const char *uuid) {
        struct lv_cached key;
        snprintf(key.uuid, sizeof key.uuid, "%s", uuid);
        return l->n_cache ? bsearch(&key, l->cache, l->n_cache, sizeof key, cached_cmp) : NULL;
}

static void cached_done(struct lv_cached *c) {
        vmg_domxml_free(c->def);
        memset(c, 0, sizeof *c);
}

static void cache_clear(struct vmg_libvirt *l) {
        for (size_t i = 0; i < l->n_cache; i++)
                cached_done(&l->cache[i]);
        free(l->cache);
        l->cache = NULL;
        l->n_cache = 0;
}

/* The domain's state or devices may have changed: fetch it again at the next listing. */
static void cache_forget(struct vmg_libvirt *l, const struct vmg_libvirt_event *ev) {
        if (ev->type == VMG_LV_CONNECTED || ev->type == VMG_LV_DISCONNECTED || ev->type == VMG_LV_OVERFLOW ||
            !ev->uuid[0]) {
                cache_clear(l);
                return;
        }
        struct lv_cached *c = cache_find(l, ev->uuid);
        if (c)
                c->def = vmg_domxml_free(c->def);
}

static pthread_once_t event_impl_once = PTHREAD_ONCE_INIT;
static int event_impl_r;

/* libvirt prints every error to stderr by default; we log the ones we act on. */
static void silent_error(void *opaque, virErrorPtr e) {
        (void) opaque;
        if (e && e->message)
                log_debug("libvirt: %s", e->message);
}

static void register_event_impl(void) {
        virSetErrorFunc(NULL, silent_error);
        event_impl_r = virEventRegisterDefaultImpl();
}

static const char *last_error(void) {
        const char *m = virGetLastErrorMessage();
        return m ? m : "unknown libvirt error";
}

const char *vmg_libvirt_event_name(enum vmg_libvirt_event_type t) {
        static const char *const names[] = {
                [VMG_LV_DOMAIN_STARTED] = "started",     [VMG_LV_DOMAIN_STOPPED] = "stopped",
                [VMG_LV_DOMAIN_SUSPENDED] = "suspended", [VMG_LV_DOMAIN_RESUMED] = "resumed",
                [VMG_LV_DOMAIN_OTHER] = "other",         [VMG_LV_DOMAIN_DEVICE] = "device",
                [VMG_LV_CONNECTED] = "connected",
                [VMG_LV_DISCONNECTED] = "disconnected",  [VMG_LV_OVERFLOW] = "overflow",
        };
        return (size_t) t < ARRAY_SIZE(names) && names[t] ? names[t] : "?";
}

/* Called from the event thread. One record per write: atomic since it is below
 * PIPE_BUF, so a reader never sees half a record. */
static void post(struct vmg_libvirt *l, const struct vmg_libvirt_event *ev) {
        _Static_assert(sizeof *ev <= PIPE_BUF, "event records must be written atomically");
        ssize_t n = write(l->pipe_w, ev, sizeof *ev);
        if (n != (ssize_t) sizeof *ev) {
                /* The caller is not draining: rather than block libvirt's loop, tell it to
                 * list everything again once it does. */
                if (!atomic_exchange(&l->overflow, true))
                        log_warning("libvirt event pipe full, dropping %s event for %s",
                                    vmg_libvirt_event_name(ev->type), ev->name);
        }
}

static void post_simple(struct vmg_libvirt *l, enum vmg_libvirt_event_type t) {
        struct vmg_libvirt_event ev = { .type = t };
        post(l, &ev);
}

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail,
                        void *opaque) {
        (void) conn;
        struct vmg_libvirt *l = opaque;
        struct vmg_libvirt_event ev = { .detail = detail };
        switch (event) {
        case VIR_DOMAIN_EVENT_STARTED: ev.type = VMG_LV_DOMAIN_STARTED; break;
        case VIR_DOMAIN_EVENT_STOPPED: ev.type = VMG_LV_DOMAIN_STOPPED; break;
        case VIR_DOMAIN_EVENT_SUSPENDED: ev.type = VMG_LV_DOMAIN_SUSPENDED; break;
        case VIR_DOMAIN_EVENT_RESUMED: ev.type = VMG_LV_DOMAIN_RESUMED; break;
        default: ev.type = VMG_LV_DOMAIN_OTHER; break;
        }
        const char *name = virDomainGetName(dom);
        snprintf(ev.name, sizeof ev.name, "%s", name ? name : "");
        char uuid[VIR_UUID_STRING_BUFLEN];
        if (virDomainGetUUIDString(dom, uuid) == 0)
                snprintf(ev.uuid, sizeof ev.uuid, "%s", uuid);
        log_debug("domain %s: lifecycle event %s (detail %d)", ev.name,
                  vmg_libvirt_event_name(ev.type), detail);
        post(l, &ev);
        return 0;
}

/* A hot-plugged or unplugged disk or NIC: the cached definition no longer lists the guest's
 * devices (a new disk would go unmeasured, a new tap unshaped) until it is fetched again. */
static void on_device(virConnectPtr conn, virDomainPtr dom, const char *alias, void *opaque) {
        (void) conn;
        struct vmg_libvirt *l = opaque;
        struct vmg_libvirt_event ev = { .type = VMG_LV_DOMAIN_DEVICE };
        const char *name = virDomainGetName(dom);
        snprintf(ev.name, sizeof ev.name, "%s", name ? name : "");
        char uuid[VIR_UUID_STRING_BUFLEN];
        if (virDomainGetUUIDString(dom, uuid) == 0)
                snprintf(ev.uuid, sizeof ev.uuid, "%s", uuid);
        log_debug("domain %s: device %s added or removed", ev.name, alias ? alias : "?");
        post(l, &ev);
}

static void on_close(virConnectPtr conn, int reason, void *opaque) {
        (void) conn;
        struct vmg_libvirt *l = opaque;
        log_warning("libvirt connection to %s closed (reason %d), reconnecting", l->uri, reason);
        atomic_store(&l->lost, true);
}

static void on_timer(int timer, void *opaque) {
        struct vmg_libvirt *l = opaque;
        virEventUpdateTimeout(timer, -1);
        atomic_store(&l->want_reconnect, true);
}

static void arm_reconnect(struct vmg_libvirt *l) {
        log_debug("libvirt: next connection attempt to %s in %d ms", l->uri, l->backoff_ms);
        virEventUpdateTimeout(l->timer, l->backoff_ms);
        l->backoff_ms = l->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : l->backoff_ms * 2;
}

static void teardown(struct vmg_libvirt *l) {
        pthread_mutex_lock(&l->lock);
        virConnectPtr c = TAKE_PTR(l->conn);
        int id = l->lifecycle_id;
        int dev_ids[2] = { l->device_ids[0], l->device_ids[1] };
        bool cc = l->close_cb;
        l->lifecycle_id = -1;
        l->device_ids[0] = l->device_ids[1] = -1;
        l->close_cb = false;
        pthread_mutex_unlock(&l->lock);
        if (!c)
                return;
        if (id >= 0)
                (void) virConnectDomainEventDeregisterAny(c, id);
        for (size_t i = 0; i < 2; i++)
                if (dev_ids[i] >= 0)
                        (void) virConnectDomainEventDeregisterAny(c, dev_ids[i]);
        if (cc)
                (void) virConnectUnregisterCloseCallback(c, on_close);
        virConnectClose(c);
}

/* Returns 1 when connected, 0 when not (logged). */
static int try_connect(struct vmg_libvirt *l) {
        virConnectPtr c = virConnectOpenReadOnly(l->uri);
        if (!c) {
                log_debug("cannot connect to libvirt at %s: %s", l->uri, last_error());
                return 0;
        }
        int r = virConnectSetKeepAlive(c, KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT);
        if (r < 0)
                log_debug("libvirt %s: no keepalive: %s", l->uri, last_error());
        bool cc = virConnectRegisterCloseCallback(c, on_close, l, NULL) == 0;
        if (!cc)
                log_debug("libvirt %s: no close callback: %s", l->uri, last_error());
        int id = virConnectDomainEventRegisterAny(c, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                  VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), l,
                                                  NULL);
        if (id < 0) {
                /* Without lifecycle events we would miss starts and stops: not usable. */
                log_warning("libvirt %s: cannot register lifecycle events: %s", l->uri,
                            last_error());
                if (cc)
                        virConnectUnregisterCloseCallback(c, on_close);
                virConnectClose(c);
                return 0;
        }
        /* Device events only keep the cached definitions fresh; a driver without them
         * still works (its hot-plugs show at the guest's next lifecycle event). */
        int dev_ids[2];
        dev_ids[0] = virConnectDomainEventRegisterAny(c, NULL, VIR_DOMAIN_EVENT_ID_DEVICE_ADDED,
                                                      VIR_DOMAIN_EVENT_CALLBACK(on_device), l, NULL);
        dev_ids[1] = virConnectDomainEventRegisterAny(c, NULL, VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED,
                                                      VIR_DOMAIN_EVENT_CALLBACK(on_device), l, NULL);
        if (dev_ids[0] < 0 || dev_ids[1] < 0)
                log_debug("libvirt %s: no device events: %s", l->uri, last_error());
        pthread_mutex_lock(&l->lock);
        l->conn = c;
        l->device_ids[0] = dev_ids[0];
        l->device_ids[1] = dev_ids[1];
        l->lifecycle_id = id;
        l->close_cb = cc;
        pthread_mutex_unlock(&l->lock);
        l->backoff_ms = BACKOFF_MIN_MS;
        log_info("connected to libvirt at %s", l->uri);
        return 1;
}

static void *event_thread(void *p) {
        struct vmg_libvirt *l = p;
        while (!atomic_load(&l->stop)) {
                if (virEventRunDefaultImpl() < 0)
                        log_warning("libvirt event loop iteration failed: %s", last_error());
                if (atomic_load(&l->stop))
                        break;
                if (atomic_exchange(&l->lost, false)) {
                        teardown(l);
                        post_simple(l, VMG_LV_DISCONNECTED);
                        arm_reconnect(l);
                }
                if (atomic_exchange(&l->want_reconnect, false)) {
                        if (try_connect(l))
                                post_simple(l, VMG_LV_CONNECTED);
                        else
                                arm_reconnect(l);
                }
        }
        return NULL;
}

int vmg_libvirt_new(const struct vmg_libvirt_config *cfg, struct vmg_libvirt **ret) {
        struct vmg_libvirt *l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        l->pipe_r = l->pipe_w = -1;
        l->timer = -1;
        l->lifecycle_id = -1;
        l->device_ids[0] = l->device_ids[1] = -1;
        l->backoff_ms = BACKOFF_MIN_MS;
        pthread_mutex_init(&l->lock, NULL);
        l->uri = strdup(cfg && cfg->uri ? cfg->uri : "qemu:///system");
        l->run_dir = strdup(cfg && cfg->run_dir ? cfg->run_dir : "/run/libvirt/qemu");
        l->sys_root = strdup(cfg && cfg->sys_root ? cfg->sys_root : "/sys");
        if (!l->uri || !l->run_dir || !l->sys_root) {
                vmg_libvirt_free(l);
                return -ENOMEM;
        }
        int fds[2];
        if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0) {
                int r = -errno;
                vmg_libvirt_free(l);
                return r;
        }
        l->pipe_r = fds[0];
        l->pipe_w = fds[1];
        *ret = l;
        return 0;
}

int vmg_libvirt_start(struct vmg_libvirt *l) {
        if (l->thread_started)
                return -EALREADY;
        pthread_once(&event_impl_once, register_event_impl);
        if (event_impl_r < 0)
                return log_error_errno(EIO, "cannot register libvirt's event loop: %s",
                                       last_error());
        l->timer = virEventAddTimeout(-1, on_timer, l, NULL);
        if (l->timer < 0)
                return log_error_errno(EIO, "cannot add libvirt reconnect timer: %s",
                                       last_error());
        int connected = try_connect(l);
        if (!connected) {
                log_warning("libvirt at %s not reachable (%s), retrying in the background",
                            l->uri, last_error());
                arm_reconnect(l);
        }
        int r = pthread_create(&l->thread, NULL, event_thread, l);
        if (r != 0) {
                teardown(l);
                return log_error_errno(r, "cannot start the libvirt event thread: %m");
        }
        l->thread_started = true;
        return connected;
}

bool vmg_libvirt_connected(struct vmg_libvirt *l) {
        pthread_mutex_lock(&l->lock);
        bool c = l->conn != NULL;
        pthread_mutex_unlock(&l->lock);
        return c;
}

int vmg_libvirt_event_fd(const struct vmg_libvirt *l) {
        return l->pipe_r;
}

int vmg_libvirt_drain_events(struct vmg_libvirt *l, vmg_libvirt_event_cb cb, void *userdata) {
        int n = 0;
        for (;;) {
                struct vmg_libvirt_event ev;
                ssize_t k = read(l->pipe_r, &ev, sizeof ev);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        return -errno;
                }
                if (k == 0)
                        break;
                if (k != (ssize_t) sizeof ev)
                        return log_error_errno(EIO, "short libvirt event record (%zd bytes)", k);
                cache_forget(l, &ev);
                cb(&ev, userdata);
                n++;
        }
        /* After the queued records: the caller re-lists with everything before it seen. */
        if (atomic_exchange(&l->overflow, false)) {
                struct vmg_libvirt_event ev = { .type = VMG_LV_OVERFLOW };
                cache_clear(l);
                cb(&ev, userdata);
                n++;
        }
        return n;
}

int vmg_libvirt_read_pidfile(const char *run_dir, const char *name, pid_t *ret) {
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s.pid", run_dir, name) >= (int) sizeof path)
                return -ENAMETOOLONG;
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f)
                return -errno;
        char buf[32] = "";
        if (!fgets(buf, sizeof buf, f))
                return -EBADMSG;
        char *end;
        errno = 0;
        long v = strtol(buf, &end, 10);
        if (errno || end == buf || (*end && *end != '\n') || v <= 0 || v > INT_MAX)
                return log_debug_errno(EBADMSG, "%s: not a pid: \"%s\"", path, buf);
        *ret = (pid_t) v;
        return 0;
}

static void resolve_disks(struct vmg_libvirt *l, struct vmg_domxml *d) {
        for (size_t i = 0; i < d->n_disks; i++) {
                struct vmg_dom_disk *k = &d->disks[i];
                if (k->type != VMG_DISK_FILE && k->type != VMG_DISK_BLOCK) {
                        k->dev_error = -ENODEV;
                        continue;
                }
                int r = vmg_blockdev_resolve_path(l->sys_root, k->source, &k->dev);
                if (r < 0) {
                        log_warning("domain %s disk %s (%s): no host block device: %s", d->name,
                                    k->target, k->source, strerror(-r));
                        k->dev_error = r;
                        memset(&k->dev, 0, sizeof k->dev);
                }
        }
}

/* The two round trips to libvirtd per domain (its live XML and its state), the parse and
 * the disks' resolution, into c. */
static int fetch_domain(struct vmg_libvirt *l, virDomainPtr dom, struct lv_cached *c) {
        const char *name = virDomainGetName(dom);
        char *xml = virDomainGetXMLDesc(dom, 0);
        if (!xml)
                return log_debug_errno(ENOENT, "domain %s: no XML (gone?): %s",
                                       name ? name : "?", last_error());
        struct vmg_domxml *d = NULL;
        int r = vmg_domxml_parse(xml, strlen(xml), &d);
        free(xml);
        if (r < 0)
                return log_warning_errno(r, "domain %s: cannot parse its live XML",
                                         name ? name : "?");
        int state = 0, reason = 0;
        if (virDomainGetState(dom, &state, &reason, 0) < 0) {
                /* Log before freeing: the name lives in d. */
                r = log_debug_errno(ENOENT, "domain %s: no state (gone?)", d->name);
                vmg_domxml_free(d);
                return r;
        }
        resolve_disks(l, d);
        vmg_domxml_free(c->def);
        c->def = d;
        c->state = state == VIR_DOMAIN_RUNNING ? VMG_DOM_RUNNING
                 : state == VIR_DOMAIN_PAUSED  ? VMG_DOM_PAUSED
                                               : VMG_DOM_OTHER;
        return 0;
}

/* From a fetched (or cached) domain: a copy of its definition for the caller, and the QEMU
 * pid, read again each time (cheap, and QEMU may have been restarted under the same id). */
static int load_domain(struct vmg_libvirt *l, const struct lv_cached *c, struct vmg_domain *out) {
        struct vmg_domxml *d = domxml_dup(c->def);
        if (!d)
                return -ENOMEM;
        int r;
        out->state = c->state;
        out->qemu_pid = 0;
        r = vmg_libvirt_read_pidfile(l->run_dir, d->name, &out->qemu_pid);
        if (r < 0)
                log_debug("domain %s: no QEMU pid from %s/%s.pid: %s", d->name, l->run_dir,
                          d->name, strerror(-r));
        out->def = d;
        return 0;
}

int vmg_libvirt_list(struct vmg_libvirt *l, struct vmg_domain **ret, size_t *n) {
        pthread_mutex_lock(&l->lock);
        virConnectPtr c = l->conn;
        if (c)
                virConnectRef(c); /* the event thread may drop its reference meanwhile */
        pthread_mutex_unlock(&l->lock);
        if (!c)
                return -ENOTCONN;

        virDomainPtr *doms = NULL;
        int nd = virConnectListAllDomains(c, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
        if (nd < 0) {
                log_warning("libvirt %s: cannot list domains: %s", l->uri, last_error());
                virConnectClose(c);
                return -EIO;
        }
        int r = 0;
        struct vmg_domain *v = calloc(nd > 0 ? (size_t) nd : 1, sizeof *v);
        struct lv_cached *next = calloc(nd > 0 ? (size_t) nd : 1, sizeof *next);
        size_t k = 0, nn = 0, fetched = 0;
        if (!v || !next)
                r = -ENOMEM;
        for (int i = 0; i < nd; i++) {
                struct lv_cached *e = r == 0 ? &next[nn] : NULL;
                /* uuid and id come with the listing: no round trip. */
                if (e && virDomainGetUUIDString(doms[i], e->uuid) == 0) {
                        e->id = (int) virDomainGetID(doms[i]);
                        struct lv_cached *old = cache_find(l, e->uuid);
                        if (old && old->def && old->id == e->id) {
                                e->def = TAKE_PTR(old->def);
                                e->state = old->state;
                        } else if (fetch_domain(l, doms[i], e) == 0)
                                fetched++;
                        if (e->def && load_domain(l, e, &v[k]) == 0) {
                                k++;
                                nn++;
                        } else
                                cached_done(e);
                }
                virDomainFree(doms[i]);
        }
        free(doms);
        virConnectClose(c);
        /* Only the domains listed now stay cached: the cache never outgrows the host. */
        cache_clear(l);
        if (r < 0) {
                free(next);
                vmg_domains_free(v, k);
                return r;
        }
        qsort(next, nn, sizeof *next, cached_cmp);
        l->cache = next;
        l->n_cache = nn;
        log_debug("libvirt: listed %zu domain(s), fetched the XML of %zu", k, fetched);
        *ret = v;
        *n = k;
        return 0;
}

void vmg_domains_free(struct vmg_domain *d, size_t n) {
        if (!d)
                return;
        for (size_t i = 0; i < n; i++)
                vmg_domxml_free(d[i].def);
        free(d);
}

struct vmg_libvirt *vmg_libvirt_free(struct vmg_libvirt *l) {
        if (!l)
                return NULL;
        if (l->thread_started) {
                atomic_store(&l->stop, true);
                /* A due timeout interrupts the loop's poll(), so the thread sees stop. */
                virEventUpdateTimeout(l->timer, 0);
                pthread_join(l->thread, NULL);
        }
        teardown(l);
        cache_clear(l);
        if (l->timer >= 0)
                virEventRemoveTimeout(l->timer);
        if (l->pipe_r >= 0)
                close(l->pipe_r);
        if (l->pipe_w >= 0)
                close(l->pipe_w);
        pthread_mutex_destroy(&l->lock);
        free(l->uri);
        free(l->run_dir);
        free(l->sys_root);
        free(l);
        return NULL;
}
