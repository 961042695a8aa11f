#define _GNU_SOURCE 1 /* asprintf */
#include "probes/domxml.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include "common/log.h"
#include "common/macros.h"

static void xmlfreep(xmlChar **p) {
        if (*p)
                xmlFree(*p);
}
#define _cleanup_xmlfree_ _cleanup_(xmlfreep)

static void note_oom(void *userdata, xmlError *e) {
        if (e && e->code == XML_ERR_NO_MEMORY)
                *(bool *) userdata = true;
}

static bool is_elem(const xmlNode *n, const char *name) {
        return n->type == XML_ELEMENT_NODE && !n->ns && xmlStrEqual(n->name, BAD_CAST name);
}

/* First un-namespaced child element called name: libvirt's own schema has no namespace,
 * only <metadata> children do. */
static xmlNode *child(const xmlNode *n, const char *name) {
        for (xmlNode *c = n ? n->children : NULL; c; c = c->next)
                if (is_elem(c, name))
                        return c;
        return NULL;
}

static const char *prop_of(xmlChar *v) {
        return (const char *) v;
}

/* Text content with surrounding whitespace removed, malloc'd; NULL when empty or when n is
 * NULL. An element's content is never NULL but for a failed allocation. */
static int text_of(const xmlNode *n, char **ret) {
        _cleanup_xmlfree_ xmlChar *c = xmlNodeGetContent(n);
        if (!c) {
                *ret = NULL;
                return n ? -ENOMEM : 0;
        }
        const char *s = (const char *) c;
        while (isspace((unsigned char) *s))
                s++;
        size_t len = strlen(s);
        while (len > 0 && isspace((unsigned char) s[len - 1]))
                len--;
        if (len == 0) {
                *ret = NULL;
                return 0;
        }
        char *d = strndup(s, len);
        if (!d)
                return -ENOMEM;
        *ret = d;
        return 0;
}

/* Copies an attribute into a fixed field; false when it does not fit, so the caller
 * drops the device instead of acting on a truncated name. A missing attribute is "". */
static bool set_field(char *dst, size_t size, const xmlNode *n, const char *attr) {
        dst[0] = 0;
        if (!n)
                return true;
        _cleanup_xmlfree_ xmlChar *v = xmlGetNoNsProp(n, BAD_CAST attr);
        if (!v)
                return true;
        size_t len = strlen(prop_of(v));
        if (len >= size)
                return false;
        memcpy(dst, v, len + 1);
        return true;
}

static int parse_uint(const char *s, unsigned *ret) {
        if (!s || !*s)
                return -EINVAL;
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        while (isspace((unsigned char) *end))
                end++;
        if (errno || *end || v > UINT_MAX || s[0] == '-')
                return -EINVAL;
        *ret = (unsigned) v;
        return 0;
}

static enum vmg_disk_type disk_type_of(const char *t) {
        if (!t || strcmp(t, "file") == 0) /* libvirt's default when type is omitted */
                return VMG_DISK_FILE;
        if (strcmp(t, "block") == 0)
                return VMG_DISK_BLOCK;
        if (strcmp(t, "network") == 0)
                return VMG_DISK_NETWORK;
        if (strcmp(t, "volume") == 0)
                return VMG_DISK_VOLUME;
        return VMG_DISK_OTHER;
}

const char *vmg_disk_type_name(enum vmg_disk_type t) {
        switch (t) {
        case VMG_DISK_FILE: return "file";
        case VMG_DISK_BLOCK: return "block";
        case VMG_DISK_NETWORK: return "network";
        case VMG_DISK_VOLUME: return "volume";
        default: return "other";
        }
}

/* The source as one string: a path for file/block, "proto:name" for network disks,
 * "pool/volume" for volumes. NULL (not an error) for a disk without a source. */
static int disk_source(const xmlNode *src, enum vmg_disk_type type, char **ret) {
        *ret = NULL;
        if (!src)
                return 0;
        const char *a = NULL, *b = NULL, *sep = "";
        switch (type) {
        case VMG_DISK_FILE: a = "file"; break;
        case VMG_DISK_BLOCK: a = "dev"; break;
        case VMG_DISK_NETWORK: a = "protocol"; b = "name"; sep = ":"; break;
        case VMG_DISK_VOLUME: a = "pool"; b = "volume"; sep = "/"; break;
        default: return 0;
        }
        _cleanup_xmlfree_ xmlChar *va = xmlGetNoNsProp(src, BAD_CAST a);
        _cleanup_xmlfree_ xmlChar *vb = b ? xmlGetNoNsProp(src, BAD_CAST b) : NULL;
        if (!va || !*va)
                return 0;
        char *s;
        if (asprintf(&s, "%s%s%s", prop_of(va), vb ? sep : "", vb ? prop_of(vb) : "") < 0)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static int parse_disk(struct vmg_domxml *d, const xmlNode *n) {
        _cleanup_xmlfree_ xmlChar *type = xmlGetNoNsProp(n, BAD_CAST "type");
        _cleanup_xmlfree_ xmlChar *device = xmlGetNoNsProp(n, BAD_CAST "device");
        /* "lun" is SCSI passthrough of a host block device: its I/O is as real as a
         * disk's. cdroms and floppies are not worth throttling. */
        if (device && !xmlStrEqual(device, BAD_CAST "disk") && !xmlStrEqual(device, BAD_CAST "lun"))
                return 0;

        struct vmg_dom_disk k = { .type = disk_type_of(prop_of(type)) };
        if (!set_field(k.target, sizeof k.target, child(n, "target"), "dev") ||
            !set_field(k.cache, sizeof k.cache, child(n, "driver"), "cache") ||
            !set_field(k.io, sizeof k.io, child(n, "driver"), "io") ||
            !set_field(k.bus, sizeof k.bus, child(n, "target"), "bus")) {
                log_warning("domain %s: disk with an overlong target/driver attribute, skipped",
                            d->name);
                return 0;
        }
        int r = disk_source(child(n, "source"), k.type, &k.source);
        if (r < 0)
                return r;
        if (!k.source) {
                log_debug("domain %s: disk %s has no source (empty drive), skipped", d->name,
                          k.target[0] ? k.target : "?");
                return 0;
        }
        struct vmg_dom_disk *a = realloc(d->disks, (d->n_disks + 1) * sizeof *a);
        if (!a) {
                free(k.source);
                return -ENOMEM;
        }
        d->disks = a;
        d->disks[d->n_disks++] = k;
        return 0;
}

static int parse_iface(struct vmg_domxml *d, const xmlNode *n) {
        struct vmg_dom_iface f = {};
        const xmlNode *src = child(n, "source");
        bool ok = set_field(f.type, sizeof f.type, n, "type") &&
                  set_field(f.tap, sizeof f.tap, child(n, "target"), "dev") &&
                  set_field(f.mac, sizeof f.mac, child(n, "mac"), "address") &&
                  set_field(f.model, sizeof f.model, child(n, "model"), "type");
        /* Which attribute names the host side depends on the type; a live type='network'
         * source also carries bridge=, the network name is what an admin recognises. */
        static const char *const src_attrs[] = { "network", "bridge", "dev" };
        size_t first = strcmp(f.type, "bridge") == 0 ? 1 : strcmp(f.type, "direct") == 0 ? 2 : 0;
        for (size_t i = first; ok && src && i < ARRAY_SIZE(src_attrs) && !f.source[0]; i++)
                ok = set_field(f.source, sizeof f.source, src, src_attrs[i]);
        if (!ok) {
                log_warning("domain %s: interface with an overlong attribute, skipped", d->name);
                return 0;
        }
        struct vmg_dom_iface *a = realloc(d->ifaces, (d->n_ifaces + 1) * sizeof *a);
        if (!a)
                return -ENOMEM;
        d->ifaces = a;
        d->ifaces[d->n_ifaces++] = f;
        return 0;
}

static int parse_tenant(struct vmg_domxml *d, const xmlNode *metadata) {
        for (xmlNode *c = metadata ? metadata->children : NULL; c; c = c->next) {
                if (c->type != XML_ELEMENT_NODE || !c->ns || !c->ns->href)
                        continue;
                /* Match on the URI: the prefix is whatever the writer chose. */
                if (!xmlStrEqual(c->ns->href, BAD_CAST VMG_TENANT_NS) ||
                    !xmlStrEqual(c->name, BAD_CAST "tenant"))
                        continue;
                return text_of(c, &d->tenant);
        }
        return 0;
}

static int parse_vcpus(struct vmg_domxml *d, const xmlNode *root) {
        const xmlNode *v = child(root, "vcpu");
        if (!v) {
                d->n_vcpus = d->max_vcpus = 1; /* libvirt's default */
                return 0;
        }
        _cleanup_free_ char *txt = NULL;
        int r = text_of(v, &txt);
        if (r < 0)
                return r;
        if (parse_uint(txt, &d->max_vcpus) < 0 || d->max_vcpus == 0)
                return log_debug_errno(EBADMSG, "domain %s: bad <vcpu> \"%s\"", d->name,
                                       txt ? txt : "");
        d->n_vcpus = d->max_vcpus;
        _cleanup_xmlfree_ xmlChar *cur = xmlGetNoNsProp(v, BAD_CAST "current");
        if (cur && (parse_uint(prop_of(cur), &d->n_vcpus) < 0 || d->n_vcpus == 0 ||
                    d->n_vcpus > d->max_vcpus))
                return log_debug_errno(EBADMSG, "domain %s: bad <vcpu current=\"%s\">",
                                       d->name, prop_of(cur));
        return 0;
}

static int parse_root(struct vmg_domxml *d, const xmlNode *root) {
        int r;
        if (!is_elem(root, "domain"))
                return log_debug_errno(EBADMSG, "root element is <%s>, not <domain>",
                                       (const char *) root->name);
        r = text_of(child(root, "name"), &d->name);
        if (r < 0)
                return r;
        if (!d->name)
                return log_debug_errno(EBADMSG, "domain XML without <name>");

        _cleanup_free_ char *uuid = NULL;
        r = text_of(child(root, "uuid"), &uuid);
        if (r < 0)
                return r;
        if (!uuid || strlen(uuid) != 36)
                return log_debug_errno(EBADMSG, "domain %s: missing or malformed <uuid>",
                                       d->name);
        memcpy(d->uuid, uuid, 37);

        d->id = -1;
        _cleanup_xmlfree_ xmlChar *id = xmlGetNoNsProp(root, BAD_CAST "id");
        unsigned idv;
        if (id && parse_uint(prop_of(id), &idv) == 0 && idv <= INT_MAX)
                d->id = (int) idv;

        r = parse_vcpus(d, root);
        if (r < 0)
                return r;
        r = parse_tenant(d, child(root, "metadata"));
        if (r < 0)
                return r;
        r = text_of(child(child(root, "resource"), "partition"), &d->partition);
        if (r < 0)
                return r;

        for (xmlNode *c = child(root, "devices") ? child(root, "devices")->children : NULL; c;
             c = c->next) {
                if (is_elem(c, "disk"))
                        r = parse_disk(d, c);
                else if (is_elem(c, "interface"))
                        r = parse_iface(d, c);
                else
                        continue;
                if (r < 0)
                        return r;
        }
        return 0;
}

int vmg_domxml_parse(const char *xml, size_t len, struct vmg_domxml **ret) {
        if (!xml || len == 0 || len > INT_MAX)
                return log_debug_errno(EBADMSG, "domain XML empty or too large (%zu bytes)", len);
        /* NONET/no entity expansion: the XML comes from libvirtd, but a guest owner can
         * put text in <metadata>, so never fetch anything it names. */
        /* libxml2 2.9 reports a failed allocation only to its error handlers: the parser
         * then returns no document (as for malformed XML) or one missing what it could not
         * store (a namespace, an attribute), and xmlGetNoNsProp() returns NULL as for an
         * absent attribute. So a handler of our own watches the parse and the walk:
         * XML_ERR_NO_MEMORY anywhere makes the whole call -ENOMEM, never a guest with
         * fields missing. The last error is cleared at the end: it holds malloc'd strings. */
        xmlStructuredErrorFunc saved = xmlStructuredError;
        void *saved_ctx = xmlStructuredErrorContext;
        bool oom = false;
        xmlSetStructuredErrorFunc(&oom, note_oom);
        xmlDoc *doc = xmlReadMemory(xml, (int) len, "domain.xml", NULL,
                                    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
        struct vmg_domxml *d = NULL;
        int r = 0;
        if (!doc) {
                const xmlError *e = xmlGetLastError();
                const char *m = e && e->message ? e->message : "parse error";
                if (!oom)
                        r = log_debug_errno(EBADMSG, "malformed domain XML at line %d: %.*s",
                                            e ? e->line : 0, (int) strcspn(m, "\n"), m);
        } else if (!xmlDocGetRootElement(doc)) {
                r = log_debug_errno(EBADMSG, "domain XML without a root element");
        } else if (!(d = calloc(1, sizeof *d))) {
                r = -ENOMEM;
        } else {
                r = parse_root(d, xmlDocGetRootElement(doc));
        }
        xmlSetStructuredErrorFunc(saved_ctx, saved);
        if (oom)
                r = -ENOMEM;
        xmlResetLastError();
        if (doc)
                xmlFreeDoc(doc);
        if (r < 0) {
                vmg_domxml_free(d);
                return r;
        }
        *ret = d;
        return 0;
}

struct vmg_domxml *vmg_domxml_free(struct vmg_domxml *d) {
        if (!d)
                return NULL;
        for (size_t i = 0; i < d->n_disks; i++)
                free(d->disks[i].source);
        free(d->disks);
        free(d->ifaces);
        free(d->name);
        free(d->tenant);
        free(d->partition);
        free(d);
        return NULL;
}
