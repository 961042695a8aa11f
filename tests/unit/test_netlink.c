/* netlink: tap/veth counters read over rtnetlink in their own network namespace, checked
 * against /sys/class/net inside that namespace. Needs root (namespaces, veth): exits 77
 * otherwise. Everything it makes is named after its pid and removed at exit. Traffic stays
 * between two namespaces it creates, on 198.18.0.0/30. */
#define _GNU_SOURCE 1
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macros.h"
#include "probes/netlink.h"
#include "tests/harness.h"

static char ns_a[32], ns_b[32], ns_c[32], if_a[IF_NAMESIZE], if_b[IF_NAMESIZE];

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
        char cmd[2048];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(cmd, sizeof cmd, fmt, ap);
        va_end(ap);
        int r = system(cmd);
        if (r != 0)
                fprintf(stderr, "command failed (%d): %s\n", r, cmd);
        return r;
}

static void cleanup(void) {
        /* Deleting a namespace destroys the veth end in it, and with it the peer. */
        sh("ip netns del %s 2>/dev/null; ip netns del %s 2>/dev/null; "
           "ip netns del %s 2>/dev/null; true", ns_a, ns_b, ns_c);
}

/* A counter as /sys/class/net shows it inside ns ("" = ours). */
static int sysfs_stat(const char *ns, const char *ifname, const char *stat, uint64_t *ret) {
        char cmd[256];
        if (ns[0])
                snprintf(cmd, sizeof cmd, "ip netns exec %s cat /sys/class/net/%s/statistics/%s 2>/dev/null",
                         ns, ifname, stat);
        else
                snprintf(cmd, sizeof cmd, "cat /sys/class/net/%s/statistics/%s 2>/dev/null", ifname, stat);
        FILE *p = popen(cmd, "r");
        if (!p)
                return -errno;
        unsigned long long v;
        int n = fscanf(p, "%llu", &v);
        int st = pclose(p);
        if (n != 1 || st != 0)
                return -EIO;
        *ret = v;
        return 0;
}

/* Sends count UDP datagrams from inside ns_a to the peer, in a child so the test's own
 * thread never changes namespace. */
static int send_udp(int count) {
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                char p[64];
                snprintf(p, sizeof p, "/run/netns/%s", ns_a);
                int fd = open(p, O_RDONLY | O_CLOEXEC);
                if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
                        _exit(2);
                int s = socket(AF_INET, SOCK_DGRAM, 0);
                struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(9) };
                inet_pton(AF_INET, "198.18.0.2", &to.sin_addr);
                char buf[1000] = "vmguard netlink test";
                for (int i = 0; i < count; i++)
                        if (sendto(s, buf, sizeof buf, 0, (struct sockaddr *) &to, sizeof to) < 0)
                                _exit(3);
                _exit(0);
        }
        int st;
        if (waitpid(pid, &st, 0) < 0)
                return -errno;
        return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

/* Waits (bounded) until the peer has received at least want packets: ARP must resolve
 * before the queued datagrams leave. A wait, not a timing assertion. */
static void wait_rx(const char *ns, const char *ifname, uint64_t want) {
        for (int i = 0; i < 50; i++) {
                uint64_t v = 0;
                if (sysfs_stat(ns, ifname, "rx_packets", &v) == 0 && v >= want)
                        return;
                usleep(100 * 1000);
        }
}

static const char *const stats[] = { "rx_bytes", "tx_bytes", "rx_packets", "tx_packets",
                                     "rx_dropped", "tx_dropped" };

static uint64_t field(const struct vmg_iface_counters *c, size_t i) {
        const uint64_t v[] = { c->rx_bytes, c->tx_bytes, c->rx_packets, c->tx_packets,
                               c->rx_dropped, c->tx_dropped };
        return v[i];
}

/* Reads sysfs before and after our netlink read; our figure must lie between: exact on
 * a quiet interface, still correct on a busy one (lo). */
static void check_bracketed(struct vmg_netlink *nl, const char *ns, const char *ifname,
                            struct vmg_iface_counters *out) {
        uint64_t before[ARRAY_SIZE(stats)], after[ARRAY_SIZE(stats)];
        for (size_t i = 0; i < ARRAY_SIZE(stats); i++)
                CHECK_INT(sysfs_stat(ns, ifname, stats[i], &before[i]), 0);
        struct vmg_iface_counters c = {};
        snprintf(c.tap, sizeof c.tap, "%s", ifname);
        CHECK_INT(vmg_netlink_read(nl, &c, 1), 1);
        for (size_t i = 0; i < ARRAY_SIZE(stats); i++)
                CHECK_INT(sysfs_stat(ns, ifname, stats[i], &after[i]), 0);
        CHECK(c.found);
        for (size_t i = 0; i < ARRAY_SIZE(stats); i++)
                CHECK_MSG(before[i] <= field(&c, i) && field(&c, i) <= after[i],
                          "%s %s: netlink %llu, sysfs %llu..%llu", ifname, stats[i],
                          (unsigned long long) field(&c, i), (unsigned long long) before[i],
                          (unsigned long long) after[i]);
        const char *where = NULL;
        CHECK_INT(vmg_netlink_tap_netns(nl, ifname, &where), 0);
        CHECK_STR(where, ns);
        if (out)
                *out = c;
}

int main(void) {
        log_set_max_level(LOG_ERR);
        if (geteuid() != 0) {
                printf("skip: test_netlink needs root (network namespaces, veth)\n");
                return 77;
        }
        int pid = (int) getpid();
        snprintf(ns_a, sizeof ns_a, "vmgtest-a-%d", pid);
        snprintf(ns_b, sizeof ns_b, "vmgtest-b-%d", pid);
        snprintf(ns_c, sizeof ns_c, "vmgtest-c-%d", pid);
        snprintf(if_a, sizeof if_a, "vmga%d", pid % 1000000);
        snprintf(if_b, sizeof if_b, "vmgb%d", pid % 1000000);
        atexit(cleanup);

        struct vmg_netlink *nl = NULL;
        T_CASE("new");
        CHECK_INT(vmg_netlink_new(NULL, &nl), 0);
        if (!nl)
                return t_summary();

        /* Made after the reader: a rescan must find the new namespaces. */
        T_CASE("setup");
        /* IPv6 off: its router and multicast solicitations would add packets of their own. */
        int r = sh("ip netns add %s && ip netns add %s && "
                   "ip netns exec %s sh -c 'echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6' && "
                   "ip netns exec %s sh -c 'echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6' && "
                   "ip -n %s link add %s type veth peer name %s netns %s && "
                   "ip -n %s addr add 198.18.0.1/30 dev %s && ip -n %s link set %s up && "
                   "ip -n %s addr add 198.18.0.2/30 dev %s && ip -n %s link set %s up",
                   ns_a, ns_b, ns_a, ns_b, ns_a, if_a, if_b, ns_b, ns_a, if_a, ns_a, if_a, ns_b, if_b,
                   ns_b, if_b);
        CHECK_INT(r, 0);
        if (r != 0)
                return t_summary();
        CHECK_INT(send_udp(5), 0);
        wait_rx(ns_b, if_b, 5);

        T_CASE("veth in namespace a");
        struct vmg_iface_counters ca;
        check_bracketed(nl, ns_a, if_a, &ca);
        CHECK_MSG(ca.tx_packets >= 5, "tx_packets %llu", (unsigned long long) ca.tx_packets);
        CHECK_MSG(ca.tx_bytes >= 5 * 1000, "tx_bytes %llu", (unsigned long long) ca.tx_bytes);
        unsigned long gen_a = vmg_netlink_tap_generation(nl, if_a);
        CHECK(gen_a > 0);
        CHECK(vmg_netlink_tap_generation(nl, "vmgnever") == 0);

        T_CASE("peer in namespace b");
        struct vmg_iface_counters cb;
        check_bracketed(nl, ns_b, if_b, &cb);
        CHECK_MSG(cb.rx_packets >= 5, "rx_packets %llu", (unsigned long long) cb.rx_packets);

        T_CASE("loopback found in our own namespace first");
        check_bracketed(nl, "", "lo", NULL);

        T_CASE("several at once, one missing");
        struct vmg_iface_counters many[3] = {};
        snprintf(many[0].tap, sizeof many[0].tap, "%s", if_a);
        snprintf(many[1].tap, sizeof many[1].tap, "vmgnone%d", pid % 100000);
        snprintf(many[2].tap, sizeof many[2].tap, "%s", if_b);
        many[1].rx_bytes = 42; /* stale values must not survive a miss */
        CHECK_INT(vmg_netlink_read(nl, many, 3), 2);
        CHECK(many[0].found);
        CHECK(!many[1].found);
        CHECK_U64(many[1].rx_bytes, 0);
        CHECK(many[2].found);
        /* >=, not ==: the kernel may send its own ARP probes in between. */
        CHECK_MSG(many[0].tx_packets >= ca.tx_packets, "%llu", (unsigned long long) many[0].tx_packets);
        CHECK_MSG(many[2].rx_packets >= cb.rx_packets, "%llu", (unsigned long long) many[2].rx_packets);
        const char *where = NULL;
        CHECK_INT(vmg_netlink_tap_netns(nl, many[1].tap, &where), -ENOENT);
        /* Read again where it was: the same device, nothing to put back on it. */
        CHECK(vmg_netlink_tap_generation(nl, if_a) == gen_a);

        /* The tap moves (as the lab does with ip link set netns): the cached namespace no
         * longer has it, so the reader must rescan and find it in the new one, counters
         * intact. */
        T_CASE("moved to another namespace");
        r = sh("ip netns add %s && ip -n %s link set %s netns %s", ns_c, ns_a, if_a, ns_c);
        CHECK_INT(r, 0);
        struct vmg_iface_counters moved;
        check_bracketed(nl, ns_c, if_a, &moved);
        CHECK_MSG(moved.tx_packets >= ca.tx_packets, "%llu", (unsigned long long) moved.tx_packets);
        CHECK(vmg_netlink_tap_generation(nl, if_a) != gen_a);
        gen_a = vmg_netlink_tap_generation(nl, if_a);

        T_CASE("namespace deleted");
        r = sh("ip netns del %s", ns_c); /* takes if_a and with it its peer if_b */
        CHECK_INT(r, 0);
        struct vmg_iface_counters gone[2] = {};
        snprintf(gone[0].tap, sizeof gone[0].tap, "%s", if_a);
        snprintf(gone[1].tap, sizeof gone[1].tap, "%s", if_b);
        CHECK_INT(vmg_netlink_read(nl, gone, 2) >= 0, 1);
        CHECK(!gone[0].found);
        /* The kernel tears a namespace down asynchronously once its last reference goes;
         * if we still held a socket in it, the peer would never go away. */
        bool peer_gone = false;
        for (int i = 0; i < 50 && !peer_gone; i++) {
                uint64_t v;
                peer_gone = sysfs_stat(ns_b, if_b, "rx_packets", &v) < 0;
                if (!peer_gone)
                        usleep(100 * 1000);
        }
        CHECK_MSG(peer_gone, "%s still exists in %s: namespace %s kept alive", if_b, ns_b, ns_c);
        CHECK_INT(vmg_netlink_read(nl, gone, 2), 0);
        CHECK(!gone[0].found);
        CHECK(!gone[1].found);

        /* Issue #9: the namespace comes back under its name with a tap of the same name: a
         * new device, which carries nothing a caller installed on the old one. */
        T_CASE("namespace made again with the tap");
        r = sh("ip netns add %s && ip -n %s link add %s type veth peer name %s netns %s && "
               "ip -n %s link set %s up && ip -n %s link set %s up",
               ns_c, ns_c, if_a, if_b, ns_b, ns_c, if_a, ns_b, if_b);
        CHECK_INT(r, 0);
        struct vmg_iface_counters again = {};
        snprintf(again.tap, sizeof again.tap, "%s", if_a);
        CHECK_INT(vmg_netlink_read(nl, &again, 1), 1);
        CHECK(again.found);
        CHECK_INT(vmg_netlink_tap_netns(nl, if_a, &where), 0);
        CHECK_STR(where, ns_c);
        unsigned long gen_back = vmg_netlink_tap_generation(nl, if_a);
        CHECK(gen_back != gen_a);
        CHECK_INT(vmg_netlink_read(nl, &again, 1), 1);
        CHECK(vmg_netlink_tap_generation(nl, if_a) == gen_back);

        /* Deleted and made again between two reads, in the same namespace: only the ifindex
         * tells the new device from the old. */
        T_CASE("tap made again in place");
        r = sh("ip -n %s link del %s && ip -n %s link add %s type veth peer name %s netns %s",
               ns_c, if_a, ns_c, if_a, if_b, ns_b);
        CHECK_INT(r, 0);
        CHECK_INT(vmg_netlink_read(nl, &again, 1), 1);
        CHECK(again.found);
        CHECK(vmg_netlink_tap_generation(nl, if_a) != gen_back);

        CHECK(vmg_netlink_free(nl) == NULL);
        return t_summary();
}
