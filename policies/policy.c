/* Tenant and host policy files: JSON in, a validated read-only struct out. Every error names
 * file, line, column and field. jansson keeps no positions per value, so a small scanner
 * (the "walker" below) maps a field path such as "limits.cpu.floor" back to the line and
 * column of its key in the buffer, only when an error or a VM matcher needs one. */
#include "policies/policy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#include <sys/stat.h>

#include "common/macros.h"

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

/* ---------------------------------------------------------------------------------------
 * Errors */

static int set_error_v(struct vmg_policy_error *err, int r, const char *file, int line,
                       int column, const char *field, const char *fmt, va_list ap) {
        if (!err)
                return r;
        snprintf(err->file, sizeof err->file, "%s", file ? file : "");
        err->line = line;
        err->column = column;
        snprintf(err->field, sizeof err->field, "%s", field ? field : "");
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        return r;
}

static int set_error(struct vmg_policy_error *err, int r, const char *file, int line,
                     int column, const char *field, const char *fmt, ...)
        __attribute__((format(printf, 7, 8)));
static int set_error(struct vmg_policy_error *err, int r, const char *file, int line,
                     int column, const char *field, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        set_error_v(err, r, file, line, column, field, fmt, ap);
        va_end(ap);
        return r;
}

const char *vmg_policy_error_format(const struct vmg_policy_error *err, char *buf,
                                    size_t len) {
        char where[300];
        if (err->line > 0)
                snprintf(where, sizeof where, "%s:%d:%d", err->file, err->line, err->column);
        else
                snprintf(where, sizeof where, "%s", err->file);
        if (err->field[0])
                snprintf(buf, len, "%s: %s: %s", where, err->field, err->message);
        else
                snprintf(buf, len, "%s: %s", where, err->message);
        return buf;
}

/* ---------------------------------------------------------------------------------------
 * The walker: a tolerant scan of a JSON buffer that reports every key (and array element)
 * with its dotted path ("services[1].name") and position. Columns count characters, not
 * bytes, like jansson's own error columns. */

typedef bool (*visit_fn)(void *userdata, const char *path, int line, int column);

struct walker {
        const char *p, *end;
        int line, column;
        visit_fn visit;
        void *userdata;
};

static void w_next(struct walker *w) {
        unsigned char ch = (unsigned char) *w->p++;
        if (ch == '\n') {
                w->line++;
                w->column = 1;
        } else if ((ch & 0xC0) != 0x80) {
                w->column++;
        }
}

static void w_space(struct walker *w) {
        while (w->p < w->end && (*w->p == ' ' || *w->p == '\t' || *w->p == '\r' ||
                                 *w->p == '\n'))
                w_next(w);
}

/* Reads a string token, decoding the escapes a key may plausibly use; a non-ASCII \u
 * escape becomes '?' (such a key then falls back to its parent's position). */
static int w_string(struct walker *w, char *out, size_t outlen) {
        size_t n = 0;
        if (w->p >= w->end || *w->p != '"')
                return -EINVAL;
        w_next(w);
        while (w->p < w->end && *w->p != '"') {
                char ch = *w->p;
                if (ch == '\\') {
                        w_next(w);
                        if (w->p >= w->end)
                                return -EINVAL;
                        ch = *w->p;
                        switch (ch) {
                        case 'n': ch = '\n'; break;
                        case 't': ch = '\t'; break;
                        case 'r': ch = '\r'; break;
                        case 'b': ch = '\b'; break;
                        case 'f': ch = '\f'; break;
                        case 'u': {
                                if (w->end - w->p < 5)
                                        return -EINVAL;
                                char hex[5] = { w->p[1], w->p[2], w->p[3], w->p[4], 0 };
                                long cp = strtol(hex, NULL, 16);
                                ch = cp > 0 && cp < 0x80 ? (char) cp : '?';
                                for (int i = 0; i < 4; i++)
                                        w_next(w);
                                break;
                        }
                        default: break; /* '"', '\\', '/' stand for themselves */
                        }
                }
                if (n + 1 < outlen)
                        out[n++] = ch;
                w_next(w);
        }
        if (w->p >= w->end)
                return -EINVAL;
        w_next(w);
        if (outlen)
                out[n] = 0;
        return 0;
}

/* Returns 1 when the visitor asked to stop, 0 at the end of the value, -EINVAL on input it
 * cannot follow (positions found up to there are still reported). */
static int w_value(struct walker *w, char *path, size_t plen, int depth) {
        size_t base = strlen(path);
        int r;

        w_space(w);
        if (w->p >= w->end || depth > 64)
                return -EINVAL;
        if (*w->p == '{' || *w->p == '[') {
                bool object = *w->p == '{';
                char close = object ? '}' : ']';
                w_next(w);
                w_space(w);
                if (w->p < w->end && *w->p == close) {
                        w_next(w);
                        return 0;
                }
                for (size_t i = 0;; i++) {
                        w_space(w);
                        int line = w->line, column = w->column;
                        if (object) {
                                char key[128];
                                if (w_string(w, key, sizeof key) < 0)
                                        return -EINVAL;
                                snprintf(path + base, plen - base, "%s%s", base ? "." : "",
                                         key);
                                if (w->visit(w->userdata, path, line, column))
                                        return 1;
                                w_space(w);
                                if (w->p >= w->end || *w->p != ':')
                                        return -EINVAL;
                                w_next(w);
                        } else {
                                snprintf(path + base, plen - base, "[%zu]", i);
                                if (w->visit(w->userdata, path, line, column))
                                        return 1;
                        }
                        r = w_value(w, path, plen, depth + 1);
                        if (r != 0)
                                return r;
                        path[base] = 0;
                        w_space(w);
                        if (w->p < w->end && *w->p == ',') {
                                w_next(w);
                                continue;
                        }
                        if (w->p < w->end && *w->p == close) {
                                w_next(w);
                                return 0;
                        }
                        return -EINVAL;
                }
        }
        if (*w->p == '"') {
                char scratch[1];
                return w_string(w, scratch, sizeof scratch);
        }
        const char *start = w->p;
        while (w->p < w->end && !strchr(",]} \t\r\n", *w->p))
                w_next(w);
        return w->p > start ? 0 : -EINVAL;
}

static void walk(const char *buf, size_t len, visit_fn visit, void *userdata) {
        struct walker w = { .p = buf, .end = buf + len, .line = 1, .column = 1,
                            .visit = visit, .userdata = userdata };
        char path[512] = "";
        (void) w_value(&w, path, sizeof path, 0);
}

struct find_pos {
        const char *want;
        int line, column;
        bool found;
};

static bool find_pos_visit(void *userdata, const char *path, int line, int column) {
        struct find_pos *f = userdata;
        if (strcmp(path, f->want) != 0)
                return false;
        f->line = line;
        f->column = column;
        f->found = true;
        return true;
}

/* Position of field's key (or array element); a field that is not in the file (a missing
 * required key) gets the position of its nearest ancestor that is. */
static void locate(const char *buf, size_t len, const char *field, int *line, int *column) {
        char want[512];
        snprintf(want, sizeof want, "%s", field);
        while (want[0]) {
                struct find_pos f = { .want = want };
                walk(buf, len, find_pos_visit, &f);
                if (f.found) {
                        *line = f.line;
                        *column = f.column;
                        return;
                }
                char *dot = strrchr(want, '.'), *bracket = strrchr(want, '[');
                char *cut = dot > bracket ? dot : bracket;
                if (!cut)
                        break;
                *cut = 0;
        }
        /* the top-level value itself */
        struct walker w = { .p = buf, .end = buf + len, .line = 1, .column = 1 };
        w_space(&w);
        *line = w.line;
        *column = w.column;
}

struct find_dup {
        struct seen {
                char *path;
                int line, column;
        } *seen;
        size_t n;
        bool found, oom;
        char path[256];
        int line, column, first_line, first_column;
};

static bool find_dup_visit(void *userdata, const char *path, int line, int column) {
        struct find_dup *d = userdata;
        for (size_t i = 0; i < d->n; i++)
                if (strcmp(d->seen[i].path, path) == 0) {
                        snprintf(d->path, sizeof d->path, "%s", path);
                        d->line = line;
                        d->column = column;
                        d->first_line = d->seen[i].line;
                        d->first_column = d->seen[i].column;
                        d->found = true;
                        return true;
                }
        struct seen *n = realloc(d->seen, (d->n + 1) * sizeof *n);
        if (!n) {
                d->oom = true;
                return true;
        }
        d->seen = n;
        d->seen[d->n].path = strdup(path);
        if (!d->seen[d->n].path) {
                d->oom = true;
                return true;
        }
        d->seen[d->n].line = line;
        d->seen[d->n].column = column;
        d->n++;
        return false;
}

/* ---------------------------------------------------------------------------------------
 * Parsing context and typed getters */

struct parse_ctx {
        const char *file;
        const char *buf;
        size_t len;
        struct vmg_policy_error *err;
};

static int perr(struct parse_ctx *c, const char *field, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int perr(struct parse_ctx *c, const char *field, const char *fmt, ...) {
        int line, column;
        locate(c->buf, c->len, field, &line, &column);
        va_list ap;
        va_start(ap, fmt);
        set_error_v(c->err, -EINVAL, c->file, line, column, field[0] ? field : "(top level)",
                    fmt, ap);
        va_end(ap);
        return -EINVAL;
}

static int oom(struct parse_ctx *c) {
        return set_error(c->err, -ENOMEM, c->file, 0, 0, "", "out of memory");
}

/* Field paths are short; a truncated one still names the right place in a message. */
static const char *join(char *buf, size_t len, const char *parent, const char *key) {
        if (snprintf(buf, len, "%s%s%s", parent, parent[0] ? "." : "", key) >= (int) len)
                buf[len - 1] = 0;
        return buf;
}

static const char *join_index(char *buf, size_t len, const char *parent, size_t i) {
        snprintf(buf, len, "%s[%zu]", parent, i);
        return buf;
}

static const char *type_name(const json_t *v) {
        switch (json_typeof(v)) {
        case JSON_OBJECT: return "an object";
        case JSON_ARRAY: return "an array";
        case JSON_STRING: return "a string";
        case JSON_INTEGER: return "an integer";
        case JSON_REAL: return "a number";
        case JSON_TRUE:
        case JSON_FALSE: return "a boolean";
        case JSON_NULL: return "null";
        }
        return "unknown";
}

/* Edit distance over keys folded to lower case without '_' and '-', so "throttleTo" and
 * "throttle-to" both find "throttle_to". */
static void fold_key(const char *s, char *out, size_t len) {
        size_t n = 0;
        for (; *s && n + 1 < len; s++)
                if (*s != '_' && *s != '-')
                        out[n++] = (char) tolower((unsigned char) *s);
        out[n] = 0;
}

static size_t edit_distance(const char *a, const char *b) {
        size_t la = strlen(a), lb = strlen(b);
        size_t row[64];
        if (la >= ARRAY_SIZE(row) || lb >= ARRAY_SIZE(row))
                return SIZE_MAX;
        for (size_t j = 0; j <= lb; j++)
                row[j] = j;
        for (size_t i = 1; i <= la; i++) {
                size_t diag = row[0];
                row[0] = i;
                for (size_t j = 1; j <= lb; j++) {
                        size_t up = row[j];
                        size_t best = diag + (a[i - 1] != b[j - 1]);
                        if (up + 1 < best)
                                best = up + 1;
                        if (row[j - 1] + 1 < best)
                                best = row[j - 1] + 1;
                        row[j] = best;
                        diag = up;
                }
        }
        return row[lb];
}

static const char *closest_key(const char *key, const char *const *allowed) {
        char fk[64], fa[64];
        const char *best = NULL;
        size_t best_d = SIZE_MAX;
        fold_key(key, fk, sizeof fk);
        for (size_t i = 0; allowed[i]; i++) {
                fold_key(allowed[i], fa, sizeof fa);
                size_t d = edit_distance(fk, fa);
                /* short keys tolerate one slip, longer ones two */
                size_t max = strlen(fa) >= 6 ? 2 : 1;
                if (d <= max && d < best_d) {
                        best = allowed[i];
                        best_d = d;
                }
        }
        return best;
}

static int check_keys(struct parse_ctx *c, json_t *obj, const char *path,
                      const char *const *allowed) {
        const char *key;
        json_t *v;
        json_object_foreach(obj, key, v) {
                bool known = false;
                for (size_t i = 0; allowed[i] && !known; i++)
                        known = strcmp(key, allowed[i]) == 0;
                if (known)
                        continue;
                char field[256], list[256] = "";
                join(field, sizeof field, path, key);
                const char *best = closest_key(key, allowed);
                if (best)
                        return perr(c, field, "unknown key \"%s\" (did you mean \"%s\"?)", key,
                                    best);
                for (size_t i = 0; allowed[i]; i++) {
                        if (allowed[i][0] == '$')
                                continue;
                        size_t n = strlen(list);
                        snprintf(list + n, sizeof list - n, "%s%s", n ? ", " : "", allowed[i]);
                }
                return perr(c, field, "unknown key \"%s\" (allowed here: %s)", key, list);
        }
        return 0;
}

static int get_object(struct parse_ctx *c, json_t *parent, const char *path, const char *key,
                      json_t **ret) {
        char field[256];
        json_t *v = key ? json_object_get(parent, key) : parent;
        if (!v) {
                *ret = NULL;
                return 0;
        }
        if (!json_is_object(v))
                return perr(c, key ? join(field, sizeof field, path, key) : path,
                            "must be an object, not %s", type_name(v));
        *ret = v;
        return 1;
}

/* 1 and *ret set when present, 0 when absent, -EINVAL when not a non-empty string. */
static int get_string(struct parse_ctx *c, json_t *obj, const char *path, const char *key,
                      const char **ret) {
        char field[256];
        json_t *v = json_object_get(obj, key);
        if (!v)
                return 0;
        join(field, sizeof field, path, key);
        if (!json_is_string(v))
                return perr(c, field, "must be a string, not %s", type_name(v));
        if (json_string_length(v) == 0)
                return perr(c, field, "must not be empty");
        if (strlen(json_string_value(v)) != json_string_length(v))
                return perr(c, field, "must not contain NUL characters");
        *ret = json_string_value(v);
        return 1;
}

enum quantity_id { Q_CPU, Q_BYTES, Q_IOPS, Q_BITS, Q_FRACTION };

static const struct quantity_kind {
        const char *what;
        const char *hint;
        bool bare_number_ok;
        int (*parse)(const char *s, double *ret);
        enum vmg_resource res; /* for formatting in range messages */
} quantity_kinds[] = {
        [Q_CPU] = { "CPU amount", "cores (\"1.5 cores\", 1.5) or percent of one core (\"150%\")",
                    true, vmg_parse_cpu, VMG_RES_CPU },
        [Q_BYTES] = { "byte rate",
                      "\"50MB/s\", \"512kB/s\" or \"50MiB/s\" (B, kB, MB, GB, TB, KiB, MiB, "
                      "GiB, TiB per second)",
                      false, vmg_parse_bytes_rate, VMG_RES_DISK_WRITE_BPS },
        [Q_IOPS] = { "I/O rate", "\"200iops\" or 200", true, vmg_parse_iops,
                     VMG_RES_DISK_WRITE_IOPS },
        [Q_BITS] = { "bit rate", "\"100Mbit/s\", \"1Gbit/s\" or \"500kbit/s\"", false,
                     vmg_parse_bits_rate, VMG_RES_NET_TX_BPS },
        [Q_FRACTION] = { "fraction", "\"80%\" or 0.8", true, vmg_parse_fraction,
                         VMG_RES_COUNT },
};

static int get_quantity(struct parse_ctx *c, json_t *obj, const char *path, const char *key,
                        enum quantity_id k, double *ret) {
        char field[256];
        const struct quantity_kind *q = &quantity_kinds[k];
        json_t *v = json_object_get(obj, key);
        double d;
        if (!v)
                return 0;
        join(field, sizeof field, path, key);
        if (json_is_number(v)) {
                if (!q->bare_number_ok)
                        return perr(c, field, "a bare number has no unit: write it as %s",
                                    q->hint);
                d = json_number_value(v);
                if (d < 0)
                        return perr(c, field, "must not be negative");
        } else if (json_is_string(v)) {
                const char *s = json_string_value(v);
                if (!*s)
                        return perr(c, field, "empty value: expected %s", q->hint);
                if (s[0] == '-')
                        return perr(c, field, "must not be negative");
                if (q->parse(s, &d) < 0)
                        return perr(c, field, "invalid %s \"%s\": expected %s", q->what, s,
                                    q->hint);
        } else {
                return perr(c, field, "must be %s like %s, not %s",
                            q->bare_number_ok ? "a string or number" : "a string", q->hint,
                            type_name(v));
        }
        *ret = d;
        return 1;
}

static const char *format_duration(uint64_t ns, char *buf, size_t len) {
        if (ns == 0)
                snprintf(buf, len, "0s");
        else if (ns % (3600 * NSEC_PER_SEC) == 0)
                snprintf(buf, len, "%lluh", (unsigned long long) (ns / (3600 * NSEC_PER_SEC)));
        else if (ns % (60 * NSEC_PER_SEC) == 0)
                snprintf(buf, len, "%llum", (unsigned long long) (ns / (60 * NSEC_PER_SEC)));
        else if (ns % NSEC_PER_SEC == 0)
                snprintf(buf, len, "%llus", (unsigned long long) (ns / NSEC_PER_SEC));
        else if (ns % NSEC_PER_MSEC == 0)
                snprintf(buf, len, "%llums", (unsigned long long) (ns / NSEC_PER_MSEC));
        else
                snprintf(buf, len, "%.6fs", (double) ns / NSEC_PER_SEC);
        return buf;
}

/* Reads an optional duration and checks it lies in [min, max]. */
static int get_duration(struct parse_ctx *c, json_t *obj, const char *path, const char *key,
                        uint64_t min, uint64_t max, uint64_t *ret) {
        char field[256], a[32], b[32];
        json_t *v = json_object_get(obj, key);
        uint64_t ns;
        if (!v)
                return 0;
        join(field, sizeof field, path, key);
        if (json_is_number(v))
                return perr(c, field,
                            "a bare number has no unit: write it as \"500ms\", \"30s\", \"2m\" "
                            "or \"1h\"");
        if (!json_is_string(v))
                return perr(c, field, "must be a duration string like \"30s\", not %s",
                            type_name(v));
        const char *s = json_string_value(v);
        if (!*s)
                return perr(c, field, "empty value: expected a duration like \"30s\"");
        if (s[0] == '-')
                return perr(c, field, "must not be negative");
        if (vmg_parse_duration(s, &ns) < 0)
                return perr(c, field,
                            "invalid duration \"%s\": expected \"500ms\", \"30s\", \"2m\" or "
                            "\"1h\"",
                            s);
        if (ns < min || ns > max)
                return perr(c, field, "%s is out of range: must be between %s and %s", s,
                            format_duration(min, a, sizeof a), format_duration(max, b, sizeof b));
        *ret = ns;
        return 1;
}

static int get_fraction(struct parse_ctx *c, json_t *obj, const char *path, const char *key,
                        double min, double max, bool min_exclusive, double *ret) {
        char field[256];
        double d;
        int r = get_quantity(c, obj, path, key, Q_FRACTION, &d);
        if (r <= 0)
                return r;
        join(field, sizeof field, path, key);
        if (d > max || d < min || (min_exclusive && d <= min))
                return perr(c, field, "%g%% is out of range: must be %s %g%% and at most %g%%",
                            d * 100, min_exclusive ? "above" : "at least", min * 100,
                            max * 100);
        *ret = d;
        return 1;
}

/* ---------------------------------------------------------------------------------------
 * Tenant files */

static enum quantity_id resource_kind(enum vmg_resource r) {
        switch (r) {
        case VMG_RES_CPU: return Q_CPU;
        case VMG_RES_DISK_READ_BPS:
        case VMG_RES_DISK_WRITE_BPS: return Q_BYTES;
        case VMG_RES_DISK_READ_IOPS:
        case VMG_RES_DISK_WRITE_IOPS: return Q_IOPS;
        default: return Q_BITS;
        }
}

/* Sanity ceilings: far above any real VM, low enough to catch a slipped unit or exponent. */
static double resource_max(enum vmg_resource r) {
        switch (r) {
        case VMG_RES_CPU: return 4096;                  /* cores */
        case VMG_RES_DISK_READ_BPS:
        case VMG_RES_DISK_WRITE_BPS: return 1e12;       /* 1 TB/s */
        case VMG_RES_DISK_READ_IOPS:
        case VMG_RES_DISK_WRITE_IOPS: return 1e8;       /* 100M iops */
        default: return 1e13;                           /* 10 Tbit/s */
        }
}

static int get_limit(struct parse_ctx *c, json_t *obj, const char *path, const char *key,
                     enum vmg_resource res, double *ret) {
        char field[256], buf[64];
        double d;
        int r = get_quantity(c, obj, path, key, resource_kind(res), &d);
        if (r <= 0)
                return r;
        join(field, sizeof field, path, key);
        /* 0 means "not set" in struct vmg_rule, so a written 0 would silently vanish */
        if (d <= 0)
                return perr(c, field, "must be greater than 0 (leave the key out for no limit)");
        if (d > resource_max(res))
                return perr(c, field, "%s is above the maximum of %s",
                            vmg_resource_format(res, d, buf, sizeof buf),
                            vmg_resource_format(res, resource_max(res), (char[64]){ 0 }, 64));
        *ret = d;
        return 1;
}

static int parse_rule(struct parse_ctx *c, json_t *v, const char *path, enum vmg_resource res,
                      struct vmg_rule *ret) {
        static const char *const keys[] = { "cap", "noisy_above", "for", "throttle_to",
                                            "floor", "calm_for", NULL };
        char field[256], a[64], b[64];
        struct vmg_rule rule = { .noisy_for_ns = DEFAULT_NOISY_FOR_NS,
                                 .calm_for_ns = DEFAULT_CALM_FOR_NS };
        int r;

        if (!json_is_object(v))
                return perr(c, path, "must be an object, not %s", type_name(v));
        r = check_keys(c, v, path, keys);
        if (r < 0)
                return r;
        if (json_object_size(v) == 0)
                return perr(c, path, "sets nothing: give a \"cap\" and/or \"noisy_above\" "
                                     "with \"throttle_to\"");

        bool has_cap, has_noisy, has_throttle, has_floor, has_for, has_calm;
        if ((r = get_limit(c, v, path, "cap", res, &rule.cap)) < 0)
                return r;
        has_cap = r;
        if ((r = get_limit(c, v, path, "noisy_above", res, &rule.noisy_above)) < 0)
                return r;
        has_noisy = r;
        if ((r = get_limit(c, v, path, "throttle_to", res, &rule.throttle_to)) < 0)
                return r;
        has_throttle = r;
        if ((r = get_limit(c, v, path, "floor", res, &rule.floor)) < 0)
                return r;
        has_floor = r;
        if ((r = get_duration(c, v, path, "for", 0, 3600 * NSEC_PER_SEC, &rule.noisy_for_ns)) < 0)
                return r;
        has_for = r;
        /* releasing sooner than a second after calm returns would flap with every tick */
        if ((r = get_duration(c, v, path, "calm_for", NSEC_PER_SEC, 24 * 3600 * NSEC_PER_SEC,
                              &rule.calm_for_ns)) < 0)
                return r;
        has_calm = r;

        if (has_noisy && !has_throttle)
                return perr(c, join(field, sizeof field, path, "noisy_above"),
                            "needs \"throttle_to\": the limit to apply while the VM is noisy");
        if (!has_noisy) {
                const char *orphan = has_throttle ? "throttle_to" : has_floor ? "floor"
                                   : has_for      ? "for"          : has_calm ? "calm_for" : NULL;
                if (orphan)
                        return perr(c, join(field, sizeof field, path, orphan),
                                    "only meaningful with \"noisy_above\", which is missing");
        }
        if (has_noisy) {
                rule.noisy = true;
                if (rule.throttle_to >= rule.noisy_above)
                        return perr(c, join(field, sizeof field, path, "throttle_to"),
                                    "%s must be below noisy_above (%s): a VM held there would "
                                    "still count as noisy",
                                    vmg_resource_format(res, rule.throttle_to, a, sizeof a),
                                    vmg_resource_format(res, rule.noisy_above, b, sizeof b));
                if (has_cap && rule.throttle_to > rule.cap)
                        return perr(c, join(field, sizeof field, path, "throttle_to"),
                                    "%s is above cap (%s)",
                                    vmg_resource_format(res, rule.throttle_to, a, sizeof a),
                                    vmg_resource_format(res, rule.cap, b, sizeof b));
                if (has_cap && rule.noisy_above >= rule.cap)
                        return perr(c, join(field, sizeof field, path, "noisy_above"),
                                    "%s can never be exceeded: cap holds the VM at %s",
                                    vmg_resource_format(res, rule.noisy_above, a, sizeof a),
                                    vmg_resource_format(res, rule.cap, b, sizeof b));
                if (has_floor && rule.floor > rule.throttle_to)
                        return perr(c, join(field, sizeof field, path, "floor"),
                                    "%s is above throttle_to (%s)",
                                    vmg_resource_format(res, rule.floor, a, sizeof a),
                                    vmg_resource_format(res, rule.throttle_to, b, sizeof b));
                /* Without a floor the engine stays at throttle_to: never tighten further
                 * than the tenant's owner wrote down. */
                if (!has_floor)
                        rule.floor = rule.throttle_to;
        } else {
                rule.noisy_for_ns = rule.calm_for_ns = 0;
        }
        *ret = rule;
        return 0;
}

static bool valid_tenant_name(const char *s) {
        size_t n = strlen(s);
        if (n == 0 || n > TENANT_NAME_MAX || !isalnum((unsigned char) s[0]))
                return false;
        for (; *s; s++)
                if (!isalnum((unsigned char) *s) && !strchr("_.-", *s))
                        return false;
        return true;
}

/* Canonical 8-4-4-4-12 form, as libvirt prints it; stored lower case. */
static bool valid_uuid(const char *s) {
        static const int groups[] = { 8, 4, 4, 4, 12 };
        for (size_t g = 0; g < ARRAY_SIZE(groups); g++) {
                for (int i = 0; i < groups[g]; i++, s++)
                        if (!isxdigit((unsigned char) *s))
                                return false;
                if (g + 1 < ARRAY_SIZE(groups) && *s++ != '-')
                        return false;
        }
        return *s == 0;
}

static int add_match(struct parse_ctx *c, struct vmg_tenant *t, enum vmg_match_kind kind,
                     const char *value, const char *field) {
        struct vmg_vm_match *n = realloc(t->matches, (t->n_matches + 1) * sizeof *n);
        if (!n)
                return oom(c);
        t->matches = n;
        struct vmg_vm_match *m = &t->matches[t->n_matches];
        m->kind = kind;
        m->value = strdup(value);
        if (!m->value)
                return oom(c);
        if (kind == VMG_MATCH_UUID)
                for (char *p = m->value; *p; p++)
                        *p = (char) tolower((unsigned char) *p);
        locate(c->buf, c->len, field, &m->line, &m->column);
        t->n_matches++;
        return 0;
}

static int parse_matcher_list(struct parse_ctx *c, json_t *vms, const char *key,
                              enum vmg_match_kind kind, struct vmg_tenant *t) {
        char path[64], field[256];
        json_t *list = json_object_get(vms, key), *v;
        size_t i;
        int r;

        if (!list)
                return 0;
        join(path, sizeof path, "vms", key);
        if (!json_is_array(list))
                return perr(c, path, "must be an array of strings, not %s", type_name(list));
        json_array_foreach(list, i, v) {
                join_index(field, sizeof field, path, i);
                if (!json_is_string(v))
                        return perr(c, field, "must be a string, not %s", type_name(v));
                const char *s = json_string_value(v);
                if (!*s || strlen(s) != json_string_length(v))
                        return perr(c, field, "must be a non-empty string");
                if (kind == VMG_MATCH_UUID && !valid_uuid(s))
                        return perr(c, field,
                                    "\"%s\" is not a UUID (expected "
                                    "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
                                    s);
                for (size_t j = 0; j < t->n_matches; j++)
                        if (t->matches[j].kind == kind &&
                            strcasecmp(t->matches[j].value, s) == 0)
                                return perr(c, field, "\"%s\" is listed twice (first at %d:%d)",
                                            s, t->matches[j].line, t->matches[j].column);
                r = add_match(c, t, kind, s, field);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int parse_vms(struct parse_ctx *c, json_t *root, struct vmg_tenant *t) {
        static const char *const keys[] = { "metadata", "names", "uuids", NULL };
        json_t *vms, *meta;
        int r = get_object(c, root, "", "vms", &vms);
        if (r < 0)
                return r;
        if (r == 0)
                return perr(c, "vms",
                            "missing: say which VMs belong to the tenant (\"metadata\", "
                            "\"names\" or \"uuids\")");
        r = check_keys(c, vms, "vms", keys);
        if (r < 0)
                return r;
        meta = json_object_get(vms, "metadata");
        if (meta && !json_is_boolean(meta))
                return perr(c, "vms.metadata", "must be true or false, not %s", type_name(meta));
        if (json_is_true(meta)) {
                r = add_match(c, t, VMG_MATCH_METADATA, t->name, "vms.metadata");
                if (r < 0)
                        return r;
        }
        r = parse_matcher_list(c, vms, "uuids", VMG_MATCH_UUID, t);
        if (r < 0)
                return r;
        r = parse_matcher_list(c, vms, "names", VMG_MATCH_NAME_GLOB, t);
        if (r < 0)
                return r;
        if (t->n_matches == 0)
                return perr(c, "vms",
                            "matches no VM: set \"metadata\": true, or list \"names\" or "
                            "\"uuids\"");
        return 0;
}

/* The file name's stem, when the name looks like a tenant file ("…/acme.json"). */
static bool file_stem(const char *name, char *buf, size_t len) {
        const char *base = strrchr(name, '/');
        base = base ? base + 1 : name;
        size_t n = strlen(base);
        if (n <= 5 || strcmp(base + n - 5, ".json") != 0 || n - 5 >= len)
                return false;
        memcpy(buf, base, n - 5);
        buf[n - 5] = 0;
        return true;
}

/* jansson, then the checks shared by both file kinds: syntax (with jansson's position),
 * duplicate keys (positions from the walker), a top-level object. */
static int load_json(struct parse_ctx *c, json_t **ret) {
        /* Zeroed: jansson leaves the error code unset on some failed allocations. */
        json_error_t jerr = { 0 };
        json_t *root = json_loadb(c->buf, c->len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                                  &jerr);
        if (!root) {
                if (json_error_code(&jerr) == json_error_out_of_memory)
                        return oom(c);
                if (json_error_code(&jerr) == json_error_duplicate_key) {
                        struct find_dup d = { 0 };
                        walk(c->buf, c->len, find_dup_visit, &d);
                        for (size_t i = 0; i < d.n; i++)
                                free(d.seen[i].path);
                        free(d.seen);
                        if (d.oom)
                                return oom(c);
                        if (d.found)
                                return set_error(c->err, -EINVAL, c->file, d.line, d.column,
                                                 d.path, "duplicate key (first at %d:%d)",
                                                 d.first_line, d.first_column);
                }
                /* jansson says column 0 at the end of input; editors count from 1 */
                return set_error(c->err, -EINVAL, c->file, jerr.line > 0 ? jerr.line : 1,
                                 jerr.column > 0 ? jerr.column : 1, "",
                                 "invalid JSON: %s", jerr.text);
        }
        if (!json_is_object(root)) {
                int r = perr(c, "", "must be a JSON object, not %s", type_name(root));
                json_decref(root);
                return r;
        }
        *ret = root;
        return 0;
}

void vmg_tenant_done(struct vmg_tenant *t) {
        if (!t)
                return;
        free(t->name);
        free(t->file);
        for (size_t i = 0; i < t->n_matches; i++)
                free(t->matches[i].value);
        free(t->matches);
        memset(t, 0, sizeof *t);
}

int vmg_tenant_parse(const char *name, const char *buf, size_t len, struct vmg_tenant *ret,
                     struct vmg_policy_error *err) {
        static const char *const keys[] = { "$schema", "tenant", "description", "vms",
                                            "limits", NULL };
        struct parse_ctx c = { .file = name, .buf = buf, .len = len, .err = err };
        struct vmg_tenant t = { 0 };
        json_t *root = NULL, *limits;
        const char *tname;
        char stem[256];
        int r;

        r = load_json(&c, &root);
        if (r < 0)
                return r;
        r = check_keys(&c, root, "", keys);
        if (r < 0)
                goto out;
        if (json_object_get(root, "description") &&
            !json_is_string(json_object_get(root, "description"))) {
                r = perr(&c, "description", "must be a string, not %s",
                         type_name(json_object_get(root, "description")));
                goto out;
        }
        r = get_string(&c, root, "", "tenant", &tname);
        if (r < 0)
                goto out;
        if (r == 0) {
                r = perr(&c, "tenant", "missing: every tenant file names its tenant");
                goto out;
        }
        if (!valid_tenant_name(tname)) {
                r = perr(&c, "tenant",
                         "\"%s\" is not a valid tenant name (1-%d letters, digits, '_', '.', "
                         "'-', starting with a letter or digit)",
                         tname, TENANT_NAME_MAX);
                goto out;
        }
        /* One tenant per file, named after it: `ls tenants.d` then tells the truth, and two
         * files can never silently define the same tenant. */
        if (file_stem(name, stem, sizeof stem) && strcmp(stem, tname) != 0) {
                r = perr(&c, "tenant", "\"%s\" does not match the file name: name the file %s.json",
                         tname, tname);
                goto out;
        }
        t.name = strdup(tname);
        t.file = strdup(name);
        if (!t.name || !t.file) {
                r = oom(&c);
                goto out;
        }
        r = parse_vms(&c, root, &t);
        if (r < 0)
                goto out;
        r = get_object(&c, root, "", "limits", &limits);
        if (r < 0)
                goto out;
        if (r > 0) {
                const char *key;
                json_t *v;
                json_object_foreach(limits, key, v) {
                        char field[256];
                        enum vmg_resource res = VMG_RES_COUNT;
                        for (int i = 0; i < VMG_RES_COUNT; i++)
                                if (strcmp(key, vmg_resource_name(i)) == 0)
                                        res = i;
                        if (res == VMG_RES_COUNT) {
                                const char *names[VMG_RES_COUNT + 1] = { 0 };
                                for (int i = 0; i < VMG_RES_COUNT; i++)
                                        names[i] = vmg_resource_name(i);
                                r = check_keys(&c, limits, "limits", names);
                                goto out;
                        }
                        r = parse_rule(&c, v, join(field, sizeof field, "limits", key), res,
                                       &t.rules[res]);
                        if (r < 0)
                                goto out;
                }
        }
        *ret = t;
        memset(&t, 0, sizeof t);
        r = 0;
out:
        vmg_tenant_done(&t);
        json_decref(root);
        return r;
}

/* ---------------------------------------------------------------------------------------
 * Host file */

static void host_defaults(struct vmg_host_policy *h) {
        *h = (struct vmg_host_policy){
                .tick_ns = DEFAULT_TICK_NS,
                .psi_cpu_some = DEFAULT_PSI_CPU_SOME,
                .psi_io_some = DEFAULT_PSI_IO_SOME,
                .vm_steal = DEFAULT_VM_STEAL,
                .min_hold_ns = DEFAULT_MIN_HOLD_NS,
                .step_down = DEFAULT_STEP_DOWN,
                .step_up = DEFAULT_STEP_UP,
        };
}

static void service_done(struct vmg_service *s) {
        free(s->name);
        free(s->match);
        free(s->probe_dns);
        free(s->probe_netns);
        memset(s, 0, sizeof *s);
}

void vmg_host_policy_done(struct vmg_host_policy *h) {
        if (!h)
                return;
        free(h->file);
        for (size_t i = 0; i < h->n_services; i++)
                service_done(&h->services[i]);
        free(h->services);
        memset(h, 0, sizeof *h);
}

/* "ADDR[:PORT]/NAME", ADDR an IPv4 address or a bracketed IPv6 one. */
static bool valid_probe_dns(const char *s) {
        char addr[64];
        const char *slash = strchr(s, '/'), *port = NULL, *host_end;
        if (!slash || !slash[1])
                return false;
        for (const char *p = slash + 1; *p; p++)
                if (!isalnum((unsigned char) *p) && !strchr("-._", *p))
                        return false;
        if (s[0] == '[') {
                const char *close = memchr(s, ']', (size_t) (slash - s));
                if (!close)
                        return false;
                size_t n = (size_t) (close - s - 1);
                if (n == 0 || n >= sizeof addr)
                        return false;
                memcpy(addr, s + 1, n);
                addr[n] = 0;
                unsigned char bin[16];
                if (inet_pton(AF_INET6, addr, bin) != 1)
                        return false;
                host_end = close + 1;
                if (host_end != slash && *host_end != ':')
                        return false;
        } else {
                const char *colon = memchr(s, ':', (size_t) (slash - s));
                host_end = colon ? colon : slash;
                size_t n = (size_t) (host_end - s);
                if (n == 0 || n >= sizeof addr)
                        return false;
                memcpy(addr, s, n);
                addr[n] = 0;
                unsigned char bin[4];
                if (inet_pton(AF_INET, addr, bin) != 1)
                        return false;
        }
        if (*host_end == ':') {
                port = host_end + 1;
                if (port == slash)
                        return false;
                unsigned long v = 0;
                for (const char *p = port; p < slash; p++) {
                        if (!isdigit((unsigned char) *p))
                                return false;
                        v = v * 10 + (unsigned long) (*p - '0');
                        if (v > 65535)
                                return false;
                }
                if (v == 0)
                        return false;
        }
        return true;
}

static int parse_service(struct parse_ctx *c, json_t *v, const char *path,
                         const struct vmg_service *prev, size_t n_prev,
                         struct vmg_service *ret) {
        static const char *const keys[] = { "name", "description", "process", "unit",
                                            "priority", "max_run_delay", "max_io_delay",
                                            "max_probe_latency", "probe_dns", "probe_netns", NULL };
        char field[256];
        struct vmg_service s = { .priority = DEFAULT_PRIORITY };
        const char *name = NULL, *process = NULL, *unit = NULL, *probe = NULL, *desc;
        const char *probe_netns = NULL;
        uint64_t ns;
        json_t *pv;
        int r;

        if (!json_is_object(v))
                return perr(c, path, "must be an object, not %s", type_name(v));
        r = check_keys(c, v, path, keys);
        if (r < 0)
                return r;
        if ((r = get_string(c, v, path, "description", &desc)) < 0)
                return r;
        if ((r = get_string(c, v, path, "name", &name)) < 0)
                return r;
        if (r == 0)
                return perr(c, join(field, sizeof field, path, "name"),
                            "missing: every service needs a name for logs and metrics");
        for (size_t i = 0; i < n_prev; i++)
                if (strcmp(prev[i].name, name) == 0) {
                        char other[64];
                        int line, column;
                        snprintf(other, sizeof other, "services[%zu].name", i);
                        locate(c->buf, c->len, other, &line, &column);
                        return perr(c, join(field, sizeof field, path, "name"),
                                    "service \"%s\" is defined twice (first at %d:%d)", name,
                                    line, column);
                }
        if ((r = get_string(c, v, path, "process", &process)) < 0)
                return r;
        if ((r = get_string(c, v, path, "unit", &unit)) < 0)
                return r;
        if (process && unit)
                return perr(c, join(field, sizeof field, path, "unit"),
                            "give either \"process\" or \"unit\", not both");
        if (!process && !unit)
                return perr(c, join(field, sizeof field, path, "process"),
                            "missing: say how to find the service (\"process\" or \"unit\")");
        if (process && strlen(process) > COMM_MAX)
                return perr(c, join(field, sizeof field, path, "process"),
                            "\"%s\" is longer than %d characters, the kernel's limit for a "
                            "process name (comm), so it can never match",
                            process, COMM_MAX);
        if (unit) {
                size_t n = strlen(unit);
                bool ok = (n > 8 && strcmp(unit + n - 8, ".service") == 0) ||
                          (n > 6 && strcmp(unit + n - 6, ".scope") == 0);
                if (!ok)
                        return perr(c, join(field, sizeof field, path, "unit"),
                                    "\"%s\" is not a unit name ending in .service or .scope",
                                    unit);
        }

        pv = json_object_get(v, "priority");
        if (pv) {
                join(field, sizeof field, path, "priority");
                if (!json_is_integer(pv))
                        return perr(c, field, "must be an integer from 1 to 10, not %s",
                                    type_name(pv));
                json_int_t p = json_integer_value(pv);
                if (p < 1 || p > 10)
                        return perr(c, field, "%" JSON_INTEGER_FORMAT " is out of range 1..10",
                                    p);
                s.priority = (int) p;
        }
        r = get_duration(c, v, path, "max_run_delay", 1000, 10 * NSEC_PER_SEC, &ns);
        if (r < 0)
                return r;
        if (r > 0)
                s.max_run_delay_ms = (double) ns / NSEC_PER_MSEC;
        r = get_fraction(c, v, path, "max_io_delay", 0, 1, true, &s.max_io_delay_frac);
        if (r < 0)
                return r;
        r = get_duration(c, v, path, "max_probe_latency", NSEC_PER_MSEC, 60 * NSEC_PER_SEC,
                         &ns);
        if (r < 0)
                return r;
        if (r > 0)
                s.max_probe_latency_ms = (double) ns / NSEC_PER_MSEC;
        if ((r = get_string(c, v, path, "probe_dns", &probe)) < 0)
                return r;
        if (probe && !valid_probe_dns(probe))
                return perr(c, join(field, sizeof field, path, "probe_dns"),
                            "\"%s\" is not ADDR[:PORT]/NAME (e.g. \"198.18.0.1:53/victim.lab\" "
                            "or \"[2001:db8::1]/victim.lab\")",
                            probe);
        if ((r = get_string(c, v, path, "probe_netns", &probe_netns)) < 0)
                return r;
        if (probe_netns && (!*probe_netns || strcmp(probe_netns, ".") == 0 ||
                            strcmp(probe_netns, "..") == 0 ||
                            strspn(probe_netns, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") !=
                                    strlen(probe_netns)))
                return perr(c, join(field, sizeof field, path, "probe_netns"),
                            "\"%s\" is not a network namespace name (letters, digits, _ . -, as under /run/netns)",
                            probe_netns);
        if (probe_netns && !probe)
                return perr(c, join(field, sizeof field, path, "probe_netns"),
                            "needs \"probe_dns\": the query to send from that namespace");
        if (s.max_probe_latency_ms > 0 && !probe)
                return perr(c, join(field, sizeof field, path, "max_probe_latency"),
                            "needs \"probe_dns\": the query whose answer time is judged");
        if (probe && s.max_probe_latency_ms == 0)
                return perr(c, join(field, sizeof field, path, "probe_dns"),
                            "needs \"max_probe_latency\": the answer time that counts as harm");
        if (s.max_run_delay_ms == 0 && s.max_io_delay_frac == 0 && s.max_probe_latency_ms == 0)
                return perr(c, path,
                            "judges nothing: set \"max_run_delay\", \"max_io_delay\" or "
                            "\"max_probe_latency\"");

        s.kind = process ? VMG_SERVICE_PROCESS : VMG_SERVICE_UNIT;
        s.name = strdup(name);
        s.match = strdup(process ? process : unit);
        s.probe_dns = probe ? strdup(probe) : NULL;
        s.probe_netns = probe_netns ? strdup(probe_netns) : NULL;
        if (!s.name || !s.match || (probe && !s.probe_dns) || (probe_netns && !s.probe_netns)) {
                service_done(&s);
                return oom(c);
        }
        *ret = s;
        return 0;
}

int vmg_host_policy_parse(const char *name, const char *buf, size_t len,
                          struct vmg_host_policy *ret, struct vmg_policy_error *err) {
        static const char *const keys[] = { "$schema", "description", "tick", "contention",
                                            "damping", "services", NULL };
        static const char *const contention_keys[] = { "psi_io_some", "psi_cpu_some",
                                                       "vm_steal", NULL };
        static const char *const damping_keys[] = { "min_hold", "step_down", "step_up", NULL };
        struct parse_ctx c = { .file = name, .buf = buf, .len = len, .err = err };
        struct vmg_host_policy h;
        json_t *root = NULL, *obj, *services;
        const char *desc;
        int r;

        host_defaults(&h);
        r = load_json(&c, &root);
        if (r < 0)
                return r;
        r = check_keys(&c, root, "", keys);
        if (r < 0)
                goto out;
        if ((r = get_string(&c, root, "", "description", &desc)) < 0)
                goto out;
        /* Faster than 100 ms the probes' own reads become the load; slower than a minute
         * the victims suffer through whole episodes unseen. */
        r = get_duration(&c, root, "", "tick", 100 * NSEC_PER_MSEC, 60 * NSEC_PER_SEC,
                         &h.tick_ns);
        if (r < 0)
                goto out;

        r = get_object(&c, root, "", "contention", &obj);
        if (r < 0)
                goto out;
        if (r > 0) {
                r = check_keys(&c, obj, "contention", contention_keys);
                if (r < 0)
                        goto out;
                if ((r = get_fraction(&c, obj, "contention", "psi_io_some", 0, 1, false,
                                      &h.psi_io_some)) < 0 ||
                    (r = get_fraction(&c, obj, "contention", "psi_cpu_some", 0, 1, false,
                                      &h.psi_cpu_some)) < 0 ||
                    (r = get_fraction(&c, obj, "contention", "vm_steal", 0, 1, false,
                                      &h.vm_steal)) < 0)
                        goto out;
        }

        r = get_object(&c, root, "", "damping", &obj);
        if (r < 0)
                goto out;
        if (r > 0) {
                r = check_keys(&c, obj, "damping", damping_keys);
                if (r < 0)
                        goto out;
                if ((r = get_duration(&c, obj, "damping", "min_hold", 0, 3600 * NSEC_PER_SEC,
                                      &h.min_hold_ns)) < 0)
                        goto out;
                if ((r = get_quantity(&c, obj, "damping", "step_down", Q_FRACTION,
                                      &h.step_down)) < 0)
                        goto out;
                if (r > 0 && (h.step_down <= 0 || h.step_down >= 1)) {
                        r = perr(&c, "damping.step_down",
                                 "%g is out of range: must be above 0 and below 1", h.step_down);
                        goto out;
                }
                /* step_up is a multiplier above 1, so it is read as a plain fraction too
                 * ("150%" or 1.5) and range-checked here. */
                if ((r = get_quantity(&c, obj, "damping", "step_up", Q_FRACTION, &h.step_up)) <
                    0)
                        goto out;
                if (r > 0 && (h.step_up <= 1 || h.step_up > 10)) {
                        r = perr(&c, "damping.step_up",
                                 "%g is out of range: must be above 1 and at most 10",
                                 h.step_up);
                        goto out;
                }
        }

        services = json_object_get(root, "services");
        if (services) {
                size_t i;
                json_t *v;
                if (!json_is_array(services)) {
                        r = perr(&c, "services", "must be an array of objects, not %s",
                                 type_name(services));
                        goto out;
                }
                h.services = calloc(json_array_size(services) + 1, sizeof *h.services);
                if (!h.services) {
                        r = oom(&c);
                        goto out;
                }
                json_array_foreach(services, i, v) {
                        char path[64];
                        join_index(path, sizeof path, "services", i);
                        r = parse_service(&c, v, path, h.services, h.n_services,
                                          &h.services[h.n_services]);
                        if (r < 0)
                                goto out;
                        h.n_services++;
                }
        }
        h.file = strdup(name);
        if (!h.file) {
                r = oom(&c);
                goto out;
        }
        *ret = h;
        host_defaults(&h);
        r = 0;
out:
        vmg_host_policy_done(&h);
        json_decref(root);
        return r;
}

/* ---------------------------------------------------------------------------------------
 * Loading a whole policy */

static int read_file(const char *path, char **ret, size_t *ret_len,
                     struct vmg_policy_error *err) {
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        _cleanup_free_ char *buf = NULL;
        size_t n;
        if (!f)
                return set_error(err, -errno, path, 0, 0, "", "cannot open: %s",
                                 strerror(errno));
        /* Like sshd's StrictModes: a policy decides whose guests get throttled, so a file
         * that someone other than root (or our own user) could rewrite is refused. */
        struct stat st;
        if (fstat(fileno(f), &st) < 0)
                return set_error(err, -errno, path, 0, 0, "", "cannot stat: %s", strerror(errno));
        if (!S_ISREG(st.st_mode))
                return set_error(err, -EINVAL, path, 0, 0, "", "not a regular file");
        if (st.st_uid != 0 && st.st_uid != geteuid())
                return set_error(err, -EPERM, path, 0, 0, "",
                                 "owned by uid %u, not root: refusing a policy another user could rewrite",
                                 (unsigned) st.st_uid);
        if (st.st_mode & (S_IWGRP | S_IWOTH))
                return set_error(err, -EPERM, path, 0, 0, "",
                                 "writable by group or others (mode %04o): refusing it; run chmod go-w %s",
                                 (unsigned) (st.st_mode & 07777), path);
        buf = malloc(POLICY_FILE_MAX + 1);
        if (!buf)
                return set_error(err, -ENOMEM, path, 0, 0, "", "out of memory");
        n = fread(buf, 1, POLICY_FILE_MAX + 1, f);
        if (ferror(f))
                return set_error(err, -EIO, path, 0, 0, "", "cannot read: %s", strerror(EIO));
        if (n > POLICY_FILE_MAX)
                return set_error(err, -EFBIG, path, 0, 0, "",
                                 "larger than %d bytes: not a policy file", POLICY_FILE_MAX);
        buf[n] = 0;
        *ret = TAKE_PTR(buf);
        *ret_len = n;
        return 0;
}

static bool is_glob(const char *s) {
        return strpbrk(s, "*?[") != NULL;
}

static const char *kind_word(enum vmg_match_kind k) {
        return k == VMG_MATCH_UUID ? "UUID" : k == VMG_MATCH_NAME_GLOB ? "VM name" : "metadata";
}

/* Cross-file checks: each tenant name once, each VM matcher owned by one tenant. Two
 * distinct globs may still overlap ("web-*" and "*-prod"); that cannot be decided in
 * general, so vmg_policy_match() gives such a VM to the first tenant in file order. */
static int check_claims(const struct vmg_tenant *ts, size_t n, struct vmg_policy_error *err) {
        for (size_t b = 0; b < n; b++)
                for (size_t a = 0; a < b; a++) {
                        if (strcmp(ts[a].name, ts[b].name) == 0)
                                return set_error(err, -EINVAL, ts[b].file, 1, 1, "tenant",
                                                 "tenant \"%s\" is also defined in %s",
                                                 ts[b].name, ts[a].file);
                        for (size_t j = 0; j < ts[b].n_matches; j++) {
                                const struct vmg_vm_match *mb = &ts[b].matches[j];
                                if (mb->kind == VMG_MATCH_METADATA)
                                        continue;
                                for (size_t i = 0; i < ts[a].n_matches; i++) {
                                        const struct vmg_vm_match *ma = &ts[a].matches[i];
                                        if (ma->kind != mb->kind)
                                                continue;
                                        bool same = strcasecmp(ma->value, mb->value) == 0;
                                        /* a literal name inside another tenant's glob */
                                        bool inside = mb->kind == VMG_MATCH_NAME_GLOB &&
                                                      ((!is_glob(mb->value) && is_glob(ma->value) &&
                                                        fnmatch(ma->value, mb->value, 0) == 0) ||
                                                       (!is_glob(ma->value) && is_glob(mb->value) &&
                                                        fnmatch(mb->value, ma->value, 0) == 0));
                                        if (!same && !inside)
                                                continue;
                                        /* matchers of one kind are stored in file order,
                                         * so the array index is a count of the earlier ones */
                                        size_t index = 0;
                                        for (size_t k = 0; k < j; k++)
                                                index += ts[b].matches[k].kind == mb->kind;
                                        char field[64];
                                        snprintf(field, sizeof field, "vms.%s[%zu]",
                                                 mb->kind == VMG_MATCH_UUID ? "uuids" : "names",
                                                 index);
                                        return set_error(err, -EINVAL, ts[b].file, mb->line,
                                                         mb->column, field,
                                                         "%s \"%s\" is also claimed by tenant "
                                                         "\"%s\" as \"%s\" at %s:%d:%d",
                                                         kind_word(mb->kind), mb->value,
                                                         ts[a].name, ma->value, ts[a].file,
                                                         ma->line, ma->column);
                                }
                        }
                }
        return 0;
}

struct vmg_policy *vmg_policy_free(struct vmg_policy *p) {
        if (!p)
                return NULL;
        vmg_host_policy_done(&p->host);
        for (size_t i = 0; i < p->n_tenants; i++)
                vmg_tenant_done(&p->tenants[i]);
        free(p->tenants);
        free(p);
        return NULL;
}

static void policy_freep(struct vmg_policy **p) {
        vmg_policy_free(*p);
}

static int cmp_strp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Editors and package managers leave their own files beside the ones they edit: vim's
 * ".acme.json.swp", emacs' "#acme.json#" and ".#acme.json", backups "acme.json~",
 * "acme.json.orig", "acme.json.dpkg-old". Only "*.json" not starting with '.' is a tenant,
 * so none of those is ever read as one (and a half-saved swap file never breaks a reload). */
static bool is_tenant_file_name(const char *name) {
        size_t len = strlen(name);
        return name[0] != '.' && name[0] != '#' && len > 5 && strcmp(name + len - 5, ".json") == 0;
}

/* One read of a policy file as it was at that moment: its contents or why it could not be
 * read, and the inode it came from. */
struct file_read {
        char *path;
        char *buf;
        size_t len;
        int r;
        ino_t ino;
        struct vmg_policy_error err;
};

/* One pass over the host file and the tenant directory. */
struct policy_files_read {
        int r; /* listing the directory failed: err says why */
        struct vmg_policy_error err;
        struct timespec dir_mtime;
        ino_t dir_ino;
        struct file_read host;
        struct file_read *t;
        size_t n;
};

static void file_read_done(struct file_read *f) {
        free(f->path);
        free(f->buf);
        *f = (struct file_read) {};
}

static void policy_files_read_done(struct policy_files_read *s) {
        file_read_done(&s->host);
        for (size_t i = 0; i < s->n; i++)
                file_read_done(&s->t[i]);
        free(s->t);
        *s = (struct policy_files_read) {};
}

static int file_read_read(struct file_read *f) {
        struct stat st;
        f->r = read_file(f->path, &f->buf, &f->len, &f->err);
        if (f->r >= 0 && stat(f->path, &st) == 0)
                f->ino = st.st_ino;
        return f->r == -ENOMEM ? -ENOMEM : 0;
}

/* Lists tenants_dir and reads every file once. Returns -ENOMEM only; everything else is
 * recorded in the snapshot, to be compared with the next pass before it is believed. */
static int policy_files_read_read(const char *host_file, const char *tenants_dir, struct policy_files_read *s) {
        int r;
        if (host_file) {
                s->host.path = strdup(host_file);
                if (!s->host.path)
                        return -ENOMEM;
                r = file_read_read(&s->host);
                if (r < 0)
                        return r;
        }
        if (!tenants_dir)
                return 0;
        DIR *d = opendir(tenants_dir);
        if (!d) {
                s->r = set_error(&s->err, -errno, tenants_dir, 0, 0, "",
                                 "cannot open tenant directory: %s", strerror(errno));
                return 0;
        }
        struct stat st;
        if (fstat(dirfd(d), &st) == 0) {
                s->dir_mtime = st.st_mtim;
                s->dir_ino = st.st_ino;
        }
        struct dirent *de;
        char **names = NULL;
        size_t n = 0;
        r = 0;
        while ((errno = 0, de = readdir(d))) {
                if (!is_tenant_file_name(de->d_name))
                        continue;
                char **nn = realloc(names, (n + 1) * sizeof *nn);
                if (!nn) {
                        r = -ENOMEM;
                        break;
                }
                names = nn;
                size_t sz = strlen(tenants_dir) + 1 + strlen(de->d_name) + 1;
                names[n] = malloc(sz);
                if (!names[n]) {
                        r = -ENOMEM;
                        break;
                }
                snprintf(names[n], sz, "%s/%s", tenants_dir, de->d_name);
                n++;
        }
        if (r == 0 && errno)
                s->r = set_error(&s->err, -errno, tenants_dir, 0, 0, "",
                                 "cannot read tenant directory: %s", strerror(errno));
        closedir(d);
        if (n > 0)
                qsort(names, n, sizeof *names, cmp_strp);
        if (r == 0 && n > 0) {
                s->t = calloc(n, sizeof *s->t);
                if (!s->t)
                        r = -ENOMEM;
        }
        if (r < 0) {
                for (size_t i = 0; i < n; i++)
                        free(names[i]);
                free(names);
                return r;
        }
        for (size_t i = 0; i < n; i++)
                s->t[i].path = names[i];
        s->n = n;
        free(names);
        for (size_t i = 0; i < s->n && s->r >= 0; i++) {
                r = file_read_read(&s->t[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

static bool file_read_same(const struct file_read *a, const struct file_read *b) {
        if ((a->path == NULL) != (b->path == NULL))
                return false;
        if (!a->path)
                return true;
        return strcmp(a->path, b->path) == 0 && a->r == b->r && a->ino == b->ino &&
               a->len == b->len && (a->r < 0 || memcmp(a->buf, b->buf, a->len) == 0);
}

static bool policy_files_read_same(const struct policy_files_read *a, const struct policy_files_read *b) {
        if (a->r != b->r || a->n != b->n || a->dir_ino != b->dir_ino ||
            a->dir_mtime.tv_sec != b->dir_mtime.tv_sec || a->dir_mtime.tv_nsec != b->dir_mtime.tv_nsec ||
            !file_read_same(&a->host, &b->host))
                return false;
        for (size_t i = 0; i < a->n; i++)
                if (!file_read_same(&a->t[i], &b->t[i]))
                        return false;
        return true;
}

/* Parses a snapshot that two passes agreed on: the same contract as vmg_policy_load(). */
static int policy_files_read_parse(const struct policy_files_read *s, struct vmg_policy **ret, struct vmg_policy_error *err) {
        _cleanup_(policy_freep) struct vmg_policy *p = calloc(1, sizeof *p);
        int r;
        if (!p)
                return set_error(err, -ENOMEM, s->host.path, 0, 0, "", "out of memory");
        if (s->host.path) {
                if (s->host.r < 0) {
                        if (err)
                                *err = s->host.err;
                        return s->host.r;
                }
                r = vmg_host_policy_parse(s->host.path, s->host.buf, s->host.len, &p->host, err);
                if (r < 0)
                        return r;
        } else {
                host_defaults(&p->host);
        }
        if (s->r < 0) {
                if (err)
                        *err = s->err;
                return s->r;
        }
        if (s->n > 0) {
                p->tenants = calloc(s->n, sizeof *p->tenants);
                if (!p->tenants)
                        return set_error(err, -ENOMEM, s->t[0].path, 0, 0, "", "out of memory");
        }
        for (size_t i = 0; i < s->n; i++) {
                if (s->t[i].r < 0) {
                        if (err)
                                *err = s->t[i].err;
                        return s->t[i].r;
                }
                r = vmg_tenant_parse(s->t[i].path, s->t[i].buf, s->t[i].len,
                                     &p->tenants[p->n_tenants], err);
                if (r < 0)
                        return r;
                p->n_tenants++;
        }
        r = check_claims(p->tenants, p->n_tenants, err);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(p);
        return 0;
}

/* An explicit list (`vmguard policy check FILE…`) is read once, as given: no directory to
 * watch, the files are the admin's own working copies. */
int vmg_policy_load_files(const char *host_file, const char *const *tenant_files,
                          size_t n_tenant_files, struct vmg_policy **ret,
                          struct vmg_policy_error *err) {
        _cleanup_(policy_files_read_done) struct policy_files_read s = {};

        if (host_file && (!(s.host.path = strdup(host_file)) || file_read_read(&s.host) < 0))
                goto oom;
        if (n_tenant_files > 0) {
                s.t = calloc(n_tenant_files, sizeof *s.t);
                if (!s.t)
                        goto oom;
                s.n = n_tenant_files;
        }
        for (size_t i = 0; i < n_tenant_files; i++)
                if (!(s.t[i].path = strdup(tenant_files[i])) || file_read_read(&s.t[i]) < 0)
                        goto oom;
        return policy_files_read_parse(&s, ret, err);
oom:
        return set_error(err, -ENOMEM, host_file, 0, 0, "", "out of memory");
}

/* An admin's editor or a config-management run rewrites several files one after another,
 * in place, and a SIGHUP can land in the middle: one pass could see alpha.json new and
 * beta.json old, or a file listed and then renamed away. Two passes that read identical
 * listings, inodes and bytes each bracket the moment between them, when every file held
 * what was read; anything else is retried. Each pass costs a few small reads. */
#define LOAD_TRIES_DEFAULT 5
/* Between tries, give the writer a moment to finish (10, 20, ... ms; 100 ms in all, a
 * tenth of the default tick): an editor's save takes microseconds, a script a few ms. */
#define LOAD_RETRY_STEP_NS (10 * NSEC_PER_MSEC)

int vmg_policy_load_ex(const char *host_file, const char *tenants_dir,
                       const struct vmg_policy_load_opts *opts, struct vmg_policy **ret,
                       struct vmg_policy_error *err) {
        unsigned tries = opts && opts->tries ? opts->tries : LOAD_TRIES_DEFAULT;
        struct policy_files_read prev = {}, cur = {};
        unsigned pass = 0;
        int r;

        r = policy_files_read_read(host_file, tenants_dir, &prev);
        for (unsigned t = 0; r >= 0 && t < tries; t++) {
                if (opts && opts->between_passes)
                        opts->between_passes(opts->userdata, pass);
                else if (t > 0) {
                        struct timespec ts = { 0, (long) (t * LOAD_RETRY_STEP_NS) };
                        nanosleep(&ts, NULL);
                }
                pass++;
                r = policy_files_read_read(host_file, tenants_dir, &cur);
                if (r < 0)
                        break;
                if (policy_files_read_same(&prev, &cur)) {
                        r = policy_files_read_parse(&cur, ret, err);
                        goto out;
                }
                policy_files_read_done(&prev);
                prev = cur;
                cur = (struct policy_files_read) {};
        }
        if (r == -ENOMEM)
                r = set_error(err, -ENOMEM, tenants_dir, 0, 0, "", "out of memory");
        else
                r = set_error(err, -EAGAIN, tenants_dir ? tenants_dir : host_file, 0, 0, "",
                              "kept changing while being read (%u tries): not loaded, "
                              "send SIGHUP again once the edit is done", tries);
out:
        policy_files_read_done(&prev);
        policy_files_read_done(&cur);
        return r;
}

int vmg_policy_load(const char *host_file, const char *tenants_dir, struct vmg_policy **ret,
                    struct vmg_policy_error *err) {
        return vmg_policy_load_ex(host_file, tenants_dir, NULL, ret, err);
}

/* Metadata names the tenant explicitly, so it wins; a UUID is exact and stable across
 * renames; a name glob is the loosest claim. Metadata naming a tenant that did not opt in
 * ("metadata": true) is ignored and the VM is matched by UUID and name as usual. */
int vmg_policy_match(const struct vmg_policy *p, const char *metadata_tenant,
                     const char *name, const char *uuid) {
        static const enum vmg_match_kind order[] = { VMG_MATCH_METADATA, VMG_MATCH_UUID,
                                                     VMG_MATCH_NAME_GLOB };
        if (!p)
                return -1;
        for (size_t o = 0; o < ARRAY_SIZE(order); o++)
                for (size_t i = 0; i < p->n_tenants; i++) {
                        const struct vmg_tenant *t = &p->tenants[i];
                        for (size_t j = 0; j < t->n_matches; j++) {
                                const struct vmg_vm_match *m = &t->matches[j];
                                if (m->kind != order[o])
                                        continue;
                                bool hit = false;
                                switch (m->kind) {
                                case VMG_MATCH_METADATA:
                                        hit = metadata_tenant &&
                                              strcmp(metadata_tenant, t->name) == 0;
                                        break;
                                case VMG_MATCH_UUID:
                                        hit = uuid && strcasecmp(uuid, m->value) == 0;
                                        break;
                                case VMG_MATCH_NAME_GLOB:
                                        hit = name && fnmatch(m->value, name, 0) == 0;
                                        break;
                                }
                                if (hit)
                                        return (int) i;
                        }
                }
        return -1;
}

/* ---------------------------------------------------------------------------------------
 * Printing the effective policy */

static void print_rule(FILE *out, enum vmg_resource res, const struct vmg_rule *r) {
        char a[64], b[64], c[64], d1[32], d2[32];
        fprintf(out, "    %-16s", vmg_resource_name(res));
        if (r->cap > 0)
                fprintf(out, "cap %s%s", vmg_resource_format(res, r->cap, a, sizeof a),
                        r->noisy ? "; " : "");
        if (r->noisy)
                fprintf(out,
                        "noisy above %s for %s while contended -> throttle to %s (floor %s), "
                        "release after %s calm",
                        vmg_resource_format(res, r->noisy_above, a, sizeof a),
                        format_duration(r->noisy_for_ns, d1, sizeof d1),
                        vmg_resource_format(res, r->throttle_to, b, sizeof b),
                        vmg_resource_format(res, r->floor, c, sizeof c),
                        format_duration(r->calm_for_ns, d2, sizeof d2));
        fputc('\n', out);
}

void vmg_policy_print(const struct vmg_policy *p, FILE *out) {
        const struct vmg_host_policy *h = &p->host;
        char a[32];

        fprintf(out, "host (%s)\n", h->file ? h->file : "built-in defaults");
        fprintf(out, "  tick         %s\n", format_duration(h->tick_ns, a, sizeof a));
        fprintf(out, "  contention   psi_io_some %g%%, psi_cpu_some %g%%, vm_steal %g%% "
                     "(0 = not judged)\n",
                h->psi_io_some * 100, h->psi_cpu_some * 100, h->vm_steal * 100);
        fprintf(out, "  damping      min_hold %s, step_down x%g, step_up x%g\n",
                format_duration(h->min_hold_ns, a, sizeof a), h->step_down, h->step_up);
        if (h->n_services == 0)
                fprintf(out, "  services     none\n");
        for (size_t i = 0; i < h->n_services; i++) {
                const struct vmg_service *s = &h->services[i];
                fprintf(out, "  service %s: %s \"%s\", priority %d", s->name,
                        s->kind == VMG_SERVICE_PROCESS ? "process" : "unit", s->match,
                        s->priority);
                if (s->max_run_delay_ms > 0)
                        fprintf(out, ", max_run_delay %gms", s->max_run_delay_ms);
                if (s->max_io_delay_frac > 0)
                        fprintf(out, ", max_io_delay %g%%", s->max_io_delay_frac * 100);
                if (s->max_probe_latency_ms > 0)
                        fprintf(out, ", max_probe_latency %gms via %s", s->max_probe_latency_ms,
                                s->probe_dns);
                fputc('\n', out);
        }
        for (size_t i = 0; i < p->n_tenants; i++) {
                const struct vmg_tenant *t = &p->tenants[i];
                bool any = false;
                fprintf(out, "tenant %s (%s)\n    %-16s", t->name, t->file, "vms");
                for (size_t j = 0; j < t->n_matches; j++) {
                        const struct vmg_vm_match *m = &t->matches[j];
                        fprintf(out, "%s", j ? ", " : "");
                        if (m->kind == VMG_MATCH_METADATA)
                                fprintf(out, "metadata tenant=%s", t->name);
                        else
                                fprintf(out, "%s %s", m->kind == VMG_MATCH_UUID ? "uuid" : "name",
                                        m->value);
                }
                fputc('\n', out);
                for (int res = 0; res < VMG_RES_COUNT; res++)
                        if (t->rules[res].cap > 0 || t->rules[res].noisy) {
                                print_rule(out, res, &t->rules[res]);
                                any = true;
                        }
                if (!any)
                        fprintf(out, "    no limits: metered only\n");
        }
        if (p->n_tenants == 0)
                fprintf(out, "no tenants: every VM is metered only\n");
}
