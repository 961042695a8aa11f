#define _GNU_SOURCE
#include "probes/prober.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/net_tstamp.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macros.h"

struct vmg_prober {
        int fd;
        char spec[300];
        char name[256];
        struct sockaddr_storage addr;
        socklen_t addrlen;
        uint16_t next_id;
        bool outstanding;
        uint16_t out_id;
        struct timespec sent_rt;   /* CLOCK_REALTIME, the clock of SO_TIMESTAMPNS */
        uint64_t sent_mono_ns;
        double last_ms;
        double waiting_ms;
        unsigned lost_run; /* queries lost in a row, since the last answer */
        uint64_t sent, answered, lost;
        int last_err;
};

int vmg_dns_query_encode(const char *name, uint16_t id, uint8_t *buf, int len) {
        size_t nl = strlen(name);
        if (nl == 0 || nl > 253)
                return -EINVAL;
        if (len < 12 + (int) nl + 2 + 4)
                return -ENOBUFS;
        memset(buf, 0, 12);
        buf[0] = (uint8_t) (id >> 8);
        buf[1] = (uint8_t) id;
        buf[2] = 0x01; /* RD: the service answers from its cache or its own data */
        buf[5] = 1;    /* QDCOUNT */
        int o = 12;
        const char *p = name;
        while (*p) {
                const char *dot = strchr(p, '.');
                size_t l = dot ? (size_t) (dot - p) : strlen(p);
                if (l == 0 || l > 63)
                        return -EINVAL;
                buf[o++] = (uint8_t) l;
                memcpy(buf + o, p, l);
                o += (int) l;
                p += l;
                if (*p == '.')
                        p++;
        }
        buf[o++] = 0;
        buf[o++] = 0;
        buf[o++] = 1; /* QTYPE A: busybox asks AAAA too, which dnsmasq without upstream refuses */
        buf[o++] = 0;
        buf[o++] = 1; /* QCLASS IN */
        return o;
}

static int parse_spec(const char *spec, struct vmg_prober *p) {
        char host[64];
        const char *slash = strrchr(spec, '/');
        if (!slash || !slash[1] || (size_t) (slash - spec) >= sizeof host || strlen(slash + 1) >= sizeof p->name)
                return -EINVAL;
        memcpy(host, spec, (size_t) (slash - spec));
        host[slash - spec] = 0;
        snprintf(p->name, sizeof p->name, "%s", slash + 1);
        unsigned port = 53;
        char *addr = host;
        if (host[0] == '[') {
                char *close = strchr(host, ']');
                if (!close)
                        return -EINVAL;
                *close = 0;
                addr = host + 1;
                if (close[1] == ':')
                        port = (unsigned) strtoul(close + 2, NULL, 10);
                struct sockaddr_in6 *s6 = (struct sockaddr_in6 *) &p->addr;
                s6->sin6_family = AF_INET6;
                s6->sin6_port = htons((uint16_t) port);
                if (inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1)
                        return -EINVAL;
                p->addrlen = sizeof *s6;
        } else {
                char *colon = strchr(host, ':');
                if (colon) {
                        *colon = 0;
                        port = (unsigned) strtoul(colon + 1, NULL, 10);
                }
                struct sockaddr_in *s4 = (struct sockaddr_in *) &p->addr;
                s4->sin_family = AF_INET;
                s4->sin_port = htons((uint16_t) port);
                if (inet_pton(AF_INET, addr, &s4->sin_addr) != 1)
                        return -EINVAL;
                p->addrlen = sizeof *s4;
        }
        if (port == 0 || port > 65535)
                return -EINVAL;
        return 0;
}

/* A socket stays in the namespace it was created in: enter, create, come back. */
static int socket_in_netns(const char *netns_path, int family) {
        if (!netns_path)
                return socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        _cleanup_close_ int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (self < 0)
                return -errno;
        _cleanup_close_ int target = open(netns_path, O_RDONLY | O_CLOEXEC);
        if (target < 0)
                return -errno;
        if (setns(target, CLONE_NEWNET) < 0)
                return -errno;
        int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int saved = errno;
        if (setns(self, CLONE_NEWNET) < 0) {
                /* The thread now samples the wrong namespace: nothing safe is left to do. */
                log_error_errno(errno, "cannot return to our own network namespace: %m");
                if (fd >= 0)
                        close(fd);
                return -errno;
        }
        return fd >= 0 ? fd : -saved;
}

int vmg_prober_new(const char *spec, const char *netns_path, struct vmg_prober **ret) {
        struct vmg_prober *p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->fd = -1;
        p->last_ms = -1;
        p->waiting_ms = -1;
        snprintf(p->spec, sizeof p->spec, "%s", spec);
        int r = parse_spec(spec, p);
        if (r < 0) {
                free(p);
                return r;
        }
        p->fd = socket_in_netns(netns_path, p->addr.ss_family);
        if (p->fd < 0) {
                r = p->fd;
                free(p);
                return log_error_errno(r, "DNS probe %s: cannot open a socket%s%s: %m", spec,
                                       netns_path ? " in " : "", netns_path ? netns_path : "");
        }
        int one = 1;
        if (setsockopt(p->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) < 0) {
                r = -errno;
                vmg_prober_free(p);
                return r;
        }
        /* Connected, the kernel drops every datagram not from the service's address and
         * port: an answer forged by another local process or a guest (to hide how slow
         * the service really is) never reaches collect(). */
        if (connect(p->fd, (struct sockaddr *) &p->addr, p->addrlen) < 0) {
                r = -errno;
                vmg_prober_free(p);
                return log_error_errno(r, "DNS probe %s: cannot connect the socket: %m", spec);
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        p->next_id = (uint16_t) (ts.tv_nsec ^ getpid());
        *ret = p;
        return 0;
}

struct vmg_prober *vmg_prober_free(struct vmg_prober *p) {
        if (!p)
                return NULL;
        if (p->fd >= 0)
                close(p->fd);
        free(p);
        return NULL;
}

static double ts_diff_ms(const struct timespec *a, const struct timespec *b) {
        return (double) (b->tv_sec - a->tv_sec) * 1e3 + (double) (b->tv_nsec - a->tv_nsec) / 1e6;
}

/* An unpredictable id: a forger on the service's own address must also guess it. */
static uint16_t new_id(struct vmg_prober *p) {
        uint16_t id;
        if (getrandom(&id, sizeof id, GRND_NONBLOCK) == (ssize_t) sizeof id)
                return id;
        return p->next_id++; /* no entropy yet at early boot: the connected socket still holds */
}

static void collect(struct vmg_prober *p) {
        for (;;) {
                uint8_t buf[512];
                char cbuf[CMSG_SPACE(sizeof(struct timespec))];
                struct iovec iov = { buf, sizeof buf };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                                     .msg_controllen = sizeof cbuf };
                ssize_t n = recvmsg(p->fd, &mh, MSG_DONTWAIT);
                if (n < 0)
                        return;
                if (n < 12 || !(buf[2] & 0x80))
                        continue; /* not a response */
                uint16_t id = (uint16_t) (buf[0] << 8 | buf[1]);
                if (!p->outstanding || id != p->out_id)
                        continue; /* a late answer to a query already counted as waiting */
                struct timespec rt = {};
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS)
                                memcpy(&rt, CMSG_DATA(c), sizeof rt);
                if (!rt.tv_sec)
                        clock_gettime(CLOCK_REALTIME, &rt);
                p->last_ms = ts_diff_ms(&p->sent_rt, &rt);
                /* The kernel stamps in CLOCK_REALTIME: a wall-clock step between send and
                 * receive would read as a latency the size of the step (an hour forward:
                 * "dnsmasq answers in 3600 s"). The monotonic time since the tick that sent
                 * the query bounds the truth from above. */
                struct timespec mono;
                clock_gettime(CLOCK_MONOTONIC, &mono);
                double bound_ms = ((double) mono.tv_sec * 1e9 + (double) mono.tv_nsec - (double) p->sent_mono_ns) / 1e6;
                if (p->last_ms > bound_ms)
                        p->last_ms = bound_ms;
                if (p->last_ms < 0)
                        p->last_ms = 0; /* wall clock stepped back between send and receive */
                p->waiting_ms = -1;
                p->outstanding = false;
                p->answered++;
                if (p->lost_run >= VMG_PROBER_LOST_RUN)
                        log_info("DNS probe %s: answered again after %u lost queries", p->spec, p->lost_run);
                p->lost_run = 0;
        }
}

int vmg_prober_tick(struct vmg_prober *p, uint64_t now_ns) {
        collect(p);
        if (p->outstanding) {
                double waited_ms = now_ns > p->sent_mono_ns ? (double) (now_ns - p->sent_mono_ns) / 1e6 : 0;
                if (waited_ms < VMG_PROBER_TIMEOUT_MS) {
                        /* No answer within a tick: the service is this slow at least. Keep
                         * waiting rather than stacking queries on a stuck service. */
                        p->waiting_ms = waited_ms;
                        return 0;
                }
                /* Lost: one bad sample of exactly the cap, then a fresh query. Its answer,
                 * should it still come, carries the old id and is ignored. */
                p->outstanding = false;
                p->waiting_ms = -1;
                p->lost++;
                p->lost_run++;
                p->last_ms = VMG_PROBER_TIMEOUT_MS;
                if (p->lost_run == VMG_PROBER_LOST_RUN) {
                        log_warning("DNS probe %s: %u queries in a row unanswered within %d ms: the "
                                    "service is unreachable, not slow; its probe latency counts as no "
                                    "data until it answers again",
                                    p->spec, p->lost_run, VMG_PROBER_TIMEOUT_MS);
                }
                if (p->lost_run >= VMG_PROBER_LOST_RUN)
                        p->last_ms = -1;
        }
        uint8_t q[300];
        uint16_t id = new_id(p);
        int len = vmg_dns_query_encode(p->name, id, q, sizeof q);
        if (len < 0)
                return len;
        clock_gettime(CLOCK_REALTIME, &p->sent_rt);
        p->sent_mono_ns = now_ns;
        if (send(p->fd, q, (size_t) len, 0) < 0) {
                int r = -errno;
                if (r != p->last_err)
                        log_warning_errno(r, "DNS probe %s: cannot send: %m", p->spec);
                p->last_err = r;
                return r;
        }
        p->last_err = 0;
        p->outstanding = true;
        p->out_id = id;
        p->sent++;
        return 0;
}

double vmg_prober_latency_ms(const struct vmg_prober *p) {
        if (p->waiting_ms >= 0 && p->waiting_ms > p->last_ms)
                return p->waiting_ms;
        return p->last_ms;
}

uint64_t vmg_prober_sent(const struct vmg_prober *p) { return p->sent; }
uint64_t vmg_prober_answered(const struct vmg_prober *p) { return p->answered; }
uint64_t vmg_prober_lost(const struct vmg_prober *p) { return p->lost; }
