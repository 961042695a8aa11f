/* libFuzzer harnesses for every parser of vmguard, and the helpers they share. Each harness
 * is a plain function vmg_fuzz_NAME(data, size) so that the fuzz build (clang, libFuzzer,
 * ASan+UBSan; tests/fuzz/module.mk) and the normal unit-test build
 * (tests/unit/test_fuzz_regressions.c, which replays tests/fuzz/regressions/NAME/) run the
 * very same code. Every harness returns 0; a broken invariant aborts, which is a crash for
 * libFuzzer and a failed test for the runner. */
#pragma once
#include <stddef.h>
#include <stdint.h>

int vmg_fuzz_policy(const uint8_t *data, size_t size);        /* tenant and host JSON */
int vmg_fuzz_units(const uint8_t *data, size_t size);         /* vmg_parse_* */
int vmg_fuzz_psi(const uint8_t *data, size_t size);           /* vmg_psi_parse */
int vmg_fuzz_pid_stat(const uint8_t *data, size_t size);      /* vmg_parse_pid_stat */
int vmg_fuzz_procfs_files(const uint8_t *data, size_t size);  /* procfs readers on a fake /proc */
int vmg_fuzz_cgroup_files(const uint8_t *data, size_t size);  /* vmg_cgroup_vm_read on a fake tree */
int vmg_fuzz_mountinfo(const uint8_t *data, size_t size);     /* vmg_cgroup_ctx_new + find_domain */
int vmg_fuzz_domxml(const uint8_t *data, size_t size);        /* vmg_domxml_parse */
int vmg_fuzz_journal(const uint8_t *data, size_t size);       /* vmg_journal_open on a corrupt file */
int vmg_fuzz_names(const uint8_t *data, size_t size);         /* guest names: engine buffers, metrics */

/* ---- helpers (tests/fuzz/fuzz_util.c) ---- */

/* A malloc'ed NUL-terminated copy of the input (aborts on OOM: never a finding). */
char *fz_strndup(const uint8_t *data, size_t size);

/* Multi-file inputs: the input is cut at NUL bytes (kernel text files never hold one) into
 * at most max parts; returns how many parts there are. A part that the input does not
 * reach, or that is exactly "-", stands for "file absent" (fz_absent). Each part is
 * NUL-terminated in place in the copy *buf (free it). */
struct fz_part {
        const char *text;
        size_t len;
};
size_t fz_split(const uint8_t *data, size_t size, char **buf, struct fz_part *parts, size_t max);
/* true when part i of n stands for an absent file. */
int fz_absent(const struct fz_part *parts, size_t n, size_t i);

/* A directory of its own for harness `name`, created once per process under $TMPDIR (or
 * /dev/shm, or /tmp) and removed at exit. */
const char *fz_dir(const char *name);
/* Writes dir/rel (parents created) with exactly len bytes; aborts on failure. */
void fz_write(const char *dir, const char *rel, const char *content, size_t len);
/* Removes dir/rel if present. */
void fz_unlink(const char *dir, const char *rel);
/* Creates dir/rel and its parents. */
void fz_mkdirs(const char *dir, const char *rel);

/* Aborts with a message on stderr when cond is false: a broken contract is a finding. */
#define FZ_ASSERT(cond)                                                                   \
        do {                                                                              \
                if (!(cond))                                                              \
                        fz_fail(__FILE__, __LINE__, #cond);                               \
        } while (0)
_Noreturn void fz_fail(const char *file, int line, const char *what);

/* Debug-level logging, so the format paths of every log call run too; in the fuzzer the
 * log lines go to /dev/null (VMG_FUZZ_VERBOSE=1 keeps them). */
void fz_init(int quiet);

#ifdef VMG_FUZZ_MAIN
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
#define VMG_FUZZ_ENTRY(fn)                                                                \
        int LLVMFuzzerInitialize(int *argc, char ***argv) {                               \
                (void) argc, (void) argv;                                                 \
                fz_init(1);                                                               \
                return 0;                                                                 \
        }                                                                                 \
        int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {                    \
                return fn(data, size);                                                    \
        }
#else
#define VMG_FUZZ_ENTRY(fn)
#endif
