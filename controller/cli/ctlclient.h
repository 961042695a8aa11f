/* The control socket's client side, shared by `vmguard status|explain` and check_vmguard:
 * one request/reply exchange with a deadline, the fallback to STATE_DIR/status.json, and
 * the monitoring-plugin pieces (threshold ranges, performance data, the three check modes)
 * as pure functions on a snapshot so they are tested without a daemon. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* A status file older than this many ticks means the daemon is not running: it rewrites
 * the file every tick, and one slow tick or two should not cry wolf. */
#define VMG_CTL_STALE_TICKS 3
/* Replies bigger than this are garbage, not a snapshot (about 1.5 KiB per guest). */
#define VMG_CTL_MAX_REPLY (64u << 20)

/* Connects to the socket at path, sends request as one line and reads one reply line,
 * all within timeout_ms. Returns 0 with *ret owning the reply (which may be an error reply:
 * see vmg_ctl_reply_error), or -errno: -ENOENT/-ECONNREFUSED (no daemon there), -EACCES
 * (the socket's mode keeps us out), -ETIMEDOUT, -EBADMSG (reply is not one JSON object, or
 * the connection closed before a whole line), -EMSGSIZE (reply over VMG_CTL_MAX_REPLY). */
int vmg_ctl_call(const char *path, const json_t *request, unsigned timeout_ms, json_t **ret);

/* For an error reply ({"error": "..."}) returns its message and sets *code (optional) to
 * its "code" ("" when absent); returns NULL for a normal reply. */
const char *vmg_ctl_reply_error(const json_t *reply, const char **code);

/* Checks that reply is a snapshot this client understands ("version" 1 with "daemon",
 * "host", "services" and "vms"). Returns 0, or -EPROTO with the reason in why. */
int vmg_ctl_check_snapshot(const json_t *reply, char *why, size_t len);

/* The guest whose name (exact) or uuid (case-insensitive) is id, borrowed from snap, or
 * NULL. */
json_t *vmg_ctl_find_vm(const json_t *snap, const char *id);

/* True when a status file age_s seconds old, written by a daemon ticking every tick_s
 * seconds, is older than VMG_CTL_STALE_TICKS ticks (tick_s <= 0 counts as 1 s). */
bool vmg_ctl_is_stale(double age_s, double tick_s);

/* What status/explain show, and where it came from. */
struct vmg_ctl_view {
        json_t *reply;     /* owned: the snapshot (or the daemon's error reply) */
        bool from_file;    /* the socket failed; reply was read from the status file */
        int socket_error;  /* -errno of the socket attempt when from_file */
        double file_age_s; /* age of the status file by its mtime, when from_file */
        bool stale;        /* from_file and older than VMG_CTL_STALE_TICKS ticks */
        char file[512];
};

/* Asks the daemon (request over socket_path); when the socket cannot be reached (-ENOENT,
 * -ECONNREFUSED, -EACCES, -ETIMEDOUT) reads state_dir/status.json instead, the snapshot
 * "status" would have returned. Returns 0 with *ret filled (release with
 * vmg_ctl_view_done), or -errno when neither worked (the socket's error; the file's
 * -ENOENT/-EBADMSG when the socket had none to give). */
int vmg_ctl_fetch(const char *socket_path, const char *state_dir, const json_t *request,
                  unsigned timeout_ms, struct vmg_ctl_view *ret);
void vmg_ctl_view_done(struct vmg_ctl_view *v);

/* ---- Monitoring-plugin helpers (monitoring-plugins development guidelines) ---- */

enum { VMG_PLUGIN_OK = 0, VMG_PLUGIN_WARNING = 1, VMG_PLUGIN_CRITICAL = 2, VMG_PLUGIN_UNKNOWN = 3 };
/* "OK", "WARNING", "CRITICAL", "UNKNOWN" (anything else: UNKNOWN). */
const char *vmg_plugin_state_name(int state);

/* A threshold range "[@]start:end": "10" alerts outside 0..10, "10:" below 10, "~:10" above
 * 10, "10:20" outside 10..20, "@10:20" inside 10..20 (ends included). */
struct vmg_range {
        bool set;
        bool inside;           /* '@': alert inside the range */
        bool no_start, no_end; /* -infinity ("~") / +infinity (empty end) */
        double start, end;
        char text[64];         /* as given, for performance data */
};
/* Parses s into *ret. Returns 0, or -EINVAL (empty, not numbers, start > end, too long). */
int vmg_range_parse(const char *s, struct vmg_range *ret);
/* True when value triggers the range (false when the range is not set). */
bool vmg_range_alert(const struct vmg_range *r, double value);
/* CRITICAL when crit alerts, else WARNING when warn alerts, else OK. */
int vmg_range_state(const struct vmg_range *warn, const struct vmg_range *crit, double value);

/* Appends one performance data item "'label'=value[uom];warn;crit;min;max" (separated from
 * what buf holds by a space; label quoted when it needs it, ' doubled; trailing empty
 * fields dropped; numbers without exponents). warn/crit/min/max may be NULL. Returns 0 or
 * -ENOBUFS (buf unchanged). */
int vmg_perfdata_append(char *buf, size_t len, const char *label, double value, const char *uom,
                        const char *warn, const char *crit, const double *min, const double *max);

enum vmg_check_mode { VMG_CHECK_DAEMON, VMG_CHECK_SERVICES, VMG_CHECK_THROTTLED };
/* "daemon", "services", "throttled" -> mode; returns 0 or -EINVAL. */
int vmg_check_mode_parse(const char *s, enum vmg_check_mode *ret);

struct vmg_check_opts {
        enum vmg_check_mode mode;
        struct vmg_range warn, crit; /* .set false: the mode's default */
        const char *tenant;          /* throttled: only this tenant's guests */
        int verbose;                 /* >= 1: a line per service or guest after the first */
};

/* Judges a snapshot; extra_age_s is added to the daemon's last tick age (the status file's
 * own age when the snapshot came from disk). Writes the plugin's whole output (status line
 * "VMGUARD STATE - text | perfdata", then detail lines) into out and returns the state
 * (VMG_PLUGIN_*). A snapshot this plugin does not understand is UNKNOWN. */
int vmg_check_evaluate(const struct vmg_check_opts *o, const json_t *snap, double extra_age_s,
                       char *out, size_t len);

/* Asks the daemon at socket_path for its status and judges it; UNKNOWN with the reason when
 * it cannot be reached, refuses us, answers garbage or another protocol version. When
 * status_file is not NULL it is read instead of the socket (for a monitoring user that may
 * not open the root-only socket). Same output contract as vmg_check_evaluate. */
int vmg_check_run(const struct vmg_check_opts *o, const char *socket_path, const char *status_file,
                  unsigned timeout_ms, char *out, size_t len);
