/* vmgtool: the few things the lab guest's busybox cannot do, linked statically into the
 * initramfs by lab/image.sh.
 *   vmgtool now                      monotonic clock in ms (busybox date has no %N)
 *   vmgtool time KIND CMD [ARG...]   runs CMD silently, prints "VMG KIND ok|fail <ms>ms"
 *   vmgtool burn N                   N busy-looping processes (one per vCPU to load)
 *   vmgtool flood DST PORT SIZE [IF] UDP packets as fast as possible, rate every 5 s
 * Output lines go to stdout in one write() each, so lines from several roles printing to
 * the serial console never interleave mid-line. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Long enough that printing costs nothing next to sending, short enough to follow phases. */
#define FLOOD_REPORT_MS 5000

static uint64_t now_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
	char buf[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	if (write(STDOUT_FILENO, buf, (size_t)n) < 0)
		return;
}

static int cmd_time(int argc, char **argv) {
	uint64_t t0, t1;
	pid_t pid;
	int status = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: vmgtool time KIND CMD [ARG...]\n");
		return 2;
	}
	t0 = now_ms();
	pid = fork();
	if (pid < 0) {
		perror("vmgtool: fork");
		return 1;
	}
	if (pid == 0) {
		int fd = open("/dev/null", O_RDWR);
		if (fd >= 0) {
			dup2(fd, STDIN_FILENO);
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		execvp(argv[1], argv + 1);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	t1 = now_ms();
	say("VMG %s %s %llums\n", argv[0],
	    WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "ok" : "fail",
	    (unsigned long long)(t1 - t0));
	return 0;
}

static int cmd_burn(int argc, char **argv) {
	long n = argc > 0 ? strtol(argv[0], NULL, 10) : 1;

	if (n < 1 || n > 256) {
		fprintf(stderr, "vmgtool burn: N must be 1..256\n");
		return 2;
	}
	for (long i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("vmgtool: fork");
			return 1;
		}
		if (pid == 0) {
			volatile uint64_t x = 0;
			for (;;)
				x++;
		}
	}
	for (;;)
		pause();
}

static int cmd_flood(int argc, char **argv) {
	struct sockaddr_in dst = { .sin_family = AF_INET };
	uint64_t sent = 0, errs = 0, bytes = 0, t_last;
	long port, size;
	char *buf;
	int fd, one = 1;

	if (argc < 3) {
		fprintf(stderr, "usage: vmgtool flood DST PORT SIZE [IFACE]\n");
		return 2;
	}
	port = strtol(argv[1], NULL, 10);
	size = strtol(argv[2], NULL, 10);
	if (inet_pton(AF_INET, argv[0], &dst.sin_addr) != 1 || port < 1 || port > 65535 ||
	    size < 1 || size > 65507) {
		fprintf(stderr, "vmgtool flood: bad DST '%s', PORT '%s' or SIZE '%s'\n", argv[0],
		        argv[1], argv[2]);
		return 2;
	}
	dst.sin_port = htons((uint16_t)port);
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0) {
		perror("vmgtool: socket");
		return 1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof(one)) < 0)
		perror("vmgtool: SO_BROADCAST");
	/* 255.255.255.255 must leave through the lab NIC, whatever the routing table says. */
	if (argc > 3 && setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, argv[3], strlen(argv[3]) + 1) < 0)
		perror("vmgtool: SO_BINDTODEVICE");
	buf = calloc(1, (size_t)size);
	if (!buf)
		return 1;
	t_last = now_ms();
	for (;;) {
		/* Check the clock every 256 packets: a clock read per packet would cost more
		 * than the send itself under TCG. */
		for (int i = 0; i < 256; i++) {
			if (sendto(fd, buf, (size_t)size, 0, (struct sockaddr *)&dst, sizeof(dst)) < 0)
				errs++;
			else {
				sent++;
				bytes += (uint64_t)size;
			}
		}
		uint64_t t = now_ms();
		if (t - t_last >= FLOOD_REPORT_MS) {
			uint64_t dt = t - t_last;
			say("VMG net sent %llu pkt/s %llu Mbit/s errors %llu\n",
			    (unsigned long long)(sent * 1000 / dt),
			    (unsigned long long)(bytes * 8 / 1000 / dt),
			    (unsigned long long)errs);
			sent = errs = bytes = 0;
			t_last = t;
		}
	}
}

int main(int argc, char **argv) {
	if (argc < 2) {
		fprintf(stderr, "usage: vmgtool now|time|burn|flood ...\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (strcmp(argv[1], "now") == 0) {
		say("%llu\n", (unsigned long long)now_ms());
		return 0;
	}
	if (strcmp(argv[1], "time") == 0)
		return cmd_time(argc - 2, argv + 2);
	if (strcmp(argv[1], "burn") == 0)
		return cmd_burn(argc - 2, argv + 2);
	if (strcmp(argv[1], "flood") == 0)
		return cmd_flood(argc - 2, argv + 2);
	fprintf(stderr, "vmgtool: unknown command '%s'\n", argv[1]);
	return 2;
}
