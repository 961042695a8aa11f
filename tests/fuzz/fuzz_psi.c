/* PSI text (/proc/pressure/{cpu,io,memory}, a cgroup's *.pressure). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "probes/procfs.h"
#include "tests/fuzz/fuzz.h"

int vmg_fuzz_psi(const uint8_t *data, size_t size) {
        char *s = fz_strndup(data, size);
        struct vmg_psi psi;
        memset(&psi, 0x5A, sizeof(psi));
        int r = vmg_psi_parse(s, &psi);
        FZ_ASSERT(r == 0 || r == -EINVAL || r == -ERANGE);
        if (r == 0)
                FZ_ASSERT(psi.valid);
        else
                FZ_ASSERT(psi.some_us == 0x5A5A5A5A5A5A5A5Aull);
        /* the "some" line is required: text without one never parses */
        if (r == 0)
                FZ_ASSERT(strstr(s, "some ") != NULL);
        free(s);
        return 0;
}

VMG_FUZZ_ENTRY(vmg_fuzz_psi)
