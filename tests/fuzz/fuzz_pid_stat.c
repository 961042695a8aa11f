/* /proc/PID/stat: comm may hold spaces and ')' (a QEMU renamed by -name), fields after it
 * are counted from the last ')'. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "probes/procfs.h"
#include "tests/fuzz/fuzz.h"

int vmg_fuzz_pid_stat(const uint8_t *data, size_t size) {
        char *s = fz_strndup(data, size);
        struct vmg_pid_stat st;
        memset(&st, 0x5A, sizeof(st));
        int r = vmg_parse_pid_stat(s, &st);
        FZ_ASSERT(r == 0 || r == -EINVAL || r == -ERANGE);
        if (r == 0) {
                FZ_ASSERT(memchr(st.comm, 0, sizeof(st.comm)));
                FZ_ASSERT(st.state != 0);
                FZ_ASSERT(strchr(s, '(') && strrchr(s, ')'));
        } else {
                FZ_ASSERT(st.utime_ticks == 0x5A5A5A5A5A5A5A5Aull);
        }
        free(s);
        return 0;
}

VMG_FUZZ_ENTRY(vmg_fuzz_pid_stat)
