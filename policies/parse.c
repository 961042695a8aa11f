/* Parsing a policy file: the error record, the "walker" (jansson keeps no positions per
 * value, so a small scanner maps a field path such as "limits.cpu.floor" back to the line
 * and column of its key, only when an error or a VM matcher needs one), and the typed
 * getters with their messages. Shared by tenant.c and host.c through parse.h. */
#include "policies/parse.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <jansson.h>

#include "common/json_alloc.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#include <sys/stat.h>

#include "common/macros.h"


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

int pol_set_error(struct vmg_policy_error *err, int r, const char *file, int line,
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
void pol_locate(const char *buf, size_t len, const char *field, int *line, int *column) {
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
        bool found, pol_oom;
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
                d->pol_oom = true;
                return true;
        }
        d->seen = n;
        d->seen[d->n].path = strdup(path);
        if (!d->seen[d->n].path) {
                d->pol_oom = true;
                return true;
        }
        d->seen[d->n].line = line;
        d->seen[d->n].column = column;
        d->n++;
        return false;
}


/* ---------------------------------------------------------------------------------------
 * Parsing context and typed getters */


int pol_perr(struct parse_ctx *c, const char *field, const char *fmt, ...) {
        int line, column;
        pol_locate(c->buf, c->len, field, &line, &column);
        va_list ap;
        va_start(ap, fmt);
        set_error_v(c->err, -EINVAL, c->file, line, column, field[0] ? field : "(top level)",
                    fmt, ap);
        va_end(ap);
        return -EINVAL;
}

int pol_oom(struct parse_ctx *c) {
        return pol_set_error(c->err, -ENOMEM, c->file, 0, 0, "", "out of memory");
}

/* Field paths are short; a truncated one still names the right place in a message. */
const char *pol_join(char *buf, size_t len, const char *parent, const char *key) {
        if (snprintf(buf, len, "%s%s%s", parent, parent[0] ? "." : "", key) >= (int) len)
                buf[len - 1] = 0;
        return buf;
}

const char *pol_join_index(char *buf, size_t len, const char *parent, size_t i) {
        snprintf(buf, len, "%s[%zu]", parent, i);
        return buf;
}

const char *pol_type_name(const json_t *v) {
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

int pol_check_keys(struct parse_ctx *c, json_t *obj, const char *path,
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
                pol_join(field, sizeof field, path, key);
                const char *best = closest_key(key, allowed);
                if (best)
                        return pol_perr(c, field, "unknown key \"%s\" (did you mean \"%s\"?)", key,
                                        best);
                for (size_t i = 0; allowed[i]; i++) {
                        if (allowed[i][0] == '$')
                                continue;
                        size_t n = strlen(list);
                        snprintf(list + n, sizeof list - n, "%s%s", n ? ", " : "", allowed[i]);
                }
                return pol_perr(c, field, "unknown key \"%s\" (allowed here: %s)", key, list);
        }
        return 0;
}

int pol_get_object(struct parse_ctx *c, json_t *parent, const char *path, const char *key,
                      json_t **ret) {
        char field[256];
        json_t *v = key ? json_object_get(parent, key) : parent;
        if (!v) {
                *ret = NULL;
                return 0;
        }
        if (!json_is_object(v))
                return pol_perr(c, key ? pol_join(field, sizeof field, path, key) : path,
                                "must be an object, not %s", pol_type_name(v));
        *ret = v;
        return 1;
}

/* 1 and *ret set when present, 0 when absent, -EINVAL when not a non-empty string. */
int pol_get_string(struct parse_ctx *c, json_t *obj, const char *path, const char *key,
                      const char **ret) {
        char field[256];
        json_t *v = json_object_get(obj, key);
        if (!v)
                return 0;
        pol_join(field, sizeof field, path, key);
        if (!json_is_string(v))
                return pol_perr(c, field, "must be a string, not %s", pol_type_name(v));
        if (json_string_length(v) == 0)
                return pol_perr(c, field, "must not be empty");
        if (strlen(json_string_value(v)) != json_string_length(v))
                return pol_perr(c, field, "must not contain NUL characters");
        *ret = json_string_value(v);
        return 1;
}


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

int pol_get_quantity(struct parse_ctx *c, json_t *obj, const char *path, const char *key,
                        enum quantity_id k, double *ret) {
        char field[256];
        const struct quantity_kind *q = &quantity_kinds[k];
        json_t *v = json_object_get(obj, key);
        double d;
        if (!v)
                return 0;
        pol_join(field, sizeof field, path, key);
        if (json_is_number(v)) {
                if (!q->bare_number_ok)
                        return pol_perr(c, field, "a bare number has no unit: write it as %s",
                                        q->hint);
                d = json_number_value(v);
                if (d < 0)
                        return pol_perr(c, field, "must not be negative");
        } else if (json_is_string(v)) {
                const char *s = json_string_value(v);
                if (!*s)
                        return pol_perr(c, field, "empty value: expected %s", q->hint);
                if (s[0] == '-')
                        return pol_perr(c, field, "must not be negative");
                if (q->parse(s, &d) < 0)
                        return pol_perr(c, field, "invalid %s \"%s\": expected %s", q->what, s,
                                        q->hint);
        } else {
                return pol_perr(c, field, "must be %s like %s, not %s",
                                q->bare_number_ok ? "a string or number" : "a string", q->hint,
                                pol_type_name(v));
        }
        *ret = d;
        return 1;
}

const char *pol_format_duration(uint64_t ns, char *buf, size_t len) {
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
int pol_get_duration(struct parse_ctx *c, json_t *obj, const char *path, const char *key,
                        uint64_t min, uint64_t max, uint64_t *ret) {
        char field[256], a[32], b[32];
        json_t *v = json_object_get(obj, key);
        uint64_t ns;
        if (!v)
                return 0;
        pol_join(field, sizeof field, path, key);
        if (json_is_number(v))
                return pol_perr(c, field,
                                "a bare number has no unit: write it as \"500ms\", \"30s\", \"2m\" "
                                "or \"1h\"");
        if (!json_is_string(v))
                return pol_perr(c, field, "must be a duration string like \"30s\", not %s",
                                pol_type_name(v));
        const char *s = json_string_value(v);
        if (!*s)
                return pol_perr(c, field, "empty value: expected a duration like \"30s\"");
        if (s[0] == '-')
                return pol_perr(c, field, "must not be negative");
        if (vmg_parse_duration(s, &ns) < 0)
                return pol_perr(c, field,
                                "invalid duration \"%s\": expected \"500ms\", \"30s\", \"2m\" or "
                                "\"1h\"",
                                s);
        if (ns < min || ns > max)
                return pol_perr(c, field, "%s is out of range: must be between %s and %s", s,
                                pol_format_duration(min, a, sizeof a), pol_format_duration(max, b, sizeof b));
        *ret = ns;
        return 1;
}

int pol_get_fraction(struct parse_ctx *c, json_t *obj, const char *path, const char *key,
                        double min, double max, bool min_exclusive, double *ret) {
        char field[256];
        double d;
        int r = pol_get_quantity(c, obj, path, key, Q_FRACTION, &d);
        if (r <= 0)
                return r;
        pol_join(field, sizeof field, path, key);
        if (d > max || d < min || (min_exclusive && d <= min))
                return pol_perr(c, field, "%g%% is out of range: must be %s %g%% and at most %g%%",
                                d * 100, min_exclusive ? "above" : "at least", min * 100,
                                max * 100);
        *ret = d;
        return 1;
}


/* jansson, then the checks shared by both file kinds: syntax (with jansson's position),
 * duplicate keys (positions from the walker), a top-level object. */
int pol_load_json(struct parse_ctx *c, json_t **ret) {
        /* Zeroed: jansson leaves the error code unset on some failed allocations. */
        json_error_t jerr = { 0 };
        unsigned long failures = vmg_json_alloc_failures();
        json_t *root = json_loadb(c->buf, c->len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                                  &jerr);
        /* A failed allocation inside jansson may have dropped a character of a value (see
         * common/json_alloc.h): the file is fine, this parse is not. */
        if (vmg_json_alloc_failures() != failures) {
                json_decref(root);
                return pol_oom(c);
        }
        if (!root) {
                if (json_error_code(&jerr) == json_error_out_of_memory)
                        return pol_oom(c);
                if (json_error_code(&jerr) == json_error_duplicate_key) {
                        struct find_dup d = { 0 };
                        walk(c->buf, c->len, find_dup_visit, &d);
                        for (size_t i = 0; i < d.n; i++)
                                free(d.seen[i].path);
                        free(d.seen);
                        if (d.pol_oom)
                                return pol_oom(c);
                        if (d.found)
                                return pol_set_error(c->err, -EINVAL, c->file, d.line, d.column,
                                                     d.path, "duplicate key (first at %d:%d)",
                                                     d.first_line, d.first_column);
                }
                /* jansson says column 0 at the end of input; editors count from 1 */
                return pol_set_error(c->err, -EINVAL, c->file, jerr.line > 0 ? jerr.line : 1,
                                     jerr.column > 0 ? jerr.column : 1, "",
                                     "invalid JSON: %s", jerr.text);
        }
        if (!json_is_object(root)) {
                int r = pol_perr(c, "", "must be a JSON object, not %s", pol_type_name(root));
                json_decref(root);
                return r;
        }
        *ret = root;
        return 0;
}

