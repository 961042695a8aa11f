/* procfs probes; see procfs.h for the contracts. */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
#include "probes/procfs.h"

/* /proc/PID/stat is ~350 bytes, pressure files ~120, /proc/stat's "cpu" line comes first
 * so the rest of that (large) file need not be read. */
#define SMALL_BUF 4096

enum { PSI_CPU, PSI_IO, PSI_MEM, PSI_N };
static const char *const psi_files[PSI_N] = { "pressure/cpu", "pressure/io", "pressure/memory" };

struct vmg_procfs {
        char *root;
        int root_fd;
        int psi_fd[PSI_N];
        bool psi_absent[PSI_N]; /* kernel without PSI: do not retry every tick */
        int stat_fd;
};

/* Kernels answer ESRCH for a reaped task behind an open /proc fd; callers only need to
 * know it vanished. */
static int norm_vanished(int err) {
        return err == ESRCH ? -ENOENT : -err;
}

/* Reads the whole small file behind fd from offset 0 (so a kept-open fd re-reads current
 * values). Returns the length, or -errno. */
static ssize_t pread_text(int fd, char *buf, size_t size) {
        ssize_t n = vmg_pread_text(fd, buf, size);
        return n < 0 ? norm_vanished((int) -n) : n;
}

static ssize_t read_text_at(int dirfd, const char *path, char *buf, size_t size) {
        ssize_t n = vmg_read_text_at(dirfd, path, O_NOCTTY, buf, size);
        return n < 0 ? norm_vanished((int) -n) : n;
}

int vmg_procfs_new(const char *root, struct vmg_procfs **ret) {
        _cleanup_free_ struct vmg_procfs *p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->root_fd = -1;
        p->stat_fd = -1;
        for (int i = 0; i < PSI_N; i++)
                p->psi_fd[i] = -1;
        p->root = strdup(root ? root : VMG_PROC_ROOT);
        if (!p->root)
                return -ENOMEM;
        p->root_fd = open(p->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (p->root_fd < 0) {
                int r = -errno;
                free(p->root);
                return log_error_errno(r, "Cannot open proc root %s: %m", root ? root : VMG_PROC_ROOT);
        }
        *ret = TAKE_PTR(p);
        return 0;
}

struct vmg_procfs *vmg_procfs_free(struct vmg_procfs *p) {
        if (!p)
                return NULL;
        for (int i = 0; i < PSI_N; i++)
                if (p->psi_fd[i] >= 0)
                        close(p->psi_fd[i]);
        if (p->stat_fd >= 0)
                close(p->stat_fd);
        if (p->root_fd >= 0)
                close(p->root_fd);
        free(p->root);
        free(p);
        return NULL;
}

const char *vmg_procfs_root(const struct vmg_procfs *p) {
        return p->root;
}

static int parse_u64(const char *s, uint64_t *ret, const char **end) {
        char *e;
        if (!isdigit((unsigned char) *s))
                return -EINVAL;
        errno = 0;
        unsigned long long v = strtoull(s, &e, 10);
        if (errno)
                return -errno;
        *ret = v;
        if (end)
                *end = e;
        return 0;
}

/* Finds "total=N" on the line starting at line (up to its newline). */
static int psi_line_total(const char *line, uint64_t *ret) {
        const char *eol = strchrnul(line, '\n');
        for (const char *s = line; s < eol; s++)
                if (strncmp(s, "total=", 6) == 0 && s + 6 < eol)
                        return parse_u64(s + 6, ret, NULL);
        return -EINVAL;
}

int vmg_psi_parse(const char *text, struct vmg_psi *ret) {
        struct vmg_psi psi = { 0 };
        bool some = false;
        for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
                if (strncmp(l, "some ", 5) == 0) {
                        if (psi_line_total(l, &psi.some_us) < 0)
                                return -EINVAL;
                        some = true;
                } else if (strncmp(l, "full ", 5) == 0) {
                        if (psi_line_total(l, &psi.full_us) < 0)
                                return -EINVAL;
                }
        }
        if (!some)
                return -EINVAL;
        psi.valid = true;
        *ret = psi;
        return 0;
}

static int read_host_psi(struct vmg_procfs *p, int i, struct vmg_psi *ret) {
        char buf[SMALL_BUF];
        *ret = (struct vmg_psi) { 0 };
        if (p->psi_absent[i])
                return 0;
        if (p->psi_fd[i] < 0) {
                p->psi_fd[i] = openat(p->root_fd, psi_files[i], O_RDONLY | O_CLOEXEC);
                if (p->psi_fd[i] < 0) {
                        int r = -errno;
                        /* EOPNOTSUPP: PSI built in but disabled (psi=0 on the command line). */
                        if (r == -ENOENT || r == -EOPNOTSUPP) {
                                log_info("No PSI at %s/%s: host pressure not judged", p->root,
                                         psi_files[i]);
                                p->psi_absent[i] = true;
                                return 0;
                        }
                        return log_warning_errno(r, "Cannot open %s/%s: %m", p->root, psi_files[i]);
                }
        }
        ssize_t n = pread_text(p->psi_fd[i], buf, sizeof(buf));
        if (n < 0)
                return log_warning_errno((int) n, "Cannot read %s/%s: %m", p->root, psi_files[i]);
        int r = vmg_psi_parse(buf, ret);
        if (r < 0)
                return log_warning_errno(r, "Unparsable %s/%s: \"%.60s\"", p->root, psi_files[i], buf);
        return 0;
}

int vmg_procfs_read_host(struct vmg_procfs *p, struct vmg_host_counters *ret) {
        struct vmg_psi psi[PSI_N];
        char buf[SMALL_BUF];
        int r;

        for (int i = 0; i < PSI_N; i++) {
                r = read_host_psi(p, i, &psi[i]);
                if (r < 0)
                        return r;
        }
        if (p->stat_fd < 0) {
                p->stat_fd = openat(p->root_fd, "stat", O_RDONLY | O_CLOEXEC);
                if (p->stat_fd < 0)
                        return log_error_errno(errno, "Cannot open %s/stat: %m", p->root);
        }
        ssize_t n = pread_text(p->stat_fd, buf, sizeof(buf));
        if (n < 0)
                return log_error_errno((int) n, "Cannot read %s/stat: %m", p->root);

        /* Field count grew over kernel versions (steal in 2.6.11): absent ones stay 0. */
        uint64_t v[8] = { 0 };
        const char *s = buf;
        if (strncmp(s, "cpu ", 4) != 0)
                return log_error_errno(EINVAL, "%s/stat does not start with a \"cpu \" line", p->root);
        s += 4;
        int got = 0;
        for (; got < 8; got++) {
                while (*s == ' ')
                        s++;
                if (parse_u64(s, &v[got], &s) < 0)
                        break;
        }
        if (got < 4)
                return log_error_errno(EINVAL, "%s/stat \"cpu\" line has %d fields", p->root, got);

        ret->psi_cpu = psi[PSI_CPU];
        ret->psi_io = psi[PSI_IO];
        ret->psi_mem = psi[PSI_MEM];
        ret->stat_valid = true;
        ret->user = v[0];
        ret->nice = v[1];
        ret->system = v[2];
        ret->idle = v[3];
        ret->iowait = v[4];
        ret->irq = v[5];
        ret->softirq = v[6];
        ret->steal = v[7];
        return 0;
}

int vmg_procfs_task_delayacct(struct vmg_procfs *p, bool *ret) {
        char buf[64];
        ssize_t n = read_text_at(p->root_fd, "sys/kernel/task_delayacct", buf, sizeof(buf));
        if (n == -ENOENT) {
                *ret = true;
                return 0;
        }
        if (n < 0)
                return log_warning_errno((int) n, "Cannot read %s/sys/kernel/task_delayacct: %m", p->root);
        if (buf[0] != '0' && buf[0] != '1')
                return log_warning_errno(EINVAL, "Unparsable %s/sys/kernel/task_delayacct: \"%s\"",
                                         p->root, buf);
        *ret = buf[0] == '1';
        return 0;
}

int vmg_parse_pid_stat(const char *text, struct vmg_pid_stat *ret) {
        struct vmg_pid_stat st = { 0 };
        const char *open = strchr(text, '(');
        const char *close = strrchr(text, ')');
        if (!open || !close || close < open)
                return -EINVAL;
        size_t clen = (size_t) (close - open - 1);
        if (clen >= sizeof(st.comm))
                clen = sizeof(st.comm) - 1;
        memcpy(st.comm, open + 1, clen);

        /* Fields after ')' are numbered from 3 (state). */
        const char *s = close + 1;
        for (int field = 3;; field++) {
                while (*s == ' ')
                        s++;
                if (!*s || *s == '\n')
                        break;
                const char *tok = s;
                while (*s && *s != ' ' && *s != '\n')
                        s++;
                uint64_t v = 0;
                if (field == 3) {
                        st.state = *tok;
                        continue;
                }
                if (field != 14 && field != 15 && field != 22 && field != 42)
                        continue;
                if (parse_u64(tok, &v, NULL) < 0)
                        return -EINVAL;
                if (field == 14)
                        st.utime_ticks = v;
                else if (field == 15)
                        st.stime_ticks = v;
                else if (field == 22)
                        st.start_ticks = v;
                else {
                        st.blkio_ticks = v;
                        st.has_blkio = true;
                }
        }
        if (!st.state)
                return -EINVAL;
        *ret = st;
        return 0;
}

static void pid_path(char *buf, size_t len, pid_t pid, pid_t tid, const char *file) {
        if (tid > 0)
                snprintf(buf, len, "%d/task/%d/%s", (int) pid, (int) tid, file);
        else
                snprintf(buf, len, "%d/%s", (int) pid, file);
}

int vmg_procfs_pid_stat(struct vmg_procfs *p, pid_t pid, pid_t tid, struct vmg_pid_stat *ret) {
        char path[96], buf[SMALL_BUF];
        pid_path(path, sizeof(path), pid, tid, "stat");
        ssize_t n = read_text_at(p->root_fd, path, buf, sizeof(buf));
        if (n < 0)
                return (int) n;
        int r = vmg_parse_pid_stat(buf, ret);
        if (r < 0)
                return log_warning_errno(r, "Unparsable %s/%s: \"%.80s\"", p->root, path, buf);
        return 0;
}

static int parse_pid_io(const char *text, struct vmg_pid_io *ret) {
        static const struct {
                const char *key;
                size_t off;
        } keys[] = {
                { "rchar:", offsetof(struct vmg_pid_io, rchar) },
                { "wchar:", offsetof(struct vmg_pid_io, wchar) },
                { "syscr:", offsetof(struct vmg_pid_io, syscr) },
                { "syscw:", offsetof(struct vmg_pid_io, syscw) },
                { "read_bytes:", offsetof(struct vmg_pid_io, read_bytes) },
                { "write_bytes:", offsetof(struct vmg_pid_io, write_bytes) },
        };
        struct vmg_pid_io io = { 0 };
        unsigned seen = 0;
        for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
                for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
                        size_t kl = strlen(keys[i].key);
                        if (strncmp(l, keys[i].key, kl) != 0)
                                continue;
                        const char *v = l + kl;
                        while (*v == ' ')
                                v++;
                        if (parse_u64(v, (uint64_t *) ((char *) &io + keys[i].off), NULL) < 0)
                                return -EINVAL;
                        seen |= 1u << i;
                }
        if (seen != (1u << ARRAY_SIZE(keys)) - 1)
                return -EINVAL;
        *ret = io;
        return 0;
}

int vmg_procfs_pid_io(struct vmg_procfs *p, pid_t pid, struct vmg_pid_io *ret) {
        char path[64], buf[SMALL_BUF];
        pid_path(path, sizeof(path), pid, 0, "io");
        ssize_t n = read_text_at(p->root_fd, path, buf, sizeof(buf));
        if (n < 0)
                return (int) n;
        int r = parse_pid_io(buf, ret);
        if (r < 0)
                return log_warning_errno(r, "Unparsable %s/%s", p->root, path);
        return 0;
}

static int parse_schedstat(const char *text, struct vmg_schedstat *ret) {
        struct vmg_schedstat s;
        const char *c = text;
        if (parse_u64(c, &s.run_ns, &c) < 0 || *c++ != ' ' ||
            parse_u64(c, &s.wait_ns, &c) < 0 || *c++ != ' ' ||
            parse_u64(c, &s.timeslices, &c) < 0)
                return -EINVAL;
        *ret = s;
        return 0;
}

int vmg_procfs_schedstat(struct vmg_procfs *p, pid_t pid, pid_t tid, struct vmg_schedstat *ret) {
        char path[96], buf[256];
        pid_path(path, sizeof(path), pid, tid, "schedstat");
        ssize_t n = read_text_at(p->root_fd, path, buf, sizeof(buf));
        if (n < 0)
                return (int) n;
        int r = parse_schedstat(buf, ret);
        if (r < 0)
                return log_warning_errno(r, "Unparsable %s/%s: \"%s\"", p->root, path, buf);
        return 0;
}

int vmg_procfs_comm(struct vmg_procfs *p, pid_t pid, pid_t tid, char *buf, size_t len) {
        char path[96], tmp[128];
        pid_path(path, sizeof(path), pid, tid, "comm");
        ssize_t n = read_text_at(p->root_fd, path, tmp, sizeof(tmp));
        if (n < 0)
                return (int) n;
        tmp[strcspn(tmp, "\n")] = '\0';
        snprintf(buf, len, "%s", tmp);
        return 0;
}

int vmg_procfs_exe(struct vmg_procfs *p, pid_t pid, char *buf, size_t len) {
        char path[32];
        if (len < 2)
                return -ENAMETOOLONG;
        snprintf(path, sizeof(path), "%d/exe", (int) pid);
        ssize_t n = readlinkat(p->root_fd, path, buf, len);
        if (n < 0)
                return norm_vanished(errno);
        if ((size_t) n >= len)
                return -ENAMETOOLONG;
        buf[n] = '\0';
        return 0;
}

int vmg_procfs_uids(struct vmg_procfs *p, pid_t pid, uid_t *ruid, uid_t *euid) {
        char path[32], buf[SMALL_BUF];
        snprintf(path, sizeof(path), "%d/status", (int) pid);
        ssize_t n = read_text_at(p->root_fd, path, buf, sizeof(buf));
        if (n < 0)
                return (int) n;
        /* "Uid:\treal\teffective\tsaved\tfs"; a status longer than the buffer still has
         * it near the top (line 9 on 6.x kernels). */
        const char *l = strstr(buf, "\nUid:");
        unsigned long r, e;
        if (!l || sscanf(l + 5, "%lu %lu", &r, &e) != 2 || r > UINT32_MAX - 1 || e > UINT32_MAX - 1)
                return log_warning_errno(EINVAL, "No parsable Uid line in %s/%s", p->root, path);
        *ruid = (uid_t) r;
        *euid = (uid_t) e;
        return 0;
}

static int cmp_pid(const void *a, const void *b) {
        pid_t x = *(const pid_t *) a, y = *(const pid_t *) b;
        return (x > y) - (x < y);
}

static int list_numeric(int dirfd, const char *path, pid_t **ret, size_t *n) {
        int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return norm_vanished(errno);
        DIR *d = fdopendir(fd);
        if (!d) {
                int r = -errno;
                close(fd);
                return r;
        }
        _cleanup_free_ pid_t *v = NULL;
        size_t cnt = 0, cap = 0;
        int r = 0;
        struct dirent *de;
        while ((errno = 0, de = readdir(d))) {
                char *end;
                long x = strtol(de->d_name, &end, 10);
                if (!isdigit((unsigned char) de->d_name[0]) || *end || x <= 0)
                        continue;
                if (cnt == cap) {
                        size_t ncap = cap ? cap * 2 : 64;
                        pid_t *nv = realloc(v, ncap * sizeof(*v));
                        if (!nv) {
                                r = -ENOMEM;
                                break;
                        }
                        v = nv;
                        cap = ncap;
                }
                v[cnt++] = (pid_t) x;
        }
        if (r == 0 && errno)
                r = norm_vanished(errno);
        closedir(d);
        if (r < 0)
                return r;
        if (cnt)
                qsort(v, cnt, sizeof(*v), cmp_pid);
        *ret = TAKE_PTR(v);
        *n = cnt;
        return 0;
}

int vmg_procfs_list_pids(struct vmg_procfs *p, pid_t **ret, size_t *n) {
        return list_numeric(p->root_fd, ".", ret, n);
}

int vmg_procfs_list_tids(struct vmg_procfs *p, pid_t pid, pid_t **ret, size_t *n) {
        char path[64];
        pid_path(path, sizeof(path), pid, 0, "task");
        return list_numeric(p->root_fd, path, ret, n);
}

uint64_t vmg_procfs_ticks_to_ns(uint64_t ticks) {
        static long hz;
        if (hz <= 0) {
                hz = sysconf(_SC_CLK_TCK);
                if (hz <= 0)
                        hz = 100; /* USER_HZ on every Linux architecture vmguard targets */
        }
        return ticks * (NSEC_PER_SEC / (uint64_t) hz);
}

bool vmg_is_vcpu_thread_name(const char *comm) {
        if (strncmp(comm, "CPU ", 4) != 0 || !isdigit((unsigned char) comm[4]))
                return false;
        const char *s = comm + 4;
        while (isdigit((unsigned char) *s))
                s++;
        return *s == '/';
}

/* <linux/magic.h> PROC_SUPER_MAGIC. */
#define PROC_SUPER_MAGIC_ 0x9fa0

struct vcpu_thread {
        pid_t tid;
        int fd;
};

struct vmg_proc_qemu {
        struct vmg_procfs *p; /* borrowed */
        pid_t pid;
        char *vm_name;
        int pid_dirfd;
        int io_fd;
        unsigned n_vcpus;
        struct vcpu_thread vcpus[VMG_MAX_VCPUS];
        /* procfs answers ESRCH on the open files of an exited process or thread, so the
         * per-tick fstat() that notices an unlinked file in a test tree is skipped there:
         * at ~3 us a syscall it was a tenth of the sampling cost (BENCHMARKS.md). */
        bool needs_nlink_check;
};

static void close_vcpus(struct vmg_proc_qemu *q) {
        for (unsigned i = 0; i < q->n_vcpus; i++)
                close(q->vcpus[i].fd);
        q->n_vcpus = 0;
}

struct vmg_proc_qemu *vmg_proc_qemu_free(struct vmg_proc_qemu *q) {
        if (!q)
                return NULL;
        close_vcpus(q);
        if (q->io_fd >= 0)
                close(q->io_fd);
        if (q->pid_dirfd >= 0)
                close(q->pid_dirfd);
        free(q->vm_name);
        free(q);
        return NULL;
}

/* vCPU threads are named by QEMU after creation, so a freshly started guest may have
 * none yet; hot-plug adds some later. */
static int scan_vcpus(struct vmg_proc_qemu *q) {
        _cleanup_free_ pid_t *tids = NULL;
        size_t n = 0;
        int r = vmg_procfs_list_tids(q->p, q->pid, &tids, &n);
        if (r < 0)
                return r;
        close_vcpus(q);
        for (size_t i = 0; i < n; i++) {
                char comm[64], path[96];
                if (vmg_procfs_comm(q->p, q->pid, tids[i], comm, sizeof(comm)) < 0)
                        continue; /* thread exited while scanning */
                if (!vmg_is_vcpu_thread_name(comm))
                        continue;
                if (q->n_vcpus >= VMG_MAX_VCPUS) {
                        log_warning("VM %s: more than %d vCPU threads in %s/%d/task, "
                                    "run delay counts only the first ones",
                                    q->vm_name, VMG_MAX_VCPUS, q->p->root, (int) q->pid);
                        break;
                }
                snprintf(path, sizeof(path), "task/%d/schedstat", (int) tids[i]);
                int fd = openat(q->pid_dirfd, path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                q->vcpus[q->n_vcpus++] = (struct vcpu_thread) { tids[i], fd };
        }
        return 0;
}

int vmg_proc_qemu_open(struct vmg_procfs *p, pid_t pid, const char *vm_name,
                       struct vmg_proc_qemu **ret) {
        char path[32];
        _cleanup_free_ struct vmg_proc_qemu *q = calloc(1, sizeof(*q));
        if (!q)
                return -ENOMEM;
        q->p = p;
        q->pid = pid;
        q->io_fd = -1;
        q->vm_name = strdup(vm_name ? vm_name : "?");
        if (!q->vm_name)
                return -ENOMEM;
        snprintf(path, sizeof(path), "%d", (int) pid);
        q->pid_dirfd = openat(p->root_fd, path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (q->pid_dirfd < 0) {
                int r = norm_vanished(errno);
                free(q->vm_name);
                return log_debug_errno(r, "VM %s: cannot open %s/%d: %m", vm_name, p->root, (int) pid);
        }
        struct statfs sfs;
        q->needs_nlink_check = fstatfs(q->pid_dirfd, &sfs) < 0 || sfs.f_type != PROC_SUPER_MAGIC_;
        q->io_fd = openat(q->pid_dirfd, "io", O_RDONLY | O_CLOEXEC);
        if (q->io_fd < 0)
                log_warning_errno(errno, "VM %s: cannot open %s/%d/io, no QEMU I/O accounting: %m",
                                  vm_name, p->root, (int) pid);
        int r = scan_vcpus(q);
        if (r < 0) {
                struct vmg_proc_qemu *tmp = TAKE_PTR(q);
                vmg_proc_qemu_free(tmp);
                return log_debug_errno(r, "VM %s: cannot list %s/%d/task: %m", vm_name, p->root, (int) pid);
        }
        *ret = TAKE_PTR(q);
        return 0;
}

/* Sums run-queue wait over the open vCPU threads. Returns 0, or -ENOENT when one of
 * them is gone (caller rescans). */
static int sum_vcpu_delay(struct vmg_proc_qemu *q, uint64_t *ret) {
        uint64_t sum = 0;
        for (unsigned i = 0; i < q->n_vcpus; i++) {
                char buf[256];
                struct vmg_schedstat s;
                struct stat st;
                ssize_t n = pread_text(q->vcpus[i].fd, buf, sizeof(buf));
                if (n < 0)
                        return (int) n;
                /* procfs answers ESRCH for an exited thread; an unlinked file elsewhere
                 * (a fake or copied tree) stays readable but has no links left. */
                if (q->needs_nlink_check && fstat(q->vcpus[i].fd, &st) == 0 && st.st_nlink == 0)
                        return -ENOENT;
                if (parse_schedstat(buf, &s) < 0)
                        return log_warning_errno(EINVAL, "VM %s: unparsable %s/%d/task/%d/schedstat: \"%s\"",
                                                 q->vm_name, q->p->root, (int) q->pid,
                                                 (int) q->vcpus[i].tid, buf);
                sum += s.wait_ns;
        }
        *ret = sum;
        return 0;
}

int vmg_proc_qemu_read(struct vmg_proc_qemu *q, struct vmg_vm_counters *c) {
        struct vmg_pid_io io = { 0 };
        bool io_valid = false;
        struct stat st;
        int r;

        /* A removed directory on an ordinary file system keeps its open files readable;
         * procfs itself answers ESRCH, handled below. */
        if (q->needs_nlink_check) {
                if (fstat(q->pid_dirfd, &st) < 0)
                        return norm_vanished(errno);
                if (st.st_nlink == 0)
                        return -ENOENT;
        }

        if (q->io_fd >= 0) {
                char buf[SMALL_BUF];
                ssize_t n = pread_text(q->io_fd, buf, sizeof(buf));
                if (n < 0)
                        return log_debug_errno((int) n, "VM %s: cannot read %s/%d/io: %m",
                                               q->vm_name, q->p->root, (int) q->pid);
                r = parse_pid_io(buf, &io);
                if (r < 0)
                        return log_warning_errno(r, "VM %s: unparsable %s/%d/io", q->vm_name,
                                                 q->p->root, (int) q->pid);
                io_valid = true;
        }

        uint64_t delay = 0;
        bool delay_valid = false;
        if (q->n_vcpus == 0)
                (void) scan_vcpus(q);
        if (q->n_vcpus > 0) {
                r = sum_vcpu_delay(q, &delay);
                if (r == -ENOENT || r == -ENODEV) {
                        r = scan_vcpus(q);
                        if (r < 0)
                                return log_debug_errno(r, "VM %s: %s/%d/task gone: %m", q->vm_name,
                                                       q->p->root, (int) q->pid);
                        r = q->n_vcpus > 0 ? sum_vcpu_delay(q, &delay) : -ENOENT;
                }
                if (r == -EINVAL)
                        return r;
                delay_valid = r == 0;
        }

        c->proc_io_valid = io_valid;
        c->proc_rchar = io.rchar;
        c->proc_wchar = io.wchar;
        c->proc_syscr = io.syscr;
        c->proc_syscw = io.syscw;
        c->proc_read_bytes = io.read_bytes;
        c->proc_write_bytes = io.write_bytes;
        c->vcpu_delay_valid = delay_valid;
        c->vcpu_run_delay_ns = delay_valid ? delay : 0;
        c->n_vcpus = delay_valid ? q->n_vcpus : 0;
        return 0;
}
