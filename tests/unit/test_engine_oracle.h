/* The contention oracle of the engine tests (test_engine on traces, test_engine_props on
 * random worlds): written from the policy's words, independently of controller/engine.c, so
 * that the engine's verdicts and throttles can be checked against it. */
#pragma once
#include <math.h>
#include <stdbool.h>

#include "controller/engine/engine.h"
#include "controller/engine/service_health.h"

/* Seconds per second a guest's own CFS quota held it back (cpu.stat throttled time), as the
 * policy's words define it: only with a valid CPU figure, at most 1. */
static inline double oracle_quota(const struct vmg_vm_rates *rt) {
        return rt->cpu_valid && !rt->reset && rt->cpu_throttled_time_frac > 0 ? fmin(rt->cpu_throttled_time_frac, 1) : 0;
}

/* The contention oracle, written from the policy's words independently of the engine: is
 * anyone other than VM `self` (input index, or -1 for nobody) hurting in a way a limit on
 * resource `res` can undo (-1: any harm)? CPU harm: host PSI cpu, a service's run delay, a
 * guest's steal; I/O harm: host PSI io, a service's I/O wait; a probe's latency: any. Disk
 * limits undo I/O harm, CPU quotas CPU harm, network limits CPU harm and probe latency. Quota
 * stall is no harm: the largest guest quota stall comes off host PSI cpu, a guest's own off
 * its steal. */
static inline bool oracle_contended(const struct vmg_policy *p, const struct vmg_engine_input *in, long self, int res) {
        const struct vmg_host_policy *h = &p->host;
        bool cpu = res < 0 || res == VMG_RES_CPU || res == VMG_RES_NET_RX_BPS || res == VMG_RES_NET_TX_BPS;
        bool io = res < 0 || (res >= VMG_RES_DISK_READ_BPS && res <= VMG_RES_DISK_WRITE_IOPS);
        double stall = 0;
        for (size_t i = 0; i < in->n_vms; i++)
                stall = fmax(stall, oracle_quota(&in->vms[i].rates));
        if (in->host.psi_valid && ((io && h->psi_io_some > 0 && in->host.psi_io_some > h->psi_io_some) ||
                                   (cpu && h->psi_cpu_some > 0 && in->host.psi_cpu_some - stall > h->psi_cpu_some)))
                return true;
        for (size_t i = 0; i < in->n_services; i++) {
                const struct vmg_service *s = &h->services[in->services[i].policy_index];
                const struct vmg_service_rates *r = &in->services[i].rates;
                if (!r->valid)
                        continue;
                /* Whether a service hurts is the one rule of service_health.c (tested on its
                 * own in test_service_health); the oracle's own part is which harm a limit
                 * on res undoes. */
                unsigned sym = vmg_service_symptoms(s, r);
                if ((cpu && (sym & VMG_SVC_BIT(VMG_SVC_RUN_DELAY))) || (io && (sym & VMG_SVC_BIT(VMG_SVC_IO_DELAY))) ||
                    (sym & VMG_SVC_BIT(VMG_SVC_PROBE_LATENCY)))
                        return true;
        }
        for (size_t i = 0; i < in->n_vms; i++)
                if (cpu && (long) i != self && h->vm_steal > 0 && !in->vms[i].rates.reset &&
                    in->vms[i].rates.vcpu_delay_valid &&
                    in->vms[i].rates.vcpu_delay_frac - oracle_quota(&in->vms[i].rates) > h->vm_steal)
                        return true;
        return false;
}

