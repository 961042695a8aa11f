#include "controller/act/svcprio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/macros.h"
#include "common/paths.h"
#include "probes/cgroup.h"

#define GROUP "vmguard.services"

struct moved {
        pid_t pid;
        char *service;
        char *origin; /* cgroup path relative to the hierarchy root, "" for the root */
};

struct vmg_svcprio {
        char *cpu_root, *proc_root, *state_dir;
        int version;
        struct moved *moved;
        size_t n_moved;
};

static int write_file(const char *path, const char *value) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        ssize_t n = write(fd, value, strlen(value));
        if (n < 0)
                return -errno;
        return (size_t) n == strlen(value) ? 0 : -EIO;
}

/* The process's cgroup in our hierarchy: the "cpu" line on v1, the "0::" line on v2. */
static int origin_of(const struct vmg_svcprio *s, pid_t pid, char **ret) {
        return vmg_pid_cgroup(s->proc_root, pid, s->version == 2 ? NULL : "cpu", ret);
}

static int save_record(const struct vmg_svcprio *s) {
        json_t *arr = json_array();
        for (size_t i = 0; i < s->n_moved; i++)
                json_array_append_new(arr, json_pack("{s:i, s:s, s:s}", "pid", (int) s->moved[i].pid,
                                                     "service", s->moved[i].service, "origin",
                                                     s->moved[i].origin));
        /* fsynced like the journal: after a crash this record is all that says where the
         * services' processes came from, so they can be moved back. */
        char dst[600];
        snprintf(dst, sizeof dst, "%s/%s", s->state_dir, VMG_SERVICES_FILE);
        char *text = arr ? json_dumps(arr, JSON_COMPACT) : NULL;
        json_decref(arr);
        int r = text ? vmg_write_file_atomic_path(dst, text, strlen(text), 0600) : -ENOMEM;
        free(text);
        if (r < 0)
                log_error_errno(r, "cannot save where services came from in %s: %m", dst);
        return r;
}

static int add_moved(struct vmg_svcprio *s, pid_t pid, const char *service, const char *origin) {
        struct moved *p = realloc(s->moved, (s->n_moved + 1) * sizeof *p);
        if (!p)
                return -ENOMEM;
        s->moved = p;
        s->moved[s->n_moved] = (struct moved){ pid, strdup(service), strdup(origin) };
        if (!s->moved[s->n_moved].service || !s->moved[s->n_moved].origin)
                return -ENOMEM;
        s->n_moved++;
        return 0;
}

static void load_record(struct vmg_svcprio *s) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", s->state_dir, VMG_SERVICES_FILE);
        json_error_t e;
        json_t *arr = json_load_file(path, 0, &e);
        if (!arr)
                return;
        size_t i;
        json_t *v;
        json_array_foreach(arr, i, v) {
                json_int_t pid;
                const char *svc, *origin;
                if (json_unpack(v, "{s:I, s:s, s:s}", "pid", &pid, "service", &svc, "origin", &origin) == 0 &&
                    pid > 0 && !strstr(origin, ".."))
                        (void) add_moved(s, (pid_t) pid, svc, origin);
        }
        json_decref(arr);
}

int vmg_svcprio_new(const char *cpu_root, int version, const char *proc_root,
                    const char *state_dir, struct vmg_svcprio **ret) {
        struct vmg_svcprio *s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->cpu_root = strdup(cpu_root);
        s->proc_root = strdup(proc_root ? proc_root : VMG_PROC_ROOT);
        s->state_dir = strdup(state_dir);
        s->version = version;
        if (!s->cpu_root || !s->proc_root || !s->state_dir) {
                vmg_svcprio_free(s);
                return -ENOMEM;
        }
        load_record(s);
        *ret = s;
        return 0;
}

struct vmg_svcprio *vmg_svcprio_free(struct vmg_svcprio *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_moved; i++) {
                free(s->moved[i].service);
                free(s->moved[i].origin);
        }
        free(s->moved);
        free(s->cpu_root);
        free(s->proc_root);
        free(s->state_dir);
        free(s);
        return NULL;
}

static bool valid_name(const char *n) {
        return *n && strcmp(n, ".") && strcmp(n, "..") &&
               strspn(n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-@") == strlen(n);
}

int vmg_svcprio_raise(struct vmg_svcprio *s, const char *name, const pid_t *pids, size_t n,
                      int priority) {
        if (!valid_name(name) || priority < 1 || priority > 10)
                return -EINVAL;
        char dir[700], file[800], value[32];
        snprintf(dir, sizeof dir, "%s/%s", s->cpu_root, GROUP);
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return log_warning_errno(errno, "cannot create %s: %m", dir);
        snprintf(dir, sizeof dir, "%s/%s/%s", s->cpu_root, GROUP, name);
        bool created = mkdir(dir, 0755) == 0;
        if (!created && errno != EEXIST)
                return log_warning_errno(errno, "cannot create %s: %m", dir);
        if (created) {
                if (s->version == 2) {
                        snprintf(file, sizeof file, "%s/cpu.weight", dir);
                        snprintf(value, sizeof value, "%d", 100 * priority);
                } else {
                        snprintf(file, sizeof file, "%s/cpu.shares", dir);
                        snprintf(value, sizeof value, "%d", 1024 * priority);
                }
                int r = write_file(file, value);
                /* v2 without the cpu controller enabled has no cpu.weight: the move still
                 * separates the service, but buys no weight; say so once. */
                if (r < 0)
                        log_warning_errno(r, "service %s: cannot write %s to %s: %m", name, value, file);
        }
        char self[200];
        snprintf(self, sizeof self, "%s/%s", GROUP, name);
        int moved = 0;
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *origin = NULL;
                int r = origin_of(s, pids[i], &origin);
                if (r == -ESRCH)
                        continue;
                if (r < 0)
                        return log_warning_errno(r, "service %s: cannot tell the cgroup of pid %d: %m", name, (int) pids[i]);
                if (strcmp(origin, self) == 0)
                        continue;
                /* Remember before moving: a crash right after must still find its way back. */
                r = add_moved(s, pids[i], name, origin);
                if (r >= 0)
                        r = save_record(s);
                if (r < 0)
                        return r;
                snprintf(file, sizeof file, "%s/cgroup.procs", dir);
                snprintf(value, sizeof value, "%d", (int) pids[i]);
                r = write_file(file, value);
                if (r == -ESRCH)
                        continue;
                if (r < 0)
                        return log_warning_errno(r, "service %s: cannot move pid %d: writing %s to %s: %m", name,
                                                 (int) pids[i], value, file);
                log_info("service %s: pid %d moved from /%s to /%s (%s %d) for a larger CPU share", name,
                         (int) pids[i], origin, self, s->version == 2 ? "cpu.weight" : "cpu.shares",
                         s->version == 2 ? 100 * priority : 1024 * priority);
                moved++;
        }
        return moved;
}

int vmg_svcprio_restore_all(struct vmg_svcprio *s) {
        int ret = 0, n = 0;
        char file[800], value[32];
        for (size_t i = 0; i < s->n_moved; i++) {
                const struct moved *m = &s->moved[i];
                _cleanup_free_ char *now = NULL;
                char mine[200];
                snprintf(mine, sizeof mine, "%s/%s", GROUP, m->service);
                /* Only processes still in our group: one an admin moved elsewhere stays. */
                if (origin_of(s, m->pid, &now) < 0 || strcmp(now, mine) != 0)
                        continue;
                snprintf(file, sizeof file, "%s/%s%scgroup.procs", s->cpu_root, m->origin, *m->origin ? "/" : "");
                snprintf(value, sizeof value, "%d", (int) m->pid);
                int r = write_file(file, value);
                if (r < 0 && r != -ESRCH) {
                        log_warning_errno(r, "service %s: cannot move pid %d back: writing %s to %s: %m", m->service,
                                          (int) m->pid, value, file);
                        if (!ret)
                                ret = r;
                        continue;
                }
                n++;
        }
        /* Remove our groups (only empty ones go: rmdir refuses the others). */
        char dir[700];
        snprintf(dir, sizeof dir, "%s/%s", s->cpu_root, GROUP);
        DIR *d = opendir(dir);
        if (d) {
                struct dirent *de;
                while ((de = readdir(d)))
                        if (de->d_type == DT_DIR && de->d_name[0] != '.') {
                                char sub[1000];
                                snprintf(sub, sizeof sub, "%s/%s", dir, de->d_name);
                                if (rmdir(sub) < 0)
                                        log_warning_errno(errno, "cannot remove %s: %m", sub);
                        }
                closedir(d);
                if (rmdir(dir) < 0 && errno != ENOENT)
                        log_warning_errno(errno, "cannot remove %s: %m", dir);
        }
        for (size_t i = 0; i < s->n_moved; i++) {
                free(s->moved[i].service);
                free(s->moved[i].origin);
        }
        s->n_moved = 0;
        char rec[600];
        snprintf(rec, sizeof rec, "%s/%s", s->state_dir, VMG_SERVICES_FILE);
        (void) unlink(rec);
        if (n > 0)
                log_info("moved %d service process(es) back to their own cgroups", n);
        return ret < 0 ? ret : n;
}
