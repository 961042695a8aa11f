/* Reading the small text files of cgroupfs, procfs and sysfs. */
#pragma once
#include <sys/types.h>

/* Reads the whole small file behind fd from offset 0 into buf (NUL-terminated, at most
 * size - 1 bytes), so a kept-open fd re-reads current values with no seek. Retries on EINTR.
 * Returns the length, or -errno. */
ssize_t vmg_pread_text(int fd, char *buf, size_t size);

/* Opens path relative to dirfd with the given extra open flags (O_NOFOLLOW, ...) and reads
 * it as above. Returns the length, or -errno of open or read. */
ssize_t vmg_read_text_at(int dirfd, const char *path, int flags, char *buf, size_t size);
