/* common/fileio.c: the atomic write every state file goes through, and the open that never
 * follows a symlink out of a hierarchy. On a mkdtemp() tree. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/macros.h"
#include "tests/fixtures/fake_tree.h"
#include "tests/harness.h"

static const char *at(const char *root, const char *rel) {
        static char buf[PATH_MAX];
        snprintf(buf, sizeof buf, "%s/%s", root, rel);
        return buf;
}

static const char *slurp(int dirfd, const char *name) {
        static char buf[256];
        ssize_t n = vmg_read_text_at(dirfd, name, O_NOFOLLOW, buf, sizeof buf);
        return n < 0 ? NULL : buf;
}

static void test_atomic_write(const char *root) {
        _cleanup_close_ int dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        struct stat st;

        T_CASE("atomic write: new file, mode, no temp left");
        CHECK_INT(vmg_write_file_atomic(dfd, "state.json", "{}\n", 3, 0600), 0);
        CHECK_STR(slurp(dfd, "state.json"), "{}\n");
        CHECK(fstatat(dfd, "state.json", &st, 0) == 0 && (st.st_mode & 0777) == 0600);
        CHECK(faccessat(dfd, "state.json.tmp", F_OK, 0) < 0);

        T_CASE("atomic write: replaces, a stale temp from a crash is no obstacle");
        fx_write(root, "state.json.tmp", "half a fi");
        CHECK_INT(vmg_write_file_atomic(dfd, "state.json", "{\"a\":1}", 7, 0600), 0);
        CHECK_STR(slurp(dfd, "state.json"), "{\"a\":1}");
        CHECK(faccessat(dfd, "state.json.tmp", F_OK, 0) < 0);

        T_CASE("atomic write: a symlink planted at the temp name is not followed");
        fx_write(root, "victim", "keep");
        fx_symlink(root, "victim", "link.json.tmp");
        CHECK_INT(vmg_write_file_atomic(dfd, "link.json", "x", 1, 0600), 0);
        CHECK_STR(slurp(dfd, "victim"), "keep");
        CHECK_STR(slurp(dfd, "link.json"), "x");

        T_CASE("atomic write: a directory at the temp name fails, the old file stays");
        fx_mkdir(root, "state.json.tmp");
        CHECK(vmg_write_file_atomic(dfd, "state.json", "new", 3, 0600) < 0);
        CHECK_STR(slurp(dfd, "state.json"), "{\"a\":1}");
        CHECK(rmdir(at(root, "state.json.tmp")) == 0);

        T_CASE("atomic write by path");
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/metrics.prom", root);
        CHECK_INT(vmg_write_file_atomic_path(path, "m 1\n", 4, 0644), 0);
        CHECK_STR(slurp(dfd, "metrics.prom"), "m 1\n");
        T_CASE("metrics textfile: a temp symlinked at the journal is not followed (issue 15)");
        /* Whoever owns the textfile directory plants metrics.prom.tmp -> journal.json: with
         * fopen(PATH.tmp, "w") the next write truncated the journal and the next start
         * refused it, losing every original value. */
        fx_write(root, "journal.json", "{\"version\":1,\"entries\":[]}");
        fx_symlink(root, "journal.json", "metrics.prom.tmp");
        CHECK_INT(vmg_write_file_atomic_path(path, "m 2\n", 4, 0644), 0);
        CHECK_STR(slurp(dfd, "journal.json"), "{\"version\":1,\"entries\":[]}");
        CHECK_STR(slurp(dfd, "metrics.prom"), "m 2\n");
        struct stat lst;
        CHECK(fstatat(dfd, "metrics.prom", &lst, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(lst.st_mode));
        snprintf(path, sizeof path, "%s/no/such/dir/metrics.prom", root);
        CHECK_INT(vmg_write_file_atomic_path(path, "m 1\n", 4, 0644), -ENOENT);
        snprintf(path, sizeof path, "%s/", root);
        CHECK_INT(vmg_write_file_atomic_path(path, "m 1\n", 4, 0644), -EISDIR);
}

static void test_open_beneath(const char *root) {
        fx_write(root, "cg/machine/vm1/cpu.max", "max 100000\n");
        fx_mkdir(root, "elsewhere");
        fx_write(root, "elsewhere/cpu.max", "max 100000\n");
        fx_symlink(root, "../elsewhere", "cg/machine/evil");
        fx_symlink(root, "vm1/cpu.max", "cg/machine/link.max");
        _cleanup_close_ int cg = open(at(root, "cg"), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        struct {
                const char *path;
                int flags;
                int want; /* 0: opens */
        } cases[] = {
                { "machine/vm1/cpu.max", O_RDONLY, 0 },
                { "machine/./vm1/cpu.max", O_RDONLY, 0 },
                { "machine//vm1", O_RDONLY | O_DIRECTORY, 0 },
                { "", O_RDONLY | O_DIRECTORY, 0 },
                { "machine/evil/cpu.max", O_RDONLY, -ELOOP },
                { "machine/evil", O_RDONLY | O_DIRECTORY, -ELOOP },
                { "machine/link.max", O_RDONLY, -ELOOP },
                { "../elsewhere/cpu.max", O_RDONLY, -EINVAL },
                { "machine/../../elsewhere", O_RDONLY | O_DIRECTORY, -EINVAL },
                { "/etc/passwd", O_RDONLY, -EINVAL },
                { "machine/none/cpu.max", O_RDONLY, -ENOENT },
        };
        T_CASE("open beneath: symlinks, .., absolute paths");
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                int fd = vmg_open_beneath(cg, cases[i].path, cases[i].flags);
                if (cases[i].want == 0)
                        CHECK_MSG(fd >= 0, "%s: %d", cases[i].path, fd);
                else
                        CHECK_MSG(fd == cases[i].want, "%s: %d, expected %d", cases[i].path, fd,
                                  cases[i].want);
                if (fd >= 0)
                        close(fd);
        }
}

int main(void) {
        char root[512]; /* short, so every path built from it fits PATH_MAX */
        fx_tmpdir(root, sizeof root);
        test_atomic_write(root);
        test_open_beneath(root);
        fx_rmtree(root, "");
        return t_summary();
}
