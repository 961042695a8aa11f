/* The control socket's server side. Everything is non-blocking and driven by one epoll set
 * (listener, clients, idle timer) so the daemon's loop watches a single fd and a slow or
 * silent client can never stall a tick. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macros.h"
#include "controller/daemon/ctlsock.h"

/* epoll tags: the listener and the timer; a client is tagged TAG_CLIENT + its slot. */
enum { TAG_LISTEN = 0, TAG_TIMER = 1, TAG_CLIENT = 2 };

struct client {
        int fd;
        uid_t uid;
        pid_t pid;
        char in[VMG_CTL_MAX_REQUEST];
        size_t in_len;
        char *out;
        size_t out_len, out_off;
        bool close_after; /* close once out is flushed */
        bool eof;
        uint64_t deadline_ns;
};

struct vmg_ctl_server {
        char *path;
        ino_t ino; /* of our socket file: free() unlinks only what we bound */
        dev_t dev;
        int listen_fd, epoll_fd, timer_fd;
        vmg_ctl_handler_t handler;
        void *ud;
        uid_t allowed_uid;
        unsigned timeout_ms;
        struct client *clients[VMG_CTL_MAX_CLIENTS];
};

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * NSEC_PER_SEC + (uint64_t) ts.tv_nsec;
}

static void client_close(struct vmg_ctl_server *s, size_t slot) {
        struct client *c = s->clients[slot];
        if (!c)
                return;
        (void) epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        free(c->out);
        free(c);
        s->clients[slot] = NULL;
}

static void client_watch(struct vmg_ctl_server *s, size_t slot, uint32_t events) {
        struct epoll_event ev = { .events = events, .data.u64 = TAG_CLIENT + slot };
        struct client *c = s->clients[slot];
        if (epoll_ctl(s->epoll_fd, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
                log_debug_errno(errno, "control socket: cannot watch client pid %d: %m", (int) c->pid);
                client_close(s, slot);
        }
}

/* Queues one reply line (takes the reference). A client with a reply pending reads nothing
 * more until it is flushed: one request, one reply, in order. */
static int client_reply(struct client *c, json_t *reply) {
        if (!reply)
                return -ENOMEM;
        char *txt = json_dumps(reply, JSON_COMPACT | JSON_REAL_PRECISION(6));
        json_decref(reply);
        if (!txt)
                return -ENOMEM;
        size_t n = strlen(txt);
        char *line = realloc(txt, n + 2);
        if (!line) {
                free(txt);
                return -ENOMEM;
        }
        line[n] = '\n';
        line[n + 1] = '\0';
        free(c->out);
        c->out = line;
        c->out_len = n + 1;
        c->out_off = 0;
        return 0;
}

static json_t *error_reply(const char *code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static json_t *error_reply(const char *code, const char *fmt, ...) {
        char msg[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        return json_pack("{s:s, s:s}", "error", msg, "code", code);
}

/* Turns one request line into the queued reply. Garbage closes the connection after the
 * error reply: a client that speaks something else will not start making sense. */
static void handle_line(struct vmg_ctl_server *s, struct client *c, const char *line, size_t len) {
        json_error_t jerr;
        json_t *req = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
        json_t *reply;
        const char *cmd = req ? json_string_value(json_object_get(req, "cmd")) : NULL;

        if (!req || !json_is_object(req) || !cmd) {
                log_debug("control socket: bad request from pid %d: %s", (int) c->pid,
                          req ? "no \"cmd\" string" : jerr.text);
                reply = error_reply("bad_request", "a request is one JSON object per line with a \"cmd\" string%s%s",
                                    req ? "" : ": ", req ? "" : jerr.text);
                c->close_after = true;
        } else if (strcmp(cmd, "ping") == 0) {
                reply = json_pack("{s:b, s:i, s:i}", "pong", 1, "version", VMG_CTL_PROTOCOL_VERSION, "pid",
                                  (int) getpid());
        } else {
                reply = s->handler ? s->handler(req, s->ud) : NULL;
                if (!reply)
                        reply = error_reply("unknown_command", "unknown command '%.64s' (known: ping, status, explain)", cmd);
        }
        json_decref(req);
        if (client_reply(c, reply) < 0) {
                log_error("control socket: out of memory answering pid %d", (int) c->pid);
                c->close_after = true;
                free(c->out);
                c->out = NULL;
                c->out_len = c->out_off = 0;
        }
}

/* Takes the next complete line out of the input buffer and answers it. Returns true when a
 * reply (or a close) is now pending. */
static bool process_input(struct vmg_ctl_server *s, struct client *c) {
        for (;;) {
                char *nl = memchr(c->in, '\n', c->in_len);
                if (!nl) {
                        if (c->in_len == sizeof c->in) {
                                log_warning("control socket: request from uid %u pid %d longer than %d bytes: closed",
                                            (unsigned) c->uid, (int) c->pid, VMG_CTL_MAX_REQUEST);
                                (void) client_reply(c, error_reply("too_long", "request longer than %d bytes",
                                                                   VMG_CTL_MAX_REQUEST));
                                c->close_after = true;
                                c->in_len = 0;
                                return true;
                        }
                        if (c->eof && c->in_len > 0) {
                                /* A last request without its newline ("printf ... | nc -U"). */
                                size_t n = c->in_len;
                                c->in_len = 0;
                                handle_line(s, c, c->in, n);
                                c->close_after = true;
                                return true;
                        }
                        if (c->eof) {
                                c->close_after = true;
                                return true;
                        }
                        return false;
                }
                size_t n = (size_t) (nl - c->in);
                size_t linelen = n;
                if (linelen > 0 && c->in[linelen - 1] == '\r')
                        linelen--;
                bool blank = true;
                for (size_t i = 0; i < linelen && blank; i++)
                        blank = c->in[i] == ' ' || c->in[i] == '\t';
                if (!blank)
                        handle_line(s, c, c->in, linelen);
                memmove(c->in, nl + 1, c->in_len - n - 1);
                c->in_len -= n + 1;
                if (!blank)
                        return true;
        }
}

/* Writes what is pending; then answers further buffered lines; then waits for input. */
static void client_progress(struct vmg_ctl_server *s, size_t slot) {
        struct client *c = s->clients[slot];
        for (;;) {
                while (c->out && c->out_off < c->out_len) {
                        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                                         MSG_NOSIGNAL | MSG_DONTWAIT);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                                client_watch(s, slot, EPOLLOUT);
                                return;
                        }
                        if (n < 0) {
                                log_debug_errno(errno, "control socket: writing to pid %d: %m", (int) c->pid);
                                client_close(s, slot);
                                return;
                        }
                        c->out_off += (size_t) n;
                }
                if (c->out) {
                        free(c->out);
                        c->out = NULL;
                        c->out_len = c->out_off = 0;
                        c->deadline_ns = now_ns() + (uint64_t) s->timeout_ms * NSEC_PER_MSEC;
                }
                if (c->close_after) {
                        client_close(s, slot);
                        return;
                }
                if (!process_input(s, c))
                        break;
        }
        client_watch(s, slot, EPOLLIN);
}

static void client_read(struct vmg_ctl_server *s, size_t slot) {
        struct client *c = s->clients[slot];
        if (c->out || c->close_after) {
                client_progress(s, slot);
                return;
        }
        for (;;) {
                ssize_t n = read(c->fd, c->in + c->in_len, sizeof c->in - c->in_len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                        return;
                if (n < 0) {
                        log_debug_errno(errno, "control socket: reading from pid %d: %m", (int) c->pid);
                        client_close(s, slot);
                        return;
                }
                if (n == 0)
                        c->eof = true;
                c->in_len += (size_t) n;
                break;
        }
        if (process_input(s, c))
                client_progress(s, slot);
        else if (c->eof)
                client_close(s, slot);
}

static void accept_clients(struct vmg_ctl_server *s) {
        for (;;) {
                int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) {
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        if (errno != EAGAIN && errno != EWOULDBLOCK)
                                log_warning_errno(errno, "control socket %s: accept: %m", s->path);
                        return;
                }
                struct ucred cred = { .pid = 0, .uid = (uid_t) -1, .gid = (gid_t) -1 };
                socklen_t cl = sizeof cred;
                if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0) {
                        log_warning_errno(errno, "control socket %s: no peer credentials: closed: %m", s->path);
                        close(fd);
                        continue;
                }
                size_t slot = SIZE_MAX;
                for (size_t i = 0; i < VMG_CTL_MAX_CLIENTS; i++)
                        if (!s->clients[i]) {
                                slot = i;
                                break;
                        }
                json_t *refuse = NULL;
                if (cred.uid != s->allowed_uid) {
                        /* The socket's mode already keeps others out; this catches a mode
                         * loosened by hand or a path bind-mounted into a container. */
                        log_warning("control socket %s: refused uid %u pid %d: only uid %u may ask the daemon",
                                    s->path, (unsigned) cred.uid, (int) cred.pid, (unsigned) s->allowed_uid);
                        refuse = error_reply("permission_denied",
                                             "permission denied: the vmguard control socket is for root only (your uid is %u)",
                                             (unsigned) cred.uid);
                } else if (slot == SIZE_MAX) {
                        log_warning("control socket %s: %d clients already connected: refused pid %d",
                                    s->path, VMG_CTL_MAX_CLIENTS, (int) cred.pid);
                        refuse = error_reply("busy", "too many clients (%d), try again", VMG_CTL_MAX_CLIENTS);
                }
                if (refuse) {
                        /* One short line into a fresh socket's empty buffer: never blocks. */
                        char *txt = json_dumps(refuse, JSON_COMPACT);
                        json_decref(refuse);
                        if (txt) {
                                (void) !send(fd, txt, strlen(txt), MSG_NOSIGNAL | MSG_DONTWAIT);
                                (void) !send(fd, "\n", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
                                free(txt);
                        }
                        close(fd);
                        continue;
                }
                struct client *c = calloc(1, sizeof *c);
                if (!c) {
                        log_error("control socket %s: out of memory for pid %d", s->path, (int) cred.pid);
                        close(fd);
                        return;
                }
                c->fd = fd;
                c->uid = cred.uid;
                c->pid = cred.pid;
                c->deadline_ns = now_ns() + (uint64_t) s->timeout_ms * NSEC_PER_MSEC;
                struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TAG_CLIENT + slot };
                if (epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                        log_warning_errno(errno, "control socket %s: cannot watch pid %d: %m", s->path, (int) cred.pid);
                        close(fd);
                        free(c);
                        continue;
                }
                s->clients[slot] = c;
                log_debug("control socket %s: client pid %d uid %u connected", s->path, (int) cred.pid,
                          (unsigned) cred.uid);
        }
}

static void expire_clients(struct vmg_ctl_server *s) {
        uint64_t now = now_ns();
        for (size_t i = 0; i < VMG_CTL_MAX_CLIENTS; i++) {
                struct client *c = s->clients[i];
                if (c && c->deadline_ns <= now) {
                        log_debug("control socket %s: client pid %d idle for %u ms: closed", s->path,
                                  (int) c->pid, s->timeout_ms);
                        client_close(s, i);
                }
        }
}

/* Arms the timer for the earliest client deadline (or disarms it): the loop wakes for an
 * idle client without the daemon keeping its own timer. */
static void arm_timer(struct vmg_ctl_server *s) {
        uint64_t next = 0;
        for (size_t i = 0; i < VMG_CTL_MAX_CLIENTS; i++)
                if (s->clients[i] && (!next || s->clients[i]->deadline_ns < next))
                        next = s->clients[i]->deadline_ns;
        struct itimerspec its = {};
        if (next) {
                its.it_value.tv_sec = (time_t) (next / NSEC_PER_SEC);
                its.it_value.tv_nsec = (long) (next % NSEC_PER_SEC);
                if (!its.it_value.tv_sec && !its.it_value.tv_nsec)
                        its.it_value.tv_nsec = 1;
        }
        if (timerfd_settime(s->timer_fd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
                log_warning_errno(errno, "control socket %s: cannot arm the idle timer: %m", s->path);
}

int vmg_ctl_server_dispatch(struct vmg_ctl_server *s) {
        struct epoll_event evs[VMG_CTL_MAX_CLIENTS + 2];
        if (!s)
                return -EINVAL;
        int n = epoll_wait(s->epoll_fd, evs, (int) ARRAY_SIZE(evs), 0);
        if (n < 0) {
                if (errno == EINTR)
                        return 0;
                return log_error_errno(errno, "control socket %s: epoll_wait: %m", s->path);
        }
        for (int i = 0; i < n; i++) {
                uint64_t tag = evs[i].data.u64;
                if (tag == TAG_LISTEN) {
                        accept_clients(s);
                } else if (tag == TAG_TIMER) {
                        uint64_t expirations;
                        (void) !read(s->timer_fd, &expirations, sizeof expirations);
                } else {
                        size_t slot = (size_t) (tag - TAG_CLIENT);
                        /* The slot may have been closed by an earlier event of this batch. */
                        if (slot >= VMG_CTL_MAX_CLIENTS || !s->clients[slot])
                                continue;
                        if (evs[i].events & EPOLLOUT)
                                client_progress(s, slot);
                        else if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                                client_read(s, slot);
                }
        }
        expire_clients(s);
        arm_timer(s);
        return 0;
}

int vmg_ctl_server_new(const char *path, vmg_ctl_handler_t handler, void *ud,
                       struct vmg_ctl_server **ret) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct stat st;
        int r;

        if (!ret)
                return -EINVAL;
        if (!path)
                path = VMG_CONTROL_SOCKET;
        if (strlen(path) >= sizeof sa.sun_path)
                return log_error_errno(ENAMETOOLONG, "control socket %s: path longer than %zu bytes",
                                       path, sizeof sa.sun_path - 1);
        strcpy(sa.sun_path, path);

        if (lstat(path, &st) == 0) {
                if (!S_ISSOCK(st.st_mode))
                        return log_error_errno(EEXIST, "control socket %s: exists and is not a socket: not replacing it", path);
                _cleanup_close_ int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (probe >= 0 && connect(probe, (struct sockaddr *) &sa, sizeof sa) == 0)
                        return log_error_errno(EADDRINUSE, "control socket %s: another server answers there (a second vmguardd?)", path);
                /* Left by a daemon that died without cleaning up. */
                if (unlink(path) < 0 && errno != ENOENT)
                        return log_error_errno(errno, "control socket %s: cannot remove the stale socket: %m", path);
        }

        struct vmg_ctl_server *s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->listen_fd = s->epoll_fd = s->timer_fd = -1;
        s->handler = handler;
        s->ud = ud;
        s->allowed_uid = 0;
        s->timeout_ms = VMG_CTL_DEFAULT_TIMEOUT_MS;
        s->path = strdup(path);
        if (!s->path) {
                r = -ENOMEM;
                goto fail;
        }
        s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s->listen_fd < 0) {
                r = log_error_errno(errno, "control socket %s: socket: %m", path);
                goto fail;
        }
        /* Created 0600 from the start: no window in which another user could connect. */
        mode_t old = umask(0177);
        r = bind(s->listen_fd, (struct sockaddr *) &sa, sizeof sa);
        int e = errno;
        umask(old);
        if (r < 0) {
                r = log_error_errno(e, "control socket %s: bind: %m", path);
                goto fail;
        }
        if (lstat(path, &st) < 0) {
                r = log_error_errno(errno, "control socket %s: stat after bind: %m", path);
                goto fail;
        }
        s->ino = st.st_ino;
        s->dev = st.st_dev;
        if (listen(s->listen_fd, VMG_CTL_MAX_CLIENTS) < 0) {
                r = log_error_errno(errno, "control socket %s: listen: %m", path);
                goto fail;
        }
        s->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        s->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (s->epoll_fd < 0 || s->timer_fd < 0) {
                r = log_error_errno(errno, "control socket %s: epoll/timerfd: %m", path);
                goto fail;
        }
        struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TAG_LISTEN };
        struct epoll_event tev = { .events = EPOLLIN, .data.u64 = TAG_TIMER };
        if (epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, s->listen_fd, &ev) < 0 ||
            epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, s->timer_fd, &tev) < 0) {
                r = log_error_errno(errno, "control socket %s: epoll_ctl: %m", path);
                goto fail;
        }
        *ret = s;
        return 0;
fail:
        vmg_ctl_server_free(s);
        return r;
}

int vmg_ctl_server_fd(const struct vmg_ctl_server *s) { return s ? s->epoll_fd : -EINVAL; }

int vmg_ctl_server_set_allowed_uid(struct vmg_ctl_server *s, uid_t uid) {
        if (!s)
                return -EINVAL;
        s->allowed_uid = uid;
        return 0;
}

int vmg_ctl_server_set_timeout_ms(struct vmg_ctl_server *s, unsigned ms) {
        if (!s || ms == 0)
                return -EINVAL;
        s->timeout_ms = ms;
        return 0;
}

size_t vmg_ctl_server_n_clients(const struct vmg_ctl_server *s) {
        size_t n = 0;
        for (size_t i = 0; s && i < VMG_CTL_MAX_CLIENTS; i++)
                n += s->clients[i] != NULL;
        return n;
}

struct vmg_ctl_server *vmg_ctl_server_free(struct vmg_ctl_server *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < VMG_CTL_MAX_CLIENTS; i++)
                client_close(s, i);
        if (s->listen_fd >= 0) {
                struct stat st;
                /* Only our own socket: a second daemon may have replaced it meanwhile. */
                if (s->path && lstat(s->path, &st) == 0 && st.st_ino == s->ino && st.st_dev == s->dev)
                        (void) unlink(s->path);
                close(s->listen_fd);
        }
        if (s->epoll_fd >= 0)
                close(s->epoll_fd);
        if (s->timer_fd >= 0)
                close(s->timer_fd);
        free(s->path);
        free(s);
        return NULL;
}

/* Seconds as JSON, or nothing for 0 ("not set"). False when out of memory. */
static bool set_num(json_t *o, const char *key, double v) {
        return !(v > 0) || json_object_set_new(o, key, json_real(v)) == 0;
}

static const struct vmg_tenant *find_tenant(const struct vmg_policy *policy, const char *tenant) {
        const struct vmg_tenant *t = NULL;
        for (size_t i = 0; policy && tenant && i < policy->n_tenants; i++)
                if (policy->tenants[i].name && strcmp(policy->tenants[i].name, tenant) == 0)
                        t = &policy->tenants[i];
        return t;
}

json_t *vmg_ctl_rules_json(const struct vmg_policy *policy, const char *tenant) {
        const struct vmg_tenant *t = find_tenant(policy, tenant);
        if (!t)
                return NULL;
        json_t *rules = json_object();
        for (int k = 0; rules && k < VMG_RES_COUNT; k++) {
                const struct vmg_rule *ru = &t->rules[k];
                if (!(ru->cap > 0) && !ru->noisy)
                        continue;
                json_t *o = json_object();
                bool ok = o && set_num(o, "cap", ru->cap);
                if (ok && ru->noisy)
                        ok = set_num(o, "noisy_above", ru->noisy_above) &&
                             set_num(o, "for_s", (double) ru->noisy_for_ns / 1e9) &&
                             set_num(o, "throttle_to", ru->throttle_to) && set_num(o, "floor", ru->floor) &&
                             set_num(o, "calm_for_s", (double) ru->calm_for_ns / 1e9);
                if (!ok) {
                        json_decref(o);
                        o = NULL;
                }
                /* set_new takes o even when it fails. */
                if (!o || json_object_set_new(rules, vmg_resource_name(k), o) < 0)
                        rules = (json_decref(rules), NULL);
        }
        if (!rules)
                return NULL;
        const struct vmg_host_policy *h = &policy->host;
        return json_pack("{s:s, s:f, s:f, s:f, s:o}", "tenant", t->name, "min_hold_s", (double) h->min_hold_ns / 1e9,
                         "step_down", h->step_down, "step_up", h->step_up, "rules", rules);
}

static bool vm_matches(json_t *vm, const char *want) {
        const char *name = json_string_value(json_object_get(vm, "name"));
        const char *uuid = json_string_value(json_object_get(vm, "uuid"));
        return (name && strcmp(name, want) == 0) || (uuid && strcasecmp(uuid, want) == 0);
}

json_t *vmg_ctl_answer(const json_t *request, json_t *snapshot, const struct vmg_policy *policy) {
        const char *cmd = json_string_value(json_object_get(request, "cmd"));
        if (!snapshot)
                return error_reply("internal", "the daemon could not build its snapshot");
        if (cmd && strcmp(cmd, "status") == 0)
                return snapshot;
        if (!cmd || strcmp(cmd, "explain") != 0) {
                json_decref(snapshot);
                return NULL;
        }
        const char *want = json_string_value(json_object_get(request, "vm"));
        if (!want || !*want) {
                json_decref(snapshot);
                return error_reply("bad_request", "explain needs \"vm\": a guest's name or uuid");
        }
        json_t *vms = json_object_get(snapshot, "vms");
        json_t *found = NULL, *vm;
        size_t i;
        json_array_foreach(vms, i, vm) {
                if (vm_matches(vm, want)) {
                        found = vm;
                        break;
                }
        }
        if (!found) {
                json_decref(snapshot);
                return error_reply("no_such_vm", "no guest named '%.128s' (by name or uuid)", want);
        }
        /* Every jansson call checked: under memory pressure the client gets an "internal"
         * error, never a reply with every guest or without the guest's policy. */
        json_incref(found);
        json_t *one = json_pack("[o]", found);
        bool ok = one && json_object_set_new(snapshot, "vms", one) == 0;
        const char *tenant = json_string_value(json_object_get(found, "tenant"));
        json_t *rules = ok ? vmg_ctl_rules_json(policy, tenant) : NULL;
        if (ok && !rules && find_tenant(policy, tenant))
                ok = false;
        if (ok && rules)
                ok = json_object_set_new(found, "policy", rules) == 0;
        if (!ok) {
                json_decref(snapshot);
                return error_reply("internal", "out of memory explaining '%.128s'", want);
        }
        return snapshot;
}
