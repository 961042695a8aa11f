/* Network shaping of a guest through its host tap, over rtnetlink (libnl-route-3).
 *
 * Rates are bits/s from the guest's point of view (like probes/sample.h): the guest's
 * transmit is the tap's ingress, shaped by redirecting it (u32 "match all" + mirred) to an
 * ifb device that carries a tbf; the guest's receive is the tap's egress, shaped by a tbf
 * as the tap's root qdisc. Everything vmguard installs is recognisable in the kernel itself
 * (qdisc handle VMG_SHAPER_HANDLE_MAJOR, filter priority VMG_SHAPER_FILTER_PRIO, an ifb
 * whose ifalias names the tap), so a restarted daemon can find and release it; anything
 * else on the tap (an admin's root or ingress qdisc) is never replaced or removed.
 *
 * The tap may live in another network namespace: every call takes `netns`, a name under
 * the configured netns directory (default /run/netns, as `ip netns add` makes them), an
 * absolute path to a namespace file (e.g. /proc/PID/ns/net), or NULL for the caller's own.
 * The ifb is created in the tap's namespace. Calls switch the calling thread's namespace
 * only while opening the netlink socket. Needs CAP_NET_ADMIN (and CAP_SYS_ADMIN for
 * another namespace). A vmg_shaper is used by one thread at a time. */
#pragma once
#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "vg" in ASCII: the major number of every qdisc handle vmguard creates ("7667:"). */
#define VMG_SHAPER_HANDLE_MAJOR 0x7667u
/* Priority ("pref") of the ingress redirect filter vmguard adds. */
#define VMG_SHAPER_FILTER_PRIO 0x7667u
/* Prefix of the ifalias of every ifb vmguard creates; the full alias is
 * "vmguard: ifb for tap <tap>". */
#define VMG_SHAPER_IFB_ALIAS_PREFIX "vmguard: ifb for tap "

/* Bounds of a tbf rate: below MIN the kernel's rate arithmetic rounds badly and a guest link
 * is useless anyway; MAX is what libnl's int bytes/s can carry (~17 Gbit/s), above which a
 * limit protects nobody: pass 0 (no limit) instead. */
#define VMG_SHAPER_MIN_BPS 8000.0
#define VMG_SHAPER_MAX_BPS (2147483647.0 * 8)

struct vmg_shaper_config {
        const char *netns_dir;   /* where named namespaces live; NULL = VMG_NETNS_DIR */
        const char *self_netns;  /* this thread's netns file; NULL = "/proc/thread-self/ns/net" */
};

struct vmg_shaper;

/* What is installed on a tap, from the guest's point of view. */
struct vmg_shaper_state {
        double guest_tx_bps;       /* rate of vmguard's tbf on the ifb; 0 = not shaped */
        double guest_rx_bps;       /* rate of vmguard's root tbf on the tap; 0 = not shaped */
        uint32_t tx_burst, tx_limit; /* bytes, as the kernel reports them (0 if not shaped) */
        uint32_t rx_burst, rx_limit;
        bool tx_redirect;          /* vmguard's ingress qdisc + redirect filter are present */
        bool ifb_present;          /* vmguard's ifb for this tap exists */
        char ifb[IF_NAMESIZE];     /* the ifb's name (set even when it does not exist) */
        bool foreign_root;         /* the tap's root qdisc is someone else's (not a default) */
        bool foreign_ingress;      /* the tap has an ingress/clsact qdisc vmguard did not add */
        bool foreign_ifb;          /* a device vmguard did not create holds the ifb's name */
};

/* tbf parameters vmguard uses for a rate. */
struct vmg_tbf_params {
        uint32_t rate_Bps; /* bytes/s */
        uint32_t burst;    /* bytes */
        uint32_t limit;    /* bytes */
};

/* Allocates a shaper. cfg may be NULL (defaults). Returns 0 and sets *ret, or -ENOMEM. */
int vmg_shaper_new(const struct vmg_shaper_config *cfg, struct vmg_shaper **ret);
/* Frees s (NULL is fine); returns NULL. Does not touch anything installed. */
struct vmg_shaper *vmg_shaper_free(struct vmg_shaper *s);

/* Makes the tap's shaping equal to the given rates (bits/s, 0 = no limit in that direction):
 * installs, changes in place (same qdisc, new rate) or removes vmguard's pieces as needed
 * and writes nothing when they already match. Returns 0 on success; -EINVAL for a bad name
 * or a negative/NaN rate, -ERANGE for a rate outside [VMG_SHAPER_MIN_BPS, VMG_SHAPER_MAX_BPS];
 * -ENODEV if the tap (or -ENOENT if the netns) does not exist; -EBUSY if a direction to
 * shape is held by someone else's qdisc (admin's root qdisc, ingress or clsact), checked
 * before anything is changed; -EEXIST if the ifb name is taken by a device vmguard did not
 * create; -EOPNOTSUPP if the kernel lacks a needed piece (ifb, ingress, u32, mirred, tbf:
 * the log names which); other -errno from the kernel. On failure a direction that was not
 * shaped before the call is left unshaped (best effort). */
int vmg_shaper_set(struct vmg_shaper *s, const char *netns, const char *tap,
                   double guest_tx_bps, double guest_rx_bps);

/* Removes everything vmguard installed for the tap (its root tbf, its ingress qdisc with
 * the redirect filter, its ifb) and nothing else. Returns 0 (also when nothing was
 * installed or the tap is gone: its ifb is still removed), -EINVAL for a bad name,
 * -ENOENT if the netns does not exist, other -errno from the kernel. */
int vmg_shaper_clear(struct vmg_shaper *s, const char *netns, const char *tap);

/* Reads back what is installed on the tap. Returns 0 and fills *ret; -EINVAL, -ENOENT
 * (netns), -ENODEV (tap) or other -errno; *ret is untouched on failure. */
int vmg_shaper_get(struct vmg_shaper *s, const char *netns, const char *tap,
                   struct vmg_shaper_state *ret);

/* Pure helpers, exposed for tests and callers that need to predict what vmguard creates. */

/* tbf parameters for a rate in bits/s on a link of the given MTU (0 = 1500).
 * Returns 0, -EINVAL (NaN/negative/zero rate) or -ERANGE (outside the bounds above). */
int vmg_shaper_tbf_params(double bps, uint32_t mtu, struct vmg_tbf_params *ret);

/* The ifb name for a tap: "vgi-<tap>" when it fits IFNAMSIZ, else "vgi-" + the tap's first
 * 3 characters + 8 hex digits of a hash of the whole name (stable across runs).
 * Returns 0 and fills ret (IF_NAMESIZE bytes), or -EINVAL for an empty/too long/invalid tap
 * name. */
int vmg_shaper_ifb_name(const char *tap, char ret[static IF_NAMESIZE]);

/* The namespace file for `netns` (see above) into ret (size bytes). Returns 0, -EINVAL for
 * an invalid name (empty, ".", "..", containing '/' unless absolute) or -ENAMETOOLONG. */
int vmg_shaper_netns_path(const char *netns_dir, const char *netns, char *ret, size_t size);
