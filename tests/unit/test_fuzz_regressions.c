/* Replays every input that ever crashed a fuzzer (tests/fuzz/regressions/NAME/) and every
 * seed (tests/fuzz/corpus/NAME/) through the harness functions themselves, in the normal
 * test build, so a fixed parser bug stays fixed without clang or libFuzzer. A harness aborts
 * on a broken invariant and the sanitizers (make check SANITIZE=1) or valgrind (make
 * valgrind) catch memory errors, so a crash here is the only failure an input can give:
 * the harnesses return 0 whatever they are fed (libFuzzer's convention), so an input is not
 * a check. What is counted: one check per harness that it has seed inputs (a wrong working
 * directory must not pass by replaying nothing), and an unreadable input as a failure; the
 * inputs replayed are printed as one line, "N inputs replayed without crash". Run from the
 * repository root (tests/run.sh does), or set VMG_FUZZ_DIR to the tests/fuzz directory. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/fuzz/fuzz.h"
#include "tests/harness.h"

static const struct {
        const char *name;
        int (*fn)(const uint8_t *data, size_t size);
} harnesses[] = {
        { "policy", vmg_fuzz_policy },
        { "units", vmg_fuzz_units },
        { "psi", vmg_fuzz_psi },
        { "pid_stat", vmg_fuzz_pid_stat },
        { "procfs_files", vmg_fuzz_procfs_files },
        { "cgroup_files", vmg_fuzz_cgroup_files },
        { "mountinfo", vmg_fuzz_mountinfo },
        { "domxml", vmg_fuzz_domxml },
        { "journal", vmg_fuzz_journal },
        { "names", vmg_fuzz_names },
};

static int read_all(const char *path, uint8_t **ret, size_t *len) {
        FILE *f = fopen(path, "rbe");
        if (!f)
                return -errno;
        uint8_t *buf = NULL;
        size_t n = 0, cap = 0;
        for (;;) {
                if (n == cap) {
                        cap = cap ? cap * 2 : 4096;
                        uint8_t *nb = realloc(buf, cap);
                        if (!nb) {
                                free(buf);
                                fclose(f);
                                return -ENOMEM;
                        }
                        buf = nb;
                }
                size_t got = fread(buf + n, 1, cap - n, f);
                n += got;
                if (got == 0)
                        break;
        }
        int err = ferror(f) ? -EIO : 0;
        fclose(f);
        if (err < 0) {
                free(buf);
                return err;
        }
        *ret = buf;
        *len = n;
        return 0;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Replays every regular file in dir through fn; returns how many. -1 when dir is missing. */
static int replay_dir(const char *dir, const char *name, int (*fn)(const uint8_t *, size_t)) {
        DIR *d = opendir(dir);
        if (!d)
                return -1;
        char **files = NULL;
        size_t n = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.' || strcmp(de->d_name, "README") == 0)
                        continue;
                char **nf = realloc(files, (n + 1) * sizeof(*nf));
                if (!nf || asprintf(&nf[n], "%s/%s", dir, de->d_name) < 0)
                        abort();
                files = nf;
                n++;
        }
        closedir(d);
        if (n)
                qsort(files, n, sizeof(*files), cmp_str);
        int count = 0;
        for (size_t i = 0; i < n; i++) {
                struct stat st;
                if (stat(files[i], &st) < 0 || !S_ISREG(st.st_mode)) {
                        free(files[i]);
                        continue;
                }
                uint8_t *data = NULL;
                size_t len = 0;
                T_CASE(files[i]);
                int r = read_all(files[i], &data, &len);
                if (r < 0)
                        CHECK_MSG(r == 0, "cannot read %s: %s", files[i], strerror(-r));
                if (r == 0) {
                        /* announce first: if the harness crashes, the log names the input */
                        fprintf(stderr, "replay %s %s (%zu bytes)\n", name, files[i], len);
                        (void) fn(data, len); /* always 0: only a crash or abort fails */
                        count++;
                }
                free(data);
                free(files[i]);
        }
        free(files);
        return count;
}

int main(void) {
        const char *base = getenv("VMG_FUZZ_DIR");
        if (!base || !*base)
                base = "tests/fuzz";
        fz_init(0);
        int total = 0;

        for (size_t i = 0; i < sizeof(harnesses) / sizeof(harnesses[0]); i++) {
                char dir[PATH_MAX];
                T_CASE(harnesses[i].name);

                /* Every harness has seeds: a missing directory means the test runs from the
                 * wrong place, and must not pass by replaying nothing. */
                snprintf(dir, sizeof(dir), "%s/corpus/%s", base, harnesses[i].name);
                int seeds = replay_dir(dir, harnesses[i].name, harnesses[i].fn);
                T_CASE(harnesses[i].name);
                CHECK_MSG(seeds > 0, "no seed inputs in %s", dir);

                snprintf(dir, sizeof(dir), "%s/regressions/%s", base, harnesses[i].name);
                int regs = replay_dir(dir, harnesses[i].name, harnesses[i].fn);
                printf("%-14s %3d seeds, %3d regression inputs replayed\n", harnesses[i].name,
                       seeds, regs < 0 ? 0 : regs);
                total += (seeds < 0 ? 0 : seeds) + (regs < 0 ? 0 : regs);
        }
        printf("%d inputs replayed without crash (a crash or an abort on a broken invariant is "
               "the only failure an input can give; not counted as checks)\n", total);
        return t_summary();
}
