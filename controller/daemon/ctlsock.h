/* The daemon's control socket: a UNIX stream socket, root only, one JSON request per line
 * and one JSON reply per line. It runs inside the daemon's single-threaded event loop and
 * never blocks it: the loop watches one fd (an epoll set holding the listener, the clients
 * and a timer for idle clients) and calls vmg_ctl_server_dispatch() when it is readable.
 *
 * Requests: {"cmd":"ping"} (answered by the server itself), {"cmd":"status"},
 * {"cmd":"explain","vm":"NAME-or-UUID"}; anything else goes to the handler too. Replies are
 * one JSON object; an error reply is {"error":"words", "code":"..."} and nothing else. */
#pragma once
#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#include "policies/policy.h"
#include "common/paths.h"

/* Protocol version: the "version" of the snapshot and of the ping reply. */
#define VMG_CTL_PROTOCOL_VERSION 1
/* A request line longer than this (newline included) is refused and the client closed:
 * real requests are under 200 bytes, so this only bounds what a buggy client costs us. */
#define VMG_CTL_MAX_REQUEST 4096
/* A client that sends no complete request within this time is closed (ms). */
#define VMG_CTL_DEFAULT_TIMEOUT_MS 5000
/* Clients served at once; more are answered with an error and closed. */
#define VMG_CTL_MAX_CLIENTS 16

/* Answers one request. Returns a new reference (the server sends and frees it), or NULL for
 * a command it does not know (the server then replies "unknown command"). */
typedef json_t *(*vmg_ctl_handler_t)(const json_t *request, void *ud);

struct vmg_ctl_server;

/* Creates the socket at path (NULL: VMG_CONTROL_SOCKET; its directory must exist),
 * replacing a stale socket file but never another kind of file, with mode 0600. Returns 0
 * or -errno (logged with the path): -EEXIST when path is not a socket, -EADDRINUSE when a
 * live server already answers there, -ENAMETOOLONG. */
int vmg_ctl_server_new(const char *path, vmg_ctl_handler_t handler, void *ud,
                       struct vmg_ctl_server **ret);

/* The fd to watch for EPOLLIN (an epoll fd). Never blocks when dispatched. */
int vmg_ctl_server_fd(const struct vmg_ctl_server *s);

/* Accepts, reads, answers and expires whatever is ready, without blocking. Returns 0, or
 * -errno only for a failure of the server itself (epoll); clients' errors are logged and
 * end that client only. */
int vmg_ctl_server_dispatch(struct vmg_ctl_server *s);

/* Closes every client and the listener, unlinks the socket file, frees. Returns NULL. */
struct vmg_ctl_server *vmg_ctl_server_free(struct vmg_ctl_server *s);

/* Tests and special setups: the uid allowed to talk to the server (default 0) and the idle
 * timeout in ms. Return 0 or -EINVAL. */
int vmg_ctl_server_set_allowed_uid(struct vmg_ctl_server *s, uid_t uid);
int vmg_ctl_server_set_timeout_ms(struct vmg_ctl_server *s, unsigned ms);
/* Clients currently connected. */
size_t vmg_ctl_server_n_clients(const struct vmg_ctl_server *s);

/* The daemon's handler, given the request and a fresh snapshot (vmg_manager_snapshot(),
 * consumed: this function takes the reference). policy (may be NULL) is the policy in
 * force, used to tell explain what thresholds and calm periods apply.
 * - "status": the snapshot as is.
 * - "explain": the snapshot with "vms" reduced to the one guest whose name or uuid
 *   (case-insensitive) is "vm", plus "policy" in that guest's entry (its tenant's rules and
 *   the host damping, see vmg_ctl_rules_json); {"error":..., "code":"no_such_vm"} when none
 *   matches, {"error":..., "code":"bad_request"} when "vm" is missing, {"error":...,
 *   "code":"internal"} when out of memory (never a partial reply).
 * Returns a new reference, or NULL for an unknown command (or when not even an error reply
 * could be allocated). */
json_t *vmg_ctl_answer(const json_t *request, json_t *snapshot, const struct vmg_policy *policy);

/* The rules the policy applies to a guest of the named tenant, as JSON in the resources'
 * units and seconds: {"min_hold_s", "step_down", "step_up", "rules": {"disk_write":
 * {"cap", "noisy_above", "for_s", "throttle_to", "floor", "calm_for_s"}, ...}}. Returns a
 * new reference, or NULL when tenant is NULL or unknown, or when out of memory. */
json_t *vmg_ctl_rules_json(const struct vmg_policy *policy, const char *tenant);
