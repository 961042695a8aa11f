/* The DNS prober against a fake DNS server on loopback: the query it sends, the answer time
 * it measures (from the kernel's receive timestamp), and a service that does not answer,
 * whose waiting time must show rather than a stale good figure. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "probes/prober.h"
#include "tests/harness.h"

static uint64_t mono_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

static void sleep_ms(int ms) {
        struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
}

/* Receives one query and answers it (a copy with QR set) after delay_ms. Returns the
 * query's length, or -1. */
static int serve_one(int fd, int delay_ms, uint8_t *q, int qlen) {
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        int n = (int) recvfrom(fd, q, (size_t) qlen, 0, (struct sockaddr *) &from, &fl);
        if (n < 12)
                return -1;
        uint8_t a[512];
        memcpy(a, q, (size_t) n);
        a[2] |= 0x80;
        sleep_ms(delay_ms);
        sendto(fd, a, (size_t) n, 0, (struct sockaddr *) &from, fl);
        return n;
}

/* Receives one query without answering it; the sender's address goes to from. */
static int swallow(int fd, uint8_t *q, int qlen, struct sockaddr_in *from) {
        socklen_t fl = sizeof *from;
        return (int) recvfrom(fd, q, (size_t) qlen, 0, (struct sockaddr *) from, &fl);
}

/* The attack: answers forged by someone other than the service (another port on the same
 * host) or carrying another query's id, sent at once to hide the service's real slowness. */
static void test_spoofed_answers(int srv, const char *spec) {
        T_CASE("a spoofed answer from another port or with a wrong id is ignored");
        struct vmg_prober *p = NULL;
        CHECK_INT(vmg_prober_new(spec, NULL, &p), 0);
        if (!p)
                return;
        int spoofer = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        CHECK(bind(spoofer, (struct sockaddr *) &sa, sizeof sa) == 0);
        CHECK_INT(vmg_prober_tick(p, mono_ns()), 0);
        uint8_t q[512], a[512];
        struct sockaddr_in prober;
        int n = swallow(srv, q, sizeof q, &prober);
        CHECK(n >= 12);
        if (n < 12) {
                close(spoofer);
                vmg_prober_free(p);
                return;
        }
        memcpy(a, q, (size_t) n);
        a[2] |= 0x80;
        /* the right id, from the wrong port */
        CHECK(sendto(spoofer, a, (size_t) n, 0, (struct sockaddr *) &prober, sizeof prober) == n);
        /* from the service's port, with another id */
        a[1] ^= 0x5a;
        CHECK(sendto(srv, a, (size_t) n, 0, (struct sockaddr *) &prober, sizeof prober) == n);
        a[1] ^= 0x5a;
        /* a query (QR clear) with the right id, from the service's port */
        a[2] &= (uint8_t) ~0x80;
        CHECK(sendto(srv, a, (size_t) n, 0, (struct sockaddr *) &prober, sizeof prober) == n);
        sleep_ms(20); /* loopback delivery is immediate; this only orders the send before the read */
        CHECK_INT(vmg_prober_tick(p, mono_ns()), 0);
        CHECK_U64(vmg_prober_answered(p), 0);
        CHECK_U64(vmg_prober_sent(p), 1); /* still waiting for the real answer */
        /* The real answer is still taken after the forgeries. */
        a[2] |= 0x80;
        CHECK(sendto(srv, a, (size_t) n, 0, (struct sockaddr *) &prober, sizeof prober) == n);
        sleep_ms(20);
        CHECK_INT(vmg_prober_tick(p, mono_ns()), 0);
        CHECK_U64(vmg_prober_answered(p), 1);
        (void) swallow(srv, q, sizeof q, &prober); /* the query that tick sent */
        close(spoofer);
        vmg_prober_free(p);
}

/* The attack: a DROP on the probe path. Each lost query is one sample of exactly the cap;
 * a run of them is "unreachable" (-1), not a wait growing for ever. The ticks' times are
 * given, not slept: no wall-time assertion. */
static void test_dropped_queries(int srv, const char *spec) {
        T_CASE("a dropped query yields a bounded value");
        struct vmg_prober *p = NULL;
        CHECK_INT(vmg_prober_new(spec, NULL, &p), 0);
        if (!p)
                return;
        uint8_t q[512];
        struct sockaddr_in from;
        const uint64_t sec = 1000000000ull;
        uint64_t t = mono_ns();
        CHECK_INT(vmg_prober_tick(p, t), 0);
        (void) swallow(srv, q, sizeof q, &from);
        CHECK_INT(vmg_prober_tick(p, t + 1 * sec), 0);
        CHECK_NEAR(vmg_prober_latency_ms(p), 1000, 1e-6); /* waiting, below the cap */
        CHECK_INT(vmg_prober_tick(p, t + 60 * sec), 0);
        CHECK_NEAR(vmg_prober_latency_ms(p), VMG_PROBER_TIMEOUT_MS, 1e-6);
        CHECK_U64(vmg_prober_lost(p), 1);
        CHECK_U64(vmg_prober_sent(p), 2); /* the lost query is replaced by a fresh one */
        (void) swallow(srv, q, sizeof q, &from);
        for (int i = 2; i <= VMG_PROBER_LOST_RUN; i++) {
                CHECK_INT(vmg_prober_tick(p, t + (uint64_t) (60 * i) * sec), 0);
                (void) swallow(srv, q, sizeof q, &from);
        }
        CHECK_U64(vmg_prober_lost(p), VMG_PROBER_LOST_RUN);
        CHECK_NEAR(vmg_prober_latency_ms(p), -1, 0); /* unreachable: no evidence of harm */
        vmg_prober_free(p);
}

int main(void) {
        uint8_t buf[300];
        T_CASE("query encoding");
        int n = vmg_dns_query_encode("victim.lab", 0x1234, buf, sizeof buf);
        CHECK_INT(n, 12 + 1 + 6 + 1 + 3 + 1 + 4);
        CHECK_INT(buf[0], 0x12);
        CHECK_INT(buf[1], 0x34);
        CHECK_INT(buf[5], 1);
        CHECK_INT(buf[12], 6);
        CHECK(memcmp(buf + 13, "victim", 6) == 0);
        CHECK_INT(buf[19], 3);
        CHECK_INT(buf[n - 3], 1); /* QTYPE A */
        CHECK_INT(vmg_dns_query_encode("a..b", 1, buf, sizeof buf), -EINVAL);
        char longlabel[80];
        memset(longlabel, 'x', 70);
        longlabel[70] = 0;
        CHECK_INT(vmg_dns_query_encode(longlabel, 1, buf, sizeof buf), -EINVAL);
        CHECK_INT(vmg_dns_query_encode("victim.lab", 1, buf, 10), -ENOBUFS);

        T_CASE("bad specs");
        struct vmg_prober *p = NULL;
        CHECK_INT(vmg_prober_new("nonsense", NULL, &p), -EINVAL);
        CHECK_INT(vmg_prober_new("300.1.1.1/x", NULL, &p), -EINVAL);
        CHECK(vmg_prober_new("127.0.0.1:53/x", "/nonexistent/netns", &p) < 0);

        T_CASE("answer time from a fake server on loopback");
        int srv = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        CHECK(bind(srv, (struct sockaddr *) &sa, sizeof sa) == 0);
        socklen_t sl = sizeof sa;
        getsockname(srv, (struct sockaddr *) &sa, &sl);
        char spec[64];
        snprintf(spec, sizeof spec, "127.0.0.1:%u/victim.lab", ntohs(sa.sin_port));
        CHECK_INT(vmg_prober_new(spec, NULL, &p), 0);
        if (!p)
                return t_summary();
        CHECK_NEAR(vmg_prober_latency_ms(p), -1, 0);
        uint64_t sent_at = mono_ns();
        CHECK_INT(vmg_prober_tick(p, sent_at), 0);
        uint8_t q[512];
        CHECK(serve_one(srv, 30, q, sizeof q) > 0);
        double answered_ms = (double) (mono_ns() - sent_at) / 1e6;
        sleep_ms(100); /* collected late on purpose: the kernel timestamp keeps it exact */
        CHECK_INT(vmg_prober_tick(p, mono_ns()), 0);
        double ms = vmg_prober_latency_ms(p);
        /* Order, not a time bound: the server slept at least 30 ms before answering, and the
         * answer was in before answered_ms (however slow this host): a latency beyond it
         * would count the 100 ms the prober waited before collecting. */
        CHECK_MSG(ms >= 30 && ms <= answered_ms, "latency %g ms, expected 30..%g ms (sent to answered)", ms,
                  answered_ms);
        CHECK_U64(vmg_prober_answered(p), 1);
        CHECK_U64(vmg_prober_sent(p), 2);

        T_CASE("no answer: waiting time grows");
        (void) recv(srv, q, sizeof q, 0); /* swallow the second query, never answer */
        sleep_ms(200);
        CHECK_INT(vmg_prober_tick(p, mono_ns()), 0);
        ms = vmg_prober_latency_ms(p);
        CHECK_MSG(ms >= 200, "a stuck service shows its waiting time, got %g ms", ms);
        CHECK_U64(vmg_prober_sent(p), 2); /* no query stacked on a stuck service */
        vmg_prober_free(p);

        test_spoofed_answers(srv, spec);
        test_dropped_queries(srv, spec);
        close(srv);
        return t_summary();
}
