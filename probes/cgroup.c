/* cgroup probes; see cgroup.h for the contracts. About 920 lines, one file on purpose:
 * hierarchy discovery (mountinfo), the symlink-refusing walk that finds a domain's group,
 * and the per-VM handle with its counter parsers all work on the private context and the
 * vm_files table; split, both would move into a header with no user outside this module. */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "common/log.h"
#include "common/fileio.h"
#include "common/macros.h"
#include "common/paths.h"
#include "probes/cgroup.h"
#include "probes/procfs.h"

/* Deep enough for machine.slice/<tenant>.slice/machine-…scope and libvirt's custom
 * partitions (/machine/<partition>/…), shallow enough that a host with thousands of
 * service cgroups is walked in milliseconds, once per VM start. */
#define FIND_MAX_DEPTH 4
#define FIND_MAX_DIRS 8192
/* cpu.stat ~200 bytes, io.stat ~100 bytes per device, blkio ~50 bytes per line. */
#define READ_BUF 8192
/* <linux/magic.h> CGROUP_SUPER_MAGIC and CGROUP2_SUPER_MAGIC. */
#define CGROUP_SUPER_MAGIC_V1 0x27e0eb
#define CGROUP_SUPER_MAGIC_V2 0x63677270

static const char *const hier_names[VMG_CG_N] = {
        [VMG_CG_CPU] = "cpu",         [VMG_CG_CPUACCT] = "cpuacct",
        [VMG_CG_BLKIO] = "blkio",     [VMG_CG_NET_CLS] = "net_cls",
        [VMG_CG_SYSTEMD] = "name=systemd", [VMG_CG_UNIFIED] = "unified",
};

struct vmg_cgroup_ctx {
        char *proc;
        char *path[VMG_CG_N];
        int fd[VMG_CG_N];
        bool v2_at_root;
        char *v2_controllers;
        char *v2_subtree;
};

static ssize_t pread_text(int fd, char *buf, size_t size) {
        return vmg_pread_text(fd, buf, size);
}

static ssize_t read_text_at(int dirfd, const char *path, char *buf, size_t size) {
        return vmg_read_text_at(dirfd, path, O_NOFOLLOW, buf, size);
}

/* mountinfo escapes space, tab, newline and backslash as \NNN octal. */
static void unescape_octal(char *s) {
        char *w = s;
        for (char *r = s; *r;) {
                if (r[0] == '\\' && r[1] >= '0' && r[1] <= '7' && r[2] >= '0' && r[2] <= '7' &&
                    r[3] >= '0' && r[3] <= '7') {
                        *w++ = (char) (((r[1] - '0') << 6) | ((r[2] - '0') << 3) | (r[3] - '0'));
                        r += 4;
                } else
                        *w++ = *r++;
        }
        *w = '\0';
}

static bool in_comma_list(const char *list, const char *word) {
        size_t wl = strlen(word);
        for (const char *s = list; s && *s;) {
                const char *e = strchrnul(s, ',');
                if ((size_t) (e - s) == wl && strncmp(s, word, wl) == 0)
                        return true;
                s = *e ? e + 1 : e;
        }
        return false;
}

static bool in_space_list(const char *list, const char *word) {
        size_t wl = strlen(word);
        for (const char *s = list; s && *s;) {
                while (*s && isspace((unsigned char) *s))
                        s++;
                const char *e = s;
                while (*e && !isspace((unsigned char) *e))
                        e++;
                if ((size_t) (e - s) == wl && strncmp(s, word, wl) == 0)
                        return true;
                s = e;
        }
        return false;
}

/* A mount point under /sys/fs/cgroup moves to root; others keep their place under root
 * as if root were "/" (only meaningful in tests, where root is not the default). */
static int rebase(const char *root, const char *mnt, char **ret) {
        size_t dl = strlen(VMG_CGROUP_ROOT);
        int r;
        if (strcmp(root, VMG_CGROUP_ROOT) == 0)
                r = asprintf(ret, "%s", mnt);
        else if (strncmp(mnt, VMG_CGROUP_ROOT, dl) == 0 && (mnt[dl] == '\0' || mnt[dl] == '/'))
                r = asprintf(ret, "%s%s", root, mnt + dl);
        else
                r = asprintf(ret, "%s%s", root, mnt);
        return r < 0 ? -ENOMEM : 0;
}

static int parse_mountinfo(struct vmg_cgroup_ctx *c, const char *root, FILE *f) {
        _cleanup_free_ char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, f) > 0) {
                char *fields[16];
                int n = 0;
                char *save = NULL;
                for (char *t = strtok_r(line, " \n", &save); t && n < 16; t = strtok_r(NULL, " \n", &save))
                        fields[n++] = t;
                int sep = -1;
                for (int i = 6; i < n; i++)
                        if (strcmp(fields[i], "-") == 0) {
                                sep = i;
                                break;
                        }
                /* fstype, source and super options must all follow the separator: a
                 * truncated line would otherwise read fields[n], which was never set. */
                if (sep < 0 || sep + 3 >= n)
                        continue;
                const char *fstype = fields[sep + 1], *super = fields[sep + 3];
                char *mnt = fields[4];
                unescape_octal(mnt);

                bool hit[VMG_CG_N] = { false };
                if (strcmp(fstype, "cgroup2") == 0)
                        hit[VMG_CG_UNIFIED] = true;
                else if (strcmp(fstype, "cgroup") == 0)
                        for (int h = 0; h < VMG_CG_UNIFIED; h++)
                                hit[h] = in_comma_list(super, hier_names[h]);
                else
                        continue;
                for (int h = 0; h < VMG_CG_N; h++) {
                        if (!hit[h] || c->path[h]) /* first mount wins */
                                continue;
                        int r = rebase(root, mnt, &c->path[h]);
                        if (r < 0)
                                return r;
                        if (h == VMG_CG_UNIFIED)
                                c->v2_at_root = strcmp(mnt, VMG_CGROUP_ROOT) == 0;
                }
        }
        /* getline() returns -1 for a failed allocation too: that is not the end of the file
         * (and "no cgroup hierarchy", -ENOENT, would be the wrong error). */
        if (!feof(f))
                return errno > 0 ? -errno : -EIO;
        return 0;
}

static char *read_small_at(int dirfd, const char *file) {
        char buf[1024];
        if (read_text_at(dirfd, file, buf, sizeof(buf)) < 0)
                return NULL;
        return strdup(buf);
}

int vmg_cgroup_ctx_new(const struct vmg_cgroup_paths *paths, struct vmg_cgroup_ctx **ret) {
        const char *root = paths && paths->root ? paths->root : VMG_CGROUP_ROOT;
        const char *mi = paths && paths->mountinfo ? paths->mountinfo : "/proc/self/mountinfo";
        struct vmg_cgroup_ctx *c = calloc(1, sizeof(*c));
        int r;
        bool any = false;

        if (!c)
                return -ENOMEM;
        for (int h = 0; h < VMG_CG_N; h++)
                c->fd[h] = -1;
        c->proc = strdup(paths && paths->proc ? paths->proc : VMG_PROC_ROOT);
        if (!c->proc) {
                r = -ENOMEM;
                goto fail;
        }
        {
                _cleanup_fclose_ FILE *f = fopen(mi, "re");
                if (!f) {
                        r = log_error_errno(errno, "Cannot open %s: %m", mi);
                        goto fail;
                }
                r = parse_mountinfo(c, root, f);
                if (r < 0)
                        goto fail;
        }
        for (int h = 0; h < VMG_CG_N; h++) {
                if (!c->path[h])
                        continue;
                c->fd[h] = open(c->path[h], O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (c->fd[h] < 0) {
                        log_debug_errno(errno, "cgroup hierarchy %s listed in %s but %s cannot be opened: %m",
                                        hier_names[h], mi, c->path[h]);
                        free(c->path[h]);
                        c->path[h] = NULL;
                        continue;
                }
                any = true;
        }
        if (!any) {
                r = log_error_errno(ENOENT, "No cgroup hierarchy found via %s under %s", mi, root);
                goto fail;
        }
        if (c->fd[VMG_CG_UNIFIED] >= 0) {
                c->v2_controllers = read_small_at(c->fd[VMG_CG_UNIFIED], "cgroup.controllers");
                c->v2_subtree = read_small_at(c->fd[VMG_CG_UNIFIED], "cgroup.subtree_control");
        }
        *ret = c;
        return 0;
fail:
        vmg_cgroup_ctx_free(c);
        return r;
}

struct vmg_cgroup_ctx *vmg_cgroup_ctx_free(struct vmg_cgroup_ctx *c) {
        if (!c)
                return NULL;
        for (int h = 0; h < VMG_CG_N; h++) {
                if (c->fd[h] >= 0)
                        close(c->fd[h]);
                free(c->path[h]);
        }
        free(c->v2_controllers);
        free(c->v2_subtree);
        free(c->proc);
        free(c);
        return NULL;
}

const char *vmg_cgroup_hier_path(const struct vmg_cgroup_ctx *c, enum vmg_cg_hier h) {
        return h < VMG_CG_N ? c->path[h] : NULL;
}

int vmg_cgroup_hier_fd(const struct vmg_cgroup_ctx *c, enum vmg_cg_hier h) {
        return h < VMG_CG_N ? c->fd[h] : -1;
}

bool vmg_cgroup_is_pure_v2(const struct vmg_cgroup_ctx *c) {
        return c->path[VMG_CG_UNIFIED] && c->v2_at_root && !c->path[VMG_CG_CPU] &&
               !c->path[VMG_CG_CPUACCT] && !c->path[VMG_CG_BLKIO] && !c->path[VMG_CG_NET_CLS];
}

bool vmg_cgroup_v2_available(const struct vmg_cgroup_ctx *c, const char *controller) {
        return in_space_list(c->v2_controllers, controller);
}

bool vmg_cgroup_v2_enabled(const struct vmg_cgroup_ctx *c, const char *controller) {
        return in_space_list(c->v2_subtree, controller);
}

int vmg_cgroup_unit_escape(const char *s, char **ret) {
        char *out = malloc(strlen(s) * 4 + 1), *w = out;
        if (!out)
                return -ENOMEM;
        for (const char *p = s; *p; p++) {
                unsigned char ch = (unsigned char) *p;
                bool plain = isascii(ch) && (isalnum(ch) || ch == ':' || ch == '_' || ch == '.');
                /* a leading '.' would make a hidden unit file */
                if (ch == '.' && p == s)
                        plain = false;
                if (ch == '/')
                        *w++ = '-';
                else if (plain)
                        *w++ = (char) ch;
                else
                        w += sprintf(w, "\\x%02x", ch);
        }
        *w = '\0';
        *ret = out;
        return 0;
}

int vmg_cgroup_machine_name(const char *driver, int id, const char *name, char **ret) {
        /* libvirt counts the 64-byte limit on the whole name, prefix included. */
        enum { LIMIT = 64 };
        char buf[LIMIT + 64];
        int len = snprintf(buf, sizeof(buf), "%s-%d-", driver, id);
        if (len < 0 || len >= (int) sizeof(buf))
                return -EINVAL;
        bool after_sep = true; /* no '-'/'.' directly after the prefix or another one */
        for (const char *p = name; *p && len < LIMIT; p++) {
                unsigned char ch = (unsigned char) *p;
                if (ch == '-' || ch == '.') {
                        if (!after_sep)
                                buf[len++] = (char) ch;
                        after_sep = true;
                        continue;
                }
                if (!isascii(ch) || !isalnum(ch))
                        continue;
                buf[len++] = (char) ch;
                after_sep = false;
        }
        while (len > 0 && (buf[len - 1] == '-' || buf[len - 1] == '.'))
                len--;
        buf[len] = '\0';
        *ret = strdup(buf);
        return *ret ? 0 : -ENOMEM;
}

struct walk_state {
        vmg_cgroup_walk_fn visit;
        void *userdata;
        unsigned max_depth, max_dirs, visited;
        char path[4096];
};

/* Depth-first below dirfd, whose path relative to the walk's start is st->path (length
 * len). Children are opened with O_NOFOLLOW, so symlinked directories are never entered
 * or shown to visit. Returns 0 (go on), VMG_CG_WALK_STOP, or -errno. */
static int walk_dir(int dirfd, struct walk_state *st, size_t len, unsigned depth) {
        int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                return -ENOMEM;
        }
        int r = 0;
        struct dirent *de;
        while (r == 0 && (de = readdir(d))) {
                if (de->d_name[0] == '.' || (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN))
                        continue;
                /* Counted before the open: a host full of unreadable entries still ends. */
                if (++st->visited > st->max_dirs)
                        break;
                int cfd = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (cfd < 0)
                        continue; /* a symlink (ELOOP), a file, or removed meanwhile */
                size_t nl = strlen(de->d_name);
                if (len + nl + 2 < sizeof(st->path)) {
                        if (len)
                                st->path[len] = '/';
                        memcpy(st->path + len + (len ? 1 : 0), de->d_name, nl + 1);
                        size_t clen = len + (len ? 1 : 0) + nl;
                        r = st->visit(cfd, st->path, depth + 1, st->userdata);
                        if (r == 0 && depth + 1 < st->max_depth)
                                r = walk_dir(cfd, st, clen, depth + 1);
                        else if (r == VMG_CG_WALK_PRUNE)
                                r = 0;
                        if (r == 0)
                                st->path[len] = '\0';
                }
                close(cfd);
        }
        closedir(d);
        return r;
}

int vmg_cgroup_walk(int dirfd, unsigned max_depth, unsigned max_dirs, vmg_cgroup_walk_fn visit,
                    void *userdata, char **ret_path) {
        struct walk_state *st = calloc(1, sizeof(*st));
        if (!st)
                return -ENOMEM;
        *st = (struct walk_state){ .visit = visit, .userdata = userdata, .max_depth = max_depth,
                                   .max_dirs = max_dirs };
        int r = max_depth > 0 ? walk_dir(dirfd, st, 0, 0) : 0;
        if (r == VMG_CG_WALK_STOP && ret_path) {
                *ret_path = strdup(st->path);
                if (!*ret_path)
                        r = -ENOMEM;
        }
        free(st);
        return r;
}

/* Stops at the first directory named one of cand[0], cand[1]. */
static int match_name(int dirfd, const char *rel, unsigned depth, void *userdata) {
        const char *const *cand = userdata;
        const char *base = strrchr(rel, '/');
        (void) dirfd;
        (void) depth;
        base = base ? base + 1 : rel;
        return strcmp(base, cand[0]) == 0 || strcmp(base, cand[1]) == 0 ? VMG_CG_WALK_STOP : 0;
}

static bool is_libvirt_child(const char *comp, size_t n) {
        if (n == 7 && strncmp(comp, "libvirt", 7) == 0)
                return true;
        if (n == 8 && strncmp(comp, "emulator", 8) == 0)
                return true;
        const char *prefixes[] = { "vcpu", "iothread" };
        for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++) {
                size_t pl = strlen(prefixes[i]);
                if (n > pl && strncmp(comp, prefixes[i], pl) == 0) {
                        size_t k = pl;
                        while (k < n && isdigit((unsigned char) comp[k]))
                                k++;
                        if (k == n)
                                return true;
                }
        }
        return false;
}

static int open_dir_nofollow(int rootfd, const char *rel, int *ret);

int vmg_pid_cgroup(const char *proc_root, pid_t pid, const char *controller, char **ret) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%d/cgroup", proc_root ? proc_root : VMG_PROC_ROOT, (int) pid);
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f)
                return errno == ENOENT ? -ESRCH : -errno;
        _cleanup_free_ char *line = NULL;
        size_t cap = 0;
        errno = 0;
        while (getline(&line, &cap, f) > 0) {
                line[strcspn(line, "\n")] = '\0';
                char *c1 = strchr(line, ':');
                char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
                if (!c2)
                        continue;
                *c1 = *c2 = '\0';
                const char *ctrls = c1 + 1, *cg = c2 + 1;
                bool match = controller ? in_comma_list(ctrls, controller)
                                        : strcmp(line, "0") == 0 && !*ctrls;
                if (!match)
                        continue;
                while (*cg == '/')
                        cg++;
                *ret = strdup(cg);
                return *ret ? 0 : -ENOMEM;
        }
        return errno == ENOMEM ? -ENOMEM : -ENOENT;
}

/* QEMU's main thread lives in libvirt's emulator/ child: the domain is its parent. */
static int find_from_proc(struct vmg_cgroup_ctx *c, pid_t pid, enum vmg_cg_hier h, char **ret) {
        _cleanup_free_ char *cg = NULL;
        int r = vmg_pid_cgroup(c->proc, pid, h == VMG_CG_UNIFIED ? NULL : hier_names[h], &cg);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return -ENOENT;
        size_t len = strlen(cg);
        for (;;) {
                char *slash = memrchr(cg, '/', len);
                const char *comp = slash ? slash + 1 : cg;
                size_t n = len - (size_t) (comp - cg);
                if (!slash || !is_libvirt_child(comp, n))
                        break;
                len = (size_t) (slash - cg);
        }
        if (len == 0)
                return -ENOENT; /* the root group is everyone's, not the VM's */
        *ret = strndup(cg, len);
        return *ret ? 0 : -ENOMEM;
}

int vmg_cgroup_find_domain(struct vmg_cgroup_ctx *c, const struct vmg_domain_ref *d,
                           enum vmg_cg_hier h, char **ret) {
        _cleanup_free_ char *machine = NULL, *escaped = NULL, *v1name = NULL, *scope = NULL;
        int r;

        if (h >= VMG_CG_N || c->fd[h] < 0)
                return -ENOENT;
        r = vmg_cgroup_machine_name("qemu", d->id, d->name, &machine);
        if (r < 0)
                return r;
        r = vmg_cgroup_unit_escape(machine, &escaped);
        if (r < 0)
                return r;
        if (asprintf(&v1name, "%s.libvirt-qemu", machine) < 0 ||
            asprintf(&scope, "machine-%s.scope", escaped) < 0)
                return -ENOMEM;

        /* Fast path, same answer: when /proc/QEMU_PID/cgroup names a directory with one of
         * the names the walk looks for, the walk would stop there too. The walk visits
         * every group of the host, so opening N guests by walking costs O(N^2): 79 ms of
         * CPU per guest at N = 1000 (BENCHMARKS.md). */
        if (d->qemu_pid > 0) {
                _cleanup_free_ char *p = NULL;
                if (find_from_proc(c, d->qemu_pid, h, &p) == 0) {
                        const char *base = strrchr(p, '/');
                        base = base ? base + 1 : p;
                        int fd = -1;
                        if ((strcmp(base, v1name) == 0 || strcmp(base, scope) == 0) &&
                            open_dir_nofollow(c->fd[h], p, &fd) == 0) {
                                close(fd);
                                log_debug("VM %s (id %d, uuid %s): cgroup %s/%s from %s/%d/cgroup", d->name,
                                          d->id, d->uuid ? d->uuid : "?", c->path[h], p, c->proc,
                                          (int) d->qemu_pid);
                                *ret = TAKE_PTR(p);
                                return 0;
                        }
                }
        }

        const char *cand[2] = { v1name, scope };
        r = vmg_cgroup_walk(c->fd[h], FIND_MAX_DEPTH, FIND_MAX_DIRS, match_name, cand, ret);
        if (r == VMG_CG_WALK_STOP) {
                log_debug("VM %s (id %d, uuid %s): cgroup %s/%s", d->name, d->id,
                          d->uuid ? d->uuid : "?", c->path[h], *ret);
                return 0;
        }
        if (r < 0)
                return r;
        if (d->qemu_pid > 0) {
                r = find_from_proc(c, d->qemu_pid, h, ret);
                if (r == 0)
                        log_debug("VM %s (id %d): cgroup %s/%s from %s/%d/cgroup", d->name, d->id,
                                  c->path[h], *ret, c->proc, (int) d->qemu_pid);
                return r;
        }
        return -ENOENT;
}

enum vm_file {
        F_CPUACCT_USAGE,
        F_V1_CPU_STAT,
        F_V2_CPU_STAT,
        F_BLKIO_BYTES,
        F_BLKIO_IOS,
        F_IO_STAT,
        F_CPU_PRESSURE,
        F_IO_PRESSURE,
        F_N,
};

static const struct {
        enum vmg_cg_hier h;
        const char *name;
} vm_files[F_N] = {
        [F_CPUACCT_USAGE] = { VMG_CG_CPUACCT, "cpuacct.usage" },
        [F_V1_CPU_STAT] = { VMG_CG_CPU, "cpu.stat" },
        [F_V2_CPU_STAT] = { VMG_CG_UNIFIED, "cpu.stat" },
        [F_BLKIO_BYTES] = { VMG_CG_BLKIO, "blkio.throttle.io_service_bytes" },
        [F_BLKIO_IOS] = { VMG_CG_BLKIO, "blkio.throttle.io_serviced" },
        [F_IO_STAT] = { VMG_CG_UNIFIED, "io.stat" },
        [F_CPU_PRESSURE] = { VMG_CG_UNIFIED, "cpu.pressure" },
        [F_IO_PRESSURE] = { VMG_CG_UNIFIED, "io.pressure" },
};

struct vmg_cgroup_vm {
        struct vmg_cgroup_ctx *ctx; /* borrowed, for paths in logs */
        char *name;
        char *dir[VMG_CG_N];
        int dirfd[VMG_CG_N];
        int fd[F_N];
        bool recursive[F_N]; /* the _recursive variant was opened */
        /* On cgroupfs a removed group's open files answer ENODEV, so no fstat() per tick
         * is needed to notice it; at ~3 us a syscall (BENCHMARKS.md) that check was a
         * fifth of the sampling cost. Other file systems (test trees) keep the check. */
        bool needs_nlink_check[VMG_CG_N];
};

struct vmg_cgroup_vm *vmg_cgroup_vm_free(struct vmg_cgroup_vm *vm) {
        if (!vm)
                return NULL;
        for (int i = 0; i < F_N; i++)
                if (vm->fd[i] >= 0)
                        close(vm->fd[i]);
        for (int h = 0; h < VMG_CG_N; h++) {
                if (vm->dirfd[h] >= 0)
                        close(vm->dirfd[h]);
                free(vm->dir[h]);
        }
        free(vm->name);
        free(vm);
        return NULL;
}

/* Opens rel below rootfd one component at a time, refusing symlinks at every step (a
 * cgroup tree has none; one would lead our reads, and the actors' writes, elsewhere). */
/* Each component opened without following a symlink, so a guest-controlled name cannot
 * lead the daemon out of the hierarchy. */
static int open_dir_nofollow(int rootfd, const char *rel, int *ret) {
        int fd = vmg_open_beneath(rootfd, rel, O_RDONLY | O_DIRECTORY);
        if (fd < 0)
                return fd;
        *ret = fd;
        return 0;
}

static int open_vm_file(struct vmg_cgroup_vm *vm, enum vm_file i, const char *name) {
        enum vmg_cg_hier h = vm_files[i].h;
        vm->fd[i] = openat(vm->dirfd[h], name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (vm->fd[i] >= 0)
                return 0;
        int r = -errno;
        /* ENOENT is normal: a controller not enabled there, or no PSI. */
        if (r != -ENOENT)
                log_warning_errno(r, "VM %s: cannot open %s/%s/%s: %m", vm->name, vm->ctx->path[h],
                                  vm->dir[h], name);
        return r;
}

int vmg_cgroup_vm_open_dirs(struct vmg_cgroup_ctx *c, const char *vm_name,
                            const char *const dirs[VMG_CG_N], struct vmg_cgroup_vm **ret) {
        struct vmg_cgroup_vm *vm = calloc(1, sizeof(*vm));
        int r = 0;
        bool any = false;
        if (!vm)
                return -ENOMEM;
        vm->ctx = c;
        for (int i = 0; i < F_N; i++)
                vm->fd[i] = -1;
        for (int h = 0; h < VMG_CG_N; h++)
                vm->dirfd[h] = -1;
        vm->name = strdup(vm_name ? vm_name : "?");
        if (!vm->name) {
                r = -ENOMEM;
                goto fail;
        }
        for (int h = 0; h < VMG_CG_N; h++) {
                if (!dirs[h] || c->fd[h] < 0)
                        continue;
                vm->dir[h] = strdup(dirs[h]);
                if (!vm->dir[h]) {
                        r = -ENOMEM;
                        goto fail;
                }
                r = open_dir_nofollow(c->fd[h], dirs[h], &vm->dirfd[h]);
                if (r < 0) {
                        log_full_errno(r == -ENOENT ? LOG_DEBUG : LOG_WARNING, r,
                                       "VM %s: cannot open cgroup %s/%s: %m", vm->name, c->path[h], dirs[h]);
                        goto fail;
                }
                struct statfs sfs;
                vm->needs_nlink_check[h] = fstatfs(vm->dirfd[h], &sfs) < 0 ||
                                           (sfs.f_type != CGROUP_SUPER_MAGIC_V1 &&
                                            sfs.f_type != CGROUP_SUPER_MAGIC_V2);
                any = true;
        }
        if (!any) {
                r = -ENOENT;
                goto fail;
        }
        for (int i = 0; i < F_N; i++) {
                if (vm->dirfd[vm_files[i].h] < 0)
                        continue;
                if (i == F_BLKIO_BYTES || i == F_BLKIO_IOS) {
                        /* _recursive includes child groups, should an admin or libvirt
                         * ever place QEMU threads below the domain group. */
                        char rec[96];
                        snprintf(rec, sizeof(rec), "%s_recursive", vm_files[i].name);
                        if (open_vm_file(vm, i, rec) == 0) {
                                vm->recursive[i] = true;
                                continue;
                        }
                }
                (void) open_vm_file(vm, i, vm_files[i].name);
        }
        *ret = vm;
        return 0;
fail:
        vmg_cgroup_vm_free(vm);
        return r;
}

int vmg_cgroup_vm_open(struct vmg_cgroup_ctx *c, const struct vmg_domain_ref *d,
                       struct vmg_cgroup_vm **ret) {
        char *dirs[VMG_CG_N] = { NULL };
        int r = 0;
        bool any = false;
        for (int h = 0; h < VMG_CG_N; h++) {
                r = vmg_cgroup_find_domain(c, d, h, &dirs[h]);
                if (r == -ENOENT) {
                        r = 0;
                        continue;
                }
                if (r < 0)
                        goto out;
                any = true;
        }
        if (!any) {
                r = log_debug_errno(ENOENT, "VM %s (id %d, uuid %s): no cgroup found in any hierarchy",
                                    d->name, d->id, d->uuid ? d->uuid : "?");
                goto out;
        }
        r = vmg_cgroup_vm_open_dirs(c, d->name, (const char *const *) dirs, ret);
out:
        for (int h = 0; h < VMG_CG_N; h++)
                free(dirs[h]);
        return r;
}

const char *vmg_cgroup_vm_dir(const struct vmg_cgroup_vm *vm, enum vmg_cg_hier h) {
        return h < VMG_CG_N && vm->dirfd[h] >= 0 ? vm->dir[h] : NULL;
}

int vmg_cgroup_vm_dir_fd(const struct vmg_cgroup_vm *vm, enum vmg_cg_hier h) {
        return h < VMG_CG_N ? vm->dirfd[h] : -1;
}

/* "key value" lines (cpu.stat, cpuacct.stat). Returns 0, -ENOENT when key is absent. */
static int kv_get(const char *text, const char *key, uint64_t *ret) {
        size_t kl = strlen(key);
        for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
                if (strncmp(l, key, kl) != 0 || l[kl] != ' ')
                        continue;
                char *e;
                errno = 0;
                unsigned long long v = strtoull(l + kl + 1, &e, 10);
                if (errno || e == l + kl + 1)
                        return -EINVAL;
                *ret = v;
                return 0;
        }
        return -ENOENT;
}

static struct vmg_dev_io *dev_slot(struct vmg_dev_io *devs, size_t *n, uint32_t maj, uint32_t min) {
        for (size_t i = 0; i < *n; i++)
                if (devs[i].major == maj && devs[i].minor == min)
                        return &devs[i];
        if (*n >= VMG_MAX_DEVS)
                return NULL;
        devs[*n] = (struct vmg_dev_io) { .major = maj, .minor = min };
        return &devs[(*n)++];
}

/* blkio.throttle.io_service_bytes / io_serviced: "MAJ:MIN Read N" … plus a bare
 * "Total N" line. Sync/Async/Discard/Total per device are derived: skipped. */
static int parse_blkio(const char *text, bool ios, struct vmg_dev_io *devs, size_t *n) {
        for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
                unsigned maj, min;
                char op[16];
                unsigned long long v;
                if (strncmp(l, "Total ", 6) == 0 || *l == '\n')
                        continue;
                if (sscanf(l, "%u:%u %15s %llu", &maj, &min, op, &v) != 4)
                        return -EINVAL;
                bool rd = strcmp(op, "Read") == 0, wr = strcmp(op, "Write") == 0;
                if (!rd && !wr)
                        continue;
                struct vmg_dev_io *d = dev_slot(devs, n, maj, min);
                if (!d)
                        continue;
                if (ios)
                        *(rd ? &d->rios : &d->wios) = v;
                else
                        *(rd ? &d->rbytes : &d->wbytes) = v;
        }
        return 0;
}

/* io.stat: "MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N" (cgroup-v2.rst). */
static int parse_io_stat(const char *text, struct vmg_dev_io *devs, size_t *n) {
        for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
                unsigned maj, min;
                int off = 0;
                if (*l == '\n')
                        continue;
                if (sscanf(l, "%u:%u%n", &maj, &min, &off) != 2)
                        return -EINVAL;
                struct vmg_dev_io *d = dev_slot(devs, n, maj, min);
                if (!d)
                        continue;
                const char *eol = strchrnul(l, '\n');
                for (const char *s = l + off; s < eol;) {
                        while (s < eol && *s == ' ')
                                s++;
                        const char *eq = memchr(s, '=', (size_t) (eol - s));
                        if (!eq)
                                break;
                        unsigned long long v = strtoull(eq + 1, NULL, 10);
                        size_t kl = (size_t) (eq - s);
                        if (kl == 6 && strncmp(s, "rbytes", 6) == 0)
                                d->rbytes = v;
                        else if (kl == 6 && strncmp(s, "wbytes", 6) == 0)
                                d->wbytes = v;
                        else if (kl == 4 && strncmp(s, "rios", 4) == 0)
                                d->rios = v;
                        else if (kl == 4 && strncmp(s, "wios", 4) == 0)
                                d->wios = v;
                        s = eq + 1;
                        while (s < eol && *s != ' ')
                                s++;
                }
        }
        return 0;
}

/* Reads one kept-open file. Returns length, -ENOENT/-ENODEV (vanished: kernfs answers
 * ENODEV on an open file of a removed cgroup), or -errno. */
static ssize_t vm_pread(struct vmg_cgroup_vm *vm, enum vm_file i, char *buf, size_t size) {
        ssize_t n = pread_text(vm->fd[i], buf, size);
        if (n < 0) {
                enum vmg_cg_hier h = vm_files[i].h;
                bool gone = n == -ENODEV || n == -ENOENT;
                log_full_errno(gone ? LOG_DEBUG : LOG_WARNING, (int) n, "VM %s: cannot read %s/%s/%s%s: %m",
                               vm->name, vm->ctx->path[h], vm->dir[h], vm_files[i].name,
                               vm->recursive[i] ? "_recursive" : "");
        }
        return n;
}

static int bad_content(struct vmg_cgroup_vm *vm, enum vm_file i, const char *buf) {
        enum vmg_cg_hier h = vm_files[i].h;
        return log_warning_errno(EINVAL, "VM %s: unparsable %s/%s/%s%s: \"%.80s\"", vm->name,
                                 vm->ctx->path[h], vm->dir[h], vm_files[i].name,
                                 vm->recursive[i] ? "_recursive" : "", buf);
}

int vmg_cgroup_vm_read(struct vmg_cgroup_vm *vm, struct vmg_vm_counters *c) {
        struct vmg_vm_counters t = { 0 };
        char buf[READ_BUF];
        ssize_t n;
        uint64_t v;
        int r;

        /* On an ordinary file system (tests, or a tree someone copied) a removed directory
         * keeps its open files readable; kernfs answers ENODEV instead, handled below. */
        for (int h = 0; h < VMG_CG_N; h++) {
                struct stat st;
                if (vm->dirfd[h] < 0 || !vm->needs_nlink_check[h])
                        continue;
                if (fstat(vm->dirfd[h], &st) < 0)
                        return -errno;
                if (st.st_nlink == 0)
                        return log_debug_errno(ENOENT, "VM %s: cgroup %s/%s removed", vm->name,
                                               vm->ctx->path[h], vm->dir[h]);
        }

        /* CPU time: cpuacct where libvirt made a per-domain group, else cgroup2's cpu.stat,
         * which keeps usage_usec even with no controller enabled (a busy TCG guest read
         * ~1,000,000 usec/s there on the lab host, which has no per-domain cpuacct group). */
        if (vm->fd[F_CPUACCT_USAGE] >= 0) {
                if ((n = vm_pread(vm, F_CPUACCT_USAGE, buf, sizeof(buf))) < 0)
                        return (int) n;
                char *e;
                errno = 0;
                t.cpu_usage_ns = strtoull(buf, &e, 10);
                if (errno || e == buf)
                        return bad_content(vm, F_CPUACCT_USAGE, buf);
                t.cpu_valid = true;
                t.cpu_source = VMG_SRC_CGROUP_V1;
        }
        if (vm->fd[F_V2_CPU_STAT] >= 0) {
                if ((n = vm_pread(vm, F_V2_CPU_STAT, buf, sizeof(buf))) < 0)
                        return (int) n;
                if (!t.cpu_valid) {
                        if (kv_get(buf, "usage_usec", &v) < 0)
                                return bad_content(vm, F_V2_CPU_STAT, buf);
                        t.cpu_usage_ns = v * 1000;
                        t.cpu_valid = true;
                        t.cpu_source = VMG_SRC_CGROUP_V2;
                }
                /* The bandwidth fields appear only with the cpu controller enabled. */
                if (vm->fd[F_V1_CPU_STAT] < 0 && kv_get(buf, "nr_periods", &t.cpu_nr_periods) == 0) {
                        (void) kv_get(buf, "nr_throttled", &t.cpu_nr_throttled);
                        if (kv_get(buf, "throttled_usec", &v) == 0)
                                t.cpu_throttled_ns = v * 1000;
                }
        }
        if (vm->fd[F_V1_CPU_STAT] >= 0) {
                if ((n = vm_pread(vm, F_V1_CPU_STAT, buf, sizeof(buf))) < 0)
                        return (int) n;
                if (kv_get(buf, "nr_periods", &t.cpu_nr_periods) < 0 ||
                    kv_get(buf, "nr_throttled", &t.cpu_nr_throttled) < 0 ||
                    kv_get(buf, "throttled_time", &t.cpu_throttled_ns) < 0)
                        return bad_content(vm, F_V1_CPU_STAT, buf);
        }

        if (vm->fd[F_BLKIO_BYTES] >= 0) {
                if ((n = vm_pread(vm, F_BLKIO_BYTES, buf, sizeof(buf))) < 0)
                        return (int) n;
                if (parse_blkio(buf, false, t.devs, &t.n_devs) < 0)
                        return bad_content(vm, F_BLKIO_BYTES, buf);
                if (vm->fd[F_BLKIO_IOS] >= 0) {
                        if ((n = vm_pread(vm, F_BLKIO_IOS, buf, sizeof(buf))) < 0)
                                return (int) n;
                        if (parse_blkio(buf, true, t.devs, &t.n_devs) < 0)
                                return bad_content(vm, F_BLKIO_IOS, buf);
                }
                t.io_source = VMG_SRC_CGROUP_V1;
        } else if (vm->fd[F_IO_STAT] >= 0) {
                if ((n = vm_pread(vm, F_IO_STAT, buf, sizeof(buf))) < 0)
                        return (int) n;
                if (parse_io_stat(buf, t.devs, &t.n_devs) < 0)
                        return bad_content(vm, F_IO_STAT, buf);
                t.io_source = VMG_SRC_CGROUP_V2;
        }

        static const struct {
                enum vm_file f;
                size_t off;
        } psi[] = {
                { F_CPU_PRESSURE, offsetof(struct vmg_vm_counters, psi_cpu) },
                { F_IO_PRESSURE, offsetof(struct vmg_vm_counters, psi_io) },
        };
        for (size_t i = 0; i < ARRAY_SIZE(psi); i++) {
                if (vm->fd[psi[i].f] < 0)
                        continue;
                n = vm_pread(vm, psi[i].f, buf, sizeof(buf));
                if (n == -EOPNOTSUPP) /* PSI disabled at boot: the file exists but refuses */
                        continue;
                if (n < 0)
                        return (int) n;
                r = vmg_psi_parse(buf, (struct vmg_psi *) ((char *) &t + psi[i].off));
                if (r < 0)
                        return bad_content(vm, psi[i].f, buf);
        }

        c->cpu_valid = t.cpu_valid;
        c->cpu_source = t.cpu_source;
        c->cpu_usage_ns = t.cpu_usage_ns;
        c->cpu_nr_periods = t.cpu_nr_periods;
        c->cpu_nr_throttled = t.cpu_nr_throttled;
        c->cpu_throttled_ns = t.cpu_throttled_ns;
        c->io_source = t.io_source;
        c->n_devs = t.n_devs;
        memcpy(c->devs, t.devs, sizeof(c->devs));
        c->psi_cpu = t.psi_cpu;
        c->psi_io = t.psi_io;
        return 0;
}

int vmg_cgroup_find_dir(struct vmg_cgroup_ctx *c, enum vmg_cg_hier h, const char *name, char **ret) {
        if (h >= VMG_CG_N || c->fd[h] < 0)
                return -ENOENT;
        const char *cand[2] = { name, name };
        int r = vmg_cgroup_walk(c->fd[h], FIND_MAX_DEPTH, FIND_MAX_DIRS, match_name, cand, ret);
        return r == VMG_CG_WALK_STOP ? 0 : r == 0 ? -ENOENT : r;
}
