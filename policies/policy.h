/* Tenant and host policy: parsed from JSON into a validated, read-only struct. This module
 * does no I/O beyond reading the files it is given; vmg_policy_parse() works on buffers. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <stdint.h>
#include <stdio.h>

#include "policies/resources.h"

/* Per resource. 0 in a limit field means "not set". */
struct vmg_rule {
        double cap;            /* hard cap: always applied */
        bool noisy;            /* a noisy-neighbour rule is present */
        double noisy_above;    /* usage above this makes the VM a suspect */
        uint64_t noisy_for_ns; /* ... once sustained this long while the host is contended */
        double throttle_to;    /* limit applied while noisy */
        double floor;          /* the engine never limits below this */
        uint64_t calm_for_ns;  /* below noisy_above (or no contention) this long: release */
};

enum vmg_match_kind { VMG_MATCH_METADATA, VMG_MATCH_NAME_GLOB, VMG_MATCH_UUID };

struct vmg_vm_match {
        enum vmg_match_kind kind;
        char *value;
        int line, column; /* where it was written, for "claimed by two tenants" errors */
};

struct vmg_tenant {
        char *name;
        char *file;
        struct vmg_vm_match *matches;
        size_t n_matches;
        struct vmg_rule rules[VMG_RES_COUNT];
};

enum vmg_service_kind { VMG_SERVICE_PROCESS, VMG_SERVICE_UNIT };

struct vmg_service {
        char *name;                 /* label used in logs and metrics */
        enum vmg_service_kind kind;
        char *match;                /* process name (comm) or systemd unit name */
        /* A process service is the processes named match whose /proc/PID/exe is exe and
         * whose real and effective uid are uid: a name is anyone's to choose, a root-owned
         * path run under the service's uid is not. NULL for a unit (its cgroup is only
         * systemd's to fill). */
        char *exe;
        uid_t uid;
        int priority;               /* 1..10: weight given when raised; higher wins */
        double max_run_delay_ms;    /* mean run-queue wait per timeslice, 0 = not judged */
        double max_io_delay_frac;   /* blkio delay seconds per second, 0 = not judged */
        double max_probe_latency_ms;/* DNS/DHCP probe answer time, 0 = not judged */
        char *probe_dns;            /* "ADDR[:PORT]/NAME" (optional) */
        char *probe_netns;          /* network namespace (name under /run/netns) the probe is
                                     * sent from, NULL for the daemon's own */
};

struct vmg_host_policy {
        char *file;
        uint64_t tick_ns;
        /* Host contention: any one of these over its threshold (fractions 0..1; 0 = off). */
        double psi_cpu_some;
        double psi_io_some;
        double vm_steal;            /* another VM's vCPU run-queue wait per second */
        /* Engine damping. */
        uint64_t min_hold_ns;       /* a limit stays at least this long before it moves */
        double step_down;           /* each tightening multiplies the limit by this (0..1) */
        double step_up;             /* each loosening multiplies it by this (>1) */
        struct vmg_service *services;
        size_t n_services;
};

struct vmg_policy {
        struct vmg_host_policy host;
        struct vmg_tenant *tenants;
        size_t n_tenants;
};

/* An error found while loading: "file:line:column: field: message". */
struct vmg_policy_error {
        char file[256];
        int line, column;
        char field[128];
        char message[256];
};
/* Formats err as "FILE:LINE:COL: FIELD: MESSAGE". */
const char *vmg_policy_error_format(const struct vmg_policy_error *err, char *buf, size_t len);

/* Parses one tenant file's contents. On success returns 0 and *ret owns a new tenant;
 * on failure returns -EINVAL (or -ENOMEM) and fills err, *ret untouched. "name" is the file
 * path used in messages; when it ends in ".json" the tenant name must equal its stem. buf
 * need not be NUL-terminated. Release with vmg_tenant_done(). */
int vmg_tenant_parse(const char *name, const char *buf, size_t len, struct vmg_tenant *ret,
                     struct vmg_policy_error *err);
/* Frees what t owns and zeroes it. */
void vmg_tenant_done(struct vmg_tenant *t);

/* Parses the host file's contents (same contract); absent keys get their defaults. */
int vmg_host_policy_parse(const char *name, const char *buf, size_t len,
                          struct vmg_host_policy *ret, struct vmg_policy_error *err);
/* Frees what h owns and zeroes it. */
void vmg_host_policy_done(struct vmg_host_policy *h);

/* Loads host_file and every *.json in tenants_dir (sorted by name), validates across files
 * (a VM claimed by two tenants), and on success hands a new policy to *ret. On any error,
 * returns negative errno, fills err, and *ret is untouched: a bad set never replaces a good
 * one. host_file may be NULL (defaults); tenants_dir may be NULL (no tenants). A named file
 * or directory that does not exist is an error (-ENOENT). Only *.json files not starting
 * with '.' or '#' are read: editors' swap, lock and backup files (".acme.json.swp",
 * "#acme.json#", "acme.json~") are ignored. The directory and files are read in two passes
 * that must agree byte for byte (an edit landing mid-read is retried, never half-loaded);
 * a directory that keeps changing for every try gives -EAGAIN. */
int vmg_policy_load(const char *host_file, const char *tenants_dir, struct vmg_policy **ret,
                    struct vmg_policy_error *err);
/* vmg_policy_load() with its read loop tunable. tries: passes compared before -EAGAIN (0 =
 * default, 5). between_passes (a test seam, NULL in the daemon): called before pass N+1 is
 * read, instead of the back-off sleep. */
struct vmg_policy_load_opts {
        unsigned tries;
        void (*between_passes)(void *userdata, unsigned pass);
        void *userdata;
};
int vmg_policy_load_ex(const char *host_file, const char *tenants_dir,
                       const struct vmg_policy_load_opts *opts, struct vmg_policy **ret,
                       struct vmg_policy_error *err);
/* Same contract as vmg_policy_load(), with the tenant files named one by one (loaded in the
 * order given) instead of read from a directory: `vmguard policy check FILES…`. */
int vmg_policy_load_files(const char *host_file, const char *const *tenant_files,
                          size_t n_tenant_files, struct vmg_policy **ret,
                          struct vmg_policy_error *err);
/* Frees p and everything it owns; returns NULL. */
struct vmg_policy *vmg_policy_free(struct vmg_policy *p);

/* Which tenant owns a VM: metadata tenant name (may be NULL), domain name, UUID string.
 * Returns the tenant index or -1 (the VM is unmanaged). Precedence: metadata (naming a
 * tenant with "metadata": true; otherwise ignored), then UUID (case-insensitive), then name
 * glob (fnmatch, first tenant in load order). */
int vmg_policy_match(const struct vmg_policy *p, const char *metadata_tenant,
                     const char *name, const char *uuid);

/* Prints the effective policy (defaults filled in) in human units, for "policy check". */
void vmg_policy_print(const struct vmg_policy *p, FILE *out);
