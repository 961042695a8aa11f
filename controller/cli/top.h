/* `vmguard top`'s view of the limits vmguardd holds on a guest, as pure functions on the
 * daemon's status snapshot (controller/manager.c vmg_manager_snapshot: per guest a
 * "resources" object keyed by resource name, each with "limit" and "throttled"), so the
 * table and --json are tested on fixtures without a daemon. */
#pragma once
#include <jansson.h>
#include <stddef.h>

/* The marker after a limit held below its cap because of noise (the engine's throttle, to
 * be released when calm), as opposed to a cap that always applies. */
#define VMG_TOP_THROTTLED_MARK "*"

/* Writes the guest's limits in force compactly, in resource order, e.g.
 * "cpu 0.30 wr 5.24MB/s* tx 10Mbit/s": cpu in cores, rd/wr bytes/s, rdio/wrio operations/s,
 * rx/tx bits/s, SI prefixes with 3 significant digits; VMG_TOP_THROTTLED_MARK after a
 * throttled one. Resources without a positive "limit" are left out; a resource this CLI
 * does not know shows as "NAME VALUE". vm is one element of the snapshot's "vms" (NULL or
 * no limits: "-"). Truncates to fit len (len > 0). Returns buf. */
const char *vmg_top_format_limits(const json_t *vm, char *buf, size_t len);

/* The same for --json: a new object {"RESOURCE": {"limit": N, "unit": "cores"|"bytes/s"|
 * "ops/s"|"bits/s"|"", "throttled": bool}, ...} with only the positive limits ({} when
 * none). Returns NULL on allocation failure. */
json_t *vmg_top_limits_json(const json_t *vm);
