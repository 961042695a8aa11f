/* Discovery and lifecycle through libvirt: which domains run, what their live XML says
 * (probes/domxml.h), their QEMU pid and their disks mapped to host block devices
 * (probes/blockdev.h). Never used per sampling tick: probes read the kernel directly.
 *
 * libvirt's default event loop runs in a thread of this module; lifecycle and
 * connection events reach the caller as records on a pipe whose read end
 * vmg_libvirt_event_fd() returns, so the daemon's own loop can poll it. When libvirtd
 * goes away the thread reconnects with backoff (1 s doubling to 30 s). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "probes/domxml.h"

struct vmg_libvirt_config {
        const char *uri;      /* NULL: "qemu:///system" */
        const char *run_dir;  /* where QEMU pid files are; NULL: "/run/libvirt/qemu" */
        const char *sys_root; /* for blockdev; NULL: "/sys" */
};

enum vmg_domain_state {
        VMG_DOM_RUNNING,
        VMG_DOM_PAUSED,
        VMG_DOM_OTHER, /* shutting down, crashed, pmsuspended... */
};

struct vmg_domain {
        struct vmg_domxml *def;        /* owned; disks[].dev/dev_error resolved */
        enum vmg_domain_state state;
        pid_t qemu_pid;                /* from run_dir/NAME.pid; 0 when unknown: the
                                        * caller falls back to the domain cgroup's procs */
};

enum vmg_libvirt_event_type {
        VMG_LV_DOMAIN_STARTED,
        VMG_LV_DOMAIN_STOPPED,
        VMG_LV_DOMAIN_SUSPENDED,
        VMG_LV_DOMAIN_RESUMED,
        VMG_LV_DOMAIN_OTHER,   /* defined, undefined, shutdown, crashed, pmsuspended */
        VMG_LV_DOMAIN_DEVICE,  /* a disk or NIC hot-plugged or unplugged: its definition changed */
        VMG_LV_CONNECTED,      /* (re)connected: list domains again */
        VMG_LV_DISCONNECTED,   /* libvirtd went away; reconnecting in the background */
        VMG_LV_OVERFLOW,       /* events were dropped (pipe full): list domains again */
};

struct vmg_libvirt_event {
        enum vmg_libvirt_event_type type;
        int detail;            /* libvirt's virDomainEvent*DetailType for domain events */
        char name[128];        /* domain events only */
        char uuid[37];
};

typedef void (*vmg_libvirt_event_cb)(const struct vmg_libvirt_event *ev, void *userdata);

struct vmg_libvirt;

/* Allocates; connects nothing yet. Returns 0 and *ret, or -ENOMEM / -errno (pipe). */
int vmg_libvirt_new(const struct vmg_libvirt_config *cfg, struct vmg_libvirt **ret);

/* Registers libvirt's event loop (once per process), connects read-only, registers the
 * lifecycle and close callbacks and a keepalive, and starts the event thread. Returns 1
 * when connected, 0 when the first attempt failed and the thread keeps retrying (a
 * VMG_LV_CONNECTED event follows on success), or -errno when the thread could not start. */
int vmg_libvirt_start(struct vmg_libvirt *l);

/* Lists active (running or paused) domains with their live XML parsed and disks resolved.
 * A domain that vanishes meanwhile, or whose XML does not parse, is left out (logged).
 * A disk that cannot be mapped keeps its -errno in disks[i].dev_error (-ENODEV for
 * network and volume disks). A domain listed before with the same uuid and id keeps the
 * definition, state and disk mapping fetched then (no round trip to libvirtd), unless an
 * event for it was drained since (or the connection was re-made, or events were dropped):
 * callers must drain events before listing again.
 * The QEMU pid file is read every time. Returns 0, *ret and *n (free with
 * vmg_domains_free); -ENOTCONN when not connected; -EIO when libvirt fails; -ENOMEM. */
int vmg_libvirt_list(struct vmg_libvirt *l, struct vmg_domain **ret, size_t *n);

void vmg_domains_free(struct vmg_domain *d, size_t n);

/* The read end of the event pipe (non-blocking, close-on-exec); owned by l. */
int vmg_libvirt_event_fd(const struct vmg_libvirt *l);

/* Reads every queued event and calls cb for each, in order. Returns how many were
 * delivered, or -errno on a read error. */
int vmg_libvirt_drain_events(struct vmg_libvirt *l, vmg_libvirt_event_cb cb, void *userdata);

bool vmg_libvirt_connected(struct vmg_libvirt *l);

/* Reads run_dir/NAME.pid. Returns 0 and *ret (> 0), -ENOENT without a pid file, -EBADMSG for
 * contents that are not a pid. */
int vmg_libvirt_read_pidfile(const char *run_dir, const char *name, pid_t *ret);

/* Stops the thread, closes the connection and the pipe; accepts NULL; returns NULL. */
struct vmg_libvirt *vmg_libvirt_free(struct vmg_libvirt *l);

const char *vmg_libvirt_event_name(enum vmg_libvirt_event_type t);
