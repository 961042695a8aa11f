#define _GNU_SOURCE 1 /* setns */
#include "probes/netlink.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <netlink/cache.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/socket.h>

#include "common/log.h"
#include "common/macros.h"
#include "common/paths.h"

struct ns {
        char name[NAME_MAX + 1]; /* "" = our own namespace */
        dev_t dev;               /* identity of the namespace (nsfs inode), to notice */
        ino_t ino;               /* a name deleted and made again */
        struct nl_sock *sk;
        struct nl_cache *links;
        unsigned long dumped_gen; /* read generation of the last successful dump */
        bool dump_failed;         /* in this generation: do not retry within one read */
        bool seen;                /* still present in netns_dir at the last rescan */
};

struct tap {
        char name[IF_NAMESIZE];
        struct ns *ns;
        int ifindex;         /* where last found, with ns */
        unsigned long gen;   /* bumped each time it turns up in another place */
};

struct vmg_netlink {
        char *netns_dir;
        int self_fd;  /* our namespace, to setns() back to after making a socket elsewhere */
        struct ns **nss; /* [0] is our own */
        size_t n_nss;
        struct tap *taps;
        size_t n_taps;
        unsigned long gen;
        bool stranded; /* setns() back failed: this thread is in a foreign namespace */
};

static void ns_free(struct ns *ns) {
        if (!ns)
                return;
        if (ns->links)
                nl_cache_free(ns->links);
        if (ns->sk)
                nl_socket_free(ns->sk);
        free(ns);
}

static int ns_connect_here(struct ns *ns) {
        struct nl_sock *sk = nl_socket_alloc();
        if (!sk)
                return -ENOMEM;
        int r = nl_connect(sk, NETLINK_ROUTE);
        if (r < 0) {
                nl_socket_free(sk);
                return log_warning_errno(EIO, "netns \"%s\": rtnetlink socket: %s", ns->name,
                                         nl_geterror(r));
        }
        ns->sk = sk;
        return 0;
}

/* Makes the socket inside the namespace behind fd: setns() there, socket(), setns() back.
 * The socket keeps answering for that namespace after we leave it. */
static int ns_connect_in(struct vmg_netlink *nl, struct ns *ns, int fd) {
        if (setns(fd, CLONE_NEWNET) < 0)
                return log_warning_errno(errno, "netns \"%s\": setns: %m", ns->name);
        int r = ns_connect_here(ns);
        if (setns(nl->self_fd, CLONE_NEWNET) < 0) {
                /* Every later socket and sysfs read of this thread would be in the wrong
                 * namespace: refuse to go on rather than report a foreign host's taps. */
                nl->stranded = true;
                return log_error_errno(errno, "netns \"%s\": cannot setns() back to our own "
                                       "network namespace: %m", ns->name);
        }
        return r;
}

static struct ns *ns_find(struct vmg_netlink *nl, const char *name) {
        for (size_t i = 0; i < nl->n_nss; i++)
                if (strcmp(nl->nss[i]->name, name) == 0)
                        return nl->nss[i];
        return NULL;
}

static void forget_ns(struct vmg_netlink *nl, size_t idx) {
        struct ns *ns = nl->nss[idx];
        for (size_t i = 0; i < nl->n_taps; i++)
                if (nl->taps[i].ns == ns)
                        nl->taps[i].ns = NULL;
        ns_free(ns);
        memmove(nl->nss + idx, nl->nss + idx + 1, (nl->n_nss - idx - 1) * sizeof *nl->nss);
        nl->n_nss--;
}

static int add_ns(struct vmg_netlink *nl, struct ns *ns) {
        struct ns **a = realloc(nl->nss, (nl->n_nss + 1) * sizeof *a);
        if (!a)
                return -ENOMEM;
        nl->nss = a;
        nl->nss[nl->n_nss++] = ns;
        return 0;
}

/* Re-reads netns_dir: opens sockets in namespaces new since the last scan, drops those
 * gone or replaced (same name, other namespace). -ENOMEM only; the rest is logged. */
static int rescan_namespaces(struct vmg_netlink *nl) {
        for (size_t i = 1; i < nl->n_nss; i++)
                nl->nss[i]->seen = false;

        DIR *d = opendir(nl->netns_dir);
        if (!d && errno != ENOENT)
                log_debug("cannot list network namespaces in %s: %m", nl->netns_dir);
        struct dirent *de;
        while (d && (de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                char path[PATH_MAX];
                if (snprintf(path, sizeof path, "%s/%s", nl->netns_dir, de->d_name) >= (int) sizeof path)
                        continue;
                _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
                struct stat st;
                if (fd < 0 || fstat(fd, &st) < 0) {
                        log_debug("netns %s: cannot open: %m", path);
                        continue;
                }
                /* Our own namespace under a name: dumping it twice would find taps twice. */
                if (st.st_dev == nl->nss[0]->dev && st.st_ino == nl->nss[0]->ino)
                        continue;
                struct ns *ns = ns_find(nl, de->d_name);
                if (ns && (ns->dev != st.st_dev || ns->ino != st.st_ino)) {
                        for (size_t i = 1; i < nl->n_nss; i++)
                                if (nl->nss[i] == ns)
                                        forget_ns(nl, i);
                        ns = NULL;
                }
                if (ns) {
                        ns->seen = true;
                        continue;
                }
                ns = calloc(1, sizeof *ns);
                if (!ns) {
                        closedir(d);
                        return -ENOMEM;
                }
                snprintf(ns->name, sizeof ns->name, "%s", de->d_name);
                ns->dev = st.st_dev;
                ns->ino = st.st_ino;
                ns->seen = true;
                if (ns_connect_in(nl, ns, fd) < 0 || add_ns(nl, ns) < 0) {
                        ns_free(ns);
                        if (nl->stranded)
                                break;
                        continue;
                }
                log_debug("netns \"%s\": rtnetlink socket open", ns->name);
        }
        if (d)
                closedir(d);
        for (size_t i = nl->n_nss; i > 1; i--)
                if (!nl->nss[i - 1]->seen) {
                        log_debug("netns \"%s\" is gone", nl->nss[i - 1]->name);
                        forget_ns(nl, i - 1);
                }
        return 0;
}

/* One RTM_GETLINK dump of ns per read generation. */
static bool ns_dump(struct vmg_netlink *nl, struct ns *ns) {
        if (ns->dumped_gen == nl->gen)
                return true;
        if (ns->dump_failed)
                return false;
        int r = ns->links ? nl_cache_refill(ns->sk, ns->links)
                          : rtnl_link_alloc_cache(ns->sk, AF_UNSPEC, &ns->links);
        if (r < 0) {
                log_warning("netns \"%s\": link dump failed: %s", ns->name, nl_geterror(r));
                ns->dump_failed = true;
                return false;
        }
        ns->dumped_gen = nl->gen;
        return true;
}

static bool lookup(struct vmg_netlink *nl, struct ns *ns, struct vmg_iface_counters *c, int *ifindex) {
        if (!ns_dump(nl, ns))
                return false;
        struct rtnl_link *l = rtnl_link_get_by_name(ns->links, c->tap);
        if (!l)
                return false;
        *ifindex = rtnl_link_get_ifindex(l);
        /* libnl keeps the 64-bit IFLA_STATS64 values when the kernel sends them. */
        c->rx_bytes = rtnl_link_get_stat(l, RTNL_LINK_RX_BYTES);
        c->tx_bytes = rtnl_link_get_stat(l, RTNL_LINK_TX_BYTES);
        c->rx_packets = rtnl_link_get_stat(l, RTNL_LINK_RX_PACKETS);
        c->tx_packets = rtnl_link_get_stat(l, RTNL_LINK_TX_PACKETS);
        c->rx_dropped = rtnl_link_get_stat(l, RTNL_LINK_RX_DROPPED);
        c->tx_dropped = rtnl_link_get_stat(l, RTNL_LINK_TX_DROPPED);
        c->found = true;
        rtnl_link_put(l);
        return true;
}

static struct tap *tap_find(const struct vmg_netlink *nl, const char *name) {
        for (size_t i = 0; i < nl->n_taps; i++)
                if (strcmp(nl->taps[i].name, name) == 0)
                        return &nl->taps[i];
        return NULL;
}

/* A tap seen in another namespace, or under another ifindex (deleted and made again), is
 * a new device: whatever was installed on the old one is gone, hence the new generation. */
static void tap_seen(struct tap *t, struct ns *ns, int ifindex) {
        if (t->ns == ns && t->ifindex == ifindex)
                return;
        if (t->ns != ns)
                log_debug("tap %s found in %s%s%s", t->name, ns->name[0] ? "netns \"" : "our own netns",
                          ns->name, ns->name[0] ? "\"" : "");
        t->ns = ns;
        t->ifindex = ifindex;
        t->gen++;
}

static int tap_remember(struct vmg_netlink *nl, const char *name, struct ns *ns, int ifindex) {
        struct tap *t = tap_find(nl, name);
        if (!t) {
                struct tap *a = realloc(nl->taps, (nl->n_taps + 1) * sizeof *a);
                if (!a)
                        return -ENOMEM;
                nl->taps = a;
                t = &nl->taps[nl->n_taps++];
                /* realloc'd memory: t->ns is compared below (valgrind: uninitialised) */
                *t = (struct tap) { .ns = NULL };
                snprintf(t->name, sizeof t->name, "%s", name);
        }
        tap_seen(t, ns, ifindex);
        return 0;
}

/* Our socket holds a reference on its namespace: after `ip netns del` the namespace,
 * and every tap and veth in it, would live on as long as we keep the socket. So each
 * read checks that each named namespace is still mounted (one stat each) and lets go of
 * those that are not. */
static void drop_deleted_namespaces(struct vmg_netlink *nl) {
        for (size_t i = nl->n_nss; i > 1; i--) {
                struct ns *ns = nl->nss[i - 1];
                char path[PATH_MAX];
                struct stat st;
                if (snprintf(path, sizeof path, "%s/%s", nl->netns_dir, ns->name) < (int) sizeof path &&
                    stat(path, &st) == 0 && st.st_dev == ns->dev && st.st_ino == ns->ino)
                        continue;
                log_debug("netns \"%s\" deleted or replaced, closing its socket", ns->name);
                forget_ns(nl, i - 1);
        }
}

int vmg_netlink_read(struct vmg_netlink *nl, struct vmg_iface_counters *ifs, size_t n) {
        if (nl->stranded)
                return -EIO;
        nl->gen++;
        drop_deleted_namespaces(nl);
        for (size_t i = 0; i < nl->n_nss; i++)
                nl->nss[i]->dump_failed = false;

        int found = 0;
        bool missing = false;
        for (size_t i = 0; i < n; i++) {
                struct vmg_iface_counters *c = &ifs[i];
                char tap[IF_NAMESIZE];
                memcpy(tap, c->tap, sizeof tap);
                tap[IF_NAMESIZE - 1] = 0;
                *c = (struct vmg_iface_counters) {};
                memcpy(c->tap, tap, sizeof tap);
                if (!tap[0])
                        continue;
                struct tap *t = tap_find(nl, tap);
                int ifindex;
                if (t && t->ns && lookup(nl, t->ns, c, &ifindex)) {
                        tap_seen(t, t->ns, ifindex);
                        found++;
                } else
                        missing = true;
        }
        if (!missing)
                return found;

        /* Some tap is not where we saw it last (gone, moved, or new): search everywhere,
         * ours first, then named namespaces in directory order. */
        int r = rescan_namespaces(nl);
        if (r < 0)
                return r;
        if (nl->stranded)
                return -EIO;
        for (size_t i = 0; i < n; i++) {
                struct vmg_iface_counters *c = &ifs[i];
                if (!c->tap[0] || c->found)
                        continue;
                for (size_t k = 0; k < nl->n_nss; k++) {
                        int ifindex;
                        if (!lookup(nl, nl->nss[k], c, &ifindex))
                                continue;
                        r = tap_remember(nl, c->tap, nl->nss[k], ifindex);
                        if (r < 0)
                                return r;
                        found++;
                        break;
                }
                if (!c->found) {
                        struct tap *t = tap_find(nl, c->tap);
                        if (t)
                                t->ns = NULL;
                        log_debug("tap %s not found in any network namespace", c->tap);
                }
        }
        return found;
}

int vmg_netlink_tap_netns(const struct vmg_netlink *nl, const char *tap, const char **ret) {
        const struct tap *t = tap_find(nl, tap);
        if (!t || !t->ns)
                return -ENOENT;
        *ret = t->ns->name;
        return 0;
}

unsigned long vmg_netlink_tap_generation(const struct vmg_netlink *nl, const char *tap) {
        const struct tap *t = tap_find(nl, tap);
        return t ? t->gen : 0;
}

int vmg_netlink_new(const char *netns_dir, struct vmg_netlink **ret) {
        struct vmg_netlink *nl = calloc(1, sizeof *nl);
        if (!nl)
                return -ENOMEM;
        nl->self_fd = -1;
        int r;
        nl->netns_dir = strdup(netns_dir ? netns_dir : VMG_NETNS_DIR);
        if (!nl->netns_dir) {
                r = -ENOMEM;
                goto fail;
        }
        /* thread-self: setns() is per thread, and so is the namespace to return to. */
        nl->self_fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (nl->self_fd < 0 || fstat(nl->self_fd, &st) < 0) {
                r = log_error_errno(errno, "cannot open /proc/thread-self/ns/net: %m");
                goto fail;
        }
        struct ns *own = calloc(1, sizeof *own);
        if (!own) {
                r = -ENOMEM;
                goto fail;
        }
        own->dev = st.st_dev;
        own->ino = st.st_ino;
        r = ns_connect_here(own);
        if (r < 0 || (r = add_ns(nl, own)) < 0) {
                ns_free(own);
                goto fail;
        }
        *ret = nl;
        return 0;
fail:
        vmg_netlink_free(nl);
        return r;
}

struct vmg_netlink *vmg_netlink_free(struct vmg_netlink *nl) {
        if (!nl)
                return NULL;
        for (size_t i = 0; i < nl->n_nss; i++)
                ns_free(nl->nss[i]);
        free(nl->nss);
        free(nl->taps);
        if (nl->self_fd >= 0)
                close(nl->self_fd);
        free(nl->netns_dir);
        free(nl);
        return NULL;
}
