/* The procfs readers on a fake /proc: the input holds the files' contents cut at NUL bytes
 * (see fz_split), in the order of `files` below; a missing part or "-" is an absent
 * file. Then every reader runs, as the monitor would on a host (PSI, /proc/stat) and
 * on one QEMU process with one thread. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "probes/procfs.h"
#include "tests/fuzz/fuzz.h"

#define PID 4242
#define TID 4243

static const char *const files[] = {
        "pressure/cpu",
        "pressure/io",
        "pressure/memory",
        "stat",
        "4242/stat",
        "4242/io",
        "4242/task/4243/schedstat",
        "4242/task/4243/comm",
        "4242/task/4243/stat",
        "sys/kernel/task_delayacct",
};
enum { N_FILES = sizeof(files) / sizeof(files[0]) };

static bool vanished_or_bad(int r) {
        return r == -ENOENT || r == -EINVAL || r == -ERANGE;
}

int vmg_fuzz_procfs_files(const uint8_t *data, size_t size) {
        const char *root = fz_dir("procfs");
        struct fz_part parts[N_FILES];
        char *buf;
        size_t n = fz_split(data, size, &buf, parts, N_FILES);
        int r;

        for (size_t i = 0; i < N_FILES; i++) {
                if (fz_absent(parts, n, i))
                        fz_unlink(root, files[i]);
                else
                        fz_write(root, files[i], parts[i].text, parts[i].len);
        }

        struct vmg_procfs *p = NULL;
        r = vmg_procfs_new(root, &p);
        FZ_ASSERT(r == 0 && p);

        struct vmg_host_counters host;
        memset(&host, 0, sizeof(host));
        r = vmg_procfs_read_host(p, &host);
        FZ_ASSERT(r == 0 || vanished_or_bad(r));
        if (r == 0)
                FZ_ASSERT(host.stat_valid);

        bool on;
        r = vmg_procfs_task_delayacct(p, &on);
        FZ_ASSERT(r == 0 || r == -EINVAL);

        struct vmg_pid_stat st;
        r = vmg_procfs_pid_stat(p, PID, 0, &st);
        FZ_ASSERT(r == 0 || vanished_or_bad(r));
        r = vmg_procfs_pid_stat(p, PID, TID, &st);
        FZ_ASSERT(r == 0 || vanished_or_bad(r));

        struct vmg_pid_io io;
        r = vmg_procfs_pid_io(p, PID, &io);
        FZ_ASSERT(r == 0 || vanished_or_bad(r));

        struct vmg_schedstat ss;
        r = vmg_procfs_schedstat(p, PID, TID, &ss);
        FZ_ASSERT(r == 0 || vanished_or_bad(r));

        char comm[16];
        r = vmg_procfs_comm(p, PID, TID, comm, sizeof(comm));
        FZ_ASSERT(r == 0 || r == -ENOENT);
        if (r == 0) {
                FZ_ASSERT(strlen(comm) < sizeof(comm));
                (void) vmg_is_vcpu_thread_name(comm);
        }

        pid_t *tids = NULL;
        size_t n_tids = 0;
        r = vmg_procfs_list_tids(p, PID, &tids, &n_tids);
        FZ_ASSERT(r == 0 || r == -ENOENT);
        free(tids);

        /* the per-tick path: /proc/PID/io and the vCPU threads' schedstat kept open */
        struct vmg_proc_qemu *q = NULL;
        r = vmg_proc_qemu_open(p, PID, "fuzz-vm", &q);
        if (r == 0) {
                struct vmg_vm_counters c;
                memset(&c, 0, sizeof(c));
                for (int tick = 0; tick < 2; tick++) {
                        r = vmg_proc_qemu_read(q, &c);
                        FZ_ASSERT(r == 0 || vanished_or_bad(r));
                        if (r == 0)
                                FZ_ASSERT(c.n_vcpus <= 1);
                }
                vmg_proc_qemu_free(q);
        } else {
                FZ_ASSERT(r == -ENOENT);
        }

        vmg_procfs_free(p);
        free(buf);
        return 0;
}

VMG_FUZZ_ENTRY(vmg_fuzz_procfs_files)
