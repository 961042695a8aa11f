/* Loading a whole policy: reading the files, the tenants directory (listed twice and read
 * until two passes agree, so a file edited during a reload is never half-read), and the
 * checks across tenants (two tenants claiming the same VM). */
#include "policies/parse.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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


/* ---------------------------------------------------------------------------------------
 * Loading a whole policy */

/* Like sshd's StrictModes: a policy decides whose guests get throttled, so anything that
 * someone other than root (or our own user) could rewrite is refused: the file, and every
 * directory from its own up to / (whoever can write a directory can replace its entries).
 * A directory above may be world-writable only when sticky and root's, as /tmp: then no one
 * else can rename or remove what is in it. dir itself may not be even then: anyone could
 * add a file to it. Returns 0, -EPERM, or -errno of realpath/stat, with err set. */
static int check_dir_chain(const char *dir, struct vmg_policy_error *err) {
        _cleanup_free_ char *real = realpath(dir, NULL);
        if (!real)
                return pol_set_error(err, -errno, dir, 0, 0, "", "cannot resolve directory: %s",
                                     strerror(errno));
        for (bool first = true;; first = false) {
                struct stat st;
                if (stat(real, &st) < 0)
                        return pol_set_error(err, -errno, real, 0, 0, "", "cannot stat: %s",
                                             strerror(errno));
                if (st.st_uid != 0 && st.st_uid != geteuid())
                        return pol_set_error(err, -EPERM, real, 0, 0, "",
                                             "directory owned by uid %u, not root: refusing the "
                                             "policy in %s, another user could replace it",
                                             (unsigned) st.st_uid, dir);
                bool sticky_root = (st.st_mode & S_ISVTX) && st.st_uid == 0;
                if ((st.st_mode & (S_IWGRP | S_IWOTH)) && (first || !sticky_root))
                        return pol_set_error(err, -EPERM, real, 0, 0, "",
                                             "directory writable by group or others (mode %04o): "
                                             "refusing the policy in %s; run chmod go-w %s",
                                             (unsigned) (st.st_mode & 07777), dir, real);
                char *slash = strrchr(real, '/');
                if (!slash || slash == real) {
                        if (real[1] == 0)
                                return 0;
                        real[1] = 0; /* "/x": its parent is "/" */
                } else {
                        *slash = 0;
                }
        }
}

static int check_file_dir(const char *path, struct vmg_policy_error *err) {
        _cleanup_free_ char *dir = strdup(path);
        if (!dir)
                return pol_set_error(err, -ENOMEM, path, 0, 0, "", "out of memory");
        char *slash = strrchr(dir, '/');
        if (!slash)
                return check_dir_chain(".", err);
        if (slash == dir)
                slash[1] = 0;
        else
                *slash = 0;
        return check_dir_chain(dir, err);
}

static int read_file(const char *path, char **ret, size_t *ret_len,
                     struct vmg_policy_error *err) {
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_free_ char *buf = NULL;
        size_t n;
        /* O_NONBLOCK: a FIFO (or a device) opens at once instead of waiting for a writer,
         * and is then refused by its type, read from the fd itself; O_NOFOLLOW: a symlink
         * could point anywhere, at a FIFO included. Neither changes a regular file's read. */
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0 && errno == ELOOP)
                return pol_set_error(err, -ELOOP, path, 0, 0, "",
                                     "a symbolic link: refusing it, a policy file must be a "
                                     "regular file (copy it, or point --tenants/--host at the "
                                     "real one)");
        if (fd < 0)
                return pol_set_error(err, -errno, path, 0, 0, "", "cannot open: %s",
                                     strerror(errno));
        struct stat st;
        if (fstat(fd, &st) < 0) {
                int e = errno;
                close(fd);
                return pol_set_error(err, -e, path, 0, 0, "", "cannot stat: %s", strerror(e));
        }
        if (!S_ISREG(st.st_mode)) {
                close(fd);
                return pol_set_error(err, -EINVAL, path, 0, 0, "",
                                     "not a regular file (mode %06o): refusing it",
                                     (unsigned) st.st_mode);
        }
        f = fdopen(fd, "re");
        if (!f) {
                close(fd);
                return pol_set_error(err, -ENOMEM, path, 0, 0, "", "out of memory");
        }
        if (st.st_uid != 0 && st.st_uid != geteuid())
                return pol_set_error(err, -EPERM, path, 0, 0, "",
                                     "owned by uid %u, not root: refusing a policy another user could rewrite",
                                     (unsigned) st.st_uid);
        if (st.st_mode & (S_IWGRP | S_IWOTH))
                return pol_set_error(err, -EPERM, path, 0, 0, "",
                                     "writable by group or others (mode %04o): refusing it; run chmod go-w %s",
                                     (unsigned) (st.st_mode & 07777), path);
        buf = malloc(POLICY_FILE_MAX + 1);
        if (!buf)
                return pol_set_error(err, -ENOMEM, path, 0, 0, "", "out of memory");
        n = fread(buf, 1, POLICY_FILE_MAX + 1, f);
        if (ferror(f))
                return pol_set_error(err, -EIO, path, 0, 0, "", "cannot read: %s", strerror(EIO));
        if (n > POLICY_FILE_MAX)
                return pol_set_error(err, -EFBIG, path, 0, 0, "",
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
                                return pol_set_error(err, -EINVAL, ts[b].file, 1, 1, "tenant",
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
                                        return pol_set_error(err, -EINVAL, ts[b].file, mb->line,
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
struct policy_file {
        char *path;
        char *buf;
        size_t len;
        int r;
        ino_t ino;
        struct vmg_policy_error err;
};

/* One pass over the host file and the tenant directory. */
struct policy_dir_pass {
        int r; /* listing the directory failed: err says why */
        struct vmg_policy_error err;
        struct timespec dir_mtime;
        ino_t dir_ino;
        struct policy_file host;
        struct policy_file *t;
        size_t n;
};

static void policy_file_done(struct policy_file *f) {
        free(f->path);
        free(f->buf);
        *f = (struct policy_file) {};
}

static void policy_dir_pass_done(struct policy_dir_pass *s) {
        policy_file_done(&s->host);
        for (size_t i = 0; i < s->n; i++)
                policy_file_done(&s->t[i]);
        free(s->t);
        *s = (struct policy_dir_pass) {};
}

static int policy_file_load(struct policy_file *f) {
        struct stat st;
        f->r = read_file(f->path, &f->buf, &f->len, &f->err);
        if (f->r >= 0 && stat(f->path, &st) == 0)
                f->ino = st.st_ino;
        return f->r == -ENOMEM ? -ENOMEM : 0;
}

/* Lists tenants_dir and reads every file once. Returns -ENOMEM only; everything else is
 * recorded in the snapshot, to be compared with the next pass before it is believed. */
static int policy_dir_pass_read(const char *host_file, const char *tenants_dir, struct policy_dir_pass *s) {
        int r;
        if (host_file) {
                s->host.path = strdup(host_file);
                if (!s->host.path)
                        return -ENOMEM;
                r = policy_file_load(&s->host);
                if (r < 0)
                        return r;
                /* after the read, so a missing file keeps its own error */
                if (s->host.r >= 0 && (r = check_file_dir(host_file, &s->host.err)) < 0) {
                        if (r == -ENOMEM)
                                return r;
                        s->host.r = r;
                        free(s->host.buf);
                        s->host.buf = NULL;
                        s->host.len = 0;
                }
        }
        if (!tenants_dir)
                return 0;
        DIR *d = opendir(tenants_dir);
        if (!d) {
                s->r = pol_set_error(&s->err, -errno, tenants_dir, 0, 0, "",
                                     "cannot open tenant directory: %s", strerror(errno));
                return 0;
        }
        s->r = check_dir_chain(tenants_dir, &s->err);
        if (s->r < 0) {
                closedir(d);
                return s->r == -ENOMEM ? -ENOMEM : 0;
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
                s->r = pol_set_error(&s->err, -errno, tenants_dir, 0, 0, "",
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
                r = policy_file_load(&s->t[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

static bool policy_file_same(const struct policy_file *a, const struct policy_file *b) {
        if ((a->path == NULL) != (b->path == NULL))
                return false;
        if (!a->path)
                return true;
        return strcmp(a->path, b->path) == 0 && a->r == b->r && a->ino == b->ino &&
               a->len == b->len && (a->r < 0 || memcmp(a->buf, b->buf, a->len) == 0);
}

static bool policy_dir_pass_same(const struct policy_dir_pass *a, const struct policy_dir_pass *b) {
        if (a->r != b->r || a->n != b->n || a->dir_ino != b->dir_ino ||
            a->dir_mtime.tv_sec != b->dir_mtime.tv_sec || a->dir_mtime.tv_nsec != b->dir_mtime.tv_nsec ||
            !policy_file_same(&a->host, &b->host))
                return false;
        for (size_t i = 0; i < a->n; i++)
                if (!policy_file_same(&a->t[i], &b->t[i]))
                        return false;
        return true;
}

/* Parses a snapshot that two passes agreed on: the same contract as vmg_policy_load(). */
static int policy_dir_pass_parse(const struct policy_dir_pass *s, struct vmg_policy **ret, struct vmg_policy_error *err) {
        _cleanup_(policy_freep) struct vmg_policy *p = calloc(1, sizeof *p);
        int r;
        if (!p)
                return pol_set_error(err, -ENOMEM, s->host.path, 0, 0, "", "out of memory");
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
                pol_host_defaults(&p->host);
        }
        if (s->r < 0) {
                if (err)
                        *err = s->err;
                return s->r;
        }
        if (s->n > 0) {
                p->tenants = calloc(s->n, sizeof *p->tenants);
                if (!p->tenants)
                        return pol_set_error(err, -ENOMEM, s->t[0].path, 0, 0, "", "out of memory");
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
        _cleanup_(policy_dir_pass_done) struct policy_dir_pass s = {};

        if (host_file && (!(s.host.path = strdup(host_file)) || policy_file_load(&s.host) < 0))
                goto pol_oom;
        if (n_tenant_files > 0) {
                s.t = calloc(n_tenant_files, sizeof *s.t);
                if (!s.t)
                        goto pol_oom;
                s.n = n_tenant_files;
        }
        for (size_t i = 0; i < n_tenant_files; i++)
                if (!(s.t[i].path = strdup(tenant_files[i])) || policy_file_load(&s.t[i]) < 0)
                        goto pol_oom;
        return policy_dir_pass_parse(&s, ret, err);
pol_oom:
        return pol_set_error(err, -ENOMEM, host_file, 0, 0, "", "out of memory");
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
        struct policy_dir_pass prev = {}, cur = {};
        unsigned pass = 0;
        int r;

        r = policy_dir_pass_read(host_file, tenants_dir, &prev);
        for (unsigned t = 0; r >= 0 && t < tries; t++) {
                if (opts && opts->between_passes)
                        opts->between_passes(opts->userdata, pass);
                else if (t > 0) {
                        struct timespec ts = { 0, (long) (t * LOAD_RETRY_STEP_NS) };
                        nanosleep(&ts, NULL);
                }
                pass++;
                r = policy_dir_pass_read(host_file, tenants_dir, &cur);
                if (r < 0)
                        break;
                if (policy_dir_pass_same(&prev, &cur)) {
                        r = policy_dir_pass_parse(&cur, ret, err);
                        goto out;
                }
                policy_dir_pass_done(&prev);
                prev = cur;
                cur = (struct policy_dir_pass) {};
        }
        if (r == -ENOMEM)
                r = pol_set_error(err, -ENOMEM, tenants_dir, 0, 0, "", "out of memory");
        else
                r = pol_set_error(err, -EAGAIN, tenants_dir ? tenants_dir : host_file, 0, 0, "",
                                  "kept changing while being read (%u tries): not loaded, "
                                  "send SIGHUP again once the edit is done", tries);
out:
        policy_dir_pass_done(&prev);
        policy_dir_pass_done(&cur);
        return r;
}

int vmg_policy_load(const char *host_file, const char *tenants_dir, struct vmg_policy **ret,
                    struct vmg_policy_error *err) {
        return vmg_policy_load_ex(host_file, tenants_dir, NULL, ret, err);
}

