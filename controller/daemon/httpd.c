/* /metrics over libmicrohttpd in external epoll mode (no threads of its own: MHD only runs
 * inside vmg_httpd_dispatch(), on the daemon's sd-event loop), serving the text the
 * daemon published at its last tick. The listen socket is ours (bind errors come back as a precise -errno and the
 * logged address), then handed to MHD, which closes it on stop. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macros.h"
#include "controller/daemon/httpd.h"
#include "controller/daemon/metrics.h"

/* Prometheus scrapes with one connection per server (two in an HA pair); the cap bounds
 * the fds a local user can make the daemon hold. Over it MHD stops accepting and new
 * clients wait in the listen backlog until a slot frees (at most HEAD_DEADLINE_USEC). With
 * 16 the slowloris test's 20 trickling clients locked every scrape out for the whole
 * attack. */
#define MAX_CONNECTIONS 64
/* One address may hold half the slots: a remote Prometheus always finds one free, however
 * many connections a single local or remote address opens. */
#define MAX_CONNECTIONS_PER_IP 32
/* Seconds a connection may sit idle (MHD's own timer, reset by any byte): keep-alive
 * connections between scrapes go after this. Prometheus' default scrape timeout is 10 s. */
#define CONNECTION_TIMEOUT_S 15
/* MHD's idle timer is reset by every byte, so a client trickling a byte a second holds its
 * slot for ever (slowloris). A full request head must arrive within this much of the
 * connection's start or of the previous answer (nginx' client_header_timeout, Apache's
 * mod_reqtimeout); Prometheus sends its whole GET in one segment. A keep-alive connection
 * idle longer than this is closed too; the next scrape reconnects (one handshake). */
#define HEAD_DEADLINE_USEC (3 * USEC_PER_SEC)
/* Requests are answered from the last published text, in microseconds; queue a few. */
#define LISTEN_BACKLOG 64

/* A connection waiting for its request head since `since` (CLOCK_MONOTONIC usec); 0 while
 * a request is being answered. */
struct conn {
        struct conn *next, **pprev;
        int fd;
        uint64_t since;
        bool cut;
};

struct vmg_httpd {
        struct MHD_Daemon *mhd;
        /* The last published exposition, shared by every connection (MHD counts its
         * references: a slow reader keeps the old text alive after a publish). */
        struct MHD_Response *current;
        struct conn *conns;
        char addr[64]; /* as given, for logs */
        uint16_t port;
        sd_event_source *io, *timer;
};

int vmg_httpd_parse_listen(const char *addr, struct sockaddr_storage *ret, socklen_t *ret_len) {
        if (!addr || !*addr)
                return -EINVAL;
        char host[INET6_ADDRSTRLEN + 1];
        const char *port_s;
        bool v6 = addr[0] == '[';
        if (v6) {
                const char *end = strchr(addr, ']');
                if (!end || end[1] != ':' || (size_t) (end - addr - 1) >= sizeof host)
                        return -EINVAL;
                memcpy(host, addr + 1, end - addr - 1);
                host[end - addr - 1] = 0;
                port_s = end + 2;
        } else {
                const char *colon = strrchr(addr, ':');
                if (!colon || (size_t) (colon - addr) >= sizeof host || strchr(addr, ':') != colon)
                        return -EINVAL;
                memcpy(host, addr, colon - addr);
                host[colon - addr] = 0;
                port_s = colon + 1;
        }
        char *e;
        errno = 0;
        unsigned long port = strtoul(port_s, &e, 10);
        if (!*port_s || *e || errno || port > 65535 || port_s[0] == '-' || port_s[0] == '+')
                return -EINVAL;
        struct sockaddr_storage ss = {};
        if (v6) {
                struct sockaddr_in6 *s6 = (struct sockaddr_in6 *) &ss;
                s6->sin6_family = AF_INET6;
                s6->sin6_port = htons((uint16_t) port);
                if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
                        return -EINVAL;
                *ret_len = sizeof *s6;
        } else {
                struct sockaddr_in *s4 = (struct sockaddr_in *) &ss;
                s4->sin_family = AF_INET;
                s4->sin_port = htons((uint16_t) port);
                if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
                        return -EINVAL;
                *ret_len = sizeof *s4;
        }
        *ret = ss;
        return 0;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *text) {
        struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), (void *) text, MHD_RESPMEM_PERSISTENT);
        if (!resp)
                return MHD_NO;
        (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
        if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
                (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
        enum MHD_Result r = MHD_queue_response(c, status, resp);
        MHD_destroy_response(resp);
        return r;
}

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
        struct vmg_httpd *h = cls;
        if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
                const union MHD_ConnectionInfo *i = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
                struct conn *k = calloc(1, sizeof *k);
                if (!k || !i) {
                        /* Not tracked, so no head deadline: MHD's idle timeout still ends it. */
                        free(k);
                        *socket_context = NULL;
                        return;
                }
                k->fd = i->connect_fd;
                k->since = now_usec();
                k->next = h->conns;
                if (h->conns)
                        h->conns->pprev = &k->next;
                k->pprev = &h->conns;
                h->conns = k;
                *socket_context = k;
        } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
                struct conn *k = *socket_context;
                if (!k)
                        return;
                *k->pprev = k->next;
                if (k->next)
                        k->next->pprev = k->pprev;
                free(k);
                *socket_context = NULL;
        }
}

/* The answer is sent: the deadline for the next request head on this connection starts. */
static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
        (void) cls;
        (void) con_cls;
        (void) toe;
        const union MHD_ConnectionInfo *i = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        struct conn *k = i ? i->socket_context : NULL;
        if (k)
                k->since = now_usec();
}

/* Cuts every connection whose request head is overdue: shutdown() makes MHD read EOF and
 * close it on its next run. Returns the usec until the next deadline, UINT64_MAX if none. */
static uint64_t cut_slow(struct vmg_httpd *h) {
        uint64_t now = now_usec(), next = UINT64_MAX;
        for (struct conn *k = h->conns; k; k = k->next) {
                if (k->cut || k->since == 0)
                        continue;
                if (now - k->since >= HEAD_DEADLINE_USEC) {
                        log_debug("metrics %s: a client sent no full request within %llu s: closing it", h->addr,
                                  HEAD_DEADLINE_USEC / USEC_PER_SEC);
                        (void) shutdown(k->fd, SHUT_RDWR);
                        k->cut = true;
                } else if (k->since + HEAD_DEADLINE_USEC - now < next)
                        next = k->since + HEAD_DEADLINE_USEC - now;
        }
        return next;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
        static int seen; /* marks a request whose headers were already seen */
        struct vmg_httpd *h = cls;
        (void) version;
        (void) upload_data;
        bool readonly = strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
        /* GET and HEAD are answered on the second call, once MHD has the whole request:
         * an answer queued earlier makes MHD close the connection, and Prometheus would
         * reconnect for every scrape. Anything else is refused at once without reading its
         * body (MHD then closes that connection, which is what we want). */
        if (readonly && !*con_cls) {
                *con_cls = &seen;
                const union MHD_ConnectionInfo *i = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
                struct conn *k = i ? i->socket_context : NULL;
                if (k)
                        k->since = 0; /* the head is in; the answer is MHD's to send */
                return MHD_YES;
        }
        *upload_data_size = 0;
        if (strcmp(url, "/metrics") != 0)
                return reply(c, MHD_HTTP_NOT_FOUND, "Not found: vmguard serves /metrics only.\n");
        if (!readonly)
                return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "Method not allowed: /metrics is read-only (GET, HEAD).\n");

        /* Nothing is built here: the text was rendered at the end of the last tick. A scrape
         * costs a reference count, not the 135 ms snapshot of 1000 guests it cost when each
         * GET built one on the loop thread. */
        if (!h->current)
                return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "vmguard: no tick has completed yet\n");
        return MHD_queue_response(c, MHD_HTTP_OK, h->current);
}

int vmg_httpd_publish(struct vmg_httpd *h, const json_t *snapshot) {
        char *buf = NULL;
        size_t len = 0;
        int r = vmg_metrics_render_buf(snapshot, &buf, &len);
        if (r < 0)
                return log_warning_errno(r, "metrics %s: cannot render the snapshot, serving the previous one: %m",
                                         h->addr);
        struct MHD_Response *resp = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
        if (!resp) {
                free(buf);
                return -ENOMEM;
        }
        (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, VMG_METRICS_CONTENT_TYPE);
        if (h->current)
                MHD_destroy_response(h->current); /* freed once the last reader is done */
        h->current = resp;
        return 0;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
        const struct vmg_httpd *h = cls;
        char msg[256];
        vsnprintf(msg, sizeof msg, fmt, ap);
        size_t n = strlen(msg);
        while (n > 0 && msg[n - 1] == '\n')
                msg[--n] = 0;
        log_warning("metrics %s: %s", h->addr, msg);
}

int vmg_httpd_new(const char *addr, struct vmg_httpd **ret) {
        if (!ret)
                return -EINVAL;
        if (!addr)
                addr = VMG_HTTPD_DEFAULT_LISTEN;
        struct sockaddr_storage ss;
        socklen_t sl;
        if (vmg_httpd_parse_listen(addr, &ss, &sl) < 0)
                return log_error_errno(EINVAL, "metrics: listen address '%s' is not ADDR:PORT or [ADDR6]:PORT with a numeric address",
                                       addr);
        _cleanup_free_ struct vmg_httpd *h = calloc(1, sizeof *h);
        if (!h)
                return -ENOMEM;
        snprintf(h->addr, sizeof h->addr, "%s", addr);

        _cleanup_close_ int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return log_error_errno(errno, "metrics %s: socket: %m", addr);
        int one = 1;
        /* A restarted daemon must rebind at once while old connections sit in TIME_WAIT. */
        (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ss.ss_family == AF_INET6)
                (void) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        if (bind(fd, (struct sockaddr *) &ss, sl) < 0)
                return log_error_errno(errno, "metrics: cannot bind %s: %m", addr);
        if (listen(fd, LISTEN_BACKLOG) < 0)
                return log_error_errno(errno, "metrics: cannot addr on %s: %m", addr);
        struct sockaddr_storage bound;
        socklen_t bl = sizeof bound;
        if (getsockname(fd, (struct sockaddr *) &bound, &bl) < 0)
                return log_error_errno(errno, "metrics %s: getsockname: %m", addr);
        h->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *) &bound)->sin6_port
                                                    : ((struct sockaddr_in *) &bound)->sin_port);

        h->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG | (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
                                  0, NULL, NULL, on_request, h,
                                  MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h,
                                  MHD_OPTION_LISTEN_SOCKET, fd,
                                  MHD_OPTION_CONNECTION_LIMIT, (unsigned) MAX_CONNECTIONS,
                                  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) CONNECTION_TIMEOUT_S,
                                  MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned) MAX_CONNECTIONS_PER_IP,
                                  MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
                                  MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                                  MHD_OPTION_END);
        if (!h->mhd)
                return log_error_errno(EIO, "metrics %s: libmicrohttpd did not start (epoll mode)", addr);
        TAKE_FD(fd); /* MHD closes it in MHD_stop_daemon() */
        log_info("metrics: serving /metrics on %s (port %u)", addr, h->port);
        *ret = TAKE_PTR(h);
        return 0;
}

int vmg_httpd_fd(const struct vmg_httpd *h) {
        const union MHD_DaemonInfo *i = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD);
        return i ? i->epoll_fd : -1;
}

uint16_t vmg_httpd_port(const struct vmg_httpd *h) { return h->port; }

int vmg_httpd_dispatch(struct vmg_httpd *h) {
        (void) cut_slow(h);
        if (MHD_run(h->mhd) != MHD_YES)
                return log_warning_errno(EIO, "metrics %s: MHD_run failed", h->addr);
        return 0;
}

uint64_t vmg_httpd_timeout_usec(struct vmg_httpd *h) {
        uint64_t head = cut_slow(h);
        MHD_UNSIGNED_LONG_LONG ms;
        if (MHD_get_timeout(h->mhd, &ms) != MHD_YES)
                return head;
        uint64_t t = ms > UINT64_MAX / 1000 ? UINT64_MAX - 1 : (uint64_t) ms * 1000;
        return t < head ? t : head;
}

static int rearm(struct vmg_httpd *h) {
        uint64_t t = vmg_httpd_timeout_usec(h);
        if (t == UINT64_MAX)
                return sd_event_source_set_enabled(h->timer, SD_EVENT_OFF);
        uint64_t now;
        int r = sd_event_now(sd_event_source_get_event(h->timer), CLOCK_MONOTONIC, &now);
        if (r < 0)
                return r;
        r = sd_event_source_set_time(h->timer, t > UINT64_MAX - now - 1 ? UINT64_MAX - 1 : now + t);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(h->timer, SD_EVENT_ONESHOT);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct vmg_httpd *h = userdata;
        (void) s;
        (void) fd;
        (void) revents;
        (void) vmg_httpd_dispatch(h);
        /* A failure to rearm is logged, not returned: a negative return would disable the
         * io source and silently end /metrics for the daemon's lifetime. */
        int r = rearm(h);
        if (r < 0)
                log_warning_errno(r, "metrics %s: cannot rearm the connection timer: %m", h->addr);
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        (void) usec;
        return on_io(s, -1, 0, userdata);
}

int vmg_httpd_attach(struct vmg_httpd *h, sd_event *ev) {
        int r = sd_event_add_io(ev, &h->io, vmg_httpd_fd(h), EPOLLIN, on_io, h);
        if (r < 0)
                return log_error_errno(r, "metrics %s: cannot watch MHD's epoll fd: %m", h->addr);
        r = sd_event_add_time(ev, &h->timer, CLOCK_MONOTONIC, UINT64_MAX - 1, 0, on_timer, h);
        if (r < 0)
                return log_error_errno(r, "metrics %s: cannot add the connection timer: %m", h->addr);
        (void) sd_event_source_set_description(h->io, "metrics-io");
        (void) sd_event_source_set_description(h->timer, "metrics-timer");
        return rearm(h);
}

struct vmg_httpd *vmg_httpd_free(struct vmg_httpd *h) {
        if (!h)
                return NULL;
        h->io = sd_event_source_disable_unref(h->io);
        h->timer = sd_event_source_disable_unref(h->timer);
        if (h->mhd)
                MHD_stop_daemon(h->mhd); /* closes every connection: on_connection frees its conn */
        if (h->current)
                MHD_destroy_response(h->current);
        free(h);
        return NULL;
}
