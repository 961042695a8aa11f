/* The guest selftest is linked statically and Debian ships no libsystemd.a. common/log.c
 * calls sd_journal_send() only when stderr is journald's stream, which never happens on
 * the guest's serial console; this stand-in keeps the symbol resolvable and, should it be
 * reached anyway, prints the MESSAGE= field so nothing is lost. sd-journal.h turns
 * sd_journal_send(...) into sd_journal_send_with_location(file, line, func, ...), so that
 * is the symbol log.o needs. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-journal.h>

int sd_journal_send_with_location(const char *file, const char *line, const char *func,
                                  const char *format, ...) {
        va_list ap;
        (void) file;
        (void) line;
        (void) func;
        va_start(ap, format);
        /* log.c's first field is always "MESSAGE=%s". */
        if (format && strcmp(format, "MESSAGE=%s") == 0)
                fprintf(stderr, "vmguard: %s\n", va_arg(ap, const char *));
        va_end(ap);
        return 0;
}
