/* The resource vocabulary, in one place: which resources vmguard meters and limits, their
 * JSON keys, their units, formatting a figure and parsing a human value. Pure (no I/O, no
 * other module), so any module may link it: the engine words its reasons with it. */
#pragma once
#include <stddef.h>
#include <stdint.h>

/* The resources vmguard meters and limits. Units: CPU in cores; disk in bytes/s or ops/s;
 * network in bits/s, from the guest's point of view (tx = what the guest sends). */
enum vmg_resource {
        VMG_RES_CPU = 0,
        VMG_RES_DISK_READ_BPS,
        VMG_RES_DISK_WRITE_BPS,
        VMG_RES_DISK_READ_IOPS,
        VMG_RES_DISK_WRITE_IOPS,
        VMG_RES_NET_RX_BPS,
        VMG_RES_NET_TX_BPS,
        VMG_RES_COUNT,
};
/* JSON key of the resource: "cpu", "disk_read", "disk_write", "disk_read_iops",
 * "disk_write_iops", "net_rx", "net_tx". */
const char *vmg_resource_name(enum vmg_resource r);
/* The resource in prose, for reasons and logs: "CPU", "disk reads", "disk writes", "disk read
 * ops", "disk write ops", "network receive", "network transmit"; "?" for no resource. */
const char *vmg_resource_words(enum vmg_resource r);
/* The resource whose JSON key is name, or VMG_RES_COUNT when none is. */
enum vmg_resource vmg_resource_from_name(const char *name);
/* The unit its figures are in: "cores", "bytes/s", "ops/s" or "bits/s". */
const char *vmg_resource_unit(enum vmg_resource r);
/* Formats a value of resource r in human units ("1.50 cores", "40.0MB/s", "200iops",
 * "100.0Mbit/s") into buf; returns buf. */
const char *vmg_resource_format(enum vmg_resource r, double value, char *buf, size_t len);

/* Parses a human value for resource kinds: "1.5 cores"/"150%" (CPU), "50MB/s" (bytes/s,
 * decimal SI, MiB/s binary), "200iops", "100Mbit/s", durations "30s"/"500ms"/"2m",
 * fractions "80%". Returns 0 or -EINVAL. */
int vmg_parse_cpu(const char *s, double *ret);
int vmg_parse_bytes_rate(const char *s, double *ret);
int vmg_parse_iops(const char *s, double *ret);
int vmg_parse_bits_rate(const char *s, double *ret);
int vmg_parse_duration(const char *s, uint64_t *ret_ns);
int vmg_parse_fraction(const char *s, double *ret);
