/* The control socket server, in process with a fake handler: request/reply, pipelining,
 * garbage, exact size limits, idle clients, too many clients, a peer that is not root (a
 * child that drops to nobody), the socket file's life cycle, and the daemon's answer to
 * status/explain. The client side (vmg_ctl_call) talks to it from forked children, since
 * it blocks and the server must keep dispatching.
 *
 * `test_ctlsock --serve SOCKET SNAPSHOT.json [HOST.json TENANTS_DIR]` runs the real server
 * answering from a snapshot file (re-read per request) until SIGTERM: the stand-in daemon
 * of tests/integration/test_ctl_real.sh while vmguardd has no --socket. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/macros.h"
#include "controller/cli/ctlclient.h"
#include "controller/daemon/ctlsock.h"
#include "tests/harness.h"

/* The daemon's real snapshot shape (manager.c), a throttled guest of tenant acme. */
static const char *SNAP =
        "{\"version\":1,\"daemon\":{\"pid\":4242,\"version\":\"0.1\",\"ticks\":300,\"tick_seconds\":1.0,"
        "\"last_tick_age_seconds\":0.4,\"libvirt_connected\":true,\"guests_throttled\":1},"
        "\"host\":{\"contended\":true,\"contention\":\"host PSI io some 24% > 10%\"},\"services\":[],"
        "\"vms\":[{\"name\":\"web-1\",\"uuid\":\"6f1c2a8e-3b4d-4e5f-9a0b-1c2d3e4f5a6b\",\"tenant\":\"acme\","
        "\"qemu_pid\":100,\"throttled\":true,\"unmanaged\":false,\"throttled_for_s\":42.0,\"usage\":{},"
        "\"resources\":{\"disk_write\":{\"limit\":20971520.0,\"cap\":0.0,\"throttled\":true,\"usage\":2.0e7,"
        "\"suspect\":false,\"reason\":\"r\",\"calm_for_s\":12.0,\"changed_s_ago\":42.0}}},"
        "{\"name\":\"idle\",\"uuid\":\"00000000-0000-0000-0000-000000000001\",\"tenant\":null,\"qemu_pid\":101,"
        "\"throttled\":false,\"unmanaged\":false,\"usage\":{},\"resources\":{}}]}";

static int handled;

static json_t *fake_handler(const json_t *req, void *ud) {
        const char *cmd = json_string_value(json_object_get(req, "cmd"));
        (void) ud;
        handled++;
        if (strcmp(cmd, "status") == 0)
                return json_pack("{s:i, s:s, s:i}", "version", 1, "echo", "status", "n", handled);
        if (strcmp(cmd, "big") == 0) {
                /* Bigger than any socket buffer: the reply must go out in pieces. */
                size_t n = 3u << 20;
                char *s = malloc(n + 1);
                memset(s, 'x', n);
                s[n] = '\0';
                json_t *j = json_pack("{s:s}", "blob", s);
                free(s);
                return j;
        }
        return NULL;
}

struct conn {
        int fd;
        char *buf;
        size_t len, cap;
        bool eof;
};

static int conn_open(const char *path, struct conn *c) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
        *c = (struct conn) { .fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0) };
        if (c->fd < 0 || connect(c->fd, (struct sockaddr *) &sa, sizeof sa) < 0)
                return -errno;
        return 0;
}

static void conn_close(struct conn *c) {
        if (c->fd >= 0)
                close(c->fd);
        free(c->buf);
        *c = (struct conn) { .fd = -1 };
}

static size_t count_lines(const struct conn *c) {
        size_t n = 0;
        for (size_t i = 0; i < c->len; i++)
                n += c->buf[i] == '\n';
        return n;
}

/* Drives the server and reads the client until it holds `lines` reply lines (0: until EOF).
 * Bounded (~10 s) so a broken server fails the test instead of hanging it. */
static void pump(struct vmg_ctl_server *s, struct conn *c, size_t lines) {
        for (int i = 0; i < 1000; i++) {
                struct pollfd p[2] = { { .fd = vmg_ctl_server_fd(s), .events = POLLIN },
                                       { .fd = c ? c->fd : -1, .events = POLLIN } };
                (void) poll(p, 2, 10);
                (void) vmg_ctl_server_dispatch(s);
                if (!c)
                        return;
                for (;;) {
                        if (c->cap - c->len < 65536) {
                                c->cap = c->cap ? c->cap * 2 : 65536;
                                c->buf = realloc(c->buf, c->cap);
                        }
                        ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len - 1);
                        if (n > 0) {
                                c->len += (size_t) n;
                                continue;
                        }
                        if (n == 0)
                                c->eof = true;
                        break;
                }
                if (c->buf)
                        c->buf[c->len] = '\0';
                if (c->eof || (lines && count_lines(c) >= lines))
                        return;
        }
}

static void send_all(struct vmg_ctl_server *s, struct conn *c, const char *data, size_t len) {
        size_t off = 0;
        for (int i = 0; off < len && i < 10000; i++) {
                ssize_t n = write(c->fd, data + off, len - off);
                if (n > 0)
                        off += (size_t) n;
                else
                        pump(s, NULL, 0); /* let the server drain its side */
        }
}

/* The i-th reply line of c, parsed (NULL when absent or not JSON). */
static json_t *reply_line(const struct conn *c, size_t i) {
        const char *p = c->buf ? c->buf : "";
        for (size_t k = 0; k < i && p; k++) {
                p = strchr(p, '\n');
                if (p)
                        p++;
        }
        if (!p || !*p)
                return NULL;
        const char *nl = strchr(p, '\n');
        return json_loadb(p, nl ? (size_t) (nl - p) : strlen(p), 0, NULL);
}

static char *repeat_to(const char *head, size_t total, const char *tail) {
        /* head, then spaces, then tail, exactly total bytes long. */
        char *s = malloc(total + 1);
        size_t h = strlen(head), t = strlen(tail);
        memcpy(s, head, h);
        memset(s + h, ' ', total - h - t);
        memcpy(s + total - t, tail, t);
        s[total] = '\0';
        return s;
}

static void test_requests(const char *path) {
        struct vmg_ctl_server *s = NULL;
        CHECK_INT(vmg_ctl_server_new(path, fake_handler, NULL, &s), 0);
        if (!s)
                return;
        char *exact = repeat_to("{\"cmd\":\"ping\"}", VMG_CTL_MAX_REQUEST, "\n");
        char *over = repeat_to("{\"cmd\":\"ping\"}", VMG_CTL_MAX_REQUEST + 1, "\n");
        char *nonl = repeat_to("{\"cmd\":\"ping\"}", VMG_CTL_MAX_REQUEST + 500, "x");
        struct {
                const char *name;
                const char *send;
                bool shut_wr;      /* half-close after sending */
                size_t replies;    /* reply lines expected */
                const char *want[3]; /* a key=value each reply must carry ("pong", "code=...") */
                bool closed;       /* server closes after the last reply */
        } cases[] = {
                { "ping", "{\"cmd\":\"ping\"}\n", false, 1, { "pong" }, false },
                { "status goes to the handler", "{\"cmd\":\"status\"}\n", false, 1, { "echo=status" }, false },
                { "unknown command keeps the connection", "{\"cmd\":\"nope\"}\n{\"cmd\":\"ping\"}\n", false, 2,
                  { "code=unknown_command", "pong" }, false },
                { "pipelined, in order", "{\"cmd\":\"status\"}\n{\"cmd\":\"ping\"}\n{\"cmd\":\"status\"}\n", false, 3,
                  { "echo=status", "pong", "echo=status" }, false },
                { "CRLF and blank lines", "\r\n\n{\"cmd\":\"ping\"}\r\n", false, 1, { "pong" }, false },
                { "garbage closes", "hello daemon\n{\"cmd\":\"ping\"}\n", false, 1, { "code=bad_request" }, true },
                { "array is garbage", "[1,2]\n", false, 1, { "code=bad_request" }, true },
                { "no cmd", "{\"command\":\"ping\"}\n", false, 1, { "code=bad_request" }, true },
                { "cmd not a string", "{\"cmd\":1}\n", false, 1, { "code=bad_request" }, true },
                { "duplicate keys", "{\"cmd\":\"ping\",\"cmd\":\"status\"}\n", false, 1, { "code=bad_request" }, true },
                { "last line without newline", "{\"cmd\":\"ping\"}", true, 1, { "pong" }, true },
                { "exactly the limit (newline included)", exact, false, 1, { "pong" }, false },
                { "one byte over the limit", over, false, 1, { "code=too_long" }, true },
                { "no newline within the limit", nonl, false, 1, { "code=too_long" }, true },
                { "EOF without a request", "", true, 0, {}, true },
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                struct conn c;
                T_CASE(cases[i].name);
                CHECK_INT(conn_open(path, &c), 0);
                send_all(s, &c, cases[i].send, strlen(cases[i].send));
                if (cases[i].shut_wr)
                        shutdown(c.fd, SHUT_WR);
                pump(s, &c, cases[i].closed ? 0 : cases[i].replies);
                CHECK_INT(count_lines(&c), cases[i].replies);
                for (size_t k = 0; k < cases[i].replies; k++) {
                        json_t *r = reply_line(&c, k);
                        const char *want = cases[i].want[k];
                        const char *eq = strchr(want, '=');
                        char key[32];
                        snprintf(key, sizeof key, "%.*s", (int) (eq ? eq - want : (long) strlen(want)), want);
                        json_t *v = json_object_get(r, key);
                        CHECK_MSG(v != NULL, "reply %zu lacks %s: %s", k, key, c.buf);
                        if (eq)
                                CHECK_STR(json_string_value(v), eq + 1);
                        json_decref(r);
                }
                CHECK_INT(c.eof, cases[i].closed);
                conn_close(&c);
        }
        free(exact);
        free(over);
        free(nonl);

        T_CASE("a reply bigger than the socket buffer");
        struct conn c;
        CHECK_INT(conn_open(path, &c), 0);
        send_all(s, &c, "{\"cmd\":\"big\"}\n", 14);
        pump(s, &c, 1);
        json_t *r = reply_line(&c, 0);
        CHECK_INT(strlen(json_string_value(json_object_get(r, "blob")) ?: ""), 3u << 20);
        json_decref(r);
        conn_close(&c);

        T_CASE("ping carries the protocol version");
        CHECK_INT(conn_open(path, &c), 0);
        send_all(s, &c, "{\"cmd\":\"ping\"}\n", 15);
        pump(s, &c, 1);
        r = reply_line(&c, 0);
        CHECK_INT(json_integer_value(json_object_get(r, "version")), VMG_CTL_PROTOCOL_VERSION);
        CHECK_INT(json_integer_value(json_object_get(r, "pid")), getpid());
        json_decref(r);
        conn_close(&c);

        T_CASE("idle client closed after the timeout");
        CHECK_INT(vmg_ctl_server_set_timeout_ms(s, 50), 0);
        CHECK_INT(vmg_ctl_server_set_timeout_ms(s, 0), -EINVAL);
        CHECK_INT(conn_open(path, &c), 0);
        send_all(s, &c, "{\"cmd\":", 7); /* half a request, then nothing */
        pump(s, &c, 0);
        CHECK(c.eof);
        CHECK_INT(count_lines(&c), 0);
        CHECK_INT(vmg_ctl_server_n_clients(s), 0);
        conn_close(&c);
        CHECK_INT(vmg_ctl_server_set_timeout_ms(s, VMG_CTL_DEFAULT_TIMEOUT_MS), 0);

        T_CASE("too many clients");
        struct conn many[VMG_CTL_MAX_CLIENTS];
        for (int i = 0; i < VMG_CTL_MAX_CLIENTS; i++) {
                CHECK_INT(conn_open(path, &many[i]), 0);
                pump(s, NULL, 0);
        }
        CHECK_INT(vmg_ctl_server_n_clients(s), VMG_CTL_MAX_CLIENTS);
        CHECK_INT(conn_open(path, &c), 0);
        pump(s, &c, 0);
        r = reply_line(&c, 0);
        CHECK_STR(json_string_value(json_object_get(r, "code")), "busy");
        CHECK(c.eof);
        json_decref(r);
        conn_close(&c);
        /* The others are still served. */
        send_all(s, &many[3], "{\"cmd\":\"ping\"}\n", 15);
        pump(s, &many[3], 1);
        CHECK_CONTAINS(many[3].buf, "\"pong\":true");
        for (int i = 0; i < VMG_CTL_MAX_CLIENTS; i++)
                conn_close(&many[i]);
        pump(s, NULL, 0);
        CHECK_INT(vmg_ctl_server_n_clients(s), 0);

        T_CASE("uid check: root refused when another uid is the allowed one");
        CHECK_INT(vmg_ctl_server_set_allowed_uid(s, 12345), 0);
        CHECK_INT(conn_open(path, &c), 0);
        send_all(s, &c, "{\"cmd\":\"ping\"}\n", 15);
        pump(s, &c, 0);
        r = reply_line(&c, 0);
        CHECK_STR(json_string_value(json_object_get(r, "code")), "permission_denied");
        CHECK_CONTAINS(json_string_value(json_object_get(r, "error")), "root only");
        CHECK(c.eof);
        json_decref(r);
        conn_close(&c);
        CHECK_INT(vmg_ctl_server_set_allowed_uid(s, 0), 0);

        vmg_ctl_server_free(s);
}

/* Runs fn in a child while the parent keeps the server dispatching; returns what the child
 * wrote to its pipe. */
static char *in_child(struct vmg_ctl_server *s, void (*fn)(int out, const char *path), const char *path) {
        int p[2];
        static char buf[65536];
        if (pipe(p) < 0)
                return NULL;
        pid_t pid = fork();
        if (pid == 0) {
                close(p[0]);
                fn(p[1], path);
                _exit(0);
        }
        close(p[1]);
        int status;
        for (int i = 0; i < 1000 && waitpid(pid, &status, WNOHANG) == 0; i++)
                pump(s, NULL, 0);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, WNOHANG);
        ssize_t n = read(p[0], buf, sizeof buf - 1);
        buf[n > 0 ? n : 0] = '\0';
        close(p[0]);
        return buf;
}

static void as_nobody(int out, const char *path) {
        json_t *req = json_pack("{s:s}", "cmd", "status"), *reply = NULL;
        if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0) {
                dprintf(out, "setuid failed");
                json_decref(req);
                return;
        }
        int r = vmg_ctl_call(path, req, 5000, &reply);
        if (r < 0)
                dprintf(out, "errno %d", -r);
        else
                dprintf(out, "%s", json_string_value(json_object_get(reply, "code")) ?: "no code");
        /* the child _exit()s, but valgrind's leak check (make valgrind) runs there too */
        json_decref(req);
        json_decref(reply);
}

static void call_status(int out, const char *path) {
        json_t *req = json_pack("{s:s}", "cmd", "status"), *reply = NULL;
        int r = vmg_ctl_call(path, req, 5000, &reply);
        if (r < 0)
                dprintf(out, "errno %d", -r);
        else
                dprintf(out, "%s", json_string_value(json_object_get(reply, "echo")) ?: "no echo");
        json_decref(req);
        json_decref(reply);
}

static void call_explain(int out, const char *path) {
        json_t *req = json_pack("{s:s, s:s}", "cmd", "explain", "vm", "6F1C2A8E-3B4D-4E5F-9A0B-1C2D3E4F5A6B");
        json_t *reply = NULL;
        int r = vmg_ctl_call(path, req, 5000, &reply);
        if (r < 0)
                dprintf(out, "errno %d", -r);
        else
                json_dumpfd(reply, out, JSON_COMPACT);
        json_decref(req);
        json_decref(reply);
}

static const struct vmg_policy *answer_policy;
static json_t *answer_handler(const json_t *req, void *ud) {
        (void) ud;
        return vmg_ctl_answer(req, json_loads(SNAP, 0, NULL), answer_policy);
}

static void test_clients(const char *dir, const char *path) {
        struct vmg_ctl_server *s = NULL;
        CHECK_INT(vmg_ctl_server_new(path, fake_handler, NULL, &s), 0);
        if (!s)
                return;
        T_CASE("vmg_ctl_call against the server");
        CHECK_STR(in_child(s, call_status, path), "status");

        T_CASE("non-root peer: the socket's mode keeps it out");
        if (geteuid() != 0) {
                fprintf(stderr, "not root: the nobody cases need root to setuid\n");
                CHECK_MSG(false, "%s", "this test runs as root (make check does)");
        } else {
                chmod(dir, 0755);
                char want[32];
                snprintf(want, sizeof want, "errno %d", EACCES);
                CHECK_STR(in_child(s, as_nobody, path), want);
                T_CASE("non-root peer past the mode: refused by its uid");
                /* A loosened mode (by hand, or a bind mount) still lets no one else in. */
                chmod(path, 0666);
                CHECK_STR(in_child(s, as_nobody, path), "permission_denied");
                chmod(path, 0600);
                chmod(dir, 0700);
        }
        vmg_ctl_server_free(s);

        T_CASE("explain end to end, by uuid in another case");
        struct vmg_tenant t = { .name = "acme" };
        t.rules[VMG_RES_DISK_WRITE_BPS] = (struct vmg_rule) { .noisy = true, .noisy_above = 40e6,
                                                              .noisy_for_ns = 5 * NSEC_PER_SEC,
                                                              .throttle_to = 20971520, .floor = 5242880,
                                                              .calm_for_ns = 30 * NSEC_PER_SEC };
        struct vmg_policy pol = { .host = { .min_hold_ns = 5 * NSEC_PER_SEC, .step_down = 0.5, .step_up = 1.5 },
                                  .tenants = &t, .n_tenants = 1 };
        answer_policy = &pol;
        CHECK_INT(vmg_ctl_server_new(path, answer_handler, NULL, &s), 0);
        json_t *r = json_loads(in_child(s, call_explain, path), 0, NULL);
        CHECK_INT(json_array_size(json_object_get(r, "vms")), 1);
        json_t *vm = json_array_get(json_object_get(r, "vms"), 0);
        CHECK_STR(json_string_value(json_object_get(vm, "name")), "web-1");
        CHECK_NEAR(json_number_value(json_object_get(json_object_get(json_object_get(json_object_get(vm, "policy"), "rules"),
                                                                     "disk_write"),
                                                     "calm_for_s")),
                   30, 1e-9);
        json_decref(r);
        vmg_ctl_server_free(s);
}

static void test_lifecycle(const char *dir) {
        char path[256], file[256];
        struct vmg_ctl_server *s = NULL, *s2 = NULL;
        struct stat st;
        snprintf(path, sizeof path, "%s/life.sock", dir);
        snprintf(file, sizeof file, "%s/plain", dir);

        T_CASE("socket created 0600");
        CHECK_INT(vmg_ctl_server_new(path, fake_handler, NULL, &s), 0);
        CHECK_INT(lstat(path, &st), 0);
        CHECK(S_ISSOCK(st.st_mode));
        CHECK_INT(st.st_mode & 07777, 0600);
        T_CASE("a second server on a live socket");
        CHECK_INT(vmg_ctl_server_new(path, fake_handler, NULL, &s2), -EADDRINUSE);
        CHECK(s2 == NULL);
        T_CASE("free unlinks");
        vmg_ctl_server_free(s);
        CHECK_INT(lstat(path, &st), -1);

        T_CASE("a stale socket file is replaced");
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        memcpy(sa.sun_path, path, strlen(path) < sizeof sa.sun_path ? strlen(path) : sizeof sa.sun_path - 1);
        CHECK_INT(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        close(fd); /* bound, never listened, now closed: what a killed daemon leaves */
        s = NULL;
        CHECK_INT(vmg_ctl_server_new(path, fake_handler, NULL, &s), 0);
        vmg_ctl_server_free(s);

        T_CASE("never replaces a file that is not a socket");
        FILE *f = fopen(file, "w");
        fputs("keep me", f);
        fclose(f);
        s = NULL;
        CHECK_INT(vmg_ctl_server_new(file, fake_handler, NULL, &s), -EEXIST);
        CHECK_INT(stat(file, &st), 0);
        CHECK_INT(st.st_size, 7);
        unlink(file);

        T_CASE("path too long");
        char longp[200];
        memset(longp, 'a', sizeof longp - 1);
        longp[0] = '/';
        longp[sizeof longp - 1] = '\0';
        CHECK_INT(vmg_ctl_server_new(longp, fake_handler, NULL, &s), -ENAMETOOLONG);

        T_CASE("free does not unlink a socket another server put there");
        CHECK_INT(vmg_ctl_server_new(path, fake_handler, NULL, &s), 0);
        unlink(path);
        CHECK_INT(vmg_ctl_server_new(path, fake_handler, NULL, &s2), 0);
        vmg_ctl_server_free(s);
        CHECK_INT(lstat(path, &st), 0);
        vmg_ctl_server_free(s2);
        CHECK(vmg_ctl_server_free(NULL) == NULL);
}

static void test_answer(void) {
        struct vmg_tenant t = { .name = "acme" };
        t.rules[VMG_RES_CPU] = (struct vmg_rule) { .cap = 2 };
        t.rules[VMG_RES_DISK_WRITE_BPS] = (struct vmg_rule) { .noisy = true, .noisy_above = 40e6,
                                                              .noisy_for_ns = 5 * NSEC_PER_SEC,
                                                              .throttle_to = 20971520, .floor = 5242880,
                                                              .calm_for_ns = 30 * NSEC_PER_SEC };
        struct vmg_policy pol = { .host = { .min_hold_ns = 5 * NSEC_PER_SEC, .step_down = 0.5, .step_up = 1.5 },
                                  .tenants = &t, .n_tenants = 1 };
        static const struct {
                const char *name, *req;
                bool with_policy;
                const char *code;   /* error code expected, or NULL */
                const char *vm;     /* the one guest expected, or NULL: all */
                bool has_policy;
        } cases[] = {
                { "status: whole snapshot", "{\"cmd\":\"status\"}", true, NULL, NULL, false },
                { "explain by name", "{\"cmd\":\"explain\",\"vm\":\"web-1\"}", true, NULL, "web-1", true },
                { "explain by uuid, upper case", "{\"cmd\":\"explain\",\"vm\":\"00000000-0000-0000-0000-000000000001\"}",
                  true, NULL, "idle", false },
                { "explain without policy", "{\"cmd\":\"explain\",\"vm\":\"web-1\"}", false, NULL, "web-1", false },
                { "names are exact", "{\"cmd\":\"explain\",\"vm\":\"WEB-1\"}", true, "no_such_vm", NULL, false },
                { "no vm", "{\"cmd\":\"explain\"}", true, "bad_request", NULL, false },
                { "empty vm", "{\"cmd\":\"explain\",\"vm\":\"\"}", true, "bad_request", NULL, false },
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                T_CASE(cases[i].name);
                json_t *req = json_loads(cases[i].req, 0, NULL);
                json_t *r = vmg_ctl_answer(req, json_loads(SNAP, 0, NULL), cases[i].with_policy ? &pol : NULL);
                const char *code = NULL;
                const char *err = vmg_ctl_reply_error(r, &code);
                if (cases[i].code) {
                        CHECK(err != NULL);
                        CHECK_STR(code, cases[i].code);
                } else {
                        CHECK(err == NULL);
                        json_t *vms = json_object_get(r, "vms");
                        CHECK_INT(json_array_size(vms), cases[i].vm ? 1 : 2);
                        if (cases[i].vm)
                                CHECK_STR(json_string_value(json_object_get(json_array_get(vms, 0), "name")), cases[i].vm);
                        CHECK_INT(json_object_get(json_array_get(vms, 0), "policy") != NULL, cases[i].has_policy);
                        char why[128];
                        CHECK_INT(vmg_ctl_check_snapshot(r, why, sizeof why), 0);
                }
                json_decref(r);
                json_decref(req);
        }
        T_CASE("unknown command: NULL, snapshot released");
        json_t *req = json_loads("{\"cmd\":\"reboot\"}", 0, NULL);
        CHECK(vmg_ctl_answer(req, json_loads(SNAP, 0, NULL), &pol) == NULL);
        json_decref(req);
        T_CASE("no snapshot: internal error");
        req = json_loads("{\"cmd\":\"status\"}", 0, NULL);
        json_t *r = vmg_ctl_answer(req, NULL, NULL);
        CHECK_STR(json_string_value(json_object_get(r, "code")), "internal");
        json_decref(r);
        json_decref(req);

        T_CASE("rules json");
        json_t *j = vmg_ctl_rules_json(&pol, "acme");
        json_t *dw = json_object_get(json_object_get(j, "rules"), "disk_write");
        CHECK_NEAR(json_number_value(json_object_get(dw, "noisy_above")), 40e6, 1e-6);
        CHECK_NEAR(json_number_value(json_object_get(dw, "for_s")), 5, 1e-9);
        CHECK_NEAR(json_number_value(json_object_get(dw, "throttle_to")), 20971520, 1e-6);
        CHECK_NEAR(json_number_value(json_object_get(dw, "floor")), 5242880, 1e-6);
        CHECK_NEAR(json_number_value(json_object_get(dw, "calm_for_s")), 30, 1e-9);
        CHECK(json_object_get(dw, "cap") == NULL);
        json_t *cpu = json_object_get(json_object_get(j, "rules"), "cpu");
        CHECK_NEAR(json_number_value(json_object_get(cpu, "cap")), 2, 1e-9);
        CHECK(json_object_get(cpu, "noisy_above") == NULL);
        CHECK(json_object_get(json_object_get(j, "rules"), "net_tx") == NULL);
        CHECK_NEAR(json_number_value(json_object_get(j, "step_up")), 1.5, 1e-9);
        CHECK_NEAR(json_number_value(json_object_get(j, "min_hold_s")), 5, 1e-9);
        json_decref(j);
        CHECK(vmg_ctl_rules_json(&pol, "globex") == NULL);
        CHECK(vmg_ctl_rules_json(&pol, NULL) == NULL);
        CHECK(vmg_ctl_rules_json(NULL, "acme") == NULL);
}

/* ---- --serve: the stand-in daemon for the integration test ---- */

static const char *serve_file;
static struct vmg_policy *serve_policy;
static volatile sig_atomic_t serve_stop;

static json_t *serve_handler(const json_t *req, void *ud) {
        (void) ud;
        json_t *snap = json_load_file(serve_file, 0, NULL);
        if (snap) {
                /* As the daemon would: the age of its last tick now, not when written. */
                struct stat st;
                if (stat(serve_file, &st) == 0) {
                        double age = difftime(time(NULL), st.st_mtime);
                        json_object_set_new(json_object_get(snap, "daemon"), "last_tick_age_seconds",
                                            json_real(age < 0 ? 0 : age));
                }
        }
        return vmg_ctl_answer(req, snap, serve_policy);
}

static void on_term(int sig) {
        (void) sig;
        serve_stop = 1;
}

static int serve(int argc, char **argv) {
        struct vmg_ctl_server *s = NULL;
        struct vmg_policy_error err;
        serve_file = argv[3];
        if (argc >= 6 && vmg_policy_load(argv[4], argv[5], &serve_policy, &err) < 0) {
                char buf[512];
                fprintf(stderr, "policy: %s\n", vmg_policy_error_format(&err, buf, sizeof buf));
                return 1;
        }
        if (vmg_ctl_server_new(argv[2], serve_handler, NULL, &s) < 0)
                return 1;
        signal(SIGTERM, on_term);
        signal(SIGINT, on_term);
        printf("serving %s\n", argv[2]);
        fflush(stdout);
        while (!serve_stop) {
                struct pollfd p = { .fd = vmg_ctl_server_fd(s), .events = POLLIN };
                if (poll(&p, 1, 200) > 0)
                        (void) vmg_ctl_server_dispatch(s);
        }
        vmg_ctl_server_free(s);
        vmg_policy_free(serve_policy);
        return 0;
}

int main(int argc, char **argv) {
        signal(SIGPIPE, SIG_IGN);
        if (argc >= 4 && strcmp(argv[1], "--serve") == 0)
                return serve(argc, argv);

        char dir[] = "/tmp/test_ctlsock.XXXXXX", path[128];
        if (!mkdtemp(dir)) {
                perror("mkdtemp");
                return 1;
        }
        snprintf(path, sizeof path, "%s/control.sock", dir);
        test_requests(path);
        test_clients(dir, path);
        test_lifecycle(dir);
        test_answer();
        unlink(path);
        rmdir(dir);
        return t_summary();
}
