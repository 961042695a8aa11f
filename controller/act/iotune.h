/* libvirt's block I/O tune as one set of six fields (total/read/write bytes and iops per
 * second): its text form for the journal and the pure rule that merges an operator's set
 * with vmguard's wants. No I/O; the calls to libvirt are in blkiotune.c. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

/* Journal key of a whole-set entry. */
#define VMG_IOTUNE_KEY "iotune"

enum vmg_iotune_field {
        VMG_IOTUNE_TOTAL_BYTES, VMG_IOTUNE_READ_BYTES, VMG_IOTUNE_WRITE_BYTES,
        VMG_IOTUNE_TOTAL_IOPS, VMG_IOTUNE_READ_IOPS, VMG_IOTUNE_WRITE_IOPS,
        VMG_IOTUNE_N
};
/* Values as libvirt means them: 0 = no limit. */
struct vmg_iotune {
        unsigned long long v[VMG_IOTUNE_N];
};

/* libvirt's parameter name of a field ("total_bytes_sec", ...). */
const char *vmg_iotune_name(enum vmg_iotune_field f);
/* The field of a parameter name, or -EINVAL. */
int vmg_iotune_field_of(const char *name);
/* The set as "total_bytes_sec=0 read_bytes_sec=0 ..." (all six, this order): the journal's
 * value. Returns the length, or -ENOBUFS when n is too small (192 is always enough). */
int vmg_iotune_format(const struct vmg_iotune *s, char *buf, size_t n);
/* Parses vmg_iotune_format()'s text. 0, or -EINVAL (then *ret is untouched). */
int vmg_iotune_parse(const char *text, struct vmg_iotune *ret);
bool vmg_iotune_equal(const struct vmg_iotune *a, const struct vmg_iotune *b);
/* True when no field of w is set (every field 0: no limit wanted). */
bool vmg_iotune_empty(const struct vmg_iotune *w);
/* The set to write, per group (bytes, iops), from what the operator set and what vmguard
 * wants (0 = no want). Pure. What an admin expects:
 *  - the effective limit of each direction is the stricter of the operator's (their
 *    read/write field, or their total, which bounds each direction too) and vmguard's;
 *  - with no want in a group, or when the operator's total is already at least as strict as
 *    every want, the operator's fields are written unchanged;
 *  - otherwise libvirt forbids total beside read/write, so an operator's total becomes
 *    read = write = total, each capped by the want: while throttled, reads and writes are
 *    bounded separately (their sum may reach total + the write cap) until the release puts
 *    the total back. */
void vmg_iotune_compose(const struct vmg_iotune *operator_set, const struct vmg_iotune *want,
                        struct vmg_iotune *ret);
