/* Tap counters from one RTM_GETLINK dump per network namespace per read, instead of a
 * sysfs file per counter per tap. A tap may live in another namespace than ours (moved
 * there after QEMU opened it): each namespace gets its own rtnetlink socket, created
 * inside it and kept open across reads, since a socket stays bound to the namespace it
 * was created in. Not thread-safe: one reader per object. */
#pragma once
#include <stddef.h>

#include "probes/sample.h"

struct vmg_netlink;

/* netns_dir: where named namespaces are bind-mounted ("/run/netns" when NULL, as
 * `ip netns add` does). Our own namespace is the calling thread's at creation. Returns 0
 * and *ret, -ENOMEM, or -errno from opening our own namespace or its socket. */
int vmg_netlink_new(const char *netns_dir, struct vmg_netlink **ret);

/* Closes every socket; accepts NULL; returns NULL. */
struct vmg_netlink *vmg_netlink_free(struct vmg_netlink *nl);

/* For each ifs[i] (i < n) whose .tap is set, fills the counters and .found. A tap is
 * looked up where it was last found; when it is missing there, or was never found, our
 * own namespace is searched first, then every namespace in netns_dir (the directory is
 * re-read then, so a namespace made since is seen). Each namespace is dumped at most once
 * per call. A tap found nowhere gets found = false and zero counters. Returns the number
 * of taps found, or -ENOMEM; a namespace that cannot be entered or dumped is logged and
 * skipped. */
int vmg_netlink_read(struct vmg_netlink *nl, struct vmg_iface_counters *ifs, size_t n);

/* Where a tap was last found: "" for our own namespace, else its name in netns_dir.
 * Returns 0 and *ret (valid until the next read), or -ENOENT if the tap is not known. */
int vmg_netlink_tap_netns(const struct vmg_netlink *nl, const char *tap, const char **ret);

/* A number that changes each time the tap turns up as a new device: in another namespace
 * than where it was last seen (its namespace deleted and made again, or the tap moved), or
 * under another ifindex (deleted and made again), also after having been missing. Whatever
 * was installed on the old device (qdiscs, filters) did not come along: a caller that had
 * installed something compares this with the number it saw then. 0 if the tap was never
 * found. */
unsigned long vmg_netlink_tap_generation(const struct vmg_netlink *nl, const char *tap);
