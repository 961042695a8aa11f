/* libvirt's block I/O tune, asynchronous; contracts in blkiotune.h, the set's pure rules in
 * iotune.c. About 780 lines, one file on purpose: the worker thread, the job queue and the
 * two job state machines (throttle, restore) share the job struct and its locking; split,
 * they would become a header of internals with no user outside this module. */
#define _GNU_SOURCE
#include "controller/act/blkiotune.h"

#include <errno.h>
#include <inttypes.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macros.h"

#define KIND "blkiotune"
/* restore_sync waits in slices so that timeouts are checked even without completions. */
#define SYNC_POLL_MS 50

/* Room for vmg_iotune_format(): six "name=" (at most 16 + 1) and six 20-digit values. */
#define SET_TEXT_MAX 192

/* One libvirt call, handed from the loop thread to the worker and back. */
struct call {
        struct call *next;
        struct job *job; /* NULL once its job gave up (guarded by the mutex) */
        bool is_set;
        char uuid[40], disk[32];
        struct vmg_iotune vals; /* set: in; get: out */
        int r;
};

/* STAGE_WAIT: queued behind another job on the same disk, whose set this one must read. */
enum stage { STAGE_WAIT, STAGE_GET, STAGE_SET, STAGE_DONE };

/* What vmguard wants in force on one disk (0 = no want), kept across jobs so that a
 * throttle of one parameter writes the others vmguard holds on the same disk too. */
struct want {
        struct want *next;
        char uuid[40], disk[32];
        struct vmg_iotune v;
};

struct job {
        struct job *next;
        uint64_t id;
        enum vmg_blkiotune_op op;
        enum stage stage;
        char uuid[40], name[128], disk[32], param[32];
        struct vmg_iotune target; /* the set being written */
        uint64_t deadline_ns;
        struct call *call; /* in flight, owned by the queue/worker */
        int r;
};

struct libvirt_ctx {
        char *uri;
        virConnectPtr conn;
};

struct vmg_blkiotune {
        struct vmg_journal *journal;
        struct vmg_blkiotune_ops ops;
        struct libvirt_ctx lv;
        uint64_t timeout_ns;

        pthread_t thread;
        bool thread_started;
        pthread_mutex_t mu;
        pthread_cond_t cv;
        bool stop;
        struct call *queue, *queue_tail; /* to the worker */
        struct call *done;               /* from the worker */
        int efd;

        /* Loop thread only. */
        struct job *jobs;
        struct want *wants;
        uint64_t next_id;
};

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * NSEC_PER_SEC + (uint64_t) ts.tv_nsec;
}

static void lv_silent(void *userdata, virErrorPtr err) {
        (void) userdata;
        (void) err; /* reported through our own log with the VM's name instead */
}

static int lv_errno(struct libvirt_ctx *c, const char *what, const char *uuid, const char *disk) {
        virErrorPtr e = virGetLastError();
        int code = e ? e->code : VIR_ERR_INTERNAL_ERROR;
        int r;
        switch (code) {
        case VIR_ERR_NO_DOMAIN:
        case VIR_ERR_OPERATION_INVALID: /* "domain is not running" */
                r = -ENOENT;
                break;
        case VIR_ERR_INVALID_ARG: /* "disk 'vdz' was not found" */
                r = -ENODEV;
                break;
        case VIR_ERR_OPERATION_TIMEOUT: /* "cannot acquire state change lock" */
        case VIR_ERR_OPERATION_FAILED:
                r = -EBUSY;
                break;
        case VIR_ERR_NO_CONNECT:
        case VIR_ERR_RPC:
        case VIR_ERR_SYSTEM_ERROR:
                r = -EAGAIN;
                if (c->conn) {
                        virConnectClose(c->conn);
                        c->conn = NULL;
                }
                break;
        case VIR_ERR_NO_SUPPORT:
        case VIR_ERR_CONFIG_UNSUPPORTED:
        case VIR_ERR_ARGUMENT_UNSUPPORTED:
                r = -EOPNOTSUPP;
                break;
        default:
                r = -EIO;
        }
        log_debug("blkiotune: %s of %s disk %s: %s (libvirt code %d)", what, uuid, disk,
                  e && e->message ? e->message : "unknown error", code);
        virResetLastError();
        return r;
}

static int lv_domain(struct libvirt_ctx *c, const char *uuid, virDomainPtr *ret) {
        if (!c->conn) {
                c->conn = virConnectOpen(c->uri);
                if (!c->conn)
                        return log_warning_errno(-EAGAIN, "blkiotune: cannot connect to %s", c->uri);
                virConnSetErrorFunc(c->conn, NULL, lv_silent);
        }
        *ret = virDomainLookupByUUIDString(c->conn, uuid);
        return *ret ? 0 : lv_errno(c, "lookup", uuid, "-");
}

static int lv_get(void *userdata, const char *uuid, const char *disk, struct vmg_iotune *ret) {
        struct libvirt_ctx *c = userdata;
        virDomainPtr dom;
        virTypedParameterPtr params = NULL;
        int n = 0, r = lv_domain(c, uuid, &dom);
        if (r < 0)
                return r;
        /* First call with no array asks how many parameters there are. */
        if (virDomainGetBlockIoTune(dom, disk, NULL, &n, VIR_DOMAIN_AFFECT_LIVE) < 0 || n <= 0) {
                r = lv_errno(c, "get", uuid, disk);
                goto out;
        }
        params = calloc((size_t) n, sizeof *params);
        if (!params) {
                r = -ENOMEM;
                goto out;
        }
        if (virDomainGetBlockIoTune(dom, disk, params, &n, VIR_DOMAIN_AFFECT_LIVE) < 0) {
                r = lv_errno(c, "get", uuid, disk);
                goto out;
        }
        /* libvirt has returned all six since 0.9.8; a missing one reads as no limit, but
         * without write_bytes_sec this is no block I/O tune we know. */
        *ret = (struct vmg_iotune) {};
        if (virTypedParamsGetULLong(params, n, VIR_DOMAIN_BLOCK_IOTUNE_WRITE_BYTES_SEC,
                                    &ret->v[VMG_IOTUNE_WRITE_BYTES]) != 1)
                r = -EOPNOTSUPP;
        for (int i = 0; r == 0 && i < VMG_IOTUNE_N; i++)
                if (virTypedParamsGetULLong(params, n, vmg_iotune_name(i), &ret->v[i]) < 0)
                        r = -EINVAL;
out:
        if (params)
                virTypedParamsFree(params, n);
        virDomainFree(dom);
        return r;
}

static int lv_set(void *userdata, const char *uuid, const char *disk, const struct vmg_iotune *s) {
        struct libvirt_ctx *c = userdata;
        virDomainPtr dom;
        virTypedParameterPtr params = NULL;
        int n = 0, max = 0, r = lv_domain(c, uuid, &dom);
        if (r < 0)
                return r;
        /* All six in one call: libvirt then keeps none of the old byte/iops fields, so the
         * result is exactly this set (the max/burst fields it keeps are not ours). */
        for (int i = 0; r == 0 && i < VMG_IOTUNE_N; i++)
                if (virTypedParamsAddULLong(&params, &n, &max, vmg_iotune_name(i), s->v[i]) < 0)
                        r = -ENOMEM;
        if (r == 0 && virDomainSetBlockIoTune(dom, disk, params, n, VIR_DOMAIN_AFFECT_LIVE) < 0)
                r = lv_errno(c, "set", uuid, disk);
        virTypedParamsFree(params, n);
        virDomainFree(dom);
        return r;
}

/* ---- worker ---- */

static void *worker(void *userdata) {
        struct vmg_blkiotune *bt = userdata;
        pthread_mutex_lock(&bt->mu);
        for (;;) {
                while (!bt->stop && !bt->queue)
                        pthread_cond_wait(&bt->cv, &bt->mu);
                if (bt->stop)
                        break;
                struct call *c = bt->queue;
                bt->queue = c->next;
                if (!bt->queue)
                        bt->queue_tail = NULL;
                pthread_mutex_unlock(&bt->mu);

                if (c->is_set)
                        c->r = bt->ops.set(bt->ops.userdata, c->uuid, c->disk, &c->vals);
                else
                        c->r = bt->ops.get(bt->ops.userdata, c->uuid, c->disk, &c->vals);

                pthread_mutex_lock(&bt->mu);
                c->next = bt->done;
                bt->done = c;
                uint64_t one = 1;
                if (write(bt->efd, &one, sizeof one) < 0)
                        log_debug_errno(-errno, "blkiotune: eventfd write: %m");
        }
        pthread_mutex_unlock(&bt->mu);
        return NULL;
}

static int submit(struct vmg_blkiotune *bt, struct job *j, bool is_set, const struct vmg_iotune *vals) {
        struct call *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->job = j;
        c->is_set = is_set;
        if (vals)
                c->vals = *vals;
        snprintf(c->uuid, sizeof c->uuid, "%s", j->uuid);
        snprintf(c->disk, sizeof c->disk, "%s", j->disk);
        j->call = c;
        j->stage = is_set ? STAGE_SET : STAGE_GET;
        pthread_mutex_lock(&bt->mu);
        if (bt->queue_tail)
                bt->queue_tail->next = c;
        else
                bt->queue = c;
        bt->queue_tail = c;
        pthread_cond_signal(&bt->cv);
        pthread_mutex_unlock(&bt->mu);
        return 0;
}

int vmg_blkiotune_new(const struct vmg_blkiotune_config *cfg, struct vmg_blkiotune **ret) {
        if (!cfg->journal)
                return -EINVAL;
        struct vmg_blkiotune *bt = calloc(1, sizeof *bt);
        if (!bt)
                return -ENOMEM;
        bt->journal = cfg->journal;
        bt->timeout_ns = (uint64_t) (cfg->timeout_ms ? cfg->timeout_ms : VMG_BLKIOTUNE_TIMEOUT_MS) *
                         NSEC_PER_MSEC;
        bt->next_id = 1;
        bt->efd = -1;
        pthread_mutex_init(&bt->mu, NULL);
        pthread_cond_init(&bt->cv, NULL);
        if (cfg->ops) {
                bt->ops = *cfg->ops;
        } else {
                bt->lv.uri = strdup(cfg->uri ? cfg->uri : "qemu:///system");
                if (!bt->lv.uri) {
                        vmg_blkiotune_free(bt);
                        return -ENOMEM;
                }
                bt->ops = (struct vmg_blkiotune_ops) {.get = lv_get, .set = lv_set, .userdata = &bt->lv};
        }
        bt->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (bt->efd < 0) {
                int r = -errno;
                vmg_blkiotune_free(bt);
                return r;
        }
        int r = pthread_create(&bt->thread, NULL, worker, bt);
        if (r != 0) {
                vmg_blkiotune_free(bt);
                return -r;
        }
        bt->thread_started = true;
        *ret = bt;
        return 0;
}

static void free_calls(struct call *c) {
        while (c) {
                struct call *next = c->next;
                free(c);
                c = next;
        }
}

struct vmg_blkiotune *vmg_blkiotune_free(struct vmg_blkiotune *bt) {
        if (!bt)
                return NULL;
        if (bt->thread_started) {
                pthread_mutex_lock(&bt->mu);
                bt->stop = true;
                pthread_cond_signal(&bt->cv);
                pthread_mutex_unlock(&bt->mu);
                /* A libvirt call into a hung libvirtd may never return (no keepalive without
                 * an event loop on this connection): wait one call timeout, then leave the
                 * worker and its state behind rather than hang the daemon's stop, whose
                 * other restores are done by then. */
                struct timespec until;
                clock_gettime(CLOCK_REALTIME, &until);
                uint64_t ns = (uint64_t) until.tv_nsec + bt->timeout_ns;
                until.tv_sec += (time_t) (ns / NSEC_PER_SEC);
                until.tv_nsec = (long) (ns % NSEC_PER_SEC);
                if (pthread_timedjoin_np(bt->thread, NULL, &until) != 0) {
                        log_error("blkiotune: a libvirt call has not returned after %llu ms; leaving it behind",
                                  (unsigned long long) (bt->timeout_ns / NSEC_PER_MSEC));
                        pthread_detach(bt->thread);
                        return NULL; /* bt stays allocated: the worker still uses it */
                }
        }
        free_calls(bt->queue);
        free_calls(bt->done);
        for (struct job *j = bt->jobs; j;) {
                struct job *next = j->next;
                free(j);
                j = next;
        }
        for (struct want *w = bt->wants; w;) {
                struct want *next = w->next;
                free(w);
                w = next;
        }
        if (bt->lv.conn)
                virConnectClose(bt->lv.conn);
        free(bt->lv.uri);
        if (bt->efd >= 0)
                close(bt->efd);
        pthread_cond_destroy(&bt->cv);
        pthread_mutex_destroy(&bt->mu);
        free(bt);
        return NULL;
}

int vmg_blkiotune_fd(const struct vmg_blkiotune *bt) {
        return bt->efd;
}

static bool job_busy(struct vmg_blkiotune *bt, const char *uuid, const char *disk, const char *param) {
        for (struct job *j = bt->jobs; j; j = j->next)
                if (j->stage != STAGE_DONE && strcmp(j->uuid, uuid) == 0 &&
                    strcmp(j->disk, disk) == 0 && strcmp(j->param, param) == 0)
                        return true;
        return false;
}

static struct job *job_new(struct vmg_blkiotune *bt, enum vmg_blkiotune_op op, const char *uuid,
                           const char *name, const char *disk, const char *param) {
        if (strlen(uuid) >= sizeof ((struct job *) 0)->uuid ||
            strlen(disk) >= sizeof ((struct job *) 0)->disk ||
            strlen(param) >= sizeof ((struct job *) 0)->param)
                return NULL;
        struct job *j = calloc(1, sizeof *j);
        if (!j)
                return NULL;
        j->id = bt->next_id++;
        j->op = op;
        snprintf(j->uuid, sizeof j->uuid, "%s", uuid);
        snprintf(j->name, sizeof j->name, "%s", name ? name : "");
        snprintf(j->disk, sizeof j->disk, "%s", disk);
        snprintf(j->param, sizeof j->param, "%s", param);
        j->deadline_ns = now_ns() + bt->timeout_ns;
        return j;
}

static void job_link(struct vmg_blkiotune *bt, struct job *j) {
        struct job **p = &bt->jobs;
        while (*p)
                p = &(*p)->next;
        *p = j;
}

/* Whether a job on (uuid, disk) is talking to libvirt: a second one would read a set the
 * first is about to replace. */
static bool disk_active(const struct vmg_blkiotune *bt, const char *uuid, const char *disk) {
        for (const struct job *j = bt->jobs; j; j = j->next)
                if ((j->stage == STAGE_GET || j->stage == STAGE_SET) && strcmp(j->uuid, uuid) == 0 &&
                    strcmp(j->disk, disk) == 0)
                        return true;
        return false;
}

/* Links j and reads its disk's set, or lets it wait for the job ahead on that disk. */
static int job_start(struct vmg_blkiotune *bt, struct job *j) {
        if (disk_active(bt, j->uuid, j->disk)) {
                j->stage = STAGE_WAIT;
        } else {
                int r = submit(bt, j, false, NULL);
                if (r < 0)
                        return r;
        }
        job_link(bt, j);
        return 0;
}

static struct want *want_find(struct vmg_blkiotune *bt, const char *uuid, const char *disk, bool create) {
        for (struct want *w = bt->wants; w; w = w->next)
                if (strcmp(w->uuid, uuid) == 0 && strcmp(w->disk, disk) == 0)
                        return w;
        if (!create)
                return NULL;
        struct want *w = calloc(1, sizeof *w);
        if (!w)
                return NULL;
        snprintf(w->uuid, sizeof w->uuid, "%s", uuid);
        snprintf(w->disk, sizeof w->disk, "%s", disk);
        w->next = bt->wants;
        bt->wants = w;
        return w;
}

static void wants_forget(struct vmg_blkiotune *bt, const char *uuid) {
        for (struct want **p = &bt->wants; *p;) {
                struct want *w = *p;
                if (uuid && strcmp(w->uuid, uuid) != 0) {
                        p = &w->next;
                        continue;
                }
                *p = w->next;
                free(w);
        }
}

int64_t vmg_blkiotune_set(struct vmg_blkiotune *bt, const char *uuid, const char *name,
                          const char *disk, const char *param, unsigned long long value) {
        int f = vmg_iotune_field_of(param);
        if (f < 0)
                return log_error_errno(-EINVAL, "blkiotune: VM %s: unknown parameter \"%s\"", name, param);
        if (job_busy(bt, uuid, disk, param))
                return -EBUSY;
        struct job *j = job_new(bt, VMG_BT_THROTTLE, uuid, name, disk, param);
        if (!j)
                return -ENOMEM;
        struct want *w = want_find(bt, uuid, disk, true);
        int r = w ? job_start(bt, j) : -ENOMEM;
        if (r < 0) {
                free(j);
                return r;
        }
        /* Read by the job when its get returns, so a later want on the disk joins it. */
        w->v.v[f] = value;
        return (int64_t) j->id;
}

int vmg_blkiotune_restore(struct vmg_blkiotune *bt, const char *uuid) {
        int queued = 0;
        wants_forget(bt, uuid);
        for (size_t i = 0; i < vmg_journal_count(bt->journal); i++) {
                const struct vmg_journal_entry *e = vmg_journal_get(bt->journal, i);
                if (strcmp(e->kind, KIND) != 0 || (uuid && strcmp(e->uuid, uuid) != 0) ||
                    job_busy(bt, e->uuid, e->path, e->key))
                        continue;
                struct job *j = job_new(bt, VMG_BT_RESTORE, e->uuid, e->name, e->path, e->key);
                if (!j)
                        return queued > 0 ? queued : -ENOMEM;
                if (job_start(bt, j) < 0) {
                        free(j);
                        return queued > 0 ? queued : -ENOMEM;
                }
                queued++;
        }
        return queued;
}

static void finish(struct job *j, int r) {
        j->stage = STAGE_DONE;
        j->r = r;
        j->call = NULL;
}

static void advance_throttle(struct vmg_blkiotune *bt, struct job *j, const struct call *c) {
        struct vmg_knob k = {.kind = KIND, .root = "", .path = j->disk, .key = VMG_IOTUNE_KEY};
        const struct want *w = want_find(bt, j->uuid, j->disk, false);
        struct vmg_iotune want = w ? w->v : (struct vmg_iotune) {}, orig;
        char live[SET_TEXT_MAX], target[SET_TEXT_MAX];
        int r;

        if (j->stage == STAGE_SET) {
                (void) vmg_iotune_format(&j->target, target, sizeof target);
                if (c->r < 0) {
                        log_warning_errno(c->r, "blkiotune: VM %s (%s): setting disk %s to %s failed: %m",
                                          j->name, j->uuid, j->disk, target);
                        (void) vmg_journal_unrecord(bt->journal, j->uuid, &k);
                        finish(j, c->r);
                        return;
                }
                vmg_journal_committed(bt->journal, j->uuid, &k);
                log_info("blkiotune: VM %s (%s): disk %s set to %s", j->name, j->uuid, j->disk, target);
                /* No want left: what was written is the operator's set; nothing to restore. */
                if (vmg_iotune_empty(&want))
                        (void) vmg_journal_drop(bt->journal, j->uuid, &k);
                finish(j, 1);
                return;
        }
        if (c->r < 0) {
                log_debug_errno(c->r, "blkiotune: VM %s (%s): reading the block I/O tune of disk %s: %m",
                                j->name, j->uuid, j->disk);
                finish(j, c->r);
                return;
        }
        (void) vmg_iotune_format(&c->vals, live, sizeof live);
        orig = c->vals;
        const struct vmg_journal_entry *e = vmg_journal_find(bt->journal, j->uuid, &k);
        if (e && vmg_journal_judge(e, live) == VMG_JV_DRIFT) {
                log_warning("blkiotune: VM %s (%s): disk %s is %s, not the %s vmguard set; treating it "
                            "as the operator's new set", j->name, j->uuid, j->disk, live, e->written);
                r = vmg_journal_drop(bt->journal, j->uuid, &k);
                if (r < 0) {
                        finish(j, r);
                        return;
                }
                e = NULL;
        }
        if (e && vmg_iotune_parse(e->original, &orig) < 0) {
                log_error("blkiotune: VM %s (%s): journal original \"%s\" of disk %s is not a block I/O "
                          "tune set; taking the live one as the original", j->name, j->uuid, e->original,
                          j->disk);
                r = vmg_journal_drop(bt->journal, j->uuid, &k);
                if (r < 0) {
                        finish(j, r);
                        return;
                }
                e = NULL;
        }
        vmg_iotune_compose(&orig, &want, &j->target);
        if (vmg_iotune_equal(&j->target, &c->vals)) {
                /* Already so. With no want left, the live set is the operator's again. */
                if (e && vmg_iotune_empty(&want))
                        (void) vmg_journal_drop(bt->journal, j->uuid, &k);
                finish(j, 0);
                return;
        }
        (void) vmg_iotune_format(&j->target, target, sizeof target);
        r = vmg_journal_record(bt->journal, j->uuid, j->name, &k, live, target);
        if (r < 0) {
                log_error_errno(r, "blkiotune: VM %s (%s): cannot remember original %s of disk %s (%m): "
                                "not throttling", j->name, j->uuid, live, j->disk);
                finish(j, r);
                return;
        }
        r = submit(bt, j, true, &j->target);
        if (r < 0) {
                (void) vmg_journal_unrecord(bt->journal, j->uuid, &k);
                finish(j, r);
        }
}

/* What restoring e means for the live set, and the set to write when it is VMG_JV_RESTORE.
 * A whole-set entry is judged as a set; an entry of an older journal (key = one parameter)
 * by its field alone, and only that field is put back. -EBADMSG: e is unreadable. */
static int restore_plan(const struct vmg_journal_entry *e, const struct vmg_iotune *live,
                        enum vmg_journal_verdict *verdict, struct vmg_iotune *target, char *live_text,
                        size_t n) {
        if (strcmp(e->key, VMG_IOTUNE_KEY) == 0) {
                (void) vmg_iotune_format(live, live_text, n);
                *verdict = vmg_journal_judge(e, live_text);
                if (*verdict == VMG_JV_RESTORE && vmg_iotune_parse(e->original, target) < 0)
                        return -EBADMSG;
                return 0;
        }
        int f = vmg_iotune_field_of(e->key);
        if (f < 0)
                return -EBADMSG;
        snprintf(live_text, n, "%llu", live->v[f]);
        *verdict = vmg_journal_judge(e, live_text);
        if (*verdict != VMG_JV_RESTORE)
                return 0;
        char *end;
        errno = 0;
        unsigned long long orig = strtoull(e->original, &end, 10);
        if (errno || *end || end == e->original)
                return -EBADMSG;
        *target = *live;
        target->v[f] = orig;
        return 0;
}

static void advance_restore(struct vmg_blkiotune *bt, struct job *j, const struct call *c) {
        struct vmg_knob k = {.kind = KIND, .root = "", .path = j->disk, .key = j->param};
        const struct vmg_journal_entry *e = vmg_journal_find(bt->journal, j->uuid, &k);
        bool gone = c->r == -ENOENT || c->r == -ENODEV;
        char live[SET_TEXT_MAX];

        if (!e) { /* dropped meanwhile */
                finish(j, 0);
                return;
        }
        if (gone) {
                log_debug("blkiotune: VM %s (%s) gone, forgetting disk %s %s", j->name, j->uuid,
                          j->disk, j->param);
                (void) vmg_journal_drop(bt->journal, j->uuid, &k);
                finish(j, 0);
                return;
        }
        if (c->r < 0) {
                log_warning_errno(c->r, "blkiotune: VM %s (%s): cannot restore disk %s %s to %s: %m; "
                                  "kept for a later attempt", j->name, j->uuid, j->disk, j->param,
                                  e->original);
                finish(j, c->r);
                return;
        }
        if (j->stage == STAGE_SET) {
                log_info("blkiotune: VM %s (%s): restored disk %s %s to %s", j->name, j->uuid,
                         j->disk, j->param, e->original);
                (void) vmg_journal_drop(bt->journal, j->uuid, &k);
                finish(j, 1);
                return;
        }
        enum vmg_journal_verdict verdict;
        if (restore_plan(e, &c->vals, &verdict, &j->target, live, sizeof live) < 0) {
                log_error("blkiotune: VM %s (%s): journal original \"%s\" of disk %s %s is unreadable; "
                          "dropping it", j->name, j->uuid, e->original, j->disk, j->param);
                (void) vmg_journal_drop(bt->journal, j->uuid, &k);
                finish(j, -EBADMSG);
                return;
        }
        switch (verdict) {
        case VMG_JV_ORIGINAL:
                (void) vmg_journal_drop(bt->journal, j->uuid, &k);
                finish(j, 0);
                return;
        case VMG_JV_DRIFT:
                log_warning("blkiotune: VM %s (%s): disk %s %s is now %s, not the %s vmguard set: "
                            "someone else changed it; keeping their value (original was %s)", j->name,
                            j->uuid, j->disk, j->param, live, e->written, e->original);
                (void) vmg_journal_drop(bt->journal, j->uuid, &k);
                finish(j, 0);
                return;
        case VMG_JV_RESTORE:
                break;
        }
        int r = submit(bt, j, true, &j->target);
        if (r < 0)
                finish(j, r);
}

size_t vmg_blkiotune_dispatch(struct vmg_blkiotune *bt, struct vmg_blkiotune_result *out, size_t n) {
        uint64_t cnt;
        if (read(bt->efd, &cnt, sizeof cnt) < 0 && errno != EAGAIN)
                log_debug_errno(-errno, "blkiotune: eventfd read: %m");

        pthread_mutex_lock(&bt->mu);
        struct call *done = bt->done;
        bt->done = NULL;
        pthread_mutex_unlock(&bt->mu);

        /* The worker pushes on the front: reverse for completion order. */
        struct call *rev = NULL;
        while (done) {
                struct call *next = done->next;
                done->next = rev;
                rev = done;
                done = next;
        }
        while (rev) {
                struct call *c = rev;
                rev = c->next;
                struct job *j = c->job;
                if (!j) {
                        log_info("blkiotune: late %s of disk %s of %s after its timeout: %d",
                                 c->is_set ? "set" : "get", c->disk, c->uuid, c->r);
                } else {
                        j->call = NULL;
                        if (j->op == VMG_BT_THROTTLE)
                                advance_throttle(bt, j, c);
                        else
                                advance_restore(bt, j, c);
                }
                free(c);
        }

        uint64_t now = now_ns();
        for (struct job *j = bt->jobs; j; j = j->next) {
                if (j->stage == STAGE_DONE || now < j->deadline_ns)
                        continue;
                pthread_mutex_lock(&bt->mu);
                struct call **p = &bt->queue, *prev = NULL;
                while (*p && *p != j->call) {
                        prev = *p;
                        p = &(*p)->next;
                }
                if (*p) { /* never started: nothing reached libvirt */
                        struct call *c = *p;
                        *p = c->next;
                        if (bt->queue_tail == c)
                                bt->queue_tail = prev;
                        free(c);
                } else if (j->call) {
                        j->call->job = NULL; /* running: its result will be ignored */
                }
                pthread_mutex_unlock(&bt->mu);
                /* A set that may still land keeps its journal entry: restore covers it. */
                log_warning("blkiotune: VM %s (%s): %s of disk %s %s timed out after %" PRIu64 " ms",
                            j->name, j->uuid, j->op == VMG_BT_THROTTLE ? "throttle" : "restore",
                            j->disk, j->param, (uint64_t) (bt->timeout_ns / NSEC_PER_MSEC));
                finish(j, -ETIMEDOUT);
        }

        /* In order: a disk's next job reads the set its previous one left. */
        for (struct job *j = bt->jobs; j; j = j->next) {
                if (j->stage != STAGE_WAIT || disk_active(bt, j->uuid, j->disk))
                        continue;
                int r = submit(bt, j, false, NULL);
                if (r < 0)
                        finish(j, r);
        }

        size_t copied = 0;
        for (struct job **p = &bt->jobs; *p && copied < n;) {
                struct job *j = *p;
                if (j->stage != STAGE_DONE) {
                        p = &j->next;
                        continue;
                }
                struct vmg_blkiotune_result *o = &out[copied++];
                *o = (struct vmg_blkiotune_result) {.id = j->id, .op = j->op, .r = j->r};
                snprintf(o->uuid, sizeof o->uuid, "%s", j->uuid);
                snprintf(o->disk, sizeof o->disk, "%s", j->disk);
                snprintf(o->param, sizeof o->param, "%s", j->param);
                *p = j->next;
                free(j);
        }
        return copied;
}

size_t vmg_blkiotune_pending(const struct vmg_blkiotune *bt) {
        size_t n = 0;
        for (const struct job *j = bt->jobs; j; j = j->next)
                n += j->stage != STAGE_DONE;
        return n;
}

int vmg_blkiotune_restore_sync(struct vmg_blkiotune *bt, const char *uuid) {
        int r = vmg_blkiotune_restore(bt, uuid);
        if (r < 0)
                return r;
        int restored = 0, first_err = 0;
        for (;;) {
                struct vmg_blkiotune_result res[16];
                size_t got = vmg_blkiotune_dispatch(bt, res, ARRAY_SIZE(res));
                for (size_t i = 0; i < got; i++) {
                        if (res[i].op != VMG_BT_RESTORE)
                                continue;
                        if (res[i].r > 0)
                                restored++;
                        else if (res[i].r < 0 && !first_err)
                                first_err = res[i].r;
                }
                if (got == ARRAY_SIZE(res))
                        continue;
                if (vmg_blkiotune_pending(bt) == 0)
                        break;
                struct pollfd pfd = {.fd = bt->efd, .events = POLLIN};
                if (poll(&pfd, 1, SYNC_POLL_MS) < 0 && errno != EINTR)
                        return -errno;
        }
        return first_err < 0 ? first_err : restored;
}
