/* The journal of original values, as found on disk after a crash: the input is
 * <state_dir>/journal.json. A journal that loads must only hold entries that restore can
 * use safely (every field set, paths that cannot climb out of a cgroup root); one that
 * does not load is refused with -EBADMSG, never replaced. Nothing is written back: saving
 * is not a parser, and an fsync per input would make the fuzzer crawl. */
#include <errno.h>
#include <string.h>

#include "controller/act/journal.h"
#include "tests/fuzz/fuzz.h"

int vmg_fuzz_journal(const uint8_t *data, size_t size) {
        const char *dir = fz_dir("journal");
        fz_write(dir, VMG_JOURNAL_FILE, (const char *) data, size);

        struct vmg_journal *j = NULL;
        int r = vmg_journal_open(dir, &j);
        if (r < 0) {
                FZ_ASSERT(r == -EBADMSG || r == -ENOMEM);
                FZ_ASSERT(!j);
                return 0;
        }
        FZ_ASSERT(j);
        size_t n = vmg_journal_count(j);
        for (size_t i = 0; i < n; i++) {
                const struct vmg_journal_entry *e = vmg_journal_get(j, i);
                FZ_ASSERT(e && e->uuid && e->name && e->kind && e->root && e->path && e->key &&
                          e->original && e->written);
                FZ_ASSERT(e->path[0] && e->path[0] != '/');
                FZ_ASSERT(strncmp(e->path, "../", 3) != 0 && strcmp(e->path, "..") != 0 &&
                          !strstr(e->path, "/../"));
                size_t pl = strlen(e->path);
                FZ_ASSERT(pl < 3 || strcmp(e->path + pl - 3, "/..") != 0);
                struct vmg_knob k = { e->kind, e->root, e->path, e->key };
                FZ_ASSERT(vmg_journal_find(j, e->uuid, &k) != NULL);
                FZ_ASSERT(vmg_journal_judge(e, e->original) == VMG_JV_ORIGINAL);
                if (strcmp(e->written, e->original) != 0)
                        FZ_ASSERT(vmg_journal_judge(e, e->written) == VMG_JV_RESTORE);
        }
        FZ_ASSERT(vmg_journal_get(j, n) == NULL);
        FZ_ASSERT(vmg_journal_free(j) == NULL);
        return 0;
}

VMG_FUZZ_ENTRY(vmg_fuzz_journal)
