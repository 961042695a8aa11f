/* Why plain openat2()/write() and not libcgroup (2.0.2): libcgroup finds hierarchies from
 * /proc/mounts (no injectable root, so no fake trees in tests), writes every value of a
 * controller in one cgroup_modify_cgroup() and reports ECG* codes that lose which file and
 * which errno failed; it follows symlinks. We need one file at a time, the errno of that
 * file (to tell a vanished VM from a permanent refusal), RESOLVE_BENEATH so a path from the
 * journal cannot leave the hierarchy, and a root we can point at a mkdtemp() tree. */
#define _GNU_SOURCE
#include "controller/act/actuator.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/macros.h"

/* The kernel refuses CFS quotas below 1 ms (measured: 500 -> EINVAL). */
#define CFS_QUOTA_MIN_US 1000
/* Cgroup control files are small; a per-device file with every disk of a big host is still
 * far below this. */
#define CG_FILE_MAX (1u << 20)

#define ROOT_CPU "cpu"
#define ROOT_BLKIO "blkio"
#define ROOT_UNIFIED "unified"

struct vmg_actuator {
        int version;
        int cpu_fd, blkio_fd; /* v2: blkio_fd == -1, cpu_fd is the unified root */
        struct vmg_journal *journal;
        int (*write_fn)(int dirfd, const char *relpath, const char *value, void *userdata);
        void *write_userdata;
};

enum vmg_result_class vmg_act_classify(int r) {
        if (r >= 0)
                return VMG_RESULT_OK;
        switch (-r) {
        case ENOENT:
        case ENODEV:
                return VMG_RESULT_GONE;
        case EBUSY:
        case EAGAIN:
        case EINTR:
        case ENOMEM:
        case ETIMEDOUT:
                return VMG_RESULT_TRANSIENT;
        default:
                return VMG_RESULT_PERMANENT;
        }
}

const char *vmg_act_class_name(enum vmg_result_class c) {
        switch (c) {
        case VMG_RESULT_OK: return "ok";
        case VMG_RESULT_GONE: return "gone";
        case VMG_RESULT_TRANSIENT: return "transient";
        case VMG_RESULT_PERMANENT: return "permanent";
        }
        return "?";
}

int vmg_act_write_default(int dirfd, const char *relpath, const char *value, void *userdata) {
        (void) userdata;
        int fd = vmg_open_beneath(dirfd, relpath, O_WRONLY);
        if (fd < 0)
                return fd;
        /* A cgroup file takes one value per write(2): never split it. */
        size_t len = strlen(value);
        ssize_t w = write(fd, value, len);
        int r = w < 0 ? -errno : (size_t) w != len ? -EIO : 0;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        return r;
}

static int read_at(int dirfd, const char *relpath, char **ret) {
        _cleanup_close_ int fd = vmg_open_beneath(dirfd, relpath, O_RDONLY);
        if (fd < 0)
                return fd;
        size_t cap = 4096, len = 0;
        _cleanup_free_ char *buf = malloc(cap);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                if (len + 1 >= cap) {
                        if (cap >= CG_FILE_MAX)
                                return -EFBIG;
                        char *p = realloc(buf, cap * 2);
                        if (!p)
                                return -ENOMEM;
                        buf = p;
                        cap *= 2;
                }
                ssize_t n = read(fd, buf + len, cap - len - 1);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        buf[len] = '\0';
        *ret = TAKE_PTR(buf);
        return 0;
}

static char *strip(char *s) {
        while (*s == ' ' || *s == '\t' || *s == '\n')
                s++;
        size_t n = strlen(s);
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n'))
                s[--n] = '\0';
        return s;
}

enum file_fmt {
        FMT_SCALAR, /* cpu.cfs_quota_us, cpu.max: the whole (stripped) content */
        FMT_V1_DEV, /* blkio.throttle.*_device: "MAJ:MIN VALUE" lines, absent = "0" */
        FMT_IO_MAX, /* io.max: "MAJ:MIN rbps=… wbps=… riops=… wiops=…", absent = all max */
};

static enum file_fmt file_format(const char *path) {
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        if (strcmp(base, "io.max") == 0)
                return FMT_IO_MAX;
        if (strncmp(base, "blkio.throttle.", 15) == 0 && strstr(base, "_device"))
                return FMT_V1_DEV;
        return FMT_SCALAR;
}

static const char *const io_keys[4] = {"rbps", "wbps", "riops", "wiops"};

/* The line of device `key` in a per-device file, or NULL; *rest points after "MAJ:MIN". */
static char *find_dev_line(char *content, const char *key, char **rest) {
        size_t klen = strlen(key);
        for (char *line = content; line && *line;) {
                char *nl = strchr(line, '\n');
                if (nl)
                        *nl = '\0';
                if (strncmp(line, key, klen) == 0 && (line[klen] == ' ' || line[klen] == '\0')) {
                        *rest = line + klen;
                        return line;
                }
                line = nl ? nl + 1 : NULL;
        }
        return NULL;
}

/* Normalises an io.max line's keys (after MAJ:MIN) to all four in kernel order; unknown
 * keys are ignored, missing ones are "max". */
static int io_max_normalize(const char *rest, char vals[4][24]) {
        for (int i = 0; i < 4; i++)
                strcpy(vals[i], "max");
        _cleanup_free_ char *copy = strdup(rest);
        if (!copy)
                return -ENOMEM;
        char *save = NULL;
        for (char *tok = strtok_r(copy, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save)) {
                char *eq = strchr(tok, '=');
                if (!eq)
                        continue;
                *eq = '\0';
                for (int i = 0; i < 4; i++)
                        if (strcmp(tok, io_keys[i]) == 0) {
                                if (strlen(eq + 1) >= sizeof vals[i])
                                        return -EBADMSG;
                                strcpy(vals[i], eq + 1);
                        }
        }
        return 0;
}

static char *io_max_format(char vals[4][24]) {
        char *s = NULL;
        if (asprintf(&s, "rbps=%s wbps=%s riops=%s wiops=%s", vals[0], vals[1], vals[2], vals[3]) < 0)
                return NULL;
        return s;
}

static int io_key_index(const char *k) {
        for (int i = 0; i < 4; i++)
                if (strcmp(k, io_keys[i]) == 0)
                        return i;
        return -1;
}

/* Live value of (path, key) under dirfd, normalised as the journal stores it. */
static int knob_read(int dirfd, const char *path, const char *key, char **ret) {
        _cleanup_free_ char *content = NULL;
        int r = read_at(dirfd, path, &content);
        if (r < 0)
                return r;
        enum file_fmt fmt = file_format(path);
        char *rest = NULL, *v;

        if (fmt == FMT_SCALAR || !key || !*key) {
                v = strdup(strip(content));
        } else if (fmt == FMT_V1_DEV) {
                v = strdup(find_dev_line(content, key, &rest) ? strip(rest) : "0");
        } else {
                /* "MAJ:MIN wbps": one key of the device's line; "MAJ:MIN" (journals written
                 * before keys were journaled one by one): the whole line. */
                char dev[32];
                const char *sub = strchr(key, ' ');
                int sub_i = sub ? io_key_index(sub + 1) : -1;
                if (sub && (sub_i < 0 || (size_t) (sub - key) >= sizeof dev))
                        return -EINVAL;
                snprintf(dev, sizeof dev, "%.*s", sub ? (int) (sub - key) : (int) strlen(key), key);
                char vals[4][24];
                r = io_max_normalize(find_dev_line(content, dev, &rest) ? rest : "", vals);
                if (r < 0)
                        return r;
                v = sub ? strdup(vals[sub_i]) : io_max_format(vals);
        }
        if (!v)
                return -ENOMEM;
        *ret = v;
        return 0;
}

static int knob_write(struct vmg_actuator *a, int dirfd, const char *path, const char *key,
                      const char *value) {
        _cleanup_free_ char *line = NULL;
        if (file_format(path) != FMT_SCALAR && key && *key) {
                /* io.max changes only the keys a write names: "MAJ:MIN wbps" -> "MAJ:MIN wbps=V". */
                bool one_key = file_format(path) == FMT_IO_MAX && strchr(key, ' ');
                if (asprintf(&line, one_key ? "%s=%s" : "%s %s", key, value) < 0)
                        return -ENOMEM;
                value = line;
        }
        return a->write_fn(dirfd, path, value, a->write_userdata);
}

static int root_fd(struct vmg_actuator *a, const char *root) {
        if (a->version == 2)
                return strcmp(root, ROOT_UNIFIED) == 0 ? a->cpu_fd : -1;
        if (strcmp(root, ROOT_CPU) == 0)
                return a->cpu_fd;
        if (strcmp(root, ROOT_BLKIO) == 0)
                return a->blkio_fd;
        return -1;
}

static int backend_read(void *userdata, const struct vmg_journal_entry *e, char **ret) {
        struct vmg_actuator *a = userdata;
        int fd = root_fd(a, e->root);
        if (fd < 0)
                return log_error_errno(-EINVAL, "actuator: VM %s: journal names hierarchy \"%s\" "
                                       "this host does not use (cgroup v%d)", e->name, e->root,
                                       a->version);
        return knob_read(fd, e->path, e->key, ret);
}

static int backend_write(void *userdata, const struct vmg_journal_entry *e, const char *value) {
        struct vmg_actuator *a = userdata;
        int fd = root_fd(a, e->root);
        if (fd < 0)
                return -EINVAL;
        return knob_write(a, fd, e->path, e->key, value);
}

void vmg_act_journal_backend(struct vmg_actuator *a, struct vmg_journal_backend *ret) {
        *ret = (struct vmg_journal_backend) {
                .kind = "cgroup", .read = backend_read, .write = backend_write, .userdata = a,
        };
}

int vmg_actuator_new(const struct vmg_actuator_config *cfg, struct vmg_actuator **ret) {
        if (!cfg->journal || !cfg->cpu_root || (cfg->cgroup_version != 1 && cfg->cgroup_version != 2) ||
            (cfg->cgroup_version == 1 && !cfg->blkio_root))
                return -EINVAL;
        struct vmg_actuator *a = calloc(1, sizeof *a);
        if (!a)
                return -ENOMEM;
        a->version = cfg->cgroup_version;
        a->journal = cfg->journal;
        a->write_fn = cfg->write_fn ? cfg->write_fn : vmg_act_write_default;
        a->write_userdata = cfg->write_userdata;
        a->blkio_fd = -1;
        a->cpu_fd = open(cfg->cpu_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (a->cpu_fd < 0) {
                int r = log_error_errno(-errno, "actuator: cannot open cgroup root %s: %m", cfg->cpu_root);
                vmg_actuator_free(a);
                return r;
        }
        if (a->version == 1) {
                a->blkio_fd = open(cfg->blkio_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (a->blkio_fd < 0) {
                        int r = log_error_errno(-errno, "actuator: cannot open cgroup root %s: %m",
                                                cfg->blkio_root);
                        vmg_actuator_free(a);
                        return r;
                }
        }
        *ret = a;
        return 0;
}

struct vmg_actuator *vmg_actuator_free(struct vmg_actuator *a) {
        if (!a)
                return NULL;
        if (a->cpu_fd >= 0)
                close(a->cpu_fd);
        if (a->blkio_fd >= 0)
                close(a->blkio_fd);
        free(a);
        return NULL;
}

static char *join(const char *dir, const char *file) {
        char *s = NULL;
        if (!dir || !*dir || strcmp(dir, ".") == 0)
                return strdup(file);
        if (asprintf(&s, "%s/%s", dir, file) < 0)
                return NULL;
        return s;
}

static void log_write_error(const struct vmg_act_vm *vm, const char *path, const char *key,
                            const char *value, int r) {
        enum vmg_result_class c = vmg_act_classify(r);
        const char *sep = key && *key ? " " : "";
        if (c == VMG_RESULT_GONE)
                log_debug_errno(r, "actuator: VM %s (%s) gone while writing \"%s%s%s\" to %s: %m",
                                vm->name, vm->uuid, key ? key : "", sep, value, path);
        else if (c == VMG_RESULT_TRANSIENT)
                log_warning_errno(r, "actuator: VM %s (%s): writing \"%s%s%s\" to %s failed (%m); "
                                  "retrying next tick", vm->name, vm->uuid, key ? key : "", sep,
                                  value, path);
        else
                log_error_errno(r, "actuator: VM %s (%s): writing \"%s%s%s\" to %s failed "
                                "permanently: %m", vm->name, vm->uuid, key ? key : "", sep, value, path);
}

/* Read, compare, remember, write. 1 written, 0 unchanged, -errno. */
static int apply(struct vmg_actuator *a, const struct vmg_act_vm *vm, const char *root, int dirfd,
                 const char *path, const char *key, const char *live, const char *want) {
        struct vmg_knob k = {.kind = "cgroup", .root = root, .path = path, .key = key ? key : ""};
        if (strcmp(live, want) == 0)
                return 0;

        const struct vmg_journal_entry *e = vmg_journal_find(a->journal, vm->uuid, &k);
        enum vmg_journal_verdict v = e ? vmg_journal_judge(e, live) : VMG_JV_RESTORE;
        if (v != VMG_JV_RESTORE) {
                /* Someone changed the value while we held it: their value is the one to
                 * put back when we let go. (Live already the original, e.g. after a release
                 * written as a value: nothing to say, the entry is just stale.) */
                if (v == VMG_JV_DRIFT)
                        log_warning("actuator: VM %s (%s): %s %s is \"%s\", not the \"%s\" vmguard "
                                    "wrote; treating it as the new original", vm->name, vm->uuid,
                                    path, k.key, live, e->written);
                int r = vmg_journal_drop(a->journal, vm->uuid, &k);
                if (r < 0)
                        return r;
        }
        int r = vmg_journal_record(a->journal, vm->uuid, vm->name, &k, live, want);
        if (r < 0)
                return log_error_errno(r, "actuator: VM %s (%s): cannot remember original \"%s\" of "
                                       "%s %s (%m): not writing \"%s\"", vm->name, vm->uuid, live,
                                       path, k.key, want);
        r = knob_write(a, dirfd, path, key, want);
        if (r < 0) {
                log_write_error(vm, path, key, want, r);
                (void) vmg_journal_unrecord(a->journal, vm->uuid, &k);
                return r;
        }
        vmg_journal_committed(a->journal, vm->uuid, &k);
        log_info("actuator: VM %s (%s): %s%s%s: \"%s\" -> \"%s\"", vm->name, vm->uuid, path,
                 key && *key ? " " : "", key ? key : "", live, want);
        return 1;
}

static int read_u64_at(int dirfd, const char *path, long long *ret) {
        _cleanup_free_ char *s = NULL;
        int r = knob_read(dirfd, path, NULL, &s);
        if (r < 0)
                return r;
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno || end == s || *end)
                return -EBADMSG;
        *ret = v;
        return 0;
}

static long long quota_for(double cores, long long period) {
        double q = round(cores * (double) period);
        return q < CFS_QUOTA_MIN_US ? CFS_QUOTA_MIN_US : (long long) q;
}

/* v2 cpu.max: "QUOTA PERIOD" with QUOTA "max" for none. */
static int parse_cpu_max(const char *s, long long *quota, long long *period) {
        char q[32];
        if (sscanf(s, "%31s %lld", q, period) != 2 || *period <= 0)
                return -EBADMSG;
        if (strcmp(q, "max") == 0) {
                *quota = -1;
                return 0;
        }
        char *end;
        *quota = strtoll(q, &end, 10);
        return *end || *quota <= 0 ? -EBADMSG : 0;
}

static int cpu_paths(struct vmg_actuator *a, const struct vmg_act_vm *vm, char **quota_path,
                     char **period_path) {
        if (a->version == 1) {
                *quota_path = join(vm->cpu_dir, "cpu.cfs_quota_us");
                *period_path = join(vm->cpu_dir, "cpu.cfs_period_us");
                return *quota_path && *period_path ? 0 : -ENOMEM;
        }
        *quota_path = join(vm->cpu_dir, "cpu.max");
        *period_path = NULL;
        return *quota_path ? 0 : -ENOMEM;
}

int vmg_act_get_cpu(struct vmg_actuator *a, const struct vmg_act_vm *vm, double *ret_cores) {
        _cleanup_free_ char *qp = NULL, *pp = NULL, *s = NULL;
        long long quota, period;
        int r = cpu_paths(a, vm, &qp, &pp);
        if (r < 0)
                return r;
        if (a->version == 1) {
                r = read_u64_at(a->cpu_fd, pp, &period);
                if (r >= 0)
                        r = read_u64_at(a->cpu_fd, qp, &quota);
        } else {
                r = knob_read(a->cpu_fd, qp, NULL, &s);
                if (r >= 0)
                        r = parse_cpu_max(s, &quota, &period);
        }
        if (r < 0)
                return r;
        if (period <= 0)
                return -EBADMSG;
        *ret_cores = quota < 0 ? 0 : (double) quota / (double) period;
        return 0;
}

int vmg_act_set_cpu(struct vmg_actuator *a, const struct vmg_act_vm *vm, double cores) {
        _cleanup_free_ char *qp = NULL, *pp = NULL, *live = NULL;
        char want[64];
        long long period, quota;
        int r = cpu_paths(a, vm, &qp, &pp);
        if (r < 0)
                return r;
        if (!isfinite(cores))
                return -EINVAL;

        const char *at = qp;
        r = knob_read(a->cpu_fd, qp, NULL, &live);
        if (r < 0)
                goto fail;
        if (a->version == 1) {
                at = pp;
                r = read_u64_at(a->cpu_fd, pp, &period);
                if (r < 0)
                        goto fail;
                if (period <= 0) {
                        r = -EBADMSG;
                        goto fail;
                }
                if (cores <= 0)
                        snprintf(want, sizeof want, "-1");
                else
                        snprintf(want, sizeof want, "%lld", quota_for(cores, period));
                /* Compare as numbers: the kernel prints what it parsed. */
                char *end;
                long long cur = strtoll(live, &end, 10);
                if (*end == '\0' && end != live && strtoll(want, NULL, 10) == cur)
                        return 0;
                return apply(a, vm, ROOT_CPU, a->cpu_fd, qp, NULL, live, want);
        }
        r = parse_cpu_max(live, &quota, &period);
        if (r < 0)
                goto fail;
        if (cores <= 0)
                snprintf(want, sizeof want, "max %lld", period);
        else
                snprintf(want, sizeof want, "%lld %lld", quota_for(cores, period), period);
        return apply(a, vm, ROOT_UNIFIED, a->cpu_fd, qp, NULL, live, want);

fail:
        if (vmg_act_classify(r) == VMG_RESULT_GONE)
                return log_debug_errno(r, "actuator: VM %s (%s): %s gone: %m", vm->name, vm->uuid, at);
        return log_error_errno(r, "actuator: VM %s (%s): cannot read %s: %m", vm->name, vm->uuid, at);
}

static void limit_str(uint64_t v, bool v2, char *buf, size_t n) {
        if (v == VMG_IO_UNLIMITED)
                snprintf(buf, n, v2 ? "max" : "0");
        else
                snprintf(buf, n, "%" PRIu64, v);
}

static int set_io_v1(struct vmg_actuator *a, const struct vmg_act_vm *vm, const char *dev,
                     const struct vmg_io_limit *lim) {
        static const char *const files[4] = {
                "blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device",
                "blkio.throttle.read_iops_device", "blkio.throttle.write_iops_device",
        };
        const uint64_t vals[4] = {lim->rbps, lim->wbps, lim->riops, lim->wiops};
        int any = 0;
        for (int i = 0; i < 4; i++) {
                if (vals[i] == VMG_IO_KEEP)
                        continue;
                _cleanup_free_ char *path = join(vm->blkio_dir, files[i]), *live = NULL;
                char want[32];
                if (!path)
                        return -ENOMEM;
                limit_str(vals[i], false, want, sizeof want);
                int r = knob_read(a->blkio_fd, path, dev, &live);
                if (r < 0) {
                        if (vmg_act_classify(r) == VMG_RESULT_GONE)
                                return log_debug_errno(r, "actuator: VM %s (%s): %s gone: %m",
                                                       vm->name, vm->uuid, path);
                        return log_error_errno(r, "actuator: VM %s (%s): cannot read %s: %m",
                                               vm->name, vm->uuid, path);
                }
                r = apply(a, vm, ROOT_BLKIO, a->blkio_fd, path, dev, live, want);
                if (r < 0)
                        return r;
                any |= r;
        }
        return any;
}

/* One journal entry and one write per io.max key ("MAJ:MIN wbps"): an admin's change to
 * another key of the same line (rbps while vmguard holds wbps) is theirs, kept at release,
 * and never taken for vmguard's own value. */
static int set_io_v2(struct vmg_actuator *a, const struct vmg_act_vm *vm, const char *dev,
                     const struct vmg_io_limit *lim) {
        _cleanup_free_ char *path = join(vm->blkio_dir, "io.max");
        if (!path)
                return -ENOMEM;
        const uint64_t lv[4] = {lim->rbps, lim->wbps, lim->riops, lim->wiops};
        int any = 0;
        for (int i = 0; i < 4; i++) {
                if (lv[i] == VMG_IO_KEEP)
                        continue;
                _cleanup_free_ char *live = NULL;
                char key[48], want[24];
                snprintf(key, sizeof key, "%s %s", dev, io_keys[i]);
                limit_str(lv[i], true, want, sizeof want);
                int r = knob_read(a->cpu_fd, path, key, &live);
                if (r < 0) {
                        if (vmg_act_classify(r) == VMG_RESULT_GONE)
                                return log_debug_errno(r, "actuator: VM %s (%s): %s gone: %m", vm->name,
                                                       vm->uuid, path);
                        return log_error_errno(r, "actuator: VM %s (%s): cannot read %s: %m", vm->name,
                                               vm->uuid, path);
                }
                r = apply(a, vm, ROOT_UNIFIED, a->cpu_fd, path, key, live, want);
                if (r < 0)
                        return r;
                any |= r;
        }
        return any;
}

int vmg_act_set_io(struct vmg_actuator *a, const struct vmg_act_vm *vm, unsigned major,
                   unsigned minor, const struct vmg_io_limit *lim) {
        char dev[32];
        snprintf(dev, sizeof dev, "%u:%u", major, minor);
        return a->version == 1 ? set_io_v1(a, vm, dev, lim) : set_io_v2(a, vm, dev, lim);
}

int vmg_act_release(struct vmg_actuator *a, const char *uuid) {
        struct vmg_journal_backend b;
        vmg_act_journal_backend(a, &b);
        return vmg_journal_restore(a->journal, uuid, NULL, &b, 1);
}

int vmg_act_restore_all(struct vmg_actuator *a) {
        return vmg_act_release(a, NULL);
}
