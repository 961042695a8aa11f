/* A stand-in for dnsmasq's lease file: writes 4 KiB and fsync()s it every 100 ms for N
 * seconds. Its block-I/O delay (stat field 42) is what a protected service shows when a
 * noisy guest fills the disk. Usage: fsync_victim FILE SECONDS */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
        if (argc != 3) {
                fprintf(stderr, "usage: %s FILE SECONDS\n", argv[0]);
                return 2;
        }
        int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) {
                perror(argv[1]);
                return 1;
        }
        char buf[4096];
        memset(buf, 'x', sizeof buf);
        time_t end = time(NULL) + atoi(argv[2]);
        struct timespec pause = { 0, 100 * 1000 * 1000 };
        while (time(NULL) < end) {
                if (pwrite(fd, buf, sizeof buf, 0) != (ssize_t) sizeof buf || fsync(fd) < 0) {
                        perror("write/fsync");
                        return 1;
                }
                nanosleep(&pause, NULL);
        }
        close(fd);
        return 0;
}
