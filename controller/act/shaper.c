/* Network shaping of a guest's tap; contracts in shaper.h. About 980 lines, one file on
 * purpose: shaping a guest's transmit is one transaction over libnl objects (the ctx below:
 * a socket inside the tap's namespace, link and qdisc caches, the kernel's error text) that
 * every step shares, from reading what is there to the ifb, the ingress redirect and the
 * tbf. Split, ctx and its cleanup helpers would become an API with no second user. */
#define _GNU_SOURCE /* setns() */
#include "controller/act/shaper.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/if_ether.h>
#include <linux/netlink.h>
#include <linux/pkt_sched.h>
#include <linux/tc_act/tc_mirred.h>

#include <netlink/attr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/act/mirred.h>
#include <netlink/route/action.h>
#include <netlink/route/classifier.h>
#include <netlink/route/cls/u32.h>
#include <netlink/route/link.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/qdisc/tbf.h>
#include <netlink/route/tc.h>
#include <netlink/socket.h>

#include "common/log.h"
#include "common/macros.h"
#include "common/paths.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

#define QDISC_HANDLE TC_H_MAKE(VMG_SHAPER_HANDLE_MAJOR << 16, 0)
#define INGRESS_HANDLE TC_H_MAKE(TC_H_INGRESS, 0) /* "ffff:", the only handle ingress takes */

/* Ethernet header plus one VLAN tag: what tbf counts on top of the MTU for a full frame. */
#define FRAME_OVERHEAD 22u
/* The bucket holds at least this many full frames, so short exchanges (DHCP, DNS, a TCP
 * handshake) pass unqueued while a flood is still held to the rate. */
#define BURST_MIN_FRAMES 10u
/* At least one timer tick's worth of tokens: with less, tbf cannot reach its rate because
 * the watchdog cannot wake it more often. HZ=100 is the coarsest common tick, so the
 * figure is safe on any kernel (this one runs HZ=250). */
#define BURST_TICK_HZ 100u
/* Queue ~50 ms at the rate before dropping: enough for TCP to keep the link busy, short
 * enough that the guest's own latency stays bounded; drops are what slow TCP down. */
#define LIMIT_QUEUE_MSEC 50u

struct vmg_shaper {
        char *netns_dir;
        char *self_netns;
        /* libnl folds the kernel's errno into its own codes (ENOENT and ESRCH become one), so
         * the socket's error callback keeps the kernel's own errno and extack message. */
        int kernel_errno;
        char kernel_msg[256];
};

/* One call's view of a tap and of what vmguard owns there. */
struct ctx {
        struct vmg_shaper *s;
        const char *ns;   /* for logs */
        const char *tap;
        struct nl_sock *sk;
        int tap_ifindex;  /* 0: tap absent */
        uint32_t tap_mtu;
        char ifb[IF_NAMESIZE];
        char ifb_alias[sizeof(VMG_SHAPER_IFB_ALIAS_PREFIX) + IF_NAMESIZE];
        int ifb_ifindex;  /* 0: no ifb of ours */
        bool ifb_foreign; /* a device that is not vmguard's holds the ifb's name */
        bool ifb_up;
        struct nl_cache *qdiscs;
};

static void nl_socket_freep(struct nl_sock **p) { if (*p) nl_socket_free(*p); }
static void nl_cache_freep(struct nl_cache **p) { if (*p) nl_cache_free(*p); }
static void rtnl_link_putp(struct rtnl_link **p) { if (*p) rtnl_link_put(*p); }
static void rtnl_qdisc_putp(struct rtnl_qdisc **p) { if (*p) rtnl_qdisc_put(*p); }
static void rtnl_cls_putp(struct rtnl_cls **p) { if (*p) rtnl_cls_put(*p); }
static void rtnl_act_putp(struct rtnl_act **p) { if (*p) rtnl_act_put(*p); }

/* ---- pure helpers ---- */

int vmg_shaper_tbf_params(double bps, uint32_t mtu, struct vmg_tbf_params *ret) {
        if (isnan(bps) || bps <= 0)
                return -EINVAL;
        if (bps < VMG_SHAPER_MIN_BPS || bps > VMG_SHAPER_MAX_BPS)
                return -ERANGE;
        if (mtu == 0)
                mtu = 1500;
        if (mtu > 65535)
                mtu = 65535;

        uint64_t rate = (uint64_t) (bps / 8);
        uint64_t burst = rate / BURST_TICK_HZ;
        uint64_t min_burst = (uint64_t) BURST_MIN_FRAMES * (mtu + FRAME_OVERHEAD);
        if (burst < min_burst)
                burst = min_burst;
        uint64_t limit = rate * LIMIT_QUEUE_MSEC / 1000 + burst;

        *ret = (struct vmg_tbf_params) {
                .rate_Bps = (uint32_t) rate,
                .burst = (uint32_t) burst,
                .limit = (uint32_t) limit,
        };
        return 0;
}

static bool valid_ifname(const char *n) {
        size_t l = n ? strlen(n) : 0;
        if (l == 0 || l >= IF_NAMESIZE || strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
                return false;
        for (const char *p = n; *p; p++)
                if (*p == '/' || *p == ':' || *p <= ' ' || *p == 0x7f)
                        return false;
        return true;
}

/* FNV-1a: small, stable across runs and builds, spreads similar tap names apart. */
static uint32_t fnv1a32(const char *s) {
        uint32_t h = 2166136261u;
        for (; *s; s++) {
                h ^= (unsigned char) *s;
                h *= 16777619u;
        }
        return h;
}

int vmg_shaper_ifb_name(const char *tap, char ret[static IF_NAMESIZE]) {
        if (!valid_ifname(tap))
                return -EINVAL;
        size_t l = strlen(tap);
        if (strlen("vgi-") + l < IF_NAMESIZE) {
                memcpy(ret, "vgi-", 4);
                memcpy(ret + 4, tap, l + 1);
        } else
                snprintf(ret, IF_NAMESIZE, "vgi-%.3s%08x", tap, fnv1a32(tap));
        return 0;
}

int vmg_shaper_netns_path(const char *netns_dir, const char *netns, char *ret, size_t size) {
        int n;
        if (!netns || !*netns)
                return -EINVAL;
        if (netns[0] == '/')
                n = snprintf(ret, size, "%s", netns);
        else {
                if (strchr(netns, '/') || strcmp(netns, ".") == 0 || strcmp(netns, "..") == 0)
                        return -EINVAL;
                n = snprintf(ret, size, "%s/%s", netns_dir ? netns_dir : VMG_NETNS_DIR, netns);
        }
        if (n < 0 || (size_t) n >= size)
                return -ENAMETOOLONG;
        return 0;
}

/* ---- object lifetime ---- */

int vmg_shaper_new(const struct vmg_shaper_config *cfg, struct vmg_shaper **ret) {
        _cleanup_free_ struct vmg_shaper *s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->netns_dir = strdup(cfg && cfg->netns_dir ? cfg->netns_dir : VMG_NETNS_DIR);
        s->self_netns = strdup(cfg && cfg->self_netns ? cfg->self_netns
                                                      : "/proc/thread-self/ns/net");
        if (!s->netns_dir || !s->self_netns) {
                free(s->netns_dir);
                free(s->self_netns);
                return -ENOMEM;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

struct vmg_shaper *vmg_shaper_free(struct vmg_shaper *s) {
        if (s) {
                free(s->netns_dir);
                free(s->self_netns);
                free(s);
        }
        return NULL;
}

/* ---- netlink plumbing ---- */

static int nle_to_errno(int nle) {
        static const struct { int nle, err; } map[] = {
                { NLE_BAD_SOCK, EBADF },       { NLE_EXIST, EEXIST },
                { NLE_NOADDR, EADDRNOTAVAIL }, { NLE_OBJ_NOTFOUND, ENOENT },
                { NLE_INTR, EINTR },           { NLE_AGAIN, EAGAIN },
                { NLE_INVAL, EINVAL },         { NLE_NOACCESS, EACCES },
                { NLE_NOMEM, ENOMEM },         { NLE_AF_NOSUPPORT, EAFNOSUPPORT },
                { NLE_OPNOTSUPP, EOPNOTSUPP }, { NLE_PERM, EPERM },
                { NLE_BUSY, EBUSY },           { NLE_RANGE, ERANGE },
                { NLE_NODEV, ENODEV },         { NLE_MSGSIZE, EMSGSIZE },
                { NLE_MISSING_ATTR, EINVAL },  { NLE_PROTO_MISMATCH, EPROTONOSUPPORT },
        };
        nle = abs(nle);
        for (size_t i = 0; i < ARRAY_SIZE(map); i++)
                if (map[i].nle == nle)
                        return -map[i].err;
        return -EIO;
}

static void kerr_reset(struct vmg_shaper *s) {
        s->kernel_errno = 0;
        s->kernel_msg[0] = 0;
}

/* The -errno of a failed libnl request: the kernel's own when it answered with one. */
static int nl_err(struct vmg_shaper *s, int nle) {
        if (s->kernel_errno)
                return -s->kernel_errno;
        return nle_to_errno(nle);
}

/* " (kernel: msg)" or "" for logs. */
static const char *kmsg(struct vmg_shaper *s, char *buf, size_t size) {
        if (!s->kernel_msg[0])
                return "";
        snprintf(buf, size, " (kernel: %s)", s->kernel_msg);
        return buf;
}
#define KMSG(s) kmsg((s), (char[300]) {}, 300)

static int on_nl_error(struct sockaddr_nl *nla, struct nlmsgerr *e, void *arg) {
        struct vmg_shaper *s = arg;
        (void) nla;
        s->kernel_errno = abs(e->error);
        s->kernel_msg[0] = 0;
        /* The nlmsgerr is the payload of its message; extack attributes follow it only when
         * the request was not echoed back (NETLINK_CAP_ACK took effect). */
        const struct nlmsghdr *h = (const struct nlmsghdr *) ((const char *) e - NLMSG_HDRLEN);
        if ((h->nlmsg_flags & NLM_F_ACK_TLVS) && (h->nlmsg_flags & NLM_F_CAPPED) &&
            h->nlmsg_len > NLMSG_HDRLEN + sizeof *e) {
                struct nlattr *pos;
                int rem;
                nla_for_each_attr(pos, (struct nlattr *) (e + 1),
                                  (int) (h->nlmsg_len - NLMSG_HDRLEN - sizeof *e), rem) {
                        if (nla_type(pos) == NLMSGERR_ATTR_MSG && nla_len(pos) > 0) {
                                snprintf(s->kernel_msg, sizeof s->kernel_msg, "%.*s",
                                         nla_len(pos), (const char *) nla_data(pos));
                                s->kernel_msg[strcspn(s->kernel_msg, "\n")] = 0;
                        }
                }
        }
        return NL_STOP;
}

static int make_socket(struct vmg_shaper *s, struct nl_sock **ret) {
        _cleanup_(nl_socket_freep) struct nl_sock *sk = nl_socket_alloc();
        int r, one = 1;
        if (!sk)
                return -ENOMEM;
        r = nl_connect(sk, NETLINK_ROUTE);
        if (r < 0)
                return nle_to_errno(r);
        /* Best effort: without them errors still come back, only without the kernel's text. */
        (void) setsockopt(nl_socket_get_fd(sk), SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
        (void) setsockopt(nl_socket_get_fd(sk), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
        r = nl_socket_modify_err_cb(sk, NL_CB_CUSTOM, on_nl_error, s);
        if (r < 0)
                return nle_to_errno(r);
        *ret = TAKE_PTR(sk);
        return 0;
}

/* A netlink socket bound to the namespace `netns`: a socket stays in the namespace it was
 * created in, so the thread enters the namespace only for the socket() call. */
static int open_socket(struct vmg_shaper *s, const char *netns, struct nl_sock **ret) {
        char path[4096];
        int r;

        if (!netns) {
                r = make_socket(s, ret);
                return r < 0 ? log_error_errno(r, "shaper: cannot open rtnetlink socket: %m") : 0;
        }
        r = vmg_shaper_netns_path(s->netns_dir, netns, path, sizeof path);
        if (r < 0)
                return log_error_errno(r, "shaper: invalid netns name \"%s\": %m", netns);

        _cleanup_close_ int target = open(path, O_RDONLY | O_CLOEXEC);
        if (target < 0)
                return log_error_errno(errno, "shaper: netns %s: cannot open %s: %m", netns, path);
        _cleanup_close_ int self = open(s->self_netns, O_RDONLY | O_CLOEXEC);
        if (self < 0)
                return log_error_errno(errno, "shaper: cannot open own netns %s: %m",
                                       s->self_netns);
        if (setns(target, CLONE_NEWNET) < 0)
                return log_error_errno(errno, "shaper: cannot enter netns %s (%s): %m", netns,
                                       path);
        struct nl_sock *sk = NULL;
        int rs = make_socket(s, &sk);
        if (setns(self, CLONE_NEWNET) < 0) {
                /* The thread is now in the wrong namespace for everything else it does;
                 * nothing here can repair that, so say it loudly. */
                r = log_error_errno(errno, "shaper: cannot return from netns %s to %s: %m",
                                    netns, s->self_netns);
                if (sk)
                        nl_socket_free(sk);
                return r;
        }
        if (rs < 0)
                return log_error_errno(rs, "shaper: netns %s: cannot open rtnetlink socket: %m",
                                       netns);
        *ret = sk;
        return 0;
}

/* Link by name: 0 and *ret, or -ENODEV when absent, other -errno. */
static int get_link(struct ctx *c, const char *name, struct rtnl_link **ret) {
        kerr_reset(c->s);
        int r = rtnl_link_get_kernel(c->sk, 0, name, ret);
        if (r < 0) {
                r = nl_err(c->s, r);
                return r == -ENOENT ? -ENODEV : r;
        }
        return 0;
}

static int load_qdiscs(struct ctx *c) {
        if (c->qdiscs) {
                nl_cache_free(c->qdiscs);
                c->qdiscs = NULL;
        }
        kerr_reset(c->s);
        int r = rtnl_qdisc_alloc_cache(c->sk, &c->qdiscs);
        if (r < 0)
                return log_error_errno(nl_err(c->s, r), "shaper: netns %s: cannot dump qdiscs: %m",
                                       c->ns);
        return 0;
}

/* Looks up the tap and vmguard's ifb for it. The tap may be absent (c->tap_ifindex = 0);
 * an ifb of that name that is not vmguard's gives -EEXIST. */
static int ctx_open(struct ctx *c, struct vmg_shaper *s, const char *netns, const char *tap) {
        _cleanup_(rtnl_link_putp) struct rtnl_link *l = NULL, *ifb = NULL;
        int r;

        *c = (struct ctx) { .s = s, .ns = netns ? netns : "(own)", .tap = tap };
        r = vmg_shaper_ifb_name(tap, c->ifb);
        if (r < 0)
                return log_error_errno(r, "shaper: invalid tap name \"%s\"", tap ? tap : "(null)");
        snprintf(c->ifb_alias, sizeof c->ifb_alias, "%s%s", VMG_SHAPER_IFB_ALIAS_PREFIX, tap);

        r = open_socket(s, netns, &c->sk);
        if (r < 0)
                return r;

        r = get_link(c, tap, &l);
        if (r == -ENODEV)
                c->tap_ifindex = 0;
        else if (r < 0)
                return log_error_errno(r, "shaper: netns %s: cannot look up tap %s: %m", c->ns, tap);
        else {
                c->tap_ifindex = rtnl_link_get_ifindex(l);
                c->tap_mtu = rtnl_link_get_mtu(l);
        }

        r = get_link(c, c->ifb, &ifb);
        if (r == -ENODEV)
                return load_qdiscs(c);
        if (r < 0)
                return log_error_errno(r, "shaper: netns %s: cannot look up ifb %s: %m", c->ns,
                                       c->ifb);
        const char *kind = rtnl_link_get_type(ifb), *alias = rtnl_link_get_ifalias(ifb);
        if (!kind || strcmp(kind, "ifb") != 0 || !alias || strcmp(alias, c->ifb_alias) != 0) {
                log_warning("shaper: netns %s, tap %s: device %s exists but is not vmguard's ifb "
                            "(type %s, alias \"%s\"); not touching it",
                            c->ns, tap, c->ifb, kind ? kind : "?", alias ? alias : "");
                c->ifb_foreign = true;
                return load_qdiscs(c);
        }
        c->ifb_ifindex = rtnl_link_get_ifindex(ifb);
        c->ifb_up = rtnl_link_get_flags(ifb) & IFF_UP;
        return load_qdiscs(c);
}

static void ctx_close(struct ctx *c) {
        if (c->qdiscs)
                nl_cache_free(c->qdiscs);
        if (c->sk)
                nl_socket_free(c->sk);
        c->qdiscs = NULL;
        c->sk = NULL;
}

/* ---- what is there ---- */

enum owner { ABSENT, DEFAULT, OURS, FOREIGN };

/* A root qdisc with handle 0 is the one the kernel attaches by itself (pfifo_fast, mq,
 * noqueue): the tap's original state, which vmguard may replace and restores by deleting
 * its own. Any other handle is someone's deliberate choice. */
static enum owner root_owner(struct rtnl_qdisc *q) {
        if (!q)
                return ABSENT;
        uint32_t h = rtnl_tc_get_handle(TC_CAST(q));
        const char *kind = rtnl_tc_get_kind(TC_CAST(q));
        if (h == QDISC_HANDLE && kind && strcmp(kind, "tbf") == 0)
                return OURS;
        return TC_H_MAJ(h) == 0 ? DEFAULT : FOREIGN;
}

static int redirect_present(struct ctx *c, bool *any_at_prio);

/* vmguard adds the ingress qdisc only after creating the tap's ifb and removes it before
 * deleting the ifb, so an ingress qdisc is vmguard's when that ifb exists. Without the ifb
 * (someone deleted it), vmguard's filter priority still identifies it: that orphaned
 * redirect drops every frame the guest sends, so vmguard must be able to repair or remove
 * it. */
static enum owner ingress_owner(struct ctx *c, struct rtnl_qdisc *q) {
        bool any;
        if (!q)
                return ABSENT;
        const char *kind = rtnl_tc_get_kind(TC_CAST(q));
        if (!kind || strcmp(kind, "ingress") != 0)
                return FOREIGN;
        if (c->ifb_ifindex > 0)
                return OURS;
        if (redirect_present(c, &any) < 0)
                return FOREIGN;
        return any ? OURS : FOREIGN;
}

static struct rtnl_qdisc *qdisc_at(struct ctx *c, int ifindex, uint32_t parent) {
        if (ifindex <= 0 || !c->qdiscs)
                return NULL;
        return rtnl_qdisc_get_by_parent(c->qdiscs, ifindex, parent);
}

/* Whether vmguard's redirect filter to the current ifb sits on the tap's ingress:
 * 1 yes, 0 no (absent or pointing elsewhere), -errno. Sets *any_at_prio when some filter
 * occupies vmguard's priority. */
static int redirect_present(struct ctx *c, bool *any_at_prio) {
        _cleanup_(nl_cache_freep) struct nl_cache *cls = NULL;
        int r, found = 0;

        *any_at_prio = false;
        kerr_reset(c->s);
        r = rtnl_cls_alloc_cache(c->sk, c->tap_ifindex, INGRESS_HANDLE, &cls);
        if (r < 0)
                return log_error_errno(nl_err(c->s, r),
                                       "shaper: netns %s, tap %s: cannot dump ingress filters: %m",
                                       c->ns, c->tap);
        for (struct nl_object *o = nl_cache_get_first(cls); o; o = nl_cache_get_next(o)) {
                struct rtnl_cls *f = (struct rtnl_cls *) o;
                if (rtnl_cls_get_prio(f) != VMG_SHAPER_FILTER_PRIO)
                        continue;
                *any_at_prio = true;
                const char *kind = rtnl_tc_get_kind(TC_CAST(f));
                if (!kind || strcmp(kind, "u32") != 0)
                        continue;
                for (struct rtnl_act *a = rtnl_u32_get_action(f); a; a = rtnl_act_next(a)) {
                        const char *ak = rtnl_tc_get_kind(TC_CAST(a));
                        if (ak && strcmp(ak, "mirred") == 0 &&
                            rtnl_mirred_get_action(a) == TCA_EGRESS_REDIR &&
                            c->ifb_ifindex > 0 &&
                            (int) rtnl_mirred_get_ifindex(a) == c->ifb_ifindex)
                                found = 1;
                }
        }
        return found;
}

static void fill_tbf_state(struct rtnl_qdisc *q, double *bps, uint32_t *burst, uint32_t *limit) {
        int rate = rtnl_qdisc_tbf_get_rate(q);
        int b = rtnl_qdisc_tbf_get_rate_bucket(q);
        int l = rtnl_qdisc_tbf_get_limit(q);
        *bps = rate > 0 ? rate * 8.0 : 0;
        *burst = b > 0 ? (uint32_t) b : 0;
        *limit = l > 0 ? (uint32_t) l : 0;
}

/* ---- changes ---- */

/* Installs or changes (in place, same handle) vmguard's root tbf on ifindex; a tbf that
 * already has these parameters is left alone. */
static int ensure_tbf(struct ctx *c, int ifindex, const char *dev, uint32_t mtu,
                      const struct vmg_tbf_params *p) {
        struct rtnl_qdisc *cur = qdisc_at(c, ifindex, TC_H_ROOT);
        _cleanup_(rtnl_qdisc_putp) struct rtnl_qdisc *q = NULL;
        int r;

        if (root_owner(cur) == OURS && rtnl_qdisc_tbf_get_rate(cur) == (int) p->rate_Bps &&
            rtnl_qdisc_tbf_get_limit(cur) == (int) p->limit) {
                rtnl_qdisc_put(cur);
                log_debug("shaper: netns %s, tap %s: tbf on %s already at %u B/s, unchanged",
                          c->ns, c->tap, dev, p->rate_Bps);
                return 0;
        }
        if (cur)
                rtnl_qdisc_put(cur);

        q = rtnl_qdisc_alloc();
        if (!q)
                return -ENOMEM;
        rtnl_tc_set_ifindex(TC_CAST(q), ifindex);
        rtnl_tc_set_parent(TC_CAST(q), TC_H_ROOT);
        rtnl_tc_set_handle(TC_CAST(q), QDISC_HANDLE);
        r = rtnl_tc_set_kind(TC_CAST(q), "tbf");
        if (r < 0)
                return nle_to_errno(r);
        /* libnl sizes its rate table cells from this MTU. */
        rtnl_tc_set_mtu(TC_CAST(q), mtu ? mtu : 1500);
        rtnl_qdisc_tbf_set_limit(q, (int) p->limit);
        rtnl_qdisc_tbf_set_rate(q, (int) p->rate_Bps, (int) p->burst, 0);

        kerr_reset(c->s);
        /* CREATE|REPLACE with vmguard's handle: the kernel changes an existing tbf of that
         * handle in place (its queue and counters survive) or grafts a new one over the
         * default qdisc. */
        r = rtnl_qdisc_add(c->sk, q, NLM_F_CREATE | NLM_F_REPLACE);
        if (r < 0) {
                r = nl_err(c->s, r);
                if (r == -ENOENT)
                        return log_error_errno(EOPNOTSUPP,
                                               "shaper: netns %s, tap %s: kernel has no tbf qdisc "
                                               "(CONFIG_NET_SCH_TBF) for %s%s",
                                               c->ns, c->tap, dev, KMSG(c->s));
                return log_error_errno(r,
                                       "shaper: netns %s, tap %s: cannot set tbf rate %u B/s burst "
                                       "%u limit %u on %s: %m%s",
                                       c->ns, c->tap, p->rate_Bps, p->burst, p->limit, dev,
                                       KMSG(c->s));
        }
        log_info("shaper: netns %s, tap %s: tbf on %s set to %.0f bit/s (burst %u B, limit %u B)",
                 c->ns, c->tap, dev, p->rate_Bps * 8.0, p->burst, p->limit);
        return 0;
}

static int delete_qdisc(struct ctx *c, int ifindex, uint32_t parent, uint32_t handle,
                        const char *what) {
        _cleanup_(rtnl_qdisc_putp) struct rtnl_qdisc *q = rtnl_qdisc_alloc();
        int r;
        if (!q)
                return -ENOMEM;
        rtnl_tc_set_ifindex(TC_CAST(q), ifindex);
        rtnl_tc_set_parent(TC_CAST(q), parent);
        /* With the handle the kernel refuses if someone replaced the qdisc meanwhile. */
        rtnl_tc_set_handle(TC_CAST(q), handle);
        kerr_reset(c->s);
        r = rtnl_qdisc_delete(c->sk, q);
        if (r < 0) {
                r = nl_err(c->s, r);
                if (r == -ENOENT || r == -ENODEV)
                        return 0;
                return log_error_errno(r, "shaper: netns %s, tap %s: cannot delete %s: %m%s",
                                       c->ns, c->tap, what, KMSG(c->s));
        }
        log_info("shaper: netns %s, tap %s: removed %s", c->ns, c->tap, what);
        return 0;
}

static int delete_ifb(struct ctx *c) {
        _cleanup_(rtnl_link_putp) struct rtnl_link *l = rtnl_link_alloc();
        int r;
        if (!l)
                return -ENOMEM;
        rtnl_link_set_ifindex(l, c->ifb_ifindex);
        kerr_reset(c->s);
        r = rtnl_link_delete(c->sk, l);
        if (r < 0) {
                r = nl_err(c->s, r);
                if (r == -ENODEV || r == -ENOENT)
                        r = 0;
                else
                        return log_error_errno(r, "shaper: netns %s, tap %s: cannot delete ifb %s: %m%s",
                                               c->ns, c->tap, c->ifb, KMSG(c->s));
        } else
                log_info("shaper: netns %s, tap %s: removed ifb %s", c->ns, c->tap, c->ifb);
        c->ifb_ifindex = 0;
        return r;
}

/* Removes vmguard's transmit shaping: the ingress qdisc (its filters go with it), then the
 * ifb (its tbf goes with it). */
static int teardown_tx(struct ctx *c) {
        int r = 0, k;
        if (c->tap_ifindex > 0) {
                struct rtnl_qdisc *ing = qdisc_at(c, c->tap_ifindex, TC_H_INGRESS);
                enum owner o = ingress_owner(c, ing);
                if (ing)
                        rtnl_qdisc_put(ing);
                if (o == OURS) {
                        k = delete_qdisc(c, c->tap_ifindex, TC_H_INGRESS, INGRESS_HANDLE,
                                         "ingress redirect");
                        if (k < 0)
                                return k; /* keep the ifb: the ingress qdisc's ownership hangs on it */
                }
        }
        if (c->ifb_ifindex > 0) {
                k = delete_ifb(c);
                if (k < 0 && r == 0)
                        r = k;
        }
        return r;
}

static int create_ifb(struct ctx *c) {
        _cleanup_(rtnl_link_putp) struct rtnl_link *l = rtnl_link_alloc(), *got = NULL,
                                                    *chg = rtnl_link_alloc();
        int r;
        if (!l || !chg)
                return -ENOMEM;
        rtnl_link_set_name(l, c->ifb);
        r = rtnl_link_set_type(l, "ifb");
        if (r < 0)
                return nle_to_errno(r);
        kerr_reset(c->s);
        r = rtnl_link_add(c->sk, l, NLM_F_CREATE | NLM_F_EXCL);
        if (r < 0) {
                r = nl_err(c->s, r);
                if (r == -EOPNOTSUPP || r == -ENOENT)
                        return log_error_errno(EOPNOTSUPP,
                                               "shaper: netns %s, tap %s: kernel has no ifb devices "
                                               "(CONFIG_IFB): cannot shape the guest's transmit%s",
                                               c->ns, c->tap, KMSG(c->s));
                return log_error_errno(r, "shaper: netns %s, tap %s: cannot create ifb %s: %m%s",
                                       c->ns, c->tap, c->ifb, KMSG(c->s));
        }
        r = get_link(c, c->ifb, &got);
        if (r < 0)
                return log_error_errno(r, "shaper: netns %s, tap %s: created ifb %s vanished: %m",
                                       c->ns, c->tap, c->ifb);
        c->ifb_ifindex = rtnl_link_get_ifindex(got);

        /* The alias marks the ifb as vmguard's for a later run; set before it is used. */
        rtnl_link_set_ifalias(chg, c->ifb_alias);
        rtnl_link_set_flags(chg, IFF_UP);
        if (c->tap_mtu)
                rtnl_link_set_mtu(chg, c->tap_mtu);
        kerr_reset(c->s);
        r = rtnl_link_change(c->sk, got, chg, 0);
        if (r < 0) {
                r = nl_err(c->s, r);
                log_error_errno(r, "shaper: netns %s, tap %s: cannot set alias/up on ifb %s: %m%s",
                                c->ns, c->tap, c->ifb, KMSG(c->s));
                (void) delete_ifb(c);
                return r;
        }
        c->ifb_up = true;
        log_info("shaper: netns %s, tap %s: created ifb %s", c->ns, c->tap, c->ifb);
        return 0;
}

static int ifb_set_up(struct ctx *c) {
        _cleanup_(rtnl_link_putp) struct rtnl_link *got = NULL, *chg = rtnl_link_alloc();
        int r;
        if (!chg)
                return -ENOMEM;
        r = get_link(c, c->ifb, &got);
        if (r < 0)
                return log_error_errno(r, "shaper: netns %s, tap %s: ifb %s: %m", c->ns, c->tap,
                                       c->ifb);
        rtnl_link_set_flags(chg, IFF_UP);
        kerr_reset(c->s);
        r = rtnl_link_change(c->sk, got, chg, 0);
        if (r < 0)
                return log_error_errno(nl_err(c->s, r),
                                       "shaper: netns %s, tap %s: cannot bring ifb %s up: %m%s",
                                       c->ns, c->tap, c->ifb, KMSG(c->s));
        c->ifb_up = true;
        return 0;
}

static int add_ingress(struct ctx *c) {
        _cleanup_(rtnl_qdisc_putp) struct rtnl_qdisc *q = rtnl_qdisc_alloc();
        int r;
        if (!q)
                return -ENOMEM;
        rtnl_tc_set_ifindex(TC_CAST(q), c->tap_ifindex);
        rtnl_tc_set_parent(TC_CAST(q), TC_H_INGRESS);
        rtnl_tc_set_handle(TC_CAST(q), INGRESS_HANDLE);
        r = rtnl_tc_set_kind(TC_CAST(q), "ingress");
        if (r < 0)
                return nle_to_errno(r);
        kerr_reset(c->s);
        r = rtnl_qdisc_add(c->sk, q, NLM_F_CREATE | NLM_F_EXCL);
        if (r < 0) {
                r = nl_err(c->s, r);
                if (r == -ENOENT)
                        return log_error_errno(EOPNOTSUPP,
                                               "shaper: netns %s, tap %s: kernel has no ingress "
                                               "qdisc (CONFIG_NET_SCH_INGRESS)%s",
                                               c->ns, c->tap, KMSG(c->s));
                return log_error_errno(r, "shaper: netns %s, tap %s: cannot add ingress qdisc: %m%s",
                                       c->ns, c->tap, KMSG(c->s));
        }
        return 0;
}

static int delete_filters_at_prio(struct ctx *c) {
        _cleanup_(rtnl_cls_putp) struct rtnl_cls *f = rtnl_cls_alloc();
        int r;
        if (!f)
                return -ENOMEM;
        rtnl_tc_set_ifindex(TC_CAST(f), c->tap_ifindex);
        rtnl_tc_set_parent(TC_CAST(f), INGRESS_HANDLE);
        rtnl_cls_set_prio(f, VMG_SHAPER_FILTER_PRIO);
        rtnl_cls_set_protocol(f, ETH_P_ALL);
        kerr_reset(c->s);
        r = rtnl_cls_delete(c->sk, f, 0);
        if (r < 0 && nl_err(c->s, r) != -ENOENT)
                return log_error_errno(nl_err(c->s, r),
                                       "shaper: netns %s, tap %s: cannot delete stale filter at "
                                       "prio %u: %m%s",
                                       c->ns, c->tap, VMG_SHAPER_FILTER_PRIO, KMSG(c->s));
        return 0;
}

/* u32 "match u32 0 0" + mirred egress redirect: every frame the guest sends goes to the ifb.
 * u32 rather than matchall because kernels without CLS_MATCHALL (like this lab's) exist. */
static int add_redirect(struct ctx *c) {
        _cleanup_(rtnl_cls_putp) struct rtnl_cls *f = rtnl_cls_alloc();
        _cleanup_(rtnl_act_putp) struct rtnl_act *a = rtnl_act_alloc();
        int r;
        if (!f || !a)
                return -ENOMEM;
        rtnl_tc_set_ifindex(TC_CAST(f), c->tap_ifindex);
        rtnl_tc_set_parent(TC_CAST(f), INGRESS_HANDLE);
        rtnl_cls_set_prio(f, VMG_SHAPER_FILTER_PRIO);
        rtnl_cls_set_protocol(f, ETH_P_ALL);
        if ((r = rtnl_tc_set_kind(TC_CAST(f), "u32")) < 0 ||
            (r = rtnl_u32_add_key_uint32(f, 0, 0, 0, 0)) < 0 ||
            (r = rtnl_u32_set_cls_terminal(f)) < 0 ||
            (r = rtnl_tc_set_kind(TC_CAST(a), "mirred")) < 0 ||
            (r = rtnl_mirred_set_action(a, TCA_EGRESS_REDIR)) < 0 ||
            (r = rtnl_mirred_set_policy(a, TC_ACT_STOLEN)) < 0 ||
            (r = rtnl_mirred_set_ifindex(a, (uint32_t) c->ifb_ifindex)) < 0 ||
            (r = rtnl_u32_add_action(f, a)) < 0)
                return log_error_errno(nle_to_errno(r),
                                       "shaper: netns %s, tap %s: cannot build redirect filter: %s",
                                       c->ns, c->tap, nl_geterror(r));
        kerr_reset(c->s);
        r = rtnl_cls_add(c->sk, f, NLM_F_CREATE | NLM_F_EXCL);
        if (r < 0) {
                r = nl_err(c->s, r);
                if (r == -ENOENT)
                        return log_error_errno(EOPNOTSUPP,
                                               "shaper: netns %s, tap %s: kernel lacks the u32 "
                                               "classifier (CONFIG_NET_CLS_U32) or the mirred "
                                               "action (CONFIG_NET_ACT_MIRRED)%s",
                                               c->ns, c->tap, KMSG(c->s));
                return log_error_errno(r, "shaper: netns %s, tap %s: cannot add redirect to %s: %m%s",
                                       c->ns, c->tap, c->ifb, KMSG(c->s));
        }
        log_info("shaper: netns %s, tap %s: redirecting the guest's transmit to %s", c->ns,
                 c->tap, c->ifb);
        return 0;
}

static int ensure_tx(struct ctx *c, const struct vmg_tbf_params *p) {
        int r;
        bool stale;

        if (c->ifb_ifindex <= 0) {
                r = create_ifb(c);
                if (r < 0)
                        return r;
        } else if (!c->ifb_up) {
                r = ifb_set_up(c);
                if (r < 0)
                        return r;
        }
        /* Rate first: frames must meet the tbf from the moment they are redirected. */
        r = ensure_tbf(c, c->ifb_ifindex, c->ifb, c->tap_mtu, p);
        if (r < 0)
                return r;

        struct rtnl_qdisc *ing = qdisc_at(c, c->tap_ifindex, TC_H_INGRESS);
        if (ing)
                rtnl_qdisc_put(ing);
        else {
                r = add_ingress(c);
                if (r < 0)
                        return r;
        }
        r = redirect_present(c, &stale);
        if (r < 0)
                return r;
        if (r > 0)
                return 0;
        if (stale) {
                /* A filter at vmguard's priority that points elsewhere: left by a previous
                 * ifb of the same name (recreated, new ifindex). */
                r = delete_filters_at_prio(c);
                if (r < 0)
                        return r;
        }
        return add_redirect(c);
}

/* ---- public ---- */

static int check_rate(const char *dir, double bps, uint32_t mtu, const char *tap,
                      struct vmg_tbf_params *p) {
        if (bps == 0)
                return 0;
        int r = vmg_shaper_tbf_params(bps, mtu, p);
        if (r < 0)
                return log_error_errno(r, "shaper: tap %s: invalid guest %s rate %g bit/s "
                                          "(0 = no limit, else %.0f..%.0f)",
                                       tap ? tap : "(null)", dir, bps, VMG_SHAPER_MIN_BPS,
                                       VMG_SHAPER_MAX_BPS);
        return 0;
}

int vmg_shaper_set(struct vmg_shaper *s, const char *netns, const char *tap,
                   double guest_tx_bps, double guest_rx_bps) {
        struct vmg_tbf_params tx = {}, rx = {};
        struct ctx c;
        struct rtnl_qdisc *root = NULL, *ing = NULL;
        enum owner root_o, ing_o;
        bool tx_was;
        int r;

        r = check_rate("transmit", guest_tx_bps, 0, tap, &tx);
        if (r < 0)
                return r;
        r = check_rate("receive", guest_rx_bps, 0, tap, &rx);
        if (r < 0)
                return r;

        r = ctx_open(&c, s, netns, tap);
        if (r < 0)
                goto out;
        if (c.tap_ifindex <= 0) {
                r = log_error_errno(ENODEV, "shaper: netns %s: tap %s does not exist", c.ns, tap);
                goto out;
        }
        /* Now that the MTU is known. */
        if (guest_tx_bps > 0)
                (void) vmg_shaper_tbf_params(guest_tx_bps, c.tap_mtu, &tx);
        if (guest_rx_bps > 0)
                (void) vmg_shaper_tbf_params(guest_rx_bps, c.tap_mtu, &rx);

        root = qdisc_at(&c, c.tap_ifindex, TC_H_ROOT);
        ing = qdisc_at(&c, c.tap_ifindex, TC_H_INGRESS);
        root_o = root_owner(root);
        ing_o = ingress_owner(&c, ing);
        tx_was = c.ifb_ifindex > 0;

        /* Refuse before changing anything, so a refusal leaves the tap as it was. */
        if (guest_rx_bps > 0 && root_o == FOREIGN) {
                r = log_error_errno(EBUSY,
                                    "shaper: netns %s, tap %s: root qdisc %s %x: is not vmguard's; "
                                    "refusing to replace it (guest receive stays unshaped)",
                                    c.ns, tap, rtnl_tc_get_kind(TC_CAST(root)),
                                    TC_H_MAJ(rtnl_tc_get_handle(TC_CAST(root))) >> 16);
                goto out;
        }
        if (guest_tx_bps > 0 && c.ifb_foreign) {
                r = log_error_errno(EEXIST,
                                    "shaper: netns %s, tap %s: the ifb name %s is taken by another "
                                    "device; guest transmit stays unshaped", c.ns, tap, c.ifb);
                goto out;
        }
        if (guest_tx_bps > 0 && ing_o == FOREIGN) {
                r = log_error_errno(EBUSY,
                                    "shaper: netns %s, tap %s: an %s qdisc vmguard did not add holds "
                                    "the tap's ingress; refusing to touch it (guest transmit stays "
                                    "unshaped)",
                                    c.ns, tap, rtnl_tc_get_kind(TC_CAST(ing)));
                goto out;
        }

        if (guest_tx_bps > 0) {
                r = ensure_tx(&c, &tx);
                if (r < 0) {
                        if (!tx_was) {
                                /* Re-read: the half-built pieces must be seen to be removed. */
                                if (load_qdiscs(&c) >= 0)
                                        (void) teardown_tx(&c);
                        }
                        goto out;
                }
        } else {
                r = teardown_tx(&c);
                if (r < 0)
                        goto out;
        }

        if (guest_rx_bps > 0) {
                /* One request: when it fails, nothing was created. */
                r = ensure_tbf(&c, c.tap_ifindex, tap, c.tap_mtu, &rx);
        } else if (root_o == OURS)
                r = delete_qdisc(&c, c.tap_ifindex, TC_H_ROOT, QDISC_HANDLE, "root tbf");
out:
        if (root)
                rtnl_qdisc_put(root);
        if (ing)
                rtnl_qdisc_put(ing);
        ctx_close(&c);
        return r < 0 ? r : 0;
}

int vmg_shaper_clear(struct vmg_shaper *s, const char *netns, const char *tap) {
        struct ctx c;
        int r, k;

        r = ctx_open(&c, s, netns, tap);
        if (r < 0)
                goto out;
        r = teardown_tx(&c);
        if (c.tap_ifindex > 0) {
                struct rtnl_qdisc *root = qdisc_at(&c, c.tap_ifindex, TC_H_ROOT);
                enum owner o = root_owner(root);
                if (root)
                        rtnl_qdisc_put(root);
                if (o == OURS) {
                        k = delete_qdisc(&c, c.tap_ifindex, TC_H_ROOT, QDISC_HANDLE, "root tbf");
                        if (k < 0 && r >= 0)
                                r = k;
                }
        }
out:
        ctx_close(&c);
        return r < 0 ? r : 0;
}

int vmg_shaper_get(struct vmg_shaper *s, const char *netns, const char *tap,
                   struct vmg_shaper_state *ret) {
        struct vmg_shaper_state st = {};
        struct ctx c;
        int r;

        r = ctx_open(&c, s, netns, tap);
        if (r < 0)
                goto out;
        if (c.tap_ifindex <= 0) {
                r = -ENODEV;
                goto out;
        }
        snprintf(st.ifb, sizeof st.ifb, "%s", c.ifb);
        st.ifb_present = c.ifb_ifindex > 0;
        st.foreign_ifb = c.ifb_foreign;

        struct rtnl_qdisc *root = qdisc_at(&c, c.tap_ifindex, TC_H_ROOT);
        enum owner ro = root_owner(root);
        if (ro == OURS)
                fill_tbf_state(root, &st.guest_rx_bps, &st.rx_burst, &st.rx_limit);
        st.foreign_root = ro == FOREIGN;
        if (root)
                rtnl_qdisc_put(root);

        struct rtnl_qdisc *ing = qdisc_at(&c, c.tap_ifindex, TC_H_INGRESS);
        enum owner io = ingress_owner(&c, ing);
        if (ing)
                rtnl_qdisc_put(ing);
        st.foreign_ingress = io == FOREIGN;

        if (io == OURS) {
                bool any;
                r = redirect_present(&c, &any);
                if (r < 0)
                        goto out;
                st.tx_redirect = r > 0;
        }
        if (st.ifb_present) {
                struct rtnl_qdisc *q = qdisc_at(&c, c.ifb_ifindex, TC_H_ROOT);
                /* Shaped only when frames actually reach the tbf. */
                if (root_owner(q) == OURS && st.tx_redirect)
                        fill_tbf_state(q, &st.guest_tx_bps, &st.tx_burst, &st.tx_limit);
                if (q)
                        rtnl_qdisc_put(q);
        }
        *ret = st;
        r = 0;
out:
        ctx_close(&c);
        return r;
}
