/* Logging: to the journal when stderr is connected to it (JOURNAL_STREAM), to stderr
 * otherwise. Every log_* call that takes an error returns it as a negative errno, so
 * "return log_error_errno(r, ...)" logs and propagates in one line. */
#pragma once
#include <stdarg.h>
#include <stdbool.h>
#include <syslog.h>

/* true when stderr is journald's stream: structured entries then go to the journal. */
bool log_to_journal(void);

void log_set_max_level(int level);

/* Returns -abs(err) (or 0 when err is 0). */
int log_internal(int level, int err, const char *file, int line, const char *func,
                 const char *fmt, ...) __attribute__((format(printf, 6, 7)));

#define log_full_errno(level, err, ...) \
        log_internal(level, err, __FILE__, __LINE__, __func__, __VA_ARGS__)
#define log_debug(...)   (void) log_full_errno(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...)    (void) log_full_errno(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...)  (void) log_full_errno(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) (void) log_full_errno(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...)   (void) log_full_errno(LOG_ERR, 0, __VA_ARGS__)
#define log_debug_errno(e, ...)   log_full_errno(LOG_DEBUG, e, __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, e, __VA_ARGS__)
#define log_error_errno(e, ...)   log_full_errno(LOG_ERR, e, __VA_ARGS__)
