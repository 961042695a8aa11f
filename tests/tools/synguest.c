/* See synguest.h. Shared by bench/bench_sample.c's layout and tests/tools/churn.c. */
#define _GNU_SOURCE
#include "tests/tools/synguest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macros.h"

/* The children only sleep: 64 KiB of stack keeps 1000 of them cheap. */
#define CHILD_STACK (64 * 1024)

enum attach { ATTACH_PROCS, ATTACH_V1_THREADS, ATTACH_V2_THREADS };

/* Hierarchies a libvirt domain occupies here; whether it has vcpuN/emulator children. */
static const struct {
        const char *h;
        bool children;
        bool cpuset;
        enum attach how;
} hiers[SYNGUEST_N_HIERS] = {
        { "cpu", true, false, ATTACH_V1_THREADS },
        { "cpuset", true, true, ATTACH_V1_THREADS },
        { "memory", false, false, ATTACH_PROCS },
        { "freezer", false, false, ATTACH_PROCS },
        { "blkio", false, false, ATTACH_PROCS },
        { "unified", true, false, ATTACH_V2_THREADS },
};

static const char *const kids[] = { "vcpu0", "emulator" };

static const char *root_of(const struct synguest_host *h) { return h->root ? h->root : "/sys/fs/cgroup"; }

void synguest_pathf(char *buf, size_t size, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        (void) vsnprintf(buf, size, fmt, ap);
        va_end(ap);
}

static int write_str(const char *path, const char *s) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        size_t len = strlen(s);
        ssize_t n = write(fd, s, len);
        if (n < 0)
                return -errno;
        return (size_t) n == len ? 0 : -EIO;
}

static int copy_file(const char *from, const char *to) {
        char buf[256];
        _cleanup_close_ int fd = open(from, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        if (n < 0)
                return -errno;
        buf[n] = '\0';
        return write_str(to, buf);
}

/* A new cpuset group starts with no CPUs and no memory nodes: tasks cannot enter it. */
static int copy_cpuset(const char *from_dir, const char *to_dir) {
        static const char *const files[] = { "cpuset.cpus", "cpuset.mems" };
        for (size_t f = 0; f < ARRAY_SIZE(files); f++) {
                char from[512], to[512];
                synguest_pathf(from, sizeof(from), "%s/%s", from_dir, files[f]);
                synguest_pathf(to, sizeof(to), "%s/%s", to_dir, files[f]);
                int r = copy_file(from, to);
                if (r < 0)
                        return log_error_errno(r, "cannot copy %s to %s: %m", from, to);
        }
        return 0;
}

struct child_msg {
        pid_t pid, tid;
};

static void *vcpu_thread(void *arg) {
        int wfd = *(int *) arg;
        prctl(PR_SET_NAME, "CPU 0/TCG");
        struct child_msg msg = { getpid(), gettid() };
        if (write(wfd, &msg, sizeof(msg)) != sizeof(msg))
                _exit(1);
        close(wfd);
        for (;;)
                pause();
        return NULL;
}

static _Noreturn void child_main(int wfd, pid_t parent, const char *comm) {
        static int fd;
        fd = wfd;
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                _exit(1);
        prctl(PR_SET_NAME, comm);
        pthread_attr_t attr;
        pthread_t t;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, CHILD_STACK);
        if (pthread_create(&t, &attr, vcpu_thread, &fd) != 0)
                _exit(1);
        for (;;)
                pause();
}

static int attach(const char *hdir, const struct synguest *g, enum attach how) {
        char path[512], pid[32], tid[32];
        int r;
        synguest_pathf(pid, sizeof(pid), "%d", (int) g->pid);
        synguest_pathf(tid, sizeof(tid), "%d", (int) g->vcpu_tid);
        switch (how) {
        case ATTACH_PROCS:
                synguest_pathf(path, sizeof(path), "%s/%s/cgroup.procs", hdir, g->dir);
                return write_str(path, pid);
        case ATTACH_V1_THREADS:
                synguest_pathf(path, sizeof(path), "%s/%s/emulator/tasks", hdir, g->dir);
                if ((r = write_str(path, pid)) < 0)
                        return r;
                synguest_pathf(path, sizeof(path), "%s/%s/vcpu0/tasks", hdir, g->dir);
                return write_str(path, tid);
        case ATTACH_V2_THREADS:
                /* A process enters the threaded domain first; then its threads are spread
                 * over the threaded children, as libvirt does. */
                synguest_pathf(path, sizeof(path), "%s/%s/cgroup.procs", hdir, g->dir);
                if ((r = write_str(path, pid)) < 0)
                        return r;
                for (size_t k = 0; k < ARRAY_SIZE(kids); k++) {
                        synguest_pathf(path, sizeof(path), "%s/%s/%s/cgroup.type", hdir, g->dir, kids[k]);
                        if ((r = write_str(path, "threaded")) < 0)
                                return r;
                }
                synguest_pathf(path, sizeof(path), "%s/%s/emulator/cgroup.threads", hdir, g->dir);
                if ((r = write_str(path, pid)) < 0)
                        return r;
                synguest_pathf(path, sizeof(path), "%s/%s/vcpu0/cgroup.threads", hdir, g->dir);
                return write_str(path, tid);
        }
        return -EINVAL;
}

static int make_dirs(struct synguest_host *h, struct synguest *g) {
        char hdir[256], path[512];
        int r;
        for (size_t i = 0; i < SYNGUEST_N_HIERS; i++) {
                if (!h->present[i])
                        continue;
                synguest_pathf(hdir, sizeof(hdir), "%s/%s", root_of(h), hiers[i].h);
                synguest_pathf(path, sizeof(path), "%s/%s", hdir, g->dir);
                if (mkdir(path, 0755) < 0)
                        return log_error_errno(errno, "cannot create cgroup %s: %m", path);
                g->made[i] = true;
                if (hiers[i].cpuset) {
                        char mdir[512];
                        synguest_pathf(mdir, sizeof(mdir), "%s/machine", hdir);
                        if ((r = copy_cpuset(mdir, path)) < 0)
                                return r;
                }
                if (hiers[i].children)
                        for (size_t k = 0; k < ARRAY_SIZE(kids); k++) {
                                char kid[600];
                                synguest_pathf(kid, sizeof(kid), "%s/%s", path, kids[k]);
                                if (mkdir(kid, 0755) < 0)
                                        return log_error_errno(errno, "cannot create cgroup %s: %m", kid);
                                if (hiers[i].cpuset && (r = copy_cpuset(path, kid)) < 0)
                                        return r;
                        }
                r = attach(hdir, g, hiers[i].how);
                if (r < 0)
                        return log_error_errno(r, "cannot move guest %s (pid %d) into %s: %m", g->dir,
                                               (int) g->pid, path);
        }
        return 0;
}

/* rmdir that waits for the kernel to let go of exiting tasks (EBUSY for a moment). */
static int rmdir_patient(const char *path) {
        for (int i = 0; i < 400; i++) {
                if (rmdir(path) == 0 || errno == ENOENT)
                        return 0;
                if (errno != EBUSY)
                        break;
                usleep(5000);
        }
        return log_error_errno(errno, "cannot remove cgroup %s: %m", path);
}

static int remove_dir_tree(const char *hdir, const char *dir) {
        char path[512];
        int r = 0;
        for (size_t k = 0; k < ARRAY_SIZE(kids); k++) {
                synguest_pathf(path, sizeof(path), "%s/%s/%s", hdir, dir, kids[k]);
                if (access(path, F_OK) == 0 && rmdir_patient(path) < 0)
                        r = -EBUSY;
        }
        synguest_pathf(path, sizeof(path), "%s/%s", hdir, dir);
        if (rmdir_patient(path) < 0)
                r = -EBUSY;
        return r;
}

int synguest_host_init(struct synguest_host *h, const char *root) {
        memset(h, 0, sizeof *h);
        h->root = root;
        for (size_t i = 0; i < SYNGUEST_N_HIERS; i++) {
                char path[256];
                synguest_pathf(path, sizeof(path), "%s/%s", root_of(h), hiers[i].h);
                h->present[i] = access(path, F_OK) == 0;
                if (!h->present[i])
                        continue;
                synguest_pathf(path, sizeof(path), "%s/%s/machine", root_of(h), hiers[i].h);
                if (mkdir(path, 0755) == 0) {
                        h->made_machine[i] = true;
                        if (hiers[i].cpuset) {
                                char hdir[256];
                                synguest_pathf(hdir, sizeof(hdir), "%s/%s", root_of(h), hiers[i].h);
                                int r = copy_cpuset(hdir, path);
                                if (r < 0)
                                        return r;
                        }
                } else if (errno != EEXIST)
                        return log_error_errno(errno, "cannot create %s: %m", path);
        }
        return 0;
}

void synguest_host_done(struct synguest_host *h) {
        for (size_t i = 0; i < SYNGUEST_N_HIERS; i++)
                if (h->made_machine[i]) {
                        char path[256];
                        synguest_pathf(path, sizeof(path), "%s/%s/machine", root_of(h), hiers[i].h);
                        /* Someone else's guest may live there by now: theirs to keep. */
                        if (rmdir(path) < 0 && errno != EBUSY && errno != ENOTEMPTY)
                                log_warning_errno(errno, "cannot remove %s: %m", path);
                        h->made_machine[i] = false;
                }
}

int synguest_spawn(struct synguest_host *h, const char *dir, const char *comm, struct synguest *g) {
        int pfd[2], r;
        memset(g, 0, sizeof *g);
        if (strlen(dir) >= sizeof g->dir)
                return log_error_errno(ENAMETOOLONG, "synthetic guest dir %s: too long", dir);
        snprintf(g->dir, sizeof g->dir, "%s", dir);
        if (pipe2(pfd, O_CLOEXEC) < 0)
                return log_error_errno(errno, "pipe: %m");
        pid_t self = getpid();
        pid_t pid = fork();
        if (pid < 0) {
                r = log_error_errno(errno, "fork of synthetic guest %s failed: %m", dir);
                close(pfd[0]);
                close(pfd[1]);
                return r;
        }
        if (pid == 0) {
                close(pfd[0]);
                child_main(pfd[1], self, comm);
        }
        close(pfd[1]);
        g->pid = pid;
        struct child_msg msg;
        ssize_t n;
        do
                n = read(pfd[0], &msg, sizeof(msg));
        while (n < 0 && errno == EINTR);
        close(pfd[0]);
        if (n != (ssize_t) sizeof(msg) || msg.pid != pid) {
                r = log_error_errno(EIO, "synthetic guest %s (pid %d) did not start", dir, (int) pid);
                (void) synguest_kill(h, g);
                return r;
        }
        g->vcpu_tid = msg.tid;
        r = make_dirs(h, g);
        if (r < 0) {
                (void) synguest_kill(h, g);
                return r;
        }
        return 0;
}

int synguest_rename(struct synguest_host *h, struct synguest *g, const char *newdir) {
        char from[512], to[512];
        if (strlen(newdir) >= sizeof g->dir)
                return log_error_errno(ENAMETOOLONG, "synthetic guest dir %s: too long", newdir);
        for (size_t i = 0; i < SYNGUEST_N_HIERS; i++) {
                if (!g->made[i])
                        continue;
                synguest_pathf(from, sizeof(from), "%s/%s/%s", root_of(h), hiers[i].h, g->dir);
                synguest_pathf(to, sizeof(to), "%s/%s/%s", root_of(h), hiers[i].h, newdir);
                if (rename(from, to) < 0) {
                        int r = log_error_errno(errno, "cannot rename cgroup %s to %s: %m", from, to);
                        for (size_t j = 0; j < i; j++) {
                                if (!g->made[j])
                                        continue;
                                synguest_pathf(from, sizeof(from), "%s/%s/%s", root_of(h), hiers[j].h, g->dir);
                                synguest_pathf(to, sizeof(to), "%s/%s/%s", root_of(h), hiers[j].h, newdir);
                                (void) rename(to, from);
                        }
                        return r;
                }
        }
        snprintf(g->dir, sizeof g->dir, "%s", newdir);
        return 0;
}

int synguest_kill(struct synguest_host *h, struct synguest *g) {
        int r = 0;
        if (g->pid > 0) {
                (void) kill(g->pid, SIGKILL);
                while (waitpid(g->pid, NULL, 0) < 0 && errno == EINTR)
                        ;
        }
        for (size_t i = 0; i < SYNGUEST_N_HIERS; i++) {
                if (!g->made[i])
                        continue;
                char hdir[256];
                synguest_pathf(hdir, sizeof(hdir), "%s/%s", root_of(h), hiers[i].h);
                if (remove_dir_tree(hdir, g->dir) < 0)
                        r = -EBUSY;
        }
        memset(g, 0, sizeof *g);
        return r;
}

/* Calls fn on each machine/qemu-*match* entry of each hierarchy. */
static int for_each_leftover(struct synguest_host *h, const char *match, bool remove) {
        int n = 0, r = 0;
        for (size_t i = 0; i < SYNGUEST_N_HIERS; i++) {
                char hdir[256], mdir[300];
                synguest_pathf(hdir, sizeof(hdir), "%s/%s", root_of(h), hiers[i].h);
                synguest_pathf(mdir, sizeof(mdir), "%s/machine", hdir);
                DIR *d = opendir(mdir);
                if (!d)
                        continue;
                struct dirent *de;
                while ((de = readdir(d))) {
                        if (strncmp(de->d_name, "qemu-", 5) != 0 || !strstr(de->d_name, match))
                                continue;
                        if (!remove) {
                                n++;
                                continue;
                        }
                        char dir[400];
                        synguest_pathf(dir, sizeof(dir), "machine/%s", de->d_name);
                        if (remove_dir_tree(hdir, dir) < 0)
                                r = -EBUSY;
                        else
                                n++;
                }
                closedir(d);
        }
        return r < 0 ? r : n;
}

int synguest_cleanup_leftovers(struct synguest_host *h, const char *match) {
        return for_each_leftover(h, match, true);
}

int synguest_count_dirs(struct synguest_host *h, const char *match) {
        return for_each_leftover(h, match, false);
}
