/* Helpers shared by the harnesses; see fuzz.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "common/log.h"
#include "tests/fuzz/fuzz.h"

_Noreturn void fz_fail(const char *file, int line, const char *what) {
        /* fd 2, not stderr: the fuzzer points the stderr FILE at /dev/null */
        dprintf(STDERR_FILENO, "FUZZ INVARIANT BROKEN %s:%d: %s\n", file, line, what);
        abort();
}

char *fz_strndup(const uint8_t *data, size_t size) {
        char *s = malloc(size + 1);
        if (!s)
                abort();
        if (size)
                memcpy(s, data, size);
        s[size] = '\0';
        return s;
}

size_t fz_split(const uint8_t *data, size_t size, char **buf, struct fz_part *parts, size_t max) {
        char *s = fz_strndup(data, size);
        size_t n = 0, start = 0;
        for (size_t i = 0; i <= size && n < max; i++) {
                if (i < size && s[i] != '\0')
                        continue;
                s[i] = '\0';
                parts[n++] = (struct fz_part) { s + start, i - start };
                start = i + 1;
        }
        *buf = s;
        return n;
}

int fz_absent(const struct fz_part *parts, size_t n, size_t i) {
        return i >= n || (parts[i].len == 1 && parts[i].text[0] == '-');
}

static char base_dir[PATH_MAX];
static struct {
        char name[32];
        char path[PATH_MAX + 40];
} dirs[16];

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
        (void) st, (void) flag, (void) ftw;
        return remove(p);
}

static void cleanup(void) {
        if (base_dir[0])
                nftw(base_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *tmp_base(void) {
        const char *t = getenv("TMPDIR");
        if (t && *t)
                return t;
        /* tmpfs: harnesses rewrite files on every input, keep that off the disk */
        if (access("/dev/shm", W_OK) == 0)
                return "/dev/shm";
        return "/tmp";
}

void fz_mkdirs(const char *dir, const char *rel) {
        char path[2 * PATH_MAX + 2];
        snprintf(path, sizeof(path), "%s/%s", dir, rel);
        for (char *s = path + strlen(dir) + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = '\0';
                if (mkdir(path, 0755) < 0 && errno != EEXIST)
                        fz_fail(__FILE__, __LINE__, path);
                *s = '/';
        }
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
                fz_fail(__FILE__, __LINE__, path);
}

const char *fz_dir(const char *name) {
        size_t i;
        if (!base_dir[0]) {
                snprintf(base_dir, sizeof(base_dir), "%s/vmg-fuzz-XXXXXX", tmp_base());
                if (!mkdtemp(base_dir))
                        fz_fail(__FILE__, __LINE__, "mkdtemp");
                atexit(cleanup);
        }
        for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]) && dirs[i].name[0]; i++)
                if (strcmp(dirs[i].name, name) == 0)
                        return dirs[i].path;
        if (i == sizeof(dirs) / sizeof(dirs[0]))
                fz_fail(__FILE__, __LINE__, "too many harness directories");
        snprintf(dirs[i].name, sizeof(dirs[i].name), "%s", name);
        if (snprintf(dirs[i].path, sizeof(dirs[i].path), "%s/%s", base_dir, name) >=
            (int) sizeof(dirs[i].path))
                fz_fail(__FILE__, __LINE__, "harness directory name too long");
        if (mkdir(dirs[i].path, 0700) < 0 && errno != EEXIST)
                fz_fail(__FILE__, __LINE__, dirs[i].path);
        return dirs[i].path;
}

void fz_write(const char *dir, const char *rel, const char *content, size_t len) {
        char path[2 * PATH_MAX + 2], parent[PATH_MAX];
        snprintf(parent, sizeof(parent), "%s", rel);
        char *slash = strrchr(parent, '/');
        if (slash) {
                *slash = '\0';
                fz_mkdirs(dir, parent);
        }
        snprintf(path, sizeof(path), "%s/%s", dir, rel);
        /* Truncate in place rather than replace: readers that keep a file open and pread()
         * it (host PSI, /proc/stat) then see the new content, as they do on procfs. */
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                fz_fail(__FILE__, __LINE__, path);
        while (len > 0) {
                ssize_t w = write(fd, content, len);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        fz_fail(__FILE__, __LINE__, path);
                }
                content += w;
                len -= (size_t) w;
        }
        close(fd);
}

void fz_unlink(const char *dir, const char *rel) {
        char path[2 * PATH_MAX + 2];
        snprintf(path, sizeof(path), "%s/%s", dir, rel);
        (void) unlink(path);
}

void fz_init(int quiet) {
        log_set_max_level(LOG_DEBUG);
        if (quiet && !getenv("VMG_FUZZ_VERBOSE")) {
                /* libFuzzer captured the stderr FILE for its own output at startup and the
                 * sanitizers write to fd 2: only vmguard's log lines go away. */
                FILE *null = fopen("/dev/null", "we");
                if (null)
                        stderr = null;
        }
}
