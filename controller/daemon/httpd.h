/* The read-only /metrics endpoint (libmicrohttpd). It runs inside the daemon's one
 * sd-event loop and never in a thread of its own. A scrape builds nothing: it is answered
 * with the text the daemon rendered once at the end of its last tick
 * (vmg_httpd_publish()), so slow or many clients cost no snapshot work on the loop. MHD is
 * started in external epoll mode; the loop watches one fd and calls dispatch when it is
 * readable or the timeout passes.
 *
 * Bounds (httpd.c): 64 connections, 32 per client address, 15 s idle, and a full request
 * head within 3 s of connecting or of the previous answer (a client trickling bytes is
 * cut off: slowloris).
 *
 * GET and HEAD on /metrics: 200, Content-Type VMG_METRICS_CONTENT_TYPE; 503 before the
 * first publish. Other paths: 404. Other methods: 405 with "Allow: GET, HEAD". */
#pragma once
#include <jansson.h>
#include <stdint.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#define VMG_HTTPD_DEFAULT_LISTEN "127.0.0.1:9877"

struct vmg_httpd;


/* Parses "ADDR:PORT" with a numeric IPv4 address, or "[ADDR]:PORT" with an IPv6 one
 * ("[::1]:9877"). No host names: the daemon does no DNS. Port 0 means "any free port"
 * (tests). Returns 0 and fills *ret and *ret_len, or -EINVAL. */
int vmg_httpd_parse_listen(const char *addr, struct sockaddr_storage *ret, socklen_t *ret_len);

/* Binds addr (NULL: VMG_HTTPD_DEFAULT_LISTEN) and starts MHD without threads. Returns 0 and *ret, -EINVAL for a bad
 * address, the bind()/listen() -errno (e.g. -EADDRINUSE, logged with the address), or
 * -ENOMEM / -EIO when MHD cannot start. */
int vmg_httpd_new(const char *addr, struct vmg_httpd **ret);
/* Renders snapshot (not kept) and serves that text from now on. A response being sent
 * keeps the text it started with. Returns 0; on -EINVAL/-ENOMEM (logged) the previous text
 * stays served. */
int vmg_httpd_publish(struct vmg_httpd *h, const json_t *snapshot);

/* The fd to watch for EPOLLIN (MHD's epoll fd: readable whenever any client or the listen
 * socket needs work). Always >= 0 for a started server. */
int vmg_httpd_fd(const struct vmg_httpd *h);

/* The port actually bound (useful after port 0). */
uint16_t vmg_httpd_port(const struct vmg_httpd *h);

/* Accepts, reads, answers and times out connections; never blocks. Call when the fd is
 * readable or the timeout below has passed. Returns 0, or -EIO if MHD reports failure. */
int vmg_httpd_dispatch(struct vmg_httpd *h);

/* Microseconds after which dispatch must run even with no fd activity (idle connection
 * timeouts, pending output); UINT64_MAX when nothing is pending. */
uint64_t vmg_httpd_timeout_usec(struct vmg_httpd *h);

/* Convenience for the daemon: adds an io source on vmg_httpd_fd() and a timer that
 * follows vmg_httpd_timeout_usec() to ev, both calling dispatch. The sources live until
 * vmg_httpd_free(). Returns 0 or the sd_event -errno. */
int vmg_httpd_attach(struct vmg_httpd *h, sd_event *ev);

/* Closes every connection and the listen socket, removes the event sources. Returns NULL. */
struct vmg_httpd *vmg_httpd_free(struct vmg_httpd *h);
