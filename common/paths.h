/* Default paths and file names vmguard uses, in one place (as OpenBSD ntpd's ntpd.h keeps
 * CONFFILE and CTLSOCKET). Every one of them can be overridden at run time (command line
 * or a context struct), so tests point them into a mkdtemp() tree; these are only what a
 * NULL means. Shell scripts and man pages repeat some of them: change those too. */
#pragma once

/* Runtime state: the journal of original values, the status snapshot, the control socket,
 * the services record. tmpfs on purpose: a reboot restores every original anyway. */
#define VMG_STATE_DIR "/run/vmguard"
#define VMG_CONTROL_SOCKET_NAME "control.sock"
#define VMG_CONTROL_SOCKET VMG_STATE_DIR "/" VMG_CONTROL_SOCKET_NAME
#define VMG_STATUS_FILE "status.json"     /* the snapshot, in the state dir */
#define VMG_JOURNAL_FILE "journal.json"   /* original values, in the state dir */
#define VMG_SERVICES_FILE "services.json" /* services moved by svcprio, in the state dir */
#define VMG_STATE_LOCK_NAME "vmguardd.lock" /* flock'ed by the daemon using the state dir */
/* One vmguardd per host: flock'ed by the running daemon, which writes its pid there. Outside
 * the state dir on purpose: a second daemon given another --state-dir must see it too. */
#define VMG_LOCK_FILE "/run/vmguardd.lock"

/* Policy. */
#define VMG_CONF_DIR "/etc/vmguard"
#define VMG_HOST_FILE VMG_CONF_DIR "/host.json"
#define VMG_TENANTS_DIR VMG_CONF_DIR "/tenants.d"

/* Kernel and system mounts. */
#define VMG_PROC_ROOT "/proc"
#define VMG_CGROUP_ROOT "/sys/fs/cgroup"
#define VMG_NETNS_DIR "/run/netns" /* where `ip netns add` bind-mounts named namespaces */
