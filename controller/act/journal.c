#include "common/json_alloc.h"
#include "controller/act/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/macros.h"

#define JOURNAL_VERSION 1

struct vmg_journal {
        char *dir;
        int dir_fd;
        struct vmg_journal_entry *entries;
        size_t n, cap;
};

static void entry_clear(struct vmg_journal_entry *e) {
        free(e->uuid);
        free(e->name);
        free(e->kind);
        free(e->root);
        free(e->path);
        free(e->key);
        free(e->original);
        free(e->written);
        free(e->previous);
        memset(e, 0, sizeof *e);
}

struct vmg_journal *vmg_journal_free(struct vmg_journal *j) {
        if (!j)
                return NULL;
        for (size_t i = 0; i < j->n; i++)
                entry_clear(&j->entries[i]);
        free(j->entries);
        if (j->dir_fd >= 0)
                close(j->dir_fd);
        free(j->dir);
        free(j);
        return NULL;
}

static bool str_eq(const char *a, const char *b) {
        return strcmp(a ? a : "", b ? b : "") == 0;
}

static bool entry_matches(const struct vmg_journal_entry *e, const char *uuid,
                          const struct vmg_knob *k) {
        return str_eq(e->uuid, uuid) && str_eq(e->kind, k->kind) && str_eq(e->root, k->root) &&
               str_eq(e->path, k->path) && str_eq(e->key, k->key);
}

static ssize_t find_index(const struct vmg_journal *j, const char *uuid, const struct vmg_knob *k) {
        for (size_t i = 0; i < j->n; i++)
                if (entry_matches(&j->entries[i], uuid, k))
                        return (ssize_t) i;
        return -1;
}

/* A path from the journal is later opened under a cgroup root: refuse anything that could
 * climb out of it even though the file is root-owned. */
static bool path_is_safe(const char *p) {
        if (!p || !*p || p[0] == '/')
                return false;
        for (const char *s = p;;) {
                if (strncmp(s, "..", 2) == 0 && (s[2] == '/' || s[2] == '\0'))
                        return false;
                s = strchr(s, '/');
                if (!s)
                        return true;
                s++;
        }
}

static json_t *entry_to_json(const struct vmg_journal_entry *e) {
        return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s?}", "uuid", e->uuid,
                         "name", e->name, "kind", e->kind, "root", e->root, "path", e->path,
                         "key", e->key, "original", e->original, "written", e->written,
                         "previous", e->previous);
}

static int journal_save(struct vmg_journal *j) {
        unsigned long failures = vmg_json_alloc_failures();
        json_t *root = json_object(), *arr = json_array();
        char *text = NULL;
        int r = 0;

        if (!root || !arr) {
                json_decref(arr);
                r = -ENOMEM;
                goto out;
        }
        /* Unchecked, a failed set wrote a journal without "version" or "entries", which the
         * next start refuses as corrupt: every original in it would be lost. */
        if (json_object_set_new(root, "version", json_integer(JOURNAL_VERSION)) < 0) {
                json_decref(arr);
                r = -ENOMEM;
                goto out;
        }
        if (json_object_set_new(root, "entries", arr) < 0) { /* takes arr even on failure */
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < j->n; i++) {
                json_t *o = entry_to_json(&j->entries[i]);
                if (!o || json_array_append_new(arr, o) < 0) {
                        r = -ENOMEM;
                        goto out;
                }
        }
        text = json_dumps(root, JSON_INDENT(1));
        if (!text) {
                r = -ENOMEM;
                goto out;
        }
        if (vmg_json_alloc_failures() != failures) {
                r = log_error_errno(-ENOMEM, "journal: %s/%s not saved: out of memory while encoding it",
                                    j->dir, VMG_JOURNAL_FILE);
                goto out;
        }

        /* One trailing newline, so `cat` leaves the prompt on its own line. */
        size_t len = strlen(text);
        char *nl = realloc(text, len + 2);
        if (!nl) {
                r = -ENOMEM;
                goto out;
        }
        text = nl;
        memcpy(text + len, "\n", 2);
        r = vmg_write_file_atomic(j->dir_fd, VMG_JOURNAL_FILE, text, len + 1, 0600);
        if (r < 0)
                log_error_errno(r, "journal: cannot save %s/%s: %m", j->dir, VMG_JOURNAL_FILE);
        goto out;

out:
        free(text);
        json_decref(root);
        return r;
}

static int entry_from_json(json_t *o, struct vmg_journal_entry *ret) {
        const char *uuid, *name, *kind, *root, *path, *key, *orig, *written, *prev = NULL;
        json_t *prev_json = NULL;
        json_error_t err = { 0 };

        if (json_unpack_ex(o, &err, 0, "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s?o}", "uuid",
                           &uuid, "name", &name, "kind", &kind, "root", &root, "path", &path, "key",
                           &key, "original", &orig, "written", &written, "previous", &prev_json) < 0) {
                /* jansson's unpack allocates (its key set): out of memory is not a bad entry,
                 * and dropping it would forget an original value for good. */
                if (json_error_code(&err) == json_error_out_of_memory)
                        return -ENOMEM;
                log_error("journal: dropping malformed entry: %s", err.text);
                return -EBADMSG;
        }
        if (prev_json && json_is_string(prev_json))
                prev = json_string_value(prev_json);
        else if (prev_json && !json_is_null(prev_json)) {
                log_error("journal: dropping entry of VM %s (%s): \"previous\" is neither string nor null",
                          name, uuid);
                return -EBADMSG;
        }
        if (!path_is_safe(path)) {
                log_error("journal: dropping entry of VM %s (%s) with unsafe path \"%s\"", name,
                          uuid, path);
                return -EBADMSG;
        }
        struct vmg_journal_entry e = {
                .uuid = strdup(uuid), .name = strdup(name), .kind = strdup(kind),
                .root = strdup(root), .path = strdup(path), .key = strdup(key),
                .original = strdup(orig), .written = strdup(written),
                .previous = prev ? strdup(prev) : NULL,
        };
        if (!e.uuid || !e.name || !e.kind || !e.root || !e.path || !e.key || !e.original ||
            !e.written || (prev && !e.previous)) {
                entry_clear(&e);
                return -ENOMEM;
        }
        *ret = e;
        return 0;
}

static int journal_grow(struct vmg_journal *j) {
        if (j->n < j->cap)
                return 0;
        size_t cap = j->cap ? j->cap * 2 : 16;
        struct vmg_journal_entry *p = realloc(j->entries, cap * sizeof *p);
        if (!p)
                return -ENOMEM;
        j->entries = p;
        j->cap = cap;
        return 0;
}

static int journal_load(struct vmg_journal *j) {
        _cleanup_close_ int fd = openat(j->dir_fd, VMG_JOURNAL_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
                if (errno == ENOENT)
                        return 0;
                return log_error_errno(-errno, "journal: cannot open %s/%s: %m", j->dir,
                                       VMG_JOURNAL_FILE);
        }
        json_error_t err = { 0 }; /* jansson leaves the code unset on some failed allocations */
        unsigned long failures = vmg_json_alloc_failures();
        json_t *root = json_loadfd(fd, 0, &err);
        if (!root && (vmg_json_alloc_failures() != failures || json_error_code(&err) == json_error_out_of_memory))
                return log_error_errno(-ENOMEM, "journal: %s/%s: out of memory while reading it",
                                       j->dir, VMG_JOURNAL_FILE);
        if (!root)
                return log_error_errno(-EBADMSG, "journal: %s/%s:%d:%d: %s; refusing to replace it",
                                       j->dir, VMG_JOURNAL_FILE, err.line, err.column, err.text);
        int r = 0;
        json_t *arr = json_object_get(root, "entries");
        json_int_t version = json_integer_value(json_object_get(root, "version"));
        if (version != JOURNAL_VERSION || !json_is_array(arr)) {
                r = log_error_errno(-EBADMSG, "journal: %s/%s: unknown version %lld or no entries array",
                                    j->dir, VMG_JOURNAL_FILE, (long long) version);
                goto out;
        }
        size_t i;
        json_t *o;
        json_array_foreach(arr, i, o) {
                struct vmg_journal_entry e;
                r = entry_from_json(o, &e);
                if (r == -EBADMSG) {
                        r = 0;
                        continue;
                }
                if (r < 0)
                        goto out;
                r = journal_grow(j);
                if (r < 0) {
                        entry_clear(&e);
                        goto out;
                }
                j->entries[j->n++] = e;
        }
out:
        json_decref(root);
        if (vmg_json_alloc_failures() != failures)
                r = log_error_errno(-ENOMEM, "journal: %s/%s: out of memory while reading it",
                                    j->dir, VMG_JOURNAL_FILE);
        return r;
}

static int mkdir_p(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);
        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = '\0';
                if (mkdir(p, 0755) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

int vmg_journal_open(const char *state_dir, struct vmg_journal **ret) {
        if (!state_dir)
                state_dir = VMG_STATE_DIR;
        struct vmg_journal *j = calloc(1, sizeof *j);
        if (!j)
                return -ENOMEM;
        j->dir_fd = -1;
        j->dir = strdup(state_dir);
        if (!j->dir) {
                vmg_journal_free(j);
                return -ENOMEM;
        }
        int r = mkdir_p(state_dir, 0700);
        if (r < 0 && r != -EROFS && r != -EACCES) {
                log_error_errno(r, "journal: cannot create state directory %s: %m", state_dir);
                vmg_journal_free(j);
                return r;
        }
        j->dir_fd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (j->dir_fd < 0) {
                r = log_error_errno(-errno, "journal: cannot open state directory %s: %m", state_dir);
                vmg_journal_free(j);
                return r;
        }
        r = journal_load(j);
        if (r < 0) {
                vmg_journal_free(j);
                return r;
        }
        if (j->n > 0)
                log_info("journal: %zu original value(s) to restore in %s/%s", j->n, state_dir,
                         VMG_JOURNAL_FILE);
        *ret = j;
        return 0;
}

int vmg_journal_check_writable(struct vmg_journal *j) {
        int r = journal_save(j);
        if (r < 0)
                return log_error_errno(r, "journal: state directory %s is not writable (%m): "
                                       "vmguard cannot remember original values and will not throttle",
                                       j->dir);
        return 0;
}

size_t vmg_journal_count(const struct vmg_journal *j) {
        return j->n;
}

const struct vmg_journal_entry *vmg_journal_get(const struct vmg_journal *j, size_t i) {
        return i < j->n ? &j->entries[i] : NULL;
}

const struct vmg_journal_entry *vmg_journal_find(const struct vmg_journal *j, const char *uuid,
                                                 const struct vmg_knob *k) {
        ssize_t i = find_index(j, uuid, k);
        return i < 0 ? NULL : &j->entries[i];
}

static void remove_index(struct vmg_journal *j, size_t i) {
        entry_clear(&j->entries[i]);
        memmove(&j->entries[i], &j->entries[i + 1], (j->n - i - 1) * sizeof j->entries[0]);
        j->n--;
}

int vmg_journal_record(struct vmg_journal *j, const char *uuid, const char *name,
                       const struct vmg_knob *k, const char *live, const char *value) {
        if (!k->kind || !*k->kind || !path_is_safe(k->path))
                return -EINVAL;
        ssize_t i = find_index(j, uuid, k);
        int r;
        if (i >= 0) {
                struct vmg_journal_entry *e = &j->entries[i];
                char *w = strdup(value);
                if (!w)
                        return -ENOMEM;
                char *old_prev = e->previous;
                e->previous = e->written;
                e->written = w;
                r = journal_save(j);
                if (r < 0) {
                        free(e->written);
                        e->written = e->previous;
                        e->previous = old_prev;
                        return r;
                }
                free(old_prev);
                return 0;
        }

        r = journal_grow(j);
        if (r < 0)
                return r;
        struct vmg_journal_entry e = {
                .uuid = strdup(uuid), .name = strdup(name ? name : ""), .kind = strdup(k->kind),
                .root = strdup(k->root ? k->root : ""), .path = strdup(k->path),
                .key = strdup(k->key ? k->key : ""), .original = strdup(live),
                .written = strdup(value),
        };
        if (!e.uuid || !e.name || !e.kind || !e.root || !e.path || !e.key || !e.original ||
            !e.written) {
                entry_clear(&e);
                return -ENOMEM;
        }
        j->entries[j->n++] = e;
        r = journal_save(j);
        if (r < 0) {
                remove_index(j, j->n - 1);
                return r;
        }
        log_debug("journal: VM %s (%s): remembered original \"%s\" of %s %s%s%s%s", e.name, uuid,
                  live, k->kind, k->root ? k->root : "", k->root && *k->root ? ":" : "", k->path,
                  k->key && *k->key ? k->key : "");
        return 0;
}

int vmg_journal_unrecord(struct vmg_journal *j, const char *uuid, const struct vmg_knob *k) {
        ssize_t i = find_index(j, uuid, k);
        if (i < 0)
                return 0;
        struct vmg_journal_entry *e = &j->entries[i];
        if (!e->previous) {
                remove_index(j, (size_t) i);
        } else {
                free(e->written);
                e->written = e->previous;
                e->previous = NULL;
        }
        return journal_save(j);
}

void vmg_journal_committed(struct vmg_journal *j, const char *uuid, const struct vmg_knob *k) {
        ssize_t i = find_index(j, uuid, k);
        if (i < 0)
                return;
        free(j->entries[i].previous);
        j->entries[i].previous = NULL;
}

int vmg_journal_drop(struct vmg_journal *j, const char *uuid, const struct vmg_knob *k) {
        ssize_t i = find_index(j, uuid, k);
        if (i < 0)
                return 0;
        remove_index(j, (size_t) i);
        return journal_save(j);
}

enum vmg_journal_verdict vmg_journal_judge(const struct vmg_journal_entry *e, const char *live) {
        if (str_eq(live, e->original))
                return VMG_JV_ORIGINAL;
        if (str_eq(live, e->written) || (e->previous && str_eq(live, e->previous)))
                return VMG_JV_RESTORE;
        return VMG_JV_DRIFT;
}

static const struct vmg_journal_backend *find_backend(const char *kind,
                                                      const struct vmg_journal_backend *b, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (str_eq(b[i].kind, kind))
                        return &b[i];
        return NULL;
}

static bool is_gone(int r) {
        return r == -ENOENT || r == -ENODEV;
}

/* 1: restored, 0: nothing to write (dropped), <0: failed and kept. *drop says whether the
 * entry is finished. */
static int restore_one(const struct vmg_journal_entry *e, const struct vmg_journal_backend *b,
                       bool *drop) {
        _cleanup_free_ char *live = NULL;
        *drop = false;
        int r = b->read(b->userdata, e, &live);
        if (is_gone(r)) {
                log_debug("journal: VM %s (%s) gone, forgetting %s %s %s", e->name, e->uuid, e->root,
                          e->path, e->key);
                *drop = true;
                return 0;
        }
        if (r < 0)
                return log_warning_errno(r, "journal: VM %s (%s): cannot read %s %s %s to restore it: %m",
                                         e->name, e->uuid, e->root, e->path, e->key);
        switch (vmg_journal_judge(e, live)) {
        case VMG_JV_ORIGINAL:
                *drop = true;
                return 0;
        case VMG_JV_DRIFT:
                log_warning("journal: VM %s (%s): %s %s %s is now \"%s\", not the \"%s\" vmguard wrote: "
                            "someone else changed it; keeping their value (original was \"%s\")",
                            e->name, e->uuid, e->root, e->path, e->key, live, e->written, e->original);
                *drop = true;
                return 0;
        case VMG_JV_RESTORE:
                break;
        }
        r = b->write(b->userdata, e, e->original);
        if (is_gone(r)) {
                *drop = true;
                return 0;
        }
        if (r < 0)
                return log_error_errno(r, "journal: VM %s (%s): cannot restore \"%s\" to %s %s %s: %m; "
                                       "kept for a later attempt",
                                       e->name, e->uuid, e->original, e->root, e->path, e->key);
        log_info("journal: VM %s (%s): restored %s %s%s%s to \"%s\" (vmguard had \"%s\")", e->name,
                 e->uuid, e->root, e->path, *e->key ? " " : "", e->key, e->original, live);
        *drop = true;
        return 1;
}

int vmg_journal_restore(struct vmg_journal *j, const char *uuid, const struct vmg_knob *k,
                        const struct vmg_journal_backend *backends, size_t n_backends) {
        int first_err = 0, restored = 0;
        bool changed = false;

        for (size_t i = 0; i < j->n;) {
                const struct vmg_journal_entry *e = &j->entries[i];
                const struct vmg_journal_backend *b = find_backend(e->kind, backends, n_backends);
                if (!b || (uuid && !str_eq(uuid, e->uuid)) || (k && !entry_matches(e, e->uuid, k))) {
                        i++;
                        continue;
                }
                bool drop;
                int r = restore_one(e, b, &drop);
                if (r < 0 && !first_err)
                        first_err = r;
                if (r > 0)
                        restored++;
                if (drop) {
                        remove_index(j, i);
                        changed = true;
                } else {
                        i++;
                }
        }
        if (changed) {
                int r = journal_save(j);
                /* The restores happened; a stale journal only makes the next start find the
                 * originals already live (VMG_JV_ORIGINAL), which is harmless. */
                if (r < 0 && !first_err)
                        first_err = r;
        }
        return first_err < 0 ? first_err : restored;
}
