/* Internals shared by the policy module's files (parse.c, tenant.c, host.c, load.c,
 * policy.c); not for other modules, which use policies/policy.h. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policies/policy.h"

/* Policy files are a few kilobytes; a bigger one is a mistake (a log or an image copied into
 * tenants.d), not a policy. */
#define POLICY_FILE_MAX (1024 * 1024)

/* Defaults, used when the host file or a field is absent. */
/* Counters and PSI totals are exact at any interval, but per-second rates over a shorter
 * tick are dominated by scheduling noise; the lab's harm episodes last seconds. */
#define DEFAULT_TICK_NS (1 * NSEC_PER_SEC)
/* The lab host showed ~0.1% io "some" calm and 10-25% under disk noise (docs/LAB.md). */
#define DEFAULT_PSI_IO_SOME 0.10
#define DEFAULT_PSI_CPU_SOME 0.20
#define DEFAULT_VM_STEAL 0.20
/* A victim's latency needs seconds to reflect a new limit; moving sooner chases noise, and
 * each cpu.max write walks the task-group tree. */
#define DEFAULT_MIN_HOLD_NS (5 * NSEC_PER_SEC)
/* Tighten fast and loosen slower, so a release does not bring the harm straight back. */
#define DEFAULT_STEP_DOWN 0.5
#define DEFAULT_STEP_UP 1.5
/* Sustained noise, not a burst: a 10 s backup flush should not trip a throttle. */
#define DEFAULT_NOISY_FOR_NS (10 * NSEC_PER_SEC)
/* Long enough that a VM whose load is merely held down by the throttle is not released and
 * re-throttled every few ticks. */
#define DEFAULT_CALM_FOR_NS (30 * NSEC_PER_SEC)
#define DEFAULT_PRIORITY 5
/* The kernel truncates comm to 15 characters; a longer process name can never match. */
#define COMM_MAX 15
#define TENANT_NAME_MAX 63

/* One file being parsed: every error names it, with the line and column of the field. */
struct parse_ctx {
        const char *file;
        const char *buf;
        size_t len;
        struct vmg_policy_error *err;
};

enum quantity_id { Q_CPU, Q_BYTES, Q_IOPS, Q_BITS, Q_FRACTION };

/* parse.c: errors */
/* Fills err (when not NULL) and returns r. */
int pol_set_error(struct vmg_policy_error *err, int r, const char *file, int line,
        int column, const char *field, const char *fmt, ...)
        __attribute__((format(printf, 7, 8)));

/* parse.c: the walker */
/* Line and column of the key at dotted path field ("limits.cpu.floor") in buf; 0 when not
 * found. */
void pol_locate(const char *buf, size_t len, const char *field, int *line, int *column);

/* parse.c: parsing context and typed getters. Each returns 0, -EINVAL with c->err filled
 * (file:line:column, field, message), or -ENOMEM; outputs are written only on success. */
int pol_perr(struct parse_ctx *c, const char *field, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
int pol_oom(struct parse_ctx *c);
/* "parent.key" and "parent[i]" into buf; returns buf. */
const char *pol_join(char *buf, size_t len, const char *parent, const char *key);
const char *pol_join_index(char *buf, size_t len, const char *parent, size_t i);
/* "a string", "an object", ... for messages. */
const char *pol_type_name(const json_t *v);
/* Rejects keys outside allowed (NULL-terminated), suggesting the closest one. */
int pol_check_keys(struct parse_ctx *c, json_t *obj, const char *path,
        const char *const *allowed);
int pol_get_object(struct parse_ctx *c, json_t *parent, const char *path, const char *key,
        json_t **ret);
int pol_get_string(struct parse_ctx *c, json_t *obj, const char *path, const char *key,
        const char **ret);
int pol_get_quantity(struct parse_ctx *c, json_t *obj, const char *path, const char *key,
        enum quantity_id k, double *ret);
int pol_get_duration(struct parse_ctx *c, json_t *obj, const char *path, const char *key,
        uint64_t min, uint64_t max, uint64_t *ret);
int pol_get_fraction(struct parse_ctx *c, json_t *obj, const char *path, const char *key,
        double min, double max, bool min_exclusive, double *ret);
/* "30s", "5m", "1h30m" into buf; returns buf. */
const char *pol_format_duration(uint64_t ns, char *buf, size_t len);
/* jansson, then the checks shared by both file kinds: syntax, duplicate keys, a top-level
 * object. */
int pol_load_json(struct parse_ctx *c, json_t **ret);

/* host.c */
/* The host policy with every default filled in (no host file, or before parsing one). */
void pol_host_defaults(struct vmg_host_policy *h);
