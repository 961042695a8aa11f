#define _GNU_SOURCE /* asprintf() */
#include "controller/act/sysctl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/macros.h"

struct vmg_sysctl {
        int sys_fd; /* <proc_root>/sys */
        char *root;  /* for logs */
        struct vmg_journal *journal;
};

int vmg_sysctl_new(const char *proc_root, struct vmg_journal *journal, struct vmg_sysctl **ret) {
        if (!journal)
                return -EINVAL;
        _cleanup_free_ char *root = NULL;
        if (asprintf(&root, "%s/sys", proc_root ? proc_root : VMG_PROC_ROOT) < 0)
                return -ENOMEM;
        int fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        struct vmg_sysctl *s = calloc(1, sizeof *s);
        if (!s) {
                close(fd);
                return -ENOMEM;
        }
        *s = (struct vmg_sysctl){ .sys_fd = fd, .root = TAKE_PTR(root), .journal = journal };
        *ret = s;
        return 0;
}

struct vmg_sysctl *vmg_sysctl_free(struct vmg_sysctl *s) {
        if (!s)
                return NULL;
        close(s->sys_fd);
        free(s->root);
        free(s);
        return NULL;
}

int vmg_sysctl_read(struct vmg_sysctl *s, const char *name, char **ret) {
        char buf[64];
        ssize_t n = vmg_read_text_at(s->sys_fd, name, 0, buf, sizeof buf);
        if (n < 0)
                return (int) n;
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
                buf[--n] = '\0';
        *ret = strdup(buf);
        return *ret ? 0 : -ENOMEM;
}

static int sysctl_write(struct vmg_sysctl *s, const char *name, const char *value) {
        _cleanup_close_ int fd = vmg_open_beneath(s->sys_fd, name, O_WRONLY);
        if (fd < 0)
                return fd;
        size_t len = strlen(value);
        ssize_t n = write(fd, value, len);
        if (n < 0)
                return -errno;
        return (size_t) n == len ? 0 : -EIO;
}

int vmg_sysctl_set(struct vmg_sysctl *s, const char *name, const char *value) {
        _cleanup_free_ char *live = NULL;
        int r = vmg_sysctl_read(s, name, &live);
        if (r < 0)
                return r;
        if (strcmp(live, value) == 0)
                return 0;
        const struct vmg_knob k = { .kind = VMG_SYSCTL_KIND, .root = "", .path = name, .key = "" };
        r = vmg_journal_record(s->journal, VMG_SYSCTL_UUID, VMG_SYSCTL_UUID, &k, live, value);
        if (r < 0)
                return log_error_errno(r, "cannot journal the original \"%s\" of %s/%s: not changing it: %m",
                                       live, s->root, name);
        r = sysctl_write(s, name, value);
        if (r < 0) {
                (void) vmg_journal_unrecord(s->journal, VMG_SYSCTL_UUID, &k);
                return log_warning_errno(r, "cannot write \"%s\" to %s/%s: %m", value, s->root, name);
        }
        vmg_journal_committed(s->journal, VMG_SYSCTL_UUID, &k);
        log_info("set %s/%s to \"%s\" (was \"%s\"); the original is journaled and put back at stop",
                 s->root, name, value, live);
        return 1;
}

static int backend_read(void *userdata, const struct vmg_journal_entry *e, char **ret) {
        return vmg_sysctl_read(userdata, e->path, ret);
}

static int backend_write(void *userdata, const struct vmg_journal_entry *e, const char *value) {
        return sysctl_write(userdata, e->path, value);
}

void vmg_sysctl_journal_backend(struct vmg_sysctl *s, struct vmg_journal_backend *ret) {
        *ret = (struct vmg_journal_backend){
                .kind = VMG_SYSCTL_KIND, .read = backend_read, .write = backend_write, .userdata = s,
        };
}

int vmg_sysctl_restore_all(struct vmg_sysctl *s) {
        struct vmg_journal_backend b;
        vmg_sysctl_journal_backend(s, &b);
        return vmg_journal_restore(s->journal, VMG_SYSCTL_UUID, NULL, &b, 1);
}
