/* Test aid for controller/shaper: drives the shaper API from shell tests and measures UDP
 * throughput between lab namespaces (no nc/iperf needed).
 *
 *   shaper_tool [-n NETNS] set TAP GUEST_TX_BPS GUEST_RX_BPS   (bits/s, 0 = no limit)
 *   shaper_tool [-n NETNS] clear TAP
 *   shaper_tool [-n NETNS] get TAP                              (key=value lines)
 *   shaper_tool udp-send ADDR PORT SECONDS [PAYLOAD_BYTES]
 *   shaper_tool udp-recv PORT SECONDS                           (prints the received rate)
 *
 * Exit status: 0 ok, 1 usage, 2 + the errno of a failed shaper call is printed. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macros.h"
#include "controller/act/shaper.h"

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int usage(void) {
        fprintf(stderr, "usage: shaper_tool [-n NETNS] set TAP TX_BPS RX_BPS | clear TAP | get TAP\n"
                        "       shaper_tool udp-send ADDR PORT SECONDS [PAYLOAD]\n"
                        "       shaper_tool udp-recv PORT SECONDS\n");
        return 1;
}

static int parse_double(const char *s, double *ret) {
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (errno || end == s || *end)
                return -EINVAL;
        *ret = v;
        return 0;
}

static int udp_send(const char *addr, int port, double seconds, int payload) {
        struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(port) };
        if (inet_pton(AF_INET, addr, &dst.sin_addr) != 1 || payload < 1 || payload > 65000)
                return usage();
        _cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                perror("socket");
                return 2;
        }
        /* Blocking sends wake up regularly so the deadline holds even when the qdisc backs
         * the socket up. */
        struct timeval tv = { .tv_usec = 100000 };
        (void) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        _cleanup_free_ char *buf = calloc(1, payload);
        if (!buf)
                return 2;
        unsigned long long sent = 0, pkts = 0;
        double end = now_s() + seconds;
        while (now_s() < end) {
                for (int i = 0; i < 64; i++) {
                        ssize_t n = sendto(fd, buf, payload, 0, (struct sockaddr *) &dst, sizeof dst);
                        if (n > 0) {
                                sent += n;
                                pkts++;
                        } else if (errno != EAGAIN && errno != ENOBUFS && errno != ECONNREFUSED &&
                                   errno != EINTR) {
                                perror("sendto");
                                return 2;
                        }
                }
        }
        printf("sent_bytes=%llu sent_packets=%llu seconds=%.3f\n", sent, pkts, seconds);
        return 0;
}

static int udp_recv(int port, double seconds) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
                                 .sin_addr.s_addr = htonl(INADDR_ANY) };
        _cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                perror("socket");
                return 2;
        }
        int big = 4 << 20;
        (void) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
        if (bind(fd, (struct sockaddr *) &a, sizeof a) < 0) {
                perror("bind");
                return 2;
        }
        static char buf[65536];
        unsigned long long bytes = 0, pkts = 0;
        double first = 0, last = 0, end = now_s() + seconds;
        for (;;) {
                double left = end - now_s();
                if (left <= 0)
                        break;
                struct pollfd p = { .fd = fd, .events = POLLIN };
                int r = poll(&p, 1, (int) (left * 1000) + 1);
                if (r < 0 && errno != EINTR) {
                        perror("poll");
                        return 2;
                }
                if (r <= 0)
                        continue;
                for (;;) {
                        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
                        if (n < 0)
                                break;
                        double t = now_s();
                        if (!pkts)
                                first = t;
                        last = t;
                        bytes += n;
                        pkts++;
                }
        }
        /* Rate between the first and last datagram: the sender's start-up and the time the
         * receiver waits before it do not dilute the figure. The first datagram's bytes
         * arrived before the window opened, so they are not counted in it. */
        double dt = last - first;
        double payload_mbit = 0, wire_mbit = 0;
        if (pkts > 1 && dt > 0) {
                unsigned long long avg = bytes / pkts;
                payload_mbit = (bytes - avg) * 8 / dt / 1e6;
                /* Ethernet + IPv4 + UDP headers: what tbf counts per datagram. */
                wire_mbit = (bytes - avg + (pkts - 1) * 42ULL) * 8 / dt / 1e6;
        }
        printf("rx_bytes=%llu rx_packets=%llu seconds=%.3f payload_mbit=%.2f wire_mbit=%.2f\n",
               bytes, pkts, dt, payload_mbit, wire_mbit);
        return 0;
}

int main(int argc, char **argv) {
        const char *netns = NULL;
        struct vmg_shaper *s = NULL;
        int r, i = 1;

        if (argc > 2 && strcmp(argv[1], "-n") == 0) {
                netns = argv[2];
                i = 3;
        }
        if (i >= argc)
                return usage();
        const char *cmd = argv[i++];
        int n = argc - i;
        char **a = argv + i;

        if (strcmp(cmd, "udp-send") == 0) {
                double secs;
                if ((n != 3 && n != 4) || parse_double(a[2], &secs) < 0)
                        return usage();
                return udp_send(a[0], atoi(a[1]), secs, n == 4 ? atoi(a[3]) : 1400);
        }
        if (strcmp(cmd, "udp-recv") == 0) {
                double secs;
                if (n != 2 || parse_double(a[1], &secs) < 0)
                        return usage();
                return udp_recv(atoi(a[0]), secs);
        }

        if (getenv("VMG_DEBUG"))
                log_set_max_level(LOG_DEBUG);
        r = vmg_shaper_new(NULL, &s);
        if (r < 0)
                return 2;
        if (strcmp(cmd, "set") == 0 && n == 3) {
                double tx, rx;
                if (parse_double(a[1], &tx) < 0 || parse_double(a[2], &rx) < 0) {
                        vmg_shaper_free(s);
                        return usage();
                }
                r = vmg_shaper_set(s, netns, a[0], tx, rx);
        } else if (strcmp(cmd, "clear") == 0 && n == 1)
                r = vmg_shaper_clear(s, netns, a[0]);
        else if (strcmp(cmd, "get") == 0 && n == 1) {
                struct vmg_shaper_state st;
                r = vmg_shaper_get(s, netns, a[0], &st);
                if (r >= 0)
                        printf("guest_tx_bps=%.0f\ntx_burst=%u\ntx_limit=%u\n"
                               "guest_rx_bps=%.0f\nrx_burst=%u\nrx_limit=%u\n"
                               "tx_redirect=%d\nifb=%s\nifb_present=%d\n"
                               "foreign_root=%d\nforeign_ingress=%d\nforeign_ifb=%d\n",
                               st.guest_tx_bps, st.tx_burst, st.tx_limit, st.guest_rx_bps,
                               st.rx_burst, st.rx_limit, st.tx_redirect, st.ifb, st.ifb_present,
                               st.foreign_root, st.foreign_ingress, st.foreign_ifb);
        } else {
                vmg_shaper_free(s);
                return usage();
        }
        vmg_shaper_free(s);
        if (r < 0) {
                printf("error=%s errno=%d\n", strerror(-r), -r);
                return 2;
        }
        return 0;
}
