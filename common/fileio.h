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

/* Replaces dirfd/name with data so that a reader, or the next start after a crash or power
 * loss, sees either the old file or the new one, never a torn one: writes name.tmp (created
 * with O_CREAT|O_EXCL|O_NOFOLLOW relative to dirfd, so a symlink planted there is refused),
 * fsyncs it, renameat()s it over name and fsyncs the directory. A stale name.tmp left by a
 * crash is removed first; anything else at that name (a directory) makes it fail. dirfd must
 * be opened for reading (O_PATH cannot be fsynced). Returns 0, or -errno of the step that
 * failed; the temp file never stays behind. */
int vmg_write_file_atomic(int dirfd, const char *name, const void *data, size_t len, mode_t mode);

/* The same for a path an admin gave (its directory may be a symlink): opens the directory
 * and writes the file's base name there. Returns 0 or -errno. */
int vmg_write_file_atomic_path(const char *path, const void *data, size_t len, mode_t mode);

/* Opens relpath beneath dirfd without following a symlink in any component, the last one
 * included: openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS), or on kernels before 5.6 (and
 * under valgrind, which does not know openat2) one component at a time with O_NOFOLLOW.
 * An absolute path or a ".." component is refused (-EINVAL) before anything is opened; an
 * empty path opens dirfd's directory itself. O_CLOEXEC|O_NOFOLLOW are added to flags.
 * Returns the fd, -ELOOP for a symlinked component, or another -errno. */
int vmg_open_beneath(int dirfd, const char *relpath, int flags);
