#include "controller/daemon/snapshot.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/macros.h"
#include "common/utf8.h"
#include "controller/engine/service_health.h"

#ifndef VMG_DAEMON_VERSION
#define VMG_DAEMON_VERSION "0.1"
#endif

static json_t *json_num_or_null(bool valid, double v) { return valid ? json_real(v) : json_null(); }

static json_t *vm_usage_json(const struct vmg_vm *vm) {
        const struct vmg_vm_rates *r = &vm->rates;
        const struct vmg_vm_counters *c = &vm->cur;
        bool ok = vm->have_rates;
        uint64_t rb = 0, wb = 0, ri = 0, wi = 0, txb = 0, rxb = 0, txp = 0, rxp = 0;
        for (size_t i = 0; i < c->n_devs; i++) {
                rb += c->devs[i].rbytes;
                wb += c->devs[i].wbytes;
                ri += c->devs[i].rios;
                wi += c->devs[i].wios;
        }
        for (size_t i = 0; i < c->n_ifaces; i++) {
                /* The tap's rx is what the guest sent. */
                txb += c->ifaces[i].rx_bytes;
                rxb += c->ifaces[i].tx_bytes;
                txp += c->ifaces[i].rx_packets;
                rxp += c->ifaces[i].tx_packets;
        }
        json_t *u = json_object();
        json_object_set_new(u, "cpu_cores", json_num_or_null(ok && r->cpu_valid, r->cpu_cores));
        json_object_set_new(u, "vcpu_delay_frac", json_num_or_null(ok && r->vcpu_delay_valid, r->vcpu_delay_frac));
        json_object_set_new(u, "disk_read_bytes_per_s", json_num_or_null(ok && r->disk_valid, r->disk_read_Bps));
        json_object_set_new(u, "disk_write_bytes_per_s", json_num_or_null(ok && r->disk_valid, r->disk_write_Bps));
        json_object_set_new(u, "disk_read_iops", json_num_or_null(ok && r->disk_valid, r->disk_read_iops));
        json_object_set_new(u, "disk_write_iops", json_num_or_null(ok && r->disk_valid, r->disk_write_iops));
        json_object_set_new(u, "net_tx_bits_per_s", json_num_or_null(ok && r->net_valid, r->net_tx_bps));
        json_object_set_new(u, "net_rx_bits_per_s", json_num_or_null(ok && r->net_valid, r->net_rx_bps));
        json_object_set_new(u, "net_tx_packets_per_s", json_num_or_null(ok && r->net_valid, r->net_tx_pps));
        json_object_set_new(u, "net_rx_packets_per_s", json_num_or_null(ok && r->net_valid, r->net_rx_pps));
        /* Cumulative counters, for Prometheus counters and rate() over them. */
        json_object_set_new(u, "cpu_seconds_total", json_num_or_null(c->cpu_valid, (double) c->cpu_usage_ns / 1e9));
        json_object_set_new(u, "cpu_throttled_seconds_total", json_real((double) c->cpu_throttled_ns / 1e9));
        json_object_set_new(u, "vcpu_delay_seconds_total",
                            json_num_or_null(c->vcpu_delay_valid, (double) c->vcpu_run_delay_ns / 1e9));
        json_object_set_new(u, "disk_read_bytes_total", json_integer((json_int_t) rb));
        json_object_set_new(u, "disk_write_bytes_total", json_integer((json_int_t) wb));
        json_object_set_new(u, "disk_read_ops_total", json_integer((json_int_t) ri));
        json_object_set_new(u, "disk_write_ops_total", json_integer((json_int_t) wi));
        json_object_set_new(u, "proc_write_bytes_total", json_integer((json_int_t) c->proc_wchar));
        json_object_set_new(u, "net_tx_bytes_total", json_integer((json_int_t) txb));
        json_object_set_new(u, "net_rx_bytes_total", json_integer((json_int_t) rxb));
        json_object_set_new(u, "net_tx_packets_total", json_integer((json_int_t) txp));
        json_object_set_new(u, "net_rx_packets_total", json_integer((json_int_t) rxp));
        return u;
}

/* A string from a guest (its name, a reason quoting it) as JSON. jansson refuses invalid
 * UTF-8, and json_pack() then fails the whole object: one hostile name made the snapshot
 * NULL. Such a string is shown with its bad bytes as '?' instead. Never NULL for a
 * non-NULL s, except out of memory. */
static json_t *guest_str(const char *s) {
        json_t *j = json_string(s);
        if (j)
                return j;
        _cleanup_free_ char *copy = strdup(s);
        if (!copy)
                return NULL;
        vmg_utf8_scrub(copy);
        return json_string(copy);
}

json_t *vmg_snapshot_build(const struct vmg_snapshot_input *in, uint64_t now_ns, char *status_line,
                          size_t status_size) {
        json_t *vms = json_array();
        size_t throttled = 0;
        for (size_t i = 0; i < vmg_monitor_n_vms(in->mon); i++) {
                struct vmg_vm *vm = vmg_monitor_vm(in->mon, i);
                int t = vmg_policy_match(in->policy, vm->dom->tenant, vm->dom->name, vm->dom->uuid);
                json_t *res = json_object();
                bool any = false;
                uint64_t since = 0;
                for (int k = 0; k < VMG_RES_COUNT; k++) {
                        struct vmg_engine_limit_info li;
                        if (vmg_engine_query(in->engine, vm->dom->uuid, k, &li) < 0)
                                continue;
                        if (li.limit <= 0 && !li.suspect && !li.changed && li.cap <= 0)
                                continue;
                        any |= li.throttled;
                        if (li.throttled && li.changed && (!since || li.last_change_ns < since))
                                since = li.last_change_ns;
                        json_t *o = json_pack("{s:f, s:f, s:b, s:f, s:b, s:o}", "limit", li.limit, "cap",
                                              li.cap, "throttled", li.throttled, "usage", li.usage,
                                              "suspect", li.suspect, "reason",
                                              guest_str(li.reason ? li.reason : ""));
                        if (li.suspect)
                                json_object_set_new(o, "suspect_for_s",
                                                    json_real((double) (now_ns - li.suspect_since_ns) / 1e9));
                        if (li.calm)
                                json_object_set_new(o, "calm_for_s",
                                                    json_real((double) (now_ns - li.calm_since_ns) / 1e9));
                        if (li.strikes)
                                json_object_set_new(o, "repeat_offences", json_integer(li.strikes));
                        if (li.changed)
                                json_object_set_new(o, "changed_s_ago",
                                                    json_real((double) (now_ns - li.last_change_ns) / 1e9));
                        json_object_set_new(res, vmg_resource_name(k), o);
                }
                throttled += any;
                char src[128];
                const struct vmg_applied *ap = vmg_applied_find(in->applied, vm->dom->uuid);
                json_t *o = json_pack("{s:o, s:s, s:s?, s:i, s:b, s:b, s:o, s:o, s:s}", "name", guest_str(vm->dom->name),
                                      "uuid", vm->dom->uuid, "tenant", t >= 0 ? in->policy->tenants[t].name : NULL,
                                      "qemu_pid", (int) vm->qemu_pid, "throttled", any, "unmanaged",
                                      ap && ap->unmanaged, "usage", vm_usage_json(vm), "resources", res,
                                      "sources", vmg_vm_sources(vm, src, sizeof src));
                if (any)
                        json_object_set_new(o, "throttled_for_s", json_real((double) (now_ns - since) / 1e9));
                if (vm->error)
                        json_object_set_new(o, "error", json_string(strerror(-vm->error)));
                /* Resources whose desired limit is not seen in force, with how long. */
                json_t *unsynced = json_object();
                for (int k = 0; ap && !ap->unmanaged && k < VMG_RES_COUNT; k++)
                        if (ap->sync[k].out)
                                json_object_set_new(unsynced, vmg_resource_name(k),
                                                    json_pack("{s:f, s:s}", "for_s",
                                                              (double) (now_ns - ap->sync[k].since_ns) / 1e9,
                                                              "error", ap->sync[k].error ? strerror(-ap->sync[k].error)
                                                                                         : "not confirmed yet"));
                if (json_object_size(unsynced))
                        json_object_set_new(o, "out_of_sync", unsynced);
                else
                        json_decref(unsynced);
                json_array_append_new(vms, o);
        }

        json_t *svcs = json_array();
        for (size_t i = 0; i < vmg_monitor_n_services(in->mon); i++) {
                const struct vmg_svc *sv = vmg_monitor_service(in->mon, i);
                const struct vmg_service *pol = i < in->policy->host.n_services ? &in->policy->host.services[i] : NULL;
                const struct vmg_service_rates *r = &sv->rates;
                bool ok = sv->have_rates;
                /* Judged on what the engine sees this tick: the rates plus the probe's answer
                 * time. */
                struct vmg_service_rates judged = *r;
                if (i < in->n_probers && in->probers[i])
                        judged.probe_latency_ms = vmg_prober_latency_ms(in->probers[i]);
                bool healthy = ok && !(pol && vmg_service_hurting(pol, &judged));
                json_t *o = json_pack("{s:s, s:s, s:i, s:b, s:b, s:o, s:o, s:o, s:o, s:o}", "name", sv->name,
                                      "match", sv->match, "pids", (int) sv->n_pids, "up", sv->n_pids > 0,
                                      "healthy", healthy, "cpu_cores", json_num_or_null(ok, r->cpu_cores),
                                      "run_delay_avg_ms", json_num_or_null(ok, r->run_delay_avg_ms),
                                      "run_delay_frac", json_num_or_null(ok, r->run_delay_frac),
                                      "blkio_delay_frac", json_num_or_null(ok && r->blkio_delay_valid, r->blkio_delay_frac),
                                      "max_run_delay_ms", json_num_or_null(pol && pol->max_run_delay_ms > 0,
                                                                           pol ? pol->max_run_delay_ms : 0));
                json_object_set_new(o, "run_delay_seconds_total", json_real((double) sv->cur.run_delay_ns / 1e9));
                if (i < in->n_probers && in->probers[i]) {
                        double lat = vmg_prober_latency_ms(in->probers[i]);
                        json_object_set_new(o, "probe_latency_ms", json_num_or_null(lat >= 0, lat));
                        json_object_set_new(o, "probe_sent_total", json_integer((json_int_t) vmg_prober_sent(in->probers[i])));
                        json_object_set_new(o, "probe_answered_total",
                                            json_integer((json_int_t) vmg_prober_answered(in->probers[i])));
                }
                json_object_set_new(o, "cpu_seconds_total", json_real((double) sv->cur.cpu_ns / 1e9));
                json_array_append_new(svcs, o);
        }

        const char *why = "";
        bool contended = vmg_engine_contended(in->engine, &why);
        struct vmg_host_rates h;
        bool hv = vmg_monitor_host_rates(in->mon, &h);
        json_t *host = json_pack("{s:o, s:o, s:o, s:o, s:o, s:b, s:s}", "psi_cpu_some",
                                 json_num_or_null(hv && h.psi_valid, h.psi_cpu_some), "psi_io_some",
                                 json_num_or_null(hv && h.psi_valid, h.psi_io_some), "psi_io_full",
                                 json_num_or_null(hv && h.psi_valid, h.psi_io_full), "cpu_busy_frac",
                                 json_num_or_null(hv && h.stat_valid, h.cpu_busy_frac), "iowait_frac",
                                 json_num_or_null(hv && h.stat_valid, h.iowait_frac), "contended", contended,
                                 "contention", why ? why : "");
        json_t *acts = json_object();
        for (int k = VMG_ACT_THROTTLE; k <= VMG_ACT_CAP; k++)
                json_object_set_new(acts, vmg_action_kind_name(k), json_integer((json_int_t) in->actions_by_kind[k]));
        json_t *daemon = json_pack("{s:i, s:s, s:I, s:f, s:f, s:f, s:b, s:I, s:o, s:b, s:i, s:i}", "pid", (int) getpid(),
                                   "version", VMG_DAEMON_VERSION, "ticks", (json_int_t) in->ticks, "tick_seconds",
                                   (double) in->tick_ns / 1e9, "last_tick_duration_seconds",
                                   (double) in->last_tick_duration_ns / 1e9, "last_tick_age_seconds",
                                   in->last_tick_ns ? (double) (now_ns - in->last_tick_ns) / 1e9 : -1.0, "dry_run",
                                   in->dry_run, "errors_total", (json_int_t) in->errors_total, "actions_total",
                                   acts, "libvirt_connected", in->libvirt_connected, "tenants",
                                   (int) in->policy->n_tenants, "guests_throttled", (int) throttled);
        /* Desired limits not seen in force (apply.c retries them with backoff). */
        uint64_t oldest = 0;
        size_t unsynced = vmg_applied_out_of_sync(in->applied, &oldest);
        json_object_set_new(daemon, "limits_out_of_sync", json_integer((json_int_t) unsynced));
        json_object_set_new(daemon, "limits_out_of_sync_oldest_seconds",
                            json_real(unsynced && now_ns > oldest ? (double) (now_ns - oldest) / 1e9 : 0.0));
        snprintf(status_line, status_size, "%zu guest(s), %zu throttled%s", vmg_monitor_n_vms(in->mon),
                 throttled, contended ? ", host contended" : "");
        json_t *tenants = json_array();
        for (size_t i = 0; i < in->policy->n_tenants; i++) {
                const struct vmg_tenant *t = &in->policy->tenants[i];
                json_t *match = json_array();
                for (size_t j = 0; j < t->n_matches; j++)
                        json_array_append_new(match, json_string(t->matches[j].value));
                json_array_append_new(tenants, json_pack("{s:s, s:s?, s:o}", "name", t->name, "file",
                                                         t->file, "vms", match));
        }
        json_t *pol = json_pack("{s:I, s:I, s:s, s:o}", "generation", (json_int_t) in->policy_generation,
                                "rejected_total", (json_int_t) in->policy_rejected, "last_error",
                                in->policy_error, "tenants", tenants);
        return json_pack("{s:i, s:o, s:o, s:o, s:o, s:o}", "version", 1, "daemon", daemon, "host", host,
                         "services", svcs, "vms", vms, "policy", pol);
}

