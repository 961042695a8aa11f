#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

static int max_level = LOG_INFO;
static int stderr_is_journal(void);

void log_set_max_level(int level) { max_level = level; }

/* journald sets JOURNAL_STREAM to "dev:ino" of the stream it gave us; if our stderr is
 * that stream, structured entries go to the journal directly. */
bool log_to_journal(void) { return stderr_is_journal(); }

static int stderr_is_journal(void) {
        static int cached = -1;
        if (cached >= 0)
                return cached;
        cached = 0;
        const char *e = getenv("JOURNAL_STREAM");
        if (!e)
                return cached;
        unsigned long long dev, ino;
        if (sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return cached;
        struct stat st;
        if (fstat(STDERR_FILENO, &st) < 0)
                return cached;
        cached = st.st_dev == (dev_t) dev && st.st_ino == (ino_t) ino;
        return cached;
}

int log_internal(int level, int err, const char *file, int line, const char *func,
                 const char *fmt, ...) {
        int saved = errno;
        if (err < 0)
                err = -err;
        if (level <= max_level) {
                char msg[2048];
                va_list ap;
                va_start(ap, fmt);
                if (err)
                        errno = err; /* lets callers use %m */
                vsnprintf(msg, sizeof msg, fmt, ap);
                va_end(ap);
                if (stderr_is_journal())
                        sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", level,
                                        "CODE_FILE=%s", file, "CODE_LINE=%d", line,
                                        "CODE_FUNC=%s", func, err ? "ERRNO=%d" : NULL, err,
                                        NULL);
                else
                        fprintf(stderr, "vmguard: %s\n", msg);
        }
        errno = saved;
        return -err;
}
