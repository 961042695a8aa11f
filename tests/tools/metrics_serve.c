/* Test aid: serves a snapshot JSON file on /metrics through the real httpd module and an
 * sd-event loop, as vmguardd does. The file is re-read and published every second (as
 * vmguardd publishes at each tick), so a test can point it at a running vmguardd's
 * STATE_DIR/status.json.
 *
 *   metrics_serve --listen 127.0.0.1:0 --snapshot FILE [--textfile OUT.prom]
 *
 * Prints "port N" on stdout once listening; SIGTERM or SIGINT end it. With --textfile it
 * writes OUT.prom once and exits. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-event.h>

#include "common/log.h"
#include "controller/daemon/httpd.h"
#include "controller/daemon/metrics.h"

static json_t *load_snapshot(const char *userdata) {
        json_error_t err;
        json_t *j = json_load_file(userdata, 0, &err);
        if (!j)
                log_warning("metrics_serve: %s:%d: %s", (const char *) userdata, err.line, err.text);
        return j;
}

struct serve {
        const char *file;
        struct vmg_httpd *h;
};

static int publish(sd_event_source *s, uint64_t usec, void *userdata) {
        struct serve *sv = userdata;
        json_t *j = load_snapshot(sv->file);
        if (j)
                (void) vmg_httpd_publish(sv->h, j);
        json_decref(j);
        if (!s)
                return 0;
        (void) sd_event_source_set_time(s, usec + 1000000);
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "listen", required_argument, NULL, 'l' },
                { "snapshot", required_argument, NULL, 's' },
                { "textfile", required_argument, NULL, 't' },
                {},
        };
        const char *addr = NULL, *file = NULL, *textfile = NULL;
        int c;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                switch (c) {
                case 'l': addr = optarg; break;
                case 's': file = optarg; break;
                case 't': textfile = optarg; break;
                default: return 2;
                }
        }
        if (!file) {
                fprintf(stderr, "usage: metrics_serve [--listen ADDR:PORT] --snapshot FILE [--textfile OUT.prom]\n");
                return 2;
        }
        if (textfile) {
                json_t *j = load_snapshot(file);
                if (!j)
                        return 1;
                int r = vmg_metrics_write_textfile(j, textfile);
                json_decref(j);
                return r < 0 ? 1 : 0;
        }
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);

        sd_event *ev = NULL;
        struct vmg_httpd *h = NULL;
        int r = sd_event_new(&ev);
        if (r < 0)
                goto out;
        if ((r = sd_event_add_signal(ev, NULL, SIGTERM, NULL, NULL)) < 0 ||
            (r = sd_event_add_signal(ev, NULL, SIGINT, NULL, NULL)) < 0)
                goto out;
        r = vmg_httpd_new(addr, &h);
        if (r < 0)
                goto out;
        struct serve sv = { file, h };
        (void) publish(NULL, 0, &sv);
        uint64_t now;
        if ((r = sd_event_now(ev, CLOCK_MONOTONIC, &now)) < 0 ||
            (r = sd_event_add_time(ev, NULL, CLOCK_MONOTONIC, now + 1000000, 0, publish, &sv)) < 0)
                goto out;
        r = vmg_httpd_attach(h, ev);
        if (r < 0)
                goto out;
        printf("port %u\n", vmg_httpd_port(h));
        fflush(stdout);
        r = sd_event_loop(ev);
out:
        if (r < 0)
                log_error_errno(r, "metrics_serve: %m");
        vmg_httpd_free(h);
        sd_event_unref(ev);
        return r < 0 ? 1 : 0;
}
