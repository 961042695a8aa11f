/* Tenant files: one JSON file per tenant, its VM matchers and per-resource rules, into a
 * validated struct vmg_tenant. */
#include "policies/parse.h"

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
        int r = pol_get_quantity(c, obj, path, key, resource_kind(res), &d);
        if (r <= 0)
                return r;
        pol_join(field, sizeof field, path, key);
        /* 0 means "not set" in struct vmg_rule, so a written 0 would silently vanish */
        if (d <= 0)
                return pol_perr(c, field, "must be greater than 0 (leave the key out for no limit)");
        if (d > resource_max(res))
                return pol_perr(c, field, "%s is above the maximum of %s",
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
                return pol_perr(c, path, "must be an object, not %s", pol_type_name(v));
        r = pol_check_keys(c, v, path, keys);
        if (r < 0)
                return r;
        if (json_object_size(v) == 0)
                return pol_perr(c, path, "sets nothing: give a \"cap\" and/or \"noisy_above\" "
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
        if ((r = pol_get_duration(c, v, path, "for", 0, 3600 * NSEC_PER_SEC, &rule.noisy_for_ns)) < 0)
                return r;
        has_for = r;
        /* releasing sooner than a second after calm returns would flap with every tick */
        if ((r = pol_get_duration(c, v, path, "calm_for", NSEC_PER_SEC, 24 * 3600 * NSEC_PER_SEC,
                                  &rule.calm_for_ns)) < 0)
                return r;
        has_calm = r;

        if (has_noisy && !has_throttle)
                return pol_perr(c, pol_join(field, sizeof field, path, "noisy_above"),
                                "needs \"throttle_to\": the limit to apply while the VM is noisy");
        if (!has_noisy) {
                const char *orphan = has_throttle ? "throttle_to" : has_floor ? "floor"
                                   : has_for      ? "for"          : has_calm ? "calm_for" : NULL;
                if (orphan)
                        return pol_perr(c, pol_join(field, sizeof field, path, orphan),
                                        "only meaningful with \"noisy_above\", which is missing");
        }
        if (has_noisy) {
                rule.noisy = true;
                if (rule.throttle_to >= rule.noisy_above)
                        return pol_perr(c, pol_join(field, sizeof field, path, "throttle_to"),
                                        "%s must be below noisy_above (%s): a VM held there would "
                                        "still count as noisy",
                                        vmg_resource_format(res, rule.throttle_to, a, sizeof a),
                                        vmg_resource_format(res, rule.noisy_above, b, sizeof b));
                if (has_cap && rule.throttle_to > rule.cap)
                        return pol_perr(c, pol_join(field, sizeof field, path, "throttle_to"),
                                        "%s is above cap (%s)",
                                        vmg_resource_format(res, rule.throttle_to, a, sizeof a),
                                        vmg_resource_format(res, rule.cap, b, sizeof b));
                if (has_cap && rule.noisy_above >= rule.cap)
                        return pol_perr(c, pol_join(field, sizeof field, path, "noisy_above"),
                                        "%s can never be exceeded: cap holds the VM at %s",
                                        vmg_resource_format(res, rule.noisy_above, a, sizeof a),
                                        vmg_resource_format(res, rule.cap, b, sizeof b));
                if (has_floor && rule.floor > rule.throttle_to)
                        return pol_perr(c, pol_join(field, sizeof field, path, "floor"),
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
                return pol_oom(c);
        t->matches = n;
        struct vmg_vm_match *m = &t->matches[t->n_matches];
        m->kind = kind;
        m->value = strdup(value);
        if (!m->value)
                return pol_oom(c);
        if (kind == VMG_MATCH_UUID)
                for (char *p = m->value; *p; p++)
                        *p = (char) tolower((unsigned char) *p);
        pol_locate(c->buf, c->len, field, &m->line, &m->column);
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
        pol_join(path, sizeof path, "vms", key);
        if (!json_is_array(list))
                return pol_perr(c, path, "must be an array of strings, not %s", pol_type_name(list));
        json_array_foreach(list, i, v) {
                pol_join_index(field, sizeof field, path, i);
                if (!json_is_string(v))
                        return pol_perr(c, field, "must be a string, not %s", pol_type_name(v));
                const char *s = json_string_value(v);
                if (!*s || strlen(s) != json_string_length(v))
                        return pol_perr(c, field, "must be a non-empty string");
                if (kind == VMG_MATCH_UUID && !valid_uuid(s))
                        return pol_perr(c, field,
                                        "\"%s\" is not a UUID (expected "
                                        "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
                                        s);
                for (size_t j = 0; j < t->n_matches; j++)
                        if (t->matches[j].kind == kind &&
                            strcasecmp(t->matches[j].value, s) == 0)
                                return pol_perr(c, field, "\"%s\" is listed twice (first at %d:%d)",
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
        int r = pol_get_object(c, root, "", "vms", &vms);
        if (r < 0)
                return r;
        if (r == 0)
                return pol_perr(c, "vms",
                                "missing: say which VMs belong to the tenant (\"metadata\", "
                                "\"names\" or \"uuids\")");
        r = pol_check_keys(c, vms, "vms", keys);
        if (r < 0)
                return r;
        meta = json_object_get(vms, "metadata");
        if (meta && !json_is_boolean(meta))
                return pol_perr(c, "vms.metadata", "must be true or false, not %s", pol_type_name(meta));
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
                return pol_perr(c, "vms",
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

        r = pol_load_json(&c, &root);
        if (r < 0)
                return r;
        r = pol_check_keys(&c, root, "", keys);
        if (r < 0)
                goto out;
        if (json_object_get(root, "description") &&
            !json_is_string(json_object_get(root, "description"))) {
                r = pol_perr(&c, "description", "must be a string, not %s",
                             pol_type_name(json_object_get(root, "description")));
                goto out;
        }
        r = pol_get_string(&c, root, "", "tenant", &tname);
        if (r < 0)
                goto out;
        if (r == 0) {
                r = pol_perr(&c, "tenant", "missing: every tenant file names its tenant");
                goto out;
        }
        if (!valid_tenant_name(tname)) {
                r = pol_perr(&c, "tenant",
                             "\"%s\" is not a valid tenant name (1-%d letters, digits, '_', '.', "
                             "'-', starting with a letter or digit)",
                             tname, TENANT_NAME_MAX);
                goto out;
        }
        /* One tenant per file, named after it: `ls tenants.d` then tells the truth, and two
         * files can never silently define the same tenant. */
        if (file_stem(name, stem, sizeof stem) && strcmp(stem, tname) != 0) {
                r = pol_perr(&c, "tenant", "\"%s\" does not match the file name: name the file %s.json",
                             tname, tname);
                goto out;
        }
        t.name = strdup(tname);
        t.file = strdup(name);
        if (!t.name || !t.file) {
                r = pol_oom(&c);
                goto out;
        }
        r = parse_vms(&c, root, &t);
        if (r < 0)
                goto out;
        r = pol_get_object(&c, root, "", "limits", &limits);
        if (r < 0)
                goto out;
        if (r > 0) {
                const char *key;
                json_t *v;
                json_object_foreach(limits, key, v) {
                        char field[256];
                        enum vmg_resource res = vmg_resource_from_name(key);
                        if (res == VMG_RES_COUNT) {
                                const char *names[VMG_RES_COUNT + 1] = { 0 };
                                for (int i = 0; i < VMG_RES_COUNT; i++)
                                        names[i] = vmg_resource_name(i);
                                r = pol_check_keys(&c, limits, "limits", names);
                                goto out;
                        }
                        r = parse_rule(&c, v, pol_join(field, sizeof field, "limits", key), res,
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

