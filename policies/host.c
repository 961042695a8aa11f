/* The host file: ticks, contention thresholds, damping and the protected services, into
 * a validated struct vmg_host_policy with defaults for everything left out. */
#include "policies/parse.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <jansson.h>
#include <limits.h>
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
 * Host file */

void pol_host_defaults(struct vmg_host_policy *h) {
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
        free(s->exe);
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

/* "exe" and "uid" of a process service: both required, since any local user can name a
 * process "dnsmasq" (and would then steer the harm signal and, without systemd, be moved
 * as root into vmguard.services with the top CPU weight), and any user can also run
 * /usr/sbin/dnsmasq itself: only the pair of a path and a uid is the owner's alone. Not
 * allowed for a unit, whose cgroup already says who started it. Checked after the other
 * fields so that their errors come first. */
static int parse_owner(struct parse_ctx *c, json_t *v, const char *path, const char *process,
                       const char **exe, uid_t *uid) {
        char field[256];
        json_t *uv = json_object_get(v, "uid");
        int r = pol_get_string(c, v, path, "exe", exe);
        if (r < 0)
                return r;
        if (!process && (*exe || uv))
                return pol_perr(c, pol_join(field, sizeof field, path, *exe ? "exe" : "uid"),
                                "only for a \"process\" service: a unit is found by its cgroup");
        if (!process)
                return 0;
        if (!*exe)
                return pol_perr(c, pol_join(field, sizeof field, path, "exe"),
                                "missing: a process name alone can be taken by any local user; "
                                "give the service's executable (e.g. \"/usr/sbin/%s\") and "
                                "\"uid\", or use \"unit\"",
                                process);
        pol_join(field, sizeof field, path, "exe");
        if ((*exe)[0] != '/' || strstr(*exe, "/../") || strstr(*exe, "/./") || strstr(*exe, "//") ||
            (*exe)[strlen(*exe) - 1] == '/' || strlen(*exe) >= PATH_MAX)
                return pol_perr(c, field,
                                "\"%s\" is not an absolute, normalised file path (as "
                                "/proc/PID/exe shows it)",
                                *exe);
        pol_join(field, sizeof field, path, "uid");
        if (!uv)
                return pol_perr(c, field,
                                "missing: the numeric uid the service runs as (0 for root): "
                                "any user can run %s, only its owner under that uid",
                                *exe);
        if (!json_is_integer(uv))
                return pol_perr(c, field, "must be a numeric uid, not %s", pol_type_name(uv));
        json_int_t u = json_integer_value(uv);
        /* (uid_t) -1 is "no uid" to the kernel's set*id calls, never a process's uid. */
        if (u < 0 || u >= (json_int_t) UINT32_MAX)
                return pol_perr(c, field, "%" JSON_INTEGER_FORMAT " is out of range 0..%u", u,
                                UINT32_MAX - 1);
        *uid = (uid_t) u;
        return 0;
}

static int parse_service(struct parse_ctx *c, json_t *v, const char *path,
                         const struct vmg_service *prev, size_t n_prev,
                         struct vmg_service *ret) {
        static const char *const keys[] = { "name", "description", "process", "exe", "uid",
                                            "unit", "priority", "max_run_delay", "max_io_delay",
                                            "max_probe_latency", "probe_dns", "probe_netns", NULL };
        char field[256];
        struct vmg_service s = { .priority = DEFAULT_PRIORITY };
        const char *name = NULL, *process = NULL, *unit = NULL, *probe = NULL, *desc;
        const char *probe_netns = NULL, *exe = NULL;
        uint64_t ns;
        json_t *pv;
        int r;

        if (!json_is_object(v))
                return pol_perr(c, path, "must be an object, not %s", pol_type_name(v));
        r = pol_check_keys(c, v, path, keys);
        if (r < 0)
                return r;
        if ((r = pol_get_string(c, v, path, "description", &desc)) < 0)
                return r;
        if ((r = pol_get_string(c, v, path, "name", &name)) < 0)
                return r;
        if (r == 0)
                return pol_perr(c, pol_join(field, sizeof field, path, "name"),
                                "missing: every service needs a name for logs and metrics");
        for (size_t i = 0; i < n_prev; i++)
                if (strcmp(prev[i].name, name) == 0) {
                        char other[64];
                        int line, column;
                        snprintf(other, sizeof other, "services[%zu].name", i);
                        pol_locate(c->buf, c->len, other, &line, &column);
                        return pol_perr(c, pol_join(field, sizeof field, path, "name"),
                                        "service \"%s\" is defined twice (first at %d:%d)", name,
                                        line, column);
                }
        if ((r = pol_get_string(c, v, path, "process", &process)) < 0)
                return r;
        if ((r = pol_get_string(c, v, path, "unit", &unit)) < 0)
                return r;
        if (process && unit)
                return pol_perr(c, pol_join(field, sizeof field, path, "unit"),
                                "give either \"process\" or \"unit\", not both");
        if (!process && !unit)
                return pol_perr(c, pol_join(field, sizeof field, path, "process"),
                                "missing: say how to find the service (\"process\" or \"unit\")");
        if (process && strlen(process) > COMM_MAX)
                return pol_perr(c, pol_join(field, sizeof field, path, "process"),
                                "\"%s\" is longer than %d characters, the kernel's limit for a "
                                "process name (comm), so it can never match",
                                process, COMM_MAX);
        if (unit) {
                size_t n = strlen(unit);
                bool ok = (n > 8 && strcmp(unit + n - 8, ".service") == 0) ||
                          (n > 6 && strcmp(unit + n - 6, ".scope") == 0);
                if (!ok)
                        return pol_perr(c, pol_join(field, sizeof field, path, "unit"),
                                        "\"%s\" is not a unit name ending in .service or .scope",
                                        unit);
        }

        pv = json_object_get(v, "priority");
        if (pv) {
                pol_join(field, sizeof field, path, "priority");
                if (!json_is_integer(pv))
                        return pol_perr(c, field, "must be an integer from 1 to 10, not %s",
                                        pol_type_name(pv));
                json_int_t p = json_integer_value(pv);
                if (p < 1 || p > 10)
                        return pol_perr(c, field, "%" JSON_INTEGER_FORMAT " is out of range 1..10",
                                        p);
                s.priority = (int) p;
        }
        r = pol_get_duration(c, v, path, "max_run_delay", 1000, 10 * NSEC_PER_SEC, &ns);
        if (r < 0)
                return r;
        if (r > 0)
                s.max_run_delay_ms = (double) ns / NSEC_PER_MSEC;
        r = pol_get_fraction(c, v, path, "max_io_delay", 0, 1, true, &s.max_io_delay_frac);
        if (r < 0)
                return r;
        r = pol_get_duration(c, v, path, "max_probe_latency", NSEC_PER_MSEC, 60 * NSEC_PER_SEC,
                             &ns);
        if (r < 0)
                return r;
        if (r > 0)
                s.max_probe_latency_ms = (double) ns / NSEC_PER_MSEC;
        if ((r = pol_get_string(c, v, path, "probe_dns", &probe)) < 0)
                return r;
        if (probe && !valid_probe_dns(probe))
                return pol_perr(c, pol_join(field, sizeof field, path, "probe_dns"),
                                "\"%s\" is not ADDR[:PORT]/NAME (e.g. \"198.18.0.1:53/victim.lab\" "
                                "or \"[2001:db8::1]/victim.lab\")",
                                probe);
        if ((r = pol_get_string(c, v, path, "probe_netns", &probe_netns)) < 0)
                return r;
        if (probe_netns && (!*probe_netns || strcmp(probe_netns, ".") == 0 ||
                            strcmp(probe_netns, "..") == 0 ||
                            strspn(probe_netns, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") !=
                                    strlen(probe_netns)))
                return pol_perr(c, pol_join(field, sizeof field, path, "probe_netns"),
                                "\"%s\" is not a network namespace name (letters, digits, _ . -, as under /run/netns)",
                                probe_netns);
        if (probe_netns && !probe)
                return pol_perr(c, pol_join(field, sizeof field, path, "probe_netns"),
                                "needs \"probe_dns\": the query to send from that namespace");
        if (s.max_probe_latency_ms > 0 && !probe)
                return pol_perr(c, pol_join(field, sizeof field, path, "max_probe_latency"),
                                "needs \"probe_dns\": the query whose answer time is judged");
        if (probe && s.max_probe_latency_ms == 0)
                return pol_perr(c, pol_join(field, sizeof field, path, "probe_dns"),
                                "needs \"max_probe_latency\": the answer time that counts as harm");
        if (s.max_run_delay_ms == 0 && s.max_io_delay_frac == 0 && s.max_probe_latency_ms == 0)
                return pol_perr(c, path,
                                "judges nothing: set \"max_run_delay\", \"max_io_delay\" or "
                                "\"max_probe_latency\"");
        if ((r = parse_owner(c, v, path, process, &exe, &s.uid)) < 0)
                return r;

        s.kind = process ? VMG_SERVICE_PROCESS : VMG_SERVICE_UNIT;
        s.name = strdup(name);
        s.match = strdup(process ? process : unit);
        s.exe = exe ? strdup(exe) : NULL;
        s.probe_dns = probe ? strdup(probe) : NULL;
        s.probe_netns = probe_netns ? strdup(probe_netns) : NULL;
        if (!s.name || !s.match || (exe && !s.exe) || (probe && !s.probe_dns) || (probe_netns && !s.probe_netns)) {
                service_done(&s);
                return pol_oom(c);
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

        pol_host_defaults(&h);
        r = pol_load_json(&c, &root);
        if (r < 0)
                return r;
        r = pol_check_keys(&c, root, "", keys);
        if (r < 0)
                goto out;
        if ((r = pol_get_string(&c, root, "", "description", &desc)) < 0)
                goto out;
        /* Faster than 100 ms the probes' own reads become the load; slower than a minute
         * the victims suffer through whole episodes unseen. */
        r = pol_get_duration(&c, root, "", "tick", 100 * NSEC_PER_MSEC, 60 * NSEC_PER_SEC,
                             &h.tick_ns);
        if (r < 0)
                goto out;

        r = pol_get_object(&c, root, "", "contention", &obj);
        if (r < 0)
                goto out;
        if (r > 0) {
                r = pol_check_keys(&c, obj, "contention", contention_keys);
                if (r < 0)
                        goto out;
                if ((r = pol_get_fraction(&c, obj, "contention", "psi_io_some", 0, 1, false,
                                          &h.psi_io_some)) < 0 ||
                    (r = pol_get_fraction(&c, obj, "contention", "psi_cpu_some", 0, 1, false,
                                          &h.psi_cpu_some)) < 0 ||
                    (r = pol_get_fraction(&c, obj, "contention", "vm_steal", 0, 1, false,
                                          &h.vm_steal)) < 0)
                        goto out;
        }

        r = pol_get_object(&c, root, "", "damping", &obj);
        if (r < 0)
                goto out;
        if (r > 0) {
                r = pol_check_keys(&c, obj, "damping", damping_keys);
                if (r < 0)
                        goto out;
                if ((r = pol_get_duration(&c, obj, "damping", "min_hold", 0, 3600 * NSEC_PER_SEC,
                                          &h.min_hold_ns)) < 0)
                        goto out;
                if ((r = pol_get_quantity(&c, obj, "damping", "step_down", Q_FRACTION,
                                          &h.step_down)) < 0)
                        goto out;
                if (r > 0 && (h.step_down <= 0 || h.step_down >= 1)) {
                        r = pol_perr(&c, "damping.step_down",
                                     "%g is out of range: must be above 0 and below 1", h.step_down);
                        goto out;
                }
                /* step_up is a multiplier above 1, so it is read as a plain fraction too
                 * ("150%" or 1.5) and range-checked here. */
                if ((r = pol_get_quantity(&c, obj, "damping", "step_up", Q_FRACTION, &h.step_up)) <
                    0)
                        goto out;
                if (r > 0 && (h.step_up <= 1 || h.step_up > 10)) {
                        r = pol_perr(&c, "damping.step_up",
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
                        r = pol_perr(&c, "services", "must be an array of objects, not %s",
                                     pol_type_name(services));
                        goto out;
                }
                h.services = calloc(json_array_size(services) + 1, sizeof *h.services);
                if (!h.services) {
                        r = pol_oom(&c);
                        goto out;
                }
                json_array_foreach(services, i, v) {
                        char path[64];
                        pol_join_index(path, sizeof path, "services", i);
                        r = parse_service(&c, v, path, h.services, h.n_services,
                                          &h.services[h.n_services]);
                        if (r < 0)
                                goto out;
                        h.n_services++;
                }
        }
        h.file = strdup(name);
        if (!h.file) {
                r = pol_oom(&c);
                goto out;
        }
        *ret = h;
        pol_host_defaults(&h);
        r = 0;
out:
        vmg_host_policy_done(&h);
        json_decref(root);
        return r;
}

