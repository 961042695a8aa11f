/* check_vmguard's logic: threshold ranges, performance data, the three check modes on
 * snapshots (shaped like the daemon's real one, captured on this machine), and the UNKNOWN
 * cases of a run against missing, garbage-speaking and refusing servers. */
#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "controller/cli/ctlclient.h"
#include "tests/harness.h"

/* A real snapshot (vmguardd on this machine, one lab guest, dnsmasq running, unbound not). */
static const char *SAMPLE =
        "{\"version\":1,\"daemon\":{\"pid\":27399,\"version\":\"0.1\",\"ticks\":4,\"tick_seconds\":1.0,"
        "\"last_tick_duration_seconds\":0.0606535,\"last_tick_age_seconds\":0.0,\"dry_run\":false,\"errors_total\":0,"
        "\"actions_total\":{\"throttle\":0,\"tighten\":0,\"relax\":0,\"release\":0,\"cap\":0},\"libvirt_connected\":true,"
        "\"tenants\":2,\"guests_throttled\":0},\"host\":{\"psi_cpu_some\":0.094693,\"psi_io_some\":0.001106,"
        "\"psi_io_full\":0.000943,\"cpu_busy_frac\":0.457286,\"iowait_frac\":0.0,\"contended\":false,\"contention\":\"\"},"
        "\"services\":[{\"name\":\"dnsmasq\",\"match\":\"dnsmasq\",\"pids\":1,\"up\":true,\"healthy\":true,\"cpu_cores\":0.0,"
        "\"run_delay_avg_ms\":0.0405742,\"run_delay_frac\":0.000162297,\"blkio_delay_frac\":null,\"max_run_delay_ms\":10.0,"
        "\"run_delay_seconds_total\":0.00791655,\"cpu_seconds_total\":0.0},{\"name\":\"unbound\",\"match\":\"unbound.service\","
        "\"pids\":0,\"up\":false,\"healthy\":false,\"cpu_cores\":null,\"run_delay_avg_ms\":null,\"run_delay_frac\":null,"
        "\"blkio_delay_frac\":null,\"max_run_delay_ms\":20.0,\"run_delay_seconds_total\":0.0,\"cpu_seconds_total\":0.0}],"
        "\"vms\":[{\"name\":\"vmg-labtest-victim\",\"uuid\":\"f8688302-533a-40d9-88e3-3f44fe3edb2f\",\"tenant\":null,"
        "\"qemu_pid\":27231,\"throttled\":false,\"unmanaged\":false,\"usage\":{\"cpu_cores\":0.026673},\"resources\":{},"
        "\"sources\":\"cpu=cgroup-v2 disk=proc net=netlink\"}]}";

/* Three guests of two tenants, two throttled (the shape manager.c packs), a contended host. */
static const char *BUSY =
        "{\"version\":1,\"daemon\":{\"pid\":4242,\"version\":\"0.1\",\"ticks\":300,\"tick_seconds\":1.0,"
        "\"last_tick_duration_seconds\":0.05,\"last_tick_age_seconds\":0.4,\"dry_run\":false,\"errors_total\":2,"
        "\"actions_total\":{\"throttle\":2},\"libvirt_connected\":true,\"tenants\":2,\"guests_throttled\":2},"
        "\"host\":{\"contended\":true,\"contention\":\"dnsmasq run-queue delay 35ms > 10ms\"},"
        "\"services\":[{\"name\":\"dnsmasq\",\"match\":\"dnsmasq\",\"pids\":1,\"up\":true,\"healthy\":false,"
        "\"run_delay_avg_ms\":35.0,\"max_run_delay_ms\":10.0}],"
        "\"vms\":["
        "{\"name\":\"web-1\",\"uuid\":\"6f1c2a8e-3b4d-4e5f-9a0b-1c2d3e4f5a6b\",\"tenant\":\"acme\",\"qemu_pid\":100,"
        "\"throttled\":true,\"unmanaged\":false,\"throttled_for_s\":42.0,\"usage\":{},\"resources\":{\"disk_write\":"
        "{\"limit\":20971520.0,\"cap\":0.0,\"throttled\":true,\"usage\":20000000.0,\"suspect\":false,\"reason\":\"r\"}}},"
        "{\"name\":\"batch-7\",\"uuid\":\"00000000-0000-0000-0000-000000000007\",\"tenant\":\"globex\",\"qemu_pid\":101,"
        "\"throttled\":true,\"unmanaged\":false,\"throttled_for_s\":7.5,\"usage\":{},\"resources\":{\"cpu\":"
        "{\"limit\":0.5,\"cap\":1.5,\"throttled\":true,\"usage\":0.5,\"suspect\":true,\"reason\":\"r\"}}},"
        "{\"name\":\"web-2\",\"uuid\":\"00000000-0000-0000-0000-000000000002\",\"tenant\":\"acme\",\"qemu_pid\":102,"
        "\"throttled\":false,\"unmanaged\":true,\"usage\":{},\"resources\":{},\"error\":\"No such device\"}"
        "]}";

static json_t *load(const char *s) {
        json_t *j = json_loads(s, 0, NULL);
        if (!j) {
                fprintf(stderr, "test snapshot does not parse\n");
                exit(1);
        }
        return j;
}

/* Sets a value at "obj.key" (one level) in a copy of snapshot s. */
static json_t *with(const char *s, const char *obj, const char *key, json_t *v) {
        json_t *j = load(s);
        json_object_set_new(json_object_get(j, obj), key, v);
        return j;
}

static void test_ranges(void) {
        static const struct {
                const char *text;
                int ret;
                double alert[4];
                int n_alert;
                double quiet[4];
                int n_quiet;
        } cases[] = {
                { "10", 0, { -1, 10.5, 11 }, 3, { 0, 5, 10 }, 3 },
                { "10:", 0, { 9.99, 0, -5 }, 3, { 10, 11, 1e9 }, 3 },
                { "~:10", 0, { 10.01, 1e9 }, 2, { -1e9, 0, 10 }, 3 },
                { "10:20", 0, { 9, 21, 0 }, 3, { 10, 15, 20 }, 3 },
                { "@10:20", 0, { 10, 15, 20 }, 3, { 9.99, 20.01 }, 2 },
                { "@~:0", 0, { -3, 0 }, 2, { 0.1 }, 1 },
                { "0", 0, { 1, 0.001 }, 2, { 0 }, 1 },
                { "-5:-1", 0, { 0, -6 }, 2, { -5, -3, -1 }, 3 },
                { "1.5:2.5", 0, { 1.4, 2.6 }, 2, { 1.5, 2 }, 2 },
                { "", -EINVAL, {}, 0, {}, 0 },
                { "abc", -EINVAL, {}, 0, {}, 0 },
                { "20:10", -EINVAL, {}, 0, {}, 0 },
                { "1e3", -EINVAL, {}, 0, {}, 0 },
                { "10:x", -EINVAL, {}, 0, {}, 0 },
                { "@", -EINVAL, {}, 0, {}, 0 },
                { "~", -EINVAL, {}, 0, {}, 0 },
                { "nan", -EINVAL, {}, 0, {}, 0 },
                { "10::20", -EINVAL, {}, 0, {}, 0 },
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                struct vmg_range r = {};
                T_CASE(cases[i].text);
                CHECK_INT(vmg_range_parse(cases[i].text, &r), cases[i].ret);
                if (cases[i].ret < 0) {
                        CHECK(!r.set);
                        continue;
                }
                CHECK_STR(r.text, cases[i].text);
                for (int k = 0; k < cases[i].n_alert; k++)
                        CHECK_MSG(vmg_range_alert(&r, cases[i].alert[k]), "%g should alert", cases[i].alert[k]);
                for (int k = 0; k < cases[i].n_quiet; k++)
                        CHECK_MSG(!vmg_range_alert(&r, cases[i].quiet[k]), "%g should not alert", cases[i].quiet[k]);
        }
        T_CASE("unset range never alerts");
        struct vmg_range unset = {};
        CHECK(!vmg_range_alert(&unset, 1e9));
        CHECK(!vmg_range_alert(NULL, 1));

        T_CASE("state: critical beats warning");
        struct vmg_range w, c;
        CHECK_INT(vmg_range_parse("5", &w), 0);
        CHECK_INT(vmg_range_parse("10", &c), 0);
        CHECK_INT(vmg_range_state(&w, &c, 3), VMG_PLUGIN_OK);
        CHECK_INT(vmg_range_state(&w, &c, 5), VMG_PLUGIN_OK);
        CHECK_INT(vmg_range_state(&w, &c, 7), VMG_PLUGIN_WARNING);
        CHECK_INT(vmg_range_state(&w, &c, 11), VMG_PLUGIN_CRITICAL);
        CHECK_INT(vmg_range_state(NULL, &c, 7), VMG_PLUGIN_OK);
}

static void test_perfdata(void) {
        static const double zero = 0, hundred = 100;
        static const struct {
                const char *name;
                const char *label;
                double value;
                const char *uom, *warn, *crit;
                const double *min, *max;
                const char *want;
        } cases[] = {
                { "full", "last_tick_age", 0.25, "s", "3", "10", &zero, NULL, "last_tick_age=0.25s;3;10;0" },
                { "all fields", "throttled", 2, NULL, "1", "3", &zero, &hundred, "throttled=2;1;3;0;100" },
                { "trailing empties dropped", "errors", 7, "c", NULL, NULL, NULL, NULL, "errors=7c" },
                { "inner empties kept", "x", 1, NULL, NULL, "5", NULL, NULL, "x=1;;5" },
                { "space quoted", "run delay", 1, "ms", NULL, NULL, NULL, NULL, "'run delay'=1ms" },
                { "equals quoted", "a=b", 1, NULL, NULL, NULL, NULL, NULL, "'a=b'=1" },
                { "quote doubled", "it's", 1, NULL, NULL, NULL, NULL, NULL, "'it''s'=1" },
                { "no exponent (small)", "tiny", 1e-7, "s", NULL, NULL, NULL, NULL, "tiny=0s" },
                { "no exponent (big)", "big", 12345678901.5, NULL, NULL, NULL, NULL, NULL, "big=12345678901.5" },
                { "rounding to 6 places", "r", 0.0405742, "ms", NULL, NULL, NULL, NULL, "r=0.040574ms" },
                { "negative zero", "z", -0.0, NULL, NULL, NULL, NULL, NULL, "z=0" },
                { "unknown value: U, no unit", "u", NAN, "ms", NULL, "20", &zero, NULL, "u=U;;20;0" },
                { "range text as given", "t", 4, NULL, "@10:20", "~:30", NULL, NULL, "t=4;@10:20;~:30" },
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                char buf[256] = "";
                T_CASE(cases[i].name);
                CHECK_INT(vmg_perfdata_append(buf, sizeof buf, cases[i].label, cases[i].value, cases[i].uom,
                                              cases[i].warn, cases[i].crit, cases[i].min, cases[i].max),
                          0);
                CHECK_STR(buf, cases[i].want);
        }
        T_CASE("items separated by one space");
        char buf[64] = "";
        CHECK_INT(vmg_perfdata_append(buf, sizeof buf, "a", 1, NULL, NULL, NULL, NULL, NULL), 0);
        CHECK_INT(vmg_perfdata_append(buf, sizeof buf, "b", 2, NULL, NULL, NULL, NULL, NULL), 0);
        CHECK_STR(buf, "a=1 b=2");
        T_CASE("no room: buffer unchanged");
        char small[12] = "a=1";
        CHECK_INT(vmg_perfdata_append(small, sizeof small, "longlabel", 2, NULL, NULL, NULL, NULL, NULL), -ENOBUFS);
        CHECK_STR(small, "a=1");
}

struct eval_case {
        const char *name;
        enum vmg_check_mode mode;
        json_t *snap;
        const char *warn, *crit, *tenant;
        double extra_age;
        int want;
        const char *contains[3];
};

static void run_eval(const struct eval_case *c) {
        struct vmg_check_opts o = { .mode = c->mode, .tenant = c->tenant };
        char out[8192];
        T_CASE(c->name);
        if (c->warn)
                CHECK_INT(vmg_range_parse(c->warn, &o.warn), 0);
        if (c->crit)
                CHECK_INT(vmg_range_parse(c->crit, &o.crit), 0);
        int st = vmg_check_evaluate(&o, c->snap, c->extra_age, out, sizeof out);
        CHECK_MSG(st == c->want, "state %d, expected %d: %s", st, c->want, out);
        char prefix[64];
        snprintf(prefix, sizeof prefix, "VMGUARD %s - ", vmg_plugin_state_name(c->want));
        CHECK_MSG(strncmp(out, prefix, strlen(prefix)) == 0, "\"%s\" does not start with \"%s\"", out, prefix);
        /* One status line: the first newline ends it, and the perfdata sits on it. */
        CHECK(strchr(out, '\n') != NULL);
        for (int k = 0; k < 3 && c->contains[k]; k++)
                CHECK_CONTAINS(out, c->contains[k]);
        json_decref(c->snap);
}

static void test_evaluate(void) {
        struct eval_case cases[] = {
                /* daemon */
                { "daemon fresh", VMG_CHECK_DAEMON, load(SAMPLE), NULL, NULL, NULL, 0, VMG_PLUGIN_OK,
                  { "last tick 0.0 s ago", "| last_tick_age=0s;3;10;0", "errors=0c" } },
                { "daemon 4 ticks late: default warning", VMG_CHECK_DAEMON,
                  with(SAMPLE, "daemon", "last_tick_age_seconds", json_real(4)), NULL, NULL, NULL, 0,
                  VMG_PLUGIN_WARNING, { "last_tick_age=4s;3;10;0" } },
                { "daemon 12 ticks late: default critical", VMG_CHECK_DAEMON,
                  with(SAMPLE, "daemon", "last_tick_age_seconds", json_real(12)), NULL, NULL, NULL, 0,
                  VMG_PLUGIN_CRITICAL, {} },
                { "defaults follow the tick", VMG_CHECK_DAEMON, with(SAMPLE, "daemon", "tick_seconds", json_real(5)),
                  NULL, NULL, NULL, 0, VMG_PLUGIN_OK, { ";15;50;0" } },
                { "daemon -w 1 -c 2", VMG_CHECK_DAEMON, with(SAMPLE, "daemon", "last_tick_age_seconds", json_real(1.5)),
                  "1", "2", NULL, 0, VMG_PLUGIN_WARNING, { "last_tick_age=1.5s;1;2;0" } },
                { "status file age added", VMG_CHECK_DAEMON, load(SAMPLE), NULL, NULL, NULL, 20, VMG_PLUGIN_CRITICAL,
                  { "last tick 20.0 s ago" } },
                { "no tick yet", VMG_CHECK_DAEMON, with(SAMPLE, "daemon", "ticks", json_integer(0)), NULL, NULL, NULL,
                  0, VMG_PLUGIN_WARNING, { "not ticked yet" } },
                { "libvirt lost", VMG_CHECK_DAEMON, with(SAMPLE, "daemon", "libvirt_connected", json_false()), NULL,
                  NULL, NULL, 0, VMG_PLUGIN_WARNING, { "libvirt disconnected" } },
                /* services */
                { "one service down", VMG_CHECK_SERVICES, load(SAMPLE), NULL, NULL, NULL, 0, VMG_PLUGIN_CRITICAL,
                  { "unbound down", "dnsmasq_run_delay=0.040574ms;;10;0", "services_down=1;;;0;2" } },
                { "all up and healthy", VMG_CHECK_SERVICES,
                  json_loads("{\"version\":1,\"daemon\":{},\"host\":{},\"vms\":[],\"services\":[{\"name\":\"dnsmasq\","
                             "\"up\":true,\"healthy\":true,\"run_delay_avg_ms\":0.5,\"max_run_delay_ms\":10}]}",
                             0, NULL),
                  NULL, NULL, NULL, 0, VMG_PLUGIN_OK, { "1 protected service(s) fine", "services_down=0;;;0;1" } },
                { "healthy but over -w", VMG_CHECK_SERVICES,
                  json_loads("{\"version\":1,\"daemon\":{},\"host\":{},\"vms\":[],\"services\":[{\"name\":\"dnsmasq\","
                             "\"up\":true,\"healthy\":true,\"run_delay_avg_ms\":0.5}]}",
                             0, NULL),
                  "0.2", "5", NULL, 0, VMG_PLUGIN_WARNING, { "dnsmasq slow", "dnsmasq_run_delay=0.5ms;0.2;5;0" } },
                { "unhealthy is critical", VMG_CHECK_SERVICES, load(BUSY), NULL, NULL, NULL, 0, VMG_PLUGIN_CRITICAL,
                  { "dnsmasq unhealthy (run delay 35.00 ms, limit 10 ms)" } },
                { "up, not sampled yet", VMG_CHECK_SERVICES,
                  json_loads("{\"version\":1,\"daemon\":{},\"host\":{},\"vms\":[],\"services\":[{\"name\":\"dnsmasq\","
                             "\"up\":true,\"healthy\":false,\"run_delay_avg_ms\":null}]}",
                             0, NULL),
                  NULL, NULL, NULL, 0, VMG_PLUGIN_OK, { "not sampled yet", "dnsmasq_run_delay=U" } },
                { "no services", VMG_CHECK_SERVICES, with(SAMPLE, "daemon", "x", json_null()), NULL, NULL, NULL, 0,
                  VMG_PLUGIN_CRITICAL, {} },
                /* throttled */
                { "none throttled", VMG_CHECK_THROTTLED, load(SAMPLE), NULL, NULL, NULL, 0, VMG_PLUGIN_OK,
                  { "0 of 1 guest(s) throttled", "throttled=0;;;0;1", "longest_throttle=0s;;;0" } },
                { "two throttled, -w 1 -c 3, one unmanaged", VMG_CHECK_THROTTLED, load(BUSY), "1", "3", NULL, 0,
                  VMG_PLUGIN_WARNING, { "web-1 for 42 s (disk_write)", "throttled=2;1;3;0;3", "longest_throttle=42s" } },
                { "-c 1 makes two critical", VMG_CHECK_THROTTLED, load(BUSY), NULL, "1", NULL, 0, VMG_PLUGIN_CRITICAL,
                  { "host contended: dnsmasq run-queue delay 35ms > 10ms" } },
                { "tenant globex only", VMG_CHECK_THROTTLED, load(BUSY), "0", NULL, "globex", 0, VMG_PLUGIN_WARNING,
                  { "1 of 1 guest(s) of tenant globex throttled", "batch-7 for 8 s (cpu)", "longest_throttle=7.5s" } },
                { "unmanaged guest warns", VMG_CHECK_THROTTLED, load(BUSY), NULL, NULL, "acme", 0, VMG_PLUGIN_WARNING,
                  { "1 unmanaged after errors: web-2", "unmanaged=1;;;0;2" } },
                { "tenant with no guests", VMG_CHECK_THROTTLED, load(BUSY), "0", NULL, "initech", 0, VMG_PLUGIN_OK,
                  { "0 of 0 guest(s) of tenant initech" } },
                /* garbage */
                { "wrong version", VMG_CHECK_DAEMON, with(SAMPLE, "daemon", "x", json_null()), NULL, NULL, NULL, 0,
                  VMG_PLUGIN_UNKNOWN, {} },
                { "not a snapshot", VMG_CHECK_DAEMON, json_loads("{\"error\":\"x\"}", 0, NULL), NULL, NULL, NULL, 0,
                  VMG_PLUGIN_UNKNOWN, { "no protocol \"version\"" } },
                { "no vms", VMG_CHECK_THROTTLED, json_loads("{\"version\":1,\"daemon\":{},\"host\":{},\"services\":[]}", 0, NULL),
                  NULL, NULL, NULL, 0, VMG_PLUGIN_UNKNOWN, { "lacks" } },
        };
        /* Two cases need edits "with" cannot express. */
        json_object_set_new(cases[13].snap, "services", json_array());
        cases[13].want = VMG_PLUGIN_OK;
        cases[13].contains[0] = "no protected services configured";
        json_object_set_new(cases[20].snap, "version", json_integer(2));
        cases[20].contains[0] = "protocol version 2";
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
                run_eval(&cases[i]);

        T_CASE("verbose lists every guest");
        struct vmg_check_opts o = { .mode = VMG_CHECK_THROTTLED, .verbose = 1 };
        char out[8192];
        json_t *j = load(BUSY);
        vmg_check_evaluate(&o, j, 0, out, sizeof out);
        CHECK_CONTAINS(out, "\nweb-1 (tenant acme): throttled for 42 s: disk_write\n");
        CHECK_CONTAINS(out, "\nbatch-7 (tenant globex)");
        json_decref(j);
}

static void test_helpers(void) {
        static const struct { double age, tick; bool stale; } st[] = {
                { 0, 1, false }, { 3, 1, false }, { 3.01, 1, true }, { 14, 5, false }, { 16, 5, true },
                { 2, 0, false }, { 4, 0, true }, { 4, NAN, true },
        };
        for (size_t i = 0; i < sizeof st / sizeof st[0]; i++) {
                char name[64];
                snprintf(name, sizeof name, "stale age %g tick %g", st[i].age, st[i].tick);
                T_CASE(name);
                CHECK_INT(vmg_ctl_is_stale(st[i].age, st[i].tick), st[i].stale);
        }
        json_t *j = load(BUSY);
        T_CASE("find vm by name, uuid any case");
        CHECK_INT(json_integer_value(json_object_get(vmg_ctl_find_vm(j, "web-2"), "qemu_pid")), 102);
        CHECK_STR(json_string_value(json_object_get(vmg_ctl_find_vm(j, "6F1C2A8E-3B4D-4E5F-9A0B-1C2D3E4F5A6B"), "name")),
                  "web-1");
        CHECK(vmg_ctl_find_vm(j, "web") == NULL);
        CHECK(vmg_ctl_find_vm(j, NULL) == NULL);
        json_decref(j);
        T_CASE("mode names");
        enum vmg_check_mode m;
        CHECK_INT(vmg_check_mode_parse("services", &m), 0);
        CHECK_INT(m, VMG_CHECK_SERVICES);
        CHECK_INT(vmg_check_mode_parse("throttled", &m), 0);
        CHECK_INT(m, VMG_CHECK_THROTTLED);
        CHECK_INT(vmg_check_mode_parse("Daemon", &m), -EINVAL);
        T_CASE("reply error");
        json_t *e = json_loads("{\"error\":\"no\",\"code\":\"no_such_vm\"}", 0, NULL);
        const char *code = NULL;
        CHECK_STR(vmg_ctl_reply_error(e, &code), "no");
        CHECK_STR(code, "no_such_vm");
        CHECK(vmg_ctl_reply_error(j = load(SAMPLE), NULL) == NULL);
        json_decref(j);
        json_decref(e);
}

/* A fake daemon in a child: accepts one client, reads its line, answers `answer` verbatim
 * (NULL: says nothing and waits to be killed), exits. The socket listens before the fork,
 * so the client never races the child. */
static pid_t fake_server(const char *path, const char *answer) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
        unlink(path);
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen(fd, 4) < 0) {
                perror("fake server");
                exit(1);
        }
        pid_t pid = fork();
        if (pid == 0) {
                int c = accept(fd, NULL, NULL);
                char buf[4096];
                ssize_t n = c >= 0 ? read(c, buf, sizeof buf) : -1;
                (void) n;
                if (!answer)
                        pause();
                (void) !write(c, answer, strlen(answer));
                _exit(0);
        }
        close(fd);
        return pid;
}

static void reap(pid_t pid) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
}

static void test_run(void) {
        char dir[] = "/tmp/test_check_vmguard.XXXXXX", sock[128], file[128], out[8192];
        struct vmg_check_opts o = { .mode = VMG_CHECK_DAEMON };
        if (!mkdtemp(dir)) {
                perror("mkdtemp");
                exit(1);
        }
        snprintf(sock, sizeof sock, "%s/control.sock", dir);
        snprintf(file, sizeof file, "%s/status.json", dir);

        T_CASE("run: no socket");
        CHECK_INT(vmg_check_run(&o, sock, NULL, 2000, out, sizeof out), VMG_PLUGIN_UNKNOWN);
        CHECK_CONTAINS(out, "VMGUARD UNKNOWN - cannot reach vmguardd at");
        CHECK_CONTAINS(out, "No such file or directory");

        static const struct {
                const char *name, *answer;
                int want;
                const char *contains;
        } servers[] = {
                { "run: garbage", "garbage\n", VMG_PLUGIN_UNKNOWN, "answered garbage" },
                { "run: JSON but not an object", "[1,2]\n", VMG_PLUGIN_UNKNOWN, "answered garbage" },
                { "run: closes without a word", "", VMG_PLUGIN_UNKNOWN, "answered garbage" },
                { "run: refuses", "{\"error\":\"permission denied: root only\",\"code\":\"permission_denied\"}\n",
                  VMG_PLUGIN_UNKNOWN, "refused: permission denied" },
                { "run: wrong version", "{\"version\":7,\"daemon\":{},\"host\":{},\"services\":[],\"vms\":[]}\n",
                  VMG_PLUGIN_UNKNOWN, "protocol version 7" },
                { "run: real answer", NULL, VMG_PLUGIN_OK, "VMGUARD OK - vmguardd pid 27399" },
                { "run: silent server times out", NULL, VMG_PLUGIN_UNKNOWN, "did not answer within 300 ms" },
        };
        for (size_t i = 0; i < sizeof servers / sizeof servers[0]; i++) {
                char answer[8192];
                const char *a = servers[i].answer;
                bool silent = !a && servers[i].want == VMG_PLUGIN_UNKNOWN;
                if (!a && !silent) {
                        snprintf(answer, sizeof answer, "%s\n", SAMPLE);
                        a = answer;
                }
                T_CASE(servers[i].name);
                pid_t pid = fake_server(sock, silent ? NULL : a);
                int st = vmg_check_run(&o, sock, NULL, silent ? 300 : 5000, out, sizeof out);
                CHECK_MSG(st == servers[i].want, "state %d: %s", st, out);
                CHECK_CONTAINS(out, servers[i].contains);
                reap(pid);
        }
        unlink(sock);

        T_CASE("run: status file missing");
        CHECK_INT(vmg_check_run(&o, sock, file, 1000, out, sizeof out), VMG_PLUGIN_UNKNOWN);
        CHECK_CONTAINS(out, "cannot read");
        T_CASE("run: status file garbage");
        FILE *f = fopen(file, "w");
        fputs("not json", f);
        fclose(f);
        CHECK_INT(vmg_check_run(&o, sock, file, 1000, out, sizeof out), VMG_PLUGIN_UNKNOWN);
        CHECK_CONTAINS(out, "not a vmguard status file");
        T_CASE("run: fresh status file");
        f = fopen(file, "w");
        fputs(SAMPLE, f);
        fclose(f);
        CHECK_INT(vmg_check_run(&o, sock, file, 1000, out, sizeof out), VMG_PLUGIN_OK);
        T_CASE("run: status file a minute old");
        struct timespec old[2] = { { .tv_sec = time(NULL) - 60 }, { .tv_sec = time(NULL) - 60 } };
        CHECK_INT(utimensat(AT_FDCWD, file, old, 0), 0);
        CHECK_INT(vmg_check_run(&o, sock, file, 1000, out, sizeof out), VMG_PLUGIN_CRITICAL);
        /* The wall clock stepped back an hour after the last write: a dead daemon's file stays
         * "from the future" and must not read as fresh; a live daemon rewrites it within a
         * tick. */
        T_CASE("run: status file from the future, never rewritten");
        struct timespec ahead[2] = { { .tv_sec = time(NULL) + 3600 }, { .tv_sec = time(NULL) + 3600 } };
        CHECK_INT(utimensat(AT_FDCWD, file, ahead, 0), 0);
        CHECK_INT(vmg_check_run(&o, sock, file, 1000, out, sizeof out), VMG_PLUGIN_CRITICAL);
        CHECK_CONTAINS(out, "dated in the future");
        /* "... rewritten by a live daemon" (the file rewritten within the two ticks
         * vmg_check_run waits) is a real time bound, so it is not a unit case: it belongs
         * with the live daemon in tests/integration (test_clock.sh steps the clock back under
         * a running vmguardd). */
        T_CASE("fetch: a status file from the future, never rewritten, is stale");
        {
                struct vmg_ctl_view fv = {};
                json_t *freq = json_pack("{s:s}", "cmd", "status");
                CHECK_INT(utimensat(AT_FDCWD, file, ahead, 0), 0);
                CHECK_INT(vmg_ctl_fetch(sock, dir, freq, 1000, &fv), 0);
                CHECK(fv.from_file && fv.stale);
                vmg_ctl_view_done(&fv);
                json_decref(freq);
        }
        old[0].tv_sec = old[1].tv_sec = time(NULL) - 60;
        CHECK_INT(utimensat(AT_FDCWD, file, old, 0), 0);

        T_CASE("fetch: falls back to the status file, stale after 3 ticks");
        struct vmg_ctl_view v = {};
        json_t *req = json_pack("{s:s}", "cmd", "status");
        CHECK_INT(vmg_ctl_fetch(sock, dir, req, 1000, &v), 0);
        CHECK(v.from_file);
        CHECK_INT(v.socket_error, -ENOENT);
        CHECK(v.stale);
        CHECK_NEAR(v.file_age_s, 60, 5);
        vmg_ctl_view_done(&v);
        CHECK_INT(utimensat(AT_FDCWD, file, NULL, 0), 0);
        CHECK_INT(vmg_ctl_fetch(sock, dir, req, 1000, &v), 0);
        CHECK(v.from_file && !v.stale);
        vmg_ctl_view_done(&v);
        T_CASE("fetch: garbage from the daemon is not hidden behind the file");
        pid_t pid = fake_server(sock, "garbage\n");
        CHECK_INT(vmg_ctl_fetch(sock, dir, req, 5000, &v), -EBADMSG);
        reap(pid);
        T_CASE("fetch: a refused client reads the file");
        pid = fake_server(sock, "{\"error\":\"no\",\"code\":\"permission_denied\"}\n");
        CHECK_INT(vmg_ctl_fetch(sock, dir, req, 5000, &v), 0);
        CHECK(v.from_file);
        CHECK_INT(v.socket_error, -EPERM);
        vmg_ctl_view_done(&v);
        reap(pid);
        unlink(sock);
        unlink(file);
        T_CASE("fetch: neither socket nor file");
        CHECK_INT(vmg_ctl_fetch(sock, dir, req, 1000, &v), -ENOENT);
        json_decref(req);
        rmdir(dir);
}

int main(void) {
        signal(SIGPIPE, SIG_IGN);
        test_ranges();
        test_perfdata();
        test_evaluate();
        test_helpers();
        test_run();
        return t_summary();
}
