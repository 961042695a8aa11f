/* Parse a live libvirt domain XML (virDomainGetXMLDesc) into the facts vmguard needs to
 * find and throttle a guest: identity, tenant, vCPUs, local disks and host-side taps.
 * Pure parsing: no I/O, no libvirt calls, so tests feed it fixture files. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "probes/blockdev.h"

/* The tenant rides in <metadata>, matched by this namespace URI (the prefix is free). */
#define VMG_TENANT_NS "urn:vmguard:tenant:1"

enum vmg_disk_type {
        VMG_DISK_FILE,    /* <disk type='file'>: an image on a host filesystem */
        VMG_DISK_BLOCK,   /* <disk type='block'>: a host block device (LV, partition) */
        VMG_DISK_NETWORK, /* <disk type='network'>: rbd, iscsi, nbd...: no local device */
        VMG_DISK_VOLUME,  /* <disk type='volume'>: a storage-pool volume */
        VMG_DISK_OTHER,
};

struct vmg_dom_disk {
        char target[32];         /* guest name: "vda" */
        enum vmg_disk_type type;
        char *source;            /* file or device path; "proto:name" for network disks */
        char cache[16];          /* driver cache mode, "" when the XML has none */
        char io[16];             /* driver io mode (native, threads, io_uring), "" if none */
        char bus[16];

        /* Not from the XML: filled by vmg_libvirt_list(); zero after parsing. */
        int dev_error;           /* 0, or the -errno of vmg_blockdev_resolve_path() */
        struct vmg_blockdev dev; /* valid when dev_error == 0 and dev.major != 0 */
};

struct vmg_dom_iface {
        char type[16];     /* bridge, network, ethernet, direct, user... */
        char tap[16];      /* host device (<target dev>), "" when libvirt names none */
        char mac[18];      /* aa:bb:cc:dd:ee:ff, "" when absent */
        char source[64];   /* bridge, network or direct device name, "" if none */
        char model[16];
};

struct vmg_domxml {
        char *name;
        char uuid[37];
        int id;                  /* live domain id, -1 when the XML has none (inactive) */
        char *tenant;            /* NULL when the domain carries no vmguard tenant */
        char *partition;         /* <resource><partition>, NULL if none ("/machine") */
        unsigned n_vcpus;        /* online vCPUs: <vcpu current=N> or else its value */
        unsigned max_vcpus;
        size_t n_disks;          /* disks only: cdroms, floppies, source-less disks skipped */
        struct vmg_dom_disk *disks;
        size_t n_ifaces;
        struct vmg_dom_iface *ifaces;
};

/* Parses len bytes of XML. Returns 0 and *ret (free with vmg_domxml_free) on success;
 * -EBADMSG for malformed XML, a root other than <domain>, or a domain without a name
 * or uuid; -ENOMEM. Logs the reason and line at debug level; never touches *ret on error. */
int vmg_domxml_parse(const char *xml, size_t len, struct vmg_domxml **ret);

/* Frees everything; accepts NULL; returns NULL. */
struct vmg_domxml *vmg_domxml_free(struct vmg_domxml *d);

/* "file", "block", "network", "volume", "other". */
const char *vmg_disk_type_name(enum vmg_disk_type t);
