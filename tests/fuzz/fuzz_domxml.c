/* Live domain XML (virDomainGetXMLDesc) into struct vmg_domxml. */
#include <errno.h>
#include <string.h>

#include "probes/domxml.h"
#include "tests/fuzz/fuzz.h"

int vmg_fuzz_domxml(const uint8_t *data, size_t size) {
        struct vmg_domxml *d = (struct vmg_domxml *) (uintptr_t) 0x1;
        int r = vmg_domxml_parse((const char *) data, size, &d);
        if (r < 0) {
                FZ_ASSERT(r == -EBADMSG || r == -ENOMEM);
                FZ_ASSERT(d == (struct vmg_domxml *) (uintptr_t) 0x1);
                return 0;
        }
        FZ_ASSERT(r == 0 && d && d->name && d->name[0]);
        FZ_ASSERT(strlen(d->uuid) == 36);
        FZ_ASSERT(d->n_vcpus >= 1 && d->n_vcpus <= d->max_vcpus);
        for (size_t i = 0; i < d->n_disks; i++) {
                const struct vmg_dom_disk *k = &d->disks[i];
                FZ_ASSERT(k->source && k->source[0]);
                FZ_ASSERT(memchr(k->target, 0, sizeof(k->target)) && memchr(k->cache, 0, sizeof(k->cache)) &&
                          memchr(k->io, 0, sizeof(k->io)) && memchr(k->bus, 0, sizeof(k->bus)));
                (void) vmg_disk_type_name(k->type);
        }
        for (size_t i = 0; i < d->n_ifaces; i++) {
                const struct vmg_dom_iface *f = &d->ifaces[i];
                FZ_ASSERT(memchr(f->type, 0, sizeof(f->type)) && memchr(f->tap, 0, sizeof(f->tap)) &&
                          memchr(f->mac, 0, sizeof(f->mac)) && memchr(f->source, 0, sizeof(f->source)) &&
                          memchr(f->model, 0, sizeof(f->model)));
        }
        FZ_ASSERT(vmg_domxml_free(d) == NULL);
        return 0;
}

VMG_FUZZ_ENTRY(vmg_fuzz_domxml)
