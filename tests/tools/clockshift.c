/* clockshift: an LD_PRELOAD shim that moves the wall clock of one process, for testing
 * what a daemon does when the host's clock is stepped (NTP step, an admin's `date -s`, a VM
 * host resumed from suspend). CLOCK_REALTIME (and its _COARSE twin) as seen through
 * clock_gettime(), time() and gettimeofday() is shifted by an offset in seconds (a decimal,
 * may be negative) read from the file named by $CLOCKSHIFT_FILE; the file is re-read
 * whenever its inode, size or mtime changes, so a test steps the clock by rewriting it
 * (write a temp file and rename it over, so a reader never sees it half written). A missing
 * or unparsable file means offset 0. CLOCK_MONOTONIC and the kernel's own timestamps (file
 * mtimes, SO_TIMESTAMP) are left alone: only what the process asks for is shifted.
 *
 *   LD_PRELOAD=build/tests/tools/clockshift.so CLOCKSHIFT_FILE=/tmp/x/offset vmguardd ...
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct stat seen; /* of the offset file when last read */
static long long offset_ns;

static clock_gettime_fn real_clock_gettime(void) {
        static clock_gettime_fn fn;
        if (!fn)
                fn = (clock_gettime_fn) dlsym(RTLD_NEXT, "clock_gettime");
        return fn;
}

static long long current_offset_ns(void) {
        const char *path = getenv("CLOCKSHIFT_FILE");
        struct stat st;
        long long off;
        if (!path || stat(path, &st) < 0)
                return 0;
        pthread_mutex_lock(&lock);
        if (st.st_ino != seen.st_ino || st.st_size != seen.st_size ||
            st.st_mtim.tv_sec != seen.st_mtim.tv_sec || st.st_mtim.tv_nsec != seen.st_mtim.tv_nsec) {
                FILE *f = fopen(path, "re");
                double s = 0;
                if (f) {
                        if (fscanf(f, "%lf", &s) != 1)
                                s = 0;
                        fclose(f);
                }
                offset_ns = (long long) (s * 1e9);
                seen = st;
        }
        off = offset_ns;
        pthread_mutex_unlock(&lock);
        return off;
}

static void shift(struct timespec *ts) {
        long long off = current_offset_ns();
        long long ns = (long long) ts->tv_nsec + off % 1000000000LL;
        ts->tv_sec += (time_t) (off / 1000000000LL);
        if (ns < 0) {
                ns += 1000000000LL;
                ts->tv_sec--;
        } else if (ns >= 1000000000LL) {
                ns -= 1000000000LL;
                ts->tv_sec++;
        }
        ts->tv_nsec = (long) ns;
}

int clock_gettime(clockid_t id, struct timespec *ts) {
        clock_gettime_fn fn = real_clock_gettime();
        if (!fn) {
                errno = ENOSYS;
                return -1;
        }
        int r = fn(id, ts);
        if (r == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
                shift(ts);
        return r;
}

time_t time(time_t *t) {
        struct timespec ts;
        if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
                return (time_t) -1;
        if (t)
                *t = ts.tv_sec;
        return ts.tv_sec;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz) {
        struct timespec ts;
        (void) tz; /* obsolete; glibc ignores it too */
        if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
                return -1;
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
        return 0;
}
